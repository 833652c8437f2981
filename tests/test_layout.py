"""The run cache's layout: every folder and key from one module, keys that follow what
trains a model (a student's key holds its teacher's key, not its checkpoint file's hash)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xdx_lib.core import layout
from xdx_lib.core.cache import using_runs_dir
from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset
from xdx_lib.experiments.session import Session

PACKAGE = Path(__file__).resolve().parents[1] / "xdx_lib"


def _cfg(**kw) -> RunConfig:
    return RunConfig(**{"dataset": "shapes", "profile": "smoke", "teacher": "student_tiny",
                        "student": "student_tiny", **kw})  # fmt: skip


def test_keys_follow_the_fields_that_determine_them():
    cfg = _cfg()
    assert layout.teacher_key(cfg) == layout.teacher_key(dataclasses.replace(cfg, seed=7))
    assert layout.teacher_key(cfg) != layout.teacher_key(dataclasses.replace(cfg, teacher_seed=7))
    key = layout.student_key(cfg, ("alpha",), "kd", teacher="t1")
    assert key == layout.student_key(cfg, ("alpha",), "kd", teacher="t1")
    assert key != layout.student_key(cfg, ("alpha",), "kd", teacher="t2")
    assert key != layout.student_key(dataclasses.replace(cfg, alpha=0.1), ("alpha",), "kd", "t1")
    assert key == layout.student_key(dataclasses.replace(cfg, fusion="gate"), ("alpha",), "kd",
                                     "t1")  # fmt: skip


def test_folders_sit_under_the_run_cache(tmp_path):
    cfg = _cfg()
    with using_runs_dir(tmp_path):
        assert layout.teacher_path(cfg, "k").parent.parent == tmp_path / "teachers"
        assert layout.student_path(cfg, "kd", "k").parts[-3] == "students"
        assert layout.cae_path(cfg, "plain", "k").parts[-3] == "cae"
        assert layout.result_path("exp", "kd s0") == tmp_path / "exp" / "results" / "kd s0.json"
        assert layout.maps_path("gradcam", "a/b", {"n": 1}).parent == tmp_path / "maps"
        assert "/" not in layout.maps_path("gradcam", "a/b", {"n": 1}).name


def test_two_builds_of_one_commit_give_the_same_student_folders(shapes, tmp_path):
    """A teacher checkpoint stores its epochs' wall time, so its file hash differs between
    two builds; the students' folders must not."""
    folders = []
    for build in ("first", "second"):
        with using_runs_dir(tmp_path / build):
            s = Session(_cfg(), Dataset("shapes", *shapes, list("abcd")))
            folders.append((s.teacher().path.relative_to(tmp_path / build),
                            s.student(method="kd").path.relative_to(tmp_path / build)))
    assert folders[0] == folders[1]


def test_no_other_module_builds_a_cache_folder():
    """The run cache's folders are named in the layout alone (the grep a reviewer would run)."""
    names = ('"teachers"', '"students"', '"cae"', '"maps"', '"results"', '"interventions.json"')
    offenders = [f"{p.relative_to(PACKAGE)}: {n}" for p in PACKAGE.rglob("*.py")
                 if p.name != "layout.py" for n in names if f"/ {n}" in p.read_text()]  # fmt: skip
    assert not offenders
