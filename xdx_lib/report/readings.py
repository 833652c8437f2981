"""The chapters' readings: the sentences a chapter builds from its numbers.

A chapter's text quotes its numbers (glued, :func:`xdx_lib.report.notebook.glue_many`) and, where
a number decides what it says, a reading: whether KD beats training alone, how the
XDistillation student uses its map (the plateau's are :mod:`xdx_lib.report.plateau_readings`).
Each reading is a function here that takes the numbers (floats, or mappings of them by name) and
returns the words, so that the rule that picks the words is stated once, in code a test
reads, and the chapter's hidden cells only glue what these return.

The words are the book's; a reading that changes its rule changes the book's text, and its
test says how. A reading of several sentences returns them whole, each capitalised, the
last without its full stop (the chapter's text ends it); no sentence runs past
:data:`MAX_WORDS` words (``tools/colab_copies.py --max-words`` checks a build).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from xdx_lib.analysis.claims import FRACTION_MARGIN, PartVerdict, part_verdict
from xdx_lib.analysis.robustness import Multiplicity, SeedOutReading
from xdx_lib.analysis.selection import no_worse
from xdx_lib.analysis.stats import PairedDifference
from xdx_lib.core.config import RunConfig
from xdx_lib.report.tables import format_difference, format_interval, sentences

#: The longest sentence a reading may write, in words.
MAX_WORDS = 35
#: How a method key reads in a sentence, where it differs from the key.
METHOD_NAMES = {"kd": "KD", "e2kd": "e2KD", "xdistill": "XDistillation"}
#: A seed spread at least this many times what independent flips make it is read as whole
#: students differing (:func:`seed_spread`).
SPREAD_RATIO_STUDENTS = 1.5
#: An explainer whose map on the randomised teacher keeps at least this Spearman
#: correlation with its map on the trained teacher has not changed (:func:`sanity_split`).
SANITY_KEPT_FROM = 0.5


# ---------------------------------------------------------------------- the KD chapter


def counted(n: int, noun: str) -> str:
    """``"1 seed"``, ``"3 seeds"``: ``n`` and ``noun``, plural from two on."""
    return f"{n} {noun}{'s' if n > 1 else ''}"


def grid_stability(spread: Mapping[str, Mapping]) -> str:
    """Whether KD's grid would choose the same point on every tune seed alone.

    ``spread``: :func:`xdx_lib.experiments.tuning.grid_spread` as ``{column: {point: value}}`` (its
    ``val s<seed>`` columns are read). The chosen point is the one of highest mean; the
    sentence says on how many seeds it is also the best, and by how much it leads the
    runner-up on average (against the seeds' spread, the sd of one point over seeds).
    """
    seeds = [c for c in spread if re.fullmatch(r"val s\d+", str(c))]
    means = spread["val mean"]
    chosen = max(means, key=lambda p: means[p])
    if len(seeds) < 2:
        return sentences("with one tune seed the grid's stability over seeds cannot be read",
                         "more tune_seeds would show it")  # fmt: skip
    wins = sum(max(spread[s], key=lambda p: spread[s][p]) == chosen for s in seeds)
    others = [means[p] for p in means if p != chosen]
    lead = means[chosen] - max(others) if others else math.nan
    sd = max(v for v in spread["val sd"].values() if math.isfinite(v))
    said = [f"the chosen point is the best on {wins} of {len(seeds)} tune seeds",
            f"it leads the next point by {lead:.4f} in mean validation accuracy, where a "
            f"point's sd over the seeds reaches {sd:.4f}"]  # fmt: skip
    if wins < len(seeds) or lead < sd:
        said.append("the points lie within the seeds' noise of each other: which one is kept "
                    "matters less than the seed a student trains on")  # fmt: skip
    return sentences(*said)


def premise(n: int, low: float, high: float) -> str:
    """Whether KD beats training alone, from the paired difference KD minus scratch in
    accuracy over ``n`` seeds and its interval ``[low, high]``."""
    if n < 2:
        return "one seed cannot say"
    if low > 0:
        return "KD is ahead of training alone: the premise holds here"
    if high < 0:
        return ("KD is behind training alone: distillation does not work here, and the claims "
                "below are read on a setting where it fails")  # fmt: skip
    return ("these seeds cannot tell KD from training alone: the claims below are read where "
            "distillation's own gain is not shown")  # fmt: skip


def teacher_origin(shipped: Mapping | None, epochs: int, minutes: float) -> str:
    """Where the chapter's teacher was trained, and how long its ``epochs`` took
    (``minutes``, from its history): on the machine that trained the repository's shipped
    teacher, when the run cache holds it (``shipped``: its manifest entry,
    :func:`xdx_lib.core.shipped_teacher.origin`), else here."""
    if shipped is None:
        return (f"Its {epochs} epochs took {minutes:.1f} min of training here. It is trained "
                "once per clone and read from the run cache after")  # fmt: skip
    return sentences(
        "this teacher ships with the book's repository, in its pretrained folder: this "
        f"library trained it ({shipped['command']}, at commit {shipped['commit']})",
        f"its {epochs} epochs took {minutes:.1f} min there, on {shipped['machine']}",
        "building the book (make book) installs it, so that a build trains the students "
        "only; make book TEACHER=train trains the teacher here instead")  # fmt: skip


# ------------------------------------------------------------------- the other chapters


def sanity_split(rho: Mapping[str, float], kept_from: float = SANITY_KEPT_FROM) -> tuple[str, str]:
    """The explainers whose maps stay (Spearman ``>= kept_from``) and those whose maps change
    (``< kept_from``) when the teacher's weights are randomised, each as ``"a, b"`` or
    ``"none"``; ``rho`` maps explainer -> Spearman(trained, random weights)."""
    kept = ", ".join(name for name, r in rho.items() if r >= kept_from) or "none"
    changed = ", ".join(name for name, r in rho.items() if r < kept_from) or "none"
    return kept, changed


def gradcam_sanity(rho: float, kept_from: float = SANITY_KEPT_FROM) -> str:
    """Whether Grad-CAM's map changes with the teacher's weights: ``"changes (Spearman
    0.12)"``, from its Spearman correlation ``rho`` between trained and random weights."""
    return f"{'changes' if rho < kept_from else 'does not change'} (Spearman {rho:.2f})"


