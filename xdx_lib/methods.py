"""Training methods: how a student is built, run forward and scored.

A method differs from another in one small hook, never in a copied training loop
(:func:`xdx_lib.train.fit` is the only loop). ``scratch`` trains on labels, ``kd``
adds Hinton's soft-target term; later methods (attention transfer, e2KD, XDistillation)
register themselves here too.
"""

from __future__ import annotations

import torch
from torch import nn

from . import losses
from .config import RunConfig
from .models import create_model
from .registry import Registry

METHODS = Registry("method")


class Method:
    """Train on the labels only: ``L = CE(S(x), y)``. The base of every method.

    Subclasses override one hook:

    * :meth:`build_model`: the network that is trained (and deployed);
    * :meth:`forward`: what one forward pass returns (at least ``logits``);
    * :meth:`loss_terms`: the named, already weighted terms whose sum is minimised.

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

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

    def prepare(self, teacher, data, extras: dict) -> dict:
        """Add what this method needs to the per-image ``extras`` before training.

        ``extras`` is ``{"train": {...}, "test": {...}}`` of tensors aligned with the
        splits; methods that learn from cached teacher maps add them here, once.
        """
        return extras

    def teacher_maps(self, teacher, data, split: str = "train") -> torch.Tensor:
        """The teacher's cached explanations of a split (``cfg.explainer``, ``cfg.map_target``).

        Computed once per (teacher checkpoint, explainer, split, subset) and cached on disk
        (:func:`xdx_lib.experiments.model_maps`); methods that learn from the teacher's
        explanations call this from :meth:`prepare`, never per epoch.
        """
        from .experiments import model_maps

        part = getattr(data, split)
        target = part.y if self.cfg.map_target == "label" else None
        return model_maps(teacher, part.x, self.cfg.explainer, split=split, target=target)

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        """The student network named by the config."""
        return create_model(self.cfg.student, in_channels, num_classes)

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """One forward pass; returns a dict with at least ``logits``."""
        return {"logits": model(batch["x"])}

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The class logits for images ``x`` (what evaluation and explainers see)."""
        return self.forward(model, {"x": x})["logits"]

    def epoch_metrics(self, model: nn.Module, split, extras: dict) -> dict[str, float]:
        """Extra numbers recorded after each epoch on the test split (none by default)."""
        return {}

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


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (hooks go on it)."""
    return getattr(model, "module", model)


@METHODS.register("at")
class AttentionTransfer(KD):
    r"""KD plus attention transfer (Zagoruyko & Komodakis 2017):
    ``L = L_KD + (at_beta / 2) * L_AT`` over the stages of student and teacher.

    The teacher runs on the fly (no gradient) because its attention maps are per-stage
    activations, which the cache of logits and maps does not hold.
    """

    name = "at"
    config_fields = ("alpha", "temperature", "at_beta")

    def prepare(self, teacher, data, extras: dict) -> dict:
        self.teacher = teacher.model.eval().requires_grad_(False)
        return extras

    def forward(self, model: nn.Module, batch: dict) -> dict:
        x = batch["x"]
        self.teacher.to(x.device)
        with losses.capture_outputs(_unwrap(model).stages) as s_feats:
            logits = model(x)
        with torch.no_grad(), losses.capture_outputs(self.teacher.stages) as t_feats:
            self.teacher(x)
        return {"logits": logits, "student_feats": list(s_feats), "teacher_feats": list(t_feats)}

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
    """

    name = "e2kd"
    needs_teacher_maps = True
    config_fields = ("alpha", "temperature", "e2kd_weight", "map_target")

    def prepare(self, teacher, data, extras: dict) -> dict:
        maps_cfg = self.cfg
        if maps_cfg.explainer != "gradcam":  # e2KD matches Grad-CAM by definition
            import dataclasses

            maps_cfg = dataclasses.replace(self.cfg, explainer="gradcam")
        extras["train"]["teacher_maps"] = Method(maps_cfg).teacher_maps(teacher, data, "train")
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


def create_method(cfg: RunConfig) -> Method:
    """The registered method named by ``cfg.method``."""
    from . import xdistill  # noqa: F401  (registers "xdistill")

    return METHODS.get(cfg.method)(cfg)
