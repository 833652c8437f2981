"""The readings of the plateau check: where each kind of student stops gaining, what the
check decides over the plateau seeds, and what that means for every comparison of the
profile.

The numbers are :func:`~xdx_lib.experiments.tuning.validation_by_schedule`'s, on the
validation split; the rule is :func:`xdx_lib.analysis.selection.plateau` (the shortest
schedule at the plateau, on the seeds' mean) and
:func:`xdx_lib.analysis.selection.plateau_check` (the check that can fail, or say it cannot
tell). The sentences follow :mod:`xdx_lib.report.readings`' conventions (whole, capitalised,
the last without its full stop, none over :data:`~xdx_lib.report.readings.MAX_WORDS` words).
The KD chapter and the appendix on how the book decides glue :func:`plateau_paragraph`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from xdx_lib.analysis.selection import derived, plateau_check
from xdx_lib.analysis.selection import plateau as plateau_on_validation
from xdx_lib.analysis.stats import PLATEAU_TOLERANCE, PairedDifference
from xdx_lib.core.config import PROFILES
from xdx_lib.report.readings import METHOD_NAMES
from xdx_lib.report.tables import sentences


def plateau(method: str, accuracy_by_epochs: pd.Series | pd.DataFrame, epochs: int) -> str:
    """One sentence on where the student of ``method`` stops gaining, and what the check
    that can fail says of it.

    Args:
        method: the method's key (``"scratch"``, ``"kd"``, ``"e2kd"``, ...).
        accuracy_by_epochs: the final validation accuracy of the student trained for each
            schedule length (two at least): a series indexed by epochs (one seed), or a
            frame of seeds (rows) by epochs (columns), one method's part of
            :func:`~xdx_lib.experiments.tuning.validation_by_schedule`, which records that it
            was computed on validation. The plateau is a choice, so it is judged there, on
            the mean over seeds (:func:`xdx_lib.analysis.selection.plateau`), and checked
            through the seeds' spread (:func:`xdx_lib.analysis.selection.plateau_check`).
        epochs: the profile's schedule, one of those lengths.
    """
    scores = {"val": accuracy_by_epochs}
    reached = plateau_on_validation(scores)
    check, gain = plateau_check(scores, epochs)
    frame = accuracy_by_epochs
    by = dict((frame if isinstance(frame, pd.Series) else frame.mean()).items())
    schedules = sorted(by)
    longest, previous = schedules[-1], schedules[-2]
    gain_mean = by[longest] - by[epochs]  # what the longest schedule adds to the profile's
    name = METHOD_NAMES.get(method, method)
    if reached == epochs:
        said = (f"the {name} student has reached its plateau at the profile's {epochs} "
                f"epochs ({longest} epochs add {gain_mean:+.3f})")  # fmt: skip
    elif reached is not None:
        said = (f"the {name} student reaches its plateau by {reached} epochs; at the "
                f"profile's {epochs} it is {gain_mean:.3f} short of it")  # fmt: skip
    elif previous == epochs:
        said = (f"the {name} student is short of its plateau at the profile's {epochs} "
                f"epochs: {longest} epochs add {gain_mean:+.3f}")  # fmt: skip
    else:
        said = (f"the {name} student is still climbing: {longest} epochs add "
                f"{by[longest] - by[previous]:+.3f} to {previous} epochs, and "
                f"{gain_mean:+.3f} to the profile's {epochs}")  # fmt: skip
    return f"{said} {plateau_decided(check, gain)}"


def plateau_decided(check: bool | None, gain: PairedDifference,
                    tolerance: float = PLATEAU_TOLERANCE) -> str:  # fmt: skip
    """What :func:`xdx_lib.analysis.selection.plateau_check` says, in brackets: decided at
    its plateau or short of it over the seeds, or undecided (always on one seed)."""
    if gain.n < 2:
        return "(on one seed, which cannot decide the check: undecided)"
    bounds = f"{gain.n} seeds, one-sided bounds [{gain.lower:+.3f}, {gain.upper:+.3f}]"
    if check is True:
        return f"(at its plateau on {bounds}, within {tolerance:g})"
    if check is False:
        return f"(short of it on {bounds}, beyond {tolerance:g})"
    return f"(undecided on {bounds} about {tolerance:g})"


def lead_by_budget(kd: Mapping[int, float], scratch: Mapping[int, float]) -> str:
    """KD's lead over the scratch student after each schedule: ``"+0.012 after 8 epochs,
    +0.020 after 16 epochs"`` (both map schedule length -> final accuracy)."""
    return ", ".join(f"{kd[e] - scratch[e]:+.3f} after {e} epochs" for e in sorted(kd))


def colab_epochs_beyond(student: str, epochs: int) -> int | None:
    """The colab profile's student epochs when it trains the same ``student`` architecture
    for longer than ``epochs``, else None: where a CPU profile stops short, the sentence
    can say how far the GPU profile goes."""
    colab = PROFILES["colab"]
    if student == colab.student and epochs < colab.student_epochs:
        return colab.student_epochs
    return None


