"""The tables and sentences the chapters show: every format of the numbers in one place.

The numbers come from :mod:`xdx_lib.analysis.stats` (means over seeds, paired differences) and
:mod:`xdx_lib.analysis.claims` (the claims' readings); this module only names and formats them.
Every interval is written by one function, :func:`format_interval` (``+0.012 [-0.004,
+0.028] (n=3)``); columns are named by :func:`display_label`, metrics by
:data:`METRIC_LABELS`, verdicts by their enum's value; a value that was not measured, or
does not apply, is shown as :data:`MISSING` in every table (:func:`styled` for the tables
of numbers), and the chapter says under the table why it is missing.

The tables: ``mean ± std`` over seeds (:func:`mean_std_table`), means (:func:`mean_table`),
the references (:func:`reference_table`), faithfulness (:func:`faithfulness_table`), one
row per model (:func:`scores_table`), the paired differences (:func:`paired_table`),
XDistillation's options (:func:`sweep_table`, the book's table T4) and what XDistillation
students take from their maps (:func:`intervention_view`, T5). The claims' verdicts are
shown by :mod:`xdx_lib.report.verdict_tables`; :func:`sentences` writes every sentence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd

from xdx_lib.analysis.claims import (
    PAIR_METRICS,
    PAIRS,
    paired_difference_table,
)
from xdx_lib.analysis.stats import ALPHA, PairedDifference, summary
from xdx_lib.core.kinds import RunGroup
from xdx_lib.metrics.names import CAE, FAITHFULNESS_METRICS, faithfulness_key, keys_of, metric_key

#: How a display table names a metric's column (:func:`display_label`): a mapping from the
#: metric's name, a function of it, or None for the name itself.
Labels = Mapping[str, str] | Callable[[str], str] | None

#: Short names of the metrics in tables, evidence strings and figures.
METRIC_LABELS: dict[str, str] = {
    "accuracy": "accuracy",
    "agreement": "agreement",
    "gradcam/pearson": "Grad-CAM r",
    "gradcam/topk_iou": "Grad-CAM top-10% IoU",
    "deployed/pearson": "deployed explanation r",
    "cae/pearson": "CAE r",
}


def metric_label(metric: str) -> str:
    """The short name of ``metric`` (:data:`METRIC_LABELS`), else the metric key itself."""
    return METRIC_LABELS.get(metric, metric)


#: What a table shows for a value that was not measured or does not apply (a method
#: without a CAE has no CAE-map score): a dash, never ``nan`` or a blank a reader could
#: take for a value lost.
MISSING = "—"


def styled(table: pd.DataFrame, formats: str | Mapping[str, str] | None = None,
           precision: int = 3):  # fmt: skip
    """``table`` of numbers as the chapters show it: a pandas Styler with ``formats`` (one
    format string, or column -> format string), other numbers at ``precision`` decimals and
    missing values (NaN) as :data:`MISSING`."""
    return table.style.format(formats, precision=precision, na_rep=MISSING)


def display_label(metric: str, labels: Labels = None, strip: str = "") -> str:
    """A table column's name for ``metric``: ``strip`` (a prefix the columns share, such as
    ``"gradcam/"``) left out, then renamed by ``labels`` (a mapping, where the name is not
    in it left as it is, or a function)."""
    name = metric.removeprefix(strip)
    if callable(labels):
        return labels(name)
    return (labels or {}).get(name, name)


# ---------------------------------------------------------------------------- intervals


def format_interval(mean: float, lower: float, upper: float, digits: int = 3, note: str = "",
                    no_bounds: str = "") -> str:  # fmt: skip
    """``+0.012 [-0.004, +0.028] (note)``: a signed mean and its bounds, then ``note`` in
    parentheses; without bounds (NaN ``lower``: one seed) the mean and ``no_bounds`` in
    parentheses. An empty note leaves the parentheses out. Every interval the book shows
    is written by this function."""
    f = f"+.{digits}f"
    if math.isnan(lower):
        return f"{mean:{f}}" + (f" ({no_bounds})" if no_bounds else "")
    return f"{mean:{f}} [{lower:{f}}, {upper:{f}}]" + (f" ({note})" if note else "")


def format_difference(d: PairedDifference, digits: int = 3) -> str:
    """``+0.012 [-0.004, +0.028] (n=3)``, or ``+0.012 (n=1, no interval)`` with one seed."""
    return format_interval(d.mean, d.lower, d.upper, digits, f"n={d.n}", f"n={d.n}, no interval")


def direction(d: PairedDifference) -> str:
    """``"A > B"``, ``"A < B"`` (the interval excludes 0:
    :attr:`~xdx_lib.analysis.stats.PairedDifference.sign`) or ``"no difference shown"``."""
    if d.sign > 0:
        return f"{d.a} > {d.b}"
    if d.sign < 0:
        return f"{d.a} < {d.b}"
    return "no difference shown"


def _fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, :data:`MISSING` for NaN (no bounds: one seed)."""
    return MISSING if math.isnan(value) else f"{value:.{digits}f}"


