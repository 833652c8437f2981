"""The paths a reader takes, end to end, each in a fresh virtual environment: the wheel
that ``pip install`` gets, and the book's chapters opened on Colab.

Both take minutes, so they are marked ``reader``: ``make test`` runs them as their own
step (``make reader``), and ``make unit`` leaves them out. torch comes "preinstalled"
(``fresh_env.preinstalled``: links to this environment's copy); pip fetches the rest.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from fresh_env import clean_environ, make_venv, preinstalled, snapshot_repository

from xdx_lib.core import run_archive
from xdx_lib.data.sources import SYSTEM_FASHION_MNIST

pytestmark = pytest.mark.reader

ROOT = Path(__file__).resolve().parents[1]
TORCH = ["torch", "torchvision", "numpy"]
#: What a Colab runtime has installed besides torch, of what the library needs (not
#: captum, torchmetrics or myst-nb), and the kernel the notebooks run in.
COLAB = [*TORCH, "ipykernel", "pandas", "matplotlib", "scikit-learn", "tqdm", "pyyaml"]
FASHION_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # fmt: skip


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure, fail the test with its output."""
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, (f"{' '.join(map(str, command))} exited with "
                                  f"{done.returncode}:\n{done.stdout}\n{done.stderr}")  # fmt: skip
    return done


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The working tree as a git repository of its own (what a clone would hold)."""
    return snapshot_repository(ROOT, tmp_path_factory.mktemp("source"))


# ------------------------------------------------------------------------------ the wheel


def check_wheel_metadata(wheel: Path) -> None:
    """The wheel says what PyPI and pip show a user: the version the library reports, the
    licence as an SPDX expression with its file, and where the book and the code are."""
    import zipfile

    import xdx_lib

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    fields = [line.split(": ", 1) for line in meta.split("\n\n")[0].splitlines() if ": " in line]
    assert ["Version", xdx_lib.__version__] in fields
    assert ["License-Expression", "MIT"] in fields and ["License-File", "LICENSE"] in fields
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    urls = dict(v.split(", ", 1) for k, v in fields if k == "Project-URL")
    assert {"Homepage", "Repository", "Issues"} <= set(urls), urls


def test_wheel_installs_and_runs_outside_the_repository(source, tmp_path):
    """Build the wheel, install it with the base dependencies only (no book or test
    extras) next to a preinstalled torch, import every package and run the command line
    from a folder that is not the repository."""
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          source, "-w", tmp_path / "wheels"])  # fmt: skip
    (wheel,) = (tmp_path / "wheels").glob("xdx-*.whl")
    check_wheel_metadata(wheel)
    python = make_venv(tmp_path / "venv", preinstalled(tmp_path / "torch", TORCH))
    env = clean_environ()
    _run([python, "-m", "pip", "install", "-q", wheel], env=env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    imported = _run([python, "-c", "import xdx_lib, xdx_lib.explain; print(xdx_lib.__file__)"],
                    cwd=elsewhere, env=env)  # fmt: skip
    assert imported.stdout.strip().startswith(str(tmp_path / "venv")), imported.stdout
    runs = tmp_path / "runs"
    trained = _run([tmp_path / "venv" / "bin" / "xdx", "distill", "--profile", "smoke",
                    "--dataset", "shapes", "--epochs", "1", "--train-subset", "256",
                    "--test-subset", "128", "--runs", runs], cwd=elsewhere, env=env)  # fmt: skip
    assert trained.stdout.splitlines()[-1].startswith("distill: "), trained.stdout
    assert list(runs.glob("students/shapes-kd-*/model.pt"))


# --------------------------------------------------------------------------------- Colab


@contextmanager
def serve(folder: Path):
    """An HTTP server on 127.0.0.1 for the files of ``folder``; yields its URL and the list
    of paths requested."""
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            requested.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(Handler, directory=str(folder)))  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requested
    finally:
        server.shutdown()
        server.server_close()


def fake_colab(folder: Path) -> Path:
    """A ``google.colab`` package whose ``drive.mount`` makes ``<mountpoint>/MyDrive``."""
    package = folder / "google" / "colab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Stands in for Colab\'s module in tests."""\n')
    (package / "drive.py").write_text(
        '"""Google Drive, played by a local folder."""\n'
        "import os\n\n\n"
        "def mount(mountpoint, **kwargs):\n"
        '    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)\n'
        '    print("Mounted at", mountpoint)\n'
    )
    return folder


