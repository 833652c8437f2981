"""Figures of the book, with matplotlib: learning curves, soft targets, maps side by side."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

#: The width in inches of a figure the book shows at the page's width. At matplotlib's 100
#: dots an inch, about the pixels of the book's text column, so a figure is shown near its
#: own size and its text at the size it is drawn.
PAGE_WIDTH = 7.0
#: The font size of the readings written on a figure (the claims' verdicts), in points.
READING_FONTSIZE = 8


def plot_histories(histories: dict[str, list[dict]], keys: Sequence[str] = ("test_acc",),
                   labels: dict[str, str] | None = None):  # fmt: skip
    """One panel per history key (e.g. ``test_acc``, ``train_loss``), one line per run."""
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, hist in histories.items():
            rows = [h for h in hist if key in h]
            ax.plot([h["epoch"] for h in rows], [h[key] for h in rows], marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel((labels or {}).get(key, key))
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def plot_soft_targets(logits: torch.Tensor, temperatures: Sequence[float], classes: Sequence[str],
                      image: torch.Tensor | None = None):  # fmt: skip
    """The teacher's softmax at several temperatures for one image: the "dark knowledge".

    At ``t = 1`` nearly all mass sits on one class; higher temperatures reveal which
    wrong classes the teacher finds similar, which is what a KD student learns from.
    """
    from xdx_lib.distill.kd import soft_targets

    ncols = len(temperatures) + (image is not None)
    fig, axes = plt.subplots(1, ncols, figsize=(3.0 * ncols, 3.0))
    axes = list(axes)
    if image is not None:
        ax = axes.pop(0)
        ax.imshow(image.squeeze(0) if image.shape[0] == 1 else image.permute(1, 2, 0),
                  cmap="gray")  # fmt: skip
        ax.set_axis_off()
    for ax, t in zip(axes, temperatures):
        p = soft_targets(logits, t)
        ax.bar(range(len(classes)), p.numpy())
        ax.set_title(f"t = {t:g}")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(len(classes)))
        ax.set_xticklabels(classes, rotation=90, fontsize=7)
    fig.tight_layout()
    return fig


def show_maps(images: torch.Tensor, rows: dict[str, torch.Tensor], titles: Sequence[str] = (),
              cmap: str = "jet", alpha: float = 0.5):  # fmt: skip
    """A grid: the images on top, then one row per named set of maps overlaid on them.

    Args:
        images: ``[N, C, H, W]`` in [0, 1].
        rows: row label -> maps ``[N, 1, H, W]`` in [0, 1].
        titles: optional column titles (e.g. class names).
    """
    n = images.shape[0]
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.5 * n, 1.5 * (1 + len(rows))),
                             squeeze=False)  # fmt: skip
    grey = images.mean(1) if images.shape[1] > 1 else images[:, 0]
    for j in range(n):
        axes[0][j].imshow(grey[j] if images.shape[1] == 1 else images[j].permute(1, 2, 0),
                          cmap="gray")  # fmt: skip
        if j < len(titles):
            axes[0][j].set_title(titles[j], fontsize=7)
        for i, maps in enumerate(rows.values(), start=1):
            axes[i][j].imshow(grey[j], cmap="gray")
            axes[i][j].imshow(maps[j, 0], cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].set_ylabel("image", fontsize=8)
    for i, label in enumerate(rows, start=1):
        axes[i][0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


def plot_agreement_matrix(agree):
    """A heat map of pairwise agreement (e.g. mean Pearson r between explainers' maps).

    Args:
        agree: a square pandas DataFrame, rows and columns named alike, values in [-1, 1].
    """
    names = list(agree.index)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(agree.values.astype(float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{agree.values[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def plot_speed_quality(table, speed: str = "images/s", quality: str = "Pearson",
                       reference: float | None = None, reference_label: str = "reference",
                       squares: Sequence = ()):  # fmt: skip
    """Quality against speed (log scale), one labelled marker per row of ``table``.

    The rows named in ``squares`` (e.g. the CAEs, beside the explainers they replace) are
    squares, the others circles; ``reference`` draws a dashed horizontal line (e.g. what the
    mean-map reference scores).
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    squares = set(squares)
    for how, r in table.iterrows():
        marker = "s" if how in squares else "o"
        ax.scatter(r[speed], r[quality], marker=marker)
        ax.annotate(str(how), (r[speed], r[quality]), fontsize=7, xytext=(4, 2),
                    textcoords="offset points")  # fmt: skip
    if reference is not None:
        ax.axhline(reference, color="grey", ls="--", lw=1)
        ax.text(ax.get_xlim()[0], reference, f" {reference_label}", fontsize=7, va="bottom",
                color="grey")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(f"{speed} (log scale, this machine)")
    ax.set_ylabel(quality)
    fig.tight_layout()
    return fig


def _forest_rows(diffs, parts):
    """``diffs`` and the claims' parts that were read (not skipped) as DataFrames."""
    import pandas as pd

    from xdx_lib.analysis.claims import PartVerdict

    def frame(x):
        return x if isinstance(x, pd.DataFrame) else pd.DataFrame(list(x))

    cols = ["claim", "a", "b", "metric", "mean", "lower", "upper", "margin", "verdict"]
    parts = frame(parts) if parts is not None and len(parts) else pd.DataFrame(columns=cols)
    return frame(diffs), parts[parts["verdict"] != PartVerdict.SKIPPED]


def _draw_part(ax, y: float, p) -> None:
    """One claim's part on row ``y``: its margin band, one-sided bounds and reading."""
    import math

    m = p["margin"]
    band = ax.fill_betweenx([y - 0.4, y + 0.4], -m, m, color="C2", alpha=0.15, lw=0)
    band.set_gid("margin")
    if not math.isnan(p["lower"]):
        ax.hlines(y, p["lower"], p["upper"], color="black", lw=5, alpha=0.35,
                  gid="one-sided bounds")  # fmt: skip
    x = 0.0 if math.isnan(p["mean"]) else p["mean"]
    ax.annotate(f"{p['claim']}: {p['verdict'].value}", (x, y), xytext=(0, -7),
                textcoords="offset points", va="top", fontsize=READING_FONTSIZE,
                bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1},
                gid="verdict")  # fmt: skip


