"""From result files to tables and verdicts: means over seeds, paired intervals, claims.

A method is "better" only beyond the noise between seeds: every comparison here pairs two
methods on the same seed (same initial data order and subset), takes the per-seed
differences ``d_s = m_A(s) - m_B(s)`` and reports their mean with a Student-t interval,
``mean(d) +- t_{q, n-1} sd(d) / sqrt(n)``. The paired-difference table shows the 95 %
interval; the claims read the 90 % interval, whose ends are the one-sided 95 % bounds of
two one-sided tests, against margins fixed in :data:`CLAIMS` before any run is read. With
one seed there is no interval (NaN) and every part of a claim is "inconclusive".

The claims (C1-C3), their parts and margins, and the verdict rule are defined in the
book's chapter "Method, claims and metrics"; :data:`CLAIMS` and :data:`PAIRS` are that
chapter in code, and :func:`verdicts`, :func:`verdict_table`, :func:`paired_table` and
:func:`sweep_table` are what the results chapter shows.

The other tables the chapters show come from here too, each in one call: ``mean ± std``
over seeds (:func:`mean_std_table`), means (:func:`mean_table`), the references
(:func:`reference_table`), faithfulness (:func:`faithfulness_table`), one row per model
(:func:`scores_table`) and what XDistillation students take from their maps
(:func:`intervention_table`); their columns are named by :func:`display_label`.
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


def check_one_run_per_seed(df: pd.DataFrame, group: str | None, by: str = "method") -> None:
    """Raise when ``group`` (None: every row) holds two runs of one ``by`` value (a method)
    on one seed.

    Means over seeds and paired differences assume one run per ``(seed, method)``; a
    duplicate (e.g. two result files of one run) would otherwise be averaged silently and
    counted as a seed.

    Raises:
        ValueError: naming every duplicated ``(method, seed)``.
    """
    names = _repeated(_in_group(df, group), by)
    if names:
        raise ValueError(f"group {group!r} has more than one run of {names}; "
                         "keep one result per method and seed")  # fmt: skip


def _repeated(df: pd.DataFrame, by: str) -> str:
    """The ``(by, seed)`` pairs that ``df`` holds more than once, as ``"kd on seed 0, ..."``
    (empty when none)."""
    dup = df[df.duplicated(["seed", by], keep=False)]
    twice = sorted(set(zip(dup[by].astype(str), dup["seed"])))
    return ", ".join(f"{m} on seed {s}" for m, s in twice)


def _in_group(df: pd.DataFrame, group: str | None) -> pd.DataFrame:
    """The rows of ``group`` (the ``group`` column), or every row for None."""
    return df if group is None else df[df["group"] == group]


def summary(df: pd.DataFrame, metrics: Sequence[str], group: str | None = "main",
            by: str = "method") -> pd.DataFrame:  # fmt: skip
    """Mean and standard deviation over seeds of each metric, one row per ``by`` value.

    Columns are ``(metric, "mean")``, ``(metric, "std")`` and ``n`` (seeds); the order of
    rows follows first appearance. Only the rows of ``group`` count (None: every row, for a
    frame without a ``group`` column such as :func:`~xdx_lib.runner.variant_table`'s). A
    duplicated ``(seed, by value)`` is an error (:func:`check_one_run_per_seed`).
    """
    if "seed" in df.columns:
        check_one_run_per_seed(df, group, by)
    part = _in_group(df, group)
    order = list(dict.fromkeys(part[by]))
    agg = part.groupby(by)[list(metrics)].agg(["mean", "std"]).reindex(order)
    agg[("n", "")] = part.groupby(by).size().reindex(order)
    return agg


def _missing(df: pd.DataFrame, a: str, b: str, metric: str, group: str | None,
             by: str = "method") -> str | None:  # fmt: skip
    """Why ``metric(a) - metric(b)`` cannot be computed from ``df``, or None."""
    part = _in_group(df, group)
    if not len(part):
        return f"no runs in group {group}"
    if metric not in df.columns or part[metric].isna().all():
        return f"{metric} is not in these results"
    methods = set(part[by])
    absent = [m for m in (a, b) if m not in methods]
    if absent:
        return f"no runs of {', '.join(absent)}"
    for m in (a, b):
        if part.loc[part[by] == m, metric].isna().all():
            return f"{metric} has no value for any run of {m}"
    return None


def paired_difference(df: pd.DataFrame, a: str, b: str, metric: str,
                      group: str | None = "main", confidence: float = 0.95,
                      by: str = "method") -> dict:  # fmt: skip
    """Mean of ``metric(a) - metric(b)`` over seeds both methods ran, with a t interval.

    ``a`` and ``b`` are values of the column ``by`` (methods; variants of a
    :func:`~xdx_lib.runner.variant_table` with ``by="variant"`` and ``group=None``).

    Returns ``{"a", "b", "metric", "n", "mean", "sd", "low", "high"}``: ``sd`` is the
    standard deviation of the per-seed differences; ``sd``, ``low`` and ``high`` are NaN
    with fewer than two seeds. ``confidence=0.90`` gives the one-sided 95 % bounds the
    claims read.

    Raises:
        ValueError: a method has no run in ``group``, ``metric`` has no value for any run
            of a method, or a ``(seed, method)`` is duplicated.
    """
    from scipy import stats

    why = _missing(df, a, b, metric, group, by)
    if why:
        raise ValueError(f"paired_difference({a!r}, {b!r}, {metric!r}, group={group!r}): {why}")
    check_one_run_per_seed(df, group, by)
    part = _in_group(df, group)
    wide = part.pivot(index="seed", columns=by, values=metric)
    d = (wide[a] - wide[b]).dropna()
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        sd = low = high = math.nan
    else:
        sd = float(d.std(ddof=1))
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"a": a, "b": b, "metric": metric, "n": n, "mean": mean, "sd": sd, "low": low,
            "high": high}  # fmt: skip


def direction(diff: dict) -> str:
    """``"A > B"``, ``"A < B"`` (the interval excludes 0) or ``"no difference shown"``."""
    if math.isnan(diff["low"]):
        return "no difference shown"
    if diff["low"] > 0:
        return f"{diff['a']} > {diff['b']}"
    if diff["high"] < 0:
        return f"{diff['a']} < {diff['b']}"
    return "no difference shown"


def format_interval(diff: dict, digits: int = 3) -> str:
    """``+0.012 [-0.004, +0.028] (n=3)``."""
    if math.isnan(diff["low"]):
        return f"{diff['mean']:+.{digits}f} (n={diff['n']}, no interval)"
    return (f"{diff['mean']:+.{digits}f} [{diff['low']:+.{digits}f}, "
            f"{diff['high']:+.{digits}f}] (n={diff['n']})")  # fmt: skip


#: How close (in test accuracy) a student's last epoch must come to where the longest
#: schedule takes it for the student to count as trained to its plateau.
PLATEAU_TOLERANCE = 0.005


def plateau_epochs(accuracy_by_epochs: Mapping[int, float],
                   tolerance: float = PLATEAU_TOLERANCE) -> int | None:  # fmt: skip
    """The shortest schedule (in epochs) whose final accuracy is within ``tolerance`` of
    the longest schedule's, or None when only the longest is.

    ``accuracy_by_epochs`` maps each schedule's length to the final test accuracy of one
    student trained with it (each its own cosine schedule). "Within" is one-sided: a
    shorter schedule that ends above the longest one has reached the plateau too. None
    means the student still gains from every longer schedule tried, so its plateau lies
    beyond them. Differences are rounded to 12 decimals, so that a gap of exactly the
    tolerance (0.850 - 0.845) counts as within it despite binary fractions.
    """
    if len(accuracy_by_epochs) < 2:
        raise ValueError("plateau_epochs needs the final accuracies of at least two "
                         f"schedules; got {dict(accuracy_by_epochs)}")  # fmt: skip
    bad = {e: a for e, a in accuracy_by_epochs.items() if not math.isfinite(a)}
    if bad:
        raise ValueError(f"plateau_epochs: accuracy not finite for schedules {bad}")
    longest = max(accuracy_by_epochs)
    best = accuracy_by_epochs[longest]
    reached = [e for e, a in accuracy_by_epochs.items()
               if e < longest and round(best - a, 12) <= tolerance]  # fmt: skip
    return min(reached) if reached else None


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


# ------------------------------------------------------------------------------ power

#: The level of each one-sided test of a claim's part (two of them make an equivalence test).
ALPHA = 0.05
#: The power at which :func:`detectable_difference` states what the seeds could detect.
POWER = 0.80


def smallest_significant_difference(diff: dict) -> float:
    """The half-width of ``diff``'s interval (NaN without one).

    It is the smallest *observed* ``|mean difference|`` that the interval would have
    called significant, given the spread of the differences the seeds happened to show:
    two-sided at 5 % for a 95 % interval, one-sided at 5 % for a 90 % one. It says nothing
    about which *true* differences the seeds would detect; :func:`detectable_difference`
    does.
    """
    if math.isnan(diff["low"]) or math.isnan(diff["high"]):
        return math.nan
    return (diff["high"] - diff["low"]) / 2


def detectable_difference(n: int, sd: float, alpha: float = ALPHA,
                          power: float = POWER) -> float:  # fmt: skip
    """The true mean difference a one-sided paired t test at level ``alpha`` detects with
    probability ``power``, over ``n`` seeds whose differences spread with ``sd``.

    Solved exactly with the noncentral t distribution: the test rejects when
    ``t = mean / (sd / sqrt(n))`` exceeds ``t_{1-alpha, n-1}``, and under a true
    difference ``delta`` that statistic is noncentral t with ``n - 1`` degrees of freedom
    and noncentrality ``delta sqrt(n) / sd``. The result is that noncentrality, found by
    root finding, times ``sd / sqrt(n)``. At ``n = 10`` it is about 1.47 times the
    one-sided threshold :func:`smallest_significant_difference` of the 90 % interval.
    ``sd`` is the observed one, so this is an estimate. NaN below two seeds; 0 when the
    differences do not spread.
    """
    from scipy import optimize, stats

    if n < 2 or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df = n - 1
    crit = stats.t.ppf(1 - alpha, df)

    def shortfall(ncp: float) -> float:
        return stats.nct.sf(crit, df, ncp) - power

    high = crit + 1.0
    while shortfall(high) < 0:  # the power grows with the noncentrality: bracket the root
        high *= 2
    ncp = optimize.brentq(shortfall, 0.0, high, xtol=1e-10)
    return ncp * sd / math.sqrt(n)


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


#: The pairs ``(A, B)`` of the paired-difference table, each read as ``A - B``
#: (``xdistill - kd_cae``: the same deployed explanation, KD's logits against the fused one's).
PAIRS: tuple[tuple[str, str], ...] = (
    ("kd", "scratch"),
    ("xdistill", "kd"),
    ("xdistill", "scratch"),
    ("xdistill", "kd_cae"),
    ("e2kd", "kd"),
    ("xdistill", "e2kd"),
    ("xdistill", "kd_cae"),
    ("at", "kd"),
)
#: The metrics of the paired-difference table and of the forest plot.
PAIR_METRICS: tuple[str, ...] = ("accuracy", "agreement", "gradcam/pearson", "deployed/pearson",
                                 "gradcam/topk_iou")

#: The margin of accuracy and agreement differences (fractions of the test images), 60 of
#: 10,000 test images, about what a second test split of that size could reverse for two
#: students of which exactly one is right on 9 % of the images, a guess made before the
#: runs (1.96 sqrt(0.09 / 10,000) = 0.0059). The book's chapter "Method, claims and
#: metrics" gives the reasons.
FRACTION_MARGIN = 0.006
#: The margin of differences in mean Pearson r of explanation maps, the tolerance within
#: which the book already calls two CAEs' r the same.
R_MARGIN = 0.03

#: What a claim's part needs of ``A - B``, "higher" (above 0, a superiority test, read with
#: an equivalence test against the margin) or "not higher" (below ``+margin``).
NEEDS: tuple[str, ...] = ("higher", "not higher")
#: The readings of one part (:func:`part_verdict`; "skipped": it could not be read).
PART_VERDICTS: tuple[str, ...] = ("supported", "opposite", "no difference beyond the margin",
                                  "inconclusive", "skipped")
#: The readings of a whole claim (:func:`claim_verdict`).
CLAIM_VERDICTS: tuple[str, ...] = ("supported", "partly supported", "not supported",
                                   "inconclusive")


@dataclass(frozen=True)
class Evidence:
    """One part of a claim: ``metric(a) - metric(b)`` on the same seeds, what the claim
    needs of it (:data:`NEEDS`) and the margin below which a difference does not matter."""

    a: str
    b: str
    metric: str
    margin: float
    needs: str = "higher"

    def __post_init__(self):
        if self.needs not in NEEDS:
            raise ValueError(f"Evidence.needs is {self.needs!r}; choose one of {NEEDS}")
        if not self.margin > 0:
            raise ValueError(f"Evidence.margin is {self.margin!r}; give a positive margin")

    @property
    def label(self) -> str:
        """The part as the evidence strings show it, e.g. ``agreement kd - scratch``."""
        return f"{metric_label(self.metric)} {self.a} - {self.b}"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and the parts that decide it (:func:`claim_verdict`).

    Adding a metric to a claim is one more :class:`Evidence` in ``parts``; one whose
    metric or methods are absent from the results is "skipped", with the reason.
    """

    name: str
    statement: str
    parts: tuple[Evidence, ...]


#: The paper's claims as the results chapter decides them, each part with its margin (the
#: book's chapter "Method, claims and metrics" states them, the margins and the rule).
CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "a KD student predicts like the teacher but does not explain like it",
          parts=(Evidence("kd", "scratch", "agreement", FRACTION_MARGIN),
                 Evidence("kd", "scratch", "gradcam/pearson", R_MARGIN, needs="not higher"))),
    Claim("C2", "XDistillation students are more accurate than KD students",
          parts=(Evidence("xdistill", "kd", "accuracy", FRACTION_MARGIN),)),
    Claim("C3", "XDistillation students are more faithful to the teacher",
          parts=(Evidence("xdistill", "kd", "agreement", FRACTION_MARGIN),
                 Evidence("xdistill", "kd", "gradcam/pearson", R_MARGIN),
                 Evidence("xdistill", "kd", "deployed/pearson", R_MARGIN))),
)  # fmt: skip


