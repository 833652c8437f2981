"""From a config to trained, cached models: data, teacher, students.

Everything expensive is stored in the run cache (:func:`xdx_lib.cache.runs_dir`) under a
key that hashes what determines it (:mod:`xdx_lib.trained` lists the fields), so a second
call with the same config trains nothing and a killed run resumes:

* ``teachers/<dataset>-<model>-<key>/model.pt`` and its ``logits_<split>.pt``;
* ``students/<dataset>-<method>-<model>-s<seed>-<key>/model.pt``, whose key includes the
  hash of the teacher checkpoint it learned from.

The teacher trains on augmented images (``teacher_augment``, on by default); its cached
logits and maps are of the un-augmented images. A student reads them from the cache
(``teacher_signal: cached``), or, with ``teacher_signal: online`` (needed with
``augment``), the frozen teacher computes them on each augmented batch
(:func:`online_signals`).

A student that the cache already holds is loaded without preparing its method (no teacher
maps fetched, no CAE pre-trained). Layer: above the methods and the loop; below the
experiment runner (:mod:`xdx_lib.runner`), the notebooks and the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from .cache import hash_dict, runs_dir
from .config import RunConfig
from .data import Dataset, load_dataset
from .explain import make_explainer
from .methods import Method, create_method
from .train import (
    autocast,
    checkpoint_epochs,
    fit,
    load_checkpoint,
    resolve_device,
    seed_everything,
)
from .trained import (
    RUN_FORMAT,
    STUDENT_FIELDS,
    TEACHER_FIELDS,
    TrainedModel,
    pick,
    teacher_logits,
)


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


#: The per-image training extras that :func:`online_signals` computes per batch instead.
ONLINE_EXTRAS = ("teacher_logits", "teacher_maps", "target_class")

#: ``batch -> dict`` of more batch tensors (the ``signals`` of :func:`~xdx_lib.train.fit`).
Signals = Callable[[dict], dict]


def online_signals(cfg: RunConfig, teacher: TrainedModel, device, keys,
                   maps: dict | None = None) -> Signals:  # fmt: skip
    """The ``signals`` of :func:`~xdx_lib.train.fit` for ``teacher_signal: online``.

    On each (augmented) batch the frozen teacher, in eval mode on the run's device, gives
    ``teacher_logits`` (no gradient, under the run's autocast) and, when ``keys`` asks for
    them, its ``teacher_maps`` of the explainer and settings in ``maps`` (those the method
    asked :meth:`~xdx_lib.methods.Method.teacher_maps` for) and ``target_class``. The class
    explained follows the cached path: the label with ``map_target: label``, else the
    teacher's prediction (here its argmax on the augmented image). Maps are computed in
    float32, like the cached ones, and stay on the device.
    """
    model = teacher.model.to(device).eval()
    explainer = None
    if "teacher_maps" in keys:
        explainer = make_explainer(maps["explainer"], model, **maps.get("settings", {}))
    by_label = cfg.map_target == "label"

    def signals(batch: dict) -> dict:
        x = batch["x"]
        with torch.no_grad(), autocast(torch.device(device), cfg.amp):
            logits = teacher.method.logits(model, x).float()
        out = {"teacher_logits": logits}
        target = batch["y"] if by_label else logits.argmax(1)
        if explainer is not None:
            out["teacher_maps"] = explainer.explain(x, target)
        if "target_class" in keys:
            out["target_class"] = target
        return {k: v for k, v in out.items() if k in keys}

    return signals


def _prepare_online(cfg: RunConfig, method: Method, teacher: TrainedModel, data: Dataset,
                    extras: dict, device) -> tuple[dict, Signals | None]:  # fmt: skip
    """Prepare ``method`` for online teacher signals: no cached training-split maps.

    While :meth:`~xdx_lib.methods.Method.prepare` runs, the method's ``teacher_maps`` of the
    training split answers an empty tensor (and notes the explainer asked for), so the
    expensive cached maps are never computed; the test split's stay cached, for the
    per-epoch metrics. The training extras are then dropped and computed per batch.
    """
    cached, asked = method.teacher_maps, {}

    def train_maps_later(teacher, data, split="train", explainer=None, **settings):
        if split != "train":
            return cached(teacher, data, split, explainer, **settings)
        asked.update(explainer=explainer or cfg.explainer, settings=settings)
        return torch.empty(0)

    method.teacher_maps = train_maps_later
    try:
        extras = method.prepare(teacher, data, extras)
    finally:
        del method.teacher_maps
    keys = set(extras["train"])
    unknown = keys - set(ONLINE_EXTRAS)
    if unknown:
        raise ValueError(f"teacher_signal: online cannot compute {sorted(unknown)} per batch "
                         f"for method {cfg.method!r}; use teacher_signal: cached")  # fmt: skip
    extras["train"] = {}
    if not keys:
        return extras, None
    return extras, online_signals(cfg, teacher, device, keys, asked)


def _train_or_load(cfg: RunConfig, method: Method, data: Dataset, path, meta: dict,
                   epochs: int, seed: int, teacher: TrainedModel | None, verbose: bool,
                   progress: bool, augment: bool) -> TrainedModel:  # fmt: skip
    """Load a finished checkpoint, or prepare ``method`` (given a teacher) and train.

    Seeding happens after :meth:`~xdx_lib.methods.Method.prepare` and right before the
    model is built, so a run's initial weights depend on ``seed`` alone.
    """
    device = resolve_device(cfg.device)
    key = meta["key"]
    if checkpoint_epochs(path) >= epochs:
        seed_everything(seed)
        model = method.build_model(data.in_channels, data.num_classes)
        model.to(device, memory_format=torch.channels_last)  # as it trained (fit)
        ckpt = load_checkpoint(path, model, meta)
        model.eval()
        return TrainedModel(model, method, path, list(ckpt["history"]), key)
    extras: dict = {"train": {}, "test": {}}
    signals = None
    if teacher is not None:
        logits = teacher_logits(teacher, data)
        extras["test"]["teacher_logits"] = logits["test"]
        if method.needs_teacher_logits:
            extras["train"]["teacher_logits"] = logits["train"]
        if cfg.teacher_signal == "online":
            extras, signals = _prepare_online(cfg, method, teacher, data, extras, device)
        else:
            extras = method.prepare(teacher, data, extras)
    seed_everything(seed)
    model = method.build_model(data.in_channels, data.num_classes)
    history = fit(
        model, method, data.train, data.test,
        epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr,
        weight_decay=cfg.weight_decay, seed=seed, device=device,
        ckpt_path=path, meta=meta, amp=cfg.amp, augment=augment,
        train_extras=extras["train"], test_extras=extras["test"],
        progress=progress, verbose=verbose, signals=signals,
        channels_last=True, compile=cfg.compile,
    )  # fmt: skip
    model.eval()
    return TrainedModel(model, method, path, history, key)


def train_teacher(
    cfg: RunConfig, data: Dataset | None = None, progress: bool = False, verbose: bool = True
) -> TrainedModel:
    """Train the config's teacher, or load it from the run cache when it is there.

    Trained with standard augmentation when ``teacher_augment`` (the default); its logits
    and maps are computed afterwards, on the un-augmented images.
    """
    cfg = cfg.resolved()
    data = data or load_data(cfg)
    key = hash_dict({**pick(cfg, TEACHER_FIELDS), "format": RUN_FORMAT})
    path = runs_dir() / "teachers" / f"{cfg.dataset}-{cfg.teacher}-{key}" / "model.pt"
    meta = {"model": cfg.teacher, "in_channels": data.in_channels,
            "num_classes": data.num_classes, "key": key}  # fmt: skip
    method = create_method(dataclasses.replace(cfg, method="scratch", student=cfg.teacher))
    return _train_or_load(cfg, method, data, path, meta, cfg.teacher_epochs, cfg.teacher_seed,
                          None, verbose, progress, cfg.teacher_augment)  # fmt: skip


def train_student(
    cfg: RunConfig,
    data: Dataset | None = None,
    teacher: TrainedModel | None = None,
    progress: bool = False,
    verbose: bool = True,
) -> TrainedModel:
    """Train (or load) the student of ``cfg.method`` and ``cfg.seed`` for ``cfg``'s teacher.

    The teacher is trained or loaded first when not given; its logits are cached, so a
    KD epoch never runs the teacher (with ``teacher_signal: online`` it runs on each batch).
    Every student's history records its agreement with the teacher and the Grad-CAM
    tracking of :meth:`~xdx_lib.methods.Method.epoch_metrics`.
    """
    cfg = cfg.resolved()
    data = data or load_data(cfg)
    teacher = teacher or train_teacher(cfg, data, progress=progress, verbose=verbose)
    method = create_method(cfg)
    fields = pick(cfg, STUDENT_FIELDS + tuple(method.config_fields))
    key = hash_dict({**fields, "teacher": teacher.checkpoint_hash, "format": RUN_FORMAT})
    name = f"{cfg.dataset}-{cfg.method}-{cfg.student}-s{cfg.seed}-{key}"
    path = runs_dir() / "students" / name / "model.pt"
    meta = {"method": cfg.method, "model": cfg.student, "key": key}
    return _train_or_load(cfg, method, data, path, meta, cfg.student_epochs, cfg.seed,
                          teacher, verbose, progress, cfg.augment)  # fmt: skip
