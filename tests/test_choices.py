"""XDistillation's options chosen on the validation split and written into the experiment
the claims read: the variant table's split, the choice's two steps, what it writes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from tiny_experiment import TINY, write_config

from xdx_lib.analysis import selection
from xdx_lib.core import layout
from xdx_lib.core.config import ConfigError, RunConfig
from xdx_lib.data.datasets import Dataset, Split, make_shapes
from xdx_lib.experiments import choices, tuning
from xdx_lib.experiments.experiment_config import load_experiment
from xdx_lib.experiments.session import Session
from xdx_lib.report.notebook import experiment_config_path, sizes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(32, seed=0), make_shapes(12, seed=1), list("abcd"))


def test_variant_table_is_scored_on_rank_zero_and_shared(pretend_rank, broadcasts,
                                                         monkeypatch):  # fmt: skip
    trained = []

    def student(**changes):
        trained.append(changes)
        return SimpleNamespace(history=[{"epoch": 1}], seed=changes["seed"])

    def score(run, teacher, data, split):
        log.append(f"score on {split}")
        return {"accuracy": 0.5 + run.seed / 10}

    data = SimpleNamespace(val=Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)))
    session = SimpleNamespace(student=student, teacher=lambda: "teacher", data=data)
    monkeypatch.setattr(choices, "candidate_scores", score)
    variants = {"KD": {"method": "kd"}, "joint": {"schedule": "joint"}}
    log = pretend_rank(0)
    table0 = choices.variant_table(session, variants, seeds=[0, 1])
    assert log == ["score on val"] * 4 and len(trained) == 4
    log = pretend_rank(1)
    table1 = choices.variant_table(session, variants, seeds=[0, 1])
    assert log == [] and len(trained) == 8  # rank 1 trains (DDP) but does not score
    assert table1.equals(table0) and list(table1.accuracy) == [0.5, 0.6, 0.5, 0.6]


def test_variant_table_without_a_validation_split_refuses_before_training(tiny):
    def student(**changes):
        raise AssertionError("a student trained for a table that cannot be scored")

    session = SimpleNamespace(student=student, teacher=lambda: "teacher", data=tiny)
    with pytest.raises(ValueError, match="no 'val' images.*val_size above 0"):
        choices.variant_table(session, {"KD": {"method": "kd"}}, seeds=[100])


def test_variant_table_scores_the_split_it_is_given(tiny):
    # The validation split is the test images under other labels, so only the accuracy
    # tells the two tables apart, and each is its own split's.
    relabelled = Split(tiny.test.x, (tiny.test.y + 1) % len(tiny.classes))
    data = Dataset("shapes", tiny.train, tiny.test, tiny.classes, val=relabelled)
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32)  # fmt: skip
    session = Session(cfg, data)
    on = {split: choices.variant_table(session, {"KD": {"method": "kd"}}, [100], split=split)
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


def test_a_candidates_scores_are_read_back_for_its_key_and_split(tiny, monkeypatch):
    data = Dataset("shapes", tiny.train, tiny.test, tiny.classes, val=make_shapes(12, seed=2))
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32)  # fmt: skip
    session = Session(cfg, data)
    first = choices.variant_table(session, {"KD": {"method": "kd"}}, [100])
    run = session.student(method="kd", seed=100)
    stored = layout.scores_path(run.path, "val")
    assert stored.is_file() and not layout.scores_path(run.path, "test").exists()
    real = choices.evaluate_model
    scored = []
    monkeypatch.setattr(choices, "evaluate_model",
                        lambda *a, **k: scored.append(k["split"]) or real(*a, **k))
    again = choices.variant_table(session, {"KD": {"method": "kd"}}, [100])
    assert scored == [] and again.drop(columns="history").equals(first.drop(columns="history"))
    choices.variant_table(session, {"KD": {"method": "kd"}}, [100], split="test")
    assert scored == ["test"]  # another split is another file
    stored.write_text('{"key": "another run", "scores": {"accuracy": 1.0}}')
    assert choices.variant_table(session, {"KD": {"method": "kd"}}, [100]).accuracy[0] == (
        first.accuracy[0])  # a file of another key is scored again, and overwritten
    assert scored == ["test", "val"]


def _choice(chosen, cae_epochs=6, undecided=False) -> choices.XDistillChoice:
    """A choice as :func:`choices.choose_xdistill` returns it, its evidence left empty."""
    checks = pd.DataFrame({c: [None if undecided else True] for c in choices.CHECKS},
                          index=[choices.DEFAULT_VARIANT])  # fmt: skip
    return choices.XDistillChoice([100], cae_epochs, 6, pd.DataFrame(), pd.DataFrame(), checks,
                                  {}, 0.8, 0.5, chosen)  # fmt: skip


def test_a_choice_writes_what_it_picked_and_nothing_when_the_defaults_stay(tmp_path):
    exp = load_experiment(write_config(tmp_path, {**TINY, "run": {**TINY["run"],
                                                                    "val_size": 32}}))  # fmt: skip
    kept = _choice(None, undecided=True)
    assert kept.undecided and not kept.decided and kept.variant == choices.DEFAULT_VARIANT
    assert kept.options == {} and choices.apply_choice(exp, kept) is exp
    gate = _choice("fusion: gate", cae_epochs=2)
    assert gate.decided and gate.options == {"fusion": "gate", "cae_epochs": 2}
    changed = choices.apply_choice(exp, gate)
    assert changed.base.fusion == "gate" and changed.base.cae_epochs == 2
    assert exp.base.fusion == "channel"  # the given experiment is left as it is


def test_the_cae_candidates_are_every_decoder_and_variant_the_configs_among_them():
    cfg = RunConfig(dataset="shapes", profile="smoke", cae_width=24)
    candidates = choices.cae_candidates(cfg)
    assert len(candidates) == 8 and candidates["grid: skips"] == {
        "cae_output": "grid", "cae_variant": "skips", "cae_width": 24}  # the config's own
    assert candidates["full: both"]["cae_width"] == choices.CAE_WIDTHS["full"]
    assert choices.cae_candidates(cfg, {"full": 4, "grid": 8})["grid: plain"]["cae_width"] == 8


def _cae_runs(r: dict, split="val") -> pd.DataFrame:
    """A :func:`choices.cae_table` as it returns it: validation r of each CAE by seed."""
    rows = [{"cae": name, "seed": 100 + i, "r": v, "parameters": 1, "train s": 0.0}
            for name, values in r.items() for i, v in enumerate(values)]  # fmt: skip
    return selection.scored_on(pd.DataFrame(rows), split)


def test_the_cae_choice_writes_a_cae_shown_better_and_nothing_otherwise(tmp_path, monkeypatch):
    cfg = RunConfig(dataset="shapes", profile="smoke")
    table = {}
    monkeypatch.setattr(choices, "cae_table", lambda session, cfg, candidates, seeds: table["t"])
    table["t"] = _cae_runs({"grid: skips": [0.80, 0.78], "full: both": [0.83, 0.81]})
    better = choices.choose_cae(None, cfg, [100, 101])
    assert better.decided and better.cae == "full: both" and better.gain.lower > 0
    assert better.options == {"cae_output": "full", "cae_variant": "both", "cae_width": 8}
    table["t"] = _cae_runs({"grid: skips": [0.80], "full: both": [0.83]})
    one_seed = choices.choose_cae(None, cfg, [100])
    assert not one_seed.decided and one_seed.cae == "grid: skips" and one_seed.options == {}
    table["t"] = _cae_runs({"grid: skips": [0.80, 0.78], "full: both": [0.70, 0.71]})
    leads = choices.choose_cae(None, cfg, [100, 101])
    assert leads.decided and leads.cae == "grid: skips" and leads.options == {}
    assert list(better.summary().index) == ["grid: skips", "full: both"]
    assert selection.split_of(better.summary()) == "val"
    # the choice is step 1 of XDistillation's: its options reach the experiment's claims
    exp = load_experiment(write_config(tmp_path, {**TINY, "run": {**TINY["run"],
                                                                    "val_size": 32}}))  # fmt: skip
    xd = _choice(None, undecided=True)
    xd.cae = better
    assert choices.apply_choice(exp, xd).base.cae_output == "full"
    xd.cae = one_seed
    assert choices.apply_choice(exp, xd) is exp


def test_the_cae_choice_refuses_test_scores_whatever_they_are_called(monkeypatch):
    disguised = _cae_runs({"grid: skips": [0.80, 0.78], "full: both": [0.83, 0.81]},
                          split="test").rename(columns={"r": "val r"})
    monkeypatch.setattr(choices, "CAE_METRIC", "val r")
    monkeypatch.setattr(choices, "cae_table", lambda *a: disguised)
    with pytest.raises(selection.ChoiceFromTestError, match="computed on the 'test' split"):
        choices.choose_cae(None, RunConfig(dataset="shapes", profile="smoke"), [100, 101])


def test_tuned_session_runs_what_was_chosen(tmp_path, monkeypatch):
    d = {**TINY, "run": {**TINY["run"], "val_size": 32}, "xdistill_seeds": [100]}
    exp = load_experiment(write_config(tmp_path, d))
    calls = []

    def choose(session, seeds):
        calls.append((session.cfg, list(seeds)))
        return _choice("fusion: gate")

    monkeypatch.setattr(tuning, "choose_xdistill", choose)
    tuned, session, _ = tuning.tuned_session(exp)
    assert calls[0][1] == [100] and calls[0][0] == exp.base
    assert tuned.run["fusion"] == "gate" and session.cfg.fusion == "gate"
    assert tuned.xdistill_choice.chosen == "fusion: gate"
    # the session belongs to the tuned experiment alone; tuning it again chooses nothing
    assert tuning.experiment_session(tuned, session) == (tuned, session)
    with pytest.raises(ValueError, match="tuned_session returned"):
        tuning.experiment_session(exp, session)
    assert tuning.tuned_session(tuned)[0].run == tuned.run and len(calls) == 1


def test_xdistill_seeds_are_checked_at_load(tmp_path):
    d = {**TINY, "run": {**TINY["run"], "val_size": 32}}
    for seeds, message in (([2], "also claim seeds"), ([100, 100], "repeats"),
                           (["a"], "should be an int")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            load_experiment(write_config(tmp_path, {**d, "xdistill_seeds": seeds}))
    without = {**d, "methods": ["scratch", "kd"], "sweeps": {}, "xdistill_seeds": [100]}
    with pytest.raises(ConfigError, match="no method is xdistill"):
        load_experiment(write_config(tmp_path, without))
    with pytest.raises(ConfigError, match="unknown field 'xdistill_choice'"):
        load_experiment(write_config(tmp_path, {**d, "xdistill_choice": "fusion: gate"}))


@pytest.mark.parametrize("profile", ["smoke", "book", "colab"])
def test_the_chapter_chooses_with_the_experiments_seeds(profile):
    # the XDistillation chapter shows the very choice its profile's claims then run
    exp = load_experiment(experiment_config_path("auto", profile))
    assert exp.xdistill_seeds == selection.tune_seeds(sizes(profile).variant_seeds)


def test_the_choice_is_made_on_validation_and_undecided_on_one_seed(tmp_path, monkeypatch):
    train, test = make_shapes(64, seed=0), make_shapes(16, seed=1)
    data = Dataset("shapes", train, test, list("abcd"), val=make_shapes(16, seed=2))
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32, cae_epochs=3)  # fmt: skip
    handed = []
    real = selection.validation_scores
    monkeypatch.setattr(selection, "validation_scores",
                        lambda scores, what="": handed.append(scores) or real(scores, what))
    choice = choices.choose_xdistill(Session(cfg, data), [100])
    assert all(selection.split_of(next(iter(h.values()))) == "val" for h in handed) and handed
    assert list(choice.pretraining.index) == [2, 3] and choice.default_epochs == 3
    # step 1, the CAE: every candidate pre-trained and scored on validation; one seed
    # cannot show another above the config's, which stays
    assert len(choice.cae.runs) == 8 and selection.split_of(choice.cae.runs) == "val"
    assert choice.cae.runs.r.notna().all() and choice.cae.options == {}
    assert choice.cae.chosen in (None, "grid: skips")
    assert list(choice.checks.index) == list(choices.VARIANTS)
    # one seed has no spread: the accuracy check is undecided, so nothing passes
    assert choice.checks[choices.CHECKS[2]].isna().all() and choice.undecided
    assert choice.chosen is None and choice.variant == choices.DEFAULT_VARIANT
    assert set(choice.runs.variant) == set(choices.CANDIDATES)
    # the candidates' config, as the chapter reports them from it: the same students
    assert choice.base.method == "xdistill" and choice.base.cae_epochs == choice.cae_epochs
    assert Session(choice.base, data).student(seed=100).key == (
        Session(cfg, data).student(method="xdistill", seed=100, cae_epochs=choice.cae_epochs,
                                   **choices.DEFAULTS).key)  # fmt: skip
    cost = choice.checks[choices.COST]
    assert cost["fusion: gate"] < cost[choices.DEFAULT_VARIANT]  # one input channel fewer
    assert cost["joint, cae_grad: all"] > cost["joint, cae_grad: exp"] > 0


def test_the_pretraining_keeps_the_configs_epochs_unless_a_shorter_one_passes(monkeypatch):
    r = {2: 0.70, 6: 0.80}
    monkeypatch.setattr(choices, "stand_alone_r", lambda session, cfg, seeds, e: r[e])
    cfg = SimpleNamespace(cae_epochs=6)
    assert choices.choose_pretraining(None, cfg, [100], reference=0.5)[0] == 6
    r[2] = 0.78  # within 0.03 of the longest, and 0.15 above the reference
    epochs, table = choices.choose_pretraining(None, cfg, [100], reference=0.5)
    assert epochs == 2 and selection.split_of(table) == "val"
    assert choices.choose_pretraining(None, cfg, [100], reference=0.7)[0] == 6  # 0.78 < 0.85


def test_the_checks_are_stamped_with_their_scores_split():
    runs = pd.DataFrame({"variant": ["KD", "KD", "a", "a"], "seed": [100, 101] * 2,
                         "accuracy": [0.80, 0.82, 0.81, 0.83], "cae/pearson": [None, None, .8, .8]})
    x = torch.rand(2, 1, 16, 16)
    cfgs = {"a": RunConfig(dataset="shapes", profile="smoke", method="xdistill",
                           student="student_tiny")}  # fmt: skip
    for split in ("val", "test"):
        checks, against = choices.variant_checks(selection.scored_on(runs, split), cfgs, 0.8,
                                                 0.5, x, 4)  # fmt: skip
        assert selection.split_of(checks) == split and against["a"].n == 2
    assert bool(checks.loc["a", choices.CHECKS[2]]) is True  # +0.01 on both seeds
    with pytest.raises(selection.ChoiceFromTestError, match="'test' split"):
        selection.xdistill_variant({"val": checks}, {"val": runs}, list(choices.CHECKS),
                                   choices.COST, "a")  # fmt: skip
