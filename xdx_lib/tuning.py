"""KD's options chosen on the validation split, before any test score is read, and the
session that then serves the whole experiment.

An experiment's ``kd_grid`` names values of KD's weight and temperature
(:data:`~xdx_lib.experiment.TUNABLE`); :func:`tune_kd` trains a KD student for every point
and seed of the grid, keeps the point of highest mean validation accuracy
(:func:`validation_accuracy`) and returns the experiment with those values and no grid
left. :func:`tuned_session` does so with one :class:`~xdx_lib.session.Session` whose data
and teacher then serve the tuned experiment too, and :func:`experiment_session` is how the
runner and the studies take such a pair, or make one. Layer: above the session and the
experiment's config; below the runner.
"""

from __future__ import annotations

import dataclasses
import itertools

import pandas as pd

from . import choices
from .experiment import ExperimentConfig
from .metrics import accuracy
from .session import Session
from .trained import TrainedModel


def validation_accuracy(run: TrainedModel, data) -> float:
    """Accuracy of ``run`` on the validation split of ``data`` (never the test split)."""
    if data.val is None:
        raise ValueError("the data has no validation split; set val_size above 0")
    return accuracy(run.logits(data.val.x), data.val.y)


def validation_by_schedule(runs: dict[str, dict[int, TrainedModel]], data) -> pd.DataFrame:
    """Validation accuracy of each method's student by schedule length (rows: methods,
    columns: epochs), the numbers the students' plateau is judged on
    (:func:`xdx_lib.choices.plateau`); ``runs`` maps method -> epochs -> trained run."""
    return pd.DataFrame({m: {e: validation_accuracy(r, data) for e, r in by.items()}
                         for m, by in runs.items()}).T  # fmt: skip


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
    accuracy (:func:`xdx_lib.choices.highest_mean`, handed the validation column alone).
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
    point, _ = choices.highest_mean({"val": table[["point", "seed", "val_accuracy"]]},
                                    by="point", metric="val_accuracy")  # fmt: skip
    best = grid[int(point)]
    tuned = dataclasses.replace(exp, run={**exp.run, **best}, kd_grid={})
    return tuned, table.drop(columns="point")


def tuned_session(exp: ExperimentConfig, verbose: bool = False,
                  ) -> tuple[ExperimentConfig, Session, pd.DataFrame]:  # fmt: skip
    """KD's options chosen (:func:`tune_kd`), and a session of the tuned experiment's base
    config that keeps the data and the teacher the tuning loaded: ``(tuned experiment,
    session, tuning table)``. Without a grid: the experiment, its session and an empty table.
    """
    session = Session(exp.base, verbose=verbose)
    if not exp.kd_grid:
        return exp, session, pd.DataFrame()
    exp, table = tune_kd(exp, session)
    return exp, Session(exp.base, session.data, session.teacher(), verbose=verbose), table


def experiment_session(exp: ExperimentConfig, session: Session | None = None,
                       verbose: bool = False) -> tuple[ExperimentConfig, Session]:  # fmt: skip
    """``(exp, session)`` ready to train KD's chosen options: :func:`tuned_session`'s when
    ``session`` is None, else the given pair once checked to belong together."""
    if session is None:
        return tuned_session(exp, verbose)[:2]
    if exp.kd_grid or session.cfg != exp.base:
        raise ValueError("the session does not belong to this experiment: pass the tuned "
                         "experiment and the session that tuning.tuned_session returned")
    return exp, session
