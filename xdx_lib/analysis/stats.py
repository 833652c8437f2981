"""Numbers over seeds: means, paired differences with their intervals, plateaus.

A method is "better" only beyond the noise between seeds: every comparison here pairs two
methods on the same seed (same initial data order and subset), takes the per-seed
differences ``d_s = m_A(s) - m_B(s)`` and reports their mean with a Student-t interval,
``mean(d) +- t_{q, n-1} sd(d) / sqrt(n)`` (:func:`paired_difference`, a
:class:`PairedDifference`). With one seed there is no interval (NaN bounds). What a test
on such differences can tell (p-values, Holm's control, power) is
:mod:`xdx_lib.analysis.power`.

Everything here returns numbers (floats, frames of floats, typed records) and no words but
error messages: what the claims decide from these numbers is :mod:`xdx_lib.analysis.claims`, and how
the chapters show them is :mod:`xdx_lib.report.tables`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from xdx_lib.core.kinds import RunGroup

#: The level of each one-sided test (two of them make an equivalence test). The claims read
#: the ``1 - 2 ALPHA`` interval, and :mod:`xdx_lib.analysis.power` tests at this level.
ALPHA = 0.05


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
    (empty when none), for the error messages that refuse them."""
    dup = df[df.duplicated(["seed", by], keep=False)]
    twice = sorted(set(zip(dup[by].astype(str), dup["seed"])))
    return ", ".join(f"{m} on seed {s}" for m, s in twice)


def _in_group(df: pd.DataFrame, group: str | None) -> pd.DataFrame:
    """The rows of ``group`` (the ``group`` column), or every row for None."""
    return df if group is None else df[df["group"] == group]


def summary(df: pd.DataFrame, metrics: Sequence[str], group: str | None = RunGroup.MAIN,
            by: str = "method") -> pd.DataFrame:  # fmt: skip
    """Mean and standard deviation over seeds of each metric, one row per ``by`` value.

    Columns are ``(metric, "mean")``, ``(metric, "std")`` and ``n`` (seeds); the order of rows
    follows first appearance. Only the rows of ``group`` count (None: every row, for a frame without
    a ``group`` column such as :func:`~xdx_lib.experiments.choices.variant_table`'s). A duplicated
    ``(seed, by value)`` is an error (:func:`check_one_run_per_seed`).
    """
    if "seed" in df.columns:
        check_one_run_per_seed(df, group, by)
    part = _in_group(df, group)
    order = list(dict.fromkeys(part[by]))
    agg = part.groupby(by)[list(metrics)].agg(["mean", "std"]).reindex(order)
    agg[("n", "")] = part.groupby(by).size().reindex(order)
    return agg


def unpaired_reason(df: pd.DataFrame, a: str, b: str, metric: str, group: str | None,
                    by: str = "method") -> str | None:  # fmt: skip
    """Why ``metric(a) - metric(b)`` cannot be computed from ``df`` (the message
    :func:`paired_difference` raises), or None when it can."""
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


