"""The claims, the rule part by part and claim by claim, and the paired table, by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from frames import claims_frame
from scipy import stats as scipy_stats

from xdx_lib.analysis import claims, power
from xdx_lib.analysis.claims import ClaimVerdict as CV
from xdx_lib.analysis.claims import PartVerdict as PV

M = 0.006


@pytest.mark.parametrize("lower, upper, reading", [
    (0.010, 0.030, PV.SUPPORTED),
    # shown above 0 with a mean below the margin: not supported
    (0.001, 0.009, PV.BELOW_MARGIN),
    (0.001, 0.0109, PV.BELOW_MARGIN),
    (-0.030, -0.010, PV.OPPOSITE),
    (-0.010, 0.010, PV.INCONCLUSIVE),
    (-0.004, 0.005, PV.NO_DIFFERENCE),
    # shown above 0 and inside the margin: the margin wins; shown worse reads so, inside
    # the margin or not
    (0.001, 0.004, PV.NO_DIFFERENCE),
    (-0.004, -0.001, PV.OPPOSITE),
    # a bound touching 0 shows nothing
    (0.0, 0.020, PV.INCONCLUSIVE),
    (-0.020, 0.0, PV.INCONCLUSIVE),
    # a bound touching the margin is not inside it; the mean 0.004 is below the margin
    (0.002, M, PV.BELOW_MARGIN),
    (0.006, 0.010, PV.SUPPORTED),
    (-M, -0.002, PV.OPPOSITE),
    (-M, 0.002, PV.INCONCLUSIVE),
    (math.nan, math.nan, PV.INCONCLUSIVE),
])  # fmt: skip
def test_part_verdict_higher(lower, upper, reading):
    assert claims.part_verdict(lower, upper, M) is reading


def test_a_positive_difference_smaller_than_the_margin_is_not_supported():
    # the C2: mean +0.005, one-sided bounds [+0.001, +0.009], margin 0.006
    assert claims.part_verdict(0.001, 0.009, M, mean=0.005) is PV.BELOW_MARGIN
    # the mean exactly at the margin is as large as a difference that matters
    assert claims.part_verdict(0.001, 0.011, M, mean=M) is PV.SUPPORTED
    # the mean given wins over the bounds' midpoint
    assert claims.part_verdict(0.001, 0.011, M, mean=0.0059) is PV.BELOW_MARGIN
    assert claims.part_verdict(0.001, 0.009, M, mean=0.0061) is PV.SUPPORTED


@pytest.mark.parametrize("lower, upper, reading", [
    (-0.004, 0.005, PV.SUPPORTED),   # small either way: inside the margin
    (0.001, 0.005, PV.SUPPORTED),    # higher, but by less than the margin
    (-0.050, -0.020, PV.SUPPORTED),  # lower
    (-0.010, M, PV.INCONCLUSIVE),    # the upper bound touches the margin
    (0.000, 0.020, PV.INCONCLUSIVE),  # not significant is not enough: the bound passes M
    (M, 0.020, PV.INCONCLUSIVE),     # the lower bound touches the margin
    (0.007, 0.020, PV.OPPOSITE),     # higher beyond the margin
    (math.nan, math.nan, PV.INCONCLUSIVE),
])  # fmt: skip
def test_part_verdict_not_higher(lower, upper, reading):
    assert claims.part_verdict(lower, upper, M, needs="not higher") is reading


@pytest.mark.parametrize("readings, verdict", [
    ([PV.SUPPORTED], CV.SUPPORTED),
    ([PV.SUPPORTED, PV.SUPPORTED], CV.SUPPORTED),
    ([PV.SUPPORTED, PV.OPPOSITE], CV.NOT_SUPPORTED),
    ([PV.OPPOSITE, PV.INCONCLUSIVE], CV.NOT_SUPPORTED),
    ([PV.SUPPORTED, PV.BELOW_MARGIN, PV.OPPOSITE], CV.NOT_SUPPORTED),
    ([PV.SUPPORTED, PV.NO_DIFFERENCE], CV.PARTLY_NEGLIGIBLE),
    ([PV.SUPPORTED, PV.INCONCLUSIVE, PV.NO_DIFFERENCE], CV.PARTLY_NEGLIGIBLE),
    ([PV.SUPPORTED, PV.BELOW_MARGIN, PV.NO_DIFFERENCE], CV.PARTLY_NEGLIGIBLE),
    ([PV.SUPPORTED, PV.BELOW_MARGIN], CV.PARTLY_BELOW_MARGIN),
    ([PV.SUPPORTED, PV.INCONCLUSIVE, PV.BELOW_MARGIN], CV.PARTLY_BELOW_MARGIN),
    ([PV.SUPPORTED, PV.INCONCLUSIVE], CV.PARTLY_UNDECIDED),
    ([PV.SUPPORTED, PV.SKIPPED], CV.PARTLY_UNDECIDED),
    ([PV.NO_DIFFERENCE], CV.NOT_SUPPORTED),
    ([PV.NO_DIFFERENCE, PV.INCONCLUSIVE], CV.NOT_SUPPORTED),
    ([PV.NO_DIFFERENCE, PV.BELOW_MARGIN], CV.NOT_SUPPORTED),
    ([PV.BELOW_MARGIN], CV.BELOW_MARGIN),
    ([PV.BELOW_MARGIN, PV.INCONCLUSIVE], CV.BELOW_MARGIN),
    ([PV.INCONCLUSIVE], CV.INCONCLUSIVE),
    ([PV.SKIPPED], CV.INCONCLUSIVE),
    ([], CV.INCONCLUSIVE),
])  # fmt: skip
def test_claim_verdict(readings, verdict):
    assert claims.claim_verdict(readings) is verdict


def test_claim_verdict_refuses_an_unknown_reading():
    with pytest.raises(ValueError, match="not a valid PartVerdict"):
        claims.claim_verdict(["maybe"])


def test_verdicts_are_the_method_chapters_names():
    assert [v.value for v in PV] == ["supported", "opposite", "no difference beyond the margin",
                                     "positive but below the margin", "inconclusive",
                                     "skipped"]  # fmt: skip
    assert [v.value for v in CV] == [
        "supported", "partly supported (a part shown negligible)",
        "partly supported (a part below the margin)", "partly supported (a part undecided)",
        "positive but below the margin", "not supported", "inconclusive"]  # fmt: skip
    assert [v for v in CV if v.partly] == [CV.PARTLY_NEGLIGIBLE, CV.PARTLY_BELOW_MARGIN,
                                          CV.PARTLY_UNDECIDED]  # fmt: skip


def test_evidence_checks_its_need_and_margin():
    with pytest.raises(ValueError, match="needs"):
        claims.Evidence("a", "b", "accuracy", 0.01, needs="lower")
    with pytest.raises(ValueError, match="margin"):
        claims.Evidence("a", "b", "accuracy", 0.0)
    with pytest.raises(ValueError, match="needs"):
        claims.part_verdict(0.0, 1.0, 0.1, needs="lower")


def test_claims_carry_the_margins_the_method_chapter_states():
    got = {c.name: [(ev.a, ev.b, ev.metric, ev.needs, ev.margin) for ev in c.parts]
           for c in claims.CLAIMS}  # fmt: skip
    assert got == {
        "C1": [("kd", "scratch", "agreement", "higher", 0.006),
               ("kd", "scratch", "gradcam/pearson", "not higher", 0.03)],
        "C2": [("xdistill", "kd", "accuracy", "higher", 0.006)],
        "C3": [("xdistill", "kd", "agreement", "higher", 0.006),
               ("xdistill", "kd", "gradcam/pearson", "higher", 0.03),
               ("xdistill", "kd_cae", "deployed/pearson", "higher", 0.03)],
    }  # fmt: skip
    assert (claims.FRACTION_MARGIN, claims.R_MARGIN) == (0.006, 0.03)


# ------------------------------------------------------------------- verdicts from results

T95_1 = 6.313752  # scipy.stats.t.ppf(0.95, 1)
T95_2 = 2.919986  # scipy.stats.t.ppf(0.95, 2)


H3 = T95_2 * 0.01 / math.sqrt(3)  # one-sided half-width of three differences with sd 0.01


def _by_name(readings):
    return {r.name: r for r in readings}


def _p_greater(d, null=0.0):
    """scipy's one-sided one-sample t test of ``d`` against ``null``, by hand."""
    return scipy_stats.ttest_1samp(d, null, alternative="greater").pvalue


