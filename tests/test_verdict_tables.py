"""The claims' verdicts as the chapters show them: parts, power, the verdict table, one
sentence a claim, and the verdicts with one seed left out."""

from __future__ import annotations

import math

from frames import claims_frame

from xdx_lib.analysis import claims, robustness
from xdx_lib.analysis.claims import ClaimVerdict as CV
from xdx_lib.analysis.claims import PartVerdict as PV
from xdx_lib.report import tables, verdict_tables


def _part(verdict=PV.SUPPORTED, needs="higher", lower=0.043, upper=0.077, **kw):
    fields = {"claim": "C1", "a": "kd", "b": "scratch", "metric": "agreement", "needs": needs,
              "margin": 0.006, "verdict": verdict, "n": 10, "mean": 0.060, "sd": 0.01,
              "lower": lower, "upper": upper, "half_width": (upper - lower) / 2,
              "detectable": 0.0234, **kw}  # fmt: skip
    return claims.PartReading(**fields)


def test_part_label():
    assert verdict_tables.part_label(_part()) == "agreement kd - scratch"
    assert verdict_tables.part_label(_part(metric="gradcam/pearson")) == "Grad-CAM r kd - scratch"


def test_part_note():
    inside = _part(PV.NO_DIFFERENCE, lower=0.001, upper=0.004)
    assert verdict_tables.part_note(inside) == "kd > scratch, but within the margin"
    # a part shown worse reads opposite, and the note says when that is inside the margin
    below = _part(PV.OPPOSITE, lower=-0.004, upper=-0.001)
    assert verdict_tables.part_note(below) == "kd < scratch, within the margin"
    assert verdict_tables.part_note(_part(PV.OPPOSITE, lower=-0.010, upper=-0.001)) == ""
    assert verdict_tables.part_note(_part(PV.NO_DIFFERENCE, lower=-0.004, upper=0.004)) == ""
    # supported: whether the bound clears the margin, or only 0 with the estimate past it
    assert verdict_tables.part_note(_part(PV.SUPPORTED)) == "the bound clears the margin"
    assert verdict_tables.part_note(_part(PV.SUPPORTED, lower=0.002, upper=0.020)) == (
        "the bound clears 0, the estimate the margin")
    # shown at 5 % alone, not after Holm's control over the family
    lost = _part(PV.INCONCLUSIVE, lower=0.001, upper=0.03, p=0.04, p_holm=0.12)
    assert verdict_tables.part_note(lost) == "shown at 5 % alone, not under Holm's control"
    # "not higher": supported yet shown higher than 0 (within the margin)
    assert verdict_tables.part_note(_part(PV.SUPPORTED, "not higher", 0.001, 0.004)) == (
        "kd > scratch, but within the margin")
    assert verdict_tables.part_note(_part(PV.SUPPORTED, "not higher", -0.004, -0.001)) == ""
    skipped = claims.PartReading("C1", "kd", "scratch", "agreement", "higher", 0.006,
                                 PV.SKIPPED, reason="no runs of kd")  # fmt: skip
    assert verdict_tables.part_note(skipped) == "no runs of kd"


def test_format_part():
    assert verdict_tables.format_part(_part()) == (
        "agreement kd - scratch +0.060 [+0.043, +0.077] (one-sided 95 % bounds, n=10; "
        "margin 0.006): supported (the bound clears the margin)")
    inside = _part(PV.NO_DIFFERENCE, lower=0.001, upper=0.004, mean=0.002)
    assert verdict_tables.format_part(inside).endswith(
        "no difference beyond the margin (kd > scratch, but within the margin)")
    one = _part(PV.INCONCLUSIVE, lower=math.nan, upper=math.nan, n=1, mean=-0.03)
    assert verdict_tables.format_part(one) == (
        "agreement kd - scratch -0.030 (n=1, no bounds): inconclusive")
    skipped = claims.PartReading("C1", "kd", "scratch", "agreement", "higher", 0.006,
                                 PV.SKIPPED, reason="no runs of kd")  # fmt: skip
    assert verdict_tables.format_part(skipped) == "agreement kd - scratch skipped: no runs of kd"


def test_power_at():
    assert verdict_tables.power_at(_part()) == "≥ 0.023"
    assert verdict_tables.power_at(_part(needs="not higher", detectable=0.0131)) == "≤ 0.013"
    assert verdict_tables.power_at(_part(needs="not higher", detectable=-0.004)) == "≤ -0.004"
    assert verdict_tables.power_at(_part(detectable=math.nan)) == ""


