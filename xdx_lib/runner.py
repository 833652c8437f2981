"""The experiment runner: one YAML names methods, seeds, explainers and sweeps; every run is
trained (or read from the cache), evaluated, and written as one result file.

:func:`load_experiment` validates an :class:`ExperimentConfig`; :func:`run_specs` lists
every run it names (:class:`RunSpec`); :func:`run_experiment` trains what is missing through
a :class:`~xdx_lib.session.Session`, scores it with :mod:`xdx_lib.evaluation` and writes
``runs/<name>/results/<label>.json`` atomically, with :func:`provenance`. The chapters and
``python -m xdx_lib experiment`` read those results; :mod:`xdx_lib.report` turns them into
tables and verdicts. :func:`intervention_rows` scores what XDistillation students take from
their maps (cached beside each student). Layer: the top of the library
(only the report, plots, notebooks and command line sit above it).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from .cache import atomic_write_json, check_writable, hash_dict, runs_dir
from .config import ConfigError, RunConfig, config_from_dict, read_yaml_mapping
from .data import check_data_root
from .evaluation import (
    LIGHT,
    evaluate_model,
    localisation_scores,
    predicted_classes,
    reference_scores,
)
from .explain import EXPLAINERS
from .methods import METHODS
from .metrics import accuracy, flip_spread
from .session import Session
from .train import is_rank_zero, on_rank_zero, rank_zero_first, resolve_device
from .trained import TrainedModel
from .xdistill import INTERVENTIONS, map_interventions

# ----------------------------------------------------------------------------- experiments


@dataclass
class ExperimentConfig:
    """One reproduction: the methods, seeds, explainers and sweeps run on one setting.

    Loaded from YAML (:func:`load_experiment`); ``run`` holds the
    :class:`~xdx_lib.config.RunConfig` fields shared by every run (dataset, profile,
    models, schedule, method options).

    Attributes:
        name: the experiment's name; its results go to ``runs/<name>/``.
        run: shared RunConfig fields.
        methods: the methods compared (T1).
        seeds: student seeds; every method runs on every seed (paired comparisons).
        explainers: explainers under which explanations are compared with the teacher's
            (T2); the first is the one reported in T1.
        n_slow: test images for the slow explainers (all but gradcam and saliency).
        n_faithful: test images for deletion and insertion AUC.
        sweeps: XDistillation option -> values, each run with ``sweep_seeds`` (T4).
        sweep_seeds: seeds of the sweep runs.
        localisation_methods: methods also trained on generated ``shapes`` and scored by
            pointing game and relevance mass (empty: skip).
        localisation_seeds: the seeds of those runs (empty: ``seeds``).
        claim_methods: the methods the claims compare (C1-C3: scratch, kd, xdistill), run
            on ``seeds`` and ``claim_seeds`` and scored only on what the claims read
            (accuracy, agreement, Grad-CAM and deployed-explanation similarity; group
            ``claims``), so that the claims' intervals get the power of more seeds for a
            fraction of the cost of every metric on every method (empty: skip).
        claim_seeds: the extra seeds of ``claim_methods``.
        kd_grid: KD's options to choose on the validation split (``alpha``,
            ``temperature``: lists of values), before anything else runs
            (:func:`tune_kd`); the chosen values then serve every method with a KD term
            (empty: the run's values are used as given).
        tune_seeds: the seeds each point of ``kd_grid`` is trained with.
    """

    name: str = "experiment"
    run: dict = field(default_factory=dict)
    methods: list = field(default_factory=lambda: ["scratch", "kd", "at", "e2kd", "xdistill"])
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    explainers: list = field(default_factory=lambda: ["gradcam", "saliency"])
    n_slow: int = 128
    n_faithful: int = 128
    sweeps: dict = field(default_factory=dict)
    sweep_seeds: list = field(default_factory=lambda: [0])
    localisation_methods: list = field(default_factory=list)
    localisation_seeds: list = field(default_factory=list)
    claim_methods: list = field(default_factory=list)
    claim_seeds: list = field(default_factory=list)
    kd_grid: dict = field(default_factory=dict)
    tune_seeds: list = field(default_factory=lambda: [0])

    def __post_init__(self) -> None:
        validate_experiment(self)

    @property
    def base(self) -> RunConfig:
        """The validated, profile-resolved RunConfig shared by every run."""
        return config_from_dict(self.run).resolved()

    @property
    def shapes_seeds(self) -> list:
        """The localisation runs' seeds, ``localisation_seeds`` or else ``seeds``."""
        return self.localisation_seeds or self.seeds

    @property
    def sweepable(self) -> tuple[str, ...]:
        """XDistillation's own config fields, the options a sweep may vary."""
        return METHODS.get("xdistill").option_names()


#: The type of each experiment field (bool is never an int).
_KINDS = {"name": str, "run": dict, "methods": list, "seeds": list, "explainers": list,
          "n_slow": int, "n_faithful": int, "sweeps": dict, "sweep_seeds": list,
          "localisation_methods": list, "localisation_seeds": list, "claim_methods": list,
          "claim_seeds": list, "kd_grid": dict, "tune_seeds": list}  # fmt: skip


def _unique(what: str, values: list) -> None:
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{what}={values!r} repeats {', '.join(repeated)}; give each once")


def validate_experiment(exp: ExperimentConfig) -> None:
    """Every check the real run relies on, as one ConfigError line (no data, no training).

    First the experiment's own fields (:func:`_check_fields`), then each RunConfig
    :func:`run_experiment` will build (:func:`_check_runs`: every method and seed, every
    sweep value, the shapes runs), so a config that passes cannot fail later on its values.
    """
    _check_fields(exp)
    try:
        base = config_from_dict(exp.run).resolved()
    except ConfigError as e:
        raise ConfigError(f"run: {e}") from None
    _check_runs(exp, base)


def _check_fields(exp: ExperimentConfig) -> None:
    """Types, the name, empty and repeated lists, known methods, seeds and explainers."""
    for key, kind in _KINDS.items():
        value = getattr(exp, key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} should be a {kind.__name__}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", exp.name):
        raise ConfigError(
            f"name={exp.name!r} is not a plain file name (its results go to runs/<name>/); "
            "use letters, digits, '-', '_' and '.', starting with a letter or digit"
        )
    for key in ("methods", "seeds", "explainers"):
        if not getattr(exp, key):
            raise ConfigError(f"{key} is empty; name at least one")
    for key in ("methods", "seeds", "explainers", "sweep_seeds", "localisation_methods",
                "localisation_seeds", "claim_methods"):  # fmt: skip
        _unique(key, getattr(exp, key))
    _unique("seeds + claim_seeds", exp.seeds + exp.claim_seeds)
    if exp.claim_seeds and not exp.claim_methods:
        raise ConfigError("claim_seeds are given but claim_methods is empty; name the methods")
    for m in exp.methods + exp.localisation_methods + exp.claim_methods:
        if m not in METHODS:
            raise ConfigError(f"method {m!r} is unknown; choose from "
                              f"{', '.join(METHODS.names())}")  # fmt: skip
    for s in exp.seeds + exp.sweep_seeds + exp.claim_seeds + exp.localisation_seeds:
        if not isinstance(s, int) or isinstance(s, bool):
            raise ConfigError(f"seed {s!r} should be an int")
    for e in exp.explainers:
        if e not in EXPLAINERS:
            raise ConfigError(f"explainer {e!r} is unknown; choose from "
                              f"{', '.join(EXPLAINERS.names())}")  # fmt: skip
    if exp.n_slow < 1 or exp.n_faithful < 1:
        raise ConfigError("n_slow and n_faithful must be at least 1")
    if exp.sweeps and not exp.sweep_seeds:
        raise ConfigError("sweep_seeds is empty; name at least one seed for the sweeps")


def _check_runs(exp: ExperimentConfig, base: RunConfig) -> None:
    """Build every RunConfig the experiment will run; the first bad one is the error."""

    def build(where: str, **changes) -> None:
        try:
            dataclasses.replace(base, **changes)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    for method in exp.methods:
        for seed in exp.seeds:
            build(f"method {method}, seed {seed}", method=method, seed=seed)
    for method in exp.claim_methods:
        for seed in exp.claim_seeds:
            build(f"claims: method {method}, seed {seed}", method=method, seed=seed)
    for option, v in _option_values("sweeps", exp.sweeps, exp.sweepable,
                                    "swept (sweeps vary XDistillation's options)"):  # fmt: skip
        for seed in exp.sweep_seeds:
            build(f"sweeps.{option}", method="xdistill", seed=seed, **{option: v})
    if exp.kd_grid:
        _check_grid(exp, base)
        for option, v in _option_values("kd_grid", exp.kd_grid, TUNABLE, "tuned"):
            build(f"kd_grid.{option}", method="kd", **{option: v})
    if exp.localisation_methods:
        build("localisation", **shapes_changes(base))
        for method in exp.localisation_methods:
            for seed in exp.shapes_seeds:
                build(f"localisation {method}, seed {seed}", **shapes_changes(base),
                      method=method, seed=seed)  # fmt: skip


#: The options ``kd_grid`` may vary: KD's own.
TUNABLE = ("alpha", "temperature")


def _option_values(field: str, options: dict, allowed, reason: str):
    """Each ``(option, value)`` of ``field`` (``sweeps``, ``kd_grid``), once every option
    is checked to be allowed and to hold a list of one or more distinct values."""
    for option, values in options.items():
        if option not in allowed:
            raise ConfigError(f"{field}.{option} cannot be {reason}; choose from "
                              f"{', '.join(allowed)}")  # fmt: skip
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{field}.{option} should be a list of one or more values")
        _unique(f"{field}.{option}", values)
    return [(option, v) for option, values in options.items() for v in values]


def _check_grid(exp: ExperimentConfig, base: RunConfig) -> None:
    """``kd_grid`` has a validation split to choose on and seeds to train with."""
    if not base.val_size:
        raise ConfigError("kd_grid needs a validation split to choose on; set run.val_size "
                          "above 0 (or remove kd_grid)")  # fmt: skip
    if not exp.tune_seeds:
        raise ConfigError("tune_seeds is empty; name at least one seed for kd_grid")
    _unique("tune_seeds", exp.tune_seeds)


def shapes_changes(base: RunConfig) -> dict:
    """The config changes of the localisation runs: generated ``shapes``, with no validation
    split and the teacher on the students' images (the experiment's Fashion-MNIST sizes
    would not fit the generated set)."""
    if base.dataset == "shapes":  # the experiment's own runs already are
        return {"dataset": "shapes"}
    return {"dataset": "shapes", "val_size": 0, "teacher_subset": base.train_subset}


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML; every bad field is one clear ConfigError."""
    path = Path(path)
    d = read_yaml_mapping(path, "experiment config")
    for key in d:
        if key not in _KINDS:
            raise ConfigError(f"{path.name}: unknown field {key!r}; known: {', '.join(_KINDS)}")
    try:
        return ExperimentConfig(**d)
    except ConfigError as e:
        raise ConfigError(f"{path.name}: {e}") from None


def preflight(exp: ExperimentConfig) -> None:
    """What the run needs beyond valid values, checked before anything is trained or
    written: the device exists, the data root exists (or may be downloaded), the runs
    folder is writable. ``experiment --check`` runs it too."""
    base = exp.base
    resolve_device(base.device)
    check_data_root(base.dataset, base.data_root, base.download)
    check_writable(runs_dir())


def provenance(device: str = "auto") -> dict:
    """Where a result comes from: git commit, library versions, device, host, time.

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

    root = Path(__file__).resolve().parents[1]

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
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _result_path(exp: ExperimentConfig, label: str) -> Path:
    return runs_dir() / exp.name / "results" / f"{label}.json"


def _cached_result(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: recompute and overwrite
    return result if result.get("key") == key else None


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: what to train, how to score it, and where it is stored.

    Attributes:
        label: the result file's name (``kd-s0``, ``claims-kd-s3``, ``shapes-teacher``, ...).
        group: ``teacher``, ``main``, ``claims``, ``sweep`` or ``shapes``.
        method: the method (``teacher`` for a teacher).
        seed: the student's seed (the teacher's for a teacher).
        scoring: ``full`` (every metric), ``light`` (what the claims and sweeps read) or
            ``shapes`` (localisation on generated shapes).
        changes: config changes from the experiment's base (method, seed, sweep value,
            dataset).
        extra: more fields of the result (a sweep's option and value).
    """

    label: str
    group: str
    method: str
    seed: int
    scoring: str
    changes: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def is_teacher(self) -> bool:
        return self.method == "teacher"

    @property
    def dataset(self) -> str | None:
        """The dataset this run is on, when it is not the experiment's own."""
        return self.changes.get("dataset")


def run_specs(exp: ExperimentConfig) -> list[RunSpec]:
    """Every run ``exp`` names, in the order they are trained: the teacher, T1's methods on
    every seed, the claims' methods on every seed, the sweeps, the localisation runs."""
    base = exp.base
    specs = [RunSpec("teacher", "teacher", "teacher", base.teacher_seed, "full")]
    for seed in exp.seeds:
        for m in exp.methods:
            specs.append(RunSpec(f"{m}-s{seed}", "main", m, seed, "full",
                                 {"method": m, "seed": seed}))  # fmt: skip
    for seed in exp.seeds + exp.claim_seeds:
        for m in exp.claim_methods:
            specs.append(RunSpec(f"claims-{m}-s{seed}", "claims", m, seed, "light",
                                 {"method": m, "seed": seed}))  # fmt: skip
    for option, values in exp.sweeps.items():
        for value in values:
            for seed in exp.sweep_seeds:
                specs.append(RunSpec(f"sweep-{option}={value}-s{seed}", "sweep", "xdistill",
                                     seed, "light",
                                     {"method": "xdistill", "seed": seed, option: value},
                                     {"option": option, "value": value}))  # fmt: skip
    if exp.localisation_methods:
        shapes = shapes_changes(base)
        specs.append(RunSpec("shapes-teacher", "shapes", "teacher", 0, "shapes", shapes))
        for seed in exp.shapes_seeds:
            for m in exp.localisation_methods:
                specs.append(RunSpec(f"shapes-{m}-s{seed}", "shapes", m, seed, "shapes",
                                     {**shapes, "method": m, "seed": seed}))  # fmt: skip
    return specs


def _scorers(exp: ExperimentConfig) -> dict[str, tuple[Callable, dict]]:
    """For each kind of scoring: ``(score(run, session), what its result key holds)``."""

    def full(run: TrainedModel, s: Session) -> dict:
        return evaluate_model(run, s.teacher, s.data, exp.explainers, exp.n_slow, exp.n_faithful)

    def light(run: TrainedModel, s: Session) -> dict:  # what the claims and T4 read
        return evaluate_model(run, s.teacher, s.data, ("gradcam",), exp.n_slow, n_faithful=0,
                              similarities=LIGHT)  # fmt: skip

    def shapes(run: TrainedModel, s: Session) -> dict:
        return localisation_scores(run, s.data)

    full_key = {"explainers": exp.explainers, "n_slow": exp.n_slow,
                "n_faithful": exp.n_faithful, "format": 1}  # fmt: skip
    light_key = {"explainers": ["gradcam"], "n_faithful": 0, "similarities": LIGHT,
                 "format": 1}  # fmt: skip
    return {"full": (full, full_key), "light": (light, light_key), "shapes": (shapes, full_key)}


def _reference_results(exp: ExperimentConfig, session: Session) -> list[dict]:
    """What the image-blind reference maps score (stored once in ``references.json``)."""
    path = _result_path(exp, "references")
    key = hash_dict({"teacher": session.teacher.key, "kind": "references", "format": 1})
    with rank_zero_first():  # under torchrun rank 0 scores and writes, the others read
        refs = _cached_result(path, key)
        if refs is None:
            refs = {"label": "references", "key": key, "group": "reference",
                    "references": reference_scores(session.teacher, session.data),
                    "provenance": provenance(session.cfg.device)}  # fmt: skip
            atomic_write_json(refs, path)
    return [{"label": f"reference: {name}", "group": "reference", "method": name,
             "seed": None, "metrics": metrics} for name, metrics in refs["references"].items()]


def _run_one(exp: ExperimentConfig, spec: RunSpec, session: Session, scorers: dict,
             verbose: bool) -> dict:  # fmt: skip
    """Train or load ``spec``'s model, then read its result file or score it and write one.

    Under ``torchrun`` every rank trains (DDP); rank 0 alone scores and writes the result,
    and the other ranks read it once it is there.
    """
    t0 = time.perf_counter()
    run = session.teacher if spec.is_teacher else session.student(**spec.changes)
    cfg = session.cfg if spec.is_teacher else session.config(**spec.changes)
    score, settings = scorers[spec.scoring]
    attached = run.method.attached_key  # kd_cae's CAE, which its (kd's) key leaves out
    key = hash_dict({"run": run.key, "teacher": session.teacher.key, **settings,
                     **({"attached": attached} if attached else {})})  # fmt: skip
    path = _result_path(exp, spec.label)
    with rank_zero_first():
        cached = _cached_result(path, key)
        if cached is not None:
            return cached
        metrics = score(run, session)
        result = {"label": spec.label, "key": key, "method": spec.method, "seed": spec.seed,
                  "group": spec.group, **spec.extra, "metrics": metrics,
                  "config": cfg.to_dict(), "history": run.history,
                  "checkpoint": str(run.path.relative_to(runs_dir())),
                  "seconds": time.perf_counter() - t0,
                  "provenance": provenance(cfg.device)}  # fmt: skip
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

    The runs are those of :func:`run_specs`; the claims' and the sweeps' are scored lightly
    (accuracy, agreement, Grad-CAM and CAE similarity; no T2, no faithfulness). After the
    teacher come one ``reference: <name>`` result per image-blind reference map (group
    ``reference``, stored together in ``references.json``).

    ``session``: the one :func:`tuned_session` returned with ``exp``, whose data and
    teacher are then used instead of loaded again; None: KD's options are chosen here.
    """
    preflight(exp)
    exp, session = _tuned(exp, session, verbose)
    sessions = {None: session}
    sessions[None].teacher  # noqa: B018  (trained first, with its progress shown)
    scorers = _scorers(exp)
    results: list[dict] = []
    for spec in run_specs(exp):
        if spec.dataset not in sessions:
            shifted = dataclasses.replace(exp.base, **shapes_changes(exp.base))
            sessions[spec.dataset] = Session(shifted, verbose=False)
        session = sessions[spec.dataset]
        session.verbose = False
        results.append(_run_one(exp, spec, session, scorers, verbose))
        if spec.label == "teacher":
            results.extend(_reference_results(exp, session))
    return results


def validation_accuracy(run: TrainedModel, data) -> float:
    """Accuracy of ``run`` on the validation split of ``data`` (never the test split)."""
    if data.val is None:
        raise ValueError("the data has no validation split; set val_size above 0")
    return accuracy(run.logits(data.val.x), data.val.y)


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
    ``exp.tune_seeds``, scores each on the validation split, and keeps the point of highest
    mean validation accuracy. Returns the experiment with those values in its ``run`` (and
    no grid left, so tuning it again is a no-op) and the table of every point and seed
    (``val_accuracy``, and the ``test_accuracy`` that played no part in the choice, for the
    reader). An experiment without a grid comes back unchanged, with an empty table.
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
    best = grid[int(table.groupby("point")["val_accuracy"].mean().idxmax())]
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
    return exp, Session(exp.base, session.data, session.teacher, verbose=verbose), table


def _tuned(exp: ExperimentConfig, session: Session | None,
           verbose: bool = False) -> tuple[ExperimentConfig, Session]:  # fmt: skip
    """``(exp, session)`` ready to train KD's chosen options: :func:`tuned_session`'s when
    ``session`` is None, else the given pair once checked to belong together."""
    if session is None:
        return tuned_session(exp, verbose)[:2]
    if exp.kd_grid or session.cfg != exp.base:
        raise ValueError("the session does not belong to this experiment: pass the tuned "
                         "experiment and the session that runner.tuned_session returned")
    return exp, session


def seed_spread_table(exp: ExperimentConfig, session: Session | None = None) -> list[dict]:
    """For each method the claims compare, on all its seeds: how far independent per-image
    flips explain the spread of its accuracy and agreement between seeds
    (:func:`~xdx_lib.metrics.flip_spread` of the per-image right/wrong, or
    same-as-the-teacher, matrix on the test split). One row per method and quantity; the
    students come from the run cache (run :func:`run_experiment` first, or they train).

    Under ``torchrun`` every rank trains (or loads) the students, rank 0 alone scores them,
    and every rank returns its rows (:func:`~xdx_lib.train.on_rank_zero`). ``session``: as
    in :func:`run_experiment`.
    """
    exp, session = _tuned(exp, session)  # the students of KD's chosen options
    students = {}
    for method in exp.claim_methods or exp.methods:
        seeds = exp.seeds + (exp.claim_seeds if method in exp.claim_methods else [])
        if len(seeds) >= 2:
            students[method] = [session.student(method=method, seed=s) for s in seeds]
    teacher = session.teacher

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


def variant_table(session: Session, variants: dict[str, dict], seeds) -> pd.DataFrame:
    """Train (or load) one student per variant and seed, and score each against the teacher.

    ``variants`` maps a row name to config changes of the session's config; every variant
    runs on every seed, so differences can be paired. Each row: ``variant``, ``seed``,
    ``accuracy``, ``agreement``, the whole student's ``gradcam/pearson``, ``cae/pearson``
    (XDistillation's own map) and ``epoch_seconds``; ``history`` holds the run's per-epoch
    records for curves. This is how the XDistillation chapter chooses its defaults.

    Under ``torchrun`` every rank trains (or loads) the students, rank 0 alone scores them,
    and every rank returns the same table (:func:`~xdx_lib.train.on_rank_zero`).
    """
    runs = {(name, seed): session.student(**{"seed": seed, **changes})
            for name, changes in variants.items() for seed in seeds}  # fmt: skip
    teacher = session.teacher
    wanted = ("accuracy", "agreement", "gradcam/pearson", "cae/pearson", "epoch_seconds")

    def rows() -> list[dict]:
        out = []
        for (name, seed), run in runs.items():
            scores = evaluate_model(run, teacher, session.data, explainers=("gradcam",),
                                    n_faithful=0, similarities=LIGHT)  # fmt: skip
            out.append({"variant": name, "seed": seed,
                        **{k: scores.get(k, float("nan")) for k in wanted},
                        "history": run.history})  # fmt: skip
        return out

    return pd.DataFrame(on_rank_zero(rows))


def intervention_rows(session: Session, seeds: Iterable[int], **changes) -> list[dict]:
    """What XDistillation students take from their maps, one row per seed and intervention.

    Each seed's student (the session's config with ``method: xdistill``, then ``changes``,
    then the seed; trained or loaded) is scored by :func:`~xdx_lib.xdistill.map_interventions`.
    Rows hold ``seed``, ``intervention``, ``accuracy`` and ``agreement``, in the order of
    ``seeds`` and :data:`~xdx_lib.xdistill.INTERVENTIONS`, ready for
    :func:`xdx_lib.report.intervention_table`. The scores of a student are cached beside
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
    """One student's :func:`~xdx_lib.xdistill.map_interventions`, read from beside its
    checkpoint when there, else computed and written atomically (by rank 0 first)."""
    path = run.path.parent / "interventions.json"
    key = hash_dict({"run": run.key, "teacher": session.teacher.key,
                     "interventions": list(INTERVENTIONS), "format": 1})  # fmt: skip
    with rank_zero_first():
        cached = _cached_result(path, key)
        if cached is None:
            cached = {"key": key, "scores": map_interventions(run, session.teacher, session.data)}
            atomic_write_json(cached, path)
    return cached["scores"]