def explains_closer(kd: float, scratch: float) -> str:
    """Whether the KD student explains more like the teacher than the scratch student, from
    each one's Pearson r with the teacher's maps."""
    return (("explains" if kd > scratch else "does not explain")
            + " more like the teacher than the scratch student does")  # fmt: skip


def beats(value: float, reference: float) -> str:
    """``"beats"`` when ``value`` is above ``reference``, else ``"does not beat"``."""
    return "beats" if value > reference else "does not beat"


def above_or_below(value: float, reference: float) -> str:
    """``"above"`` when ``value`` is above ``reference``, else ``"below"``."""
    return "above" if value > reference else "below"


def checks_passed(checks: Mapping[str, bool | None]) -> str:
    """``"2 of 3"``: how many of the named criteria hold; ``"2 of 3 (1 undecided)"`` when
    the seeds cannot decide some (None)."""
    undecided = sum(v is None for v in checks.values())
    note = f" ({undecided} undecided)" if undecided else ""
    return f"{sum(v is True for v in checks.values())} of {len(checks)}{note}"


def default_choice(chosen: str | None, default: str, options: str = "variant",
                   undecided: bool = False) -> str:  # fmt: skip
    """Whether a chooser picked the library's default: ``chosen`` is the option it picked
    (None when no option passed every check), ``default`` the library's; ``options`` names
    what was chosen among. ``undecided``: some check could not be decided on these seeds,
    so the chooser says so rather than that nothing passed."""
    if chosen is None and undecided:
        return (f"the seeds cannot decide every check, so the chooser picks no {options}; "
                f"the library keeps its default ({default})")  # fmt: skip
    if chosen is None:
        return (f"no {options} passes every check on validation, so the chooser picks none; "
                f"the library keeps its default ({default})")  # fmt: skip
    if chosen == default:
        return f"the chooser picks the library's default ({default})"
    return f"the chooser picks {chosen} instead of the library's default ({default})"