def test_verdicts_by_hand():
    v = _by_name(claims.verdicts(claims_frame()))
    assert list(v) == ["C1", "C2", "C3"]
    # C1: agreement kd - scratch = [0.05, 0.06, 0.07]: lower 0.06 - H3 = 0.043 > 0;
    # Grad-CAM r kd - scratch = [0.01, -0.01, 0.00]: upper 0 + H3 = 0.017 < 0.03.
    agree, expl = v["C1"].parts
    assert agree.lower == pytest.approx(0.06 - H3, abs=1e-6)
    assert agree.half_width == pytest.approx(H3, abs=1e-6)
    assert expl.upper == pytest.approx(H3, abs=1e-6)
    # the tests the claims need, and Holm over the five parts read (the sixth is skipped):
    # p sorted 0.0046 (x5), 0.0175 (x4), 0.037 (x3), 0.037 (x2), 0.995 (x1)
    p = {"agree": _p_greater([0.05, 0.06, 0.07]),
         "expl": scipy_stats.ttest_1samp([0.01, -0.01, 0.0], 0.03, alternative="less").pvalue,
         "acc": _p_greater([-0.03, -0.04, -0.05]), "agree3": _p_greater([0.02, 0.03, 0.01]),
         "r3": _p_greater([0.10, 0.20, 0.30])}  # fmt: skip
    assert agree.p == pytest.approx(p["agree"]) and expl.p == pytest.approx(p["expl"])
    assert agree.p_holm == pytest.approx(5 * p["agree"])
    assert expl.p_holm == pytest.approx(4 * p["expl"]) and expl.p_holm > 0.05
    # agreement survives the control; the explanation part, shown at 5 % alone, does not
    assert agree.verdict is PV.SUPPORTED and agree.reason == ""
    assert expl.verdict is PV.INCONCLUSIVE
    assert claims.judge_part(claims_frame(), "C1", claims.CLAIMS[0].parts[1]).verdict is (
        PV.SUPPORTED)
    assert v["C1"].verdict is CV.PARTLY_UNDECIDED
    # a "not higher" part: supported four times in five up to the margin less the t test's
    assert expl.detectable == pytest.approx(0.03 - power.detectable_difference(3, 0.01))
    # C2: accuracy xdistill - kd = [-0.03, -0.04, -0.05]: upper -0.04 + H3 < 0
    assert v["C2"].verdict is CV.NOT_SUPPORTED
    (acc,) = v["C2"].parts
    assert acc.upper == pytest.approx(-0.04 + H3, abs=1e-6) and acc.verdict is PV.OPPOSITE
    assert acc.p == pytest.approx(p["acc"]) and acc.p_holm == pytest.approx(p["acc"])
    # the detectable difference, for the rule (bound above 0 and mean at least the margin):
    # at three seeds the bound decides, so it is near the t test's 0.02297 (noncentrality
    # 3.979 at 2 degrees of freedom, times sd/sqrt(3)), a little above it
    assert acc.detectable == pytest.approx(0.022977, abs=2e-6)
    assert power.superiority_power(acc.detectable, 3, 0.01, M) == pytest.approx(0.8)
    t_test = power.detectable_difference(3, 0.01)
    assert scipy_stats.nct.sf(T95_2, 2, t_test * math.sqrt(3) / 0.01) == pytest.approx(0.8)
    assert acc.detectable > t_test
    # C3: agreement xdistill - kd = [0.02, 0.03, 0.01]: lower 0.02 - H3 = 0.0031 > 0; Grad-CAM
    # r = [0.10, 0.20, 0.30]: lower 0.2 - 10 H3 = 0.031 > 0. Both shown at 5 % alone, neither
    # under Holm (0.111); the deployed r is not in these results: inconclusive.
    agree3, r3, deployed = v["C3"].parts
    assert agree3.lower == pytest.approx(0.02 - H3, abs=1e-6) and agree3.lower > 0
    assert r3.lower == pytest.approx(0.2 - 10 * H3, abs=1e-6) and r3.lower > 0
    assert agree3.p_holm == pytest.approx(3 * p["agree3"]) == r3.p_holm
    assert agree3.verdict is PV.INCONCLUSIVE and r3.verdict is PV.INCONCLUSIVE
    assert v["C3"].verdict is CV.INCONCLUSIVE
    assert deployed.verdict is PV.SKIPPED and deployed.n == 0 and math.isnan(deployed.mean)
    assert deployed.reason == "deployed/pearson is not in these results"
    assert math.isnan(deployed.p) and math.isnan(deployed.p_holm)


