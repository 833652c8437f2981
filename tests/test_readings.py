"""The chapters' readings (``xdx_lib.report.readings``): for known numbers, the words and the
decisions the chapters' text quotes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from xdx_lib.analysis import robustness
from xdx_lib.analysis.selection import scored_on
from xdx_lib.analysis.stats import PairedDifference
from xdx_lib.core.config import PROFILES
from xdx_lib.report import readings

COLAB = PROFILES["colab"]


def _val(by_epochs):
    """Validation accuracy by epochs as a row of tuning.validation_by_schedule carries it."""
    return scored_on(pd.Series(by_epochs, dtype=float), "val")


def _table(by_method):
    """Methods (rows) by epochs (columns) of validation accuracy, recorded as validation's."""
    return scored_on(pd.DataFrame(by_method).T, "val")


def test_counted_is_plural_from_two():
    assert readings.counted(1, "seed") == "1 seed"
    assert readings.counted(3, "seed") == "3 seeds"


def test_premise_reads_the_interval():
    assert readings.premise(1, math.nan, math.nan) == "one seed cannot say"
    assert readings.premise(5, 0.001, 0.02) == (
        "KD is ahead of training alone: the premise holds here")
    assert readings.premise(5, -0.03, -0.001).startswith("KD is behind training alone: ")
    assert readings.premise(5, -0.01, 0.02).startswith(
        "these seeds cannot tell KD from training alone")


def test_teacher_origin_says_where_it_trained():
    here = readings.teacher_origin(None, 15, 11.24)
    assert here == ("Its 15 epochs took 11.2 min of training here. It is trained once per "
                    "clone and read from the run cache after")  # fmt: skip
    shipped = {"command": "python -m xdx_lib train-teacher --profile book --amp off",
               "commit": "abc1234", "machine": "a 2-core CPU, in float32"}
    said = readings.teacher_origin(shipped, 15, 20.04)
    assert said.startswith("This teacher ships with the book's repository")
    assert "(python -m xdx_lib train-teacher --profile book --amp off, at commit abc1234)" in said
    assert "Its 15 epochs took 20.0 min there, on a 2-core CPU, in float32" in said
    assert said.endswith("make book TEACHER=train trains the teacher here instead")
    assert all(len(s.split()) <= readings.MAX_WORDS for s in said.split(". "))


def test_sanity_split_at_the_threshold():
    rho = {"gradcam": 0.1, "saliency": 0.5, "integrated_gradients": 0.9}
    assert readings.sanity_split(rho) == ("saliency, integrated_gradients", "gradcam")
    assert readings.sanity_split({"gradcam": 0.7}) == ("gradcam", "none")
    assert readings.sanity_split({"gradcam": 0.7}, kept_from=0.8) == ("none", "gradcam")


def test_gradcam_sanity():
    assert readings.gradcam_sanity(0.123) == "changes (Spearman 0.12)"
    assert readings.gradcam_sanity(0.5) == "does not change (Spearman 0.50)"


def _cae_choice(chosen, leader="full: both", n=3, mean=0.02, lower=0.01):
    gain = PairedDifference(leader, "grid: skips", "r", n, mean, 0.01, lower, mean + 0.01)
    return SimpleNamespace(default="grid: skips", leader=leader, chosen=chosen,
                           gain=None if leader == "grid: skips" else gain)


def test_cae_picked_says_what_the_cae_step_chose_and_why():
    assert readings.cae_picked(_cae_choice("grid: skips", leader="grid: skips")) == (
        "grid: skips, the configuration's CAE, has the highest validation r and stays")
    assert readings.cae_picked(_cae_choice("full: both")).startswith(
        "full: both is shown above the configuration's grid: skips in validation r, +0.020")
    assert readings.cae_picked(_cae_choice(None, n=1, lower=math.nan)) == (
        "full: both leads the configuration's grid: skips by +0.020 in validation r, but one "
        "seed cannot show a gain, so grid: skips stays")
    assert readings.cae_picked(_cae_choice(None, lower=-0.01)).endswith(
        "in validation r, not shown above 0, so grid: skips stays")