def xdistill_choice(choice) -> dict[str, str]:
    """The XDistillation chapter's readings of its choice (an
    :class:`~xdx_lib.experiments.choices.XDistillChoice`): ``acc_vs_kd``, the defaults'
    validation accuracy against KD's (:func:`accuracy_against_kd`); ``checks_passed``, how
    many of the checks the defaults meet; ``choice_reading`` and ``cae_epochs_reading``, what
    the variant and epoch steps picked (:func:`default_choice`); ``cae_reading``, what the
    CAE step picked (:func:`cae_picked`); ``chosen``, the variant the claims run;
    ``cae_epochs``, the configuration's pre-training epochs; ``n_variant_seeds``, how many
    tune seeds trained each candidate."""
    from xdx_lib.experiments.choices import CHECKS, DEFAULT_VARIANT

    variant, epochs, cae = _picked(choice)
    return {"cae_reading": cae,
            "acc_vs_kd": accuracy_against_kd(choice.against_kd[DEFAULT_VARIANT]),
            "checks_passed": checks_passed(choice.checks.loc[DEFAULT_VARIANT, list(CHECKS)]
                                           .to_dict()),
            "choice_reading": variant, "cae_epochs_reading": epochs,
            "chosen": choice.chosen or DEFAULT_VARIANT, "cae_epochs": str(choice.default_epochs),
            "n_variant_seeds": counted(len(choice.seeds), "seed")}  # fmt: skip


def _picked(choice) -> tuple[str, str, str]:
    """What a choice's three steps picked, and why (:func:`default_choice`,
    :func:`cae_picked`): the variant, the CAE's pre-training epochs, the CAE. The
    XDistillation chapter and the protocol chapter say the same sentences."""
    from xdx_lib.experiments.choices import DEFAULT_VARIANT

    return (default_choice(choice.chosen, DEFAULT_VARIANT, undecided=choice.undecided),
            default_choice(choice.cae_epochs, choice.default_epochs, "pre-training"),
            cae_picked(choice.cae) if choice.cae is not None else "the configuration's")


def cae_picked(choice) -> str:
    """What the CAE step picked (a :class:`~xdx_lib.experiments.choices.CAEChoice`), and
    why: the config's CAE leads; another is shown above it by the seeds' paired r gain; or
    the seeds cannot tell (one seed never can), and the config's stays."""
    if choice.leader == choice.default:
        return f"{choice.default}, the configuration's CAE, has the highest validation r and stays"
    gain = format_difference(choice.gain)
    if choice.chosen is not None:
        return (f"{choice.leader} is shown above the configuration's {choice.default} in "
                f"validation r, {gain}, so the claims deploy it")  # fmt: skip
    if choice.gain.n < 2:
        return (f"{choice.leader} leads the configuration's {choice.default} by "
                f"{choice.gain.mean:+.3f} in validation r, but one seed cannot show a gain, "
                f"so {choice.default} stays")  # fmt: skip
    return (f"{choice.leader} leads the configuration's {choice.default} by {gain} in "
            f"validation r, not shown above 0, so {choice.default} stays")


def claims_run(choice, run: RunConfig) -> dict[str, str]:
    """What the claims ran of XDistillation, as the protocol chapter says it: ``claims_xd``
    (the options of ``run``, the experiment's base config after its choices), ``xd_choice``
    and ``xd_epochs`` (what ``choice``, an
    :class:`~xdx_lib.experiments.choices.XDistillChoice` or None when the experiment chose
    nothing, picked and why), ``xd_cae`` (the CAE it picked, :func:`cae_picked`),
    ``xd_seeds`` (how many tune seeds it trained)."""
    options = (f"{run.schedule}, cae_grad: {run.cae_grad}, fusion: {run.fusion}, the "
               f"{run.cae_output}: {run.cae_variant} CAE pre-trained {run.cae_epochs} epochs")
    if choice is None:
        return {"claims_xd": options, "xd_seeds": "no tune seeds",
                "xd_choice": "the experiment names no xdistill_seeds, so nothing is chosen",
                "xd_epochs": "the configuration's, as given",
                "xd_cae": "the configuration's, as given"}  # fmt: skip
    variant, epochs, cae = _picked(choice)
    return {"claims_xd": options, "xd_seeds": counted(len(choice.seeds), "tune seed"),
            "xd_choice": variant, "xd_epochs": epochs, "xd_cae": cae}


def accuracy_against_kd(d: PairedDifference, margin: float = FRACTION_MARGIN) -> str:
    """How a variant's validation accuracy stands against KD's, from the paired difference
    variant minus KD (``d``, with its one-sided 95 % bounds), by
    :func:`xdx_lib.analysis.selection.no_worse`: not below KD's by more than ``margin``,
    below it, or undecided (always with one seed, which has no spread to judge noise by)."""
    verdict = no_worse(d.lower, d.upper, margin)
    if d.n < 2:
        return f"{format_difference(d)} (one seed: no spread to judge noise by, so undecided)"
    if verdict is None:
        return (f"{format_difference(d)}: undecided, these seeds cannot tell it from a "
                f"shortfall beyond the margin {margin:g}")  # fmt: skip
    side = "not below KD's by more than" if verdict else "below KD's, beyond"
    return f"{format_difference(d)}: {side} the margin {margin:g}"


