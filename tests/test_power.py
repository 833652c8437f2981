"""What a paired t test on a few seeds can tell: p-values, Holm's control and power, against
scipy, a simulation and numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from xdx_lib.analysis import power

T95_1 = 6.313752  # scipy.stats.t.ppf(0.95, 1), checked in test_stats
T95_9 = 1.833113  # scipy.stats.t.ppf(0.95, 9)
T80_9 = 0.883404  # scipy.stats.t.ppf(0.80, 9)


def test_one_seed_detects_nothing():
    assert math.isnan(power.detectable_difference(1, math.nan))


def test_detectable_difference_at_ten_seeds_is_about_1_47_times_the_threshold():
    sd, n = 0.01, 10
    threshold = T95_9 * sd / math.sqrt(n)  # the one-sided 95 % bound's half-width
    delta = power.detectable_difference(n, sd)
    # the usual approximation: (t_0.95 + t_0.80) sd / sqrt(n), 1.482 times the threshold
    assert delta / threshold == pytest.approx((T95_9 + T80_9) / T95_9, abs=0.015)
    assert delta / threshold == pytest.approx(1.4712, abs=1e-3)
    # the exact power at the returned difference, by scipy's noncentral t
    achieved = scipy_stats.nct.sf(T95_9, n - 1, delta * math.sqrt(n) / sd)
    assert achieved == pytest.approx(0.80, abs=1e-6)
    # and by simulation: the one-sided test rejects about 80 % of the time
    d = np.random.default_rng(0).normal(delta, sd, size=(40_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    assert (t > T95_9).mean() == pytest.approx(0.80, abs=0.01)


def test_detectable_difference_edge_cases():
    assert power.detectable_difference(3, 0.0) == 0.0
    assert math.isnan(power.detectable_difference(1, 0.01))
    assert math.isnan(power.detectable_difference(3, math.nan))
    # n = 2: one degree of freedom, a heavy tail; still 80 % power at the answer
    delta = power.detectable_difference(2, 0.01)
    achieved = scipy_stats.nct.sf(T95_1, 1, delta * math.sqrt(2) / 0.01)
    assert achieved == pytest.approx(0.80, abs=1e-6)
    assert delta > T95_1 * 0.01 / math.sqrt(2)


def test_superiority_power_without_a_margin_is_the_t_tests():
    # margin 0: only the bound must pass 0, the one-sided t test's power (noncentral t)
    for n, sd, delta in ((10, 0.005, 0.004), (3, 0.01, 0.02), (2, 0.01, 0.05)):
        ncp = delta * math.sqrt(n) / sd
        assert power.superiority_power(delta, n, sd, 0.0) == pytest.approx(
            scipy_stats.nct.sf(scipy_stats.t.ppf(0.95, n - 1), n - 1, ncp), abs=1e-9)
    assert power.superiority_detectable(10, 0.005, 0.0) == pytest.approx(
        power.detectable_difference(10, 0.005), abs=1e-9)


def test_superiority_power_matches_a_simulation_of_the_rule():
    # the rule: lower bound above 0 and mean at least the margin, on 10 and on 3 seeds
    rng = np.random.default_rng(0)
    for n, sd, margin, delta in ((10, 0.005, 0.006, 0.008), (3, 0.01, 0.006, 0.02)):
        d = rng.normal(delta, sd, size=(100_000, n))
        mean, s = d.mean(1), d.std(1, ddof=1)
        lower = mean - scipy_stats.t.ppf(0.95, n - 1) * s / math.sqrt(n)
        simulated = ((lower > 0) & (mean >= margin)).mean()
        assert power.superiority_power(delta, n, sd, margin) == pytest.approx(simulated,
                                                                              abs=0.005)


def test_superiority_detectable_at_ten_seeds_is_set_by_the_margin():
    # n = 10, sd 0.005: the t test alone detects 0.0043 (below the margin 0.006), so the
    # mean passing the margin decides: about margin + z_0.8 sd / sqrt(n) = 0.00733
    n, sd, margin = 10, 0.005, 0.006
    delta = power.superiority_detectable(n, sd, margin)
    assert power.detectable_difference(n, sd) == pytest.approx(0.004264, abs=1e-6)
    floor = margin + scipy_stats.norm.ppf(0.8) * sd / math.sqrt(n)
    assert floor == pytest.approx(0.007331, abs=1e-6)
    assert delta >= floor and delta == pytest.approx(floor, abs=1e-5)
    assert power.superiority_power(delta, n, sd, margin) == pytest.approx(0.8, abs=1e-9)
    # at three seeds with sd 0.01 the bound decides: just above the t test's 0.02297
    three = power.superiority_detectable(3, 0.01, margin)
    assert three == pytest.approx(0.022977, abs=2e-6)
    assert three > power.detectable_difference(3, 0.01)


def test_superiority_power_edge_cases():
    assert math.isnan(power.superiority_power(0.01, 1, 0.01, 0.006))
    assert math.isnan(power.superiority_power(0.01, 3, math.nan, 0.006))
    assert power.superiority_power(0.006, 3, 0.0, 0.006) == 1.0  # no spread: the mean itself
    assert power.superiority_power(0.005, 3, 0.0, 0.006) == 0.0
    assert power.superiority_detectable(3, 0.0, 0.006) == 0.006
    assert math.isnan(power.superiority_detectable(1, 0.01, 0.006))
    # the power grows with the true difference and is half at the margin when the bound
    # is no obstacle (sd tiny against it)
    powers = [power.superiority_power(x, 10, 0.005, 0.006) for x in (0.004, 0.006, 0.008)]
    assert powers == sorted(powers)
    assert power.superiority_power(0.006, 10, 1e-4, 0.006) == pytest.approx(0.5, abs=1e-6)


def test_holm_by_hand_and_against_the_bonferroni_bound():
    # sorted 0.01 (x4) = 0.04, 0.02 (x3) = 0.06, 0.03 (x2) = 0.06, 0.04 (x1) = 0.06 (kept
    # non-decreasing); NaN is left out of the count and stays NaN
    got = power.holm([0.03, 0.01, float("nan"), 0.04, 0.02])
    assert got[:2] == pytest.approx([0.06, 0.04]) and math.isnan(got[2])
    assert got[3:] == pytest.approx([0.06, 0.06])
    assert power.holm([0.6, 0.5]) == [1.0, 1.0] and power.holm([]) == []
    ps = [0.001, 0.2, 0.03, 0.012, 0.5, 0.04]
    # never below the raw p-value, never above Bonferroni's k p
    assert all(p <= q <= min(1, len(ps) * p) for p, q in zip(ps, power.holm(ps)))


def test_one_sided_p_is_below_alpha_exactly_when_the_bound_clears_the_null():
    for d, null in (([0.02, 0.03, 0.01], 0.0), ([0.001, 0.002, 0.004], 0.0),
                    ([0.05, -0.01, 0.02, 0.03], 0.006)):  # fmt: skip
        mean, sd, n = np.mean(d), np.std(d, ddof=1), len(d)
        p = power.one_sided_p(n, mean, sd, null, "greater")
        assert p == pytest.approx(scipy_stats.ttest_1samp(d, null, alternative="greater").pvalue)
        lower = mean - scipy_stats.t.ppf(0.95, n - 1) * sd / math.sqrt(n)
        assert (p < 0.05) == (lower > null)
        less = power.one_sided_p(n, mean, sd, null, "less")
        assert less == pytest.approx(scipy_stats.ttest_1samp(d, null, alternative="less").pvalue)
    assert math.isnan(power.one_sided_p(1, 0.1, float("nan")))
    assert power.one_sided_p(3, 0.25, 0.0) == 0.0 and power.one_sided_p(3, 0.0, 0.0) == 0.5
    with pytest.raises(ValueError, match="side"):
        power.one_sided_p(3, 0.1, 0.01, side="two")
