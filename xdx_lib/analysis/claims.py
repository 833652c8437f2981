"""The paper's claims, the pairs the results chapter compares, the margins and the rule.

The claims (C1-C3), their parts and margins, and the verdict rule are defined in the
book's chapter "Method, claims and metrics"; :data:`CLAIMS` and :data:`PAIRS` are that
chapter in code. Each part of a claim is a paired difference (:mod:`xdx_lib.analysis.stats`)
read through its 90 % t interval, whose ends are the one-sided 95 % bounds of two one-sided
tests, against a margin fixed here before any run is read (:func:`part_verdict`); a claim's
verdict follows from its parts' (:func:`claim_verdict`). The parts of all claims are one
family: a part reads *supported* only when its test survives Holm's control of the
family-wise error (:func:`verdicts`, :func:`~xdx_lib.analysis.power.holm`). With one seed
there is no interval and every part is inconclusive. How many tests the verdicts and the
paired table read, and how each verdict reads when any one seed is left out, are
:mod:`xdx_lib.analysis.robustness`.

Everything here returns numbers and ``enum.Enum`` verdicts in typed records
(:class:`PartReading`, :class:`ClaimReading`) and frames of them; the chapters' tables and
sentences of them are :mod:`xdx_lib.report.tables`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from xdx_lib.analysis.power import detectable_difference, holm, one_sided_p, superiority_detectable
from xdx_lib.analysis.stats import (
    ALPHA,
    PairedDifference,
    check_one_run_per_seed,
    paired_difference,
    unpaired_reason,
)
from xdx_lib.core.kinds import RunGroup

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


class PartVerdict(enum.Enum):
    """The reading of one part of a claim (:func:`part_verdict`); its value is the
    reading's name in the chapter "Method, claims and metrics", which the tables print."""

    SUPPORTED = "supported"
    OPPOSITE = "opposite"
    NO_DIFFERENCE = "no difference beyond the margin"
    #: A "higher" part shown above 0 whose mean is below the margin, a difference shown but
    #: not shown to be one that matters.
    BELOW_MARGIN = "positive but below the margin"
    INCONCLUSIVE = "inconclusive"
    #: The part could not be read, its metric or a method being absent or no seed having both.
    SKIPPED = "skipped"


class ClaimVerdict(enum.Enum):
    """The verdict on a whole claim (:func:`claim_verdict`); its value is the verdict's
    name in the chapter "Method, claims and metrics", which the tables print."""

    SUPPORTED = "supported"
    #: Some parts supported, another shown to lie inside its margin.
    PARTLY_NEGLIGIBLE = "partly supported (a part shown negligible)"
    #: Some parts supported, another shown above 0 by less than its margin.
    PARTLY_BELOW_MARGIN = "partly supported (a part below the margin)"
    #: Some parts supported, the others inconclusive or skipped.
    PARTLY_UNDECIDED = "partly supported (a part undecided)"
    #: No part supported, none opposite or negligible, some shown above 0 below the margin.
    BELOW_MARGIN = "positive but below the margin"
    NOT_SUPPORTED = "not supported"
    INCONCLUSIVE = "inconclusive"

    @property
    def partly(self) -> bool:
        """Whether this is one of the three "partly supported" verdicts."""
        return self.value.startswith("partly supported")


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


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and the parts that decide it (:func:`claim_verdict`).

    Adding a metric to a claim is one more :class:`Evidence` in ``parts``; one whose
    metric or methods are absent from the results is skipped, with the reason.
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
                 Evidence("xdistill", "kd_cae", "deployed/pearson", R_MARGIN))),
)  # fmt: skip
#: C3's deployed explanation is judged against ``kd_cae``, KD's student deployed with the
#: same CAE map: against KD's own Grad-CAM the difference would be the CAE's, not
#: XDistillation's. That comparison stays in the paired table (:data:`PAIRS`), reported.

#: The pairs ``(A, B)`` of the paired-difference table, each read as ``A - B``, each once
#: (``xdistill - kd_cae``: the same deployed explanation, KD's logits against the fused one's).
PAIRS: tuple[tuple[str, str], ...] = (
    ("kd", "scratch"),
    ("xdistill", "kd"),
    ("xdistill", "scratch"),
    ("xdistill", "kd_cae"),
    ("e2kd", "kd"),
    ("xdistill", "e2kd"),
    ("at", "kd"),
)
#: The metrics of the paired-difference table and of the forest plot.
PAIR_METRICS: tuple[str, ...] = ("accuracy", "agreement", "gradcam/pearson", "deployed/pearson",
                                 "gradcam/topk_iou")  # fmt: skip