def ratio_range(ratios: Sequence[float]) -> str:
    """``"1.2 to 3.4"``, the smallest and largest of ``ratios``; ``"n/a"`` for none."""
    return f"{min(ratios):.1f} to {max(ratios):.1f}" if len(ratios) else "n/a"


def seed_spread(ratios: Sequence[float], students: float = SPREAD_RATIO_STUDENTS) -> str:
    """Where the spread of accuracy between seeds comes from, from each method's ratio of
    its observed standard deviation to what independent flips of test images would make it
    (:func:`xdx_lib.experiments.studies.seed_spread_table`): whole students differing when every
    ratio
    exceeds ``students``, else largely the test set's size."""
    if not len(ratios):
        return "There is no spread to measure with fewer than two seeds"
    if min(ratios) > students:
        return sentences("most of the spread is whole students differing, which only more "
                         "seeds or longer training average out",
                         "scoring on the whole test split keeps the test set's share small"
                         )  # fmt: skip
    return "Much of the spread is the test set's finite size, which more test images shrink"


#: The paired differences in accuracy that :func:`map_use` reads, each ``(a, b)`` for ``a -
#: b`` (:func:`xdx_lib.analysis.stats.intervention_differences` computes them): does the student's
#: own map beat a flat one and another image's, does the teacher's map of the image beat
#: its image-blind mean map, and does it beat the teacher's map of the same image for
#: another class (the control: where the teacher looked, or which class it saw)?
MAP_USE_PAIRS = (("own", "flat"), ("own", "other image"), ("teacher true", "teacher mean"),
                 ("teacher true", "teacher other class"))

#: How :func:`map_use` words one pair ``a - b`` by its part verdict (``{a}``, ``{b}``).
_COMPARED = {
    PartVerdict.SUPPORTED: "{a} beats {b}",
    PartVerdict.BELOW_MARGIN: "{a} beats {b} by less than the margin",
    PartVerdict.NO_DIFFERENCE: "{a} and {b} lie within the margin of each other",
    PartVerdict.OPPOSITE: "{b} beats {a}",
    PartVerdict.INCONCLUSIVE: "{a} is not shown better or worse than {b}",
}


def _pair(d: PairedDifference, verdict: PartVerdict) -> str:
    """``"own beats flat: +0.050 [+0.030, +0.070]"``: one pair, worded by its verdict."""
    shown = format_interval(d.mean, d.lower, d.upper, no_bounds=f"n={d.n}, no bounds")
    return f"{_COMPARED[verdict].format(a=d.a, b=d.b)}: {shown}"


def _which_story(verdict: PartVerdict, said: str) -> tuple[str, ...]:
    """Which story the control tells, from ``teacher true - teacher other class``, as
    phrases: the student reads the teacher's class off the map (the true map beats the
    other class's), or uses where the teacher looked (the other class's serves as well),
    or the seeds leave it open."""
    if verdict is PartVerdict.SUPPORTED:
        return ("it reads the teacher's class off the map",
                f"the teacher's map of the same image for another class serves it less: {said}")
    if verdict in (PartVerdict.NO_DIFFERENCE, PartVerdict.OPPOSITE):
        return ("what it uses is where the teacher looked, not its class",
                f"the teacher's map for another class serves as well: {said}")
    return ("these seeds do not tell whether it reads the teacher's class off the map or where "
            f"it looked: {said}",)  # fmt: skip


