"""Training methods: how a student is built, run forward, scored and tracked.

A method differs from another in one small hook, never in a copied training loop
(:func:`xdx_lib.train.fit` is the only student loop). ``scratch`` trains on labels,
``kd`` adds Hinton's soft-target term, ``at`` attention transfer and ``e2kd`` e2KD's
Grad-CAM match; XDistillation (:mod:`xdx_lib.xdistill`) registers itself in the same
:data:`METHODS`. Importing the package ``xdx_lib`` imports both modules, so every method
is registered in that one place.

Layer: above the trained models and their cached signals (:mod:`xdx_lib.trained`), the
losses, the models and the explainers; below the config and the runner. A method reads
its options from a :class:`~xdx_lib.config.RunConfig` but never imports the config module.
"""

from __future__ import annotations

import torch
from torch import nn

from . import losses
from ._utils import channels_last
from .explain import explain
from .metrics import agreement, pearson
from .models import create_model
from .registry import Registry
from .trained import model_maps

#: The training methods by name (``scratch``, ``kd``, ``at``, ``e2kd``, ``xdistill``).
METHODS = Registry("method")

#: The classes a teacher's map may explain, its prediction (``pred``) or the label.
MAP_TARGETS = ("pred", "label")

#: Test images on which each student's Grad-CAM is compared with the teacher's every epoch.
TRACKED_TEST_IMAGES = 500


def gradcam_agreement(model: nn.Module, x: torch.Tensor, teacher_maps: torch.Tensor) -> float:
    """Mean Pearson r between the model's Grad-CAM and the teacher's on the first images.

    Tracked after every epoch, so that the book can show a student's explanations
    approaching (or not) the teacher's as it trains.
    """
    with torch.enable_grad():
        maps = explain(model, x[: len(teacher_maps)], "gradcam")
    return pearson(maps, teacher_maps).mean().item()


class Method:
    """Train on the labels only: ``L = CE(S(x), y)``. The base of every method.

    Subclasses override one hook:

    * :meth:`build_model`: the network that is trained (and deployed);
    * :meth:`forward`: what one forward pass returns (at least ``logits``);
    * :meth:`loss_terms`: the named, already weighted terms whose sum is minimised.

    After each epoch, :meth:`epoch_metrics` adds the method's own numbers to the history:
    for every student, agreement with the teacher's predictions and the Pearson r of its
    Grad-CAM with the teacher's on :data:`TRACKED_TEST_IMAGES` test images.

    Class attributes say what the training loop must provide in each batch:
    ``needs_teacher_logits`` (the cached teacher logits, ``batch["teacher_logits"]``)
    and ``needs_teacher_maps`` (cached teacher explanations, ``batch["teacher_maps"]``).
    """

    name = "scratch"
    needs_teacher_logits = False
    needs_teacher_maps = False
    #: Config fields (beyond data, model and schedule) that change what this method trains:
    #: they enter the student's cache key, so a sweep of one method's option never
    #: invalidates another method's students.
    config_fields: tuple[str, ...] = ()

    def __init__(self, cfg):
        self.cfg = cfg
        self.tracked_maps: torch.Tensor | None = None

    def prepare(self, teacher, data, extras: dict) -> dict:
        """Add what this method needs to the per-image ``extras`` before training.

        ``extras`` is ``{"train": {...}, "test": {...}}`` of tensors aligned with the
        splits; methods that learn from cached teacher maps add them here, once. The base
        also fetches the teacher's Grad-CAM of the tracked test images. Not called for a
        student that the run cache already holds.
        """
        n_track = min(TRACKED_TEST_IMAGES, len(data.test))
        self.tracked_maps = model_maps(teacher, data.test.x[:n_track], "gradcam")
        return extras

    def teacher_maps(self, teacher, data, split: str = "train",
                     explainer: str | None = None, **settings) -> torch.Tensor:  # fmt: skip
        """The teacher's cached explanations of a split (``explainer``, default
        ``cfg.explainer``, of the class ``cfg.map_target`` names; ``settings`` are the
        explainer's, e.g. ``normalize=False`` for raw Grad-CAM).

        Computed once per (teacher checkpoint, explainer, split, subset) and cached on disk
        (:func:`xdx_lib.trained.model_maps`); methods that learn from the teacher's
        explanations call this from :meth:`prepare`, never per epoch.
        """
        part = getattr(data, split)
        target = part.y if self.cfg.map_target == "label" else None
        return model_maps(teacher, part.x, explainer or self.cfg.explainer, split=split,
                          target=target, **settings)  # fmt: skip

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        """The student network named by the config."""
        return create_model(self.cfg.student, in_channels, num_classes)

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """One forward pass; returns a dict with at least ``logits``."""
        return {"logits": model(batch["x"])}

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The class logits for images ``x`` (what evaluation and explainers see)."""
        return self.forward(model, {"x": x})["logits"]

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
            out["gradcam_pearson"] = gradcam_agreement(model, split.x, self.tracked_maps)
        return out

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Named loss terms, weights included; the loop minimises their sum."""
        return {"ce": losses.cross_entropy(out["logits"], batch["y"])}


METHODS.register("scratch")(Method)


@METHODS.register("kd")
class KD(Method):
    r"""Hinton et al. (2015): ``L = (1 - a) CE(S, y) + a t^2 KL(p_T^t || p_S^t)``."""

    name = "kd"
    needs_teacher_logits = True
    config_fields = ("alpha", "temperature")

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        a, t = self.cfg.alpha, self.cfg.temperature
        return {
            "ce": (1 - a) * losses.cross_entropy(out["logits"], batch["y"]),
            "kd": a * losses.kd_loss(out["logits"], batch["teacher_logits"], t),
        }


