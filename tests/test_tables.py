"""Each table and sentence the chapters show, one test per renderer, on numbers by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from frames import claims_frame, paired_frame

from xdx_lib.analysis import claims, stats
from xdx_lib.analysis.claims import ClaimVerdict as CV
from xdx_lib.analysis.claims import PartVerdict as PV
from xdx_lib.report import tables


def _part(verdict=PV.SUPPORTED, needs="higher", lower=0.043, upper=0.077, **kw):
    fields = {"claim": "C1", "a": "kd", "b": "scratch", "metric": "agreement", "needs": needs,
              "margin": 0.006, "verdict": verdict, "n": 10, "mean": 0.060, "sd": 0.01,
              "lower": lower, "upper": upper, "half_width": (upper - lower) / 2,
              "detectable": 0.0234, **kw}  # fmt: skip
    return claims.PartReading(**fields)


# ---------------------------------------------------------------------------- intervals


def test_format_interval():
    assert tables.format_interval(0.0123, -0.0042, 0.0281, note="n=3") == (
        "+0.012 [-0.004, +0.028] (n=3)")
    assert tables.format_interval(0.0123, -0.0042, 0.0281, digits=2) == "+0.01 [-0.00, +0.03]"
    assert tables.format_interval(0.02, math.nan, math.nan, note="n=1",
                                  no_bounds="n=1, none") == "+0.020 (n=1, none)"  # fmt: skip
    assert tables.format_interval(-0.02, math.nan, math.nan) == "-0.020"


def test_format_difference():
    d = stats.paired_difference(paired_frame(), "a", "b", "accuracy")
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert tables.format_difference(d) == f"+0.020 [{0.02 - half:+.3f}, {0.02 + half:+.3f}] (n=3)"
    one = stats.paired_difference(paired_frame()[lambda f: f.seed == 0], "a", "b", "accuracy")
    assert tables.format_difference(one) == "+0.020 (n=1, no interval)"


def test_direction():
    def diff(lower, upper):
        return stats.PairedDifference("kd", "scratch", "x", 3, 0.0, 0.01, lower, upper)

    assert tables.direction(diff(0.01, 0.03)) == "kd > scratch"
    assert tables.direction(diff(-0.03, -0.01)) == "kd < scratch"
    assert tables.direction(diff(-0.01, 0.01)) == "no difference shown"
    assert tables.direction(diff(math.nan, math.nan)) == "no difference shown"


# ------------------------------------------------------------------- means over seeds


def test_display_label_strips_then_renames():
    assert tables.display_label("gradcam/topk_iou", {"topk_iou": "IoU"}, "gradcam/") == "IoU"
    assert tables.display_label("gradcam/ssim", {"topk_iou": "IoU"}, "gradcam/") == "ssim"
    assert tables.display_label("saliency/pearson", str.upper) == "SALIENCY/PEARSON"
    assert tables.display_label("accuracy") == "accuracy"


def test_metric_label():
    assert tables.metric_label("gradcam/pearson") == "Grad-CAM r"
    assert tables.metric_label("saliency/pearson") == "saliency/pearson"


def test_mean_std_strings():
    shown = tables.mean_std_strings(stats.summary(paired_frame(), ["accuracy"]))
    assert list(shown.columns) == ["accuracy", "seeds"]
    assert shown.loc["a", "accuracy"] == "0.820 ± 0.020" and shown.loc["a", "seeds"] == 3
    first = paired_frame()[lambda f: f.seed == 0]
    one = tables.mean_std_strings(stats.summary(first, ["accuracy"]))
    assert one.loc["a", "accuracy"] == "0.800"  # no spread with one seed


def test_styled_shows_a_missing_number_as_a_dash_and_formats_the_others():
    table = pd.DataFrame({"parameters": [1234.0, math.nan], "r": [0.61234, math.nan]},
                         index=["CAE", "mean map"])  # fmt: skip
    html = tables.styled(table, {"parameters": "{:,.0f}"}).to_html()
    assert "1,234" in html and "0.612" in html
    assert html.count(">—<") == 2 and "nan" not in html.lower()


def test_mean_std_table_names_columns_and_blanks_missing_means():
    df = paired_frame()
    df["cae/pearson"] = [0.5, None, 0.7, None, 0.6, None, None]  # only method a has CAE maps
    shown = tables.mean_std_table(df, ["accuracy", "cae/pearson"], labels={"pearson": "CAE r"},
                                  strip="cae/", missing="")  # fmt: skip
    assert list(shown.columns) == ["accuracy", "CAE r", "seeds"]
    assert shown.loc["a", "CAE r"] == "0.600 ± 0.100" and shown.loc["b", "CAE r"] == ""
    assert shown.loc["b", "accuracy"] == "0.800 ± 0.026" and shown.loc["a", "seeds"] == 3
    # by default a missing mean is a dash, never "nan"
    assert tables.mean_std_table(df, ["cae/pearson"]).loc["b", "cae/pearson"] == "—"
    assert tables.MISSING == "—"
    by_hand = tables.mean_std_strings(stats.summary(df, ["accuracy"]))
    assert tables.mean_std_table(df, ["accuracy"]).equals(by_hand)


def test_mean_table_holds_the_means_as_numbers():
    table = tables.mean_table(paired_frame(), ["accuracy"], labels={"accuracy": "acc"})
    assert list(table.columns) == ["acc"] and table.index.name == "method"
    mean = stats.summary(paired_frame(), ["accuracy"]).loc["a", ("accuracy", "mean")]
    assert table.loc["a", "acc"] == mean


def test_reference_table_keeps_one_explainers_metrics():
    df = pd.DataFrame([
        {"group": "reference", "method": "centred blob", "gradcam/pearson": 0.4,
         "gradcam/topk_iou": 0.2, "saliency/pearson": 0.1},
        {"group": "main", "method": "kd", "seed": 0, "gradcam/pearson": 0.9},
    ])
    refs = tables.reference_table(df, "gradcam", labels={"topk_iou": "IoU"})
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
    model = tables.faithfulness_table(df, "model")
    assert list(model.columns) == ["Grad-CAM deletion", "CAE deletion", "seeds"]
    assert model.loc["kd", "CAE deletion"] == tables.MISSING  # KD has no CAE map
    assert model.loc["xdistill", "CAE deletion"] == "0.400 ± 0.000"
    teacher = tables.faithfulness_table(df, "teacher")
    assert list(teacher.columns) == ["Grad-CAM deletion", "seeds"]
    assert teacher.loc["kd", "Grad-CAM deletion"] == "0.350 ± 0.071"
    with pytest.raises(ValueError, match="judge 'student'"):
        tables.faithfulness_table(df, "student")


def test_scores_table_orders_names_and_counts():
    scores = {"kd": {"accuracy": 0.8, "parameters": 1234.0, "other": 1.0},
              "xdistill": {"accuracy": 0.9, "parameters": 2345.0, "cae/pearson": 0.7}}
    table = tables.scores_table(scores, {"parameters": "parameters", "accuracy": "acc",
                                         "cae/pearson": "CAE r"})  # fmt: skip
    assert list(table.columns) == ["parameters", "acc", "CAE r"]
    assert table.index.name == "method" and table["parameters"].dtype.kind == "i"
    assert math.isnan(table.loc["kd", "CAE r"]) and table.loc["xdistill", "acc"] == 0.9


# ------------------------------ paired differences, the options (table T4), the maps (T5)


def test_paired_view():
    diffs = claims.paired_difference_table(claims_frame(), methods=["kd", "scratch"])
    view = tables.paired_view(diffs)
    assert list(view.index) == [("kd - scratch", "accuracy"), ("kd - scratch", "agreement"),
                                ("kd - scratch", "Grad-CAM r")]
    assert list(view.columns) == ["difference [two-sided 95 % interval]", "reading",
                                  "significant from"]  # fmt: skip
    assert view.loc[("kd - scratch", "agreement"), "reading"] == "kd > scratch"
    assert view.loc[("kd - scratch", "agreement"), "significant from"] == "0.025"
    assert view.loc[("kd - scratch", "accuracy"), "difference [two-sided 95 % interval]"] == (
        "+0.020 [+0.020, +0.020] (n=3)")
    one = tables.paired_view(claims.paired_difference_table(claims_frame(seeds=1)))
    assert set(one["significant from"]) == {tables.MISSING}
    assert set(one["reading"]) == {"no difference shown"}


def test_paired_table_is_the_view_of_the_difference_table():
    df = claims_frame()
    table = tables.paired_table(df, methods=["kd", "scratch"])
    assert table.equals(tables.paired_view(claims.paired_difference_table(df, ["kd", "scratch"])))


def test_sweep_table_by_hand():
    df = claims_frame()
    df["option"], df["value"] = None, None
    sweep = pd.DataFrame([
        {"group": "sweep", "method": "xdistill", "seed": 0, "option": "beta", "value": 3.0,
         "accuracy": 0.70, "agreement": 0.75},
        {"group": "sweep", "method": "xdistill", "seed": 0, "option": "fusion", "value": "gate",
         "accuracy": 0.60, "agreement": 0.65},
    ])
    options = tables.sweep_table(pd.concat([df, sweep], ignore_index=True),
                                 ["accuracy", "agreement", "cae/pearson"])
    assert list(options.index) == [("default", ""), ("beta", 3.0), ("fusion", "gate")]
    assert list(options.columns) == ["accuracy", "agreement"]  # cae/pearson is absent
    assert options.loc[("default", ""), "accuracy"] == pytest.approx(0.79)  # xdistill, seed 0
    assert options.loc[("fusion", "gate"), "agreement"] == pytest.approx(0.65)
    assert tables.sweep_table(df, ["accuracy"]).empty
    named = tables.sweep_table(pd.concat([df, sweep], ignore_index=True), ["agreement"],
                               labels={"agreement": "agreement with teacher"})
    assert list(named.columns) == ["agreement with teacher"]


def test_intervention_view():
    rows = []
    for seed, (own, zeroed) in enumerate([(0.80, 0.70), (0.82, 0.71), (0.84, 0.75)]):
        rows.append({"seed": seed, "intervention": "own", "accuracy": own})
        rows.append({"seed": seed, "intervention": "zeroed", "accuracy": zeroed})
    # the default table holds the one-sided 95 % bounds (t(0.95, 2) = 2.919986) and says so
    view = tables.intervention_view(stats.intervention_table(rows, metrics=["accuracy"]))
    half = 2.919986 * 0.01 / math.sqrt(3)
    column = "accuracy - own [one-sided 95 % bounds]"
    assert list(view.columns) == ["accuracy", column]
    assert view.loc["zeroed", "accuracy"] == "0.720"
    assert view.loc["zeroed", column] == f"-0.100 [{-0.10 - half:+.3f}, {-0.10 + half:+.3f}] (n=3)"
    two_sided = stats.intervention_table(rows, metrics=["accuracy"], confidence=0.95)
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert tables.intervention_view(two_sided).loc[
        "zeroed", "accuracy - own [two-sided 95 % interval]"] == (
        f"-0.100 [{-0.10 - half:+.3f}, {-0.10 + half:+.3f}] (n=3)")  # fmt: skip
    one = stats.intervention_table([r for r in rows if r["seed"] == 0], metrics=["accuracy"])
    assert tables.intervention_view(one).loc["zeroed", column] == "-0.100 (n=1, no interval)"


def test_interval_name():
    assert tables.interval_name(0.90) == "one-sided 95 % bounds"
    assert tables.interval_name(0.95) == "two-sided 95 % interval"
    assert tables.interval_name(0.99) == "two-sided 99 % interval"


# ----------------------------------------------------------------------- the verdicts


def test_part_label():
    assert tables.part_label(_part()) == "agreement kd - scratch"
    assert tables.part_label(_part(metric="gradcam/pearson")) == "Grad-CAM r kd - scratch"


def test_part_note():
    inside = _part(PV.NO_DIFFERENCE, lower=0.001, upper=0.004)
    assert tables.part_note(inside) == "kd > scratch, but within the margin"
    # a part shown worse reads opposite, and the note says when that is inside the margin
    below = _part(PV.OPPOSITE, lower=-0.004, upper=-0.001)
    assert tables.part_note(below) == "kd < scratch, within the margin"
    assert tables.part_note(_part(PV.OPPOSITE, lower=-0.010, upper=-0.001)) == ""
    assert tables.part_note(_part(PV.NO_DIFFERENCE, lower=-0.004, upper=0.004)) == ""
    # supported: whether the bound clears the margin, or only 0 with the estimate past it
    assert tables.part_note(_part(PV.SUPPORTED)) == "the bound clears the margin"
    assert tables.part_note(_part(PV.SUPPORTED, lower=0.002, upper=0.020)) == (
        "the bound clears 0, the estimate the margin")
    # shown at 5 % alone, not after Holm's control over the family
    lost = _part(PV.INCONCLUSIVE, lower=0.001, upper=0.03, p=0.04, p_holm=0.12)
    assert tables.part_note(lost) == "shown at 5 % alone, not under Holm's control"
    # "not higher": supported yet shown higher than 0 (within the margin)
    assert tables.part_note(_part(PV.SUPPORTED, "not higher", 0.001, 0.004)) == (
        "kd > scratch, but within the margin")
    assert tables.part_note(_part(PV.SUPPORTED, "not higher", -0.004, -0.001)) == ""
    skipped = claims.PartReading("C1", "kd", "scratch", "agreement", "higher", 0.006,
                                 PV.SKIPPED, reason="no runs of kd")  # fmt: skip
    assert tables.part_note(skipped) == "no runs of kd"


def test_format_part():
    assert tables.format_part(_part()) == (
        "agreement kd - scratch +0.060 [+0.043, +0.077] (one-sided 95 % bounds, n=10; "
        "margin 0.006): supported (the bound clears the margin)")
    inside = _part(PV.NO_DIFFERENCE, lower=0.001, upper=0.004, mean=0.002)
    assert tables.format_part(inside).endswith(
        "no difference beyond the margin (kd > scratch, but within the margin)")
    one = _part(PV.INCONCLUSIVE, lower=math.nan, upper=math.nan, n=1, mean=-0.03)
    assert tables.format_part(one) == "agreement kd - scratch -0.030 (n=1, no bounds): inconclusive"
    skipped = claims.PartReading("C1", "kd", "scratch", "agreement", "higher", 0.006,
                                 PV.SKIPPED, reason="no runs of kd")  # fmt: skip
    assert tables.format_part(skipped) == "agreement kd - scratch skipped: no runs of kd"


def test_power_at():
    assert tables.power_at(_part()) == "≥ 0.023"
    assert tables.power_at(_part(needs="not higher", detectable=0.0131)) == "≤ 0.013"
    assert tables.power_at(_part(needs="not higher", detectable=-0.004)) == "≤ -0.004"
    assert tables.power_at(_part(detectable=math.nan)) == ""


def test_format_power():
    assert tables.format_power(_part()) == (
        "agreement kd - scratch: significant from 0.017, supported with 80 % power at a true "
        "difference ≥ 0.023")
    one = _part(PV.INCONCLUSIVE, lower=math.nan, upper=math.nan, n=1)
    assert tables.format_power(one) == "agreement kd - scratch: none (n=1, no bounds)"
    skipped = claims.PartReading("C1", "kd", "scratch", "agreement", "higher", 0.006,
                                 PV.SKIPPED, reason="no runs of kd")  # fmt: skip
    assert tables.format_power(skipped) == "agreement kd - scratch: skipped"


def test_claim_sentences():
    text = tables.claim_sentences(claims.verdicts(claims_frame()))
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
    none = tables.claim_sentences([claims.ClaimReading("C9", CV.INCONCLUSIVE, ())])
    assert (none.loc["C9", "evidence"], none.loc["C9", "power"]) == ("no evidence", "none")


def test_verdict_table():
    table = tables.verdict_table(claims.verdicts(claims_frame()))
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
    one = tables.verdict_table(claims.verdicts(claims_frame(seeds=1)))
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
    text = tables.claim_sentences(readings)
    assert text.loc["C2", "verdict"] == "positive but below the margin"
    assert text.loc["C2", "evidence"].startswith("Accuracy xdistill - kd +0.005 [+0.003,")
    assert text.loc["C2", "evidence"].endswith("margin 0.006): positive but below the margin")
    table = tables.verdict_table(readings)
    row = table.loc[("C2", "positive but below the margin", "accuracy xdistill - kd")]
    assert row["reading"] == "positive but below the margin"


def _seed_out(verdict, *without):
    return claims.SeedOutReading("C2", verdict, tuple(enumerate(without)))


def test_leave_one_out_table():
    stable = _seed_out(CV.SUPPORTED, CV.SUPPORTED, CV.SUPPORTED, CV.SUPPORTED)
    fragile = claims.SeedOutReading("C3", CV.PARTLY_UNDECIDED, (
        (0, CV.PARTLY_UNDECIDED), (1, CV.INCONCLUSIVE), (2, CV.PARTLY_UNDECIDED),
        (3, CV.INCONCLUSIVE), (4, CV.NOT_SUPPORTED)))  # fmt: skip
    every = claims.SeedOutReading("C1", CV.SUPPORTED, ((0, CV.INCONCLUSIVE),))
    table = tables.leave_one_out_table([stable, fragile, every])
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
    text = tables.claim_sentences(claims.verdicts(claims_frame()))
    notebook.glue_verdicts(text)
    assert sorted(glued) == sorted(f"C{i}_{c}" for i in (1, 2, 3)
                                   for c in ("verdict", "evidence", "power"))  # fmt: skip
    assert glued["C2_verdict"] == "not supported"
    assert glued["C1_power"] == text.loc["C1", "power"]


def test_leave_one_out_table_shows_how_far_each_part_moves():
    readings = claims.leave_one_seed_out(claims_frame())
    c2 = tables.leave_one_out_table(readings).loc["C2", "estimates, one seed left out"]
    # accuracy xdistill - kd = [-0.03, -0.04, -0.05]: two seeds left give means -0.045,
    # -0.04, -0.035; the widest bounds are those of [-0.03, -0.05], sd 0.01414:
    # -0.04 -+ 6.314 x 0.01414 / sqrt(2) = -0.04 -+ 0.0631
    half = 6.313752 * 0.02 / math.sqrt(2) / math.sqrt(2)
    assert c2 == (f"accuracy xdistill - kd -0.045 to -0.035 [{-0.04 - half:+.3f}, "
                  f"{-0.04 + half:+.3f}]")
    assert c2.endswith("[-0.103, +0.023]")
    c3 = tables.leave_one_out_table(readings).loc["C3", "estimates, one seed left out"]
    assert c3.endswith("deployed explanation r xdistill - kd_cae —")
