"""The studies of a session's students: the spread between seeds and the variant table,
scored on rank 0 alone and shared, and the map interventions' rows, cached beside each
student."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from xdx_lib import studies, tuning
from xdx_lib.config import RunConfig
from xdx_lib.data import Dataset, make_shapes
from xdx_lib.experiment import ExperimentConfig
from xdx_lib.interventions import INTERVENTIONS, map_interventions
from xdx_lib.session import Session


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(32, seed=0), make_shapes(12, seed=1), list("abcd"))


def test_variant_table_is_scored_on_rank_zero_and_shared(pretend_rank, broadcasts,
                                                         monkeypatch):  # fmt: skip
    trained = []

    def student(**changes):
        trained.append(changes)
        return SimpleNamespace(history=[{"epoch": 1}], seed=changes["seed"])

    def score(run, *args, **kwargs):
        log.append("score")
        return {"accuracy": 0.5 + run.seed / 10}

    session = SimpleNamespace(student=student, teacher=lambda: "teacher", data="data")
    monkeypatch.setattr(studies, "evaluate_model", score)
    variants = {"KD": {"method": "kd"}, "joint": {"schedule": "joint"}}
    log = pretend_rank(0)
    table0 = studies.variant_table(session, variants, seeds=[0, 1])
    assert log == ["score"] * 4 and len(trained) == 4
    log = pretend_rank(1)
    table1 = studies.variant_table(session, variants, seeds=[0, 1])
    assert log == [] and len(trained) == 8  # rank 1 trains (DDP) but does not score
    assert table1.equals(table0) and list(table1.accuracy) == [0.5, 0.6, 0.5, 0.6]


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
