"""The trained teacher the repository ships, put into the run cache instead of training it.

Every chapter of the CPU profile (``book``) starts from one teacher: a 0.29M-parameter CNN
trained 15 epochs on 55,000 Fashion-MNIST images. It is the ``colab`` profile's teacher too
(one cache key), and training it is a fifth of ``make book`` on two cores, more on a CPU
without bfloat16 units. So the repository ships its checkpoint under
``pretrained/teachers/``, laid out as in the run cache, with ``pretrained/manifest.json``
naming each file's SHA-256, and ``make book`` installs it (:func:`install`) before the
chapters run: they find the teacher in the run cache and train only the students.

The shipped folder is named as the run cache names a teacher (:func:`teacher_folder`: the
dataset, the model and :func:`~xdx_lib.core.layout.teacher_key`), so a profile whose
teacher differs (``smoke``, ``paper``, a changed field or ``RUN_FORMAT``) finds none and
trains its own, as before. ``make book TEACHER=train`` trains it on the reader's machine,
in a run cache that does not hold the shipped one (:func:`check_trains_own`).

Every refusal is a :class:`ShippedTeacherError`, one line that says what to do, and it
writes nothing.

Layer: core, beside the run cache it fills; it stores nothing a key names, so the training
code's fingerprint leaves it out (:mod:`~xdx_lib.core.fingerprint`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from xdx_lib.core.cache import atomic_write, project_root, runs_dir, using_runs_dir
from xdx_lib.core.config import PROFILES, RunConfig
from xdx_lib.core.layout import teacher_key, teacher_path
from xdx_lib.core.run_archive import sha256_file

#: The repository's folder of shipped models, and its manifest's name.
SHIPPED = "pretrained"
MANIFEST = "manifest.json"


class ShippedTeacherError(ValueError):
    """A shipped teacher cannot be installed; the one-line message says what to do."""


def shipped_dir(root: str | os.PathLike | None = None) -> Path:
    """The repository's ``pretrained/`` folder (``root``: the project's folder, default the
    one above the current directory, as :func:`~xdx_lib.core.cache.project_root` finds it)."""
    return Path(root or project_root() or Path.cwd()) / SHIPPED


def teacher_file(profile: str, runs: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The run cache ``runs`` (default :func:`~xdx_lib.core.cache.runs_dir`) and the path in
    it of ``profile``'s teacher (:func:`~xdx_lib.core.layout.teacher_path`), which
    ``pretrained/`` lays out alike."""
    if profile not in PROFILES:
        raise ShippedTeacherError(f"unknown profile {profile!r}; choose one of: "
                                  f"{', '.join(PROFILES)}")  # fmt: skip
    cfg = RunConfig(profile=profile).resolved()
    with using_runs_dir(runs):
        base, path = runs_dir(), teacher_path(cfg, teacher_key(cfg))
    return base, path.relative_to(base)


def teacher_folder(profile: str) -> str:
    """The run cache's folder name of ``profile``'s teacher, ``<dataset>-<model>-<key>``:
    what a shipped teacher must be named to serve that profile."""
    return teacher_file(profile)[1].parent.name


def _holds(path: Path, entry: dict | None) -> bool:
    """Whether the file at ``path`` has the bytes of the manifest's ``entry``."""
    return entry is not None and path.is_file() and sha256_file(path) == entry.get("sha256")


def read_manifest(root: str | os.PathLike | None = None) -> dict:
    """``pretrained/manifest.json``: ``{"teachers": {folder: {"sha256": ..., ...}}}``; an
    absent or unreadable one is a :class:`ShippedTeacherError`."""
    path = shipped_dir(root) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ShippedTeacherError(
            f"cannot read {path} ({type(e).__name__}); restore it with `git checkout -- "
            f"{SHIPPED}`, or train the teacher: make book TEACHER=train") from None  # fmt: skip


def install(profile: str, runs: str | os.PathLike | None = None,
            root: str | os.PathLike | None = None) -> str:  # fmt: skip
    """Copy the shipped teacher of ``profile`` into the run cache ``runs`` (default
    :func:`~xdx_lib.core.cache.runs_dir`) and return one line saying what happened.

    Nothing is copied when the run cache has the teacher already, or when none is shipped
    for the profile's teacher (the chapters then train it). The file's SHA-256 is checked
    against the manifest before anything is written, and the copy is atomic.
    """
    cache, relative = teacher_file(profile, runs)
    target, folder = cache / relative, relative.parent.name
    if target.is_file():
        return f"teacher {folder} is in the run cache already ({target.parent})"
    entry = read_manifest(root).get("teachers", {}).get(folder)
    if entry is None:
        return (f"no shipped teacher for profile {profile} (its teacher is {folder}); "
                "the chapters train it")  # fmt: skip
    source = shipped_dir(root) / relative
    if not _holds(source, entry):
        raise ShippedTeacherError(
            f"{source} is missing or damaged (its SHA-256 is not the manifest's); restore it "
            f"with `git checkout -- {SHIPPED}`, or train the teacher: make book TEACHER=train")
    with open(source, "rb") as f:
        atomic_write(target, lambda out: shutil.copyfileobj(f, out))
    return (f"installed the shipped teacher {folder} (test accuracy "
            f"{entry.get('test_accuracy', 'unrecorded')}) into {target.parent}")  # fmt: skip


def origin(path: str | os.PathLike, root: str | os.PathLike | None = None) -> dict | None:
    """The manifest's entry of the shipped teacher whose bytes the run cache's file at
    ``path`` holds, else None: trained on this machine, or no manifest to say otherwise. A
    chapter says from it where its teacher was trained."""
    path = Path(path)
    try:
        entry = read_manifest(root).get("teachers", {}).get(path.parent.name)
    except ShippedTeacherError:
        return None
    return entry if _holds(path, entry) else None


def check_trains_own(profile: str, runs: str | os.PathLike | None = None,
                     root: str | os.PathLike | None = None) -> str:  # fmt: skip
    """For ``make book TEACHER=train``: one line saying the chapters will train ``profile``'s
    teacher here, or that the run cache holds one trained here already. A run cache that
    holds the shipped teacher is a :class:`ShippedTeacherError`: its cache key is the one a
    teacher trained here would have, so the chapters would read the shipped one (and the
    students trained from it) instead of training."""
    cache, relative = teacher_file(profile, runs)
    target, folder = cache / relative, relative.parent.name
    if not target.is_file():
        return f"the chapters train the teacher {folder} here"
    if origin(target, root) is not None:
        raise ShippedTeacherError(
            f"the run cache {cache} holds the shipped teacher {folder} and what was trained "
            "from it; to train your own, use an empty one: XDX_RUNS=<new folder> make book "
            "TEACHER=train")  # fmt: skip
    return f"the run cache holds the teacher {folder} trained here ({target.parent})"
