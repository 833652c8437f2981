"""KD's options chosen on the validation split, before any test score is read, and the
session that then serves the whole experiment.

An experiment's ``kd_grid`` names values of KD's weight and temperature
(:data:`~xdx_lib.experiments.experiment_config.TUNABLE`); :func:`tune_kd` trains a KD student for
every point and seed of the grid, keeps the point of highest mean validation accuracy
(:func:`validation_accuracy`) and returns the experiment with those values and no grid left.
:func:`tuned_session` does so with one :class:`~xdx_lib.experiments.session.Session` whose data and
teacher then serve the tuned experiment too, and :func:`experiment_session` is how the runner and
the studies take such a pair, or make one. :func:`validation_by_schedule` scores the students the
plateau is judged on (:func:`plateau_methods` names their methods), and
:func:`plateau_table` sets their test accuracy beside, for the reader. Layer:
above the session and the experiment's config; below the runner.
"""

from __future__ import annotations

import dataclasses
import itertools

import pandas as pd

from xdx_lib.analysis import selection
from xdx_lib.distill.method import METHODS
from xdx_lib.experiments.choices import apply_choice, choose_xdistill
from xdx_lib.experiments.experiment_config import ExperimentConfig
from xdx_lib.experiments.session import Session
from xdx_lib.metrics.predictions import accuracy
from xdx_lib.training.trained_model import TrainedModel


def validation_accuracy(run: TrainedModel, data) -> float:
    """Accuracy of ``run`` on the validation split of ``data`` (never the test split)."""
    val = selection.validation_split(data, "a validation accuracy")
    return accuracy(run.logits(val.x), val.y)


#: The runs of a plateau study, as method -> epochs -> seed -> trained run.
PlateauRuns = dict[str, dict[int, dict[int, TrainedModel]]]


def _by_schedule(runs: PlateauRuns, score) -> pd.DataFrame:
    """``score(run)`` of each run, rows ``(method, seed)``, columns epochs."""
    rows: dict[tuple, dict] = {}
    for m, by in runs.items():
        for e, on in by.items():
            for seed, run in on.items():
                rows.setdefault((m, seed), {})[e] = score(run)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["method", "seed"])
    return table


def validation_by_schedule(runs: PlateauRuns, data) -> pd.DataFrame:
    """Validation accuracy of each method's students by schedule length (rows: ``(method,
    seed)``, columns: epochs), the numbers the students' plateau is judged on
    (:func:`xdx_lib.analysis.selection.plateau_check`); ``runs`` maps method -> epochs ->
    seed -> trained run (:func:`plateau_runs`). The table records that it was computed on
    validation (:func:`xdx_lib.analysis.selection.scored_on`)."""
    table = _by_schedule(runs, lambda run: validation_accuracy(run, data))
    return selection.scored_on(table, selection.CHOOSING_SPLIT)


def reported_by_schedule(runs: PlateauRuns) -> pd.DataFrame:
    """The last-epoch test accuracy of the runs :func:`validation_by_schedule` scores, laid
    out alike: for the reader beside the validation numbers, never handed to a chooser."""
    return _by_schedule(runs, lambda run: run.history[-1]["test_acc"])


#: The name of the plateau table's first half (:func:`plateau_table`), the split that judges.
VALIDATION_COLUMN = "validation accuracy (judges the plateau)"
#: The name of the plateau table's second half, the split that only reports.
TEST_COLUMN = "test accuracy (reported only)"


def plateau_table(on_val: pd.DataFrame, runs: PlateauRuns) -> pd.DataFrame:
    """``on_val`` (:func:`validation_by_schedule` of ``runs``) beside the same runs' test
    accuracy (:func:`reported_by_schedule`): rows ``(method, seed)``, columns ``(split,
    epochs)``, the
    validation half (:data:`VALIDATION_COLUMN`) first, the test half (:data:`TEST_COLUMN`)
    after it."""
    halves = {VALIDATION_COLUMN: on_val, TEST_COLUMN: reported_by_schedule(runs)}
    return pd.concat(halves, axis=1).rename_axis(columns=["", "epochs"])


#: The premise's pair, the students every KD chapter checks at their plateau whatever the
#: claims compare.
PLATEAU_PAIR = ("scratch", "kd")


def plateau_methods(exp: ExperimentConfig) -> list[str]:
    """The methods whose students the KD chapter checks at their plateau: scratch and KD
    (:data:`PLATEAU_PAIR`), then every other method of ``exp.claim_methods``, each named as
    the method that trains it (:meth:`~xdx_lib.distill.method.Method.training_name`: ``kd_cae``
    is ``kd``, one student and so one plateau), once each, in that order."""
    names = (METHODS.get(name).training_name() for name in (*PLATEAU_PAIR, *exp.claim_methods))
    return list(dict.fromkeys(names))


def plateau_runs(session: Session, exp: ExperimentConfig, schedules: list[int]) -> PlateauRuns:
    """The students the plateau is judged on: each of :func:`plateau_methods` trained (or
    loaded from the run cache) for each schedule, on each of the experiment's
    ``plateau_seeds`` (seeds no claim reads and no choice was made on, so no run here was
    selected for scoring well on its seed); ``{method: {epochs: {seed: run}}}``, for
    :func:`validation_by_schedule`."""
    return {m: {e: {s: session.student(method=m, seed=s, student_epochs=e)
                    for s in exp.plateau_seeds} for e in schedules}
            for m in plateau_methods(exp)}  # fmt: skip