# ------------------------------------------------------------------- means over seeds


def _mean_std(mean: float, std: float, digits: int, missing: str) -> str:
    """``mean ± std``; the mean alone without a spread (one seed); ``missing`` without a mean."""
    if math.isnan(mean):
        return missing
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def mean_std_strings(table: pd.DataFrame, digits: int = 3, labels: Labels = None, strip: str = "",
                     missing: str = MISSING) -> pd.DataFrame:  # fmt: skip
    """A :func:`~xdx_lib.analysis.stats.summary` table as ``mean ± std`` strings, for display, with
    a
    ``seeds`` column.

    Each metric's column is named by :func:`display_label` (``labels``, ``strip``); a metric
    without a mean (NaN: the method has no such map) shows ``missing``.
    """
    metrics = [m for m in dict.fromkeys(c[0] for c in table.columns) if m != "n"]
    out = pd.DataFrame(index=table.index)
    for m in metrics:
        mean, std = table[(m, "mean")], table[(m, "std")]
        out[display_label(m, labels, strip)] = [_mean_std(a, s, digits, missing)
                                                for a, s in zip(mean, std)]  # fmt: skip
    out["seeds"] = table[("n", "")]
    return out


def mean_std_table(df: pd.DataFrame, metrics: Sequence[str], labels: Labels = None,
                   strip: str = "", group: str | None = RunGroup.MAIN, by: str = "method",
                   digits: int = 3, missing: str = MISSING) -> pd.DataFrame:  # fmt: skip
    """The ``mean ± std`` over seeds of each metric, one row per ``by`` value, as the
    chapters show it: :func:`~xdx_lib.analysis.stats.summary` (``group``, ``by``) read by
    :func:`mean_std_strings` (``digits``, ``labels``, ``strip``, ``missing``)."""
    return mean_std_strings(summary(df, metrics, group, by), digits, labels, strip, missing)


def mean_table(df: pd.DataFrame, metrics: Sequence[str], labels: Labels = None,
               group: str | None = RunGroup.MAIN, by: str = "method") -> pd.DataFrame:  # fmt: skip
    """The mean over seeds of each metric (:func:`~xdx_lib.analysis.stats.summary`), one row per
    ``by`` value, as numbers; columns named by :func:`display_label` (``labels``)."""
    means = summary(df, metrics, group, by)
    return pd.DataFrame({display_label(m, labels): means[(m, "mean")] for m in metrics})


def reference_table(df: pd.DataFrame, maps: str = "gradcam",
                    labels: Labels = None) -> pd.DataFrame:  # fmt: skip
    """What the image-blind reference maps score (the rows of group ``reference``): one row
    per reference, one column per metric measured of ``maps``
    (:func:`~xdx_lib.metrics.names.keys_of`),
    named by :func:`display_label` (``labels``, the maps' name left out)."""
    refs = df[df["group"] == RunGroup.REFERENCE].set_index("method")
    cols = keys_of(refs.columns, maps)
    shared = metric_key(maps, "")
    return refs[cols].rename(columns=lambda c: display_label(c, labels, shared)).rename_axis(None)


