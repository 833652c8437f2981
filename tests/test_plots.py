"""What the results figures draw: axes, labels, one marker per row, the zero line."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from xdx_lib.analysis import claims, stats  # noqa: E402
from xdx_lib.report import plots, tables


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _diffs():
    rows = []
    for a, b in [("kd", "scratch"), ("xdistill", "kd"), ("at", "kd")]:
        for metric, lower in [("accuracy", 0.01), ("gradcam/pearson", -0.1)]:
            rows.append({"a": a, "b": b, "metric": metric, "n": 3, "mean": lower + 0.05,
                         "lower": lower, "upper": lower + 0.1})
    rows.append({"a": "e2kd", "b": "kd", "metric": "accuracy", "n": 1, "mean": 0.02,
                 "lower": math.nan, "upper": math.nan})
    return pd.DataFrame(rows)


def _by_gid(ax, gid):
    return [a for a in [*ax.collections, *ax.lines, *ax.texts] if a.get_gid() == gid]


def test_forest_plot_one_panel_per_metric_one_row_per_pair_and_zero_line():
    fig = plots.forest_plot(_diffs(), labels={"gradcam/pearson": "Grad-CAM r"})
    axes = fig.axes
    assert len(axes) == 2
    assert axes[0].get_title(loc="left") == "accuracy: A - B"
    assert axes[1].get_title(loc="left") == "Grad-CAM r: A - B"
    # every panel names its pairs, so each reads on its own
    for ax in axes:
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        assert ticks == ["kd - scratch", "xdistill - kd", "at - kd", "e2kd - kd"]
    # one marker per pair and metric: 4 on accuracy (one without interval), 3 on r
    assert [len(_by_gid(ax, "means")[0].get_offsets()) for ax in axes] == [4, 3]
    for ax in axes:
        zero = _by_gid(ax, "zero-line")
        assert len(zero) == 1 and list(zero[0].get_xdata()) == [0, 0]
    # intervals: 3 drawn on accuracy (the n=1 row has none), 3 on r; the accuracy ones
    # exclude zero and are in colour, the r ones hold it and are grey
    assert [len(_by_gid(ax, "interval")) for ax in axes] == [3, 3]
    acc = _by_gid(axes[0], "interval")[0]
    assert acc.get_segments()[0][:, 0].tolist() == pytest.approx([0.01, 0.11])
    assert _by_gid(axes[1], "means")[0].get_edgecolors()[0].tolist() == pytest.approx(
        list(matplotlib.colors.to_rgba("grey")))
    # no claims' parts given: no margins, bounds or verdicts
    assert not any(_by_gid(ax, g) for ax in axes for g in ("margin", "verdict"))


def _claims_runs():
    rows = []
    # kd - scratch = [0.04, 0.05, 0.03]; xdistill - kd = [0.001, 0.002, 0.003]
    for seed, (s, k, x) in enumerate([(0.80, 0.84, 0.841), (0.81, 0.86, 0.862),
                                      (0.82, 0.85, 0.853)]):
        for method, acc in (("scratch", s), ("kd", k), ("xdistill", x)):
            rows.append({"group": "claims", "method": method, "seed": seed, "accuracy": acc,
                         "agreement": acc})
    return pd.DataFrame(rows)


def test_forest_plot_draws_each_parts_margin_bounds_and_verdict():
    df = _claims_runs()
    diffs = claims.paired_difference_table(df, group="claims")
    parts = claims.claim_parts(df, group="claims")
    fig = plots.forest_plot(diffs, labels=tables.METRIC_LABELS, parts=parts)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["accuracy: A - B",
                                                            "agreement: A - B"]
    acc_ax, agree_ax = fig.axes
    # C2 reads accuracy xdistill - kd; C1 agreement kd - scratch and C3 agreement
    # xdistill - kd; the Grad-CAM and deployed r are not in these runs: skipped, not drawn
    read = parts[parts.verdict != claims.PartVerdict.SKIPPED]
    assert len(read) == 3
    for ax, metric in ((acc_ax, "accuracy"), (agree_ax, "agreement")):
        mine = read[read.metric == metric]
        bands = _by_gid(ax, "margin")
        assert len(bands) == len(mine)
        for band, margin in zip(bands, mine.margin):
            xs = band.get_paths()[0].vertices[:, 0]
            assert (xs.min(), xs.max()) == pytest.approx((-margin, margin))
        assert list(mine.margin) == [0.006] * len(mine)
        bounds = _by_gid(ax, "one-sided bounds")
        assert len(bounds) == len(mine)
        for line, (_, p) in zip(bounds, mine.iterrows()):
            assert line.get_segments()[0][:, 0].tolist() == pytest.approx([p.lower, p.upper])
    # C1: kd - scratch = [0.04, 0.05, 0.03], bounds 0.04 -+ t(0.95, 2) 0.01 / sqrt(3)
    c1 = _by_gid(agree_ax, "one-sided bounds")[0].get_segments()[0][:, 0]
    assert c1.tolist() == pytest.approx([0.04 - 0.016859, 0.04 + 0.016859], abs=1e-6)
    assert [t.get_text() for t in _by_gid(acc_ax, "verdict")] == [
        "C2: no difference beyond the margin"]
    assert [t.get_text() for t in _by_gid(agree_ax, "verdict")] == [
        "C1: supported", "C3: no difference beyond the margin"]
    # the verdict is written on its pair's row
    (c2,) = _by_gid(acc_ax, "verdict")
    ticks = [t.get_text() for t in acc_ax.get_yticklabels()]
    assert c2.xy[1] == ticks.index("xdistill - kd")


def test_forest_plot_is_page_wide_one_panel_a_row_or_as_many_as_asked():
    df = _claims_runs()
    diffs = claims.paired_difference_table(df, group="claims")
    fig = plots.forest_plot(diffs, parts=claims.claim_parts(df, group="claims"))
    # one panel a row, stacked, at the page's width whatever the number of panels
    assert fig.get_size_inches()[0] == plots.PAGE_WIDTH
    (x0, *_), (x1, *_) = (ax.get_position().bounds for ax in fig.axes)
    assert x0 == pytest.approx(x1)
    assert fig.axes[0].get_position().y0 > fig.axes[1].get_position().y1
    # the readings at a size the page shows, each running from its marker into its panel
    assert sum(len(_by_gid(ax, "verdict")) for ax in fig.axes) == 3
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        for text in _by_gid(ax, "verdict"):
            assert text.get_fontsize() == plots.READING_FONTSIZE >= 8
            left = text.xy[0] < (lo + hi) / 2
            assert text.get_horizontalalignment() == ("left" if left else "right")
    three = _diffs().assign(metric=lambda d: d.metric.where(d.a != "at", "ssim"))
    two = plots.forest_plot(three, parts=[], columns=2)
    assert len(two.axes) == 3  # the empty fourth panel is removed
    assert two.get_size_inches()[0] == plots.PAGE_WIDTH
    assert two.axes[0].get_position().y0 == pytest.approx(two.axes[1].get_position().y0)


def test_forest_plot_takes_the_paired_difference_table():
    rows = []
    for seed, (a, b) in enumerate([(0.80, 0.78), (0.82, 0.79), (0.84, 0.83)]):
        rows += [{"group": "main", "method": "kd", "seed": seed, "accuracy": a},
                 {"group": "main", "method": "scratch", "seed": seed, "accuracy": b}]
    diffs = claims.paired_difference_table(pd.DataFrame(rows))
    fig = plots.forest_plot(diffs, parts=[])
    assert len(fig.axes) == 1
    assert len(_by_gid(fig.axes[0], "means")[0].get_offsets()) == 1


def _summary():
    rows = []
    for method, accs, rs in [("scratch", [0.80, 0.82], [0.3, 0.4]),
                             ("kd", [0.84, 0.86], [0.35, 0.45]),
                             ("xdistill", [0.85, 0.85], [0.6, 0.7])]:
        for seed, (acc, r) in enumerate(zip(accs, rs)):
            rows.append({"group": "main", "method": method, "seed": seed, "accuracy": acc,
                         "gradcam/pearson": r})
    return stats.summary(pd.DataFrame(rows), ["accuracy", "gradcam/pearson"])


def test_accuracy_vs_similarity_one_marker_per_method_with_error_bars():
    fig = plots.plot_accuracy_vs_similarity(_summary(), references={"centred blob": 0.2})
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Grad-CAM Pearson r with the teacher"
    assert ax.get_ylabel() == "test accuracy"
    assert len(ax.containers) == 3  # one errorbar per method
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["scratch", "kd", "xdistill"]
    kd = ax.containers[1]
    assert kd.lines[0].get_xdata()[0] == pytest.approx(0.40)
    assert kd.lines[0].get_ydata()[0] == pytest.approx(0.85)
    assert kd.has_xerr and kd.has_yerr
    assert any(list(ln.get_xdata()) == [0.2, 0.2] for ln in ax.get_lines())  # the reference


def test_accuracy_vs_similarity_one_seed_has_no_bars():
    table = _summary()
    table[("accuracy", "std")] = math.nan
    table[("gradcam/pearson", "std")] = math.nan
    fig = plots.plot_accuracy_vs_similarity(table)
    assert not any(c.has_xerr or c.has_yerr for c in fig.axes[0].containers)


def test_speed_quality_draws_the_named_rows_as_squares_whatever_their_names():
    table = pd.DataFrame({"images/s": [10.0, 1000.0, 500.0], "Pearson": [0.9, 0.7, 0.6]},
                         index=["gradcam", "CAE grid", "a decoder"])  # fmt: skip
    fig = plots.plot_speed_quality(table, squares=["CAE grid", "a decoder"], reference=0.5)
    ax = fig.axes[0]
    markers = {t.get_text(): c.get_paths()[0].vertices.shape[0]
               for t, c in zip(ax.texts, ax.collections)}  # fmt: skip
    square, circle = markers["CAE grid"], markers["gradcam"]
    assert square != circle and markers["a decoder"] == square
    assert ax.get_xscale() == "log" and ax.lines[0].get_ydata()[0] == 0.5
    unnamed = plots.plot_speed_quality(table).axes[0]  # no name makes a square by itself
    assert len({c.get_paths()[0].vertices.shape[0] for c in unnamed.collections}) == 1