def part_verdict(lower: float, upper: float, margin: float, needs: str = "higher") -> str:
    """The reading of one part from its one-sided 95 % bounds ``lower`` and ``upper``.

    ``needs="higher"`` (the claim needs ``A - B > 0``), tried in this order:

    * "no difference beyond the margin": ``-margin < lower`` and ``upper < margin``. It
      comes first: a difference shown to lie inside the margin does not matter, even when
      it is also shown to be nonzero, so it neither supports nor opposes the claim;
    * "supported": ``lower > 0``;
    * "opposite": ``upper < 0``;
    * "inconclusive": otherwise.

    ``needs="not higher"`` (the claim needs ``A - B`` to be small or negative): "supported"
    when ``upper < margin``, "opposite" when ``lower > margin``, else "inconclusive"; mere
    non-significance of ``A - B > 0`` is not enough. Every comparison is strict, so a bound
    touching 0 or the margin shows nothing; no bounds (one seed) read "inconclusive".
    """
    if needs not in NEEDS:
        raise ValueError(f"part_verdict: needs is {needs!r}; choose one of {NEEDS}")
    if math.isnan(lower) or math.isnan(upper):
        return "inconclusive"
    if needs == "not higher":
        if upper < margin:
            return "supported"
        return "opposite" if lower > margin else "inconclusive"
    if -margin < lower and upper < margin:
        return "no difference beyond the margin"
    if lower > 0:
        return "supported"
    return "opposite" if upper < 0 else "inconclusive"


