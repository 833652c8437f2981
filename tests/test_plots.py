"""What the results figures draw: axes, labels, one marker per row, the zero line."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from xdx_lib import plots, report  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _diffs():
    rows = []
    for a, b in [("kd", "scratch"), ("xdistill", "kd"), ("at", "kd")]:
        for metric, low in [("accuracy", 0.01), ("gradcam/pearson", -0.1)]:
            rows.append({"a": a, "b": b, "metric": metric, "n": 3, "mean": low + 0.05,
                         "low": low, "high": low + 0.1})
    rows.append({"a": "e2kd", "b": "kd", "metric": "accuracy", "n": 1, "mean": 0.02,
                 "low": math.nan, "high": math.nan})
    return pd.DataFrame(rows)


def test_forest_plot_one_panel_per_metric_one_row_per_pair_and_zero_line():
    fig = plots.forest_plot(_diffs(), labels={"gradcam/pearson": "Grad-CAM r"})
    axes = fig.axes
    assert len(axes) == 2
    assert axes[0].get_xlabel().startswith("accuracy")
    assert axes[1].get_xlabel().startswith("Grad-CAM r")
    ticks = [t.get_text() for t in axes[0].get_yticklabels()]
    assert ticks == ["kd - scratch", "xdistill - kd", "at - kd", "e2kd - kd"]
    # one marker per pair and metric: 4 on accuracy (one without interval), 3 on r
    assert [len(ax.collections[-1].get_offsets()) for ax in axes] == [4, 3]
    for ax in axes:
        zero = [ln for ln in ax.get_lines() if ln.get_gid() == "zero-line"]
        assert len(zero) == 1 and list(zero[0].get_xdata()) == [0, 0]
    # intervals: 3 drawn on accuracy (the n=1 row has none), 3 on r
    assert [len(ax.collections) - 1 for ax in axes] == [3, 3]


def test_forest_plot_takes_report_output():
    rows = []
    for seed, (a, b) in enumerate([(0.80, 0.78), (0.82, 0.79), (0.84, 0.83)]):
        rows += [{"group": "main", "method": "kd", "seed": seed, "accuracy": a},
                 {"group": "main", "method": "scratch", "seed": seed, "accuracy": b}]
    diffs = report.paired_differences(pd.DataFrame(rows))
    fig = plots.forest_plot(diffs)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].collections[-1].get_offsets()) == 1


def _summary():
    rows = []
    for method, accs, rs in [("scratch", [0.80, 0.82], [0.3, 0.4]),
                             ("kd", [0.84, 0.86], [0.35, 0.45]),
                             ("xdistill", [0.85, 0.85], [0.6, 0.7])]:
        for seed, (acc, r) in enumerate(zip(accs, rs)):
            rows.append({"group": "main", "method": method, "seed": seed, "accuracy": acc,
                         "gradcam/pearson": r})
    return report.summary(pd.DataFrame(rows), ["accuracy", "gradcam/pearson"])


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
