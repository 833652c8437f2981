"""How far the verdicts can be trusted: the tests they rest on, and each verdict with one
seed left out."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from frames import claims_frame

from xdx_lib.analysis import claims, robustness
from xdx_lib.analysis.claims import ClaimVerdict as CV

M = 0.006


def test_multiplicity_counts_the_claims_parts_and_the_tables_cells():
    m = robustness.multiplicity()
    assert m.parts == (("C1", 2), ("C2", 1), ("C3", 3)) and m.total_parts == 6
    assert m.cells == len(claims.PAIRS) * len(claims.PAIR_METRICS) == 35
    indep, bound = m.chance_any(3)
    assert indep == pytest.approx(1 - 0.95**3) and bound == pytest.approx(0.15)
    assert m.chance_any(30)[1] == 1.0
    one = robustness.multiplicity([claims.CLAIMS[1]], pairs=[("kd", "scratch")],
                                  metrics=["accuracy"])  # fmt: skip
    assert (one.parts, one.cells) == ((("C2", 1),), 1)


def test_leave_one_seed_out_is_the_verdicts_without_each_seed():
    df = claims_frame()
    out = robustness.leave_one_seed_out(df)
    assert [r.claim for r in out] == ["C1", "C2", "C3"]
    assert [r.verdict for r in out] == [c.verdict for c in claims.verdicts(df)]
    for seed in range(3):
        alone = claims.verdicts(df[df.seed != seed])
        assert [dict(r.without)[seed] for r in out] == [c.verdict for c in alone]
    # C2, accuracy xdistill - kd = [-0.03, -0.04, -0.05]: without seed 0, [-0.04, -0.05]
    # has upper -0.045 + 6.31 * 0.00707 / sqrt(2) = -0.013 < 0, still opposite; without
    # seed 1, [-0.03, -0.05] has upper -0.04 + 6.31 * 0.01414 / sqrt(2) = +0.023: seed 1
    # decides it, so the verdict is fragile
    c2 = out[1]
    assert c2.verdict is CV.NOT_SUPPORTED
    assert c2.without == ((0, CV.NOT_SUPPORTED), (1, CV.INCONCLUSIVE), (2, CV.NOT_SUPPORTED))
    assert c2.fragile and c2.changed_by == (1,)


def test_leave_one_seed_out_finds_the_seed_a_verdict_rests_on():
    # accuracy xdistill - kd = [0.02, 0.021, 0.019, -0.03]: on four seeds the bound is
    # below 0 (inconclusive); without seed 3, [0.02, 0.021, 0.019] is supported
    diffs = [0.02, 0.021, 0.019, -0.03]
    rows = [{"group": "main", "method": m, "seed": s,
             "accuracy": 0.8 + (d if m == "xdistill" else 0)}
            for s, d in enumerate(diffs) for m in ("kd", "xdistill")]  # fmt: skip
    c2 = claims.Claim("C2", "more accurate", (claims.Evidence("xdistill", "kd", "accuracy", M),))
    (r,) = robustness.leave_one_seed_out(pd.DataFrame(rows), claims=[c2])
    assert r.verdict is CV.INCONCLUSIVE
    assert r.without == ((0, CV.INCONCLUSIVE), (1, CV.INCONCLUSIVE), (2, CV.INCONCLUSIVE),
                         (3, CV.SUPPORTED))  # fmt: skip
    assert r.changed_by == (3,) and r.fragile
    # one seed: leaving it out leaves nothing, inconclusive as before
    (alone,) = robustness.leave_one_seed_out(pd.DataFrame(rows[:2]), claims=[c2])
    assert alone.without == ((0, CV.INCONCLUSIVE),) and not alone.fragile


def test_leave_one_seed_out_says_how_far_each_part_moves():
    (c1, c2, c3) = robustness.leave_one_seed_out(claims_frame())
    agree = c1.parts[0]
    # agreement kd - scratch = [0.05, 0.06, 0.07]: means 0.065, 0.06, 0.055 without one seed
    assert (agree.a, agree.b, agree.metric) == ("kd", "scratch", "agreement")
    assert (agree.mean_low, agree.mean_high) == pytest.approx((0.055, 0.065))
    assert agree.lower < agree.mean_low and agree.upper > agree.mean_high
    assert math.isnan(c3.parts[2].mean_low)  # skipped in every reading