def test_a_claim_of_one_part_alone_is_not_corrected():
    """Holm's family is the claims handed in: one claim of one part is its own test."""
    (c2,) = claims.verdicts(claims_frame(), claims=claims.CLAIMS[1:2])
    assert c2.parts[0].p_holm == pytest.approx(c2.parts[0].p)


def _c2_with_accuracy_differences(differences):
    """C2 and its one part when xdistill's accuracy is kd's plus ``differences`` (one a seed)."""
    df = claims_frame()
    kd = df.method == "kd"
    df.loc[df.method == "xdistill", "accuracy"] = df.loc[kd, "accuracy"].to_numpy() + differences
    c2 = _by_name(claims.verdicts(df))["C2"]
    return c2, c2.parts[0]


def test_significant_difference_inside_the_margin_reads_no_difference():
    # accuracy xdistill - kd = [0.001, 0.002, 0.003]: mean 0.002, sd 0.001, bounds
    # 0.002 -+ 0.1 H3 = [0.00031, 0.00369]: nonzero, and inside +-0.006
    c2, acc = _c2_with_accuracy_differences([0.001, 0.002, 0.003])
    assert acc.lower == pytest.approx(0.002 - 0.1 * H3, abs=1e-7) and acc.lower > 0
    assert acc.verdict is PV.NO_DIFFERENCE
    assert c2.verdict is CV.NOT_SUPPORTED


