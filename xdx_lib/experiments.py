"""From a config to trained, cached models: data, teacher, teacher logits, students.

Everything expensive is stored in the run cache (:func:`xdx_lib.cache.runs_dir`) under a
key that hashes what determines it, so a second call with the same config trains nothing
and a killed run resumes:

* ``teachers/<dataset>-<model>-<key>/model.pt`` and its ``logits_<split>.pt``;
* ``students/<dataset>-<method>-<model>-s<seed>-<key>/model.pt``, whose key includes the
  hash of the teacher checkpoint it learned from.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    key = hash_dict(_pick(cfg, TEACHER_FIELDS))
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
    key = hash_dict({**fields, "teacher": teacher.checkpoint_hash})
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
