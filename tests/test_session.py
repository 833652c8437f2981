"""The session: one config's data, teacher and students, each trained or loaded once."""

from __future__ import annotations

import pytest

from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.experiments import session as session_module
from xdx_lib.experiments.session import Session
from xdx_lib.training import trained_model as trained


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(64, seed=0), make_shapes(16, seed=1), list("abcd"))


def _cfg(**kw):
    base = dict(dataset="shapes", profile="smoke", teacher="student_tiny",
                student="student_tiny", batch_size=32)  # fmt: skip
    return RunConfig(**{**base, **kw})


def _count_fits(monkeypatch) -> list:
    calls = []
    real = session_module.fit

    def spy(*args, **kwargs):
        calls.append(kwargs["schedule"].epochs)
        return real(*args, **kwargs)

    monkeypatch.setattr(session_module, "fit", spy)
    return calls


def test_students_are_made_once_per_session(tiny, monkeypatch):
    fits = _count_fits(monkeypatch)
    s = Session(_cfg(), tiny)
    kd = s.student(method="kd", seed=1)
    assert s.student(method="kd", seed=1) is kd
    assert len(fits) == 2  # the teacher and one student
    assert s.student(method="kd", seed=2) is not kd and len(fits) == 3
    assert s.teacher() is s.teacher() and len(fits) == 3  # the students' teacher, made once


def test_a_cached_student_is_loaded_without_preparing_its_method(tiny, monkeypatch):
    first = Session(_cfg(), tiny).student(method="xdistill")
    fits = _count_fits(monkeypatch)

    def no_prepare(*args, **kwargs):
        raise AssertionError("a cached student prepared its method")

    monkeypatch.setattr(session_module.Method, "prepare", no_prepare)
    again = Session(_cfg(), tiny).student(method="xdistill")
    assert fits == [] and again.key == first.key and again.history == first.history


def test_the_checkpoint_is_hashed_once(tiny, monkeypatch):
    s = Session(_cfg(), tiny)
    s.student(method="kd")
    hashed = []
    real = trained.file_hash
    monkeypatch.setattr(trained, "file_hash", lambda p: hashed.append(p) or real(p))
    fresh = Session(_cfg(), tiny)
    for seed in range(2):
        fresh.student(method="kd", seed=seed)
        trained.model_maps(fresh.teacher(), tiny.test.x[:4])
    assert len(hashed) <= 3  # the teacher once; each of the two students at most once


def test_another_methods_option_keeps_the_students_key(tiny):
    s = Session(_cfg(), tiny)
    kd = s.student(method="kd")
    assert s.student(method="kd", fusion="gate") is kd  # fusion is XDistillation's option
    assert s.student(method="kd", alpha=0.5).key != kd.key


def test_changes_that_move_the_data_or_teacher_need_another_session(tiny):
    s = Session(_cfg(), tiny)
    with pytest.raises(ValueError, match="teacher_epochs change the data or the teacher"):
        s.config(teacher_epochs=5)
    assert s.config(method="at", seed=4).seed == 4
