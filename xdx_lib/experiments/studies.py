"""Studies of an experiment's students beyond its result files: how far chance explains
the spread between seeds, and what XDistillation students take from their maps.

Each function trains (or loads, from the run cache) the students it needs through a
:class:`~xdx_lib.experiments.session.Session` and scores them: :func:`seed_spread_table` for the
results chapter's spread between seeds, :func:`intervention_rows` for the
map interventions (:mod:`xdx_lib.evaluation.interventions`, cached beside each student). Under
``torchrun`` every rank trains, rank 0 alone scores. Layer: above the runner, whose result
files they read.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from xdx_lib.core import layout
from xdx_lib.core.cache import atomic_write_json, read_result
from xdx_lib.core.devices import on_rank_zero, rank_zero_first
from xdx_lib.evaluation.interventions import INTERVENTIONS, map_interventions
from xdx_lib.evaluation.scoring import predicted_classes
from xdx_lib.experiments.experiment_config import ExperimentConfig
from xdx_lib.experiments.session import Session
from xdx_lib.experiments.tuning import experiment_session
from xdx_lib.metrics.predictions import flip_spread
from xdx_lib.training.trained_model import TrainedModel


def seed_spread_table(exp: ExperimentConfig, session: Session | None = None) -> list[dict]:
    """For each method the claims compare, on all its seeds: how far independent per-image
    flips explain the spread of its accuracy and agreement between seeds
    (:func:`~xdx_lib.metrics.predictions.flip_spread` of the per-image right/wrong, or
    same-as-the-teacher, matrix on the test split). One row per method and quantity; the
    students come from the run cache (run :func:`~xdx_lib.experiments.runner.run_experiment` first,
    or
    they train).

    Under ``torchrun`` every rank trains (or loads) the students, rank 0 alone scores them,
    and every rank returns its rows (:func:`~xdx_lib.core.devices.on_rank_zero`). ``session``: as
    in :func:`~xdx_lib.experiments.runner.run_experiment`.
    """
    exp, session = experiment_session(exp, session)  # the students of KD's chosen options
    students = {}
    for method in exp.claim_methods or exp.methods:
        seeds = exp.seeds + (exp.claim_seeds if method in exp.claim_methods else [])
        if len(seeds) >= 2:
            students[method] = [session.student(method=method, seed=s) for s in seeds]
    teacher = session.teacher()

    def rows() -> list[dict]:
        y = session.data.test.y.cpu()
        t_pred = predicted_classes(teacher, session.data)
        out = []
        for method, runs in students.items():
            preds = torch.stack([predicted_classes(run, session.data) for run in runs])
            for quantity, right in (("accuracy", preds == y), ("agreement", preds == t_pred)):
                out.append({"method": method, "quantity": quantity, "seeds": len(runs),
                            **flip_spread(right.float())})  # fmt: skip
        return out

    return on_rank_zero(rows)


def intervention_rows(session: Session, seeds: Iterable[int], **changes) -> list[dict]:
    """What XDistillation students take from their maps, one row per seed and intervention.

    Each seed's student (the session's config with ``method: xdistill``, then ``changes``,
    then the seed; trained or loaded) is scored by
    :func:`~xdx_lib.evaluation.interventions.map_interventions`.
    Rows hold ``seed``, ``intervention``, ``accuracy`` and ``agreement``, in the order of
    ``seeds`` and :data:`~xdx_lib.evaluation.interventions.INTERVENTIONS`, ready for
    :func:`xdx_lib.analysis.stats.intervention_table`. The scores of a student are cached beside
    its checkpoint (``interventions.json``, keyed by its cache key and the teacher's), so a
    second call only reads.
    """
    rows = []
    for seed in seeds:
        run = session.student(**{"method": "xdistill", **changes, "seed": seed})
        scores = _intervention_scores(run, session)
        rows += [{"seed": seed, "intervention": name, **scores[name]} for name in INTERVENTIONS]
    return rows


def _intervention_scores(run: TrainedModel, session: Session) -> dict[str, dict[str, float]]:
    """One student's :func:`~xdx_lib.evaluation.interventions.map_interventions`, read from
    beside its checkpoint when there, else computed and written atomically (by rank 0 first).

    ``format`` in the key names how the maps are made (3: every replacement matched to the
    CAE's per-image moments, :func:`~xdx_lib.evaluation.interventions.match_moments`, and the
    teacher's map of another class among them); a file of another format is scored again."""
    path = layout.interventions_path(run.path)
    key = layout.interventions_key(run.key, session.teacher().key, INTERVENTIONS)
    with rank_zero_first():
        cached = read_result(path, key)
        if cached is None:
            cached = {"key": key, "scores": map_interventions(run, session.teacher(), session.data)}
            atomic_write_json(cached, path)
    return cached["scores"]
