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


# --------------------------------------------------------------- claims, pairs and verdicts

T2 = 4.302653  # scipy.stats.t.ppf(0.975, 2), checked below


def _claims_frame():
    """Three methods, three seeds; the per-seed differences are written beside each claim."""
    runs = {  # method: (accuracy, agreement, gradcam/pearson) per seed
        "scratch": [(0.80, 0.80, 0.30), (0.80, 0.80, 0.30), (0.80, 0.80, 0.30)],
        "kd": [(0.82, 0.85, 0.31), (0.82, 0.86, 0.29), (0.82, 0.87, 0.30)],
        "xdistill": [(0.79, 0.87, 0.41), (0.78, 0.89, 0.49), (0.77, 0.88, 0.60)],
    }
    rows = []
    for method, per_seed in runs.items():
        for seed, (acc, agree, r) in enumerate(per_seed):
            rows.append({"group": "main", "method": method, "seed": seed, "accuracy": acc,
                         "agreement": agree, "gradcam/pearson": r})
    return pd.DataFrame(rows)


def test_t_quantile_used_by_hand():
    from scipy import stats

    assert stats.t.ppf(0.975, 2) == pytest.approx(T2, abs=1e-6)


def test_verdicts_supported_not_supported_inconclusive_by_hand():
    v = report.verdicts(_claims_frame())
    assert list(v.index) == ["C1", "C2", "C3"]
    # C1: agreement kd - scratch = [0.05, 0.06, 0.07]: mean 0.06, sd 0.01, half 0.0248 > 0;
    # Grad-CAM r kd - scratch = [0.01, -0.01, 0.00]: mean 0, the interval holds 0.
    assert v.loc["C1", "verdict"] == "supported"
    (agree,) = v.loc["C1", "needed"]
    half = T2 * 0.01 / math.sqrt(3)
    assert agree["mean"] == pytest.approx(0.06)
    assert agree["low"] == pytest.approx(0.06 - half, abs=1e-6)
    assert report.minimum_detectable_difference(agree) == pytest.approx(half, abs=1e-6)
    (expl,) = v.loc["C1", "against"]
    assert expl["mean"] == pytest.approx(0.0, abs=1e-12) and expl["low"] < 0 < expl["high"]
    # C2: accuracy xdistill - kd = [-0.03, -0.04, -0.05]: high = -0.04 + 0.0248 < 0.
    assert v.loc["C2", "verdict"] == "not supported"
    (acc,) = v.loc["C2", "needed"]
    assert acc["high"] == pytest.approx(-0.04 + half, abs=1e-6)
    # C3: agreement xdistill - kd = [0.02, 0.03, 0.01] (mean 0.02 < half 0.0248) and
    # Grad-CAM r = [0.10, 0.20, 0.30] (mean 0.2, half 0.248): both intervals hold 0.
    assert v.loc["C3", "verdict"] == "inconclusive"
    agree3, r3 = v.loc["C3", "needed"]
    assert report.minimum_detectable_difference(r3) == pytest.approx(T2 * 0.1 / math.sqrt(3))
    assert agree3["low"] < 0 < agree3["high"]


def test_verdict_strings_and_skipped_metric():
    v = report.verdicts(_claims_frame())
    c1 = v.loc["C1"]
    assert c1["evidence"].startswith("agreement kd - scratch +0.060 [+0.035, +0.085] (n=3)")
    assert "Grad-CAM r kd - scratch" in c1["evidence"]
    assert c1["detectable"] == "agreement kd - scratch: 0.025; Grad-CAM r kd - scratch: 0.025"
    # The deployed explanation's metric is absent from these results: a note, no crash.
    assert "deployed/pearson is not in these results" in v.loc["C3", "notes"]
    assert "skipped" in v.loc["C3", "evidence"]
    assert len(v.loc["C3", "needed"]) == 2


def test_adding_a_metric_to_a_claim_is_one_evidence():
    df = _claims_frame()
    df["deployed/pearson"] = df["gradcam/pearson"] + (df.method == "xdistill") * 0.5
    claim = report.Claim("C3", "more faithful", needed=(
        report.Evidence("xdistill", "kd", "deployed/pearson"),))
    v = report.verdicts(df, claims=[claim])
    # [0.60, 0.70, 0.80]: mean 0.7, half 0.248 > 0
    assert v.loc["C3", "verdict"] == "supported" and v.loc["C3", "notes"] == ""


