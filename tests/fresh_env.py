"""Fresh environments for the reader-path tests (``test_reader.py``): a copy of the
project as a git repository, and virtual environments where torch is "preinstalled".

Installing torch into a new virtual environment costs gigabytes. Colab has torch already,
so a new environment here gets it the same way: a folder of symbolic links to the
distributions (packages and their ``*.dist-info``) of this environment that torch,
torchvision and numpy need, put on the new environment's path by a ``.pth`` file. pip sees
them as installed and fetches only what the project adds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

#: Installed with every virtual environment; the new one keeps its own.
_VENV_OWN = {"pip", "setuptools", "wheel"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(roots: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, ``roots`` included: their requirements,
    and those of each requirement, with the extras they ask for (torch asks for
    ``cuda-toolkit[cublas,...]``) and the markers evaluated for this machine."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(name, "") for name in roots]
    while todo:
        name, extra = todo.pop()
        name = _canonical(name)
        if (name, extra) in seen or name in _VENV_OWN:
            continue
        seen.add((name, extra))
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: a requirement of another platform
        found[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo += [(req.name, e) for e in ("", *req.extras)]
    return list(found.values())


def _top_level_entries(dist: metadata.Distribution) -> set[str]:
    """The names directly in site-packages that a distribution installed."""
    names = set()
    for file in dist.files or []:
        first = Path(file).parts[0]
        if first not in ("..", "__pycache__"):
            names.add(first)
    return names


def preinstalled(dest: Path, roots: list[str]) -> Path:
    """A folder of links to the distributions ``roots`` need (see :func:`requirement_closure`),
    as if they were installed there."""
    dest.mkdir(parents=True, exist_ok=True)
    for dist in requirement_closure(roots):
        site = Path(dist.locate_file(""))
        for name in _top_level_entries(dist):
            link = dest / name
            if (site / name).exists() and not link.exists():
                link.symlink_to(site / name)
    return dest


def make_venv(path: Path, preinstalled_dir: Path | None = None) -> Path:
    """A new virtual environment (with pip) whose path also holds ``preinstalled_dir``;
    returns its Python."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    if preinstalled_dir is not None:
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                               "'purelib'))"], check=True, capture_output=True, text=True)
        (Path(site.stdout.strip()) / "preinstalled.pth").write_text(f"{preinstalled_dir}\n")
    return python


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the project's settings or path
    into a fresh environment (``PYTHONPATH``, ``VIRTUAL_ENV``, ``XDX_*``), plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("XDX_")}
    env.update(extra)
    return env


def snapshot_repository(root: Path, dest: Path) -> Path:
    """The project's working tree as a new one-commit git repository at ``dest``: every
    tracked file and every untracked file git does not ignore, as they are on disk now (so
    uncommitted changes are tested too)."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], check=True, capture_output=True)
    for name in listed.stdout.decode().split("\0"):
        src = root / name
        if name and src.is_file():  # a deleted, not yet committed file is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git = ["git", "-C", str(dest), "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], check=True)
    return dest
