"""The book's choices, made on the validation split alone; the test split only reports.

Every option the book picks for its readers (KD's weight and temperature, the CAE's
variant, XDistillation's schedule and routing, the fusion, the students' epochs) is picked
by one of the choosers here. Each takes its scores keyed by split, ``{"val": scores}``, so
that the split is named where the choice is made, and checks where the scores come from,
not only what they are called: a frame or series of scores carries the split it was
computed on (:func:`scored_on`, set by the functions that score a split, and kept by
:func:`derived` for a table made from such scores), and a chooser refuses scores of any
other split, or of none, with :class:`ChoiceFromTestError`; so does a ``"test"`` key, or
any key or column that names a test metric (``test_acc``, ``test accuracy``, ``("test",
"pearson")``). The test numbers are joined to a choice afterwards, for the reader, never
passed in.

Choices are trained on seeds of their own (:data:`FIRST_TUNE_SEED` on), so that no student
a claim reads has been picked for scoring well: :func:`tune_seeds` names them, and
:func:`~xdx_lib.experiments.experiment_config.validate_experiment` checks an experiment's
``tune_seeds`` against the seeds its claims read. Layer: above the numbers
(:mod:`xdx_lib.analysis.stats`); torch free, nothing here trains.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from xdx_lib.analysis.stats import (
    PLATEAU_TOLERANCE,
    PairedDifference,
    paired_difference,
    plateau_epochs,
)

#: The split every choice is made on.
CHOOSING_SPLIT = "val"

#: Where a frame or series of scores records the split it was computed on (pandas' ``attrs``,
#: which pandas carries through selections, renames and group-bys).
SPLIT_ATTR = "split"

#: The first seed of the runs that choose, far above any seed a claim reads.
FIRST_TUNE_SEED = 100
#: The first seed of the plateau check's students, apart from the seeds that choose.
FIRST_PLATEAU_SEED = 110

#: ``test`` as a word of a name: ``test_acc``, ``test accuracy``, ``test/pearson``, ``T test``
#: (not ``latest``, ``contest``).
_TEST_WORD = re.compile(r"(?<![a-z])test(?![a-z])", re.IGNORECASE)


class ChoiceFromTestError(ValueError):
    """A chooser was handed a test score: the test split reports, it never chooses."""


def plateau_seeds(n: int) -> list[int]:
    """The ``n`` seeds of the plateau check's students: :data:`FIRST_PLATEAU_SEED`, the
    next, ... (no claim reads them, and no choice is made on them)."""
    if n < 1:
        raise ValueError(f"the plateau check needs at least one seed; got {n}")
    return list(range(FIRST_PLATEAU_SEED, FIRST_PLATEAU_SEED + n))


def tune_seeds(n: int) -> list[int]:
    """The ``n`` seeds a chapter trains its candidates with when it chooses:
    :data:`FIRST_TUNE_SEED`, the next, ... (none of them a claim seed)."""
    if n < 1:
        raise ValueError(f"a choice needs at least one seed; got {n}")
    return list(range(FIRST_TUNE_SEED, FIRST_TUNE_SEED + n))


def is_test_metric(name) -> bool:
    """Whether ``name`` (a key, a column, a tuple of them) names a test score."""
    parts = name if isinstance(name, tuple) else (name,)
    return any(_TEST_WORD.search(str(p)) for p in parts)


def scored_on(scores, split: str):
    """A copy of ``scores`` (a pandas DataFrame or Series) that records the split it was
    computed on. The functions that compute scores on a split return this; a chooser reads
    it (:func:`validation_scores`), so that scores of the test split are refused whatever
    their columns are called."""
    if not isinstance(scores, (pd.DataFrame, pd.Series)):
        raise TypeError("scored_on: give a pandas DataFrame or Series, not "
                        f"{type(scores).__name__}")
    out = scores.copy()
    out.attrs[SPLIT_ATTR] = split
    return out


def split_of(scores) -> str | None:
    """The split ``scores`` were computed on (:func:`scored_on`), or None when they do not
    say."""
    attrs = getattr(scores, "attrs", None)
    return attrs.get(SPLIT_ATTR) if isinstance(attrs, Mapping) else None


def derived(table, *sources):
    """``table``, computed from ``sources``, recorded as computed on their split: a table of
    checks made from validation scores is itself of the validation split.

    Raises:
        ChoiceFromTestError: a source that does not say its split, or sources of different
            splits (the table would mix them).
    """
    splits = {split_of(s) for s in sources}
    if not sources or None in splits:
        raise ChoiceFromTestError(
            "derived: given sources that do not say which split they were computed on; "
            "derive a table from what a function scoring one split returns")  # fmt: skip
    if len(splits) > 1:
        raise ChoiceFromTestError(f"derived: its sources come from splits {sorted(splits)}; "
                                  "derive a table from scores of one split")  # fmt: skip
    return scored_on(table, splits.pop())


def check_disjoint(tune: Iterable[int], claims: Iterable[int], what: str = "tune_seeds",
                   others: str = "claim seeds") -> None:  # fmt: skip
    """Raise ValueError when a seed that chooses is also one a claim reads: the claims'
    student would then be the one picked for scoring well on it. ``others`` names the
    seeds ``claims`` holds, for a check of other seeds kept apart (the plateau's from the
    choices')."""
    shared = sorted(set(tune) & set(claims))
    if shared:
        raise ValueError(f"{what} {shared} are also {others}; keep them apart (choices "
                         f"from {FIRST_TUNE_SEED} on, the plateau check from "
                         f"{FIRST_PLATEAU_SEED} on)")  # fmt: skip


def validation_scores(scores: Mapping, what: str = "the choice"):
    """The validation entry of ``scores`` (keyed by split), checked to hold no test score.

    Raises:
        ChoiceFromTestError: scores computed on another split than validation, or that do
            not say which (:func:`split_of`); a ``test`` split, or a key or column naming a
            test metric, anywhere in ``scores`` (a frame's columns and index names).
        ValueError: no validation entry, or another split than validation.
    """
    if not isinstance(scores, Mapping) or not all(isinstance(k, str) for k in scores):
        raise TypeError(f"{what}: give the scores keyed by split, {{'val': ...}}")
    for split in scores:
        if is_test_metric(split):
            raise ChoiceFromTestError(
                f"{what} was handed test scores ({split!r}); choose on the validation split "
                "and report the test split beside the choice")
    if set(scores) != {CHOOSING_SPLIT}:
        raise ValueError(f"{what} is made on the validation split alone: give "
                         f"{{{CHOOSING_SPLIT!r}: scores}}, not {sorted(scores)}")  # fmt: skip
    val = scores[CHOOSING_SPLIT]
    computed_on = split_of(val)
    if computed_on is None:
        raise ChoiceFromTestError(
            f"{what} was handed scores that do not say which split they were computed on; "
            "pass what a function scoring the validation split returns (e.g. "
            "choices.variant_table(split='val'), tuning.validation_by_schedule), or a table "
            "made from it with selection.derived")  # fmt: skip
    if computed_on != CHOOSING_SPLIT:
        raise ChoiceFromTestError(
            f"{what} was handed scores computed on the {computed_on!r} split; choose on the "
            "validation split and report the others beside the choice")  # fmt: skip
    names = _names(val)
    bad = [n for n in names if is_test_metric(n)]
    if bad:
        raise ChoiceFromTestError(
            f"{what} was handed test metrics {bad}; pass validation scores only and join the "
            "test numbers to the choice afterwards")
    return val


def validation_split(data, what: str = "the choice"):
    """``data.val``, the images every choice is made on; a ValueError naming ``val_size``
    when ``data`` (a :class:`~xdx_lib.data.datasets.Dataset`) has no validation split. The one check
    of it: the evaluation and the tuning ask here too."""
    val = getattr(data, "val", None)
    if val is None:
        raise ValueError(f"{what} is made on the validation split, and the data has no "
                         "validation split (no 'val' images): set val_size (--val-size; the "
                         "profile's unless given); a val_size above 0 holds that many "
                         "training images out")  # fmt: skip
    return val


def _names(scores) -> list:
    """Every name in ``scores`` a test metric could hide under."""
    if isinstance(scores, pd.DataFrame):
        return [*scores.columns, *scores.index.names]
    if isinstance(scores, pd.Series):
        return [scores.name, *scores.index.names, *scores.index]
    if isinstance(scores, Mapping):
        return [*scores, *(n for v in scores.values() if isinstance(v, Mapping) for n in v)]
    return []


def no_worse(lower: float, upper: float, margin: float) -> bool | None:
    """A check that can fail, on a paired difference ``A - B`` read on validation through
    its one-sided 95 % bounds: True when ``lower > -margin`` (A shown no worse than B by
    more than the margin), False when ``upper < 0`` (A shown worse), None when the seeds
    cannot tell (undecided; always so with one seed, which has no bounds).

    A real shortfall beyond the margin fails it once the seeds resolve it, and noise wider
    than the margin leaves it undecided rather than passed."""
    if math.isnan(lower) or math.isnan(upper):
        return None
    if lower > -margin:
        return True
    return False if upper < 0 else None


def passes(checks: pd.DataFrame) -> pd.Series:
    """Which rows pass every check: True only where each check is True; an undecided check
    (None) does not pass."""
    return checks.eq(True).all(axis=1)


def highest_mean(scores: Mapping, by: str | Sequence[str], metric: str):
    """The option of highest mean validation ``metric`` over seeds, and every option's mean.

    Args:
        scores: ``{"val": frame}``, one row per option and seed, the option in column(s)
            ``by`` and its validation score in ``metric``.
        by: the option's column (or columns: the option is then a tuple).
        metric: the validation score to maximise.

    Returns:
        ``(best, means)``: the option (the first of those tied, in the frame's sorted
        order), and the mean of ``metric`` per option (a Series indexed by ``by``).
    """
    val = validation_scores(scores, f"choosing {by} by {metric}")
    if not len(val):
        raise ValueError(f"no validation scores to choose {by} from")
    means = val.groupby(by)[metric].mean()
    if means.isna().all():
        raise ValueError(f"no finite {metric} to choose {by} by")
    return means.idxmax(), means


def shown_better(scores: Mapping, by: str, metric: str, default):
    """The option of highest mean validation ``metric`` over the seeds, kept only if the seeds
    show it better than ``default``: ``(pick, leader, gain)``.

    The leader replaces the default when its gain, paired by seed, has a one-sided 95 % lower
    bound above 0 (:func:`~xdx_lib.analysis.stats.paired_difference`). When the default leads,
    it is the pick. Otherwise the pick is None: the seeds cannot tell the two apart (always so
    with one seed, which has no spread to judge noise by) and the default stays. This is the
    rule for the CAE the claims deploy (:func:`xdx_lib.experiments.choices.choose_cae`).

    Args:
        scores: ``{"val": frame}``, one row per option and seed, the option in column ``by``.
        by: the option's column.
        metric: the validation score to maximise.
        default: the option kept unless another is shown better.

    Returns:
        ``(pick, leader, gain)``, where the pick is None when undecided and the gain is the
        leader's :class:`~xdx_lib.analysis.stats.PairedDifference` over the default, None
        when the default leads.
    """
    leader, _ = highest_mean(scores, by, metric)
    if leader == default:
        return default, leader, None
    val = validation_scores(scores, f"choosing {by} by {metric}")
    gain = paired_difference(val, leader, default, metric, group=None, by=by, confidence=0.90)
    return (leader if gain.lower > 0 else None), leader, gain


def best_option(scores: Mapping, metric: str):
    """The option of highest validation ``metric``, from ``{"val": frame}`` with one row per
    option (its index) and its validation score in column ``metric``.

    The first of those tied wins, in the frame's order. The CAE chapter's rule for the CAE
    variant: the one whose maps are closest to the teacher's on validation images.
    """
    val = validation_scores(scores, f"choosing by {metric}")
    if not len(val):
        raise ValueError(f"no validation scores to choose by {metric} from")
    if not val.index.is_unique:
        twice = sorted(set(val.index[val.index.duplicated()]))
        raise ValueError(f"one row per option: {twice} come more than once (several seeds? "
                         "choose by their mean with highest_mean)")  # fmt: skip
    if val[metric].isna().all():
        raise ValueError(f"no finite {metric} to choose by")
    return val[metric].idxmax()


def _by_seed(scores: Mapping, what: str) -> pd.DataFrame:
    """The validation accuracies of :func:`plateau`'s ``scores`` as seeds (rows) by epochs
    (columns): a series (one seed) becomes one row."""
    val = validation_scores(scores, what)
    return val.to_frame().T if isinstance(val, pd.Series) else val


def plateau(scores: Mapping) -> int | None:
    """The shortest schedule at the student's plateau on validation accuracy
    (:func:`xdx_lib.analysis.stats.plateau_epochs`, on the mean over seeds), from
    ``{"val": scores}``: validation accuracy by epochs, a series (one seed) or a frame of
    seeds (rows) by epochs (columns), one method's part of
    :func:`~xdx_lib.experiments.tuning.validation_by_schedule`."""
    means = _by_seed(scores, "the plateau").mean()
    return plateau_epochs(dict(means.items()))


def plateau_check(scores: Mapping, epochs: int, tolerance: float = PLATEAU_TOLERANCE,
                  ) -> tuple[bool | None, PairedDifference]:  # fmt: skip
    """Whether the student is at its plateau at ``epochs``, as a check that can fail.

    Reads the gain of the longest schedule over ``epochs``, paired by seed, through its
    one-sided 95 % bounds: True (at its plateau) when the upper bound is within
    ``tolerance``, False (short of it) when the lower bound exceeds it, None (undecided)
    when the seeds cannot tell, always so with one seed. ``scores``: as :func:`plateau`'s.
    Returns the check and the gain (a :class:`~xdx_lib.analysis.stats.PairedDifference`,
    longest minus ``epochs``)."""
    frame = _by_seed(scores, "the plateau check")
    longest = max(frame.columns)
    if epochs not in frame.columns or longest == epochs:
        raise ValueError(f"the plateau check needs {epochs} epochs and a longer schedule; "
                         f"got {list(frame.columns)}")  # fmt: skip
    n = len(frame)
    paired = pd.DataFrame({"schedule": [longest] * n + [epochs] * n, "seed": [*range(n)] * 2,
                           "accuracy": [*frame[longest], *frame[epochs]]})  # fmt: skip
    gain = paired_difference(paired, longest, epochs, "accuracy", group=None, by="schedule",
                             confidence=0.90)  # fmt: skip
    if math.isnan(gain.lower) or math.isnan(gain.upper):
        return None, gain
    if round(gain.upper - tolerance, 12) <= 0:
        return True, gain
    return (False if round(gain.lower - tolerance, 12) > 0 else None), gain


def cheapest_passing(scores: Mapping, checks: Sequence[str], cost: str):
    """Among the options that pass every check on validation, the cheapest (None if none).

    ``scores``: ``{"val": frame}`` indexed by option, with a column per check (each
    computed from validation scores: True, False, or None when undecided, which does not
    pass) and the option's ``cost`` (e.g. seconds an epoch). This is the XDistillation
    chapter's rule for its defaults: the schedule and routing whose CAE map stays an
    explanation and whose accuracy is shown no worse than KD's (:func:`no_worse`).
    """
    val = validation_scores(scores, "choosing the cheapest passing option")
    passing = val[passes(val[list(checks)])]
    return None if passing.empty else passing[cost].idxmin()


def xdistill_variant(scores: Mapping, runs: Mapping, checks: Sequence[str], cost: str,
                     default: str, fusion_prefix: str = "fusion: "):  # fmt: skip
    """XDistillation's defaults, chosen in two steps on validation (None if none is picked).

    First the schedule and routing: the cheapest variant that passes every check
    (:func:`cheapest_passing`), the fusion variants left out. A variant cheaper than
    ``default`` is picked on passing alone; a costlier one replaces ``default`` only when
    ``default`` is shown to fail a check (False). An *undecided* default, one that fails no
    check but leaves some undecided, stays (None, as when nothing passes): that a costlier
    variant's seeds happened to agree more closely, so that its check decided, is no
    evidence against the default. When the pick is ``default``, the fusion: the fusions
    change little of an epoch's cost, so the fusion variant that passes every check with
    the highest mean validation accuracy over the seeds replaces ``default`` only when its
    gain, paired by seed, is shown above 0 (:func:`shown_better`); else ``default`` stays.

    Args:
        scores: ``{"val": frame}`` indexed by variant, a boolean column per check and ``cost``.
        runs: ``{"val": frame}``, one row per variant and seed: ``variant`` and ``accuracy``.
        checks, cost: the check columns and the cost column of ``scores``.
        default: the variant of the library's defaults; fusion variants are those whose name
            starts with ``fusion_prefix``.
    """
    frame = validation_scores(scores, "choosing XDistillation's variant")
    fusions = [v for v in frame.index if str(v).startswith(fusion_prefix)]
    # both frames were checked above: what is made of them stays on validation
    schedules = scored_on(frame.drop(index=fusions), CHOOSING_SPLIT)
    chosen = cheapest_passing({CHOOSING_SPLIT: schedules}, checks, cost)
    if chosen is None:
        return None
    if chosen != default:
        return None if _stays(schedules, chosen, default, checks, cost) else chosen
    rows = validation_scores(runs, "choosing XDistillation's fusion")
    passing = frame.index[passes(frame[list(checks)])]
    among = [v for v in passing if v == default or v in fusions]
    rows = rows[rows["variant"].isin(among)][["variant", "seed", "accuracy"]]
    pick, _, _ = shown_better({CHOOSING_SPLIT: scored_on(rows, CHOOSING_SPLIT)}, "variant",
                              "accuracy", default)  # fmt: skip
    return pick or default


def _stays(schedules: pd.DataFrame, chosen, default, checks: Sequence[str], cost: str) -> bool:
    """Whether ``default`` stays against ``chosen``, the cheapest passing schedule: when
    ``chosen`` costs more and ``default`` fails none of its checks (at least one of them
    undecided, since it did not pass). A default that is not among the schedules never
    stays."""
    if default not in schedules.index:
        return False
    costlier = schedules.at[chosen, cost] > schedules.at[default, cost]
    return bool(costlier and not schedules.loc[default, list(checks)].eq(False).any())
