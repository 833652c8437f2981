"""Aggregation over seeds, paired intervals and verdicts, on numbers worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from xdx_lib import report


def _frame():
    rows = []
    for seed, (a, b) in enumerate([(0.80, 0.78), (0.82, 0.79), (0.84, 0.83)]):
        rows.append({"group": "main", "method": "a", "seed": seed, "accuracy": a})
        rows.append({"group": "main", "method": "b", "seed": seed, "accuracy": b})
    rows.append({"group": "sweep", "method": "a", "seed": 0, "accuracy": 0.1})
    return pd.DataFrame(rows)


def test_paired_difference_by_hand():
    # d = [0.02, 0.03, 0.01]: mean 0.02, sd 0.01, t(0.975, 2) = 4.302653
    d = report.paired_difference(_frame(), "a", "b", "accuracy")
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert d["n"] == 3
    assert d["mean"] == pytest.approx(0.02)
    assert d["low"] == pytest.approx(0.02 - half, abs=1e-6)
    assert d["high"] == pytest.approx(0.02 + half, abs=1e-6)
    assert report.direction(d) == "no difference shown"  # the interval holds 0


def test_paired_difference_pairs_by_seed_and_ignores_other_groups():
    df = _frame()
    df.loc[(df.method == "b") & (df.seed == 2), "accuracy"] = float("nan")
    d = report.paired_difference(df, "a", "b", "accuracy")
    assert d["n"] == 2 and d["mean"] == pytest.approx(0.025)


def test_one_seed_has_no_interval_and_is_inconclusive():
    df = _frame()[lambda f: f.seed == 0]
    d = report.paired_difference(df, "a", "b", "accuracy")
    assert math.isnan(d["low"]) and d["mean"] == pytest.approx(0.02)
    assert report.claim_verdict([d]) == "inconclusive"
    assert "no interval" in report.format_interval(d)


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="no runs of 'c'"):
        report.paired_difference(_frame(), "c", "b", "accuracy")


def test_summary_mean_and_std_by_hand():
    table = report.summary(_frame(), ["accuracy"])
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", ("accuracy", "mean")] == pytest.approx(0.82)
    assert table.loc["a", ("accuracy", "std")] == pytest.approx(0.02)
    assert table.loc["b", ("n", "")] == 3
    shown = report.mean_std_strings(table)
    assert shown.loc["a", "accuracy"] == "0.820 ± 0.020"


def test_claim_verdicts():
    up = {"low": 0.01, "high": 0.03, "mean": 0.02, "n": 3, "a": "x", "b": "y"}
    down = {"low": -0.03, "high": -0.01, "mean": -0.02, "n": 3, "a": "x", "b": "y"}
    zero = {"low": -0.01, "high": 0.01, "mean": 0.0, "n": 3, "a": "x", "b": "y"}
    assert report.claim_verdict([up]) == "supported"
    assert report.claim_verdict([up, zero]) == "inconclusive"
    assert report.claim_verdict([up, down]) == "not supported"
    assert report.claim_verdict([up], against=[up]) == "not supported"
    assert report.claim_verdict([up], against=[zero]) == "supported"
    assert report.direction(up) == "x > y" and report.direction(down) == "x < y"


def test_results_frame_flattens_metrics():
    results = [{"label": "kd-s0", "group": "main", "method": "kd", "seed": 0,
                "metrics": {"accuracy": 0.5, "gradcam/pearson": 0.3}}]
    df = report.results_frame(results)
    assert df.loc[0, "gradcam/pearson"] == 0.3 and df.loc[0, "method"] == "kd"
