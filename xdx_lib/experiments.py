"""From a config to trained, cached models: data, teacher, teacher logits, students.

Everything expensive is stored in the run cache (:func:`xdx_lib.cache.runs_dir`) under a
key that hashes what determines it, so a second call with the same config trains nothing
and a killed run resumes:

* ``teachers/<dataset>-<model>-<key>/model.pt`` and its ``logits_<split>.pt``;
* ``students/<dataset>-<method>-<model>-s<seed>-<key>/model.pt``, whose key includes the
  hash of the teacher checkpoint it learned from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import xdistill  # noqa: F401  (registers the "xdistill" method)
from .cache import atomic_torch_save, file_hash, hash_dict, load_tensors, runs_dir
from .config import RunConfig
from .data import Dataset, load_dataset
from .methods import Method, create_method
from .models import count_parameters
from .train import fit, load_checkpoint, predict_logits, resolve_device, seed_everything

#: Bumped when what a run records changes (history fields, checkpoint layout), so that
#: older cached runs are retrained instead of read with missing fields.
RUN_FORMAT = 2

#: Test images on which each student's Grad-CAM is compared with the teacher's every epoch.
TRACKED_TEST_IMAGES = 500

#: Config fields that determine the data a run sees.
DATA_FIELDS = ("dataset", "data_root", "train_subset", "test_subset", "subset_seed",
               "image_size", "grayscale")  # fmt: skip
#: Config fields that determine a teacher.
TEACHER_FIELDS = DATA_FIELDS + ("teacher", "teacher_seed", "teacher_epochs", "batch_size",
                                "lr", "weight_decay", "augment")  # fmt: skip
#: Config fields that determine any student, beside its teacher's checkpoint and the
#: fields its method names in ``Method.config_fields``.
STUDENT_FIELDS = DATA_FIELDS + ("student", "seed", "student_epochs", "batch_size", "lr",
                                "weight_decay", "augment", "method")  # fmt: skip


@dataclass
class TrainedModel:
    """A trained network with where it lives and how it got there.

    Attributes:
        model: the network, in eval mode, on the run's device.
        method: the method that trained it (its ``logits`` gives class scores).
        path: the checkpoint file.
        history: one dict per epoch (see :func:`xdx_lib.train.fit`).
        key: the cache key (a short hash).
    """

    model: nn.Module
    method: Method
    path: Path
    history: list[dict]
    key: str

    @property
    def checkpoint_hash(self) -> str:
        return file_hash(self.path)

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of ``x`` (batched, no gradient, on the CPU)."""
        dev = next(self.model.parameters()).device
        self.model.eval()
        return predict_logits(lambda xb: self.method.logits(self.model, xb), x, dev)


def model_maps(
    run: TrainedModel,
    x: torch.Tensor,
    explainer: str = "gradcam",
    split: str = "test",
    target: torch.Tensor | None = None,
    **settings,
) -> torch.Tensor:
    """Explanations of a trained model on ``x``, computed once and cached by checkpoint.

    Args:
        run: a teacher or student from :func:`train_teacher` / :func:`train_student`.
        x: images ``[N, C, H, W]`` (a split of the run's data, or a prefix of one).
        explainer: a registered explainer (:data:`xdx_lib.explain.EXPLAINERS`).
        split: which split ``x`` comes from (part of the cache key).
        target: classes to explain (default: the model's predictions).
        **settings: the explainer's settings (``n_steps``, ``n_samples``, ...).
    """
    from .explain import cached_maps

    return cached_maps(
        run.model, x, explainer, settings, checkpoint_hash=run.checkpoint_hash,
        split=split, subset=len(x), target=target,
    )  # fmt: skip


def _pick(cfg: RunConfig, names) -> dict:
    return {k: getattr(cfg, k) for k in names}


def load_data(cfg: RunConfig) -> Dataset:
    """The config's dataset, as the profile's deterministic subsets."""
    cfg = cfg.resolved()
    options = {}
    if cfg.dataset == "imagefolder":
        options = {"image_size": cfg.image_size, "grayscale": cfg.grayscale}
    return load_dataset(
        cfg.dataset, root=cfg.data_root, download=cfg.download,
        train_subset=cfg.train_subset, test_subset=cfg.test_subset,
        subset_seed=cfg.subset_seed, **options,
    )  # fmt: skip


