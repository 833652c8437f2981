"""The choosers pick on the validation split and refuse every test score."""

from __future__ import annotations

import inspect

import pandas as pd
import pytest

from xdx_lib.analysis import selection as choices
from xdx_lib.analysis.selection import ChoiceFromTestError

GRID = pd.DataFrame({"point": [0, 0, 1, 1, 2, 2], "seed": [100, 101] * 3,
                     "val_accuracy": [0.80, 0.84, 0.83, 0.83, 0.79, 0.70]})  # fmt: skip
PASSING = pd.DataFrame({"routing": [True, True, False], "accurate": [True, True, True],
                        "epoch_seconds": [3.0, 2.0, 1.0]},
                       index=["staged", "joint", "all"])  # fmt: skip
#: XDistillation's variants: the checks and cost of each, and its runs (two seeds each).
XD_CHECKS = pd.DataFrame({"ok": [True, True, True, True], "epoch_seconds": [2.0, 3.0, 2.1, 2.2]},
                         index=["default", "joint", "fusion: gate", "fusion: feature"])
XD_RUNS = pd.DataFrame({"variant": ["default", "joint", "fusion: gate", "fusion: feature"] * 2,
                        "seed": [100] * 4 + [101] * 4,
                        "accuracy": [0.85, 0.86, 0.87, 0.84, 0.85, 0.86, 0.86, 0.84]})
VARIANTS = pd.DataFrame({"pearson": [0.71, 0.78, 0.78, 0.64]},
                        index=["grid: plain", "grid: skips", "full: skips", "full: both"])

#: Each chooser with validation scores it accepts, and the call that makes it choose.
CHOOSERS = {
    "highest_mean": (GRID, lambda s: choices.highest_mean(s, by="point", metric="val_accuracy")),
    "best_option": (VARIANTS, lambda s: choices.best_option(s, metric="pearson")),
    "plateau": ({12: 0.80, 24: 0.83, 48: 0.834}, choices.plateau),
    "cheapest_passing": (PASSING, lambda s: choices.cheapest_passing(
        s, ["routing", "accurate"], cost="epoch_seconds")),
    "xdistill_variant": (XD_CHECKS, lambda s: choices.xdistill_variant(
        s, {"val": XD_RUNS}, ["ok"], "epoch_seconds", "default")),
}


def test_every_chooser_of_the_library_is_covered_here():
    public = {name for name, f in inspect.getmembers(choices, inspect.isfunction)
              if f.__module__ == choices.__name__ and not name.startswith("_")
              and "scores" in inspect.signature(f).parameters
              and name != "validation_scores"}  # fmt: skip
    assert public == set(CHOOSERS)


def test_the_choosers_pick_on_validation():
    best, means = choices.highest_mean({"val": GRID}, by="point", metric="val_accuracy")
    assert best == 1 and means[0] == pytest.approx(0.82) and means[2] == pytest.approx(0.745)
    tied = GRID.assign(val_accuracy=[0.8] * 6)
    assert choices.highest_mean({"val": tied}, by="point", metric="val_accuracy")[0] == 0
    assert choices.plateau({"val": {12: 0.80, 24: 0.83, 48: 0.834}}) == 24
    assert choices.plateau({"val": {12: 0.80, 24: 0.82, 48: 0.834}}) is None
    assert choices.cheapest_passing({"val": PASSING}, ["routing", "accurate"],
                                    cost="epoch_seconds") == "joint"  # fmt: skip
    none = PASSING.assign(accurate=False)
    assert choices.cheapest_passing({"val": none}, ["accurate"], cost="epoch_seconds") is None


def xd_variant(checks=XD_CHECKS, runs=XD_RUNS):
    return choices.xdistill_variant({"val": checks}, {"val": runs}, ["ok"], "epoch_seconds",
                                    "default")  # fmt: skip


