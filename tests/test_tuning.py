"""KD's options chosen on the validation split, and the one session that then serves the
tuned experiment."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tiny_experiment import TINY, write_config

from xdx_lib import choices, studies, tuning
from xdx_lib import session as session_module
from xdx_lib.config import ConfigError
from xdx_lib.experiment import load_experiment
from xdx_lib.runner import run_experiment


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

def test_validation_accuracy_reads_the_validation_split_alone():
    run = SimpleNamespace(logits=lambda x: x)  # the images are the logits
    val = SimpleNamespace(x=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
                          y=torch.tensor([0, 1, 1]))  # fmt: skip
    test = SimpleNamespace(x=val.x, y=torch.tensor([1, 0, 0]))
    data = SimpleNamespace(val=val, test=test)
    assert tuning.validation_accuracy(run, data) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no validation split"):
        tuning.validation_accuracy(run, SimpleNamespace(val=None, test=test))


def test_without_a_grid_the_experiment_comes_back_as_it_is(tmp_path):
    exp = load_experiment(write_config(tmp_path, TINY))
    same, table = tuning.tune_kd(exp)
    assert same is exp and table.empty and tuning.kd_grid_points(exp) == []