def _train_or_load(cfg, method, data, path, meta, epochs, seed, extras, progress, verbose):
    device = resolve_device(cfg.device)
    seed_everything(seed)
    model = method.build_model(data.in_channels, data.num_classes)
    history = fit(
        model, method, data.train, data.test,
        epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr,
        weight_decay=cfg.weight_decay, seed=seed, device=device,
        ckpt_path=path, meta=meta, amp=cfg.amp, augment=cfg.augment,
        train_extras=extras.get("train"), test_extras=extras.get("test"),
        progress=progress, verbose=verbose,
    )  # fmt: skip
    model.eval()
    return model, history


def train_teacher(
    cfg: RunConfig, data: Dataset | None = None, progress: bool = False, verbose: bool = True
) -> TrainedModel:
    """Train the config's teacher, or load it from the run cache when it is there."""
    cfg = cfg.resolved()
    data = data or load_data(cfg)
    key = hash_dict({**_pick(cfg, TEACHER_FIELDS), "format": RUN_FORMAT})
    path = runs_dir() / "teachers" / f"{cfg.dataset}-{cfg.teacher}-{key}" / "model.pt"
    meta = {"model": cfg.teacher, "in_channels": data.in_channels,
            "num_classes": data.num_classes, "key": key}  # fmt: skip
    teacher_cfg = RunConfig(**{**cfg.to_dict(), "method": "scratch", "student": cfg.teacher})
    method = create_method(teacher_cfg)
    model, history = _train_or_load(
        cfg, method, data, path, meta, cfg.teacher_epochs, cfg.teacher_seed, {}, progress, verbose
    )
    return TrainedModel(model, method, path, history, key)


def teacher_logits(teacher: TrainedModel, data: Dataset) -> dict[str, torch.Tensor]:
    """The teacher's logits on both splits, computed once and cached beside it."""
    out = {}
    for split in ("train", "test"):
        x = getattr(data, split).x
        path = teacher.path.parent / f"logits_{split}.pt"
        tag = {"checkpoint": teacher.checkpoint_hash, "n": len(x)}
        if path.is_file():
            try:
                cached = load_tensors(path)
                if cached.get("tag") == tag:
                    out[split] = cached["logits"]
                    continue
            except RuntimeError:
                pass  # corrupt: recompute below
        out[split] = teacher.logits(x)
        atomic_torch_save({"tag": tag, "logits": out[split]}, path)
    return out


def train_student(
    cfg: RunConfig,
    data: Dataset | None = None,
    teacher: TrainedModel | None = None,
    progress: bool = False,
    verbose: bool = True,
) -> TrainedModel:
    """Train (or load) the student of ``cfg.method`` and ``cfg.seed`` for ``cfg``'s teacher.

    The teacher is trained or loaded first when not given; its logits are cached, so a
    KD epoch never runs the teacher. Every student is evaluated for agreement with it.
    """
    cfg = cfg.resolved()
    data = data or load_data(cfg)
    teacher = teacher or train_teacher(cfg, data, progress=progress, verbose=verbose)
    method = create_method(cfg)
    logits = teacher_logits(teacher, data)
    n_track = min(TRACKED_TEST_IMAGES, len(data.test))
    tracked = model_maps(teacher, data.test.x[:n_track], "gradcam")
    extras = {"train": {}, "test": {"teacher_logits": logits["test"], "teacher_gradcam": tracked}}
    if method.needs_teacher_logits:
        extras["train"]["teacher_logits"] = logits["train"]
    extras = method.prepare(teacher, data, extras)
    fields = _pick(cfg, STUDENT_FIELDS + tuple(method.config_fields))
    key = hash_dict({**fields, "teacher": teacher.checkpoint_hash, "format": RUN_FORMAT})
    name = f"{cfg.dataset}-{cfg.method}-{cfg.student}-s{cfg.seed}-{key}"
    path = runs_dir() / "students" / name / "model.pt"
    meta = {"method": cfg.method, "model": cfg.student, "key": key}
    model, history = _train_or_load(
        cfg, method, data, path, meta, cfg.student_epochs, cfg.seed, extras, progress, verbose
    )
    return TrainedModel(model, method, path, history, key)


def load_trained(path: str | Path, cfg: RunConfig, in_channels: int, num_classes: int):
    """Rebuild a model of ``cfg``'s method and load the checkpoint at ``path`` into it."""
    method = create_method(cfg.resolved())
    model = method.build_model(in_channels, num_classes)
    ckpt = load_checkpoint(path, model)
    model.eval()
    return TrainedModel(model, method, Path(path), list(ckpt["history"]), "")