@torch.no_grad()
def teacher_attention(teacher: nn.Module, x: torch.Tensor,
                      batch_size: int = 512) -> list[torch.Tensor]:  # fmt: skip
    """The teacher's attention map of every image at each stage, for attention transfer.

    Each stage's entry is ``[N, 1, H, W]`` on the CPU: the one-channel "feature" whose
    attention map (:func:`xdx_lib.losses.attention_map`) is the teacher's, i.e. the square
    root of its normalised attention. :func:`~xdx_lib.losses.at_loss` and
    :func:`~xdx_lib.losses.match_stages` read it as they read the teacher's activations,
    at 1/C of their size; on 2 CPU cores an AT epoch then costs about a KD epoch, not 3x.
    """
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    out: list[list[torch.Tensor]] = []
    try:
        for start in range(0, len(x), batch_size):
            xb = channels_last(x[start : start + batch_size].to(device))
            with losses.capture_outputs(teacher.stages) as feats:
                teacher(xb)
            out.append([losses.attention_map(f).sqrt().view(len(xb), 1, *f.shape[-2:]).cpu()
                        for f in feats])  # fmt: skip
    finally:
        teacher.train(was_training)
    return [torch.cat(stage) for stage in zip(*out)]


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (hooks go on it)."""
    return getattr(model, "module", model)


@METHODS.register("at")
class AttentionTransfer(KD):
    r"""KD plus attention transfer (Zagoruyko & Komodakis 2017):
    ``L = L_KD + (at_beta / 2) * L_AT`` over the stages of student and teacher.

    With cached teacher signals (the default) the teacher's attention maps of the training
    images are computed once, in :meth:`prepare` (:func:`teacher_attention`), like its
    logits; with ``teacher_signal: online`` (augmented batches) the teacher runs on every
    batch, without gradient.
    """

    name = "at"
    config_fields = ("alpha", "temperature", "at_beta")
    cached_stages = 0  # teacher stages whose attention :meth:`prepare` cached

    def prepare(self, teacher, data, extras: dict) -> dict:
        self.teacher = teacher.model.eval().requires_grad_(False)
        extras = super().prepare(teacher, data, extras)
        self.cached_stages = 0
        if self.cfg.teacher_signal == "cached":
            feats = teacher_attention(self.teacher, data.train.x)
            for j, f in enumerate(feats):
                extras["train"][f"teacher_attention_{j}"] = f
            self.cached_stages = len(feats)
        return extras

    def forward(self, model: nn.Module, batch: dict) -> dict:
        x = batch["x"]
        with losses.capture_outputs(_unwrap(model).stages) as s_feats:
            logits = model(x)
        if "teacher_attention_0" in batch:
            t_feats = [batch[f"teacher_attention_{j}"] for j in range(self.cached_stages)]
        else:
            self.teacher.to(x.device)
            with torch.no_grad(), losses.capture_outputs(self.teacher.stages) as t_feats:
                self.teacher(x)
        # different stage counts: pair by resolution, explicitly (never a silent zip)
        t_feats = losses.match_stages(list(s_feats), list(t_feats))
        return {"logits": logits, "student_feats": list(s_feats), "teacher_feats": t_feats}

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(out, batch)
        terms["at"] = self.cfg.at_beta / 2 * losses.at_loss(out["student_feats"],
                                                             out["teacher_feats"])
        return terms


@METHODS.register("e2kd")
class E2KD(KD):
    r"""Explanation-enhanced KD (Parchami-Araghi et al. 2024):
    ``L = L_KD + e2kd_weight * mean(1 - cos(GradCAM_T(x, c), GradCAM_S(x, c)))``.

    ``c`` is the teacher's predicted class (or the label with ``map_target: label``); the
    teacher's Grad-CAM comes from the cache, the student's is computed inside the graph
    (:func:`xdx_lib.losses.gradcam_in_graph`), so the term trains the student directly,
    with no autoencoder. One double backward per step makes it the dearest method here.
    Both maps are raw, ``ReLU(sum_k w_k A_k)`` upsampled bilinearly and never min-max
    normalised, as in the paper's reference code (cosine ignores a scale, not a shift).
    """

    name = "e2kd"
    needs_teacher_maps = True
    config_fields = ("alpha", "temperature", "e2kd_weight", "map_target")

    def prepare(self, teacher, data, extras: dict) -> dict:
        extras = super().prepare(teacher, data, extras)
        # e2KD matches the raw Grad-CAM by definition, whatever cfg.explainer says
        extras["train"]["teacher_maps"] = self.teacher_maps(teacher, data, "train", "gradcam",
                                                            normalize=False)  # fmt: skip
        by_label = self.cfg.map_target == "label"
        target = data.train.y if by_label else extras["train"]["teacher_logits"].argmax(1)
        extras["train"]["target_class"] = target
        return extras

    def forward(self, model: nn.Module, batch: dict) -> dict:
        x = batch["x"]
        with losses.capture_outputs([_unwrap(model).gradcam_layer]) as acts:
            logits = model(x)
        cam = losses.gradcam_in_graph(logits, acts[0], batch["target_class"], x.shape[-2:])
        return {"logits": logits, "cam": cam}

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(out, batch)
        terms["e2kd"] = self.cfg.e2kd_weight * losses.e2kd_loss(out["cam"], batch["teacher_maps"])
        return terms


def create_method(cfg) -> Method:
    """The registered method named by ``cfg.method`` (a :class:`~xdx_lib.config.RunConfig`)."""
    return METHODS.get(cfg.method)(cfg)
