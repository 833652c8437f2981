"""Means over seeds, paired intervals and plateaus, on numbers worked out by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from frames import paired_frame
from scipy import stats as scipy_stats

from xdx_lib.analysis import stats

T975_2 = 4.302653  # scipy.stats.t.ppf(0.975, 2)


def test_paired_difference_by_hand():
    # d = [0.02, 0.03, 0.01]: mean 0.02, sd 0.01, t(0.975, 2) = 4.302653
    d = stats.paired_difference(paired_frame(), "a", "b", "accuracy")
    half = T975_2 * 0.01 / math.sqrt(3)
    assert isinstance(d, stats.PairedDifference)
    assert (d.a, d.b, d.metric, d.n) == ("a", "b", "accuracy", 3)
    assert d.mean == pytest.approx(0.02)
    assert d.sd == pytest.approx(0.01)
    assert d.lower == pytest.approx(0.02 - half, abs=1e-6)
    assert d.upper == pytest.approx(0.02 + half, abs=1e-6)
    assert d.half_width == pytest.approx(half, abs=1e-6)
    assert d.half_width == (d.upper - d.lower) / 2
    assert d.sign == 0  # the interval holds 0


def test_paired_difference_at_ninety_percent_is_narrower_by_the_t_ratio():
    wide = stats.paired_difference(paired_frame(), "a", "b", "accuracy")
    narrow = stats.paired_difference(paired_frame(), "a", "b", "accuracy", confidence=0.90)
    ratio = scipy_stats.t.ppf(0.95, 2) / scipy_stats.t.ppf(0.975, 2)
    assert narrow.half_width == pytest.approx(wide.half_width * ratio)
    assert narrow.mean == wide.mean


@pytest.mark.parametrize("lower, upper, sign", [
    (0.01, 0.03, 1), (-0.03, -0.01, -1), (-0.01, 0.01, 0), (0.0, 0.02, 0), (-0.02, 0.0, 0),
    (math.nan, math.nan, 0),
])  # fmt: skip
def test_sign_says_which_way_the_interval_shows(lower, upper, sign):
    d = stats.PairedDifference("a", "b", "x", 3, (lower + upper) / 2, 0.01, lower, upper)
    assert d.sign == sign


def test_paired_difference_pairs_by_seed_and_ignores_other_groups():
    df = paired_frame()
    df.loc[(df.method == "b") & (df.seed == 2), "accuracy"] = float("nan")
    d = stats.paired_difference(df, "a", "b", "accuracy")
    assert d.n == 2 and d.mean == pytest.approx(0.025)


def test_one_seed_has_no_interval():
    df = paired_frame()[lambda f: f.seed == 0]
    d = stats.paired_difference(df, "a", "b", "accuracy")
    assert math.isnan(d.lower) and math.isnan(d.upper) and math.isnan(d.sd)
    assert d.mean == pytest.approx(0.02) and d.n == 1
    assert math.isnan(d.half_width) and d.sign == 0


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="no runs of c"):
        stats.paired_difference(paired_frame(), "c", "b", "accuracy")


def test_duplicated_seed_and_method_is_one_clear_error():
    df = paired_frame()
    twice = df[(df.method == "b") & (df.seed.isin([0, 2]))].assign(accuracy=0.5)
    df = pd.concat([df, twice], ignore_index=True)
    message = "more than one run of b on seed 0, b on seed 2"
    with pytest.raises(ValueError, match=message):
        stats.paired_difference(df, "a", "b", "accuracy")
    with pytest.raises(ValueError, match=message):
        stats.summary(df, ["accuracy"])
    # the same seed and method in two groups is no duplicate
    assert stats.paired_difference(paired_frame(), "a", "b", "accuracy").n == 3


def test_metric_missing_for_one_method_names_it():
    df = paired_frame()
    df["agreement"] = np.where(df.method == "a", 0.9, np.nan)
    with pytest.raises(ValueError, match="agreement has no value for any run of b"):
        stats.paired_difference(df, "a", "b", "agreement")
    assert stats.unpaired_reason(df, "a", "b", "agreement", "main") == (
        "agreement has no value for any run of b")
    assert stats.unpaired_reason(df, "a", "b", "accuracy", "main") is None
    assert stats.unpaired_reason(df, "a", "b", "accuracy", "claims") == "no runs in group claims"
    assert stats.unpaired_reason(df, "a", "b", "nope", "main") == "nope is not in these results"


def test_summary_mean_and_std_by_hand():
    table = stats.summary(paired_frame(), ["accuracy"])
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", ("accuracy", "mean")] == pytest.approx(0.82)
    assert table.loc["a", ("accuracy", "std")] == pytest.approx(0.02)
    assert table.loc["b", ("n", "")] == 3


def test_results_frame_flattens_metrics():
    results = [{"label": "kd-s0", "group": "main", "method": "kd", "seed": 0,
                "metrics": {"accuracy": 0.5, "gradcam/pearson": 0.3}}]
    df = stats.results_frame(results)
    assert df.loc[0, "gradcam/pearson"] == 0.3 and df.loc[0, "method"] == "kd"


def _variants():
    """A variant table (no ``group`` column): variant v against KD on three seeds."""
    rows = []
    for seed, (v, kd) in enumerate([(0.80, 0.78), (0.82, 0.79), (0.84, 0.83)]):
        rows.append({"variant": "v", "seed": seed, "accuracy": v})
        rows.append({"variant": "KD", "seed": seed, "accuracy": kd})
    return pd.DataFrame(rows)


def test_summary_and_paired_difference_read_a_variant_table():
    table = stats.summary(_variants(), ["accuracy"], group=None, by="variant")
    assert list(table.index) == ["v", "KD"] and table.index.name == "variant"
    assert table.loc["v", ("accuracy", "mean")] == pytest.approx(0.82)
    d = stats.paired_difference(_variants(), "v", "KD", "accuracy", group=None, by="variant")
    same = stats.paired_difference(paired_frame(), "a", "b", "accuracy")  # the same numbers
    assert dataclasses.replace(d, a="a", b="b") == same
    with pytest.raises(KeyError):
        stats.summary(_variants(), ["accuracy"], by="variant")  # no group column: say None


# ------------------------------------------------------------------------------- power

T95_1 = 6.313752  # scipy.stats.t.ppf(0.95, 1), checked below
T95_2 = 2.919986  # scipy.stats.t.ppf(0.95, 2)
T95_9 = 1.833113  # scipy.stats.t.ppf(0.95, 9)
T80_9 = 0.883404  # scipy.stats.t.ppf(0.80, 9)


def test_t_quantiles_used_by_hand():
    assert scipy_stats.t.ppf(0.95, 1) == pytest.approx(T95_1, abs=1e-6)
    assert scipy_stats.t.ppf(0.95, 2) == pytest.approx(T95_2, abs=1e-6)
    assert scipy_stats.t.ppf(0.95, 9) == pytest.approx(T95_9, abs=1e-6)
    assert scipy_stats.t.ppf(0.80, 9) == pytest.approx(T80_9, abs=1e-6)
    assert scipy_stats.t.ppf(0.975, 2) == pytest.approx(T975_2, abs=1e-6)


# ------------------------------------------------------------------- map interventions


def _intervention_rows():
    """Three seeds of two interventions: accuracy drops by 0.10, 0.11, 0.09 when zeroed;
    agreement by 0.2 on every seed."""
    rows = []
    for seed, (own, zeroed) in enumerate([(0.80, 0.70), (0.82, 0.71), (0.84, 0.75)]):
        rows.append({"seed": seed, "intervention": "own", "accuracy": own, "agreement": 0.9})
        rows.append({"seed": seed, "intervention": "zeroed", "accuracy": zeroed,
                     "agreement": 0.7})  # fmt: skip
    return rows


def test_intervention_table_by_hand():
    table = stats.intervention_table(_intervention_rows(), confidence=0.95)
    assert list(table.index) == ["own", "zeroed"] and table.index.name == "intervention"
    assert list(table.columns) == [
        ("accuracy", "mean"), ("accuracy", "difference"), ("accuracy", "lower"),
        ("accuracy", "upper"), ("n", ""), ("agreement", "mean"), ("agreement", "difference"),
        ("agreement", "lower"), ("agreement", "upper")]  # fmt: skip
    zeroed = table.loc["zeroed"]
    # d = [-0.10, -0.11, -0.09]: mean -0.10, sd 0.01, t(0.975, 2) = 4.302653
    half = T975_2 * 0.01 / math.sqrt(3)
    assert zeroed[("accuracy", "mean")] == pytest.approx(0.72)
    assert zeroed[("accuracy", "difference")] == pytest.approx(-0.10)
    assert zeroed[("accuracy", "lower")] == pytest.approx(-0.10 - half, abs=1e-6)
    assert zeroed[("accuracy", "upper")] == pytest.approx(-0.10 + half, abs=1e-6)
    assert zeroed[("agreement", "difference")] == pytest.approx(-0.2)
    assert zeroed[("agreement", "lower")] == pytest.approx(-0.2)  # no spread: no width
    assert zeroed[("n", "")] == 3
    own = table.loc["own"]
    assert own[("accuracy", "mean")] == pytest.approx(0.82)
    assert own[("accuracy", "difference")] == own[("accuracy", "upper")] == 0


def test_intervention_table_with_two_seeds_by_hand():
    rows = [r for r in _intervention_rows() if r["seed"] < 2]
    # d = [-0.10, -0.11]: mean -0.105, sd 0.00707107, t(0.975, 1) = 12.7062
    half = 12.706205 * 0.01 / math.sqrt(2) / math.sqrt(2)
    zeroed = stats.intervention_table(rows, metrics=["accuracy"], confidence=0.95).loc["zeroed"]
    assert zeroed[("accuracy", "difference")] == pytest.approx(-0.105)
    assert zeroed[("accuracy", "upper")] == pytest.approx(-0.105 + half, abs=1e-6)
    one = stats.intervention_table([r for r in rows if r["seed"] == 0])
    assert math.isnan(one.loc["zeroed", ("accuracy", "lower")])
    assert one.loc["zeroed", ("n", "")] == 1


def test_intervention_table_reads_the_claims_one_sided_bounds_by_default():
    # d = [-0.10, -0.11, -0.09]: sd 0.01, t(0.95, 2) = 2.919986, the part rule's bounds
    table = stats.intervention_table(_intervention_rows(), metrics=["accuracy"])
    half = 2.919986 * 0.01 / math.sqrt(3)
    assert table.attrs["confidence"] == pytest.approx(0.90)
    assert table.loc["zeroed", ("accuracy", "lower")] == pytest.approx(-0.10 - half, abs=1e-6)
    assert stats.intervention_table(_intervention_rows(), confidence=0.95).attrs == {
        "confidence": 0.95}


def test_intervention_differences_pair_any_two_interventions_by_hand():
    rows = _intervention_rows() + [
        {"seed": s, "intervention": "flat", "accuracy": a, "agreement": 0.8}
        for s, a in enumerate([0.75, 0.74, 0.80])]  # fmt: skip
    d = stats.intervention_differences(rows, [("zeroed", "flat"), ("own", "flat")])
    # zeroed - flat = [-0.05, -0.03, -0.05]: mean -0.04333, sd 0.011547, t(0.95, 2)
    zf = d[("zeroed", "flat")]
    assert (zf.a, zf.b, zf.metric, zf.n) == ("zeroed", "flat", "accuracy", 3)
    assert zf.mean == pytest.approx(-0.043333, abs=1e-6)
    half = 2.919986 * 0.011547 / math.sqrt(3)
    assert zf.upper == pytest.approx(-0.043333 + half, abs=1e-5)
    assert d[("own", "flat")].mean == pytest.approx(0.0566667, abs=1e-6)
    agree = stats.intervention_differences(rows, [("own", "flat")], metric="agreement")
    assert agree[("own", "flat")].mean == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no rows of 'teacher true'"):
        stats.intervention_differences(rows, [("teacher true", "flat")])


@pytest.mark.parametrize("change, message", [
    (lambda rows: rows + [dict(rows[3])], "repeat zeroed on seed 1"),
    (lambda rows: rows[:-1], "seed 2 has no row of zeroed"),
    (lambda rows: [r for r in rows if r["intervention"] != "own"], "no rows of the baseline 'own'"),
    (lambda rows: [{k: v for k, v in r.items() if k != "agreement"} for r in rows],
     "missing: agreement"),
    (lambda rows: [], "no intervention rows"),
])  # fmt: skip
def test_intervention_table_errors(change, message):
    with pytest.raises(ValueError, match=message):
        stats.intervention_table(change(_intervention_rows()))


# ----------------------------------------------------------------------------- plateau


@pytest.mark.parametrize("accuracies, expected", [
    ({12: 0.8406, 24: 0.8526, 48: 0.8534}, 24),  # a scratch student: flat from 24 epochs on
    ({12: 0.8504, 24: 0.8699, 48: 0.8845}, None),  # a KD student: still climbing at 48
    ({12: 0.850, 24: 0.846}, 12),  # a shorter schedule ending above the longer one
    ({12: 0.845, 24: 0.850}, 12),  # exactly the tolerance: reached
    ({12: 0.8449, 24: 0.850}, None),  # just beyond it
])  # fmt: skip
def test_plateau_epochs(accuracies, expected):
    assert stats.plateau_epochs(accuracies) == expected


def test_plateau_epochs_refuses_one_schedule_and_nan():
    with pytest.raises(ValueError, match="at least two schedules"):
        stats.plateau_epochs({12: 0.85})
    with pytest.raises(ValueError, match="not finite for schedules"):
        stats.plateau_epochs({12: float("nan"), 24: 0.85})
