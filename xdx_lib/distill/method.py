"""A training method: the hooks every method overrides, its options and the registry.

A method differs from another in small hooks of :class:`Method`, never in a copied training
loop (:func:`xdx_lib.training.loop.fit` is the only student loop). The base trains on the
labels alone (``L = CE(S(x), y)``; :class:`~xdx_lib.distill.scratch.Scratch`); each other
method has a file of its own in this folder (``kd``, ``at``, ``e2kd``, ``xdistill``, and
``kd_cae`` beside XDistillation), all registered in :data:`METHODS`.

Each method has a small options dataclass (``Options``: :class:`MethodOptions` and its
subclasses) made from the run's :class:`~xdx_lib.core.config.RunConfig`; its fields are the
config fields that change what the method trains (they enter the student's cache key), and
the class checks the config rules the method's training imposes
(:meth:`MethodOptions.check`), which the config's validation runs through the registry
without building the method. Each lists what it reads from the teacher in every batch
(:meth:`Method.signals`); :mod:`xdx_lib.distill.signals` provides them, from the cache or
online, and the method never learns which.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xdx_lib.core.config import ConfigError, RunConfig
from xdx_lib.core.registry import Registry
from xdx_lib.distill.signals import Signal
from xdx_lib.explain import explain
from xdx_lib.metrics.predictions import agreement
from xdx_lib.metrics.similarity import pearson
from xdx_lib.models.classifiers import create_model
from xdx_lib.training.trained_model import model_maps


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The usual cross-entropy with the true labels, averaged over the batch."""
    return F.cross_entropy(student_logits.float(), labels)


#: The training methods by name (``scratch``, ``kd``, ``at``, ``e2kd``, ``xdistill``,
#: ``kd_cae``), each with the options class it declares (``Options``), which the config
#: validates through :func:`xdx_lib.core.registry.options_class`.
METHODS = Registry("method", options_attribute="Options")


#: Test images on which each student's Grad-CAM is compared with the teacher's every epoch.
TRACKED_TEST_IMAGES = 500


def tracked_gradcam_pearson(model: nn.Module, x: torch.Tensor,
                            teacher_maps: torch.Tensor) -> float:  # fmt: skip
    """Mean Pearson r between the model's Grad-CAM and the teacher's on the first images.

    Tracked after every epoch, so that the book can show a student's explanations
    approaching (or not) the teacher's as it trains.
    """
    with torch.enable_grad():
        maps = explain(model, x[: len(teacher_maps)], "gradcam")
    return pearson(maps, teacher_maps).mean().item()


@dataclass(frozen=True)
class MethodOptions:
    """The base of every method's options: its fields are the method's own config fields,
    and :meth:`check` refuses the configs the method cannot train with.

    Two class attributes state what the checks need to know of the method's training, so
    that the config's validation reads them here, with no method built:

    * ``reads_teacher``: whether the method reads teacher signals in every training batch
      (its :meth:`Method.signals` are not empty);
    * ``cannot_compile``: why the method cannot train through ``torch.compile``, or empty
      when it can.
    """

    reads_teacher: ClassVar[bool] = False
    cannot_compile: ClassVar[str] = ""

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        """Refuse a config whose other fields the method named by ``cfg.method`` cannot
        train with; raises one :class:`~xdx_lib.core.config.ConfigError` line.

        Augmented batches need the teacher's signals of the augmented images: a method that
        reads the teacher needs ``teacher_signal: online`` with ``augment: true``. A method
        that cannot train compiled refuses ``compile: true``, saying why.
        """
        if cfg.augment and cfg.teacher_signal == "cached" and cls.reads_teacher:
            raise ConfigError(
                f"config: augment=True with teacher_signal='cached' would train method "
                f"{cfg.method!r} on teacher logits and maps of un-augmented images; "
                "set teacher_signal: online or augment: false"
            )
        if cfg.compile and cls.cannot_compile:
            raise ConfigError(f"config: compile=True with method {cfg.method!r}: "
                              f"{cls.cannot_compile}; set compile: false")  # fmt: skip


@dataclass(frozen=True)
class NoOptions(MethodOptions):
    """A method without options of its own that reads nothing of the teacher (``scratch``)."""


def options_from(cfg: RunConfig, options: type) -> object:
    """The ``options`` dataclass filled from the config fields of the same names."""
    return options(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(options)})