def test_claim_without_any_evidence_is_inconclusive():
    claim = report.Claim("C9", "x", needed=(report.Evidence("kd", "scratch", "nope"),),
                         against=(report.Evidence("e2kd", "kd", "accuracy"),))
    v = report.verdicts(_claims_frame(), claims=[claim])
    assert v.loc["C9", "verdict"] == "inconclusive"
    assert "nope is not in these results" in v.loc["C9", "notes"]
    assert "no runs of e2kd" in v.loc["C9", "notes"]


def test_one_seed_verdicts_are_inconclusive_with_no_detectable_difference():
    v = report.verdicts(_claims_frame()[lambda f: f.seed == 0])
    assert set(v["verdict"]) == {"inconclusive"}
    assert "none (n=1, no interval)" in v.loc["C2", "detectable"]
    assert math.isnan(report.minimum_detectable_difference(v.loc["C2", "needed"][0]))


def test_paired_table_and_differences_skip_absent_pairs_and_metrics():
    df = _claims_frame()
    diffs = report.paired_differences(df)
    # of PAIRS only kd - scratch, xdistill - kd, xdistill - scratch ran; topk_iou is absent
    assert [(a, b) for a, b in zip(diffs.a, diffs.b)][::3] == [
        ("kd", "scratch"), ("xdistill", "kd"), ("xdistill", "scratch")]
    assert list(diffs.metric[:3]) == ["accuracy", "agreement", "gradcam/pearson"]
    row = diffs[(diffs.a == "xdistill") & (diffs.b == "kd") & (diffs.metric == "accuracy")]
    assert row["mean"].item() == pytest.approx(-0.04)
    assert row["detectable"].item() == pytest.approx(T2 * 0.01 / math.sqrt(3), abs=1e-6)
    table = report.paired_table(df, methods=["kd", "scratch"])
    assert list(table.index) == [("kd - scratch", "accuracy"), ("kd - scratch", "agreement"),
                                 ("kd - scratch", "Grad-CAM r")]
    assert table.loc[("kd - scratch", "agreement"), "reading"] == "kd > scratch"
    assert table.loc[("kd - scratch", "accuracy"), "difference [95% interval]"] == (
        "+0.020 [+0.020, +0.020] (n=3)")


def test_t4_table_by_hand():
    df = _claims_frame()
    df["option"], df["value"] = None, None
    sweep = pd.DataFrame([
        {"group": "sweep", "method": "xdistill", "seed": 0, "option": "beta", "value": 3.0,
         "accuracy": 0.70, "agreement": 0.75},
        {"group": "sweep", "method": "xdistill", "seed": 0, "option": "fusion", "value": "gate",
         "accuracy": 0.60, "agreement": 0.65},
    ])
    t4 = report.t4_table(pd.concat([df, sweep], ignore_index=True),
                         ["accuracy", "agreement", "cae/pearson"])
    assert list(t4.index) == [("default", ""), ("beta", 3.0), ("fusion", "gate")]
    assert list(t4.columns) == ["accuracy", "agreement"]  # cae/pearson is absent
    assert t4.loc[("default", ""), "accuracy"] == pytest.approx(0.79)  # xdistill, seed 0 only
    assert t4.loc[("fusion", "gate"), "agreement"] == pytest.approx(0.65)
    assert report.t4_table(df, ["accuracy"]).empty
    named = report.t4_table(pd.concat([df, sweep], ignore_index=True), ["agreement"],
                            labels={"agreement": "agreement with teacher"})
    assert list(named.columns) == ["agreement with teacher"]


# ------------------------------------------------------------------- tables for display


def _variants():
    """A variant table (no ``group`` column): variant v against KD on three seeds."""
    rows = []
    for seed, (v, kd) in enumerate([(0.80, 0.78), (0.82, 0.79), (0.84, 0.83)]):
        rows.append({"variant": "v", "seed": seed, "accuracy": v})
        rows.append({"variant": "KD", "seed": seed, "accuracy": kd})
    return pd.DataFrame(rows)


def test_summary_and_paired_difference_read_a_variant_table():
    table = report.summary(_variants(), ["accuracy"], group=None, by="variant")
    assert list(table.index) == ["v", "KD"] and table.index.name == "variant"
    assert table.loc["v", ("accuracy", "mean")] == pytest.approx(0.82)
    d = report.paired_difference(_variants(), "v", "KD", "accuracy", group=None, by="variant")
    same = report.paired_difference(_frame(), "a", "b", "accuracy")  # the same numbers
    assert {**d, "a": "a", "b": "b"} == same
    with pytest.raises(KeyError):
        report.summary(_variants(), ["accuracy"], by="variant")  # no group column: say None