# ---------------------------------------------------------------------------- the rule


def part_verdict(lower: float, upper: float, margin: float, needs: str = "higher",
                 mean: float | None = None, shown: bool | None = None) -> PartVerdict:  # fmt: skip
    """The reading of one part from its one-sided 95 % bounds ``lower`` and ``upper`` and
    its mean difference ``mean`` (None: the bounds' midpoint, which is the mean of a t
    interval).

    ``shown`` is whether the test the claim needs rejects its null hypothesis: for a
    "higher" part ``A - B <= 0``, for a "not higher" one ``A - B >= margin``. None reads it
    off the bounds (``lower > 0``, ``upper < margin``: each test at 5 %); :func:`verdicts`
    passes Holm's decision over the family of parts instead.

    ``needs="higher"`` (the claim needs ``A - B > 0`` by at least the margin), tried in
    this order:

    * OPPOSITE: ``upper < 0``, a part shown worse, inside its margin or not;
    * NO_DIFFERENCE ("no difference beyond the margin"): ``-margin < lower`` and ``upper <
      margin``. A difference shown to lie inside the margin does not matter, even when it
      is also shown to be above 0, so it neither supports nor opposes the claim;
    * SUPPORTED: shown above 0, and ``mean >= margin``: estimated as large as a
      difference that matters;
    * BELOW_MARGIN: shown above 0, but ``mean < margin``;
    * INCONCLUSIVE: otherwise.

    ``needs="not higher"`` (the claim needs ``A - B`` to be small or negative): SUPPORTED
    when shown (``upper < margin``), OPPOSITE when ``lower > margin``, else INCONCLUSIVE;
    mere non-significance of ``A - B > 0`` is not enough. Every comparison is strict, so a
    bound touching 0 or the margin shows nothing; no bounds (one seed) read INCONCLUSIVE.
    """
    if needs not in NEEDS:
        raise ValueError(f"part_verdict: needs is {needs!r}; choose one of {NEEDS}")
    if math.isnan(lower) or math.isnan(upper):
        return PartVerdict.INCONCLUSIVE
    if needs == "not higher":
        if upper < margin if shown is None else shown:
            return PartVerdict.SUPPORTED
        return PartVerdict.OPPOSITE if lower > margin else PartVerdict.INCONCLUSIVE
    if upper < 0:
        return PartVerdict.OPPOSITE
    if -margin < lower and upper < margin:
        return PartVerdict.NO_DIFFERENCE
    if lower > 0 if shown is None else shown:
        mean = (lower + upper) / 2 if mean is None else mean
        return PartVerdict.SUPPORTED if mean >= margin else PartVerdict.BELOW_MARGIN
    return PartVerdict.INCONCLUSIVE


def claim_verdict(readings: Iterable[PartVerdict]) -> ClaimVerdict:
    """A claim's verdict from its parts' readings (:func:`part_verdict`), in this order.

    * NOT_SUPPORTED when any part is OPPOSITE: a part shown worse refutes the conjunction,
      so no "partly supported" hides one;
    * SUPPORTED when every part is SUPPORTED;
    * when some part is SUPPORTED, "partly supported" named by the weakest other part:
      PARTLY_NEGLIGIBLE (one shows no difference beyond its margin), else
      PARTLY_BELOW_MARGIN (one is positive but below its margin), else PARTLY_UNDECIDED
      (the others inconclusive or skipped);
    * NOT_SUPPORTED when no part is supported and some part shows no difference beyond its
      margin: the difference the claim asserts is shown not to matter;
    * BELOW_MARGIN when no part is supported and some is positive but below its margin;
    * INCONCLUSIVE otherwise (one seed, or every part skipped or inconclusive).

    A skipped part counts as inconclusive: a claim with one is never SUPPORTED.
    """
    readings = [PartVerdict(r) for r in readings]
    if PartVerdict.OPPOSITE in readings:
        return ClaimVerdict.NOT_SUPPORTED
    if readings and all(r is PartVerdict.SUPPORTED for r in readings):
        return ClaimVerdict.SUPPORTED
    if PartVerdict.SUPPORTED in readings:
        if PartVerdict.NO_DIFFERENCE in readings:
            return ClaimVerdict.PARTLY_NEGLIGIBLE
        if PartVerdict.BELOW_MARGIN in readings:
            return ClaimVerdict.PARTLY_BELOW_MARGIN
        return ClaimVerdict.PARTLY_UNDECIDED
    if PartVerdict.NO_DIFFERENCE in readings:
        return ClaimVerdict.NOT_SUPPORTED
    if PartVerdict.BELOW_MARGIN in readings:
        return ClaimVerdict.BELOW_MARGIN
    return ClaimVerdict.INCONCLUSIVE