#: Config fields that determine a CAE trained alone on the teacher's maps.
CAE_FIELDS = DATA_FIELDS + ("explainer", "map_target", "cae_width", "cae_epochs", "exp_loss",
                            "batch_size", "seed")  # fmt: skip


@dataclass
class TrainedCAE:
    """An explanation autoencoder trained alone on a teacher's cached maps.

    Attributes:
        model: the :class:`~xdx_lib.cae.CAE`, in eval mode.
        path: its checkpoint.
        history: the mean training loss of each epoch.
        seconds: wall time of its training (0 when it was loaded from the cache).
    """

    model: nn.Module
    path: Path
    history: list[float]
    key: str
    seconds: float = 0.0


def train_cae(
    cfg: RunConfig,
    data: Dataset,
    teacher: TrainedModel,
    variant: str | None = None,
    verbose: bool = True,
) -> TrainedCAE:
    """Train (or load) the CAE ``variant`` (default ``cfg.cae_variant``) on the teacher's maps.

    The maps are the teacher's ``cfg.explainer`` explanations of the training split, from
    the cache (:func:`model_maps`). This is the first stage of XDistillation's ``staged``
    schedule and the subject of the CAE chapter's ablation.
    """
    import time

    from .cae import create_cae
    from .cae import train_cae as fit_cae

    cfg = cfg.resolved()
    variant = variant or cfg.cae_variant
    key = hash_dict({**_pick(cfg, CAE_FIELDS), "variant": variant,
                     "teacher": teacher.checkpoint_hash})  # fmt: skip
    path = runs_dir() / "cae" / f"{cfg.dataset}-{variant}-{key}" / "model.pt"
    seed_everything(cfg.seed)
    cae = create_cae(variant, data.in_channels, width=cfg.cae_width)
    if path.is_file():
        ckpt = load_checkpoint(path, cae, meta={"variant": variant, "key": key})
        cae.eval()
        return TrainedCAE(cae, path, list(ckpt["history"]), key)
    target = data.train.y if cfg.map_target == "label" else None
    maps = model_maps(teacher, data.train.x, cfg.explainer, split="train", target=target)
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    history = fit_cae(cae, data.train.x, maps, cfg.cae_epochs, batch_size=cfg.batch_size,
                      loss=cfg.exp_loss, device=device, seed=cfg.seed)  # fmt: skip
    seconds = time.perf_counter() - t0
    if verbose:
        print(f"CAE {variant}: loss per epoch {[round(v, 4) for v in history]}, {seconds:.1f} s")
    atomic_torch_save({"model": cae.state_dict(), "history": history, "seconds": seconds,
                       "meta": {"variant": variant, "key": key}}, path)  # fmt: skip
    cae.eval()
    return TrainedCAE(cae, path, history, key, seconds)


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
        from .config import config_from_dict

        return config_from_dict(self.run).resolved()


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML; every bad field is one clear ConfigError."""
    from .config import METHODS_KNOWN, ConfigError, config_from_dict, read_yaml_mapping
    from .explain import EXPLAINERS

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
        if m not in METHODS_KNOWN:
            raise ConfigError(f"{path.name}: method {m!r} is unknown; choose from "
                              f"{', '.join(METHODS_KNOWN)}")  # fmt: skip
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


#: Explainers cheap enough to run on the whole test subset; others use ``n_slow`` images.
FAST_EXPLAINERS = ("gradcam", "saliency", "deeplift")


def provenance(device: str = "auto") -> dict:
    """Where a result comes from: git commit, library versions, device, host, time."""
    import datetime
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

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


def _latency_ms(fn, x: torch.Tensor, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds per image of ``fn`` on the batch ``x``."""
    import time

    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            best = min(best, time.perf_counter() - t0)
    return 1000 * best / len(x)


