"""Aggregation over seeds, paired intervals and verdicts, on numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

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
    assert d["sd"] == pytest.approx(0.01)
    assert d["low"] == pytest.approx(0.02 - half, abs=1e-6)
    assert d["high"] == pytest.approx(0.02 + half, abs=1e-6)
    assert report.smallest_significant_difference(d) == pytest.approx(half, abs=1e-6)
    assert report.direction(d) == "no difference shown"  # the interval holds 0


def test_paired_difference_pairs_by_seed_and_ignores_other_groups():
    df = _frame()
    df.loc[(df.method == "b") & (df.seed == 2), "accuracy"] = float("nan")
    d = report.paired_difference(df, "a", "b", "accuracy")
    assert d["n"] == 2 and d["mean"] == pytest.approx(0.025)


def test_one_seed_has_no_interval():
    df = _frame()[lambda f: f.seed == 0]
    d = report.paired_difference(df, "a", "b", "accuracy")
    assert math.isnan(d["low"]) and math.isnan(d["sd"]) and d["mean"] == pytest.approx(0.02)
    assert "no interval" in report.format_interval(d)
    assert math.isnan(report.smallest_significant_difference(d))
    assert math.isnan(report.detectable_difference(1, d["sd"]))


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="no runs of c"):
        report.paired_difference(_frame(), "c", "b", "accuracy")


def test_duplicated_seed_and_method_is_one_clear_error():
    df = _frame()
    twice = df[(df.method == "b") & (df.seed.isin([0, 2]))].assign(accuracy=0.5)
    df = pd.concat([df, twice], ignore_index=True)
    message = "more than one run of b on seed 0, b on seed 2"
    with pytest.raises(ValueError, match=message):
        report.paired_difference(df, "a", "b", "accuracy")
    with pytest.raises(ValueError, match=message):
        report.summary(df, ["accuracy"])
    with pytest.raises(ValueError, match="more than one run of scratch on seed 0"):
        report.verdicts(df.replace({"a": "kd", "b": "scratch"}))
    # the same seed and method in two groups is no duplicate
    assert report.paired_difference(_frame(), "a", "b", "accuracy")["n"] == 3


def test_metric_missing_for_one_method_names_it():
    df = _frame()
    df["agreement"] = np.where(df.method == "a", 0.9, np.nan)
    with pytest.raises(ValueError, match="agreement has no value for any run of b"):
        report.paired_difference(df, "a", "b", "agreement")
    # the claims skip such a part with the reason; the table leaves it out
    claim = report.Claim("C", "x", parts=(report.Evidence("a", "b", "agreement", 0.01),))
    v = report.verdicts(df, claims=[claim])
    assert v.loc["C", "verdict"] == "inconclusive"
    assert v.loc["C", "notes"] == "agreement a - b skipped: agreement has no value for any run of b"
    diffs = report.paired_differences(df, pairs=[("a", "b")], metrics=["accuracy", "agreement"])
    assert list(diffs.metric) == ["accuracy"]


def test_summary_mean_and_std_by_hand():
    table = report.summary(_frame(), ["accuracy"])
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", ("accuracy", "mean")] == pytest.approx(0.82)
    assert table.loc["a", ("accuracy", "std")] == pytest.approx(0.02)
    assert table.loc["b", ("n", "")] == 3
    shown = report.mean_std_strings(table)
    assert shown.loc["a", "accuracy"] == "0.820 ± 0.020"


def test_results_frame_flattens_metrics():
    results = [{"label": "kd-s0", "group": "main", "method": "kd", "seed": 0,
                "metrics": {"accuracy": 0.5, "gradcam/pearson": 0.3}}]
    df = report.results_frame(results)
    assert df.loc[0, "gradcam/pearson"] == 0.3 and df.loc[0, "method"] == "kd"


# ------------------------------------------------------------------ the rule, part by part

M = 0.006


@pytest.mark.parametrize("lower, upper, reading", [
    (0.010, 0.030, "supported"),
    (-0.030, -0.010, "opposite"),
    (-0.010, 0.010, "inconclusive"),
    (-0.004, 0.005, "no difference beyond the margin"),
    # significant and inside the margin: the margin wins, in both directions
    (0.001, 0.004, "no difference beyond the margin"),
    (-0.004, -0.001, "no difference beyond the margin"),
    # a bound touching 0 shows nothing
    (0.0, 0.020, "inconclusive"),
    (-0.020, 0.0, "inconclusive"),
    # a bound touching the margin is not inside it
    (0.002, M, "supported"),
    (-M, -0.002, "opposite"),
    (-M, 0.002, "inconclusive"),
    (math.nan, math.nan, "inconclusive"),
])  # fmt: skip
def test_part_verdict_higher(lower, upper, reading):
    assert report.part_verdict(lower, upper, M) == reading


@pytest.mark.parametrize("lower, upper, reading", [
    (-0.004, 0.005, "supported"),   # small either way: inside the margin
    (0.001, 0.005, "supported"),    # higher, but by less than the margin
    (-0.050, -0.020, "supported"),  # lower
    (-0.010, M, "inconclusive"),    # the upper bound touches the margin
    (0.000, 0.020, "inconclusive"),  # not significant is not enough: the bound passes M
    (M, 0.020, "inconclusive"),     # the lower bound touches the margin
    (0.007, 0.020, "opposite"),     # higher beyond the margin
    (math.nan, math.nan, "inconclusive"),
])  # fmt: skip
def test_part_verdict_not_higher(lower, upper, reading):
    assert report.part_verdict(lower, upper, M, needs="not higher") == reading


@pytest.mark.parametrize("readings, verdict", [
    (["supported"], "supported"),
    (["supported", "supported"], "supported"),
    (["supported", "opposite"], "not supported"),
    (["opposite", "inconclusive"], "not supported"),
    (["supported", "no difference beyond the margin"], "partly supported"),
    (["supported", "inconclusive"], "partly supported"),
    (["supported", "skipped"], "partly supported"),
    (["no difference beyond the margin"], "not supported"),
    (["no difference beyond the margin", "inconclusive"], "not supported"),
    (["inconclusive"], "inconclusive"),
    (["skipped"], "inconclusive"),
    ([], "inconclusive"),
])  # fmt: skip
def test_claim_verdict(readings, verdict):
    assert report.claim_verdict(readings) == verdict


def test_evidence_checks_its_need_and_margin():
    with pytest.raises(ValueError, match="needs"):
        report.Evidence("a", "b", "accuracy", 0.01, needs="lower")
    with pytest.raises(ValueError, match="margin"):
        report.Evidence("a", "b", "accuracy", 0.0)
    with pytest.raises(ValueError, match="needs"):
        report.part_verdict(0.0, 1.0, 0.1, needs="lower")


def test_claims_carry_the_margins_the_method_chapter_states():
    got = {c.name: [(ev.label, ev.needs, ev.margin) for ev in c.parts] for c in report.CLAIMS}
    assert got == {
        "C1": [("agreement kd - scratch", "higher", 0.006),
               ("Grad-CAM r kd - scratch", "not higher", 0.03)],
        "C2": [("accuracy xdistill - kd", "higher", 0.006)],
        "C3": [("agreement xdistill - kd", "higher", 0.006),
               ("Grad-CAM r xdistill - kd", "higher", 0.03),
               ("deployed explanation r xdistill - kd", "higher", 0.03)],
    }  # fmt: skip


# ------------------------------------------------------------------------------- power

T95_1 = 6.313752  # scipy.stats.t.ppf(0.95, 1), checked below
T95_2 = 2.919986  # scipy.stats.t.ppf(0.95, 2)
T95_9 = 1.833113  # scipy.stats.t.ppf(0.95, 9)
T80_9 = 0.883404  # scipy.stats.t.ppf(0.80, 9)


def test_t_quantiles_used_by_hand():
    assert stats.t.ppf(0.95, 1) == pytest.approx(T95_1, abs=1e-6)
    assert stats.t.ppf(0.95, 2) == pytest.approx(T95_2, abs=1e-6)
    assert stats.t.ppf(0.95, 9) == pytest.approx(T95_9, abs=1e-6)
    assert stats.t.ppf(0.80, 9) == pytest.approx(T80_9, abs=1e-6)


def test_detectable_difference_at_ten_seeds_is_about_1_47_times_the_threshold():
    sd, n = 0.01, 10
    threshold = T95_9 * sd / math.sqrt(n)  # the one-sided 95 % bound's half-width
    delta = report.detectable_difference(n, sd)
    # the usual approximation: (t_0.95 + t_0.80) sd / sqrt(n), 1.482 times the threshold
    assert delta / threshold == pytest.approx((T95_9 + T80_9) / T95_9, abs=0.015)
    assert delta / threshold == pytest.approx(1.4712, abs=1e-3)
    # the exact power at the returned difference, by scipy's noncentral t
    assert stats.nct.sf(T95_9, n - 1, delta * math.sqrt(n) / sd) == pytest.approx(0.80, abs=1e-6)
    # and by simulation: the one-sided test rejects about 80 % of the time
    d = np.random.default_rng(0).normal(delta, sd, size=(40_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    assert (t > T95_9).mean() == pytest.approx(0.80, abs=0.01)


def test_detectable_difference_edge_cases():
    assert report.detectable_difference(3, 0.0) == 0.0
    assert math.isnan(report.detectable_difference(1, 0.01))
    assert math.isnan(report.detectable_difference(3, math.nan))
    # n = 2: one degree of freedom, a heavy tail; still 80 % power at the answer
    delta = report.detectable_difference(2, 0.01)
    assert stats.nct.sf(T95_1, 1, delta * math.sqrt(2) / 0.01) == pytest.approx(0.80, abs=1e-6)
    assert delta > T95_1 * 0.01 / math.sqrt(2)


# ------------------------------------------------------------------- verdicts from results


def _claims_frame(group="main", seeds=3):
    """Three methods, three seeds; the per-seed differences are written beside each claim."""
    runs = {  # method: (accuracy, agreement, gradcam/pearson) per seed
        "scratch": [(0.80, 0.80, 0.30), (0.80, 0.80, 0.30), (0.80, 0.80, 0.30)],
        "kd": [(0.82, 0.85, 0.31), (0.82, 0.86, 0.29), (0.82, 0.87, 0.30)],
        "xdistill": [(0.79, 0.87, 0.41), (0.78, 0.89, 0.49), (0.77, 0.88, 0.60)],
    }
    rows = []
    for method, per_seed in runs.items():
        for seed, (acc, agree, r) in enumerate(per_seed[:seeds]):
            rows.append({"group": group, "method": method, "seed": seed, "accuracy": acc,
                         "agreement": agree, "gradcam/pearson": r})
    return pd.DataFrame(rows)


H3 = T95_2 * 0.01 / math.sqrt(3)  # one-sided half-width of three differences with sd 0.01


def test_verdicts_by_hand():
    v = report.verdicts(_claims_frame())
    assert list(v.index) == ["C1", "C2", "C3"]
    # C1: agreement kd - scratch = [0.05, 0.06, 0.07]: lower 0.06 - H3 = 0.043 > 0;
    # Grad-CAM r kd - scratch = [0.01, -0.01, 0.00]: upper 0 + H3 = 0.017 < 0.03.
    assert v.loc["C1", "verdict"] == "supported"
    agree, expl = v.loc["C1", "parts"]
    assert agree["lower"] == pytest.approx(0.06 - H3, abs=1e-6)
    assert agree["significant"] == pytest.approx(H3, abs=1e-6)
    assert agree["verdict"] == "supported"
    assert expl["upper"] == pytest.approx(H3, abs=1e-6) and expl["verdict"] == "supported"
    # C2: accuracy xdistill - kd = [-0.03, -0.04, -0.05]: upper -0.04 + H3 < 0, lower
    # -0.04 - H3 below -0.006.
    assert v.loc["C2", "verdict"] == "not supported"
    (acc,) = v.loc["C2", "parts"]
    assert acc["upper"] == pytest.approx(-0.04 + H3, abs=1e-6) and acc["verdict"] == "opposite"
    # C3: agreement xdistill - kd = [0.02, 0.03, 0.01]: lower 0.02 - H3 = 0.0031 > 0, which
    # the 95 % two-sided interval would not show; Grad-CAM r = [0.10, 0.20, 0.30]: lower
    # 0.2 - 10 H3 = 0.031 > 0; the deployed r is not in these results: partly supported.
    assert v.loc["C3", "verdict"] == "partly supported"
    agree3, r3, deployed = v.loc["C3", "parts"]
    assert agree3["lower"] == pytest.approx(0.02 - H3, abs=1e-6)
    assert agree3["verdict"] == "supported"
    assert r3["lower"] == pytest.approx(0.2 - 10 * H3, abs=1e-6) and r3["verdict"] == "supported"
    assert deployed["verdict"] == "skipped" and deployed["n"] == 0
    assert v.loc["C3", "notes"] == ("deployed explanation r xdistill - kd skipped: "
                                    "deployed/pearson is not in these results")  # fmt: skip


def test_evidence_and_power_strings():
    v = report.verdicts(_claims_frame())
    assert v.loc["C1", "evidence"] == (
        "agreement kd - scratch +0.060 [+0.043, +0.077] (one-sided 95 % bounds, n=3; "
        "margin 0.006): supported; Grad-CAM r kd - scratch +0.000 [-0.017, +0.017] "
        "(one-sided 95 % bounds, n=3; margin 0.03): supported")
    # the detectable difference: noncentrality 3.979 at 2 degrees of freedom, times sd/sqrt(3)
    assert v.loc["C2", "power"] == (
        "accuracy xdistill - kd: significant from 0.017, 80 % power at 0.023")
    assert v.loc["C3", "power"].endswith("deployed explanation r xdistill - kd: skipped")
    (acc,) = v.loc["C2", "parts"]
    assert stats.nct.sf(T95_2, 2, acc["detectable"] * math.sqrt(3) / 0.01) == pytest.approx(0.8)


def test_significant_difference_inside_the_margin_reads_no_difference():
    df = _claims_frame()
    # accuracy xdistill - kd = [0.001, 0.002, 0.003]: mean 0.002, sd 0.001, bounds
    # 0.002 -+ 0.1 H3 = [0.00031, 0.00369]: nonzero, and inside +-0.006
    kd = df.method == "kd"
    df.loc[df.method == "xdistill", "accuracy"] = df.loc[kd, "accuracy"].to_numpy() + [
        0.001, 0.002, 0.003]
    v = report.verdicts(df)
    (acc,) = v.loc["C2", "parts"]
    assert acc["lower"] == pytest.approx(0.002 - 0.1 * H3, abs=1e-7) and acc["lower"] > 0
    assert acc["verdict"] == "no difference beyond the margin"
    assert acc["note"] == "xdistill > kd, but within the margin"
    assert v.loc["C2", "verdict"] == "not supported"
    assert "no difference beyond the margin (xdistill > kd, but within the margin)" in (
        v.loc["C2", "evidence"])


def test_two_seeds_by_hand():
    df = _claims_frame(seeds=2)
    # accuracy xdistill - kd = [-0.03, -0.04]: mean -0.035, sd 0.00707, bounds
    # -0.035 -+ 6.313752 * 0.00707 / sqrt(2) = -0.035 -+ 0.0316: [-0.0666, -0.0034]
    (acc,) = report.verdicts(df).loc["C2", "parts"]
    half = T95_1 * (0.01 / math.sqrt(2)) / math.sqrt(2)
    assert acc["n"] == 2 and acc["mean"] == pytest.approx(-0.035)
    assert acc["significant"] == pytest.approx(half, abs=1e-6)
    assert acc["upper"] == pytest.approx(-0.035 + half, abs=1e-6)
    assert acc["verdict"] == "opposite"
    # agreement kd - scratch = [0.05, 0.06]: lower 0.055 - 0.0316 = 0.0234 > 0
    agree, _ = report.verdicts(df).loc["C1", "parts"]
    assert agree["lower"] == pytest.approx(0.055 - half, abs=1e-6)
    assert agree["verdict"] == "supported"


def test_zero_variance_and_bounds_touching_by_hand():
    # exact binary fractions, so the per-seed differences are exactly equal
    rows = [{"group": "main", "method": m, "seed": s, "x": x}
            for s in range(3) for m, x in (("p", 0.5), ("q", 0.25), ("r", 0.25))]
    df = pd.DataFrame(rows)
    p_q = report.judge_part(df, "C", report.Evidence("p", "q", "x", 0.125), "main")
    assert (p_q["mean"], p_q["sd"], p_q["lower"], p_q["upper"]) == (0.25, 0.0, 0.25, 0.25)
    assert p_q["significant"] == 0.0 and p_q["detectable"] == 0.0
    assert p_q["verdict"] == "supported"
    # both bounds exactly 0: inside any margin, neither supported nor opposite
    q_r = report.judge_part(df, "C", report.Evidence("q", "r", "x", 0.125), "main")
    assert (q_r["lower"], q_r["upper"]) == (0.0, 0.0)
    assert q_r["verdict"] == "no difference beyond the margin"
    # the upper bound exactly at the margin: "not higher" is not shown, nor is its opposite
    at = report.judge_part(df, "C", report.Evidence("p", "q", "x", 0.25, "not higher"), "main")
    assert at["upper"] == at["margin"] == 0.25 and at["verdict"] == "inconclusive"
    # exactly at the margin for a superiority part: supported, not "inside the margin"
    assert report.judge_part(df, "C", report.Evidence("p", "q", "x", 0.25), "main")[
        "verdict"] == "supported"


def test_the_claims_group_the_results_chapter_reads():
    # the claims' methods on four seeds in group "claims"; group "main" disagrees with it
    claims = _claims_frame("claims")
    extra = claims[claims.seed == 0].assign(seed=3)
    main = _claims_frame("main").assign(accuracy=0.5)
    df = pd.concat([claims, extra, main], ignore_index=True)
    v = report.verdicts(df, group="claims")
    (acc,) = v.loc["C2", "parts"]
    # accuracy xdistill - kd on seeds 0-3 = [-0.03, -0.04, -0.05, -0.03]
    d = np.array([-0.03, -0.04, -0.05, -0.03])
    half = stats.t.ppf(0.95, 3) * d.std(ddof=1) / 2
    assert acc["n"] == 4 and acc["mean"] == pytest.approx(d.mean())
    assert acc["lower"] == pytest.approx(d.mean() - half)
    assert v.loc["C2", "verdict"] == "not supported"
    # the verdict table of the chapter: one row per part, under its claim and verdict
    table = report.verdict_table(v)
    assert list(table.index[:3]) == [("C1", "supported", "agreement kd - scratch"),
                                     ("C1", "supported", "Grad-CAM r kd - scratch"),
                                     ("C2", "not supported", "accuracy xdistill - kd")]
    assert list(table.columns) == ["difference [one-sided 95 % bounds]", "needs", "margin",
                                   "reading", "significant from", "80 % power at"]
    row = table.loc[("C1", "supported", "Grad-CAM r kd - scratch")]
    assert row["needs"] == "< 0.03" and row["margin"] == "±0.03"
    assert table.loc[("C2", "not supported", "accuracy xdistill - kd"), "needs"] == "> 0"
    skipped = table.loc[("C3", "partly supported", "deployed explanation r xdistill - kd")]
    assert skipped["reading"] == "skipped (deployed/pearson is not in these results)"
    assert skipped["significant from"] == ""


def test_glue_verdicts_glues_each_claim(monkeypatch):
    from xdx_lib import notebook

    glued = {}
    monkeypatch.setattr(notebook, "glue", lambda name, value, display: glued.update({name: value}))
    v = report.verdicts(_claims_frame())
    notebook.glue_verdicts(v)
    assert sorted(glued) == sorted(f"C{i}_{c}" for i in (1, 2, 3)
                                   for c in ("verdict", "evidence", "power"))  # fmt: skip
    assert glued["C2_verdict"] == "not supported"
    assert glued["C1_power"] == v.loc["C1", "power"]


def test_adding_a_metric_to_a_claim_is_one_evidence():
    df = _claims_frame()
    df["deployed/pearson"] = df["gradcam/pearson"] + (df.method == "xdistill") * 0.5
    claim = report.Claim("C3", "more faithful", parts=(
        report.Evidence("xdistill", "kd", "deployed/pearson", 0.03),))
    v = report.verdicts(df, claims=[claim])
    # [0.60, 0.70, 0.80]: lower 0.7 - 10 H3 = 0.53 > 0
    assert v.loc["C3", "verdict"] == "supported" and v.loc["C3", "notes"] == ""


def test_claim_without_any_evidence_is_inconclusive():
    claim = report.Claim("C9", "x", parts=(report.Evidence("kd", "scratch", "nope", 0.1),
                                           report.Evidence("e2kd", "kd", "accuracy", 0.1)))
    v = report.verdicts(_claims_frame(), claims=[claim])
    assert v.loc["C9", "verdict"] == "inconclusive"
    assert "nope is not in these results" in v.loc["C9", "notes"]
    assert "no runs of e2kd" in v.loc["C9", "notes"]
    empty = report.verdicts(_claims_frame(), group="claims")  # no such group
    assert set(empty["verdict"]) == {"inconclusive"}
    assert "no runs in group claims" in empty.loc["C2", "notes"]


def test_one_seed_verdicts_are_inconclusive():
    v = report.verdicts(_claims_frame(seeds=1))
    assert set(v["verdict"]) == {"inconclusive"}
    assert v.loc["C2", "power"] == "accuracy xdistill - kd: none (n=1, no bounds)"
    assert v.loc["C2", "evidence"] == "accuracy xdistill - kd -0.030 (n=1, no bounds): inconclusive"


def test_paired_table_and_differences_skip_absent_pairs_and_metrics():
    df = _claims_frame()
    diffs = report.paired_differences(df)
    # of PAIRS only kd - scratch, xdistill - kd, xdistill - scratch ran; topk_iou is absent
    assert [(a, b) for a, b in zip(diffs.a, diffs.b)][::3] == [
        ("kd", "scratch"), ("xdistill", "kd"), ("xdistill", "scratch")]
    assert list(diffs.metric[:3]) == ["accuracy", "agreement", "gradcam/pearson"]
    row = diffs[(diffs.a == "xdistill") & (diffs.b == "kd") & (diffs.metric == "accuracy")]
    assert row["mean"].item() == pytest.approx(-0.04)
    assert row["half_width"].item() == pytest.approx(4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    table = report.paired_table(df, methods=["kd", "scratch"])
    assert list(table.index) == [("kd - scratch", "accuracy"), ("kd - scratch", "agreement"),
                                 ("kd - scratch", "Grad-CAM r")]
    assert table.loc[("kd - scratch", "agreement"), "reading"] == "kd > scratch"
    assert table.loc[("kd - scratch", "agreement"), "significant from"] == "0.025"
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
    t4 = report.sweep_table(pd.concat([df, sweep], ignore_index=True),
                         ["accuracy", "agreement", "cae/pearson"])
    assert list(t4.index) == [("default", ""), ("beta", 3.0), ("fusion", "gate")]
    assert list(t4.columns) == ["accuracy", "agreement"]  # cae/pearson is absent
    assert t4.loc[("default", ""), "accuracy"] == pytest.approx(0.79)  # xdistill, seed 0 only
    assert t4.loc[("fusion", "gate"), "agreement"] == pytest.approx(0.65)
    assert report.sweep_table(df, ["accuracy"]).empty
    named = report.sweep_table(pd.concat([df, sweep], ignore_index=True), ["agreement"],
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
    table = report.intervention_table(_intervention_rows())
    assert list(table.index) == ["own", "zeroed"] and table.index.name == "intervention"
    zeroed = table.loc["zeroed"]
    # d = [-0.10, -0.11, -0.09]: mean -0.10, sd 0.01, t(0.975, 2) = 4.302653
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert zeroed[("accuracy", "mean")] == pytest.approx(0.72)
    assert zeroed[("accuracy", "difference")] == pytest.approx(-0.10)
    assert zeroed[("accuracy", "low")] == pytest.approx(-0.10 - half, abs=1e-6)
    assert zeroed[("accuracy", "high")] == pytest.approx(-0.10 + half, abs=1e-6)
    assert zeroed[("agreement", "difference")] == pytest.approx(-0.2)
    assert zeroed[("agreement", "low")] == pytest.approx(-0.2)  # no spread: no width
    assert zeroed[("n", "")] == 3
    own = table.loc["own"]
    assert own[("accuracy", "mean")] == pytest.approx(0.82)
    assert own[("accuracy", "difference")] == own[("accuracy", "high")] == 0
    view = report.intervention_view(table)
    assert view.loc["zeroed", "accuracy"] == "0.720"
    assert view.loc["zeroed", "accuracy - own [95% interval]"] == (
        f"-0.100 [{-0.10 - half:+.3f}, {-0.10 + half:+.3f}] (n=3)")


def test_intervention_table_with_two_seeds_by_hand():
    rows = [r for r in _intervention_rows() if r["seed"] < 2]
    # d = [-0.10, -0.11]: mean -0.105, sd 0.00707107, t(0.975, 1) = 12.7062
    half = 12.706205 * 0.01 / math.sqrt(2) / math.sqrt(2)
    zeroed = report.intervention_table(rows, metrics=["accuracy"]).loc["zeroed"]
    assert zeroed[("accuracy", "difference")] == pytest.approx(-0.105)
    assert zeroed[("accuracy", "high")] == pytest.approx(-0.105 + half, abs=1e-6)
    one = report.intervention_table([r for r in rows if r["seed"] == 0])
    assert math.isnan(one.loc["zeroed", ("accuracy", "low")])
    assert "no interval" in report.intervention_view(one).loc["zeroed",
                                                              "accuracy - own [95% interval]"]


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
        report.intervention_table(change(_intervention_rows()))


@pytest.mark.parametrize("accuracies, expected", [
    ({12: 0.8406, 24: 0.8526, 48: 0.8534}, 24),  # a scratch student: flat from 24 epochs on
    ({12: 0.8504, 24: 0.8699, 48: 0.8845}, None),  # a KD student: still climbing at 48
    ({12: 0.850, 24: 0.846}, 12),  # a shorter schedule ending above the longer one
    ({12: 0.845, 24: 0.850}, 12),  # exactly the tolerance: reached
    ({12: 0.8449, 24: 0.850}, None),  # just beyond it
])  # fmt: skip
def test_plateau_epochs(accuracies, expected):
    assert report.plateau_epochs(accuracies) == expected


def test_plateau_epochs_refuses_one_schedule_and_nan():
    with pytest.raises(ValueError, match="at least two schedules"):
        report.plateau_epochs({12: 0.85})
    with pytest.raises(ValueError, match="not finite for schedules"):
        report.plateau_epochs({12: float("nan"), 24: 0.85})