def colab_kernel(jupyter_dir: Path, python: Path, colab_dir: Path) -> str:
    """A kernel spec for ``python`` that imports ``google.colab`` at start, as Colab's
    kernel does; returns its name (found through ``JUPYTER_PATH=jupyter_dir``)."""
    spec = jupyter_dir / "kernels" / "colab"
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.exec_lines=__import__('google.colab')"]  # fmt: skip
    (spec / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "Colab (simulated)", "language": "python",
        "env": {"PYTHONPATH": str(colab_dir)},
    }))  # fmt: skip
    return "colab"


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where the file system allows one, else a copy. The run cache replaces
    files (write, then rename) and never writes into one, so a link is never changed."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def publish_the_project_cache(releases: Path, source: Path) -> set[str] | None:
    """The project's ``runs/`` (``make test`` fills it under nbval just before) published as
    the book's workflow publishes a run cache: ``xdx runs pack`` as the asset of the release
    ``runs-<id>`` under ``releases`` (which plays the repository). Returns the run cache
    files it holds; None, and nothing published, when there is no ``runs/``: the chapters
    then train everything. With it, the chapters load the models they would train, which
    takes most of their time; training in a fresh environment is the wheel test's part."""
    from xdx_lib.core.cache import using_runs_dir

    if not (ROOT / "runs").is_dir() or not any((ROOT / "runs").iterdir()):
        return None
    with using_runs_dir(ROOT / "runs"):
        name = run_archive.archive_name("smoke")
        folder = releases / "releases" / "download" / f"runs-{run_archive.archive_id('smoke')}"
        archive = run_archive.pack("smoke", folder)
    assert archive.name == name
    assert name == _run([sys.executable, "-m", "xdx_lib", "runs", "id", "--profile", "smoke"],
                        cwd=source).stdout.strip(), "the clone would ask for another archive"
    return set(run_archive.run_files(ROOT / "runs"))


def test_every_chapter_runs_on_a_simulated_colab(source, tmp_path, monkeypatch):
    """Each chapter as a reader runs it on Colab: the set-up cell clones the repository
    (here a local copy; over a half-made folder) and installs it into an environment that
    has torch but not the library, torchvision downloads Fashion-MNIST (from a local
    server; Debian's copy is hidden), the run cache is on (a stand-in for) Google Drive,
    the first chapter's set-up fetches the run cache published for this code (from a local
    server), and every chapter runs to the end on the smoke profile, training nothing the
    published cache holds."""
    import papermill

    originals = [SYSTEM_FASHION_MNIST / name for name in FASHION_FILES]
    if not all(p.is_file() for p in originals):
        pytest.skip(f"no Fashion-MNIST files in {SYSTEM_FASHION_MNIST} to serve as "
                    "torchvision's mirror; `make data` installs dataset-fashion-mnist")  # fmt: skip
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for p in originals:
        shutil.copy(p, mirror / p.name)
    python = make_venv(tmp_path / "venv", preinstalled(tmp_path / "colab-site", COLAB))
    colab_dir = fake_colab(tmp_path / "colab-module")
    kernel = colab_kernel(tmp_path / "jupyter", python, colab_dir)
    content = tmp_path / "content"
    (content / "xdx").mkdir(parents=True)
    drive_runs = content / "drive" / "MyDrive" / "xdx" / "runs"
    published = publish_the_project_cache(tmp_path / "releases", source)
    (content / "xdx" / "README.md").write_text("left by an interrupted clone\n")
    with serve(mirror) as (url, requested), serve(tmp_path / "releases") as (repo, fetched):
        for key in ("PYTHONPATH", "XDX_RUNS", "XDX_DATA", "XDX_PROFILE", "XDX_DOWNLOAD"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
        monkeypatch.setenv("XDX_REPO_URL", str(source))
        monkeypatch.setenv("XDX_CONTENT", str(content))
        monkeypatch.setenv("XDX_SYSTEM_DATA", "none")
        monkeypatch.setenv("XDX_FASHION_MNIST_MIRROR", url)
        monkeypatch.setenv("XDX_RUNS_REPOSITORY", repo)
        for chapter in sorted((ROOT / "book").glob("*.ipynb")):
            papermill.execute_notebook(
                str(chapter), str(tmp_path / chapter.name), kernel_name=kernel,
                parameters={"profile": "smoke", "drive": True}, cwd=str(content),
                progress_bar=False, log_output=False,
            )  # fmt: skip
    assert set(requested) == {f"/{name}" for name in FASHION_FILES}
    assert (content / "xdx" / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert list(drive_runs.glob("teachers/*/model.pt"))
    assert not (content / "xdx" / "runs").exists(), "the run cache should be on Drive"
    if published is not None:
        assert len([p for p in fetched if p.endswith(".tar.gz")]) == 1, fetched  # once
        trained = {p for p in run_archive.run_files(drive_runs) if p.endswith("model.pt")}
        assert trained <= published, f"trained though published: {trained - published}"
    installed = _run([python, "-m", "pip", "show", "-f", "xdx"], env=clean_environ())
    assert "Editable project location: " + str(content / "xdx") in installed.stdout
