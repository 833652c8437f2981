"""The chapters' readings: the sentences a chapter builds from its numbers.

A chapter's text quotes its numbers (glued, :func:`xdx_lib.notebook.glue_many`) and, where
a number decides what it says, a reading: whether a student has reached its plateau,
whether KD beats training alone, how the XDistillation student uses its map. Each reading
is a function here that takes the numbers (floats, or mappings of them by name) and
returns the words, so that the rule that picks the words is stated once, in code a test
reads, and the chapter's hidden cells only glue what these return.

The words are the book's; a reading that changes its rule changes the book's text, and its
test says how.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .claims import FRACTION_MARGIN
from .config import PROFILES
from .stats import plateau_epochs

#: How a method key reads in a sentence, where it differs from the key.
METHOD_NAMES = {"kd": "KD"}
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


def plateau(method: str, accuracy_by_epochs: Mapping[int, float], epochs: int) -> str:
    """One sentence on where the student of ``method`` stops gaining.

    Args:
        method: the method's key (``"scratch"``, ``"kd"``).
        accuracy_by_epochs: schedule length -> the final test accuracy of the student
            trained for it (two schedules at least; :func:`xdx_lib.stats.plateau_epochs`).
        epochs: the profile's schedule, one of those lengths.
    """
    reached = plateau_epochs(accuracy_by_epochs)
    schedules = sorted(accuracy_by_epochs)
    longest, previous = schedules[-1], schedules[-2]
    by = accuracy_by_epochs
    name = METHOD_NAMES.get(method, method)
    if reached == epochs:
        return f"the {name} student has reached its plateau at the profile's {epochs} epochs"
    if reached is not None:
        return (f"the {name} student reaches its plateau by {reached} epochs; at the "
                f"profile's {epochs} it is {by[longest] - by[epochs]:.3f} short of it")  # fmt: skip
    return (f"the {name} student is still climbing: {longest} epochs add "
            f"{by[longest] - by[previous]:+.3f} to {previous} epochs, and "
            f"{by[longest] - by[epochs]:+.3f} to the profile's {epochs}")  # fmt: skip


def lead_by_budget(kd: Mapping[int, float], scratch: Mapping[int, float]) -> str:
    """KD's lead over the scratch student after each schedule: ``"+0.012 after 8 epochs,
    +0.020 after 16 epochs"`` (both map schedule length -> final test accuracy)."""
    return ", ".join(f"{kd[e] - scratch[e]:+.3f} after {e} epochs" for e in sorted(kd))


def colab_epochs_beyond(student: str, epochs: int) -> int | None:
    """The colab profile's student epochs when it trains the same ``student`` architecture
    for longer than ``epochs``, else None: where a CPU profile stops short, the sentence
    can say how far the GPU profile goes."""
    colab = PROFILES["colab"]
    if student == colab.student and epochs < colab.student_epochs:
        return colab.student_epochs
    return None


def plateau_consequence(accuracy_by_epochs: Mapping[str, Mapping[int, float]], epochs: int,
                        student: str) -> str:  # fmt: skip
    """What the students' plateaus mean for every comparison of the profile.

    Args:
        accuracy_by_epochs: ``"scratch"`` and ``"kd"`` (and maybe more methods) -> schedule
            length -> final test accuracy, as :func:`plateau` takes for one method.
        epochs: the profile's schedule.
        student: the students' architecture (the colab profile may train it longer:
            :func:`colab_epochs_beyond`).
    """
    reached_by = {m: plateau_epochs(by) for m, by in accuracy_by_epochs.items()}
    needs = {m: reached or math.inf for m, reached in reached_by.items()}
    patient = ("The KD student needs a longer schedule than the scratch student: the "
               "teacher's soft targets keep giving it something to fit after the labels "
               "alone are exhausted. " if needs["kd"] > needs["scratch"] else "")  # fmt: skip
    if all(reached == epochs for reached in reached_by.values()):
        return patient + "Comparisons of this profile are of students at their plateau"
    colab_epochs = colab_epochs_beyond(student, epochs)
    longer = (f" (the colab profile trains the same students for {colab_epochs} epochs, on "
              "a GPU)" if colab_epochs is not None else "")  # fmt: skip
    return (patient + "Every comparison of this profile is therefore of students trained for "
            "the same number of epochs, not of students at their plateau; a method that "
            "learns faster is read as better, and the gains of learning from the teacher are "
            f"likely understated{longer}")  # fmt: skip


