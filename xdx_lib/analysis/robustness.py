"""How far the claims' verdicts can be trusted: how many tests they rest on, and how each
reads when any one seed is left out.

:func:`multiplicity` counts the tests the verdicts (:func:`~xdx_lib.analysis.claims.verdicts`)
and the paired table read, each at its own 5 %, and the chance that one fires by chance;
:func:`leave_one_seed_out` reads every claim again without each seed in turn, and says
which verdicts one seed decides (*fragile*) and how far each part's estimate and bounds
move. Numbers and typed records only; their tables and sentences are
:mod:`xdx_lib.report.tables` and :mod:`xdx_lib.report.readings`. Layer: above the claims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from xdx_lib.analysis.claims import (
    CLAIMS,
    PAIR_METRICS,
    PAIRS,
    Claim,
    ClaimReading,
    ClaimVerdict,
    verdicts,
)
from xdx_lib.analysis.stats import ALPHA
from xdx_lib.core.kinds import RunGroup


@dataclass(frozen=True)
class Multiplicity:
    """How many tests the results chapter reads, each at its own 5 % (:func:`multiplicity`).

    ``parts`` is each claim's name and number of parts (one one-sided test at ``alpha``
    each), ``cells`` the paired table's pairs times metrics (one two-sided 95 % interval
    each).
    """

    parts: tuple[tuple[str, int], ...]
    cells: int
    alpha: float = ALPHA

    @property
    def total_parts(self) -> int:
        """Every part of every claim."""
        return sum(k for _, k in self.parts)

    def chance_any(self, k: int) -> tuple[float, float]:
        """The chance that at least one of ``k`` tests at ``alpha`` fires when none of their
        effects is real: ``1 - (1 - alpha)^k`` if they were independent, and at most ``k
        alpha`` however they depend on each other (Bonferroni)."""
        return 1 - (1 - self.alpha) ** k, min(1.0, k * self.alpha)


def multiplicity(claims: Sequence[Claim] = CLAIMS, pairs: Sequence[tuple[str, str]] = PAIRS,
                 metrics: Sequence[str] = PAIR_METRICS) -> Multiplicity:  # fmt: skip
    """The tests :func:`~xdx_lib.analysis.claims.verdicts` and
    :func:`~xdx_lib.analysis.claims.paired_difference_table` read, counted from ``claims``
    and from ``pairs`` times ``metrics`` (the table leaves out the cells a result lacks, so
    this is the most it reads)."""
    return Multiplicity(tuple((c.name, len(c.parts)) for c in claims), len(pairs) * len(metrics))


@dataclass(frozen=True)
class PartSpread:
    """How far one part moves when one seed is left out (:func:`leave_one_seed_out`): its
    estimate's lowest and highest, and the widest its one-sided bounds reach."""

    a: str
    b: str
    metric: str
    mean_low: float
    mean_high: float
    lower: float
    upper: float


@dataclass(frozen=True)
class SeedOutReading:
    """A claim's verdict on every seed, and on every seed but one (:func:`leave_one_seed_out`).

    ``without`` pairs each seed with the claim's verdict when that seed is left out;
    ``parts`` says how far each part's estimate and bounds move over those readings.
    """

    claim: str
    verdict: ClaimVerdict
    without: tuple[tuple[int, ClaimVerdict], ...]
    parts: tuple[PartSpread, ...] = ()

    @property
    def changed_by(self) -> tuple[int, ...]:
        """The seeds without which the verdict is another."""
        return tuple(seed for seed, v in self.without if v is not self.verdict)

    @property
    def fragile(self) -> bool:
        """Whether leaving some one seed out changes the verdict."""
        return bool(self.changed_by)


def leave_one_seed_out(df: pd.DataFrame, claims: Sequence[Claim] = CLAIMS,
                       group: str = RunGroup.MAIN) -> tuple[SeedOutReading, ...]:  # fmt: skip
    """Every claim's verdict (:func:`~xdx_lib.analysis.claims.verdicts`) on the seeds of
    ``group``, and again with each seed left out in turn: a verdict that one seed decides is
    one another machine's noise may change. With one seed, leaving it out leaves nothing, so
    inconclusive."""
    part = df["group"] == group
    seeds = sorted({int(s) for s in df.loc[part, "seed"]})
    full = verdicts(df, claims, group)
    without = {s: verdicts(df[~(part & (df["seed"] == s))], claims, group) for s in seeds}
    return tuple(SeedOutReading(c.name, c.verdict,
                                tuple((s, without[s][i].verdict) for s in seeds),
                                _spreads(c, [without[s][i] for s in seeds]))
                 for i, c in enumerate(full))  # fmt: skip


def _spreads(full: ClaimReading, out: Sequence[ClaimReading]) -> tuple[PartSpread, ...]:
    """Each part of ``full`` over the readings ``out`` with one seed left out (NaN where
    none was read)."""

    def span(values, pick):
        finite = [v for v in values if not math.isnan(v)]
        return pick(finite) if finite else math.nan

    spreads = []
    for j, part in enumerate(full.parts):
        means = [r.parts[j].mean for r in out]
        spreads.append(PartSpread(part.a, part.b, part.metric, span(means, min),
                                  span(means, max), span([r.parts[j].lower for r in out], min),
                                  span([r.parts[j].upper for r in out], max)))  # fmt: skip
    return tuple(spreads)