def test_explains_closer():
    assert readings.explains_closer(0.6, 0.5) == (
        "explains more like the teacher than the scratch student does")
    assert readings.explains_closer(0.5, 0.5) == (
        "does not explain more like the teacher than the scratch student does")


def test_beats():
    assert readings.beats(0.6, 0.5) == "beats"
    assert readings.beats(0.5, 0.5) == "does not beat"


def test_above_or_below():
    assert readings.above_or_below(0.7, 0.6) == "above"
    assert readings.above_or_below(0.6, 0.6) == "below"


def test_checks_passed():
    assert readings.checks_passed({"a": True, "b": False, "c": True}) == "2 of 3"


def test_ratio_range():
    assert readings.ratio_range([2.04, 1.26, 3.0]) == "1.3 to 3.0"
    assert readings.ratio_range([]) == "n/a"


def test_seed_spread_reads_the_smallest_ratio():
    assert readings.seed_spread([]) == "There is no spread to measure with fewer than two seeds"
    assert readings.seed_spread([1.6, 2.0]).startswith("Most of the spread is whole students")
    assert readings.seed_spread([1.5, 2.0]) == (
        "Much of the spread is the test set's finite size, which more test images shrink")


def _d(a: str, b: str, mean: float, lower: float, upper: float, n: int = 3):
    from xdx_lib.analysis.stats import PairedDifference

    return PairedDifference(a, b, "accuracy", n, mean, math.nan, lower, upper)


def _map_use(own_flat, own_other, true_mean, true_other=(0.01, -0.02, 0.04), **kw) -> str:
    """:func:`readings.map_use` of four ``(mean, lower, upper)`` triples, in
    :data:`readings.MAP_USE_PAIRS`' order (the control's open by default)."""
    triples = (own_flat, own_other, true_mean, true_other)
    diffs = {pair: _d(*pair, *t) for pair, t in zip(readings.MAP_USE_PAIRS, triples)}
    return readings.map_use(diffs, **kw)


INSIDE = (0.001, -0.002, 0.004)  # shown within the margin 0.006
BEATS = (0.05, 0.03, 0.07)  # shown above 0, estimate beyond the margin
OPEN = (0.01, -0.02, 0.04)  # holds 0: inconclusive


def test_map_use_as_the_teachers_explanation_only_when_its_map_beats_the_mean_map():
    text = _map_use(BEATS, BEATS, (0.02, 0.01, 0.03))
    assert text == ("The student uses its map as the teacher's explanation. The teacher's map "
                    "of the image serves it better than the teacher's image-blind mean map: "
                    "teacher true beats teacher mean: +0.020 [+0.010, +0.030]. These seeds do "
                    "not tell whether it reads the teacher's class off the map or where it "
                    "looked: teacher true is not shown better or worse than teacher other "
                    "class: +0.010 [-0.020, +0.040]")  # fmt: skip
    # shown above 0 but estimated below the margin: the part rule does not read it supported
    below = _map_use(BEATS, BEATS, (0.005, 0.001, 0.009))
    assert below.startswith("The student depends on its map. Own beats flat: +0.050")
    assert below.endswith("These seeds do not show it using the map as the teacher's "
                          "explanation: teacher true beats teacher mean by less than the "
                          "margin: +0.005 [+0.001, +0.009]")  # fmt: skip
    # a wider margin makes the same difference negligible
    assert _map_use(BEATS, BEATS, (0.02, 0.01, 0.03), margin=0.05).endswith(
        "a second view of it, more than where the teacher looked")