def test_display_label_strips_then_renames():
    assert report.display_label("gradcam/topk_iou", {"topk_iou": "IoU"}, "gradcam/") == "IoU"
    assert report.display_label("gradcam/ssim", {"topk_iou": "IoU"}, "gradcam/") == "ssim"
    assert report.display_label("saliency/pearson", str.upper) == "SALIENCY/PEARSON"
    assert report.display_label("accuracy") == "accuracy"


def test_mean_std_table_names_columns_and_blanks_missing_means():
    df = _frame()
    df["cae/pearson"] = [0.5, None, 0.7, None, 0.6, None, None]  # only method a has CAE maps
    shown = report.mean_std_table(df, ["accuracy", "cae/pearson"], labels={"pearson": "CAE r"},
                                  strip="cae/", missing="")  # fmt: skip
    assert list(shown.columns) == ["accuracy", "CAE r", "seeds"]
    assert shown.loc["a", "CAE r"] == "0.600 ± 0.100" and shown.loc["b", "CAE r"] == ""
    assert shown.loc["b", "accuracy"] == "0.800 ± 0.026" and shown.loc["a", "seeds"] == 3
    assert report.mean_std_table(df, ["cae/pearson"]).loc["b", "cae/pearson"] == "nan"
    by_hand = report.mean_std_strings(report.summary(df, ["accuracy"]))
    assert report.mean_std_table(df, ["accuracy"]).equals(by_hand)


def test_mean_table_holds_the_means_as_numbers():
    table = report.mean_table(_frame(), ["accuracy"], labels={"accuracy": "acc"})
    assert list(table.columns) == ["acc"] and table.index.name == "method"
    assert table.loc["a", "acc"] == report.summary(_frame(), ["accuracy"]).loc["a", ("accuracy",
                                                                                    "mean")]


def test_reference_table_keeps_one_explainers_metrics():
    df = pd.DataFrame([
        {"group": "reference", "method": "centred blob", "gradcam/pearson": 0.4,
         "gradcam/topk_iou": 0.2, "saliency/pearson": 0.1},
        {"group": "main", "method": "kd", "seed": 0, "gradcam/pearson": 0.9},
    ])
    refs = report.reference_table(df, "gradcam/", labels={"topk_iou": "IoU"})
    assert list(refs.index) == ["centred blob"] and refs.index.name is None
    assert list(refs.columns) == ["pearson", "IoU"]
    assert refs.loc["centred blob", "IoU"] == 0.2


def test_faithfulness_table_by_judge():
    rows = []
    for seed in (0, 1):
        rows.append({"group": "main", "method": "kd", "seed": seed, "faith/deletion": 0.2,
                     "faith_teacher/deletion": 0.3 + seed / 10})
        rows.append({"group": "main", "method": "xdistill", "seed": seed, "faith/deletion": 0.1,
                     "cae_faith/deletion": 0.4, "faith_teacher/deletion": 0.5})
    df = pd.DataFrame(rows)
    model = report.faithfulness_table(df, "model")
    assert list(model.columns) == ["Grad-CAM deletion", "CAE deletion", "seeds"]
    assert model.loc["kd", "CAE deletion"] == ""  # KD has no CAE map
    assert model.loc["xdistill", "CAE deletion"] == "0.400 ± 0.000"
    teacher = report.faithfulness_table(df, "teacher")
    assert list(teacher.columns) == ["Grad-CAM deletion", "seeds"]
    assert teacher.loc["kd", "Grad-CAM deletion"] == "0.350 ± 0.071"
    with pytest.raises(ValueError, match="judge 'student'"):
        report.faithfulness_table(df, "student")


def test_scores_table_orders_names_and_counts():
    scores = {"kd": {"accuracy": 0.8, "parameters": 1234.0, "other": 1.0},
              "xdistill": {"accuracy": 0.9, "parameters": 2345.0, "cae/pearson": 0.7}}
    table = report.scores_table(scores, {"parameters": "parameters", "accuracy": "acc",
                                         "cae/pearson": "CAE r"})  # fmt: skip
    assert list(table.columns) == ["parameters", "acc", "CAE r"]
    assert table.index.name == "method" and table["parameters"].dtype.kind == "i"
    assert math.isnan(table.loc["kd", "CAE r"]) and table.loc["xdistill", "acc"] == 0.9