def test_format_power():
    assert verdict_tables.format_power(_part()) == (
        "agreement kd - scratch: significant from 0.017, supported with 80 % power at a true "
        "difference ≥ 0.023")
    one = _part(PV.INCONCLUSIVE, lower=math.nan, upper=math.nan, n=1)
    assert verdict_tables.format_power(one) == "agreement kd - scratch: none (n=1, no bounds)"
    skipped = claims.PartReading("C1", "kd", "scratch", "agreement", "higher", 0.006,
                                 PV.SKIPPED, reason="no runs of kd")  # fmt: skip
    assert verdict_tables.format_power(skipped) == "agreement kd - scratch: skipped"


def test_claim_sentences():
    text = verdict_tables.claim_sentences(claims.verdicts(claims_frame()))
    assert list(text.index) == ["C1", "C2", "C3"]
    assert list(text.columns) == ["verdict", "evidence", "power", "notes"]
    # Holm over the five parts read keeps C1's agreement alone (tests/test_claims.py)
    assert list(text.verdict) == ["partly supported (a part undecided)", "not supported",
                                  "inconclusive"]  # fmt: skip
    assert text.loc["C1", "evidence"] == (
        "Agreement kd - scratch +0.060 [+0.043, +0.077] (one-sided 95 % bounds, n=3; "
        "margin 0.006): supported (the bound clears the margin). Grad-CAM r kd - scratch "
        "+0.000 [-0.017, +0.017] (one-sided 95 % bounds, n=3; margin 0.03): inconclusive "
        "(shown at 5 % alone, not under Holm's control)")
    assert text.loc["C2", "power"] == (
        "Accuracy xdistill - kd: significant from 0.017, supported with 80 % power at a true "
        "difference ≥ 0.023")
    # "not higher": the margin 0.03 less the t test's 0.023
    assert text.loc["C1", "power"].endswith("at a true difference ≤ 0.007")
    assert text.loc["C3", "power"].endswith(". Deployed explanation r xdistill - kd_cae: skipped")
    assert text.loc["C3", "notes"] == ("deployed explanation r xdistill - kd_cae skipped: "
                                       "deployed/pearson is not in these results")  # fmt: skip
    assert text.loc["C1", "notes"] == ""
    none = verdict_tables.claim_sentences([claims.ClaimReading("C9", CV.INCONCLUSIVE, ())])
    assert (none.loc["C9", "evidence"], none.loc["C9", "power"]) == ("no evidence", "none")


def test_verdict_table():
    table = verdict_tables.verdict_table(claims.verdicts(claims_frame()))
    c1 = "partly supported (a part undecided)"
    assert list(table.index[:3]) == [("C1", c1, "agreement kd - scratch"),
                                     ("C1", c1, "Grad-CAM r kd - scratch"),
                                     ("C2", "not supported", "accuracy xdistill - kd")]
    assert list(table.columns) == ["difference [one-sided 95 % bounds]", "needs", "margin",
                                   "reading", "significant from", "80 % power at", "p (Holm)"]
    row = table.loc[("C1", c1, "Grad-CAM r kd - scratch")]
    assert row["needs"] == "< 0.03" and row["margin"] == "±0.03"
    assert row["difference [one-sided 95 % bounds]"] == "+0.000 [-0.017, +0.017] (n=3)"
    assert row["significant from"] == "0.017"
    assert row["reading"] == "inconclusive (shown at 5 % alone, not under Holm's control)"
    assert row["p (Holm)"] == "0.070"  # 4 x 0.0175
    acc = table.loc[("C2", "not supported", "accuracy xdistill - kd")]
    assert acc["needs"] == "> 0" and acc["80 % power at"] == "≥ 0.023"
    assert row["80 % power at"] == "≤ 0.007"
    skipped = table.loc[("C3", "inconclusive", "deployed explanation r xdistill - kd_cae")]
    assert skipped["reading"] == "skipped (deployed/pearson is not in these results)"
    assert skipped["significant from"] == tables.MISSING == skipped["80 % power at"]
    assert skipped["difference [one-sided 95 % bounds]"] == tables.MISSING
    assert skipped["p (Holm)"] == tables.MISSING
    one = verdict_tables.verdict_table(claims.verdicts(claims_frame(seeds=1)))
    shown = one.loc[("C2", "inconclusive", "accuracy xdistill - kd")]
    assert shown["difference [one-sided 95 % bounds]"] == "-0.030 (n=1)"