def evaluate_model(run: TrainedModel, teacher: TrainedModel, data: Dataset,
                   exp: ExperimentConfig) -> dict[str, float]:  # fmt: skip
    """Every metric of METHOD.md for one trained model against its teacher, on the test split.

    Keys: ``accuracy``, ``agreement``, ``best_epoch_accuracy`` (labelled: reported beside
    the last-epoch number, never instead of it), ``parameters``, ``epoch_seconds``,
    ``latency_ms``; per explainer ``<explainer>/<similarity>`` (Pearson, Spearman, SSIM,
    cosine, top-k IoU of the model's map with the teacher's); for XDistillation
    ``cae/<similarity>`` for its own map; faithfulness of the model's Grad-CAM on itself
    (``faith/deletion``, ``faith/insertion``) and judged by the teacher
    (``faith_teacher/deletion``, ``faith_teacher/insertion``), with ``cae_faith/...`` for
    the CAE's map.
    """
    from .cae import predict_maps
    from .metrics import deletion_auc, insertion_auc, similarity_table, summarize

    x, y = data.test.x, data.test.y
    t_logits = teacher_logits(teacher, data)["test"]
    logits = run.logits(x)
    hist = run.history
    out: dict[str, float] = {
        "accuracy": (logits.argmax(1) == y).float().mean().item(),
        "agreement": (logits.argmax(1) == t_logits.argmax(1)).float().mean().item(),
        "best_epoch_accuracy": max(h["test_acc"] for h in hist) if hist else float("nan"),
        "parameters": float(run.num_parameters),
        "epoch_seconds": sum(h["epoch_time"] for h in hist) / max(len(hist), 1),
        "latency_ms": _latency_ms(run.model, x[:256].to(next(run.model.parameters()).device)),
    }
    for e in exp.explainers:
        n = len(x) if e in FAST_EXPLAINERS else min(exp.n_slow, len(x))
        t_maps, s_maps = model_maps(teacher, x[:n], e), model_maps(run, x[:n], e)
        for k, v in summarize(similarity_table(s_maps, t_maps)).items():
            out[f"{e}/{k}"] = v
    nf = min(exp.n_faithful, len(x))
    xf = x[:nf]
    own = model_maps(run, xf, "gradcam")
    judged = {"faith": (run.model, own), "faith_teacher": (teacher.model, own)}
    cae = getattr(run.model, "cae", None)
    if cae is not None:
        cae_maps = predict_maps(cae, x)
        teacher_maps = model_maps(teacher, x, run.method.cfg.explainer)
        for k, v in summarize(similarity_table(cae_maps, teacher_maps)).items():
            out[f"cae/{k}"] = v
        judged["cae_faith"] = (run.model, cae_maps[:nf])
        judged["cae_faith_teacher"] = (teacher.model, cae_maps[:nf])
    for prefix, (model, maps) in judged.items():
        out[f"{prefix}/deletion"] = deletion_auc(model, xf, maps).mean().item()
        out[f"{prefix}/insertion"] = insertion_auc(model, xf, maps, baseline="blur").mean().item()
    return out


def localisation_scores(run: TrainedModel, data: Dataset) -> dict[str, float]:
    """Pointing game and relevance mass of the model's Grad-CAM (and CAE map) on ``shapes``."""
    from .cae import predict_maps
    from .metrics import pointing_game, relevance_mass

    x, masks = data.test.x, data.test.masks
    out = {"accuracy": (run.logits(x).argmax(1) == data.test.y).float().mean().item()}
    maps = {"gradcam": model_maps(run, x, "gradcam")}
    if getattr(run.model, "cae", None) is not None:
        maps["cae"] = predict_maps(run.model.cae, x)
    for name, m in maps.items():
        out[f"{name}/pointing_game"] = pointing_game(m, masks).float().mean().item()
        out[f"{name}/relevance_mass"] = relevance_mass(m, masks).mean().item()
    return out


def _result_path(exp: ExperimentConfig, label: str) -> Path:
    return runs_dir() / exp.name / "results" / f"{label}.json"


def _cached_result(path: Path, key: str) -> dict | None:
    import json

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
    (T4, XDistillation), ``shapes-teacher`` and ``shapes-<method>-s<seed>`` (localisation).
    """
    import dataclasses
    import time

    from .cache import atomic_write_json

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

    def evaluate_student(r):
        return evaluate_model(r, teacher, data, exp)

    one("teacher", base, evaluate_student, {"method": "teacher", "seed": base.teacher_seed,
                                            "group": "teacher"})  # fmt: skip
    for seed in exp.seeds:
        for method in exp.methods:
            cfg = dataclasses.replace(base, method=method, seed=seed)
            one(f"{method}-s{seed}", cfg, evaluate_student,
                {"method": method, "seed": seed, "group": "main"})  # fmt: skip
    for option, values in exp.sweeps.items():
        for value in values:
            for seed in exp.sweep_seeds:
                cfg = dataclasses.replace(base, method="xdistill", seed=seed, **{option: value})
                one(f"sweep-{option}={value}-s{seed}", cfg, evaluate_student,
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