def claim_verdict(readings: Sequence[str]) -> str:
    """A claim's verdict from its parts' readings (:func:`part_verdict`), in this order.

    * "not supported" when any part is "opposite";
    * "supported" when every part is "supported";
    * "partly supported" when some part is "supported" (the others inconclusive, skipped
      or without a difference beyond the margin);
    * "not supported" when no part is supported and some part shows no difference beyond
      its margin: the difference the claim asserts is shown not to matter;
    * "inconclusive" otherwise (one seed, or every part skipped or inconclusive).

    A skipped part counts as inconclusive: a claim with one is never "supported".
    """
    readings = list(readings)
    if "opposite" in readings:
        return "not supported"
    if readings and all(r == "supported" for r in readings):
        return "supported"
    if "supported" in readings:
        return "partly supported"
    if "no difference beyond the margin" in readings:
        return "not supported"
    return "inconclusive"


def _part_note(part: dict) -> str:
    """What a part's reading leaves out: a nonzero difference inside the margin."""
    if part["needs"] == "higher" and part["verdict"] != "no difference beyond the margin":
        return ""
    if part["needs"] == "not higher" and part["verdict"] != "supported":
        return ""
    if part["lower"] > 0:
        return f"{part['a']} > {part['b']}, but within the margin"
    if part["upper"] < 0 and part["needs"] == "higher":
        return f"{part['a']} < {part['b']}, but within the margin"
    return ""


