"""KD's options chosen on the validation split, and the one session that then serves the
tuned experiment."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from tiny_experiment import TINY, write_config

from xdx_lib.analysis import selection as choices
from xdx_lib.core.config import ConfigError
from xdx_lib.experiments import session as session_module
from xdx_lib.experiments import studies, tuning
from xdx_lib.experiments.experiment_config import load_experiment
from xdx_lib.experiments.runner import run_experiment
from xdx_lib.report import plateau_readings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs(tmp_path):
    return tmp_path / "runs"


def test_kd_is_tuned_on_the_validation_split(tmp_path, runs, monkeypatch):
    d = {**TINY, "run": {**TINY["run"], "val_size": 64}, "methods": ["kd"], "seeds": [0],
         "kd_grid": {"alpha": [0.0, 0.9], "temperature": [2, 4]}, "tune_seeds": [100, 101],
         "sweeps": {}, "localisation_methods": [], "claim_methods": [], "claim_seeds": []}
    exp = load_experiment(write_config(tmp_path, d))
    handed = []  # what the chooser is given: the validation split's scores alone
    real_scores = choices.validation_scores
    monkeypatch.setattr(choices, "validation_scores",
                        lambda scores, what="": handed.append(scores) or real_scores(scores, what))
    tuned, table = tuning.tune_kd(exp)
    assert [set(h) for h in handed] == [{"val"}]
    assert list(handed[0]["val"].columns) == ["point", "seed", "val_accuracy"]
    assert len(table) == 8 and set(table.seed) == {100, 101}
    assert "test_accuracy" in table  # reported beside the choice, not used in it
    means = table.groupby(["alpha", "temperature"]).val_accuracy.mean()
    assert (tuned.run["alpha"], tuned.run["temperature"]) == means.idxmax()
    assert type(tuned.run["temperature"]) is int  # the grid's own value, as written
    assert tuned.kd_grid == {} and tuning.tune_kd(tuned)[0] is tuned
    assert tuning.kd_grid_points(exp)[1] == {"alpha": 0.0, "temperature": 4}
    assert tuning.kd_grid_points(tuned) == []
    # one session serves the tuning and the tuned runs: the data is loaded once
    loads = []
    real_load = session_module.load_data
    monkeypatch.setattr(session_module, "load_data",
                        lambda cfg: loads.append(cfg) or real_load(cfg))
    same, session, again = tuning.tuned_session(exp)
    assert same.run == tuned.run and again.equals(table)
    assert (session.cfg.alpha, session.cfg.temperature) == means.idxmax()
    session.student(method="kd", seed=0)
    assert len(loads) == 1
    # ... and so do the experiment and the seed spread, given that session
    given = run_experiment(same, verbose=False, session=session)
    assert studies.seed_spread_table(same, session) == [] and len(loads) == 1
    with pytest.raises(ValueError, match="tuned_session returned"):
        run_experiment(exp, verbose=False, session=session)  # the untuned experiment
    # the experiment trains its KD students with the chosen values
    result = run_experiment(exp, verbose=False)
    kd = [r for r in result if r.get("method") == "kd"][0]
    assert kd["config"]["alpha"] == tuned.run["alpha"]
    assert [r.get("key") for r in given] == [r.get("key") for r in result]


def test_the_tune_seeds_are_not_claim_seeds(tmp_path):
    d = {**TINY, "run": {**TINY["run"], "val_size": 64}, "kd_grid": {"alpha": [0.5, 0.9]}}
    for seeds in ([0], [2], [1, 100]):  # TINY's seeds are 0, 1 and its claim seed 2
        with pytest.raises(ConfigError, match="also claim seeds"):
            load_experiment(write_config(tmp_path, {**d, "tune_seeds": seeds}))
    assert load_experiment(write_config(tmp_path, d)).tune_seeds == choices.tune_seeds(1)


@pytest.mark.parametrize("claim_methods, expected", [
    (["scratch", "kd", "kd_cae", "e2kd", "xdistill"], ["scratch", "kd", "e2kd", "xdistill"]),
    (["xdistill", "kd_cae"], ["scratch", "kd", "xdistill"]),  # kd_cae trains as kd
    ([], ["scratch", "kd"]),  # the premise's pair whatever the claims compare
])  # fmt: skip
def test_the_plateau_is_checked_for_every_student_the_claims_compare(claim_methods, expected):
    assert tuning.plateau_methods(SimpleNamespace(claim_methods=claim_methods)) == expected


def test_the_book_checks_the_plateau_of_four_kinds_of_student():
    exp = load_experiment(ROOT / "configs" / "fashion_mnist_book.yaml")
    assert "kd_cae" in exp.claim_methods
    assert tuning.plateau_methods(exp) == ["scratch", "kd", "e2kd", "xdistill"]

def test_validation_accuracy_reads_the_validation_split_alone():
    run = SimpleNamespace(logits=lambda x: x)  # the images are the logits
    val = SimpleNamespace(x=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
                          y=torch.tensor([0, 1, 1]))  # fmt: skip
    test = SimpleNamespace(x=val.x, y=torch.tensor([1, 0, 0]))
    data = SimpleNamespace(val=val, test=test)
    assert tuning.validation_accuracy(run, data) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no validation split"):
        tuning.validation_accuracy(run, SimpleNamespace(val=None, test=test))


def test_the_plateau_table_sets_the_test_split_beside_validation():
    val = SimpleNamespace(x=torch.tensor([[1.0, 0.0], [0.0, 1.0]]), y=torch.tensor([0, 1]))
    data = SimpleNamespace(val=val, test=None)

    def run(right: int, test_acc: float):  # ``right`` of the two validation images right
        logits = torch.tensor([[1.0, 0.0], [0.0, 1.0]] if right == 2 else [[1.0, 0.0]] * 2)
        return SimpleNamespace(logits=lambda x: logits, history=[{"test_acc": test_acc}])

    runs = {"scratch": {4: {110: run(1, 0.81)}, 8: {110: run(2, 0.83)}},
            "kd": {4: {110: run(2, 0.85)}, 8: {110: run(2, 0.86)}}}  # fmt: skip
    on_val = tuning.validation_by_schedule(runs, data)
    assert on_val.to_dict("index") == {("scratch", 110): {4: 0.5, 8: 1.0},
                                       ("kd", 110): {4: 1.0, 8: 1.0}}  # fmt: skip
    assert on_val.index.names == ["method", "seed"] and choices.split_of(on_val) == "val"
    # the chapters' plateau reading takes it; the test half, however labelled, it refuses
    assert plateau_readings.plateau_paragraph(on_val, 4, "a student")["plateaus"]
    with pytest.raises(choices.ChoiceFromTestError, match="do not say which split"):
        plateau_readings.plateau_paragraph(tuning.reported_by_schedule(runs), 4, "a student")
    assert tuning.reported_by_schedule(runs).to_dict("index") == {
        ("scratch", 110): {4: 0.81, 8: 0.83}, ("kd", 110): {4: 0.85, 8: 0.86}}
    table = tuning.plateau_table(on_val, runs)
    assert list(table.columns) == [(tuning.VALIDATION_COLUMN, 4), (tuning.VALIDATION_COLUMN, 8),
                                   (tuning.TEST_COLUMN, 4), (tuning.TEST_COLUMN, 8)]  # fmt: skip
    assert table.columns.names == ["", "epochs"]
    assert list(table.index) == [("scratch", 110), ("kd", 110)]
    assert table.loc[("scratch", 110), (tuning.TEST_COLUMN, 8)] == 0.83
    assert choices.is_test_metric(tuning.TEST_COLUMN)
    assert not choices.is_test_metric(tuning.VALIDATION_COLUMN)


def test_without_a_grid_the_experiment_comes_back_as_it_is(tmp_path):
    exp = load_experiment(write_config(tmp_path, TINY))
    same, table = tuning.tune_kd(exp)
    assert same is exp and table.empty and tuning.kd_grid_points(exp) == []


def test_grid_spread_lays_each_point_out_by_seed_with_its_mean_and_sd():
    table = pd.DataFrame({"alpha": [0.5, 0.5, 0.9, 0.9], "temperature": [2, 2, 2, 2],
                          "seed": [100, 101, 100, 101], "val_accuracy": [0.80, 0.84, 0.81, 0.81],
                          "test_accuracy": [0.7, 0.8, 0.9, 0.9]})  # fmt: skip
    spread = tuning.grid_spread(table)
    assert list(spread.columns) == ["val s100", "val s101", "val mean", "val sd",
                                    "test mean (reported only)"]  # fmt: skip
    assert list(spread.index) == [(0.5, 2), (0.9, 2)]
    assert spread.loc[(0.5, 2), "val mean"] == pytest.approx(0.82)
    assert spread.loc[(0.5, 2), "val sd"] == pytest.approx(0.04 / 2**0.5)
    assert spread.loc[(0.9, 2), "val sd"] == 0 and spread.loc[(0.9, 2), "val s101"] == 0.81


def test_the_plateau_runs_train_on_the_plateau_seeds_apart_from_every_choice(tmp_path):
    d = {**TINY, "run": {**TINY["run"], "val_size": 32}, "plateau_seeds": [110, 111]}
    exp = load_experiment(write_config(tmp_path, d))
    asked = []
    session = SimpleNamespace(student=lambda **kw: asked.append(kw) or kw)
    runs = tuning.plateau_runs(session, exp, [4, 8])
    assert list(runs) == tuning.plateau_methods(exp) and list(runs["kd"]) == [4, 8]
    assert {kw["seed"] for kw in asked} == {110, 111} and len(asked) == 2 * 2 * len(runs)
    for seeds, message in (([100], "also seeds a choice is made on"), ([2], "claim seeds"),
                           ([], "plateau_seeds is empty")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            load_experiment(write_config(tmp_path, {**d, "plateau_seeds": seeds}))
    with pytest.raises(ConfigError, match="also seeds a choice is made on"):
        load_experiment(write_config(tmp_path, {**d, "xdistill_seeds": [111]}))
    assert load_experiment(write_config(tmp_path, TINY | {"run": d["run"]})).plateau_seeds == [110]