@dataclass(frozen=True)
class PairedDifference:
    """The mean over seeds of ``metric(a) - metric(b)`` and its t interval.

    ``sd`` is the standard deviation of the per-seed differences; ``sd``, ``lower`` and
    ``upper`` are NaN with fewer than two seeds, and every number is NaN with none.
    """

    a: str
    b: str
    metric: str
    n: int
    mean: float
    sd: float
    lower: float
    upper: float

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without one).

        It is the smallest *observed* ``|mean difference|`` that the interval would have
        called significant, given the spread of the differences the seeds happened to show:
        two-sided at 5 % for a 95 % interval, one-sided at 5 % for a 90 % one. It says
        nothing about which *true* differences the seeds would detect;
        :func:`~xdx_lib.analysis.power.detectable_difference` does.
        """
        if math.isnan(self.lower) or math.isnan(self.upper):
            return math.nan
        return (self.upper - self.lower) / 2

    @property
    def sign(self) -> int:
        """``1`` when the interval lies above 0, ``-1`` below it, ``0`` when it holds 0 or
        there is none: which way the seeds show the difference to go."""
        if math.isnan(self.lower):
            return 0
        if self.lower > 0:
            return 1
        return -1 if self.upper < 0 else 0


def paired_difference(df: pd.DataFrame, a: str, b: str, metric: str,
                      group: str | None = RunGroup.MAIN, confidence: float = 0.95,
                      by: str = "method") -> PairedDifference:  # fmt: skip
    """Mean of ``metric(a) - metric(b)`` over seeds both methods ran, with a t interval.

    ``a`` and ``b`` are values of the column ``by`` (methods; variants of a
    :func:`~xdx_lib.experiments.choices.variant_table` with ``by="variant"`` and ``group=None``).
    ``confidence=0.90`` gives the one-sided 95 % bounds the claims read.

    Raises:
        ValueError: a method has no run in ``group``, ``metric`` has no value for any run
            of a method, or a ``(seed, method)`` is duplicated.
    """
    from scipy import stats as scipy_stats

    why = unpaired_reason(df, a, b, metric, group, by)
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
        half = scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return PairedDifference(a=a, b=b, metric=metric, n=n, mean=mean, sd=sd, lower=low,
                            upper=high)  # fmt: skip


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


# ------------------------------------------------------------------- map interventions


def _intervention_frame(rows: Sequence[Mapping], metrics: Sequence[str],
                        baseline: str | None) -> pd.DataFrame:  # fmt: skip
    """``rows`` as a frame, checked: one row per seed and intervention, every intervention
    (the baseline among them, unless None) on every seed, every metric present."""
    df = pd.DataFrame(list(rows))
    if not len(df):
        raise ValueError("no intervention rows; give one per seed and intervention")
    needed = ["seed", "intervention", *metrics]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise ValueError(f"intervention rows need the fields {', '.join(needed)}; "
                         f"missing: {', '.join(absent)}")  # fmt: skip
    twice = _repeated(df, "intervention")
    if twice:
        raise ValueError(f"intervention rows repeat {twice}; give one row per seed and "
                         "intervention")  # fmt: skip
    names = list(dict.fromkeys(df["intervention"]))
    if baseline is not None and baseline not in names:
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
                       baseline: str = "own",
                       confidence: float = 1 - 2 * ALPHA) -> pd.DataFrame:  # fmt: skip
    """Each map intervention's mean over seeds and its paired difference from ``baseline``.

    ``rows`` hold one dict per seed and intervention (``seed``, ``intervention`` and each
    metric; :func:`xdx_lib.experiments.studies.intervention_rows` makes them). The table has one
    row per
    intervention in order of first appearance (index ``intervention``) and, for each metric,
    the columns ``(metric, "mean")``, then ``(metric, "difference")``, ``(metric, "lower")``
    and ``(metric, "upper")``: the mean over seeds of ``metric(intervention) -
    metric(baseline)`` with its t interval at ``confidence`` (:func:`paired_difference`; NaN
    bounds with one seed), and ``("n", "")``, the seeds; ``attrs["confidence"]`` holds
    ``confidence``. Its default gives the one-sided 95 % bounds that the part rule reads
    (:func:`intervention_differences`), so the table shows the intervals its reading reads.
    :func:`xdx_lib.report.tables.intervention_view` shows it.

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
            d = paired_difference(df, name, baseline, m, group=None, confidence=confidence,
                                  by="intervention")  # fmt: skip
            row.update({(m, "mean"): float(df.loc[df["intervention"] == name, m].mean()),
                        (m, "difference"): d.mean, (m, "lower"): d.lower,
                        (m, "upper"): d.upper, ("n", ""): d.n})  # fmt: skip
        table[name] = row
    out = pd.DataFrame.from_dict(table, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out = out.rename_axis("intervention")
    out.attrs["confidence"] = confidence
    return out


def intervention_differences(rows: Sequence[Mapping], pairs: Sequence[tuple[str, str]],
                             metric: str = "accuracy",
                             confidence: float = 1 - 2 * ALPHA,
                             ) -> dict[tuple[str, str], PairedDifference]:  # fmt: skip
    """The paired difference ``metric(a) - metric(b)`` over seeds for each intervention
    pair ``(a, b)`` of ``pairs``, with its t interval at ``confidence`` (default: the
    one-sided 95 % bounds the part rule, :func:`xdx_lib.analysis.claims.part_verdict`, reads).

    ``rows`` as :func:`intervention_table` takes them; unlike its differences, which are
    all from one baseline, a pair may be any two interventions (the teacher's true map
    against its mean map, say).

    Raises:
        ValueError: as :func:`intervention_table`, or a pair names an intervention without
            rows.
    """
    df = _intervention_frame(rows, [metric], None)
    names = set(df["intervention"])
    out = {}
    for a, b in pairs:
        absent = [i for i in (a, b) if i not in names]
        if absent:
            raise ValueError(f"no rows of {', '.join(map(repr, absent))}; the pairs need both")
        out[(a, b)] = paired_difference(df, a, b, metric, group=None, confidence=confidence,
                                        by="intervention")  # fmt: skip
    return out