#: The columns of :func:`claim_parts`.
PART_COLUMNS: tuple[str, ...] = (
    "claim", "part", "a", "b", "metric", "needs", "margin", "n", "mean", "sd", "lower",
    "upper", "significant", "detectable", "verdict", "note")  # fmt: skip


def judge_part(df: pd.DataFrame, claim: str, evidence: Evidence, group: str = "main") -> dict:
    """One part of a claim, read from ``df`` (:data:`PART_COLUMNS`).

    ``lower``/``upper`` are the one-sided 95 % bounds (the 90 % t interval),
    ``significant`` their half-width (:func:`smallest_significant_difference`),
    ``detectable`` the true difference detectable with 80 % power by the same one-sided
    test (:func:`detectable_difference`), ``verdict`` :func:`part_verdict` and ``note``
    what the verdict leaves out, or why the part was skipped (its metric or a method
    absent from ``group``, or no seed with both).
    """
    row = {"claim": claim, "part": evidence.label, "a": evidence.a, "b": evidence.b,
           "metric": evidence.metric, "needs": evidence.needs, "margin": evidence.margin,
           "n": 0, "mean": math.nan, "sd": math.nan, "lower": math.nan, "upper": math.nan,
           "significant": math.nan, "detectable": math.nan}  # fmt: skip
    why = _missing(df, evidence.a, evidence.b, evidence.metric, group)
    if why:
        return {**row, "verdict": "skipped", "note": why}
    d = paired_difference(df, evidence.a, evidence.b, evidence.metric, group=group,
                          confidence=1 - 2 * ALPHA)  # fmt: skip
    if d["n"] == 0:
        return {**row, "verdict": "skipped", "note": "no seed has both"}
    row.update(n=d["n"], mean=d["mean"], sd=d["sd"], lower=d["low"], upper=d["high"],
               significant=smallest_significant_difference(d),
               detectable=detectable_difference(d["n"], d["sd"]))  # fmt: skip
    row["verdict"] = part_verdict(row["lower"], row["upper"], evidence.margin, evidence.needs)
    row["note"] = _part_note(row)
    return row


