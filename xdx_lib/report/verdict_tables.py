"""The claims' verdicts as the chapters show them: each part with its bounds and what they
clear, the power of the rule, the verdict table, one sentence a claim, and how the
verdicts read with one seed left out.

The readings come from :mod:`xdx_lib.analysis.claims` (:func:`~xdx_lib.analysis.claims.verdicts`)
and :mod:`xdx_lib.analysis.robustness`; every number is written as
:mod:`xdx_lib.report.tables` writes it (:func:`~xdx_lib.report.tables.format_interval`,
:func:`~xdx_lib.report.tables.metric_label`, :data:`~xdx_lib.report.tables.MISSING`).
The tables: :func:`verdict_table`, :func:`claim_sentences` for the text, and
:func:`leave_one_out_table`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from xdx_lib.analysis.claims import ClaimReading, PartReading, PartVerdict
from xdx_lib.analysis.robustness import PartSpread, SeedOutReading
from xdx_lib.analysis.stats import ALPHA
from xdx_lib.report.tables import MISSING, format_interval, metric_label, sentences


def part_label(part: PartReading) -> str:
    """A claim's part as the evidence shows it, e.g. ``agreement kd - scratch``."""
    return f"{metric_label(part.metric)} {part.a} - {part.b}"


def part_note(part: PartReading) -> str:
    """What a part's reading leaves out: a difference inside the margin that is shown
    nonzero (``"xdistill > kd, but within the margin"``, ``"xdistill < kd, within the
    margin"``), what a supported part's bound clears, a part shown at 5 % alone that Holm's
    control does not keep; for a skipped part, why it was skipped."""
    if part.verdict is PartVerdict.SKIPPED:
        return part.reason
    if part.p < ALPHA <= part.p_holm and part.verdict is not PartVerdict.NO_DIFFERENCE:
        return "shown at 5 % alone, not under Holm's control"
    if part.needs == "higher":
        if part.verdict is PartVerdict.SUPPORTED:
            return ("the bound clears the margin" if part.clears_margin
                    else "the bound clears 0, the estimate the margin")  # fmt: skip
        if part.verdict is PartVerdict.OPPOSITE and part.lower > -part.margin:
            return f"{part.a} < {part.b}, within the margin"
        if part.verdict is PartVerdict.NO_DIFFERENCE and part.lower > 0:
            return f"{part.a} > {part.b}, but within the margin"
        return ""
    if part.verdict is PartVerdict.SUPPORTED and part.lower > 0:
        return f"{part.a} > {part.b}, but within the margin"
    return ""


def format_part(part: PartReading, digits: int = 3) -> str:
    """One part as the evidence shows it, e.g. ``agreement kd - scratch +0.060 [+0.043,
    +0.077] (one-sided 95 % bounds, n=10; margin 0.006): supported``."""
    if part.verdict is PartVerdict.SKIPPED:
        return f"{part_label(part)} skipped: {part.reason}"
    shown = format_interval(part.mean, part.lower, part.upper, digits,
                            f"one-sided 95 % bounds, n={part.n}; margin {part.margin:g}",
                            f"n={part.n}, no bounds")  # fmt: skip
    note = part_note(part)
    return f"{part_label(part)} {shown}: {part.verdict.value}" + (f" ({note})" if note else "")


def power_at(part: PartReading, digits: int = 3) -> str:
    """The true differences at which the rule reads ``part`` supported with 80 % power
    (:func:`~xdx_lib.analysis.claims.detectable_for`): ``"≥ 0.023"`` for a "higher" part, ``"≤
    0.013"`` for a "not higher" one; empty without bounds."""
    if math.isnan(part.detectable):
        return ""
    return f"{'≥' if part.needs == 'higher' else '≤'} {part.detectable:.{digits}f}"


def format_power(part: PartReading, digits: int = 3) -> str:
    """What the seeds resolve for one part: the smallest observed difference they call
    significant (its half-width) and the true differences at which the rule reads it
    supported with 80 % power (:func:`power_at`)."""
    if part.verdict is PartVerdict.SKIPPED:
        return f"{part_label(part)}: skipped"
    if math.isnan(part.half_width):
        return f"{part_label(part)}: none (n={part.n}, no bounds)"
    return (f"{part_label(part)}: significant from {part.half_width:.{digits}f}, "
            f"supported with 80 % power at a true difference {power_at(part, digits)}")  # fmt: skip