@pytest.mark.parametrize("control, story", [
    (BEATS, "It reads the teacher's class off the map. The teacher's map of the same image for "
            "another class serves it less: teacher true beats teacher other class: +0.050"),
    (INSIDE, "What it uses is where the teacher looked, not its class. The teacher's map for "
             "another class serves as well: teacher true and teacher other class lie within"),
])  # fmt: skip
def test_map_use_tells_the_class_from_where_the_teacher_looked_by_the_control(control, story):
    text = _map_use(BEATS, BEATS, (0.02, 0.01, 0.03), control)
    assert text.startswith("The student uses its map as the teacher's explanation")
    assert story in text
    assert max(len(s.split()) for s in text.split(". ")) <= readings.MAX_WORDS


def test_map_use_hardly_used_when_both_replacements_are_shown_within_the_margin():
    assert _map_use(INSIDE, INSIDE, OPEN) == (
        "The student hardly uses its map: XDistillation's accuracy does not come from it. "
        "Own and flat lie within the margin of each other: +0.001 [-0.002, +0.004]. Own "
        "and other image lie within the margin of each other: +0.001 [-0.002, +0.004]")


@pytest.mark.parametrize("true_mean, shown", [
    (INSIDE, "teacher true and teacher mean lie within the margin of each other: +0.001"),
    ((-0.03, -0.05, -0.01), "teacher mean beats teacher true: -0.030 [-0.050, -0.010]"),
])  # fmt: skip
def test_map_use_a_second_view_when_the_teachers_map_is_shown_no_better(true_mean, shown):
    text = _map_use(BEATS, OPEN, true_mean)
    assert text.startswith("The student depends on its map. Own beats flat: +0.050 [+0.030, "
                           f"+0.070]. But not as the teacher's explanation: {shown}")  # fmt: skip
    assert text.endswith(". It reads what the CAE's output shows of the image, a second view "
                         "of it, more than where the teacher looked")  # fmt: skip
    assert "other image" not in text  # only the replacements it beats are named


def test_map_use_depended_on_but_undecided_about_the_teachers_map():
    assert _map_use(INSIDE, BEATS, OPEN) == (
        "The student depends on its map. Own beats other image: +0.050 [+0.030, +0.070]. "
        "These seeds do not show it using the map as the teacher's explanation: teacher "
        "true is not shown better or worse than teacher mean: +0.010 [-0.020, +0.040]")


def test_map_use_otherwise_says_the_seeds_do_not_show_how():
    assert _map_use(OPEN, INSIDE, OPEN) == (
        "These seeds do not show how the student uses its map. Own is not shown better or "
        "worse than flat: +0.010 [-0.020, +0.040]. Own and other image lie within the margin "
        "of each other: +0.001 [-0.002, +0.004]. Teacher true is not shown better or worse "
        "than teacher mean: +0.010 [-0.020, +0.040]. Teacher true is not shown better or worse "
        "than teacher other class: +0.010 [-0.020, +0.040]")
    one_seed = (0.05, math.nan, math.nan)
    diffs = {pair: _d(*pair, *one_seed, n=1) for pair in readings.MAP_USE_PAIRS}
    text = readings.map_use(diffs)
    assert text.startswith("These seeds do not show how")
    assert "Own is not shown better or worse than flat: +0.050 (n=1, no bounds)" in text


# ---------------------------------------------------------------- the results' verdicts


def test_multiplicity_states_the_family_its_control_and_the_exploratory_table():

    text = readings.multiplicity(robustness.multiplicity())
    assert text.startswith("The verdicts read 6 parts of 3 claims (C1 2 parts, C2 1 part, "
                           "C3 3 parts) as one family. Holm's procedure keeps the chance that "
                           "any of them reads supported by chance alone at most 5 %")  # fmt: skip
    # 35 cells at 5 %: 1.75 by chance
    assert ("up to 35 differences, each by a two-sided 95 % interval and uncorrected, so it "
            "is exploratory") in text
    assert text.endswith("about 1.8 of its cells would still read one method ahead")
    assert max(len(sentence.split()) for sentence in text.split(". ")) <= readings.MAX_WORDS
    two = readings.multiplicity(robustness.Multiplicity((("C9", 2),), cells=4))
    assert "The verdicts read 2 parts of 1 claim (C9 2 parts) as one family" in two
    assert "about 0.2 of its cells" in two


