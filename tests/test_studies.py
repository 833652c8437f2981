"""The studies of a session's students: the spread between seeds and the variant table,
scored on rank 0 alone and shared, and the map interventions' rows, cached beside each
student."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from xdx_lib.analysis import selection
from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, Split, make_shapes
from xdx_lib.evaluation.interventions import INTERVENTIONS, map_interventions
from xdx_lib.experiments import studies, tuning
from xdx_lib.experiments.experiment_config import ExperimentConfig
from xdx_lib.experiments.session import Session


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(32, seed=0), make_shapes(12, seed=1), list("abcd"))


def test_variant_table_is_scored_on_rank_zero_and_shared(pretend_rank, broadcasts,
                                                         monkeypatch):  # fmt: skip
    trained = []

    def student(**changes):
        trained.append(changes)
        return SimpleNamespace(history=[{"epoch": 1}], seed=changes["seed"])

    def score(run, *args, split, **kwargs):
        log.append(f"score on {split}")
        return {"accuracy": 0.5 + run.seed / 10}

    data = SimpleNamespace(val=Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)))
    session = SimpleNamespace(student=student, teacher=lambda: "teacher", data=data)
    monkeypatch.setattr(studies, "evaluate_model", score)
    variants = {"KD": {"method": "kd"}, "joint": {"schedule": "joint"}}
    log = pretend_rank(0)
    table0 = studies.variant_table(session, variants, seeds=[0, 1])
    assert log == ["score on val"] * 4 and len(trained) == 4
    log = pretend_rank(1)
    table1 = studies.variant_table(session, variants, seeds=[0, 1])
    assert log == [] and len(trained) == 8  # rank 1 trains (DDP) but does not score
    assert table1.equals(table0) and list(table1.accuracy) == [0.5, 0.6, 0.5, 0.6]


def test_variant_table_without_a_validation_split_refuses_before_training(tiny):
    def student(**changes):
        raise AssertionError("a student trained for a table that cannot be scored")

    session = SimpleNamespace(student=student, teacher=lambda: "teacher", data=tiny)
    with pytest.raises(ValueError, match="no 'val' images.*val_size above 0"):
        studies.variant_table(session, {"KD": {"method": "kd"}}, seeds=[100])


def test_variant_table_scores_the_split_it_is_given(tiny):
    # The validation split is the test images under other labels, so only the accuracy
    # tells the two tables apart, and each is its own split's.
    relabelled = Split(tiny.test.x, (tiny.test.y + 1) % len(tiny.classes))
    data = Dataset("shapes", tiny.train, tiny.test, tiny.classes, val=relabelled)
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32)  # fmt: skip
    session = Session(cfg, data)
    on = {split: studies.variant_table(session, {"KD": {"method": "kd"}}, [100], split=split)
          for split in ("val", "test")}  # fmt: skip
    predicted = session.student(method="kd", seed=100).logits(tiny.test.x).argmax(1)
    assert on["val"].accuracy[0] == (predicted == relabelled.y).float().mean().item()
    assert on["test"].accuracy[0] == (predicted == tiny.test.y).float().mean().item()
    assert on["val"].accuracy[0] != on["test"].accuracy[0]
    assert on["val"].agreement[0] == on["test"].agreement[0]
    # each table says its split, and a chooser follows it, not the columns' names: the
    # XDistillation chapter's calls, handed the test table renamed to look like validation
    assert selection.split_of(on["val"]) == "val" and selection.split_of(on["test"]) == "test"
    disguised = on["test"].rename(columns={"accuracy": "val_accuracy"})
    with pytest.raises(selection.ChoiceFromTestError, match="computed on the 'test' split"):
        selection.highest_mean({"val": disguised}, by="variant", metric="val_accuracy")
    checks = selection.derived(pd.DataFrame({"ok": [True], "epoch_seconds": [1.0]},
                                            index=["KD"]), disguised)  # fmt: skip
    runs = disguised[["variant", "seed", "val_accuracy"]].rename(
        columns={"val_accuracy": "accuracy"})
    with pytest.raises(selection.ChoiceFromTestError, match="computed on the 'test' split"):
        selection.xdistill_variant({"val": checks}, {"val": runs}, ["ok"], "epoch_seconds",
                                   "KD")  # fmt: skip
    chosen = selection.xdistill_variant(
        {"val": selection.derived(checks, on["val"])}, {"val": on["val"]}, ["ok"],
        "epoch_seconds", "KD")
    assert chosen == "KD"


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