def test_two_seeds_by_hand():
    df = claims_frame(seeds=2)
    # accuracy xdistill - kd = [-0.03, -0.04]: mean -0.035, sd 0.00707, bounds
    # -0.035 -+ 6.313752 * 0.00707 / sqrt(2) = -0.035 -+ 0.0316: [-0.0666, -0.0034]
    v = _by_name(claims.verdicts(df))
    (acc,) = v["C2"].parts
    half = T95_1 * (0.01 / math.sqrt(2)) / math.sqrt(2)
    assert acc.n == 2 and acc.mean == pytest.approx(-0.035)
    assert acc.half_width == pytest.approx(half, abs=1e-6)
    assert acc.upper == pytest.approx(-0.035 + half, abs=1e-6)
    assert acc.verdict is PV.OPPOSITE
    # agreement kd - scratch = [0.05, 0.06]: lower 0.055 - 0.0316 = 0.0234 > 0, p 0.029; but
    # five parts are read, and Holm needs 0.029 x 5 = 0.144 below 0.05: not shown
    agree, _ = v["C1"].parts
    assert agree.lower == pytest.approx(0.055 - half, abs=1e-6)
    assert agree.p == pytest.approx(_p_greater([0.05, 0.06])) and agree.p < 0.05
    assert agree.p_holm == pytest.approx(5 * agree.p)
    assert agree.verdict is PV.INCONCLUSIVE