def test_xdistill_variant_chooses_the_schedule_by_cost_then_the_fusion_by_accuracy():
    # the default is the cheapest schedule: then the fusion of highest mean accuracy
    assert xd_variant() == "fusion: gate"
    # a failing fusion is not chosen, however accurate
    gate_fails = XD_CHECKS.assign(ok=[True, True, False, True])
    assert xd_variant(gate_fails) == "default"
    # a cheaper schedule than the default is chosen on its cost alone, accuracy unread
    assert xd_variant(XD_CHECKS.assign(epoch_seconds=[3.0, 2.0, 1.0, 1.0])) == "joint"
    # the fusions' cost never makes them the schedule's choice
    assert xd_variant(XD_CHECKS.assign(ok=[False, False, True, True])) is None
    with pytest.raises(ChoiceFromTestError):
        choices.xdistill_variant({"val": XD_CHECKS}, {"test": XD_RUNS}, ["ok"],
                                 "epoch_seconds", "default")  # fmt: skip


def test_best_option_takes_the_highest_row_the_first_of_a_tie():
    assert choices.best_option({"val": VARIANTS}, "pearson") == "grid: skips"
    assert choices.best_option({"val": VARIANTS.iloc[::-1]}, "pearson") == "full: skips"
    gaps = VARIANTS.assign(pearson=[float("nan"), 0.5, 0.6, float("nan")])
    assert choices.best_option({"val": gaps}, "pearson") == "full: skips"
    with pytest.raises(ValueError, match="no finite pearson"):
        choices.best_option({"val": VARIANTS.assign(pearson=float("nan"))}, "pearson")
    with pytest.raises(ValueError, match=r"one row per option: \['grid: plain'\]"):
        choices.best_option({"val": pd.concat([VARIANTS, VARIANTS.iloc[:1]])}, "pearson")
    with pytest.raises(ValueError, match="no validation scores"):
        choices.best_option({"val": VARIANTS.iloc[:0]}, "pearson")


def test_the_validation_split_or_a_line_naming_val_size():
    class Data:
        val = "the validation images"

    assert choices.validation_split(Data()) == "the validation images"
    Data.val = None
    with pytest.raises(ValueError, match=r"the CAE variant is made on the validation split.*"
                                         r"set val_size \(--val-size"):  # fmt: skip
        choices.validation_split(Data(), "the CAE variant")


@pytest.mark.parametrize("name", sorted(CHOOSERS))
def test_a_chooser_handed_a_test_split_raises(name):
    val, choose = CHOOSERS[name]
    with pytest.raises(ChoiceFromTestError, match="test scores"):
        choose({"test": val})
    with pytest.raises(ChoiceFromTestError, match="test scores"):
        choose({"val": val, "test": val})
    with pytest.raises(ValueError, match="validation split alone"):
        choose({"train": val})
    with pytest.raises(TypeError, match="keyed by split"):
        choose(val)


@pytest.mark.parametrize("column", ["test_acc", "test_accuracy", "test accuracy",
                                    "Test/pearson", ("test", "pearson")])  # fmt: skip
@pytest.mark.parametrize("name", sorted(CHOOSERS))
def test_a_chooser_handed_a_test_metric_raises(name, column):
    val, choose = CHOOSERS[name]
    if isinstance(val, pd.DataFrame):
        leaked = val.assign(**{"x": 0.9}).rename(columns={"x": column})
    else:
        leaked = {**val, column: 0.9}
    with pytest.raises(ChoiceFromTestError, match="test metrics"):
        choose({"val": leaked})


def test_test_metrics_are_named_by_the_word():
    assert choices.is_test_metric("test_acc") and choices.is_test_metric(("t", "test"))
    assert not choices.is_test_metric("latest_val") and not choices.is_test_metric("contest")
    assert not choices.is_test_metric("val_accuracy") and not choices.is_test_metric(24)


def test_tune_seeds_are_disjoint_from_the_claims():
    assert choices.tune_seeds(2) == [choices.FIRST_TUNE_SEED, choices.FIRST_TUNE_SEED + 1]
    with pytest.raises(ValueError, match="at least one seed"):
        choices.tune_seeds(0)
    choices.check_disjoint([100], [0, 1, 2])
    with pytest.raises(ValueError, match=r"tune_seeds \[0\] are also claim seeds"):
        choices.check_disjoint([0, 100], [0, 1])