# ----------------------------------------------------------------- reading the results


@dataclass(frozen=True)
class PartReading:
    """One part of a claim as read from the results (:func:`judge_part`).

    ``lower``/``upper`` are the one-sided 95 % bounds (the 90 % t interval),
    ``half_width`` their half-width (:attr:`~xdx_lib.analysis.stats.PairedDifference.half_width`),
    ``detectable`` the true difference at which the rule reads the part supported with
    80 % power (:func:`detectable_for`, each test at 5 %). ``p`` is the p-value of the test
    the claim needs (:func:`part_p`), ``p_holm`` the same after Holm's adjustment over the
    family of parts the verdicts read (NaN when read alone, by :func:`judge_part`). A
    skipped part has ``n = 0``, NaN numbers and ``reason``, the message that says why it
    could not be read; a part that was read has an empty ``reason``.
    """

    claim: str
    a: str
    b: str
    metric: str
    needs: str
    margin: float
    verdict: PartVerdict
    n: int = 0
    mean: float = math.nan
    sd: float = math.nan
    lower: float = math.nan
    upper: float = math.nan
    half_width: float = math.nan
    detectable: float = math.nan
    p: float = math.nan
    p_holm: float = math.nan
    reason: str = ""

    @property
    def clears_margin(self) -> bool:
        """Whether a supported "higher" part's lower bound clears the margin itself, not
        only 0 (its estimate alone passing the margin)."""
        return self.needs == "higher" and self.lower > self.margin


#: The columns of :func:`claim_parts`: the fields of :class:`PartReading`.
PART_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PartReading))


def judge_part(df: pd.DataFrame, claim: str, evidence: Evidence,
               group: str = RunGroup.MAIN) -> PartReading:  # fmt: skip
    """One part of the claim named ``claim``, read from the runs of ``group`` in ``df``.

    The part is skipped (``PartVerdict.SKIPPED``, with the reason) when its metric or a
    method is absent from ``group`` or no seed has both methods.
    """
    given = {"claim": claim, "a": evidence.a, "b": evidence.b, "metric": evidence.metric,
             "needs": evidence.needs, "margin": evidence.margin}  # fmt: skip
    why = unpaired_reason(df, evidence.a, evidence.b, evidence.metric, group)
    if why:
        return PartReading(**given, verdict=PartVerdict.SKIPPED, reason=why)
    d: PairedDifference = paired_difference(df, evidence.a, evidence.b, evidence.metric,
                                            group=group, confidence=1 - 2 * ALPHA)  # fmt: skip
    if d.n == 0:
        return PartReading(**given, verdict=PartVerdict.SKIPPED, reason="no seed has both")
    verdict = part_verdict(d.lower, d.upper, evidence.margin, evidence.needs, d.mean)
    return PartReading(**given, verdict=verdict, n=d.n, mean=d.mean, sd=d.sd, lower=d.lower,
                       upper=d.upper, half_width=d.half_width,
                       detectable=detectable_for(evidence, d.n, d.sd),
                       p=part_p(evidence, d.n, d.mean, d.sd))  # fmt: skip


def part_p(evidence: Evidence, n: int, mean: float, sd: float) -> float:
    """The p-value of the test ``evidence``'s claim needs
    (:func:`~xdx_lib.analysis.power.one_sided_p`): ``A - B > 0`` for a "higher" part,
    ``A - B < margin`` for a "not higher" one."""
    if evidence.needs == "higher":
        return one_sided_p(n, mean, sd, 0.0, "greater")
    return one_sided_p(n, mean, sd, evidence.margin, "less")


def controlled(parts: Sequence[PartReading]) -> list[PartReading]:
    """``parts`` read again as one family under Holm's control
    (:func:`~xdx_lib.analysis.power.holm`): each gets ``p_holm``, and reads shown above 0 (or
    below the margin) only when ``p_holm < ALPHA``, so that the chance of any part read
    supported by chance is at most 5 % however many parts there are."""
    adjusted = holm([p.p for p in parts])
    return [dataclasses.replace(p, p_holm=q, verdict=p.verdict if p.verdict is PartVerdict.SKIPPED
                                else part_verdict(p.lower, p.upper, p.margin, p.needs, p.mean,
                                                  shown=q < ALPHA))
            for p, q in zip(parts, adjusted)]  # fmt: skip


