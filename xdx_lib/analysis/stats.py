"""Numbers over seeds: means, paired differences with their intervals, power, plateaus.

A method is "better" only beyond the noise between seeds: every comparison here pairs two
methods on the same seed (same initial data order and subset), takes the per-seed
differences ``d_s = m_A(s) - m_B(s)`` and reports their mean with a Student-t interval,
``mean(d) +- t_{q, n-1} sd(d) / sqrt(n)`` (:func:`paired_difference`, a
:class:`PairedDifference`). With one seed there is no interval (NaN bounds).

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
#: the ``1 - 2 ALPHA`` interval, and :func:`detectable_difference` tests at this level.
ALPHA = 0.05
#: The power at which :func:`detectable_difference` states what the seeds could detect.
POWER = 0.80


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
        :func:`detectable_difference` does.
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


def one_sided_p(n: int, mean: float, sd: float, null: float = 0.0,
                side: str = "greater") -> float:  # fmt: skip
    """The p-value of the one-sided paired t test of a mean difference against ``null``.

    ``side="greater"`` tests ``H0: delta <= null`` (small when ``mean`` lies well above
    ``null``), ``"less"`` tests ``H0: delta >= null``. It is below ``ALPHA`` exactly when
    the one-sided bound of the ``1 - 2 ALPHA`` interval clears ``null``. NaN below two
    seeds; differences that do not spread give 0 or 1 (0.5 on ``null`` itself).
    """
    from scipy import stats as scipy_stats

    if side not in ("greater", "less"):
        raise ValueError(f"one_sided_p: side is {side!r}; choose 'greater' or 'less'")
    if n < 2 or math.isnan(sd) or math.isnan(mean):
        return math.nan
    above = mean - null if side == "greater" else null - mean
    if sd == 0:
        return 0.0 if above > 0 else (0.5 if above == 0 else 1.0)
    return float(scipy_stats.t.sf(above / (sd / math.sqrt(n)), n - 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` (Holm 1979): each adjusted p-value below
    ``ALPHA`` is a rejection with the chance of any false one at most ``ALPHA``, however
    the tests depend on each other.

    The ``k`` finite p-values are sorted, the ``i``-th smallest (from 0) multiplied by
    ``k - i``, made non-decreasing along that order and capped at 1; NaN stays NaN and is
    not counted. The same as ``statsmodels``' ``multipletests(method="holm")``.
    """
    finite = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    k = len(finite)
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (k - rank) * p))
        out[i] = running
    return out


def detectable_difference(n: int, sd: float, alpha: float = ALPHA,
                          power: float = POWER) -> float:  # fmt: skip
    """The true mean difference a one-sided paired t test at level ``alpha`` detects with
    probability ``power``, over ``n`` seeds whose differences spread with ``sd``.

    Solved exactly with the noncentral t distribution: the test rejects when
    ``t = mean / (sd / sqrt(n))`` exceeds ``t_{1-alpha, n-1}``, and under a true
    difference ``delta`` that statistic is noncentral t with ``n - 1`` degrees of freedom
    and noncentrality ``delta sqrt(n) / sd``. The result is that noncentrality, found by
    root finding, times ``sd / sqrt(n)``. At ``n = 10`` it is about 1.47 times the
    one-sided threshold (:attr:`PairedDifference.half_width` of the 90 % interval).
    ``sd`` is the observed one, so this is an estimate. NaN below two seeds; 0 when the
    differences do not spread.
    """
    from scipy import optimize
    from scipy import stats as scipy_stats

    if n < 2 or math.isnan(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df = n - 1
    crit = scipy_stats.t.ppf(1 - alpha, df)

    def shortfall(ncp: float) -> float:
        return scipy_stats.nct.sf(crit, df, ncp) - power

    high = crit + 1.0
    while shortfall(high) < 0:  # the power grows with the noncentrality: bracket the root
        high *= 2
    ncp = optimize.brentq(shortfall, 0.0, high, xtol=1e-10)
    return ncp * sd / math.sqrt(n)


def superiority_power(delta: float, n: int, sd: float, margin: float,
                      alpha: float = ALPHA) -> float:  # fmt: skip
    """The probability that a "higher" part reads supported under a true mean difference
    ``delta``: that its one-sided lower bound is above 0 *and* its mean is at least
    ``margin``, over ``n`` seeds whose differences are normal with standard deviation ``sd``.

    The two conditions are on the sample mean ``m`` and the sample sd ``s``: ``m > t s /
    sqrt(n)`` (``t = t_{1-alpha, n-1}``) and ``m >= margin``, so ``m`` must pass ``max(margin,
    t s / sqrt(n))``. ``m`` is normal and independent of ``s``, and ``(n - 1) s^2 / sd^2`` is
    chi-square with ``V = n - 1`` degrees of freedom, so conditioning on it leaves one
    integral, computed by quadrature (no random draws)::

        P = Phi((delta - margin) sqrt(n) / sd) F(v*)
            + integral_{v*}^inf Phi(delta sqrt(n) / sd - t sqrt(v / V)) f(v) dv,

    where ``f``, ``F`` are the chi-square density and distribution and ``v*`` is where
    ``t s / sqrt(n)`` reaches the margin. With ``margin`` 0 it is the power of the one-sided
    t test (:func:`detectable_difference`). NaN below two seeds; with ``sd`` 0 the mean is
    ``delta`` itself, so 1 when ``delta`` is positive and at least the margin, else 0.
    """
    from scipy import integrate
    from scipy import stats as scipy_stats

    if n < 2 or math.isnan(sd) or math.isnan(delta):
        return math.nan
    if sd == 0:
        return 1.0 if delta > 0 and delta >= margin else 0.0
    dof = n - 1
    crit = scipy_stats.t.ppf(1 - alpha, dof)
    scale = sd / math.sqrt(n)
    v_star = dof * (max(margin, 0.0) / (crit * scale)) ** 2
    below = scipy_stats.norm.cdf((delta - margin) / scale) * scipy_stats.chi2.cdf(v_star, dof)

    def above(v: float) -> float:
        passes = scipy_stats.norm.cdf(delta / scale - crit * math.sqrt(v / dof))
        return passes * scipy_stats.chi2.pdf(v, dof)

    tail, _ = integrate.quad(above, v_star, math.inf, epsabs=1e-12, epsrel=1e-10, limit=200)
    return float(min(1.0, below + tail))


def superiority_detectable(n: int, sd: float, margin: float, alpha: float = ALPHA,
                           power: float = POWER) -> float:  # fmt: skip
    """The smallest true mean difference at which a "higher" part reads supported with
    probability ``power`` (:func:`superiority_power`: lower bound above 0 and mean at least
    ``margin``), over ``n`` seeds whose differences spread with ``sd``.

    Found by root finding on the power, which grows with the true difference. It is at
    least ``margin + z_power sd / sqrt(n)`` (the mean alone must pass the margin) and at
    least :func:`detectable_difference` (the bound alone must pass 0). ``sd`` is the
    observed one, so this is an estimate. NaN below two seeds; ``max(margin, 0)`` when the
    differences do not spread.
    """
    from scipy import optimize

    if n < 2 or math.isnan(sd):
        return math.nan
    if sd == 0:
        return max(margin, 0.0)
    scale = sd / math.sqrt(n)

    def shortfall(delta: float) -> float:
        return superiority_power(delta, n, sd, margin, alpha) - power

    low = max(margin, 0.0)  # power at most one half there: the mean passes it half the time
    step = scale
    while shortfall(low + step) < 0:  # bracket the root
        step *= 2
    return optimize.brentq(shortfall, low, low + step, xtol=1e-12 * max(1.0, scale))


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