def kd_grid_points(exp: ExperimentConfig) -> list[dict]:
    """Every point of ``exp.kd_grid`` as ``{option: value}``, in the grid's order (none
    without a grid)."""
    if not exp.kd_grid:
        return []
    return [dict(zip(exp.kd_grid, values))
            for values in itertools.product(*exp.kd_grid.values())]  # fmt: skip


def tune_kd(exp: ExperimentConfig,
            session: Session | None = None) -> tuple[ExperimentConfig, pd.DataFrame]:
    """Choose KD's weight and temperature on the validation split, before any test score.

    Trains (or loads) a KD student for every point of ``exp.kd_grid`` and every seed of
    ``exp.tune_seeds`` (seeds no claim reads, checked when the experiment is loaded),
    scores each on the validation split, and keeps the point of highest mean validation
    accuracy (:func:`xdx_lib.analysis.selection.highest_mean`, handed the validation column alone).
    Returns the experiment with those values in its ``run`` (and no grid left, so tuning it
    again is a no-op) and the table of every point and seed (``val_accuracy``, and the
    ``test_accuracy`` that played no part in the choice, for the reader). An experiment
    without a grid comes back unchanged, with an empty table.
    ``session``: one of ``exp.base`` already made (its data and teacher are reused).
    """
    if not exp.kd_grid:
        return exp, pd.DataFrame()
    session = session or Session(exp.base)
    grid = kd_grid_points(exp)
    rows = []
    for i, point in enumerate(grid):
        for seed in exp.tune_seeds:
            run = session.student(method="kd", seed=seed, **point)
            rows.append({"point": i, **point, "seed": seed,
                         "val_accuracy": validation_accuracy(run, session.data),
                         "test_accuracy": run.history[-1]["test_acc"]})  # fmt: skip
    table = pd.DataFrame(rows)
    on_val = selection.scored_on(table[["point", "seed", "val_accuracy"]], "val")  # just scored
    point, _ = selection.highest_mean({"val": on_val}, by="point", metric="val_accuracy")
    best = grid[int(point)]
    tuned = dataclasses.replace(exp, run={**exp.run, **best}, kd_grid={})
    return tuned, table.drop(columns="point")


def grid_spread(table: pd.DataFrame) -> pd.DataFrame:
    """How stable the grid's choice is over the tune seeds: one row per point of a
    :func:`tune_kd` table, its validation accuracy on each seed, their mean and standard
    deviation (NaN with one seed), and the mean test accuracy, reported only.

    Rows keep the grid's order; columns ``val s<seed>``..., ``val mean``, ``val sd``,
    ``test mean (reported only)``.
    """
    points = [c for c in table.columns if c not in ("seed", "val_accuracy", "test_accuracy")]
    by_seed = table.pivot_table(index=points, columns="seed", values="val_accuracy", sort=False)
    by_seed.columns = [f"val s{s}" for s in by_seed.columns]
    grouped = table.groupby(points, sort=False)
    by_seed["val mean"] = grouped["val_accuracy"].mean()
    by_seed["val sd"] = grouped["val_accuracy"].std()
    by_seed["test mean (reported only)"] = grouped["test_accuracy"].mean()
    return by_seed


def tuned_session(exp: ExperimentConfig, verbose: bool = False,
                  ) -> tuple[ExperimentConfig, Session, pd.DataFrame]:  # fmt: skip
    """The experiment's choices made on validation, in order, and a session of the tuned
    experiment's base config that keeps the data and the teacher they loaded: ``(tuned
    experiment, session, KD's tuning table)``.

    First KD's weight and temperature (:func:`tune_kd`; without a grid, an empty table),
    then, with ``xdistill_seeds``, XDistillation's options
    (:func:`~xdx_lib.experiments.choices.choose_xdistill`, with KD's chosen values): what
    it picks is written into the experiment's ``run``
    (:func:`~xdx_lib.experiments.choices.apply_choice`), so every claim runs it, and the
    choice with its evidence is the experiment's ``xdistill_choice``.
    """
    session = Session(exp.base, verbose=verbose)
    table = pd.DataFrame()
    if exp.kd_grid:
        exp, table = tune_kd(exp, session)
        session = Session(exp.base, session.data, session.teacher(), verbose=verbose)
    if exp.xdistill_seeds and exp.xdistill_choice is None:  # not yet chosen
        choice = choose_xdistill(session, exp.xdistill_seeds)
        exp = dataclasses.replace(apply_choice(exp, choice), xdistill_choice=choice)
        session = Session(exp.base, session.data, session.teacher(), verbose=verbose)
    return exp, session, table


def experiment_session(exp: ExperimentConfig, session: Session | None = None,
                       verbose: bool = False) -> tuple[ExperimentConfig, Session]:  # fmt: skip
    """``(exp, session)`` ready to train KD's chosen options: :func:`tuned_session`'s when
    ``session`` is None, else the given pair once checked to belong together."""
    if session is None:
        return tuned_session(exp, verbose)[:2]
    if exp.kd_grid or (exp.xdistill_seeds and exp.xdistill_choice is None) \
            or session.cfg != exp.base:
        raise ValueError("the session does not belong to this experiment: pass the tuned "
                         "experiment and the session that tuning.tuned_session returned")
    return exp, session