def plateau_paragraph(accuracy_by_epochs: Mapping[str, Mapping[int, float]], epochs: int,
                      student: str) -> dict[str, str]:  # fmt: skip
    """The KD chapter's paragraph on the plateaus, phrase by phrase under the names its text
    glues: ``plateau_scratch`` and ``plateau_kd`` (:func:`plateau`), ``kd_lead_by_budget``
    (:func:`lead_by_budget`) and ``plateau_consequence`` (:func:`plateau_consequence`), from
    the final accuracies by schedule of ``"scratch"`` and ``"kd"``."""
    by = accuracy_by_epochs
    return {"plateau_scratch": plateau("scratch", by["scratch"], epochs),
            "plateau_kd": plateau("kd", by["kd"], epochs),
            "kd_lead_by_budget": lead_by_budget(by["kd"], by["scratch"]),
            "plateau_consequence": plateau_consequence(by, epochs, student)}  # fmt: skip


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


def checks_passed(checks: Mapping[str, bool]) -> str:
    """``"2 of 3"``: how many of the named criteria hold."""
    return f"{sum(checks.values())} of {len(checks)}"


def ratio_range(ratios: Sequence[float]) -> str:
    """``"1.2 to 3.4"``, the smallest and largest of ``ratios``; ``"n/a"`` for none."""
    return f"{min(ratios):.1f} to {max(ratios):.1f}" if len(ratios) else "n/a"


def seed_spread(ratios: Sequence[float], students: float = SPREAD_RATIO_STUDENTS) -> str:
    """Where the spread of accuracy between seeds comes from, from each method's ratio of
    its observed standard deviation to what independent flips of test images would make it
    (:func:`xdx_lib.studies.seed_spread_table`): whole students differing when every ratio
    exceeds ``students``, else largely the test set's size."""
    if not len(ratios):
        return "there is no spread to measure with fewer than two seeds"
    if min(ratios) > students:
        return ("most of the spread is whole students differing, which only more seeds or "
                "longer training average out; the test set's share is what scoring on the "
                "whole split keeps small")  # fmt: skip
    return "much of the spread is the test set's finite size, which more test images shrink"


def map_use(accuracy_change: Mapping[str, float], margin: float = FRACTION_MARGIN) -> str:
    """How the XDistillation student uses its map, from the change in its accuracy when the
    map is replaced (:data:`xdx_lib.interventions.INTERVENTIONS`: ``"zeroed"``, ``"other
    image"``, ``"teacher true"``, ``"teacher mean"``), each a mean over seeds.

    The rule reads the point estimates against ``margin``: the student hardly uses its map
    when neither zeros nor another image's map move its accuracy by ``margin``; it reads the
    map as the explanation it imitates when the teacher's own map does not either.
    """
    change = accuracy_change
    if abs(change["zeroed"]) < margin and abs(change["other image"]) < margin:
        return "the student hardly uses its map: XDistillation's accuracy does not come from it"
    if abs(change["teacher true"]) < margin:
        return ("the student reads the map as the explanation it imitates: the teacher's own "
                "map serves it as well as the CAE's")  # fmt: skip
    return ("the student depends on its map, but not as the teacher's explanation: the "
            "teacher's own map, which the CAE was trained to reproduce, costs it "
            f"{change['teacher true']:+.3f} in accuracy (a map of no image in particular: "
            f"{change['teacher mean']:+.3f}), so it reads what the CAE's output shows of the "
            "image, a second view of it, more than where the teacher looked")  # fmt: skip
