"""Students trained side by side in one-thread worker processes (xdx_lib.parallel)."""

from __future__ import annotations

import pytest

from xdx_lib import parallel
from xdx_lib import session as session_module
from xdx_lib.config import ConfigError, RunConfig
from xdx_lib.session import Session

TINY = dict(dataset="shapes", profile="smoke", train_subset=96, test_subset=32,
            student="student_tiny", teacher="student_tiny")  # fmt: skip


def test_workers_come_from_the_environment_or_the_cores(monkeypatch):
    monkeypatch.setenv(parallel.WORKERS_ENV, "3")
    assert parallel.default_workers(RunConfig()) == 3
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(parallel.WORKERS_ENV, bad)
        with pytest.raises(ConfigError, match="XDX_WORKERS"):
            parallel.default_workers(RunConfig())
    monkeypatch.delenv(parallel.WORKERS_ENV)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert parallel.default_workers(RunConfig(device="cpu")) == parallel.MAX_WORKERS
    monkeypatch.setattr(parallel, "resolve_device", lambda name: parallel.torch.device("cuda"))
    assert parallel.default_workers(RunConfig()) == 1  # on a GPU the session trains


def test_one_worker_or_one_missing_student_trains_nothing_here(monkeypatch):
    session = Session(RunConfig(**TINY))
    assert parallel.train_students(session, [{"seed": 0}, {"seed": 1}], workers=1) == 0
    session.student(seed=0)
    assert parallel.missing(session, [{"seed": 0}, {"seed": 1}, {"seed": 1}]) == [{"seed": 1}]
    assert parallel.train_students(session, [{"seed": 0}, {"seed": 1}], workers=2) == 0


def test_workers_train_the_missing_students_and_the_session_then_loads_them(monkeypatch):
    session = Session(RunConfig(**TINY))
    changes = [{"method": "scratch", "seed": 0}, {"method": "kd", "seed": 0},
               {"method": "kd_cae", "seed": 0}]
    assert parallel.missing(session, changes) == changes[:2]  # kd_cae is kd's student
    assert parallel.train_students(session, changes, workers=2) == 2
    assert parallel.missing(session, changes) == []

    def no_training(*args, **kwargs):
        raise AssertionError("the session trained a student the workers had trained")

    monkeypatch.setattr(session_module, "fit", no_training)
    kd = session.student(method="kd", seed=0)
    assert len(kd.history) == session.cfg.student_epochs


def test_a_student_that_fails_in_a_worker_raises_in_the_caller():
    session = Session(RunConfig(**TINY))
    with pytest.raises(Exception, match="fusion"):
        parallel.train_students(session, [{"seed": 0}, {"method": "xdistill", "seed": 0,
                                                         "fusion": "nonsense"}], workers=2)