def claim_sentences(readings: Sequence[ClaimReading], digits: int = 3) -> pd.DataFrame:
    """The claims' verdicts as the results chapter's text quotes them, one row per claim
    (index ``claim``), every entry a string.

    Columns: ``verdict``, ``evidence`` (each part with its one-sided bounds, margin and
    reading, :func:`format_part`, a sentence each), ``power`` (what the seeds resolve per
    part, :func:`format_power`, a sentence each) and ``notes`` (the parts skipped and
    why); the text glues them (:func:`xdx_lib.report.notebook.glue_verdicts`).
    """
    rows = []
    for claim in readings:
        skipped = [p for p in claim.parts if p.verdict is PartVerdict.SKIPPED]
        rows.append({
            "claim": claim.name,
            "verdict": claim.verdict.value,
            "evidence": sentences(*(format_part(p, digits) for p in claim.parts)) or "no evidence",
            "power": sentences(*(format_power(p, digits) for p in claim.parts)) or "none",
            "notes": "; ".join(f"{part_label(p)} skipped: {p.reason}" for p in skipped),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["claim", "verdict", "evidence", "power",
                                       "notes"]).set_index("claim")  # fmt: skip


def verdict_table(readings: Sequence[ClaimReading], digits: int = 3) -> pd.DataFrame:
    """The claims' verdicts (:func:`xdx_lib.analysis.claims.verdicts`) as the results chapter shows
    them: one row per part.

    Indexed by ``(claim, verdict, part)``; columns ``difference [one-sided 95 % bounds]``,
    ``needs`` (``> 0`` or ``< margin``), ``margin``, ``reading`` (the part's verdict and
    note, :func:`part_note`), ``significant from`` (the bounds' half-width), ``80 %
    power at`` (:func:`power_at`) and ``p (Holm)``, the p-value of the part's test adjusted
    over the family of parts. The bounds are one-sided because a verdict tests the one
    direction its claim names; the paired table
    (:func:`~xdx_lib.report.tables.paired_view`) reads both.
    """
    rows = []
    for claim in readings:
        for p in claim.parts:
            note = part_note(p)
            shown = MISSING if p.verdict is PartVerdict.SKIPPED else format_interval(
                p.mean, p.lower, p.upper, digits, f"n={p.n}", f"n={p.n}")  # fmt: skip
            rows.append({
                "claim": claim.name, "verdict": claim.verdict.value, "part": part_label(p),
                "difference [one-sided 95 % bounds]": shown,
                "needs": "> 0" if p.needs == "higher" else f"< {p.margin:g}",
                "margin": f"±{p.margin:g}",
                "reading": p.verdict.value + (f" ({note})" if note else ""),
                "significant from": MISSING if math.isnan(p.lower)
                else f"{p.half_width:.{digits}f}",
                "80 % power at": MISSING if math.isnan(p.lower) else power_at(p, digits),
                "p (Holm)": MISSING if math.isnan(p.p_holm) else f"{p.p_holm:.3f}",
            })  # fmt: skip
    return pd.DataFrame(rows).set_index(["claim", "verdict", "part"])


def _seeds(seeds: Sequence[int]) -> str:
    """``"seed 3"``, ``"seeds 0, 4"``."""
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)}"


def _spread(s: PartSpread, digits: int = 3) -> str:
    """``"agreement kd - scratch +0.055 to +0.061 [+0.041, +0.075]"``: one part's lowest and
    highest estimate with one seed left out, and the widest its bounds reach."""
    if math.isnan(s.mean_low):
        return f"{metric_label(s.metric)} {s.a} - {s.b} {MISSING}"
    bounds = "" if math.isnan(s.lower) else f" [{s.lower:+.{digits}f}, {s.upper:+.{digits}f}]"
    return (f"{metric_label(s.metric)} {s.a} - {s.b} {s.mean_low:+.{digits}f} to "
            f"{s.mean_high:+.{digits}f}{bounds}")  # fmt: skip


def leave_one_out_table(readings: Sequence[SeedOutReading]) -> pd.DataFrame:
    """Each claim's verdict on all seeds and with one left out
    (:func:`xdx_lib.analysis.robustness.leave_one_seed_out`), one row per claim (index ``claim``).

    Columns: ``all seeds`` (the verdict), ``one seed left out`` (each other verdict and the
    seeds whose leaving gives it, or that it stays the same), ``estimates, one seed left
    out`` (each part's lowest to highest estimate, and the widest its one-sided bounds
    reach) and ``reading`` (``"fragile"`` when some one seed changes the verdict, else
    ``"stable"``).
    """
    rows = []
    for r in readings:
        others: dict[str, list[int]] = {}
        for seed, v in r.without:
            if v is not r.verdict:
                others.setdefault(v.value, []).append(seed)
        kept = len(r.without) - len(r.changed_by)
        shown = [f"{v} without {_seeds(seeds)}" for v, seeds in others.items()]
        if not shown:
            shown = [f"the same without any one of the {len(r.without)} seeds"]
        elif kept:
            shown.append("the same without any other")
        rows.append({"claim": r.claim, "all seeds": r.verdict.value,
                     "one seed left out": "; ".join(shown),
                     "estimates, one seed left out": "; ".join(map(_spread, r.parts)),
                     "reading": "fragile" if r.fragile else "stable"})  # fmt: skip
    columns = ["claim", "all seeds", "one seed left out", "estimates, one seed left out",
               "reading"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).set_index("claim")