def test_zero_variance_and_bounds_touching_by_hand():
    # exact binary fractions, so the per-seed differences are exactly equal
    rows = [{"group": "main", "method": m, "seed": s, "x": x}
            for s in range(3) for m, x in (("p", 0.5), ("q", 0.25), ("r", 0.25))]
    df = pd.DataFrame(rows)
    p_q = claims.judge_part(df, "C", claims.Evidence("p", "q", "x", 0.125), "main")
    assert (p_q.mean, p_q.sd, p_q.lower, p_q.upper) == (0.25, 0.0, 0.25, 0.25)
    assert p_q.half_width == 0.0 and p_q.detectable == 0.125  # no spread: the margin itself
    assert p_q.verdict is PV.SUPPORTED
    # both bounds exactly 0: inside any margin, neither supported nor opposite
    q_r = claims.judge_part(df, "C", claims.Evidence("q", "r", "x", 0.125), "main")
    assert (q_r.lower, q_r.upper) == (0.0, 0.0)
    assert q_r.verdict is PV.NO_DIFFERENCE
    # the upper bound exactly at the margin: "not higher" is not shown, nor is its opposite
    at = claims.judge_part(df, "C", claims.Evidence("p", "q", "x", 0.25, "not higher"), "main")
    assert at.upper == at.margin == 0.25 and at.verdict is PV.INCONCLUSIVE
    # exactly at the margin for a superiority part: supported, not "inside the margin"
    assert claims.judge_part(df, "C", claims.Evidence("p", "q", "x", 0.25), "main").verdict is (
        PV.SUPPORTED)


def test_the_claims_group_the_results_chapter_reads():
    # the claims' methods on four seeds in group "claims"; group "main" disagrees with it
    frame = claims_frame("claims")
    extra = frame[frame.seed == 0].assign(seed=3)
    main = claims_frame("main").assign(accuracy=0.5)
    df = pd.concat([frame, extra, main], ignore_index=True)
    c2 = _by_name(claims.verdicts(df, group="claims"))["C2"]
    (acc,) = c2.parts
    # accuracy xdistill - kd on seeds 0-3 = [-0.03, -0.04, -0.05, -0.03]
    d = np.array([-0.03, -0.04, -0.05, -0.03])
    half = scipy_stats.t.ppf(0.95, 3) * d.std(ddof=1) / 2
    assert acc.n == 4 and acc.mean == pytest.approx(d.mean())
    assert acc.lower == pytest.approx(d.mean() - half)
    assert c2.verdict is CV.NOT_SUPPORTED


def test_a_significant_difference_below_the_margin_is_not_supported():
    # accuracy xdistill - kd = [0.004, 0.005, 0.006]: mean 0.005, bounds 0.005 -+ 0.1 H3 =
    # [0.0033, 0.0067]: above 0, past the margin, its mean below it
    c2, acc = _c2_with_accuracy_differences([0.004, 0.005, 0.006])
    assert acc.mean == pytest.approx(0.005) and acc.lower > 0 and acc.upper > M
    assert acc.verdict is PV.BELOW_MARGIN and c2.verdict is CV.BELOW_MARGIN


def test_adding_a_metric_to_a_claim_is_one_evidence():
    df = claims_frame()
    df["deployed/pearson"] = df["gradcam/pearson"] + (df.method == "xdistill") * 0.5
    claim = claims.Claim("C3", "more faithful", parts=(
        claims.Evidence("xdistill", "kd", "deployed/pearson", 0.03),))
    (c3,) = claims.verdicts(df, claims=[claim])
    # [0.60, 0.70, 0.80]: lower 0.7 - 10 H3 = 0.53 > 0
    assert c3.verdict is CV.SUPPORTED and c3.parts[0].lower == pytest.approx(0.7 - 10 * H3)


