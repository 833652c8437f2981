"""Training methods: how a student is built, run forward, scored and tracked, with the
options each method reads and the teacher signals it declares.

A method differs from another in small hooks of :class:`Method`, never in a copied training
loop (:func:`xdx_lib.train.fit` is the only student loop). ``scratch`` (:class:`Scratch`)
trains on labels,
``kd`` adds Hinton's soft-target term, ``at`` attention transfer and ``e2kd`` e2KD's
Grad-CAM match; XDistillation (:mod:`xdx_lib.xdistill`) registers itself, and ``kd_cae``
(a KD student with XDistillation's pre-trained CAE attached), in the same :data:`METHODS`.
Importing the package ``xdx_lib`` imports both modules, so every method is registered in
that one place.

Each method has a small options dataclass (``Options``: :class:`KDOptions`, ...) made from
the run's :class:`~xdx_lib.config.RunConfig`; its fields are the config fields that change
what the method trains (they enter the student's cache key), and the class checks the
config rules the method's training imposes (:meth:`MethodOptions.check`), which the config's
validation runs through the registry without building the method. Each lists what it reads from
the teacher in every batch (:meth:`Method.signals`); :mod:`xdx_lib.signals` provides them,
from the cache or online, and the method never learns which.

Layer: above the trained models and the teacher signals, the losses, the models and the
explainers; below the session and the runner.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from . import losses
from .config import ConfigError, RunConfig
from .explain import explain
from .metrics import agreement, pearson
from .models import create_model
from .registry import Registry
from .signals import Signal
from .trained import model_maps

#: The training methods by name (``scratch``, ``kd``, ``at``, ``e2kd``, ``xdistill``,
#: ``kd_cae``), each with the options class it declares (``Options``), which the config
#: validates through :func:`xdx_lib.registry.options_class`.
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
        train with; raises one :class:`~xdx_lib.config.ConfigError` line.

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


@dataclass(frozen=True)
class KDOptions(MethodOptions):
    """Knowledge distillation's options; KD reads the teacher's logits in every batch.

    Attributes:
        alpha: weight of the KD term; ``1 - alpha`` weighs cross-entropy.
        temperature: the softmax temperature of both distributions.
    """

    reads_teacher: ClassVar[bool] = True

    alpha: float
    temperature: float


def options_from(cfg: RunConfig, options: type) -> object:
    """The ``options`` dataclass filled from the config fields of the same names."""
    return options(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(options)})


class Method:
    """The base of every method: the hooks a method overrides, whose defaults train on the
    labels only, ``L = CE(S(x), y)`` (registered as :class:`Scratch`).

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

    #: The name the method is registered under (:class:`~xdx_lib.methods.Scratch` and every
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
        return {"ce": losses.cross_entropy(out["logits"], batch["y"])}


@METHODS.register("scratch")
class Scratch(Method):
    """Train on the labels only, ``L = CE(S(x), y)``: :class:`Method`'s hooks as they are."""

    name = "scratch"


@METHODS.register("kd")
class KD(Method):
    r"""Hinton et al. (2015): ``L = (1 - a) CE(S, y) + a t^2 KL(p_T^t || p_S^t)``."""

    name = "kd"
    Options = KDOptions

    def signals(self) -> list[Signal]:
        return [Signal("logits")]

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        a, t = self.opts.alpha, self.opts.temperature
        return {
            "ce": (1 - a) * losses.cross_entropy(out["logits"], batch["y"]),
            "kd": a * losses.kd_loss(out["logits"], batch["teacher_logits"], t),
        }


@dataclass(frozen=True)
class ATOptions(KDOptions):
    """Attention transfer's options: KD's, and ``at_beta``, the weight of its term."""

    at_beta: float


@METHODS.register("at")
class AttentionTransfer(KD):
    r"""KD plus attention transfer (Zagoruyko & Komodakis 2017):
    ``L = L_KD + (at_beta / 2) * L_AT`` over the stages of student and teacher.

    The teacher's attention at each stage is a signal like its logits
    (:func:`xdx_lib.signals.teacher_attention`): computed once for the training split, or on
    every augmented batch with ``teacher_signal: online``.
    """

    name = "at"
    Options = ATOptions

    def signals(self) -> list[Signal]:
        return [Signal("logits"), Signal("attention")]

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """The logits and the student's stage outputs, read by hooks registered once per
        network (:func:`xdx_lib.losses.captured`), which a compiled graph also runs."""
        logits, s_feats = losses.captured(model, "stages").run(model, batch["x"])
        # different stage counts: pair by resolution, explicitly (never a silent zip)
        t_feats = losses.match_stages(s_feats, list(batch["teacher_attention"]))
        return {"logits": logits, "student_feats": s_feats, "teacher_feats": t_feats}

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(out, batch)
        terms["at"] = self.opts.at_beta / 2 * losses.at_loss(out["student_feats"],
                                                             out["teacher_feats"])
        return terms


@dataclass(frozen=True)
class E2KDOptions(KDOptions):
    """e2KD's options: KD's, the weight of its term and the class the maps explain; e2KD
    cannot train compiled (``cannot_compile``, see :class:`E2KD`)."""

    cannot_compile: ClassVar[str] = (
        "its loss backpropagates through the student's Grad-CAM, a gradient taken inside "
        "the network (a double backward), which torch.compile's graphs do not support")

    e2kd_weight: float
    map_target: str


@METHODS.register("e2kd")
class E2KD(KD):
    r"""Explanation-enhanced KD (Parchami-Araghi et al. 2024):
    ``L = L_KD + e2kd_weight * mean(1 - cos(GradCAM_T(x, c), GradCAM_S(x, c)))``.

    ``c`` is the teacher's predicted class (or the label with ``map_target: label``); the
    teacher's Grad-CAM is a signal, the student's is computed inside the graph
    (:func:`xdx_lib.losses.gradcam_in_graph`), so the term trains the student directly,
    with no autoencoder. One double backward per step makes it the dearest method here.
    Both maps are raw, ``ReLU(sum_k w_k A_k)`` upsampled bilinearly and never min-max
    normalised, as in the paper's reference code (cosine ignores a scale, not a shift).

    ``compile: true`` is refused with e2KD (:class:`E2KDOptions` says why): the
    Grad-CAM needs the gradient of the logits with respect to a layer inside the network,
    and a compiled graph neither exposes that layer's output as a node the logits depend on
    nor differentiates its own backward a second time.
    """

    name = "e2kd"
    Options = E2KDOptions

    def signals(self) -> list[Signal]:
        target = self.opts.map_target
        return [Signal("logits"), Signal("maps", "gradcam", raw=True, target=target),
                Signal("target_class", target=target)]  # fmt: skip

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """The logits and the student's Grad-CAM of the target class, differentiable
        (its layer's output is read by a hook registered once per network)."""
        x = batch["x"]
        logits, (acts,) = losses.captured(model, "gradcam_layer").run(model, x)
        cam = losses.gradcam_in_graph(logits, acts, batch["target_class"], x.shape[-2:])
        return {"logits": logits, "cam": cam}

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(out, batch)
        terms["e2kd"] = self.opts.e2kd_weight * losses.e2kd_loss(out["cam"],
                                                                 batch["teacher_maps"])
        return terms


def create_method(cfg: RunConfig) -> Method:
    """The registered method named by ``cfg.method`` (a :class:`~xdx_lib.config.RunConfig`)."""
    return METHODS.get(cfg.method)(cfg)