def claim_parts(df: pd.DataFrame, claims: Sequence[Claim] = CLAIMS,
                group: str = "main") -> pd.DataFrame:  # fmt: skip
    """Every part of every claim (:func:`judge_part`), one row each, in the claims' order.

    This is what :func:`verdicts` decides from and what the forest plot marks
    (:func:`xdx_lib.plots.forest_plot`). A duplicated ``(seed, method)`` in ``group`` is an
    error (:func:`check_one_run_per_seed`), even when no part reads it.
    """
    check_one_run_per_seed(df, group)
    rows = [judge_part(df, c.name, ev, group) for c in claims for ev in c.parts]
    return pd.DataFrame(rows, columns=list(PART_COLUMNS))


def format_part(part: dict, digits: int = 3) -> str:
    """One part as the evidence shows it, e.g. ``agreement kd - scratch +0.060 [+0.043,
    +0.077] (one-sided 95 % bounds, n=10; margin 0.006): supported``."""
    if part["verdict"] == "skipped":
        return f"{part['part']} skipped: {part['note']}"
    f = f"+.{digits}f"
    if math.isnan(part["lower"]):
        shown = f"{part['mean']:{f}} (n={part['n']}, no bounds)"
    else:
        shown = (f"{part['mean']:{f}} [{part['lower']:{f}}, {part['upper']:{f}}] "
                 f"(one-sided 95 % bounds, n={part['n']}; margin {part['margin']:g})")  # fmt: skip
    note = f" ({part['note']})" if part["note"] else ""
    return f"{part['part']} {shown}: {part['verdict']}{note}"


