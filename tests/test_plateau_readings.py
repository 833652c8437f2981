"""The plateau check's readings (``xdx_lib.report.plateau_readings``): for known
validation accuracies by schedule, the words and the decisions the KD chapter and the
appendix quote."""

from __future__ import annotations

import pandas as pd
import pytest

from xdx_lib.analysis.selection import ChoiceFromTestError, scored_on
from xdx_lib.core.config import PROFILES
from xdx_lib.report import plateau_readings as readings
from xdx_lib.report.tables import sentences

COLAB = PROFILES["colab"]


def _val(by_epochs):
    """Validation accuracy by epochs as a row of tuning.validation_by_schedule carries it."""
    return scored_on(pd.Series(by_epochs, dtype=float), "val")


def _table(by_method):
    """Methods (rows) by epochs (columns) of validation accuracy, recorded as validation's."""
    return scored_on(pd.DataFrame(by_method).T, "val")


#: What the consequence says first when one seed leaves every student's check undecided.
UNDECIDED = ("The plateau check cannot decide for any student on these seeds, so what follows "
             "reads their mean accuracy. ")


def test_plateau_reached_at_the_profile_short_of_it_or_still_climbing():
    at_budget = {8: 0.850, 16: 0.853, 32: 0.852}
    assert readings.plateau("kd", _val(at_budget), 8) == (
        "the KD student has reached its plateau at the profile's 8 epochs (32 epochs add "
        "+0.002) (on one seed, which cannot decide the check: undecided)")
    later = {8: 0.840, 16: 0.851, 32: 0.853}
    assert readings.plateau("scratch", _val(later), 8) == (
        "the scratch student reaches its plateau by 16 epochs; at the profile's 8 it is "
        "0.013 short of it (on one seed, which cannot decide the check: undecided)")
    climbing = {8: 0.830, 16: 0.840, 32: 0.850}
    assert readings.plateau("kd", _val(climbing), 8) == (
        "the KD student is still climbing: 32 epochs add +0.010 to 16 epochs, and +0.020 "
        "to the profile's 8 (on one seed, which cannot decide the check: undecided)")
    with pytest.raises(ValueError, match="at least two"):
        readings.plateau("kd", _val({8: 0.85}), 8)


def test_plateau_against_a_schedule_twice_as_long():
    assert readings.plateau("xdistill", _val({12: 0.861, 24: 0.858}), 12) == (
        "the XDistillation student has reached its plateau at the profile's 12 epochs (24 "
        "epochs add -0.003) (on one seed, which cannot decide the check: undecided)")
    assert readings.plateau("e2kd", _val({12: 0.850, 24: 0.862}), 12) == (
        "the e2KD student is short of its plateau at the profile's 12 epochs: 24 epochs add "
        "+0.012 (on one seed, which cannot decide the check: undecided)")


def test_lead_by_budget_lists_every_schedule_shortest_first():
    kd, scratch = {16: 0.870, 8: 0.860}, {8: 0.850, 16: 0.852}
    assert readings.lead_by_budget(kd, scratch) == "+0.010 after 8 epochs, +0.018 after 16 epochs"


def test_colab_epochs_beyond_only_for_the_same_student_trained_shorter():
    assert readings.colab_epochs_beyond(COLAB.student, COLAB.student_epochs - 1) == (
        COLAB.student_epochs)
    assert readings.colab_epochs_beyond(COLAB.student, COLAB.student_epochs) is None
    assert readings.colab_epochs_beyond("no such student", 1) is None


def test_plateau_consequence():
    both_there = {"scratch": {8: 0.85, 16: 0.85}, "kd": {8: 0.87, 16: 0.87}}
    assert readings.plateau_consequence(_table(both_there), 8, COLAB.student) == (
        UNDECIDED + "Comparisons of this profile are of students at their plateau")
    kd_behind = {"scratch": {8: 0.85, 16: 0.85}, "kd": {8: 0.86, 16: 0.88}}
    text = readings.plateau_consequence(_table(kd_behind), 8, COLAB.student)
    assert text.startswith(UNDECIDED + "The KD student needs a longer schedule than the "
                           "scratch student: ")  # fmt: skip
    assert ("exhausted. The KD student is short of its plateau at the profile's 8 epochs. So "
            "every comparison that reads it is of equal training budgets") in text
    assert text.endswith(f"likely understated. The colab profile trains the same students for "
                         f"{COLAB.student_epochs} epochs, on a GPU")  # fmt: skip
    scratch_behind = {"scratch": {8: 0.84, 16: 0.86}, "kd": {8: 0.87, 16: 0.87}}
    text = readings.plateau_consequence(_table(scratch_behind), 8, "another student")
    assert text.startswith(UNDECIDED + "The scratch student is short")
    assert text.endswith("likely overstated")