def test_claim_without_any_evidence_is_inconclusive():
    claim = claims.Claim("C9", "x", parts=(claims.Evidence("kd", "scratch", "nope", 0.1),
                                           claims.Evidence("e2kd", "kd", "accuracy", 0.1)))
    (c9,) = claims.verdicts(claims_frame(), claims=[claim])
    assert c9.verdict is CV.INCONCLUSIVE
    assert [p.verdict for p in c9.parts] == [PV.SKIPPED, PV.SKIPPED]
    assert [p.reason for p in c9.parts] == ["nope is not in these results", "no runs of e2kd"]
    empty = claims.verdicts(claims_frame(), group="claims")  # no such group
    assert {c.verdict for c in empty} == {CV.INCONCLUSIVE}
    assert _by_name(empty)["C2"].parts[0].reason == "no runs in group claims"


def test_a_metric_missing_for_one_method_skips_the_part():
    df = claims_frame()
    df = pd.concat([df, df[df.method == "kd"].assign(method="kd_cae")], ignore_index=True)
    df["deployed/pearson"] = np.where(df.method == "xdistill", 0.9, np.nan)
    deployed = _by_name(claims.verdicts(df))["C3"].parts[2]
    assert deployed.verdict is PV.SKIPPED
    assert deployed.reason == "deployed/pearson has no value for any run of kd_cae"


def test_one_seed_verdicts_are_inconclusive():
    v = claims.verdicts(claims_frame(seeds=1))
    assert {c.verdict for c in v} == {CV.INCONCLUSIVE}
    (acc,) = _by_name(v)["C2"].parts
    assert acc.n == 1 and acc.mean == pytest.approx(-0.03) and acc.verdict is PV.INCONCLUSIVE
    assert math.isnan(acc.lower) and math.isnan(acc.half_width) and math.isnan(acc.detectable)


def test_duplicated_seed_and_method_is_an_error_even_where_no_part_reads_it():
    df = claims_frame().replace({"xdistill": "other"})
    twice = pd.concat([df, df[(df.method == "other") & (df.seed == 0)]], ignore_index=True)
    with pytest.raises(ValueError, match="more than one run of other on seed 0"):
        claims.verdicts(twice)


def test_claim_parts_is_one_row_per_part_with_the_readings_numbers():
    df = claims_frame()
    parts = claims.claim_parts(df)
    assert list(parts.columns) == list(claims.PART_COLUMNS)
    assert "note" not in parts.columns and "part" not in parts.columns  # no words but reasons
    assert list(parts.claim) == ["C1", "C1", "C2", "C3", "C3", "C3"]
    read = [p for c in claims.verdicts(df) for p in c.parts]
    assert list(parts.verdict) == [p.verdict for p in read]
    assert parts.loc[0, "lower"] == read[0].lower
    assert parts.loc[2, "half_width"] == pytest.approx(H3)


# -------------------------------------------------------------------- the paired table


def test_pairs_are_each_listed_once():
    assert len(set(claims.PAIRS)) == len(claims.PAIRS)
    assert len(set(claims.PAIR_METRICS)) == len(claims.PAIR_METRICS)
    assert ("xdistill", "kd_cae") in claims.PAIRS


def _every_method_frame():
    rng = np.random.default_rng(0)
    methods = sorted({m for pair in claims.PAIRS for m in pair})
    rows = [{"group": "main", "method": m, "seed": s,
             **{q: float(rng.uniform()) for q in claims.PAIR_METRICS}}
            for s in range(3) for m in methods]  # fmt: skip
    return pd.DataFrame(rows)


def test_every_pair_table_is_unique():
    diffs = claims.paired_difference_table(_every_method_frame())
    assert len(diffs) == len(claims.PAIRS) * len(claims.PAIR_METRICS)
    assert not diffs.duplicated(["a", "b", "metric"]).any()
    assert list(dict.fromkeys(zip(diffs.a, diffs.b))) == list(claims.PAIRS)


