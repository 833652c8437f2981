"""The studies of a session's students: the spread between seeds, scored on rank 0 alone
and shared, and the map interventions' rows, cached beside each student."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.evaluation.interventions import INTERVENTIONS, map_interventions
from xdx_lib.experiments import studies, tuning
from xdx_lib.experiments.experiment_config import ExperimentConfig
from xdx_lib.experiments.session import Session


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(32, seed=0), make_shapes(12, seed=1), list("abcd"))


def test_seed_spread_is_scored_on_rank_zero_and_shared(pretend_rank, broadcasts, monkeypatch):
    y = torch.tensor([0, 1, 0, 1])
    preds = {0: y, 1: torch.tensor([0, 1, 1, 1]), "teacher": y}
    session = SimpleNamespace(student=lambda method, seed: SimpleNamespace(seed=seed),
                              teacher=lambda: SimpleNamespace(seed="teacher"),
                              data=SimpleNamespace(test=SimpleNamespace(y=y)))  # fmt: skip

    def predicted(run, data):
        log.append("score")
        return preds[run.seed]

    monkeypatch.setattr(tuning, "Session", lambda cfg, **kw: session)
    monkeypatch.setattr(studies, "predicted_classes", predicted)
    exp = ExperimentConfig(name="ddp", run={"dataset": "shapes", "profile": "smoke"},
                                  methods=["kd"], seeds=[0, 1])  # fmt: skip
    log = pretend_rank(0)
    rows0 = studies.seed_spread_table(exp)
    assert log == ["score"] * 3
    log = pretend_rank(1)
    rows1 = studies.seed_spread_table(exp)
    assert log == [] and rows1 == rows0
    assert [(r["method"], r["quantity"], r["seeds"]) for r in rows1] == [
        ("kd", "accuracy", 2), ("kd", "agreement", 2)]


def test_intervention_rows_score_each_seed_once_and_read_them_back(tiny, monkeypatch):
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32, cae_width=4, cae_epochs=1)  # fmt: skip
    session = Session(cfg, tiny)
    rows = studies.intervention_rows(session, [0])
    assert [(r["seed"], r["intervention"]) for r in rows] == [(0, i) for i in INTERVENTIONS]
    run = session.student(method="xdistill", seed=0)
    direct = map_interventions(run, session.teacher(), tiny)
    assert {r["intervention"]: {"accuracy": r["accuracy"], "agreement": r["agreement"]}
            for r in rows} == direct  # fmt: skip
    assert (run.path.parent / "interventions.json").is_file()

    def no_scoring(*args, **kwargs):
        raise AssertionError("the cached interventions were scored again")

    monkeypatch.setattr(studies, "map_interventions", no_scoring)
    assert studies.intervention_rows(Session(cfg, tiny), [0]) == rows