def test_fragile_verdicts_names_the_claims_and_the_seeds():
    from xdx_lib.analysis.claims import ClaimVerdict as CV
    from xdx_lib.analysis.robustness import SeedOutReading

    def out(name, verdict, *without):
        return SeedOutReading(name, verdict, tuple(enumerate(without)))

    same = [out("C1", CV.SUPPORTED, CV.SUPPORTED, CV.SUPPORTED),
            out("C2", CV.INCONCLUSIVE, CV.INCONCLUSIVE, CV.INCONCLUSIVE)]  # fmt: skip
    assert readings.fragile_verdicts(same) == (
        "On this run, every verdict reads the same when any one seed is left out")
    c2 = out("C2", CV.BELOW_MARGIN, CV.BELOW_MARGIN, CV.INCONCLUSIVE, CV.SUPPORTED,
             CV.INCONCLUSIVE)  # fmt: skip
    mixed = [same[0], c2, out("C3", CV.NOT_SUPPORTED, CV.NOT_SUPPORTED),
             out("C4", CV.SUPPORTED, CV.SUPPORTED)]  # fmt: skip
    assert readings.fragile_verdicts(mixed) == (
        "C2 (positive but below the margin) is fragile: without seeds 1, 3 it reads "
        "inconclusive, without seed 2 it reads supported. C1, C3 and C4 read the same without "
        "any one seed")
    assert readings.fragile_verdicts([same[0], c2]).endswith(". C1 reads the same without any "
                                                             "one seed")  # fmt: skip
    assert readings.fragile_verdicts([c2]).startswith("C2 (positive but below the margin) is")


def test_default_choice_names_the_pick_when_it_is_not_the_default():
    default = "staged, exp, channel"
    assert readings.default_choice(default, default) == (
        "the chooser picks the library's default (staged, exp, channel)")
    assert readings.default_choice("fusion: gate", default) == (
        "the chooser picks fusion: gate instead of the library's default (staged, exp, channel)")
    assert readings.default_choice(None, default).startswith("no variant passes every check")
    assert readings.default_choice(None, 6, "pre-training") == (
        "no pre-training passes every check on validation, so the chooser picks none; the "
        "library keeps its default (6)")


def test_accuracy_against_kd_reads_the_check_that_can_fail():
    def d(n, mean, low, high):
        return PairedDifference("xdistill", "KD", "accuracy", n, mean, math.nan, low, high)

    one = readings.accuracy_against_kd(d(1, -0.004, math.nan, math.nan))
    assert one == ("-0.004 (n=1, no interval) (one seed: no spread to judge noise by, so "
                   "undecided)")  # fmt: skip
    # shown worse; shown no worse than the margin; too wide to tell (two seeds, say)
    assert readings.accuracy_against_kd(d(3, -0.01, -0.02, -0.001)).endswith(
        ": below KD's, beyond the margin 0.006")
    assert readings.accuracy_against_kd(d(3, -0.001, -0.004, 0.002)).endswith(
        ": not below KD's by more than the margin 0.006")
    assert readings.accuracy_against_kd(d(2, -0.01, -0.2, 0.18)).endswith(
        ": undecided, these seeds cannot tell it from a shortfall beyond the margin 0.006")


def test_checks_passed_counts_the_undecided_apart():
    assert readings.checks_passed({"a": True, "b": None, "c": True}) == "2 of 3 (1 undecided)"


def test_default_choice_says_when_the_seeds_cannot_decide():
    text = readings.default_choice(None, "staged", undecided=True)
    assert text == ("the seeds cannot decide every check, so the chooser picks no variant; the "
                    "library keeps its default (staged)")  # fmt: skip