#: Each map whose faithfulness a result holds, by the word a table shows for it, each
#: model's Grad-CAM and XDistillation's CAE map (:data:`~xdx_lib.metrics.names.JUDGED_MAPS`).
FAITHFULNESS_MAPS: dict[str, str] = {"gradcam": "Grad-CAM", CAE: "CAE"}


def faithfulness_table(df: pd.DataFrame, judge: str = "model", group: str = RunGroup.MAIN,
                       digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """Deletion and insertion AUC of each method's maps, ``mean ± std`` over seeds.

    ``judge``: ``"model"`` (the model that made the maps scores them) or ``"teacher"`` (does
    the student's map point at what matters to the teacher?). Columns ``"<map> deletion"``
    and ``"<map> insertion"`` for the maps of :data:`FAITHFULNESS_MAPS` present in ``df``,
    :data:`MISSING` for a method without such a map, then ``seeds``.
    """
    if judge not in ("model", "teacher"):
        raise ValueError(f"faithfulness_table: judge {judge!r}; choose model or teacher")
    names = {faithfulness_key(maps, judge, k): f"{who} {k}"
             for maps, who in FAITHFULNESS_MAPS.items() for k in FAITHFULNESS_METRICS}  # fmt: skip
    cols = [c for c in df.columns if c in names]
    return mean_std_table(df, cols, names, group=group, digits=digits)


def scores_table(scores: Mapping[str, Mapping[str, float]], labels: Mapping[str, str],
                 index: str = "method") -> pd.DataFrame:  # fmt: skip
    """One row per model of ``scores`` (``{name: {metric: value}}``, e.g. from
    :func:`~xdx_lib.evaluation.scoring.evaluate_model`), one column per metric of ``labels`` in its
    order, named by it; a metric a model lacks is NaN and ``parameters`` are integers."""
    table = pd.DataFrame.from_dict(scores, orient="index").reindex(columns=list(labels))
    table = table.rename(columns=labels).rename_axis(index)
    return table.astype({labels[k]: int for k in ("parameters",) if k in labels})


# ------------------------------ paired differences, the options (table T4), the maps (T5)


def paired_view(diffs: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A :func:`~xdx_lib.analysis.claims.paired_difference_table` frame as the results chapter shows
    it.

    Indexed by ``("A - B", "metric")``, with ``difference [two-sided 95 % interval]``
    (:func:`format_difference`), ``reading`` (:func:`direction`) and ``significant from``
    (the interval's half-width: the smallest observed difference it calls significant).
    The interval is two-sided because the table reads either direction; the verdicts
    (:func:`~xdx_lib.report.verdict_tables.verdict_table`) test the one direction a claim
    names, with one-sided bounds.
    """
    fields = [f.name for f in dataclasses.fields(PairedDifference)]
    rows = []
    for row in diffs.to_dict("records"):
        d = PairedDifference(**{k: row[k] for k in fields})
        rows.append({"A - B": f"{d.a} - {d.b}", "metric": metric_label(d.metric),
                     "difference [two-sided 95 % interval]": format_difference(d, digits),
                     "reading": direction(d),
                     "significant from": _fixed(row["half_width"], digits)})  # fmt: skip
    columns = ["A - B", "metric", "difference [two-sided 95 % interval]", "reading",
               "significant from"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).set_index(["A - B", "metric"])


def paired_table(df: pd.DataFrame, methods: Iterable[str] | None = None,
                 pairs: Sequence[tuple[str, str]] = PAIRS,
                 metrics: Sequence[str] = PAIR_METRICS, group: str = RunGroup.MAIN,
                 digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """The paired-difference table of one group (:func:`paired_view` of
    :func:`~xdx_lib.analysis.claims.paired_difference_table`; arguments as the latter's)."""
    return paired_view(paired_difference_table(df, methods, pairs, metrics, group=group), digits)


def sweep_table(df: pd.DataFrame, metrics: Sequence[str], method: str = "xdistill",
                sweep_group: str = RunGroup.SWEEP, main_group: str = RunGroup.MAIN,
                labels: Labels = None) -> pd.DataFrame:  # fmt: skip
    """XDistillation's options (the book's table T4): the mean over the sweep seeds of each
    option value, beside the default run.

    One row per ``(option, value)`` of the ``sweep_group`` runs, in order of first
    appearance, after a ``("default", "")`` row: the ``method`` runs of ``main_group`` on
    the same seeds. Metrics absent from ``df`` are left out; columns are named by
    :func:`display_label` (``labels``, e.g. :data:`METRIC_LABELS`); no sweep runs give an
    empty frame.
    """
    sweep = df[df["group"] == sweep_group]
    cols = [m for m in metrics if m in df.columns]
    if not len(sweep):
        return pd.DataFrame()
    seeds = set(sweep["seed"])
    default = df[(df["group"] == main_group) & (df["method"] == method) & df["seed"].isin(seeds)]
    rows = [{"option": "default", "value": "", **default[cols].mean().to_dict()}]
    for (opt, val), part in sweep.groupby(["option", "value"], sort=False):
        rows.append({"option": opt, "value": val, **part[cols].mean().to_dict()})
    table = pd.DataFrame(rows, columns=["option", "value", *cols]).set_index(["option", "value"])
    return table.rename(columns=lambda c: display_label(c, labels))


def interval_name(confidence: float) -> str:
    """How a table names a t interval at ``confidence``: ``"one-sided 95 % bounds"`` for
    the claims' 90 % interval (:data:`~xdx_lib.analysis.stats.ALPHA`), whose ends the part rule
    reads
    one at a time, else ``"two-sided 95 % interval"`` (at its confidence)."""
    if math.isclose(confidence, 1 - 2 * ALPHA):
        return f"one-sided {100 * (1 - ALPHA):g} % bounds"
    return f"two-sided {100 * confidence:g} % interval"


def intervention_view(table: pd.DataFrame, baseline: str = "own", digits: int = 3,
                      labels: Labels = None) -> pd.DataFrame:  # fmt: skip
    """An :func:`~xdx_lib.analysis.stats.intervention_table` as the book shows it (table T5): per
    metric (named by :func:`display_label` with ``labels``) its mean and ``- <baseline>
    [<interval>]``, the difference from the baseline with its interval
    (:func:`format_difference`), named by :func:`interval_name` from the table's
    ``attrs["confidence"]`` (95 % two-sided when absent)."""
    metrics = [m for m in dict.fromkeys(c[0] for c in table.columns) if m != "n"]
    interval = interval_name(table.attrs.get("confidence", 0.95))
    out = pd.DataFrame(index=table.index)
    for m in metrics:
        name = display_label(m, labels)
        out[name] = [f"{v:.{digits}f}" for v in table[(m, "mean")]]
        out[f"{name} - {baseline} [{interval}]"] = [
            format_difference(PairedDifference(str(i), baseline, m, int(n), d, math.nan, lo, hi),
                              digits)
            for i, d, lo, hi, n in zip(table.index, table[(m, "difference")],
                                       table[(m, "lower")], table[(m, "upper")],
                                       table[("n", "")])
        ]  # fmt: skip
    return out


def sentences(*parts: str) -> str:
    """``parts`` as sentences: each capitalised, joined by full stops (the last left open
    for the chapter's text to close); empty parts are left out. The readings and a claim's
    evidence (one part of a claim a sentence) are written with it."""
    return ". ".join(p[:1].upper() + p[1:] for p in parts if p)
