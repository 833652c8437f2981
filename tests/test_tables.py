"""Each table and sentence the chapters show, one test per renderer, on numbers by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from frames import claims_frame, paired_frame

from xdx_lib.analysis import claims, stats
from xdx_lib.report import tables

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