def _keep_readings_inside(ax) -> None:
    """Each reading runs from its marker towards the panel's middle, so it stays inside."""
    lo, hi = ax.get_xlim()
    for text in ax.texts:
        if text.get_gid() == "verdict":
            text.set_horizontalalignment("left" if text.xy[0] < (lo + hi) / 2 else "right")


def _draw_differences(ax, rows, pairs) -> None:
    """One metric's paired differences: a marker and interval per pair, the zero line."""
    import math

    ys = [pairs.index((a, b)) for a, b in zip(rows["a"], rows["b"])]
    colours = []
    for y, (_, r) in zip(ys, rows.iterrows()):
        shown = not math.isnan(r["lower"]) and (r["lower"] > 0 or r["upper"] < 0)
        colours.append("C0" if shown else "grey")
        if not math.isnan(r["lower"]):
            ax.hlines(y, r["lower"], r["upper"], color=colours[-1], lw=1.5, gid="interval")
    fills = ["none" if math.isnan(lo) else c for lo, c in zip(rows["lower"], colours)]
    means = ax.scatter(rows["mean"], ys, edgecolors=colours, facecolors=fills, zorder=3)
    means.set_gid("means")
    ax.axvline(0, color="black", lw=0.8, ls="--", gid="zero-line")


def forest_plot(diffs, labels: dict[str, str] | None = None, parts=None, columns: int = 1):
    """Every paired difference with its interval: one panel per metric, one row per pair.

    Args:
        diffs: a DataFrame or a list of dicts with ``a``, ``b``, ``metric``, ``mean``,
            ``lower``, ``upper`` (e.g. :func:`xdx_lib.analysis.claims.paired_difference_table`).
        labels: optional metric -> axis label.
        parts: optional parts of the claims, a DataFrame or list of dicts with ``claim``,
            ``a``, ``b``, ``metric``, ``mean``, ``lower``, ``upper``, ``margin`` and
            ``verdict`` (:func:`xdx_lib.analysis.claims.claim_parts`, on the same runs as
            ``diffs``); skipped parts are not drawn.
        columns: panels a row. The figure is :data:`PAGE_WIDTH` wide whatever their
            number, so that the book shows it near its own size: one a row (the default)
            leaves room for the readings at :data:`READING_FONTSIZE`.

    Each panel has a dashed vertical line at zero; a difference whose interval (thin bar)
    excludes zero is drawn in colour, the others in grey; one without an interval (one
    seed) is a hollow marker. On the row of each claim's part, a shaded band spans
    ``-margin`` to ``+margin``, a thick grey bar spans the one-sided 95 % bounds the
    verdict reads, and the part's reading is written under the marker, running towards
    the panel's middle. The panels' x scales differ: accuracy and correlation differences
    are not on one scale; every panel names its pairs, so each reads on its own.
    """
    rows, parts = _forest_rows(diffs, parts)
    metrics = list(dict.fromkeys([*rows["metric"], *parts["metric"]]))
    pairs = list(dict.fromkeys([*zip(rows["a"], rows["b"]), *zip(parts["a"], parts["b"])]))
    ncols = max(1, min(columns, len(metrics)))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(PAGE_WIDTH, nrows * (0.42 * len(pairs) + 0.9)))  # fmt: skip
    for ax in axes.flat[len(metrics):]:
        fig.delaxes(ax)
    for ax, metric in zip(axes.flat, metrics):
        for _, p in parts[parts["metric"] == metric].iterrows():
            _draw_part(ax, pairs.index((p["a"], p["b"])), p)
        _draw_differences(ax, rows[rows["metric"] == metric], pairs)
        ax.set_title(f"{(labels or {}).get(metric, metric)}: A - B", fontsize=10, loc="left")
        ax.set_yticks(range(len(pairs)), [f"{a} - {b}" for a, b in pairs])
        ax.set_ylim(len(pairs) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        _keep_readings_inside(ax)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_similarity(table, similarity: str = "gradcam/pearson",
                                accuracy: str = "accuracy",
                                references: dict[str, float] | None = None,
                                xlabel: str = "Grad-CAM Pearson r with the teacher",
                                ylabel: str = "test accuracy"):  # fmt: skip
    """Accuracy against explanation similarity, one marker per method with error bars.

    Args:
        table: a :func:`xdx_lib.analysis.stats.summary` table (rows: methods; columns
            ``(metric, "mean")`` and ``(metric, "std")``); the bars are one standard
            deviation over seeds (none with one seed).
        references: optional name -> similarity of an image-blind reference map, drawn as
            dashed vertical lines (what a map that ignores the image scores).
    """
    import math

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (method, r) in enumerate(table.iterrows()):
        x, y = r[(similarity, "mean")], r[(accuracy, "mean")]
        xerr, yerr = r[(similarity, "std")], r[(accuracy, "std")]
        ax.errorbar(x, y, xerr=None if math.isnan(xerr) else xerr,
                    yerr=None if math.isnan(yerr) else yerr, fmt="o", color=f"C{i}",
                    capsize=3, label=str(method))  # fmt: skip
        ax.annotate(str(method), (x, y), fontsize=8, xytext=(5, 4), textcoords="offset points")
    for name, value in (references or {}).items():
        ax.axvline(value, color="grey", ls="--", lw=1)
        ax.text(value, ax.get_ylim()[0], f" {name}", rotation=90, fontsize=7, color="grey",
                va="bottom")  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