def test_paired_difference_table_refuses_a_pair_or_metric_twice():
    df = _every_method_frame()
    with pytest.raises(ValueError, match=r"pairs repeat \('kd', 'scratch'\)"):
        claims.paired_difference_table(df, pairs=[("kd", "scratch"), ("kd", "scratch")])
    with pytest.raises(ValueError, match="metrics repeat accuracy"):
        claims.paired_difference_table(df, metrics=["accuracy", "accuracy"])


def test_paired_difference_table_skips_absent_pairs_and_metrics():
    df = claims_frame()
    diffs = claims.paired_difference_table(df)
    assert list(diffs.columns) == ["a", "b", "metric", "n", "mean", "sd", "lower", "upper",
                                   "half_width"]  # fmt: skip
    # of PAIRS only kd - scratch, xdistill - kd, xdistill - scratch ran; topk_iou is absent
    assert [(a, b) for a, b in zip(diffs.a, diffs.b)][::3] == [
        ("kd", "scratch"), ("xdistill", "kd"), ("xdistill", "scratch")]
    assert list(diffs.metric[:3]) == ["accuracy", "agreement", "gradcam/pearson"]
    row = diffs[(diffs.a == "xdistill") & (diffs.b == "kd") & (diffs.metric == "accuracy")]
    assert row["mean"].item() == pytest.approx(-0.04)
    assert row["half_width"].item() == pytest.approx(4.302653 * 0.01 / math.sqrt(3), abs=1e-6)
    only = claims.paired_difference_table(df, methods=["kd", "scratch"])
    assert list(zip(only.a, only.b, only.metric)) == [
        ("kd", "scratch", "accuracy"), ("kd", "scratch", "agreement"),
        ("kd", "scratch", "gradcam/pearson")]  # fmt: skip
    # a metric one method lacks is left out
    df["agreement"] = np.where(df.method == "kd", 0.9, np.nan)
    partial = claims.paired_difference_table(df, pairs=[("kd", "scratch")],
                                             metrics=["accuracy", "agreement"])  # fmt: skip
    assert list(partial.metric) == ["accuracy"]


def test_c3_judges_the_deployed_explanation_against_kd_with_the_same_cae():
    """xdistill's deployed map is the CAE's, and so is kd_cae's: the same maps tie, however
    far both are above KD's own Grad-CAM (which the paired table keeps, reported)."""
    df = claims_frame()
    df = pd.concat([df, df[df.method == "kd"].assign(method="kd_cae")], ignore_index=True)
    df["deployed/pearson"] = df["gradcam/pearson"]
    df.loc[df.method.isin(["xdistill", "kd_cae"]), "deployed/pearson"] = 0.8
    deployed = _by_name(claims.verdicts(df))["C3"].parts[2]
    assert (deployed.a, deployed.b, deployed.mean) == ("xdistill", "kd_cae", 0.0)
    assert deployed.verdict is PV.NO_DIFFERENCE
    table = claims.paired_difference_table(df, pairs=[("xdistill", "kd")],
                                           metrics=["deployed/pearson"])  # fmt: skip
    assert table.loc[0, "mean"] == pytest.approx(0.8 - 0.30)


def test_a_part_shown_worse_inside_its_margin_refutes_the_claim():
    # accuracy xdistill - kd = [-0.002, -0.003, -0.004]: upper -0.003 + 0.1 H3 < 0, lower
    # above -0.006: worse, and inside the margin
    df = claims_frame()
    kd = df.method == "kd"
    df.loc[df.method == "xdistill", "accuracy"] = df.loc[kd, "accuracy"].to_numpy() + [
        -0.002, -0.003, -0.004]
    c2 = _by_name(claims.verdicts(df))["C2"]
    assert -M < c2.parts[0].lower and c2.parts[0].upper < 0
    assert c2.parts[0].verdict is PV.OPPOSITE and c2.verdict is CV.NOT_SUPPORTED