def test_grid_stability_counts_the_seeds_the_chosen_point_wins():
    spread = {"val s100": {"a": 0.80, "b": 0.81}, "val s101": {"a": 0.86, "b": 0.82},
              "val mean": {"a": 0.83, "b": 0.815}, "val sd": {"a": 0.04, "b": 0.007}}
    text = readings.grid_stability(spread)
    assert text.startswith("The chosen point is the best on 1 of 2 tune seeds")
    assert "by 0.0150" in text and "0.0400" in text and "within the seeds' noise" in text
    steady = {**spread, "val s100": {"a": 0.82, "b": 0.81}, "val sd": {"a": 0.004, "b": 0.01}}
    assert readings.grid_stability(steady).endswith("where a point's sd over the seeds "
                                                    "reaches 0.0100")  # fmt: skip
    one = {"val s100": {"a": 0.8}, "val mean": {"a": 0.8}, "val sd": {"a": float("nan")}}
    assert "cannot be read" in readings.grid_stability(one)


def test_sentences_capitalise_each_part_and_leave_the_last_open():
    assert readings.sentences("one", "", "two: three") == "One. Two: three"


def test_claims_run_says_what_was_chosen_and_what_ran():
    from xdx_lib.core.config import RunConfig
    from xdx_lib.experiments.choices import DEFAULT_VARIANT

    run = RunConfig(dataset="fashion_mnist", profile="book", fusion="gate")
    none = readings.claims_run(None, run)
    assert "no xdistill_seeds" in none["xd_choice"] and "fusion: gate" in none["claims_xd"]
    undecided = SimpleNamespace(chosen=None, undecided=True, seeds=[100], cae_epochs=6,
                                default_epochs=6, cae=_cae_choice(None, n=1))  # fmt: skip
    said = readings.claims_run(undecided, run)
    assert said["xd_seeds"] == "1 tune seed" and "cannot decide" in said["xd_choice"]
    assert "grid: skips CAE pre-trained 6 epochs" in said["claims_xd"]
    assert said["xd_cae"].endswith("cannot show a gain, so grid: skips stays")
    assert DEFAULT_VARIANT in said["xd_choice"] and "default (6)" in said["xd_epochs"]
    picked = SimpleNamespace(chosen="fusion: gate", undecided=False, seeds=[100, 101],
                             cae_epochs=2, default_epochs=6, cae=None)  # fmt: skip
    said = readings.claims_run(picked, run)
    assert said["xd_choice"].startswith("the chooser picks fusion: gate instead")
    assert "picks 2 instead of the library's default (6)" in said["xd_epochs"]


def test_xdistill_choice_reads_the_defaults_checks_and_both_steps():
    from xdx_lib.experiments.choices import CHECKS, DEFAULT_VARIANT

    one_seed = PairedDifference(DEFAULT_VARIANT, "KD", "accuracy", 1, -0.002, *[math.nan] * 3)
    checks = pd.DataFrame({CHECKS[0]: [True], CHECKS[1]: [False], CHECKS[2]: [None]},
                          index=[DEFAULT_VARIANT])  # fmt: skip
    choice = SimpleNamespace(against_kd={DEFAULT_VARIANT: one_seed}, checks=checks, chosen=None,
                             undecided=True, cae_epochs=6, default_epochs=6, seeds=[100],
                             cae=_cae_choice("grid: skips", leader="grid: skips"))  # fmt: skip
    said = readings.xdistill_choice(choice)
    assert said["cae_reading"].endswith("has the highest validation r and stays")
    assert said["chosen"] == DEFAULT_VARIANT and said["n_variant_seeds"] == "1 seed"
    assert said["checks_passed"] == "1 of 3 (1 undecided)"
    assert "one seed" in said["acc_vs_kd"] and "cannot decide" in said["choice_reading"]
    assert said["cae_epochs_reading"] == "the chooser picks the library's default (6)"
