"""e2KD (Parchami-Araghi et al. 2024, "Good Teachers Explain"): KD plus a Grad-CAM match.

The student's Grad-CAM, computed inside the graph so that the term trains the student
(:func:`gradcam_in_graph`), is pulled towards the teacher's with a cosine loss
(:func:`e2kd_loss`), on top of KD's terms (:class:`E2KD`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from xdx_lib.distill.kd import KD, KDOptions
from xdx_lib.distill.method import METHODS
from xdx_lib.distill.signals import Signal, SignalKind
from xdx_lib.models.features import captured


def gradcam_in_graph(logits: torch.Tensor, activations: torch.Tensor, target: torch.Tensor,
                     size: Sequence[int]) -> torch.Tensor:  # fmt: skip
    r"""Grad-CAM (Selvaraju et al. 2017) as a differentiable function of the network.

    .. math:: w_k = \frac{1}{HW}\sum_{ij} \frac{\partial y_c}{\partial A_{kij}},\qquad
              \mathrm{cam} = \mathrm{ReLU}\Big(\sum_k w_k A_k\Big)

    computed with ``create_graph=True``, so a loss on the map trains the network (e2KD).
    Returns ``[N, 1, *size]`` maps, bilinearly resized, not normalised.
    """
    score = logits.gather(1, target[:, None]).sum()
    grads = torch.autograd.grad(score, activations, create_graph=True)[0]
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(1, keepdim=True))
    return F.interpolate(cam.float(), size=tuple(size), mode="bilinear", align_corners=False)


def e2kd_loss(student_cam: torch.Tensor, teacher_maps: torch.Tensor) -> torch.Tensor:
    r"""e2KD's explanation term (Parchami-Araghi et al. 2024, "Good Teachers Explain"):
    ``mean_i (1 - cos(GradCAM_T(x_i), GradCAM_S(x_i)))`` over flattened maps. Both maps are
    the raw ReLU Grad-CAM, upsampled (the paper's code): cosine is scale-free but not
    shift-invariant, so a min-max normalised teacher map would be another target. A zero
    map has cosine 0 (the ``eps``), never NaN."""
    cos = F.cosine_similarity(student_cam.flatten(1), teacher_maps.float().flatten(1), dim=1,
                              eps=1e-8)  # fmt: skip
    return (1 - cos).mean()


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
    (:func:`xdx_lib.distill.e2kd.gradcam_in_graph`), so the term trains the student directly,
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
        return [Signal(SignalKind.LOGITS),
                Signal(SignalKind.MAPS, "gradcam", raw=True, target=target),
                Signal(SignalKind.TARGET_CLASS, target=target)]  # fmt: skip

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """The logits and the student's Grad-CAM of the target class, differentiable
        (its layer's output is read by a hook registered once per network)."""
        x = batch["x"]
        logits, (acts,) = captured(model, "gradcam_layer").run(model, x)
        cam = gradcam_in_graph(logits, acts, batch["target_class"], x.shape[-2:])
        return {"logits": logits, "cam": cam}

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(out, batch)
        terms["e2kd"] = self.opts.e2kd_weight * e2kd_loss(out["cam"],
                                                                 batch["teacher_maps"])
        return terms