def map_use(differences: Mapping[tuple[str, str], PairedDifference],
            margin: float = FRACTION_MARGIN) -> str:  # fmt: skip
    """How the XDistillation student uses its map, from the paired differences in accuracy
    of :data:`MAP_USE_PAIRS` (each with its one-sided 95 % bounds), every replacement map
    on the CAE's scale (:mod:`xdx_lib.evaluation.interventions`).

    Each pair ``a - b`` is read by the claims' part rule
    (:func:`xdx_lib.analysis.claims.part_verdict`, "higher", against ``margin``), and the cases are
    tried in this order:

    * the map as the teacher's explanation, only when the teacher's map of the image beats
      the image-blind mean map (``teacher true - teacher mean`` supported); then the
      control, ``teacher true - teacher other class``, says whether the student reads the
      teacher's class off the map or where it looked;
    * hardly used, when the own map is shown within the margin of a flat map and of
      another image's;
    * depended on, when the own map beats a flat map or another image's (supported); then
      a second view of the image when the teacher's map is shown no better than the mean
      map (within the margin, or worse), else what the seeds leave open about it;
    * otherwise the seeds do not show how: each pair with its reading.
    """
    d = {pair: differences[pair] for pair in MAP_USE_PAIRS}
    v = {pair: part_verdict(x.lower, x.upper, margin, "higher", mean=x.mean)
         for pair, x in d.items()}  # fmt: skip
    said = {pair: _pair(d[pair], v[pair]) for pair in MAP_USE_PAIRS}
    own, explains, control = MAP_USE_PAIRS[:2], MAP_USE_PAIRS[2], MAP_USE_PAIRS[3]
    if v[explains] is PartVerdict.SUPPORTED:
        return sentences("the student uses its map as the teacher's explanation",
                         "the teacher's map of the image serves it better than the teacher's "
                         f"image-blind mean map: {said[explains]}",
                         *_which_story(v[control], said[control]))  # fmt: skip
    if all(v[p] is PartVerdict.NO_DIFFERENCE for p in own):
        return sentences("the student hardly uses its map: XDistillation's accuracy does not "
                         "come from it", f"{said[own[0]]}", f"{said[own[1]]}")  # fmt: skip
    if any(v[p] is PartVerdict.SUPPORTED for p in own):
        beaten = [said[p] for p in own if v[p] is PartVerdict.SUPPORTED]
        if v[explains] in (PartVerdict.NO_DIFFERENCE, PartVerdict.OPPOSITE):
            return sentences("the student depends on its map", *beaten,
                             f"but not as the teacher's explanation: {said[explains]}",
                             "it reads what the CAE's output shows of the image, a second "
                             "view of it, more than where the teacher looked")  # fmt: skip
        return sentences("the student depends on its map", *beaten,
                         "these seeds do not show it using the map as the teacher's "
                         f"explanation: {said[explains]}")  # fmt: skip
    return sentences("these seeds do not show how the student uses its map",
                     *said.values())  # fmt: skip


# ---------------------------------------------------------------- the results' verdicts


def multiplicity(m: Multiplicity) -> str:
    """How many tests the verdicts and the paired table read, and what guards against
    chance in each (:func:`xdx_lib.analysis.robustness.multiplicity`).

    The claims' parts are one family under Holm's control
    (:func:`xdx_lib.analysis.claims.controlled`): the chance that any part reads supported
    when no difference is real is at most ``alpha``. The paired table's cells are each read
    at 5 %, uncorrected, so the table is exploratory: about ``cells * alpha`` of them would
    read one method ahead by chance alone.
    """
    parts = ", ".join(f"{name} {counted(k, 'part')}" for name, k in m.parts)
    pct = round(100 * m.alpha)
    return sentences(
        f"the verdicts read {counted(m.total_parts, 'part')} of "
        f"{counted(len(m.parts), 'claim')} ({parts}) as one family",
        f"Holm's procedure keeps the chance that any of them reads supported by chance alone "
        f"at most {pct} %",
        f"the paired table reads up to {m.cells} differences, each by a two-sided 95 % "
        "interval and uncorrected, so it is exploratory",
        f"were no difference real, about {m.cells * m.alpha:.1f} of its cells would still "
        "read one method ahead")  # fmt: skip


def fragile_verdicts(readings: Sequence[SeedOutReading]) -> str:
    """Which verdicts change when one seed is left out
    (:func:`xdx_lib.analysis.robustness.leave_one_seed_out`): ``"C2 is fragile: without seed
    3 it reads inconclusive; C1 and C3 read the same without any one seed"``."""
    fragile = [r for r in readings if r.fragile]
    stable = [r.claim for r in readings if not r.fragile]
    said = []
    for r in fragile:
        others = {}
        for seed, v in r.without:
            if v is not r.verdict:
                others.setdefault(v.value, []).append(str(seed))
        ways = ", ".join(f"without seed{'s' if len(s) > 1 else ''} {', '.join(s)} it reads {v}"
                         for v, s in others.items())  # fmt: skip
        said.append(f"{r.claim} ({r.verdict.value}) is fragile: {ways}")
    if not fragile:
        return "On this run, every verdict reads the same when any one seed is left out"
    if stable:
        names = " and ".join([", ".join(stable[:-1]), stable[-1]] if len(stable) > 1 else stable)
        verb = "reads" if len(stable) == 1 else "read"
        said.append(f"{names} {verb} the same without any one seed")
    return sentences(*said)
