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
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cache import atomic_write_json, hash_dict, runs_dir
from .config import ConfigError, RunConfig, config_from_dict, read_yaml_mapping
from .evaluation import evaluate_model, localisation_scores, reference_scores
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

    @property
    def base(self) -> RunConfig:
        """The validated, profile-resolved RunConfig shared by every run."""
        return config_from_dict(self.run).resolved()


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML; every bad field is one clear ConfigError."""
    path = Path(path)
    d = read_yaml_mapping(path, "experiment config")
    kinds = {"name": str, "run": dict, "methods": list, "seeds": list, "explainers": list,
             "n_slow": int, "n_faithful": int, "sweeps": dict, "sweep_seeds": list,
             "localisation_methods": list}  # fmt: skip
    for key, value in d.items():
        if key not in kinds:
            raise ConfigError(f"{path.name}: unknown field {key!r}; known: {', '.join(kinds)}")
        if not isinstance(value, kinds[key]) or isinstance(value, bool):
            raise ConfigError(f"{path.name}: {key}={value!r} should be a {kinds[key].__name__}")
    exp = ExperimentConfig(**d)
    try:
        base = config_from_dict(exp.run)
    except ConfigError as e:
        raise ConfigError(f"{path.name}: run: {e}") from None
    for m in exp.methods + exp.localisation_methods:
        if m not in METHODS:
            raise ConfigError(f"{path.name}: method {m!r} is unknown; choose from "
                              f"{', '.join(METHODS.names())}")  # fmt: skip
    for s in exp.seeds + exp.sweep_seeds:
        if not isinstance(s, int) or isinstance(s, bool):
            raise ConfigError(f"{path.name}: seed {s!r} should be an int")
    for e in exp.explainers:
        if e not in EXPLAINERS:
            raise ConfigError(f"{path.name}: explainer {e!r} is unknown; choose from "
                              f"{', '.join(EXPLAINERS.names())}")  # fmt: skip
    for option, values in exp.sweeps.items():
        if not isinstance(values, list):
            raise ConfigError(f"{path.name}: sweeps.{option} should be a list of values")
        for v in values:
            try:
                config_from_dict({**exp.run, option: v})
            except ConfigError as e:
                raise ConfigError(f"{path.name}: sweeps.{option}: {e}") from None
    if exp.n_slow < 1 or exp.n_faithful < 1:
        raise ConfigError(f"{path.name}: n_slow and n_faithful must be at least 1")
    del base
    return exp


def provenance(device: str = "auto") -> dict:
    """Where a result comes from: git commit, library versions, device, host, time."""
    import datetime
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    import torch

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    versions = {}
    for pkg in ("xdx", "torch", "torchvision", "captum", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
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

    Labels: ``teacher``, ``<method>-s<seed>`` (T1, T2), ``sweep-<option>=<value>-s<seed>``
    (T4, XDistillation), ``shapes-teacher`` and ``shapes-<method>-s<seed>`` (localisation),
    and one ``reference: <name>`` per image-blind reference map (group ``reference``,
    stored together in ``references.json``).
    """
    base = exp.base
    data = load_data(base)
    teacher = train_teacher(base, data, verbose=verbose)
    eval_key = {"explainers": exp.explainers, "n_slow": exp.n_slow,
                "n_faithful": exp.n_faithful, "format": 1}  # fmt: skip
    results: list[dict] = []

    def one(label: str, cfg: RunConfig, evaluate, extra: dict) -> None:
        t0 = time.perf_counter()
        run = (train_teacher(cfg, data_of[cfg.dataset], verbose=False) if label.endswith("teacher")
               else train_student(cfg, data_of[cfg.dataset], teachers[cfg.dataset], verbose=False))
        key = hash_dict({"run": run.key, "teacher": teachers[cfg.dataset].key, **eval_key})
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
    for option, values in exp.sweeps.items():
        for value in values:
            for seed in exp.sweep_seeds:
                cfg = dataclasses.replace(base, method="xdistill", seed=seed, **{option: value})
                one(f"sweep-{option}={value}-s{seed}", cfg, evaluate_against_teacher,
                    {"method": "xdistill", "seed": seed, "group": "sweep",
                     "option": option, "value": value})  # fmt: skip
    if exp.localisation_methods:
        shapes_cfg = dataclasses.replace(base, dataset="shapes")
        data_of["shapes"] = load_data(shapes_cfg)
        teachers["shapes"] = train_teacher(shapes_cfg, data_of["shapes"], verbose=False)

        def loc(r):
            return localisation_scores(r, data_of["shapes"])

        one("shapes-teacher", shapes_cfg, loc, {"method": "teacher", "seed": 0,
                                                 "group": "shapes"})  # fmt: skip
        for seed in exp.seeds:
            for method in exp.localisation_methods:
                cfg = dataclasses.replace(shapes_cfg, method=method, seed=seed)
                one(f"shapes-{method}-s{seed}", cfg, loc,
                    {"method": method, "seed": seed, "group": "shapes"})  # fmt: skip
    return results