def _rows(on_val: pd.DataFrame) -> dict[str, pd.Series | pd.DataFrame]:
    """Each method's part of a validation table, recorded as of its split: its seeds (rows)
    by epochs when the table's rows are ``(method, seed)``, else its one row."""
    if isinstance(on_val.index, pd.MultiIndex):
        methods = on_val.index.unique(level=0)
        return {m: derived(on_val.xs(m, level=0), on_val) for m in methods}
    return {m: derived(on_val.loc[m], on_val) for m in on_val.index}


def plateau_consequence(accuracy_by_epochs: pd.DataFrame, epochs: int, student: str) -> str:
    """What the students' plateaus mean for every comparison of the profile.

    The students short of their plateau are named: a comparison that reads one of them
    is of equal training budgets, not of students at their plateau. Which way that bends
    the gains of learning from the teacher follows from who is short: only students that
    learn from the teacher (understated), only the scratch student (overstated), or both
    (no direction is said).

    Args:
        accuracy_by_epochs: the final validation accuracy of ``"scratch"`` and ``"kd"``
            (and maybe more methods: e2KD, XDistillation; rows) by schedule length
            (columns): :func:`~xdx_lib.experiments.tuning.validation_by_schedule`.
        epochs: the profile's schedule.
        student: the students' architecture (the colab profile may train it longer:
            :func:`colab_epochs_beyond`).
    """
    return _consequence(_rows(accuracy_by_epochs), epochs, student)


def _undecided(rows: Mapping, epochs: int) -> str:
    """The sentence that opens the consequence when the plateau check cannot decide for some
    student (its point reading is then the seeds' mean), else nothing."""
    undecided = [m for m, row in rows.items() if plateau_check({"val": row}, epochs)[0] is None]
    if not undecided:
        return ""
    names = " and ".join(METHOD_NAMES.get(m, m) for m in undecided)
    whom = ("any student" if len(undecided) == len(rows) else
            f"the {names} {'student' if len(undecided) == 1 else 'students'}")  # fmt: skip
    return (f"the plateau check cannot decide for {whom} on these seeds, so what follows "
            "reads their mean accuracy")  # fmt: skip


def _consequence(rows: Mapping, epochs: int, student: str) -> str:
    """:func:`plateau_consequence` of the table's parts by method (:func:`_rows`)."""
    patient_or = _undecided(rows, epochs)
    reached_by = {m: plateau_on_validation({"val": row}) for m, row in rows.items()}
    needs = {m: reached or math.inf for m, reached in reached_by.items()}
    patient = ("the KD student needs a longer schedule than the scratch student: the "
               "teacher's soft targets keep giving it something to fit after the labels "
               "alone are exhausted"
               if needs.get("kd", 0) > needs.get("scratch", math.inf) else "")  # fmt: skip
    short = [m for m, reached in reached_by.items() if reached != epochs]
    if not short:
        return sentences(patient_or, patient,
                         "comparisons of this profile are of students at their plateau")
    colab_epochs = colab_epochs_beyond(student, epochs)
    longer = (f"the colab profile trains the same students for {colab_epochs} epochs, on a GPU"
              if colab_epochs is not None else "")  # fmt: skip
    if "scratch" not in short:
        bent = "the gains of learning from the teacher are then likely understated"
    elif short == ["scratch"]:
        bent = "the gains of learning from the teacher are then likely overstated"
    else:
        bent = ""
    names = " and ".join(METHOD_NAMES.get(m, m) for m in short)
    one = len(short) == 1
    return sentences(
        patient_or, patient,
        f"the {names} {'student is' if one else 'students are'} short of "
        f"{'its' if one else 'their'} plateau at the profile's {epochs} epochs",
        f"so every comparison that reads {'it' if one else 'them'} is of equal training "
        "budgets, not of plateaus: a method that learns faster is read as better",
        bent, longer)  # fmt: skip


def plateau_paragraph(accuracy_by_epochs: pd.DataFrame, epochs: int,
                      student: str) -> dict[str, str]:  # fmt: skip
    """The KD chapter's paragraph on the plateaus, phrase by phrase under the names its text
    glues: ``plateaus``, every method's :func:`plateau` in the order given, one sentence
    each; ``kd_lead_by_budget`` (:func:`lead_by_budget`) and ``plateau_consequence``
    (:func:`plateau_consequence`), from the final validation accuracies by schedule of
    ``"scratch"``, ``"kd"`` and any other method compared (rows of
    :func:`~xdx_lib.experiments.tuning.validation_by_schedule`)."""
    rows = _rows(accuracy_by_epochs)
    by = {m: dict((row if isinstance(row, pd.Series) else row.mean()).items())
          for m, row in rows.items()}  # fmt: skip
    return {"plateaus": sentences(*(plateau(m, row, epochs) for m, row in rows.items())),
            "kd_lead_by_budget": lead_by_budget(by["kd"], by["scratch"]),
            "plateau_consequence": _consequence(rows, epochs, student)}
