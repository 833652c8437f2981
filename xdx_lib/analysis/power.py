"""What a paired t test on a few seeds can tell: one-sided p-values, Holm's control of a
family of them, and the power and detectable differences of the claims' rule.

The claims (:mod:`xdx_lib.analysis.claims`) read each part through its one-sided bounds
(:func:`~xdx_lib.analysis.stats.paired_difference`); the p-value here is below
:data:`~xdx_lib.analysis.stats.ALPHA` exactly when that bound clears the null
(:func:`one_sided_p`), Holm's step-down adjusts the parts' p-values as one family
(:func:`holm`), and the power functions say which true differences the rule would read
supported on ``n`` seeds that spread as observed (:func:`superiority_power`,
:func:`superiority_detectable`, :func:`detectable_difference`). Numbers only; torch free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xdx_lib.analysis.stats import ALPHA

#: The power at which :func:`detectable_difference` states what the seeds could detect.
POWER = 0.80


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
    one-sided threshold (:attr:`~xdx_lib.analysis.stats.PairedDifference.half_width` of the
    90 % interval). ``sd`` is the observed one, so this is an estimate. NaN below two seeds;
    0 when the differences do not spread.
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
