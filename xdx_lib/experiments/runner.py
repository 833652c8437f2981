"""The experiment runner: every run an experiment names is trained (or read from the
cache), evaluated, and written as one result file.

:func:`run_specs` lists every run of an
:class:`~xdx_lib.experiments.experiment_config.ExperimentConfig`
(:class:`RunSpec`: the teacher, as a :class:`TeacherSpec`, and the students);
:func:`run_experiment` chooses KD's options first (:mod:`xdx_lib.experiments.tuning`), trains what
is missing through a :class:`~xdx_lib.experiments.session.Session`, scores it with
:mod:`xdx_lib.evaluation.scoring` and writes ``runs/<name>/results/<label>.json`` atomically, with
:func:`provenance`. The chapters and ``python -m xdx_lib experiment`` read those results;
:mod:`xdx_lib.analysis.stats`, :mod:`xdx_lib.analysis.claims` and :mod:`xdx_lib.report.tables` turn
them into numbers, verdicts and tables, and :mod:`xdx_lib.experiments.studies` scores what the
result files do not hold. Layer: above the evaluation, the session and the tuning (only the studies,
the statistics, claims and tables, plots, notebooks and command line sit above it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xdx_lib.core import layout
from xdx_lib.core.cache import atomic_write_json, read_result, runs_dir
from xdx_lib.core.config import RunConfig
from xdx_lib.core.devices import is_rank_zero, rank_zero_first, resolve_device
from xdx_lib.core.kinds import RunGroup, StrEnum
from xdx_lib.evaluation.scoring import (
    CLAIM_SIMILARITIES,
    evaluate_model,
    localisation_scores,
    reference_scores,
)
from xdx_lib.experiments.experiment_config import ExperimentConfig, preflight, shapes_changes
from xdx_lib.experiments.session import Session
from xdx_lib.experiments.tuning import experiment_session
from xdx_lib.training.precision import precision_name, resolve_precision
from xdx_lib.training.trained_model import TrainedModel


def provenance(device: str = "auto", amp: str = "auto") -> dict:
    """Where a result comes from: git commit, library versions, device, the precision
    ``amp`` computes in there (:func:`~xdx_lib.training.precision.resolve_precision`), host,
    time.

    The commit is the project's own: it is read only when the folder holding ``xdx_lib/``
    is the top of its git work tree (a copy of the project inside another repository, or
    an installed package, records ``"unknown"``, not that repository's commit). The
    version of ``xdx`` is the installed one, else the source's ``xdx_lib.__version__``.
    """
    import datetime
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    import torch

    import xdx_lib

    root = Path(__file__).resolve().parents[2]  # xdx_lib/experiments/runner.py

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return ""

    top = git("rev-parse", "--show-toplevel")
    commit = "unknown"
    if top and Path(top).resolve() == root:
        commit = git("rev-parse", "HEAD") or "unknown"
    versions = {}
    for pkg in ("xdx", "torch", "torchvision", "captum", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = xdx_lib.__version__ if pkg == "xdx" else None
    return {
        "git_commit": commit,
        "versions": versions,
        "python": platform.python_version(),
        "device": str(resolve_device(device)),
        "precision": precision_name(resolve_precision(amp, resolve_device(device))),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def result_path(exp: ExperimentConfig, label: str) -> Path:
    """Where the result ``label`` of ``exp`` is stored: ``runs/<name>/results/<label>.json``."""
    return layout.result_path(exp.name, label)


#: The ``method`` of a teacher's result: the name of its row in the tables.
TEACHER = "teacher"


class Scoring(StrEnum):
    """How a run is scored: ``full`` (every metric), ``light`` (what the claims and the
    sweeps read) or ``shapes`` (localisation on generated shapes)."""

    FULL = "full"
    LIGHT = "light"
    SHAPES = "shapes"


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: what to train, how to score it, and where it is stored.

    A spec trains a student of the session's config with its ``changes``
    (:meth:`trained`); a :class:`TeacherSpec` the session's teacher. Both are scored and
    stored alike.

    Attributes:
        label: the result file's name (``kd-s0``, ``claims-kd-s3``, ``shapes-teacher``, ...).
        group: ``teacher``, ``main``, ``claims``, ``sweep`` or ``shapes``.
        method: the method (:data:`TEACHER` for a teacher).
        seed: the student's seed (the teacher's for a teacher).
        scoring: ``full`` (every metric), ``light`` (what the claims and sweeps read) or
            ``shapes`` (localisation on generated shapes).
        changes: config changes from the experiment's base (method, seed, sweep value,
            dataset).
        extra: more fields of the result (a sweep's option and value).
        references: score the image-blind reference maps on this run's session after it
            (the experiment's own teacher; :func:`run_experiment`).
    """

    label: str
    group: RunGroup
    method: str
    seed: int
    scoring: Scoring
    changes: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    references: bool = False

    @property
    def dataset(self) -> str | None:
        """The dataset this run is on, when it is not the experiment's own."""
        return self.changes.get("dataset")

    def trained(self, session: Session) -> tuple[TrainedModel, RunConfig]:
        """The run, trained or loaded through ``session``, and the config it was made with.
        ``session``'s verbosity is left alone: a student trains without per-epoch lines."""
        return (session.student(verbose=False, **self.changes),
                session.config(**self.changes))  # fmt: skip


@dataclass(frozen=True)
class TeacherSpec(RunSpec):
    """The session's teacher as a run of its own: trained or loaded (:meth:`trained`),
    then scored and stored as any student."""

    def trained(self, session: Session) -> tuple[TrainedModel, RunConfig]:
        """The session's teacher and its config (``changes`` chose the session)."""
        return session.teacher(), session.cfg


def run_specs(exp: ExperimentConfig) -> list[RunSpec]:
    """Every run ``exp`` names, in the order they are trained: the teacher, T1's methods on
    every seed, the claims' methods on every seed, the sweeps, the localisation runs."""
    base = exp.base
    specs = [TeacherSpec("teacher", RunGroup.TEACHER, TEACHER, base.teacher_seed, Scoring.FULL,
                         references=True)]  # fmt: skip
    for seed in exp.seeds:
        for m in exp.methods:
            specs.append(RunSpec(f"{m}-s{seed}", RunGroup.MAIN, m, seed, Scoring.FULL,
                                 {"method": m, "seed": seed}))  # fmt: skip
    for seed in exp.seeds + exp.claim_seeds:
        for m in exp.claim_methods:
            specs.append(RunSpec(f"claims-{m}-s{seed}", RunGroup.CLAIMS, m, seed, Scoring.LIGHT,
                                 {"method": m, "seed": seed}))  # fmt: skip
    for option, values in exp.sweeps.items():
        for value in values:
            for seed in exp.sweep_seeds:
                specs.append(RunSpec(f"sweep-{option}={value}-s{seed}", RunGroup.SWEEP,
                                     "xdistill", seed, Scoring.LIGHT,
                                     {"method": "xdistill", "seed": seed, option: value},
                                     {"option": option, "value": value}))  # fmt: skip
    if exp.localisation_methods:
        shapes = shapes_changes(base)
        specs.append(TeacherSpec("shapes-teacher", RunGroup.SHAPES, TEACHER, 0, Scoring.SHAPES,
                                 shapes))
        for seed in exp.shapes_seeds:
            for m in exp.localisation_methods:
                changes = {**shapes, "method": m, "seed": seed}
                specs.append(RunSpec(f"shapes-{m}-s{seed}", RunGroup.SHAPES, m, seed,
                                     Scoring.SHAPES, changes))  # fmt: skip
    return specs


def _scorers(exp: ExperimentConfig) -> dict[Scoring, tuple[Callable, dict]]:
    """For each kind of scoring: ``(score(run, session), what its result key holds)``."""

    def full(run: TrainedModel, s: Session) -> dict:
        return evaluate_model(run, s.teacher(), s.data, exp.explainers, exp.n_slow, exp.n_faithful)

    def light(run: TrainedModel, s: Session) -> dict:  # what the claims and T4 read
        return evaluate_model(run, s.teacher(), s.data, ("gradcam",), exp.n_slow, n_faithful=0,
                              similarities=CLAIM_SIMILARITIES)  # fmt: skip

    def shapes(run: TrainedModel, s: Session) -> dict:
        return localisation_scores(run, s.data)

    full_key = layout.scorer_settings({"explainers": exp.explainers, "n_slow": exp.n_slow,
                                       "n_faithful": exp.n_faithful})  # fmt: skip
    light_key = layout.scorer_settings({"explainers": ["gradcam"], "n_faithful": 0,
                                        "similarities": CLAIM_SIMILARITIES})  # fmt: skip
    return {Scoring.FULL: (full, full_key), Scoring.LIGHT: (light, light_key),
            Scoring.SHAPES: (shapes, full_key)}


def _reference_results(exp: ExperimentConfig, session: Session) -> list[dict]:
    """What the image-blind reference maps score (stored once in ``references.json``)."""
    path = result_path(exp, "references")
    key = layout.references_key(session.teacher().key)
    with rank_zero_first():  # under torchrun rank 0 scores and writes, the others read
        refs = read_result(path, key)
        if refs is None:
            refs = {"label": "references", "key": key, "group": RunGroup.REFERENCE.value,
                    "references": reference_scores(session.teacher(), session.data),
                    "provenance": provenance(session.cfg.device, session.cfg.amp)}  # fmt: skip
            atomic_write_json(refs, path)
    return [{"label": f"reference: {name}", "group": RunGroup.REFERENCE.value, "method": name,
             "seed": None, "metrics": metrics} for name, metrics in refs["references"].items()]


def _run_one(exp: ExperimentConfig, spec: RunSpec, session: Session, scorers: dict,
             verbose: bool) -> dict:  # fmt: skip
    """Train or load ``spec``'s model, then read its result file or score it and write one.

    Under ``torchrun`` every rank trains (DDP); rank 0 alone scores and writes the result,
    and the other ranks read it once it is there.
    """
    t0 = time.perf_counter()
    run, cfg = spec.trained(session)
    score, settings = scorers[spec.scoring]
    attached = run.method.attached_key  # kd_cae's CAE, which its (kd's) key leaves out
    key = layout.result_key(run.key, session.teacher().key, settings, attached)
    path = result_path(exp, spec.label)
    with rank_zero_first():
        cached = read_result(path, key)
        if cached is not None:
            return cached
        metrics = score(run, session)
        result = {"label": spec.label, "key": key, "method": spec.method, "seed": spec.seed,
                  "group": RunGroup(spec.group).value, **spec.extra, "metrics": metrics,
                  "config": cfg.to_dict(), "history": run.history,
                  "checkpoint": str(run.path.relative_to(runs_dir())),
                  "seconds": time.perf_counter() - t0,
                  "provenance": provenance(cfg.device, cfg.amp)}  # fmt: skip
        atomic_write_json(result, path)
    if verbose and is_rank_zero():
        shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in list(metrics)[:3])
        print(f"{spec.label}: {shown}")
    return result