def format_power(part: dict, digits: int = 3) -> str:
    """What the seeds resolve for one part: the smallest observed difference they call
    significant and the true difference they detect with 80 % power."""
    if part["verdict"] == "skipped":
        return f"{part['part']}: skipped"
    if math.isnan(part["significant"]):
        return f"{part['part']}: none (n={part['n']}, no bounds)"
    return (f"{part['part']}: significant from {part['significant']:.{digits}f}, "
            f"80 % power at {part['detectable']:.{digits}f}")  # fmt: skip


def verdicts(df: pd.DataFrame, claims: Sequence[Claim] = CLAIMS, group: str = "main",
             digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """One row per claim (index ``claim``): its verdict and the parts it was read from.

    Columns: ``verdict`` (:func:`claim_verdict` of the parts' readings), ``evidence``
    (each part with its one-sided bounds, margin and reading, :func:`format_part`),
    ``power`` (what the seeds resolve per part, :func:`format_power`), ``notes`` (the
    parts skipped and why) and ``parts`` (the parts' rows of :func:`claim_parts`, as
    dicts). The results chapter runs it on the group ``claims`` when the experiment has
    one.
    """
    parts = claim_parts(df, claims, group)
    rows = []
    for claim in claims:
        mine = parts[parts["claim"] == claim.name].to_dict("records")
        skipped = [f"{p['part']} skipped: {p['note']}" for p in mine if p["verdict"] == "skipped"]
        rows.append({
            "claim": claim.name,
            "verdict": claim_verdict([p["verdict"] for p in mine]),
            "evidence": "; ".join(format_part(p, digits) for p in mine) or "no evidence",
            "power": "; ".join(format_power(p, digits) for p in mine) or "none",
            "notes": "; ".join(skipped),
            "parts": mine,
        })
    return pd.DataFrame(rows, columns=["claim", "verdict", "evidence", "power", "notes",
                                       "parts"]).set_index("claim")  # fmt: skip


def verdict_table(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A :func:`verdicts` table as the results chapter shows it: one row per part.

    Indexed by ``(claim, verdict, part)``; columns ``difference [one-sided 95 % bounds]``,
    ``needs`` (``> 0`` or ``< margin``), ``margin``, ``reading`` (the part's verdict and
    note), ``significant from`` (:func:`smallest_significant_difference`) and
    ``80 % power at`` (:func:`detectable_difference`).
    """
    f = f"+.{digits}f"
    rows = []
    for claim, row in table.iterrows():
        for p in row["parts"]:
            no_bounds = math.isnan(p["lower"])
            if p["verdict"] == "skipped":
                shown = ""
            elif no_bounds:
                shown = f"{p['mean']:{f}} (n={p['n']})"
            else:
                shown = f"{p['mean']:{f}} [{p['lower']:{f}}, {p['upper']:{f}}] (n={p['n']})"
            rows.append({
                "claim": claim, "verdict": row["verdict"], "part": p["part"],
                "difference [one-sided 95 % bounds]": shown,
                "needs": "> 0" if p["needs"] == "higher" else f"< {p['margin']:g}",
                "margin": f"±{p['margin']:g}",
                "reading": p["verdict"] + (f" ({p['note']})" if p["note"] else ""),
                "significant from": "" if no_bounds else f"{p['significant']:.{digits}f}",
                "80 % power at": "" if no_bounds else f"{p['detectable']:.{digits}f}",
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["claim", "verdict", "part"])


# ------------------------------------------------------------------- the paired table


def paired_differences(df: pd.DataFrame, methods: Iterable[str] | None = None,
                       pairs: Sequence[tuple[str, str]] = PAIRS,
                       metrics: Sequence[str] = PAIR_METRICS, group: str = "main",
                       confidence: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """Every :func:`paired_difference` of ``pairs`` x ``metrics``, as numbers.

    One row per pair and metric, in that order, with columns ``a``, ``b``, ``metric``,
    ``n``, ``mean``, ``sd``, ``low``, ``high`` and ``half_width``
    (:func:`smallest_significant_difference`). Pairs with a method outside ``methods`` (all
    methods of ``group`` by default) or absent from ``df``, and metrics absent from ``df``
    or from either method's runs, are left out.
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
            rows.append({**d, "half_width": smallest_significant_difference(d)})
    columns = ["a", "b", "metric", "n", "mean", "sd", "low", "high", "half_width"]
    return pd.DataFrame(rows, columns=columns)


def paired_view(diffs: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A :func:`paired_differences` frame as the results chapter shows it.

    Indexed by ``("A - B", "metric")``, with ``difference [95% interval]``
    (:func:`format_interval`), ``reading`` (:func:`direction`) and ``significant from``
    (the interval's half-width: the smallest observed difference it calls significant).
    """
    rows = [{"A - B": f"{d['a']} - {d['b']}", "metric": metric_label(d["metric"]),
             "difference [95% interval]": format_interval(d, digits), "reading": direction(d),
             "significant from": ("" if math.isnan(d["half_width"])
                                  else f"{d['half_width']:.{digits}f}")}
            for d in diffs.to_dict("records")]  # fmt: skip
    columns = ["A - B", "metric", "difference [95% interval]", "reading", "significant from"]
    return pd.DataFrame(rows, columns=columns).set_index(["A - B", "metric"])


def paired_table(df: pd.DataFrame, methods: Iterable[str] | None = None,
                 pairs: Sequence[tuple[str, str]] = PAIRS,
                 metrics: Sequence[str] = PAIR_METRICS, group: str = "main",
                 digits: int = 3) -> pd.DataFrame:  # fmt: skip
    """The paired-difference table of one group (:func:`paired_view` of
    :func:`paired_differences`; arguments as the latter's)."""
    return paired_view(paired_differences(df, methods, pairs, metrics, group=group), digits)


def sweep_table(df: pd.DataFrame, metrics: Sequence[str], method: str = "xdistill",
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


# ------------------------------------------------------------------- map interventions


def _intervention_frame(rows: Sequence[Mapping], metrics: Sequence[str],
                        baseline: str) -> pd.DataFrame:  # fmt: skip
    """``rows`` as a frame, checked: one row per seed and intervention, every intervention
    (the baseline among them) on every seed, every metric present."""
    df = pd.DataFrame(list(rows))
    if not len(df):
        raise ValueError("no intervention rows; give one per seed and intervention")
    needed = ["seed", "intervention", *metrics]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise ValueError(f"intervention rows need the fields {', '.join(needed)}; "
                         f"missing: {', '.join(absent)}")  # fmt: skip
    repeated = _repeated(df, "intervention")
    if repeated:
        raise ValueError(f"intervention rows repeat {repeated}; give one row per seed and "
                         "intervention")  # fmt: skip
    names = list(dict.fromkeys(df["intervention"]))
    if baseline not in names:
        raise ValueError(f"no rows of the baseline {baseline!r}; the differences are taken "
                         "from it")  # fmt: skip
    for seed, part in df.groupby("seed", sort=True):
        lacking = [i for i in names if i not in set(part["intervention"])]
        if lacking:
            raise ValueError(f"seed {seed} has no row of {', '.join(lacking)}; every seed "
                             "needs every intervention")  # fmt: skip
    return df


def intervention_table(rows: Sequence[Mapping],
                       metrics: Sequence[str] = ("accuracy", "agreement"),
                       baseline: str = "own") -> pd.DataFrame:  # fmt: skip
    """Each map intervention's mean over seeds and its paired difference from ``baseline``.

    ``rows`` hold one dict per seed and intervention (``seed``, ``intervention`` and each
    metric; :func:`xdx_lib.runner.intervention_rows` makes them). The table has one row per
    intervention in order of first appearance (index ``intervention``) and, for each metric,
    the columns ``(metric, "mean")``, then ``(metric, "difference")``, ``(metric, "low")``
    and ``(metric, "high")``: the mean over seeds of ``metric(intervention) -
    metric(baseline)`` with its 95 % t interval (:func:`paired_difference`; NaN bounds
    with one seed), and ``("n", "")``, the seeds. :func:`intervention_view` shows it.

    Raises:
        ValueError: a metric, ``seed`` or ``intervention`` field is absent, a ``(seed,
            intervention)`` is repeated, the baseline has no row, or a seed lacks an
            intervention another seed has.
    """
    df = _intervention_frame(rows, metrics, baseline)
    names = list(dict.fromkeys(df["intervention"]))
    table = {}
    for name in names:
        row: dict = {}
        for m in metrics:
            d = paired_difference(df, name, baseline, m, group=None, by="intervention")
            row.update({(m, "mean"): float(df.loc[df["intervention"] == name, m].mean()),
                        (m, "difference"): d["mean"], (m, "low"): d["low"],
                        (m, "high"): d["high"], ("n", ""): d["n"]})  # fmt: skip
        table[name] = row
    out = pd.DataFrame.from_dict(table, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out.rename_axis("intervention")


def intervention_view(table: pd.DataFrame, baseline: str = "own", digits: int = 3,
                      labels: Labels = None) -> pd.DataFrame:  # fmt: skip
    """An :func:`intervention_table` as the book shows it: per metric (named by
    :func:`display_label` with ``labels``) its mean and ``- <baseline> [95% interval]``, the
    difference from the baseline with its interval (:func:`format_interval`)."""
    metrics = [m for m in dict.fromkeys(c[0] for c in table.columns) if m != "n"]
    out = pd.DataFrame(index=table.index)
    for m in metrics:
        name = display_label(m, labels)
        out[name] = [f"{v:.{digits}f}" for v in table[(m, "mean")]]
        out[f"{name} - {baseline} [95% interval]"] = [
            format_interval({"mean": d, "low": lo, "high": hi, "n": int(n)}, digits)
            for d, lo, hi, n in zip(table[(m, "difference")], table[(m, "low")],
                                    table[(m, "high")], table[("n", "")])
        ]  # fmt: skip
    return out
