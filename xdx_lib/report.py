"""From result files to tables and verdicts: means over seeds, paired intervals, claims.

A method is "better" only beyond the noise between seeds: every comparison here pairs two
methods on the same seed (same initial data order and subset), takes the per-seed
differences ``d_s = m_A(s) - m_B(s)`` and reports their mean with a 95 % Student-t
interval, ``mean(d) +- t_{0.975, n-1} sd(d) / sqrt(n)``. With one seed there is no
interval (NaN) and every verdict is "inconclusive".

The claims (C1-C3), the pairs compared and the verdict rule are defined in the book's
chapter "Method, claims and metrics"; :data:`CLAIMS` and :data:`PAIRS` are that chapter in
code, and :func:`verdicts`, :func:`paired_table` and :func:`t4_table` are what the results
chapter shows.

The other tables the chapters show come from here too, each in one call: ``mean ± std``
over seeds (:func:`mean_std_table`), means (:func:`mean_table`), the references
(:func:`reference_table`), faithfulness (:func:`faithfulness_table`) and one row per model
(:func:`scores_table`); their columns are named by :func:`display_label`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd


def results_frame(results: Sequence[dict]) -> pd.DataFrame:
    """One row per run: label, group, method, seed, sweep option/value, then every metric."""
    rows = []
    for r in results:
        row = {k: r.get(k) for k in ("label", "group", "method", "seed", "option", "value")}
        row.update(r["metrics"])
        rows.append(row)
    return pd.DataFrame(rows)


def _in_group(df: pd.DataFrame, group: str | None) -> pd.DataFrame:
    """The rows of ``group`` (the ``group`` column), or every row for None."""
    return df if group is None else df[df["group"] == group]


def summary(df: pd.DataFrame, metrics: Sequence[str], group: str | None = "main",
            by: str = "method") -> pd.DataFrame:  # fmt: skip
    """Mean and standard deviation over seeds of each metric, one row per ``by`` value.

    Columns are ``(metric, "mean")``, ``(metric, "std")`` and ``n`` (seeds); the order of
    rows follows first appearance. Only the rows of ``group`` count (None: every row, for a
    frame without a ``group`` column such as :func:`~xdx_lib.runner.variant_table`'s).
    """
    part = _in_group(df, group)
    order = list(dict.fromkeys(part[by]))
    agg = part.groupby(by)[list(metrics)].agg(["mean", "std"]).reindex(order)
    agg[("n", "")] = part.groupby(by).size().reindex(order)
    return agg


def paired_difference(df: pd.DataFrame, a: str, b: str, metric: str,
                      group: str | None = "main", confidence: float = 0.95,
                      by: str = "method") -> dict:  # fmt: skip
    """Mean of ``metric(a) - metric(b)`` over seeds both methods ran, with a t interval.

    ``a`` and ``b`` are values of the column ``by`` (methods; variants of a
    :func:`~xdx_lib.runner.variant_table` with ``by="variant"`` and ``group=None``).
    Returns ``{"a", "b", "metric", "n", "mean", "low", "high"}``; ``low``/``high`` are NaN
    with fewer than two seeds.
    """
    from scipy import stats

    part = _in_group(df, group)
    wide = part.pivot_table(index="seed", columns=by, values=metric)
    if a not in wide or b not in wide:
        raise ValueError(f"paired_difference: no runs of {a!r} and {b!r} in group {group!r}")
    d = (wide[a] - wide[b]).dropna()
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        low = high = math.nan
    else:
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"a": a, "b": b, "metric": metric, "n": n, "mean": mean, "low": low, "high": high}


def direction(diff: dict) -> str:
    """``"A > B"``, ``"A < B"`` (the interval excludes 0) or ``"no difference shown"``."""
    if math.isnan(diff["low"]):
        return "no difference shown"
    if diff["low"] > 0:
        return f"{diff['a']} > {diff['b']}"
    if diff["high"] < 0:
        return f"{diff['a']} < {diff['b']}"
    return "no difference shown"


def claim_verdict(needed: Sequence[dict], against: Sequence[dict] = ()) -> str:
    """``supported`` when every ``needed`` difference is positive beyond its interval;
    ``not supported`` when any ``needed`` difference is negative beyond its interval, or
    any ``against`` difference is positive beyond it; ``inconclusive`` otherwise."""

    def positive(d):
        return not math.isnan(d["low"]) and d["low"] > 0

    def negative(d):
        return not math.isnan(d["high"]) and d["high"] < 0

    if any(negative(d) for d in needed) or any(positive(d) for d in against):
        return "not supported"
    if all(positive(d) for d in needed):
        return "supported"
    return "inconclusive"


def format_interval(diff: dict, digits: int = 3) -> str:
    """``+0.012 [-0.004, +0.028] (n=3)``."""
    if math.isnan(diff["low"]):
        return f"{diff['mean']:+.{digits}f} (n={diff['n']}, no interval)"
    return (f"{diff['mean']:+.{digits}f} [{diff['low']:+.{digits}f}, "
            f"{diff['high']:+.{digits}f}] (n={diff['n']})")  # fmt: skip


# ------------------------------------------------------------------- tables for display

#: How a display table names a metric's column (:func:`display_label`): a mapping from the
#: metric's name, a function of it, or None for the name itself.
Labels = Mapping[str, str] | Callable[[str], str] | None


def mean_std_strings(table: pd.DataFrame, digits: int = 3, labels: Labels = None, strip: str = "",
                     missing: str = "nan") -> pd.DataFrame:  # fmt: skip
    """A :func:`summary` table as ``mean ± std`` strings, for display, with a ``seeds`` column.

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


def _mean_std(mean: float, std: float, digits: int, missing: str) -> str:
    """``mean ± std``; the mean alone without a spread (one seed); ``missing`` without a mean."""
    if math.isnan(mean):
        return missing
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def display_label(metric: str, labels: Labels = None, strip: str = "") -> str:
    """A table column's name for ``metric``: ``strip`` (a prefix the columns share, such as
    ``"gradcam/"``) left out, then renamed by ``labels`` (a mapping, where the name is not
    in it left as it is, or a function)."""
    name = metric.removeprefix(strip)
    if callable(labels):
        return labels(name)
    return (labels or {}).get(name, name)


def mean_std_table(df: pd.DataFrame, metrics: Sequence[str], labels: Labels = None,
                   strip: str = "", group: str | None = "main", by: str = "method",
                   digits: int = 3, missing: str = "nan") -> pd.DataFrame:  # fmt: skip
    """The ``mean ± std`` over seeds of each metric, one row per ``by`` value, as the
    chapters show it: :func:`summary` (``group``, ``by``) read by :func:`mean_std_strings`
    (``digits``, ``labels``, ``strip``, ``missing``)."""
    return mean_std_strings(summary(df, metrics, group, by), digits, labels, strip, missing)


def mean_table(df: pd.DataFrame, metrics: Sequence[str], labels: Labels = None,
               group: str | None = "main", by: str = "method") -> pd.DataFrame:  # fmt: skip
    """The mean over seeds of each metric (:func:`summary`), one row per ``by`` value, as
    numbers; columns named by :func:`display_label` (``labels``)."""
    means = summary(df, metrics, group, by)
    return pd.DataFrame({display_label(m, labels): means[(m, "mean")] for m in metrics})


def reference_table(df: pd.DataFrame, prefix: str = "gradcam/",
                    labels: Labels = None) -> pd.DataFrame:  # fmt: skip
    """What the image-blind reference maps score (the rows of group ``reference``): one row
    per reference, one column per metric starting with ``prefix``, named by
    :func:`display_label` (``labels``, ``prefix`` left out)."""
    refs = df[df["group"] == "reference"].set_index("method")
    cols = [c for c in refs.columns if c.startswith(prefix)]
    return refs[cols].rename(columns=lambda c: display_label(c, labels, prefix)).rename_axis(None)


#: The maps whose faithfulness a result holds, by the prefix of its metrics
#: (:func:`~xdx_lib.evaluation.evaluate_model`): each model's Grad-CAM, XDistillation's CAE map.
FAITHFULNESS_MAPS: dict[str, str] = {"faith": "Grad-CAM", "cae_faith": "CAE"}


def faithfulness_table(df: pd.DataFrame, judge: str = "model", group: str = "main",
                       digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """Deletion and insertion AUC of each method's maps, ``mean ± std`` over seeds.

    ``judge``: ``"model"`` (the model that made the maps scores them) or ``"teacher"`` (does
    the student's map point at what matters to the teacher?). Columns ``"<map> deletion"``
    and ``"<map> insertion"`` for the maps of :data:`FAITHFULNESS_MAPS` present in ``df``,
    blank for a method without such a map, then ``seeds``.
    """
    if judge not in ("model", "teacher"):
        raise ValueError(f"faithfulness_table: judge {judge!r}; choose model or teacher")
    end = "_teacher" if judge == "teacher" else ""
    names = {f"{p}{end}/{k}": f"{who} {k}" for p, who in FAITHFULNESS_MAPS.items()
             for k in ("deletion", "insertion")}  # fmt: skip
    cols = [c for c in df.columns if c in names]
    return mean_std_table(df, cols, names, group=group, digits=digits, missing="")


def scores_table(scores: Mapping[str, Mapping[str, float]], labels: Mapping[str, str],
                 index: str = "method") -> pd.DataFrame:  # fmt: skip
    """One row per model of ``scores`` (``{name: {metric: value}}``, e.g. from
    :func:`~xdx_lib.evaluation.evaluate_model`), one column per metric of ``labels`` in its
    order, named by it; a metric a model lacks is NaN and ``parameters`` are integers."""
    table = pd.DataFrame.from_dict(scores, orient="index").reindex(columns=list(labels))
    table = table.rename(columns=labels).rename_axis(index)
    return table.astype({labels[k]: int for k in ("parameters",) if k in labels})


# ------------------------------------------------------------------- claims, pairs, verdicts

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


#: The pairs ``(A, B)`` of the paired-difference table, each read as ``A - B``.
PAIRS: tuple[tuple[str, str], ...] = (
    ("kd", "scratch"),
    ("xdistill", "kd"),
    ("xdistill", "scratch"),
    ("e2kd", "kd"),
    ("xdistill", "e2kd"),
    ("at", "kd"),
)
#: The metrics of the paired-difference table and of the forest plot.
PAIR_METRICS: tuple[str, ...] = ("accuracy", "agreement", "gradcam/pearson", "deployed/pearson",
                                 "gradcam/topk_iou")


@dataclass(frozen=True)
class Evidence:
    """One paired difference a claim reads: ``metric(a) - metric(b)`` on the same seeds."""

    a: str
    b: str
    metric: str

    @property
    def label(self) -> str:
        """``"<metric label> a - b"``, as the evidence strings show it."""
        return f"{metric_label(self.metric)} {self.a} - {self.b}"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and the differences that decide it (:func:`claim_verdict`).

    ``needed``: differences that must all be positive beyond their intervals for
    "supported"; ``against``: differences that make the claim "not supported" when
    positive beyond their intervals. Adding a metric to a claim is one more
    :class:`Evidence`; one whose metric or methods are absent from the results is skipped
    with a note.
    """

    name: str
    statement: str
    needed: tuple[Evidence, ...]
    against: tuple[Evidence, ...] = ()


#: The paper's claims as the results chapter decides them (the book's chapter "Method,
#: claims and metrics" states them and the rule).
CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "a KD student predicts like the teacher but does not explain like it",
          needed=(Evidence("kd", "scratch", "agreement"),),
          against=(Evidence("kd", "scratch", "gradcam/pearson"),)),
    Claim("C2", "XDistillation students are more accurate than KD students",
          needed=(Evidence("xdistill", "kd", "accuracy"),)),
    Claim("C3", "XDistillation students are more faithful to the teacher",
          needed=(Evidence("xdistill", "kd", "agreement"),
                  Evidence("xdistill", "kd", "gradcam/pearson"),
                  Evidence("xdistill", "kd", "deployed/pearson"))),
)  # fmt: skip


def minimum_detectable_difference(diff: dict) -> float:
    """The smallest ``|difference|`` that ``diff``'s interval could have shown as nonzero:
    its half-width, ``t_{0.975, n-1} sd(d) / sqrt(n)`` (NaN without an interval).

    A true difference smaller than this, with the same spread between seeds, would have
    read "no difference shown"; more seeds shrink it as ``1 / sqrt(n)`` (and the t quantile).
    """
    if math.isnan(diff["low"]) or math.isnan(diff["high"]):
        return math.nan
    return (diff["high"] - diff["low"]) / 2


def _missing(df: pd.DataFrame, a: str, b: str, metric: str, group: str) -> str | None:
    """Why ``metric(a) - metric(b)`` cannot be computed from ``df``, or None."""
    if metric not in df.columns or df.loc[df["group"] == group, metric].isna().all():
        return f"{metric} is not in these results"
    methods = set(df.loc[df["group"] == group, "method"])
    absent = [m for m in (a, b) if m not in methods]
    if absent:
        return f"no runs of {', '.join(absent)}"
    return None


def paired_differences(df: pd.DataFrame, methods: Iterable[str] | None = None,
                       pairs: Sequence[tuple[str, str]] = PAIRS,
                       metrics: Sequence[str] = PAIR_METRICS, group: str = "main",
                       confidence: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """Every :func:`paired_difference` of ``pairs`` x ``metrics``, as numbers.

    One row per pair and metric, in that order, with columns ``a``, ``b``, ``metric``,
    ``n``, ``mean``, ``low``, ``high`` and ``detectable``
    (:func:`minimum_detectable_difference`). Pairs with a method outside ``methods`` (all
    methods of ``group`` by default) or absent from ``df``, and metrics absent from ``df``,
    are left out.
    """
    allowed = set(df.loc[df["group"] == group, "method"])
    if methods is not None:
        allowed &= set(methods)
    rows = []
    for a, b in pairs:
        if a not in allowed or b not in allowed:
            continue
        for m in metrics:
            if _missing(df, a, b, m, group):
                continue
            d = paired_difference(df, a, b, m, group=group, confidence=confidence)
            if d["n"] == 0:
                continue
            rows.append({**d, "detectable": minimum_detectable_difference(d)})
    columns = ["a", "b", "metric", "n", "mean", "low", "high", "detectable"]
    return pd.DataFrame(rows, columns=columns)


def paired_table(df: pd.DataFrame, methods: Iterable[str] | None = None,
                 pairs: Sequence[tuple[str, str]] = PAIRS,
                 metrics: Sequence[str] = PAIR_METRICS, group: str = "main",
                 digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """The paired-difference table as the results chapter shows it.

    Indexed by ``("A - B", "metric")``, with ``difference [95% interval]``
    (:func:`format_interval`) and ``reading`` (:func:`direction`); arguments as
    :func:`paired_differences`.
    """
    diffs = paired_differences(df, methods, pairs, metrics, group=group)
    rows = [{"A - B": f"{d['a']} - {d['b']}", "metric": metric_label(d["metric"]),
             "difference [95% interval]": format_interval(d, digits), "reading": direction(d)}
            for d in diffs.to_dict("records")]  # fmt: skip
    columns = ["A - B", "metric", "difference [95% interval]", "reading"]
    return pd.DataFrame(rows, columns=columns).set_index(["A - B", "metric"])


def _format_detectable(label: str, diff: dict, digits: int) -> str:
    half = minimum_detectable_difference(diff)
    if math.isnan(half):
        return f"{label}: none (n={diff['n']}, no interval)"
    return f"{label}: {half:.{digits}f}"


def verdicts(df: pd.DataFrame, claims: Sequence[Claim] = CLAIMS, group: str = "main",
             confidence: float = 0.95, digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """One row per claim (index ``claim``): its verdict and what it was read from.

    Columns: ``verdict`` (:func:`claim_verdict` of the claim's ``needed`` and ``against``
    differences), ``evidence`` (each difference with its interval, then any note),
    ``detectable`` (the smallest difference each interval could have shown,
    :func:`minimum_detectable_difference`), ``notes`` (evidence skipped because its metric
    or methods are absent from ``df``), ``needed`` and ``against`` (the difference dicts).
    A claim left with no ``needed`` difference is "inconclusive".
    """
    rows = []
    for claim in claims:
        parts, detect, notes = [], [], []
        found: dict[str, list[dict]] = {"needed": [], "against": []}
        for role in ("needed", "against"):
            for ev in getattr(claim, role):
                why = _missing(df, ev.a, ev.b, ev.metric, group)
                if why:
                    notes.append(f"{ev.label} skipped: {why}")
                    continue
                d = paired_difference(df, ev.a, ev.b, ev.metric, group=group,
                                      confidence=confidence)  # fmt: skip
                if d["n"] == 0:
                    notes.append(f"{ev.label} skipped: no seed has both")
                    continue
                found[role].append(d)
                parts.append(f"{ev.label} {format_interval(d, digits)}")
                detect.append(_format_detectable(ev.label, d, digits))
        if found["needed"]:
            verdict = claim_verdict(found["needed"], found["against"])
        else:
            verdict = "inconclusive"
        rows.append({
            "claim": claim.name,
            "verdict": verdict,
            "evidence": "; ".join(parts + [f"({n})" for n in notes]) or "no evidence",
            "detectable": "; ".join(detect) or "none",
            "notes": "; ".join(notes),
            "needed": found["needed"],
            "against": found["against"],
        })
    return pd.DataFrame(rows).set_index("claim")


def t4_table(df: pd.DataFrame, metrics: Sequence[str], method: str = "xdistill",
             sweep_group: str = "sweep", main_group: str = "main",
             labels: Labels = None) -> pd.DataFrame:  # fmt: skip
    """T4: the mean over the sweep seeds of each option value, beside the default run.

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