def run_experiment(exp: ExperimentConfig, verbose: bool = True,
                   session: Session | None = None) -> list[dict]:  # fmt: skip
    """Train what is missing, evaluate it, and return one result dict per run.

    Each result is written atomically to ``runs/<name>/results/<label>.json`` with its
    config, metrics, per-epoch history and provenance; a result whose key (the run's cache
    key plus the evaluation settings) matches is read back instead of recomputed, so a
    killed experiment resumes where it stopped and a finished one costs only reading.

    The runs are those of :func:`~xdx_lib.experiments.runner.run_specs`; the claims' and the sweeps'
    are scored lightly (accuracy, agreement, Grad-CAM and CAE similarity; no T2, no faithfulness).
    After the teacher come one ``reference: <name>`` result per image-blind reference map (group
    ``reference``, stored together in ``references.json``).

    ``session``: the one :func:`~xdx_lib.experiments.tuning.tuned_session` returned with ``exp``,
    whose data and teacher are then used instead of loaded again; None: KD's options are chosen
    here. The session's teacher trains (if it must) as the session says, printing or not; every
    other run trains without per-epoch lines, and the session is left as it was.
    """
    preflight(exp)
    exp, session = experiment_session(exp, session, verbose)
    session.teacher()  # trained first, with its progress shown
    sessions = {None: session}
    scorers = _scorers(exp)
    results: list[dict] = []
    for spec in run_specs(exp):
        if spec.dataset not in sessions:
            shifted = dataclasses.replace(exp.base, **shapes_changes(exp.base))
            sessions[spec.dataset] = Session(shifted, verbose=False)
        session = sessions[spec.dataset]
        results.append(_run_one(exp, spec, session, scorers, verbose))
        if spec.references:
            results.extend(_reference_results(exp, session))
    return results
