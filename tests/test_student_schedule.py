"""The student-schedule benchmark: its grid's points, read or refused, and a student trained
with its own learning rate and batch size against the session's teacher, untouched."""

from __future__ import annotations

import pytest
from scripts import load_script

from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.experiments import session as session_module
from xdx_lib.experiments.session import Session


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/student_schedule.py")


def test_a_point_is_lr_batch_epochs(bench):
    assert bench.parse_point("3e-2:128:64") == (0.03, 128, 64)
    assert all(bench.parse_point(p) for p in bench.DEFAULT_GRID)


@pytest.mark.parametrize("bad", ["1e-2:64", "1e-2:x:32", "0:64:32", "1e-2:0:32", "1e-2:64:-1"])
def test_a_malformed_point_is_one_line_and_a_non_zero_exit(bench, bad):
    with pytest.raises(SystemExit) as stop:
        bench.parse_point(bad)
    assert "--grid" in str(stop.value) and bad in str(stop.value)


def test_the_student_gets_the_points_schedule_and_the_sessions_teacher(bench, monkeypatch):
    data = Dataset("shapes", make_shapes(64, seed=0), make_shapes(16, seed=1), list("abcd"))
    session = Session(RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                                student="student_tiny", batch_size=32), data)  # fmt: skip
    teacher = session.teacher()
    schedules = []
    real = session_module.fit

    def spy(*args, **kwargs):
        schedules.append(kwargs["schedule"])
        return real(*args, **kwargs)

    monkeypatch.setattr(session_module, "fit", spy)
    run, seconds = bench.student_point(session, 3e-3, 16, 2, seed=120)
    (schedule,) = schedules
    assert (schedule.lr, schedule.batch_size, schedule.epochs, schedule.seed) == (3e-3, 16, 2, 120)
    assert len(run.history) == 2 and seconds > 0
    assert session.teacher() is teacher and session.cfg.lr != 3e-3  # the teacher's stays