def test_plateau_consequence_names_every_method_short_of_its_plateau():
    there, short = {12: 0.85, 24: 0.85}, {12: 0.85, 24: 0.87}
    learners_short = {"scratch": there, "kd": there, "e2kd": short, "xdistill": short}
    text = readings.plateau_consequence(_table(learners_short), 12, "another student")
    assert text == UNDECIDED + (
        "The e2KD and XDistillation students are short of their plateau at the profile's 12 "
        "epochs. So every comparison that reads them is of equal training budgets, not of "
        "plateaus: a method that learns faster is read as better. The gains of learning from "
        "the teacher are then likely understated")
    both_short = {"scratch": short, "kd": there, "xdistill": short}
    text = readings.plateau_consequence(_table(both_short), 12, "another student")
    assert text.startswith(UNDECIDED + "The scratch and XDistillation students are short of "
                           "their plateau")  # fmt: skip
    assert text.endswith("a method that learns faster is read as better")
    all_there = {"scratch": there, "kd": there, "e2kd": there, "xdistill": there}
    assert readings.plateau_consequence(_table(all_there), 12, "another student") == (
        UNDECIDED + "Comparisons of this profile are of students at their plateau")


def test_plateau_paragraph_names_its_phrases():
    final = {"scratch": {8: 0.85, 16: 0.85}, "kd": {8: 0.86, 16: 0.88}}
    paragraph = readings.plateau_paragraph(_table(final), 8, "another student")
    assert paragraph == {
        "plateaus": sentences(readings.plateau('scratch', _val(final['scratch']), 8),
                                       readings.plateau('kd', _val(final['kd']), 8)),
        "kd_lead_by_budget": "+0.010 after 8 epochs, +0.030 after 16 epochs",
        "plateau_consequence": readings.plateau_consequence(_table(final), 8,
                                                             "another student")}
    assert paragraph["plateaus"].startswith("The scratch student has reached its plateau")
    assert ". The KD student is short of its plateau" in paragraph["plateaus"]


def test_the_plateau_reads_validation_scores_only():
    """Test accuracies by schedule, however named, are refused where validation is read."""
    final = {"scratch": {8: 0.85, 16: 0.85}, "kd": {8: 0.86, 16: 0.88}}
    with pytest.raises(ChoiceFromTestError, match="computed on the 'test' split"):
        readings.plateau_paragraph(scored_on(pd.DataFrame(final).T, "test"), 8, "a student")
    with pytest.raises(ChoiceFromTestError, match="do not say which split"):
        readings.plateau("kd", pd.Series(final["kd"]), 8)


def _seeds(by_method):
    """Rows ``(method, seed)`` by epochs, as tuning.validation_by_schedule lays them out."""
    rows = {(m, s): acc for m, by_seed in by_method.items() for s, acc in by_seed.items()}
    table = pd.DataFrame(rows).T
    table.index.names = ["method", "seed"]
    return scored_on(table, "val")


def test_the_plateau_check_over_seeds_decides_or_says_undecided():
    there = {110: {8: 0.850, 16: 0.851}, 111: {8: 0.860, 16: 0.862}, 112: {8: 0.855, 16: 0.856}}
    short = {110: {8: 0.850, 16: 0.862}, 111: {8: 0.860, 16: 0.871}, 112: {8: 0.855, 16: 0.867}}
    noisy = {110: {8: 0.850, 16: 0.880}, 111: {8: 0.860, 16: 0.852}, 112: {8: 0.855, 16: 0.856}}
    table = _seeds({"scratch": there, "kd": short, "e2kd": noisy})
    said = readings.plateau_paragraph(table, 8, "another student")["plateaus"]
    assert "The scratch student has reached its plateau at the profile's 8 epochs (16 epochs " \
        "add +0.001) (at its plateau on 3 seeds, one-sided bounds [" in said
    assert "The KD student is short of its plateau at the profile's 8 epochs: 16 epochs add " \
        "+0.012 (short of it on 3 seeds" in said
    assert "(undecided on 3 seeds, one-sided bounds" in said
    text = readings.plateau_consequence(table, 8, "another student")
    assert text.startswith("The plateau check cannot decide for the e2KD student on these "
                           "seeds, so what follows reads their mean accuracy. ")  # fmt: skip
    decided = readings.plateau_consequence(_seeds({"scratch": there, "kd": short}), 8, "x")
    assert decided.startswith("The KD student needs a longer schedule")  # nothing undecided