def test_a_difference_below_the_margin_reads_so_in_the_sentences_and_the_table():
    # accuracy xdistill - kd = [0.004, 0.005, 0.006]: mean +0.005, lower bound above 0,
    # mean below the margin 0.006
    df = claims_frame()
    kd = df.method == "kd"
    df.loc[df.method == "xdistill", "accuracy"] = df.loc[kd, "accuracy"].to_numpy() + [
        0.004, 0.005, 0.006]
    readings = claims.verdicts(df)
    text = verdict_tables.claim_sentences(readings)
    assert text.loc["C2", "verdict"] == "positive but below the margin"
    assert text.loc["C2", "evidence"].startswith("Accuracy xdistill - kd +0.005 [+0.003,")
    assert text.loc["C2", "evidence"].endswith("margin 0.006): positive but below the margin")
    table = verdict_tables.verdict_table(readings)
    row = table.loc[("C2", "positive but below the margin", "accuracy xdistill - kd")]
    assert row["reading"] == "positive but below the margin"


def _seed_out(verdict, *without):
    return robustness.SeedOutReading("C2", verdict, tuple(enumerate(without)))


def test_leave_one_out_table():
    stable = _seed_out(CV.SUPPORTED, CV.SUPPORTED, CV.SUPPORTED, CV.SUPPORTED)
    fragile = robustness.SeedOutReading("C3", CV.PARTLY_UNDECIDED, (
        (0, CV.PARTLY_UNDECIDED), (1, CV.INCONCLUSIVE), (2, CV.PARTLY_UNDECIDED),
        (3, CV.INCONCLUSIVE), (4, CV.NOT_SUPPORTED)))  # fmt: skip
    every = robustness.SeedOutReading("C1", CV.SUPPORTED, ((0, CV.INCONCLUSIVE),))
    table = verdict_tables.leave_one_out_table([stable, fragile, every])
    assert list(table.columns) == ["all seeds", "one seed left out",
                                   "estimates, one seed left out", "reading"]
    assert list(table.index) == ["C2", "C3", "C1"]
    assert table.loc["C2"].tolist() == ["supported", "the same without any one of the 3 seeds",
                                        "", "stable"]  # fmt: skip
    assert table.loc["C3", "one seed left out"] == (
        "inconclusive without seeds 1, 3; not supported without seed 4; the same without any "
        "other")
    assert table.loc["C3", "reading"] == "fragile"
    assert table.loc["C1", "one seed left out"] == "inconclusive without seed 0"


def test_glue_verdicts_glues_each_claims_sentences(monkeypatch):
    from xdx_lib.report import notebook

    glued = {}
    monkeypatch.setattr(notebook, "glue", lambda name, value, display: glued.update({name: value}))
    text = verdict_tables.claim_sentences(claims.verdicts(claims_frame()))
    notebook.glue_verdicts(text)
    assert sorted(glued) == sorted(f"C{i}_{c}" for i in (1, 2, 3)
                                   for c in ("verdict", "evidence", "power"))  # fmt: skip
    assert glued["C2_verdict"] == "not supported"
    assert glued["C1_power"] == text.loc["C1", "power"]


def test_leave_one_out_table_shows_how_far_each_part_moves():
    readings = robustness.leave_one_seed_out(claims_frame())
    c2 = verdict_tables.leave_one_out_table(readings).loc["C2", "estimates, one seed left out"]
    # accuracy xdistill - kd = [-0.03, -0.04, -0.05]: two seeds left give means -0.045,
    # -0.04, -0.035; the widest bounds are those of [-0.03, -0.05], sd 0.01414:
    # -0.04 -+ 6.314 x 0.01414 / sqrt(2) = -0.04 -+ 0.0631
    half = 6.313752 * 0.02 / math.sqrt(2) / math.sqrt(2)
    assert c2 == (f"accuracy xdistill - kd -0.045 to -0.035 [{-0.04 - half:+.3f}, "
                  f"{-0.04 + half:+.3f}]")
    assert c2.endswith("[-0.103, +0.023]")
    c3 = verdict_tables.leave_one_out_table(readings).loc["C3", "estimates, one seed left out"]
    assert c3.endswith("deployed explanation r xdistill - kd_cae —")
