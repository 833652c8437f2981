"""The teacher the repository ships: it is the ``book`` and ``colab`` profiles' teacher as
this code keys it, intact, loaded by the run cache without training; installed once,
refused with nothing written when damaged, skipped for a profile it does not serve; the
``xdx runs teacher`` command."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from xdx_lib.__main__ import main
from xdx_lib.core import shipped_teacher
from xdx_lib.core.config import PROFILES, RunConfig
from xdx_lib.core.run_archive import sha256_file
from xdx_lib.core.shipped_teacher import ShippedTeacherError, install, teacher_folder

ROOT = Path(__file__).resolve().parents[1]
RETRAIN = ("retrain it (python -m xdx_lib train-teacher --profile book --amp off), copy its "
           "model.pt into pretrained/teachers/ under the new folder and update the manifest")


@pytest.fixture(autouse=True)
def _in_the_project(monkeypatch):
    """The shipped folder is found from the project's folder."""
    monkeypatch.chdir(ROOT)


def _entry() -> tuple[str, dict]:
    folder = teacher_folder("book")
    teachers = shipped_teacher.read_manifest()["teachers"]
    assert folder in teachers, f"no shipped teacher is book's {folder}: {RETRAIN}"
    return folder, teachers[folder]


def test_the_shipped_teacher_is_the_book_and_colab_profiles_teacher():
    folder, entry = _entry()
    assert teacher_folder("colab") == folder  # one teacher, one key, for both profiles
    path = shipped_teacher.shipped_dir() / "teachers" / folder / "model.pt"
    assert sha256_file(path) == entry["sha256"]
    assert set(entry["profiles"]) == {"book", "colab"}


def test_the_run_cache_loads_it_without_training(tmp_path):
    """Installed, the teacher's job finds a finished checkpoint of its own key: it loads,
    with its 15 epochs' history, and the test accuracy the manifest quotes. (The stand-in
    data has no images: had the job trained, it would fail.)"""
    from xdx_lib.experiments.session import teacher_job, train_or_load

    folder, entry = _entry()
    assert "installed the shipped teacher" in install("book", runs=tmp_path / "runs")
    cfg = RunConfig(profile="book").resolved()
    data = types.SimpleNamespace(in_channels=1, num_classes=10)
    job = teacher_job(cfg, data)
    assert job.path == tmp_path / "runs" / "teachers" / folder / "model.pt"
    teacher = train_or_load(job, data)
    assert len(teacher.history) == PROFILES["book"].teacher_epochs
    assert round(teacher.history[-1]["test_acc"], 4) == entry["test_accuracy"]


def test_install_copies_the_same_bytes_once(tmp_path):
    folder, entry = _entry()
    runs = tmp_path / "runs"
    assert folder in install("book", runs=runs)
    target = runs / "teachers" / folder / "model.pt"
    assert sha256_file(target) == entry["sha256"]
    assert [p.name for p in target.parent.iterdir()] == ["model.pt"]  # no temporary left
    assert "in the run cache already" in install("colab", runs=runs)


def test_a_profile_it_does_not_serve_trains_its_own(tmp_path):
    said = install("smoke", runs=tmp_path / "runs")
    assert said.startswith("no shipped teacher for profile smoke") and "train it" in said
    assert not (tmp_path / "runs").exists()


def _fake_root(tmp_path: Path, data: bytes, sha: str) -> Path:
    """A project folder whose pretrained/ ships ``data`` for book's teacher, said to have
    the SHA-256 ``sha``."""
    folder = teacher_folder("book")
    shipped = tmp_path / "project" / "pretrained"
    (shipped / "teachers" / folder).mkdir(parents=True)
    (shipped / "teachers" / folder / "model.pt").write_bytes(data)
    manifest = {"teachers": {folder: {"sha256": sha, "profiles": ["book"]}}}
    (shipped / "manifest.json").write_text(json.dumps(manifest))
    return shipped.parent


@pytest.mark.parametrize("damage", ["changed", "missing", "no manifest"])
def test_a_damaged_shipped_teacher_is_refused_and_nothing_written(tmp_path, damage):
    root = _fake_root(tmp_path, b"weights", sha="0" * 64 if damage == "changed" else "")
    if damage != "changed":
        model = next((root / "pretrained" / "teachers").rglob("model.pt"))
        if damage == "missing":
            model.unlink()
        else:
            (root / "pretrained" / "manifest.json").unlink()
    with pytest.raises(ShippedTeacherError, match="git checkout -- pretrained"):
        install("book", runs=tmp_path / "runs", root=root)
    assert not (tmp_path / "runs").exists()


def test_an_intact_fake_is_installed_from_its_root(tmp_path):
    import hashlib

    root = _fake_root(tmp_path, b"weights", sha=hashlib.sha256(b"weights").hexdigest())
    assert "installed" in install("book", runs=tmp_path / "runs", root=root)
    assert next((tmp_path / "runs").rglob("model.pt")).read_bytes() == b"weights"


def test_the_command_installs_and_refuses_in_one_line(tmp_path, capsys):
    assert main(["runs", "teacher", "--profile", "book", "--runs", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("installed the shipped teacher") and out.count("\n") == 1
    assert main(["runs", "teacher", "--profile", "nope"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: unknown profile 'nope'") and err.count("\n") == 1


def test_training_ones_own_needs_a_run_cache_without_the_shipped_teacher(tmp_path, capsys):
    """``TEACHER=train``: an empty run cache trains it; one that holds the shipped teacher is
    refused (its key is a teacher trained here's, so the chapters would read it); one whose
    teacher was trained here is used."""
    from xdx_lib.core.shipped_teacher import check_trains_own

    folder, _ = _entry()
    runs = tmp_path / "runs"
    assert check_trains_own("book", runs) == f"the chapters train the teacher {folder} here"
    install("book", runs=runs)
    with pytest.raises(ShippedTeacherError, match="XDX_RUNS=<new folder> make book TEACHER=train"):
        check_trains_own("book", runs)
    assert main(["runs", "teacher", "--profile", "book", "--train", "--runs", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the run cache ") and err.count("\n") == 1
    (runs / "teachers" / folder / "model.pt").write_bytes(b"a teacher trained here")
    assert "trained here" in check_trains_own("book", runs)
    assert shipped_teacher.origin(runs / "teachers" / folder / "model.pt") is None


def test_make_book_refuses_an_unknown_teacher_setting():
    """``make book TEACHER=...`` takes ``shipped`` or ``train``; anything else stops the
    build before it sets anything up."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for value, code in (("trian", 2), ("train", 0), ("shipped", 0)):
        done = subprocess.run(["make", "-s", "teacher-check", f"TEACHER={value}"], cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == code, done.stderr
        if code:
            assert done.stderr.startswith(f"error: TEACHER={value}: use TEACHER=shipped")
