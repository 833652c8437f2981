"""The experiment runner: one YAML names methods, seeds, explainers and sweeps; every run is
trained (or read from the cache), evaluated, and written as one result file.

:func:`load_experiment` validates an :class:`ExperimentConfig`; :func:`run_experiment`
trains what is missing through :mod:`xdx_lib.experiments`, scores it with
:mod:`xdx_lib.evaluation` and writes ``runs/<name>/results/<label>.json`` atomically, with
:func:`provenance`. The chapters and ``python -m xdx_lib experiment`` read those results;
:mod:`xdx_lib.report` turns them into tables and verdicts. Layer: the top of the library
(only the report, plots, notebooks and command line sit above it).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cache import atomic_write_json, check_writable, hash_dict, runs_dir
from .config import ConfigError, RunConfig, config_from_dict, read_yaml_mapping
from .data import check_data_root
from .evaluation import (
    LIGHT,
    evaluate_model,
    localisation_scores,
    reference_scores,
    seed_spread,
)
from .experiments import load_data, train_student, train_teacher
from .explain import EXPLAINERS
from .methods import METHODS
from .train import resolve_device

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
        return tuple(METHODS.get("xdistill").config_fields)


#: The type of each experiment field (bool is never an int).
_KINDS = {"name": str, "run": dict, "methods": list, "seeds": list, "explainers": list,
          "n_slow": int, "n_faithful": int, "sweeps": dict, "sweep_seeds": list,
          "localisation_methods": list, "localisation_seeds": list, "claim_methods": list,
          "claim_seeds": list}  # fmt: skip


def _unique(what: str, values: list) -> None:
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{what}={values!r} repeats {', '.join(repeated)}; give each once")


def validate_experiment(exp: ExperimentConfig) -> None:
    """Every check the real run relies on, as one ConfigError line (no data, no training).

    Builds each RunConfig :func:`run_experiment` will build (every method and seed, every
    sweep value, the shapes runs), so a config that passes cannot fail later on its values.
    """
    for key, kind in _KINDS.items():
        value = getattr(exp, key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} should be a {kind.__name__}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", exp.name):
        raise ConfigError(
            f"name={exp.name!r} is not a plain file name (its results go to runs/<name>/); "
            "use letters, digits, '-', '_' and '.', starting with a letter or digit"
        )
    try:
        base = config_from_dict(exp.run).resolved()
    except ConfigError as e:
        raise ConfigError(f"run: {e}") from None
    for key in ("methods", "seeds", "explainers"):
        if not getattr(exp, key):
            raise ConfigError(f"{key} is empty; name at least one")
    for key in ("methods", "seeds", "explainers", "sweep_seeds", "localisation_methods",
                "localisation_seeds",
                "claim_methods"):  # fmt: skip
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
    if exp.sweeps and not exp.sweep_seeds:
        raise ConfigError("sweep_seeds is empty; name at least one seed for the sweeps")
    for option, values in exp.sweeps.items():
        if option not in exp.sweepable:
            raise ConfigError(f"sweeps.{option} cannot be swept (sweeps vary XDistillation's "
                              f"options); choose from {', '.join(exp.sweepable)}")  # fmt: skip
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweeps.{option} should be a list of one or more values")
        _unique(f"sweeps.{option}", values)
        for v in values:
            for seed in exp.sweep_seeds:
                build(f"sweeps.{option}", method="xdistill", seed=seed, **{option: v})
    if exp.localisation_methods:
        build("localisation", dataset="shapes")
        for method in exp.localisation_methods:
            for seed in exp.shapes_seeds:
                build(f"localisation {method}, seed {seed}", dataset="shapes", method=method,
                      seed=seed)  # fmt: skip


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


def run_experiment(exp: ExperimentConfig, verbose: bool = True) -> list[dict]:
    """Train what is missing, evaluate it, and return one result dict per run.

    Each result is written atomically to ``runs/<name>/results/<label>.json`` with its
    config, metrics, per-epoch history and provenance; a result whose key (the run's cache
    key plus the evaluation settings) matches is read back instead of recomputed, so a
    killed experiment resumes where it stopped and a finished one costs only reading.

    Labels: ``teacher``, ``<method>-s<seed>`` (T1, T2), ``claims-<method>-s<seed>`` (the
    claims' methods on every seed), ``sweep-<option>=<value>-s<seed>`` (T4,
    XDistillation; these two groups with a light evaluation: accuracy, agreement and
    Grad-CAM and CAE similarity, no T2 and no faithfulness), ``shapes-teacher`` and
    ``shapes-<method>-s<seed>`` (localisation),
    and one ``reference: <name>`` per image-blind reference map (group ``reference``,
    stored together in ``references.json``).
    """
    preflight(exp)
    base = exp.base
    data = load_data(base)
    teacher = train_teacher(base, data, verbose=verbose)
    eval_key = {"explainers": exp.explainers, "n_slow": exp.n_slow,
                "n_faithful": exp.n_faithful, "format": 1}  # fmt: skip
    results: list[dict] = []

    def one(label: str, cfg: RunConfig, evaluate, extra: dict, settings: dict = eval_key) -> None:
        t0 = time.perf_counter()
        run = (train_teacher(cfg, data_of[cfg.dataset], verbose=False) if label.endswith("teacher")
               else train_student(cfg, data_of[cfg.dataset], teachers[cfg.dataset], verbose=False))
        key = hash_dict({"run": run.key, "teacher": teachers[cfg.dataset].key, **settings})
        path = _result_path(exp, label)
        cached = _cached_result(path, key)
        if cached is not None:
            results.append(cached)
            return
        metrics = evaluate(run)
        result = {"label": label, "key": key, **extra, "metrics": metrics,
                  "config": cfg.to_dict(), "history": run.history,
                  "checkpoint": str(run.path.relative_to(runs_dir())),
                  "seconds": time.perf_counter() - t0,
                  "provenance": provenance(cfg.device)}  # fmt: skip
        atomic_write_json(result, path)
        results.append(result)
        if verbose:
            shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in list(metrics)[:3])
            print(f"{label}: {shown}")

    data_of, teachers = {base.dataset: data}, {base.dataset: teacher}

    def evaluate_against_teacher(r):
        return evaluate_model(r, teacher, data, exp.explainers, exp.n_slow, exp.n_faithful)

    one("teacher", base, evaluate_against_teacher,
        {"method": "teacher", "seed": base.teacher_seed, "group": "teacher"})  # fmt: skip
    ref_path = _result_path(exp, "references")
    ref_key = hash_dict({"teacher": teacher.key, "kind": "references", "format": 1})
    refs = _cached_result(ref_path, ref_key)
    if refs is None:
        refs = {"label": "references", "key": ref_key, "group": "reference",
                "references": reference_scores(teacher, data),
                "provenance": provenance(base.device)}  # fmt: skip
        atomic_write_json(refs, ref_path)
    for name, metrics in refs["references"].items():
        results.append({"label": f"reference: {name}", "group": "reference", "method": name,
                        "seed": None, "metrics": metrics})  # fmt: skip
    for seed in exp.seeds:
        for method in exp.methods:
            cfg = dataclasses.replace(base, method=method, seed=seed)
            one(f"{method}-s{seed}", cfg, evaluate_against_teacher,
                {"method": method, "seed": seed, "group": "main"})  # fmt: skip
    light_key = {"explainers": ["gradcam"], "n_faithful": 0, "similarities": LIGHT,
                 "format": 1}  # fmt: skip

    def evaluate_light(r):  # what the claims and T4 read: r and top-k IoU, no T2, no faithfulness
        return evaluate_model(r, teacher, data, ("gradcam",), exp.n_slow, n_faithful=0,
                              similarities=LIGHT)  # fmt: skip

    for seed in exp.seeds + exp.claim_seeds:
        for method in exp.claim_methods:
            cfg = dataclasses.replace(base, method=method, seed=seed)
            one(f"claims-{method}-s{seed}", cfg, evaluate_light,
                {"method": method, "seed": seed, "group": "claims"}, light_key)  # fmt: skip
    for option, values in exp.sweeps.items():
        for value in values:
            for seed in exp.sweep_seeds:
                cfg = dataclasses.replace(base, method="xdistill", seed=seed, **{option: value})
                one(f"sweep-{option}={value}-s{seed}", cfg, evaluate_light,
                    {"method": "xdistill", "seed": seed, "group": "sweep",
                     "option": option, "value": value}, light_key)  # fmt: skip
    if exp.localisation_methods:
        shapes_cfg = dataclasses.replace(base, dataset="shapes")
        data_of["shapes"] = load_data(shapes_cfg)
        teachers["shapes"] = train_teacher(shapes_cfg, data_of["shapes"], verbose=False)

        def loc(r):
            return localisation_scores(r, data_of["shapes"])

        one("shapes-teacher", shapes_cfg, loc, {"method": "teacher", "seed": 0,
                                                 "group": "shapes"})  # fmt: skip
        for seed in exp.shapes_seeds:
            for method in exp.localisation_methods:
                cfg = dataclasses.replace(shapes_cfg, method=method, seed=seed)
                one(f"shapes-{method}-s{seed}", cfg, loc,
                    {"method": method, "seed": seed, "group": "shapes"})  # fmt: skip
    return results


def seed_spread_table(exp: ExperimentConfig) -> list[dict]:
    """For each method the claims compare, on all its seeds: how far independent per-image
    flips explain the spread of its accuracy and agreement between seeds
    (:func:`~xdx_lib.evaluation.seed_spread`). One row per method and quantity; the
    students come from the run cache (run :func:`run_experiment` first, or they train)."""
    base = exp.base
    data = load_data(base)
    teacher = train_teacher(base, data, verbose=False)
    rows = []
    for method in exp.claim_methods or exp.methods:
        seeds = exp.seeds + (exp.claim_seeds if method in exp.claim_methods else [])
        if len(seeds) < 2:
            continue
        runs = [train_student(dataclasses.replace(base, method=method, seed=s), data, teacher,
                              verbose=False) for s in seeds]  # fmt: skip
        for quantity, spread in seed_spread(runs, teacher, data).items():
            rows.append({"method": method, "quantity": quantity, "seeds": len(seeds), **spread})
    return rows