class Method:
    """The base of every method: the hooks a method overrides, whose defaults train on the
    labels only, ``L = CE(S(x), y)`` (registered as
    :class:`~xdx_lib.distill.scratch.Scratch`).

    Subclasses override a few hooks:

    * ``Options``: the dataclass of the method's own config fields (``self.opts``) and of
      the config rules its training imposes (a :class:`MethodOptions`);
    * :meth:`signals`: what it reads from the teacher in every training batch;
    * :meth:`prepare`: one-off work with the teacher before training (CAE pre-training);
    * :meth:`build_model`: the network that is trained (and deployed);
    * :meth:`forward`: what one forward pass returns (at least ``logits``);
    * :meth:`loss_terms`: the named, already weighted terms whose sum is minimised;
    * :meth:`deployed_maps`: the explanation the deployed model gives itself, if any;
    * :meth:`attach`: what the method adds to a model once it is trained or loaded.

    A method that trains exactly as another and only adds to the trained model names that
    one in ``shares_training_of``: it then shares its students (:attr:`trains_as` is the
    method in their cache key, path and checkpoint), so they are trained once.

    After each epoch, :meth:`epoch_metrics` adds the method's own numbers to the history:
    for every student, agreement with the teacher's predictions and the Pearson r of its
    Grad-CAM with the teacher's on :data:`TRACKED_TEST_IMAGES` test images.
    """

    #: The name the method is registered under (:class:`~xdx_lib.distill.scratch.Scratch` and every
    #: subclass set it).
    name: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = NoOptions
    #: The method whose students this one shares, or empty for students of its own.
    shares_training_of: ClassVar[str] = ""

    @property
    def may_leave_parameters_unused(self) -> bool:
        """Whether some trainable parameters of :meth:`build_model`'s network may get no
        gradient from :meth:`loss_terms` (none here). Under DDP such a network trains with
        ``find_unused_parameters``, which costs a walk of the autograd graph every step,
        so a method asks for it only when it needs it."""
        return False

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.opts = options_from(cfg, self.Options)
        self.tracked_maps: torch.Tensor | None = None
        #: Identifies what :meth:`attach` added (empty when nothing), for the keys of scores.
        self.attached_key: str = ""

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The config fields of ``Options``: part of the student's cache key, so that a
        sweep of one method's option never invalidates another method's students."""
        return tuple(f.name for f in dataclasses.fields(cls.Options))

    @classmethod
    def training_name(cls) -> str:
        """The name of the method whose training makes this one's students (its own, or
        ``shares_training_of``). It is the ``method`` of the student's cache key, folder
        and checkpoint, so two methods that train alike train once."""
        return cls.shares_training_of or cls.name

    @property
    def trains_as(self) -> str:
        """:meth:`training_name`, read from an instance."""
        return self.training_name()

    def signals(self) -> list[Signal]:
        """What this method reads from the teacher in every training batch (none)."""
        return []

    def prepare(self, teacher, data) -> None:
        """One-off work with the teacher before training; not called for a student the run
        cache already holds. The base fetches the teacher's Grad-CAM of the tracked test
        images (from the maps cache)."""
        n_track = min(TRACKED_TEST_IMAGES, len(data.test))
        self.tracked_maps = model_maps(teacher, data.test.x[:n_track], "gradcam")

    def attach(self, teacher, data) -> None:
        """One-off work with the teacher after the model is trained or loaded from the run
        cache (a CAE the deployed model returns maps from); the base attaches nothing."""

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        """The student network named by the config."""
        return create_model(self.cfg.student, in_channels, num_classes)

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """One forward pass; returns a dict with at least ``logits``."""
        return {"logits": model(batch["x"])}

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The class logits for images ``x`` (what evaluation and explainers see)."""
        return model(x)

    def deployed_maps(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """The explanation maps the deployed model returns with its prediction, or None
        when it returns none (its explanation is then a post-hoc one, its Grad-CAM)."""
        return None

    def attached_modules(self) -> list[nn.Module]:
        """Networks the deployed model runs beside the trained one (none here; ``kd_cae``:
        its CAE), counted in its parameters and latency."""
        return []

    #: The teacher's explainer the deployed maps imitate (for XDistillation, its option).
    imitated_explainer = "gradcam"

    def epoch_metrics(self, model: nn.Module, split, extras: dict,
                      logits: torch.Tensor) -> dict[str, float]:  # fmt: skip
        """Numbers recorded after each epoch on the test split, beside accuracy and loss.

        ``logits`` are the model's on ``split``. ``agreement`` with the teacher when
        ``extras`` holds its ``teacher_logits``; ``gradcam_pearson`` once :meth:`prepare`
        has fetched the teacher's tracked maps. A teacher (no teacher of its own) gets none.
        """
        out = {}
        if "teacher_logits" in extras:
            out["agreement"] = agreement(logits, extras["teacher_logits"])
        if self.tracked_maps is not None:
            out["gradcam_pearson"] = tracked_gradcam_pearson(model, split.x, self.tracked_maps)
        return out

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Named loss terms, weights included; the loop minimises their sum."""
        return {"ce": cross_entropy(out["logits"], batch["y"])}


def create_method(cfg: RunConfig) -> Method:
    """The registered method named by ``cfg.method`` (a :class:`~xdx_lib.core.config.RunConfig`)."""
    return METHODS.get(cfg.method)(cfg)