def detectable_for(evidence: Evidence, n: int, sd: float) -> float:
    """The true difference at which :func:`part_verdict` reads ``evidence`` supported with
    80 % power, over ``n`` seeds whose differences spread with ``sd`` (NaN below two).

    For a "higher" part the smallest such difference, at which the lower bound passes 0 *and* the
    mean passes the margin four times in five
    (:func:`~xdx_lib.analysis.power.superiority_detectable`); for a "not higher" part the largest,
    ``margin`` less what the one-sided test detects
    (:func:`~xdx_lib.analysis.power.detectable_difference`), since it needs the upper bound below
    the margin.
    """
    if evidence.needs == "higher":
        return superiority_detectable(n, sd, evidence.margin)
    return evidence.margin - detectable_difference(n, sd)


@dataclass(frozen=True)
class ClaimReading:
    """A claim's verdict (:func:`claim_verdict`) and the parts it was read from."""

    name: str
    verdict: ClaimVerdict
    parts: tuple[PartReading, ...]


def verdicts(df: pd.DataFrame, claims: Sequence[Claim] = CLAIMS,
             group: str = RunGroup.MAIN) -> tuple[ClaimReading, ...]:  # fmt: skip
    """Every claim read from the runs of ``group``: one :class:`ClaimReading` each, in the
    claims' order, its parts read by :func:`judge_part`.

    The parts of all ``claims`` are one family: each is read under Holm's control of the
    family-wise error (:func:`controlled`). The results chapter runs it on the group
    ``claims`` when the experiment has one. A duplicated ``(seed, method)`` in ``group`` is
    an error (:func:`~xdx_lib.analysis.stats.check_one_run_per_seed`), even when no part
    reads it.
    """
    check_one_run_per_seed(df, group)
    flat = controlled([judge_part(df, c.name, ev, group) for c in claims for ev in c.parts])
    out, start = [], 0
    for claim in claims:
        parts = tuple(flat[start:start + len(claim.parts)])
        start += len(claim.parts)
        out.append(ClaimReading(claim.name, claim_verdict(p.verdict for p in parts), parts))
    return tuple(out)


def claim_parts(df: pd.DataFrame, claims: Sequence[Claim] = CLAIMS,
                group: str = RunGroup.MAIN) -> pd.DataFrame:  # fmt: skip
    """Every part of every claim (:func:`verdicts`), one row each (:data:`PART_COLUMNS`), in
    the claims' order: what the forest plot marks (:func:`xdx_lib.report.plots.forest_plot`)."""
    rows = [dataclasses.asdict(p) for c in verdicts(df, claims, group) for p in c.parts]
    return pd.DataFrame(rows, columns=list(PART_COLUMNS))


# -------------------------------------------------------------------- the paired table


def paired_difference_table(df: pd.DataFrame, methods: Iterable[str] | None = None,
                            pairs: Sequence[tuple[str, str]] = PAIRS,
                            metrics: Sequence[str] = PAIR_METRICS, group: str = RunGroup.MAIN,
                            confidence: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """Every :func:`~xdx_lib.analysis.stats.paired_difference` of ``pairs`` x ``metrics``, as
    numbers.

    One row per pair and metric, in that order, with the fields of
    :class:`~xdx_lib.analysis.stats.PairedDifference` as columns and ``half_width``. Pairs with a
    method outside ``methods`` (all methods of ``group`` by default) or absent from ``df``,
    and metrics absent from ``df`` or from either method's runs, are left out.

    Raises:
        ValueError: ``pairs`` or ``metrics`` name one entry twice, which would show it twice.
    """
    for name, given in (("pairs", pairs), ("metrics", metrics)):
        twice = sorted({str(x) for x in given if list(given).count(x) > 1})
        if twice:
            raise ValueError(f"paired_difference_table: {name} repeat {', '.join(twice)}; "
                             "give each once")  # fmt: skip
    allowed = set(df.loc[df["group"] == group, "method"])
    if methods is not None:
        allowed &= set(methods)
    rows = []
    for a, b in pairs:
        if a not in allowed or b not in allowed:
            continue
        for m in metrics:
            if unpaired_reason(df, a, b, m, group):
                continue
            d = paired_difference(df, a, b, m, group=group, confidence=confidence)
            if d.n == 0:
                continue
            rows.append({**dataclasses.asdict(d), "half_width": d.half_width})
    columns = [f.name for f in dataclasses.fields(PairedDifference)] + ["half_width"]
    return pd.DataFrame(rows, columns=columns)
