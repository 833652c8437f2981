"""From a config to trained, cached models: a :class:`Session` holds one config's data, its
teacher and its students, each trained (or read from the run cache) once.

Everything expensive is stored in the run cache (:func:`xdx_lib.core.cache.runs_dir`) under a key
that hashes what determines it (:mod:`xdx_lib.core.layout` lists the fields), so a second
call with the same config trains nothing and a killed run resumes:

* ``teachers/<dataset>-<model>-<key>/model.pt`` and its ``logits_<split>.pt``;
* ``students/<dataset>-<method>-<model>-s<seed>-<key>/model.pt``, whose key includes the
  hash of the teacher checkpoint it learned from and the method's options (``<method>``
  is the one that trains it: ``kd_cae``'s students are ``kd``'s).

The teacher trains on augmented images (``teacher_augment``, on by default). A student
reads the teacher's signals its method declares (:meth:`~xdx_lib.distill.method.Method.signals`)
from :mod:`xdx_lib.distill.signals`: cached (``teacher_signal: cached``, on the un-augmented
images) or computed on each augmented batch (``online``, needed with ``augment``).

A student that the cache already holds is loaded without preparing its method (no teacher
maps fetched, no CAE pre-trained for its training); what its method attaches to the
trained model (``kd_cae``'s CAE) is attached either way. Under ``torchrun`` every rank
runs the same calls: the models train with DDP (:func:`xdx_lib.training.loop.fit`, told the
config's schedule and hardware by :func:`loop_records`), and what is cached is made by
rank 0 while the others wait, then load it. Layer: above the methods and the loop; below
the evaluation, the experiment runner (:mod:`xdx_lib.experiments.runner`), the notebooks and the
command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from xdx_lib.core import layout
from xdx_lib.core.config import RunConfig
from xdx_lib.core.devices import distributed, rank_zero_first, resolve_device, seed_everything
from xdx_lib.data.batches import Extras
from xdx_lib.data.datasets import Dataset, load_dataset
from xdx_lib.distill.method import Method, create_method
from xdx_lib.distill.signals import training_extras
from xdx_lib.training.checkpoints import checkpoint_epochs, load_checkpoint
from xdx_lib.training.loop import Checkpointing, Hardware, Reporting, Schedule, fit
from xdx_lib.training.trained_model import (
    TrainedModel,
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
        subset_seed=cfg.subset_seed, teacher_subset=cfg.teacher_subset,
        val_size=cfg.val_size, **options,
    )  # fmt: skip


@dataclass
class Job:
    """One model to train or load: what the loop needs beside the method's hooks.

    Attributes:
        cfg: the resolved config (schedule, device, precision, signal source).
        method: the method that trains the model.
        path: the checkpoint file; ``meta`` must match the one stored there.
        epochs, seed, augment: the run's length, seed and whether batches are augmented.
        images: the :class:`~xdx_lib.data.datasets.Dataset` attribute holding its training images
            (``train`` for a student, ``teacher_split`` for a teacher).
    """

    cfg: RunConfig
    method: Method
    path: Path
    meta: dict
    epochs: int
    seed: int
    augment: bool
    images: str = "train"


def _extras(job: Job, data: Dataset, teacher: TrainedModel | None) -> Extras:
    """Prepare the method and gather the teacher's signals it declares (none without a
    teacher); the test split always carries the teacher's logits, for agreement.

    Under ``torchrun`` rank 0 does this first, computing and caching the teacher's logits
    and maps and pre-training a CAE; the other ranks wait, then load them from the cache
    (:func:`~xdx_lib.core.devices.rank_zero_first`).
    """
    if teacher is None:
        return Extras()
    with rank_zero_first():
        job.method.prepare(teacher, data)
        extras = training_extras(job.cfg.teacher_signal, teacher, data, job.method.signals(),
                         resolve_device(job.cfg.device), job.cfg.amp)  # fmt: skip
        extras.test["teacher_logits"] = teacher_logits(teacher, data, ("test",))["test"]
    return extras


def train_or_load(job: Job, data: Dataset, teacher: TrainedModel | None = None,
                  progress: bool = False, verbose: bool = True) -> TrainedModel:  # fmt: skip
    """Load a finished checkpoint, or prepare the job's method (given a teacher) and train.

    Seeding happens after :meth:`~xdx_lib.distill.method.Method.prepare` and right before the
    model is built, so a run's initial weights depend on its seed alone. Given a teacher,
    the method's :meth:`~xdx_lib.distill.method.Method.attach` runs on the trained or loaded model
    (``kd_cae`` attaches its CAE). Under ``torchrun`` every rank calls this alike
    (:func:`~xdx_lib.training.loop.fit` says how they share the work); it first sets the rank's
    GPU, before anything is put on one.
    """
    distributed()
    cfg, method = job.cfg, job.method
    device = resolve_device(cfg.device)
    key = job.meta["key"]
    if checkpoint_epochs(job.path) >= job.epochs:
        seed_everything(job.seed)
        model = method.build_model(data.in_channels, data.num_classes)
        model.to(device, memory_format=torch.channels_last)  # as it trained (fit)
        ckpt = load_checkpoint(job.path, model, job.meta)
        history = list(ckpt["history"])
    else:
        model, history = _train(job, data, teacher, device, progress, verbose)
    if teacher is not None:
        with rank_zero_first():  # rank 0 pre-trains what is attached and caches it
            method.attach(teacher, data)
    return TrainedModel(model.eval(), method, job.path, history, key)


def _train(job: Job, data: Dataset, teacher: TrainedModel | None, device: torch.device,
           progress: bool, verbose: bool) -> tuple[nn.Module, list[dict]]:  # fmt: skip
    """Prepare the job's method (given a teacher), then seed, build and train its model;
    returns the model and its history."""
    method = job.method
    extras = _extras(job, data, teacher)
    seed_everything(job.seed)
    model = method.build_model(data.in_channels, data.num_classes)
    schedule, hardware, checkpointing = loop_records(job, device)
    history = fit(model, method, getattr(data, job.images), data.test, schedule=schedule,
                  hardware=hardware, checkpointing=checkpointing, extras=extras,
                  reporting=Reporting(verbose=verbose, progress=progress))  # fmt: skip
    return model, history


def loop_records(job: Job, device: torch.device) -> tuple[Schedule, Hardware, Checkpointing]:
    """What :func:`~xdx_lib.training.loop.fit` is told about a job: the one place where a config's
    fields become the loop's records.

    The schedule takes the config's batch size, learning rate and weight decay, and the
    job's own epochs, seed and augmentation (a teacher's ``teacher_epochs``,
    ``teacher_seed`` and ``teacher_augment``, a student's ``student_epochs``, ``seed`` and
    ``augment``); the hardware the resolved ``device``, ``amp`` and ``compile``.
    """
    cfg = job.cfg
    schedule = Schedule(epochs=job.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                        weight_decay=cfg.weight_decay, seed=job.seed, augment=job.augment)
    hardware = Hardware(device=device, precision=cfg.amp, compile=cfg.compile)
    return schedule, hardware, Checkpointing(path=job.path, meta=job.meta)


def teacher_job(cfg: RunConfig, data: Dataset) -> Job:
    """The teacher's job: trained from scratch on the labels of its own images
    (``teacher_subset``, the students' among them), keyed by
    :func:`xdx_lib.core.layout.teacher_key`."""
    key = layout.teacher_key(cfg)
    path = layout.teacher_path(cfg, key)
    meta = {"model": cfg.teacher, "in_channels": data.in_channels,
            "num_classes": data.num_classes, "key": key}  # fmt: skip
    method = create_method(dataclasses.replace(cfg, method="scratch", student=cfg.teacher))
    return Job(cfg, method, path, meta, cfg.teacher_epochs, cfg.teacher_seed,
               cfg.teacher_augment, images="teacher_split")  # fmt: skip


def student_job(cfg: RunConfig, teacher: TrainedModel) -> Job:
    """A student's job, keyed by its config fields, its method's
    options and the key of the teacher it learns from (:func:`xdx_lib.core.layout.student_key`).

    The key's ``method`` is the one whose training makes the student
    (:attr:`~xdx_lib.distill.method.Method.trains_as`): ``kd_cae`` shares ``kd``'s students, key,
    folder and checkpoint, and loads what ``kd`` trained (or trains it for both).
    """
    method = create_method(cfg)
    key = layout.student_key(cfg, method.option_names(), method.trains_as, teacher.key)
    meta = {"method": method.trains_as, "model": cfg.student, "key": key}
    return Job(cfg, method, layout.student_path(cfg, method.trains_as, key), meta,
               cfg.student_epochs, cfg.seed, cfg.augment)  # fmt: skip


def train_teacher(
    cfg: RunConfig, data: Dataset | None = None, progress: bool = False, verbose: bool = True
) -> TrainedModel:
    """Train the config's teacher, or load it from the run cache when it is there.

    Trained with standard augmentation when ``teacher_augment`` (the default); its logits
    and maps are computed afterwards, on the un-augmented images.
    """
    cfg = cfg.resolved()
    data = data or load_data(cfg)
    return train_or_load(teacher_job(cfg, data), data, None, progress, verbose)


def train_student(
    cfg: RunConfig,
    data: Dataset | None = None,
    teacher: TrainedModel | None = None,
    progress: bool = False,
    verbose: bool = True,
) -> TrainedModel:
    """Train (or load) the student of ``cfg.method`` and ``cfg.seed`` for ``cfg``'s teacher.

    The teacher is trained or loaded first when not given; the signals the method declares
    are cached (or, with ``teacher_signal: online``, computed on each batch). Every
    student's history records its agreement with the teacher and the Grad-CAM tracking of
    :meth:`~xdx_lib.distill.method.Method.epoch_metrics`.
    """
    cfg = cfg.resolved()
    data = data or load_data(cfg)
    teacher = teacher or train_teacher(cfg, data, progress=progress, verbose=verbose)
    return train_or_load(student_job(cfg, teacher), data, teacher, progress, verbose)


class Session:
    """One config's data, teacher and students, each made once and then reused.

    ``Session(cfg).student(method="kd", seed=3)`` trains (or loads) that student with the
    session's data and teacher; asking again returns the same object. ``teacher()`` trains
    (or loads) the teacher, which a first ``student`` call does too. Variants of the
    config (another method, seed or option) share the data and the teacher, so a chapter or
    the runner loads each once. A variant that changes the data or the teacher is refused:
    make another session.

    Args:
        cfg: the base config (resolved against its profile here).
        data: the dataset, when already loaded (else loaded on first use).
        teacher: the config's teacher, when already trained or loaded (else on first use).
        verbose, progress: print per-epoch lines / show progress bars while training.
    """

    def __init__(self, cfg: RunConfig, data: Dataset | None = None,
                 teacher: TrainedModel | None = None, verbose: bool = False,
                 progress: bool = False):  # fmt: skip
        self.cfg = cfg.resolved()
        self.verbose, self.progress = verbose, progress
        self._data = data
        self._teacher = teacher
        self._students: dict[tuple[str, str], TrainedModel] = {}

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_data(self.cfg)
        return self._data

    def teacher(self) -> TrainedModel:
        """The config's teacher, trained or read from the run cache on the first call (which
        prints and shows progress as the session does); the same object after."""
        if self._teacher is None:
            self._teacher = train_teacher(self.cfg, self.data, self.progress, self.verbose)
        return self._teacher

    def config(self, **changes) -> RunConfig:
        """The session's config with ``changes`` (validated); the data and teacher must stay."""
        cfg = dataclasses.replace(self.cfg, **changes).resolved()
        moved = [k for k in layout.TEACHER_FIELDS if getattr(cfg, k) != getattr(self.cfg, k)]
        if moved:
            raise ValueError(f"{', '.join(moved)} change the data or the teacher; "
                             "make another Session for them")  # fmt: skip
        return cfg

    def student(self, *, verbose: bool | None = None, **changes) -> TrainedModel:
        """The student of the session's config with ``changes`` (method, seed, options).

        ``verbose``: print its per-epoch lines if it trains (None: as the session does), so
        that a caller can train quietly without changing the session.
        """
        job = student_job(self.config(**changes), self.teacher())
        # methods that share a checkpoint (kd, kd_cae) are still apart here: each attaches
        # its own parts to the model
        key = (job.method.name, job.meta["key"])
        if key not in self._students:
            loud = self.verbose if verbose is None else verbose
            self._students[key] = train_or_load(job, self.data, self.teacher(), self.progress,
                                                loud)  # fmt: skip
        return self._students[key]
