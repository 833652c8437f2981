r"""Attention transfer (Zagoruyko & Komodakis 2017, "Paying More Attention to Attention").

The student matches the teacher's spatial attention at each stage as well as KD's terms:

.. math::
    L = L_{KD} + \frac{\beta}{2} \sum_j \Big\| \frac{Q_S^j}{\|Q_S^j\|_2}
        - \frac{Q_T^j}{\|Q_T^j\|_2} \Big\|_2

where ``Q^j`` is the attention map of stage ``j``, the channel mean of the squared
activations (:func:`~xdx_lib.models.features.attention_map`). :func:`at_loss` is the term,
:class:`AttentionTransfer` the method.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xdx_lib.distill.kd import KD, KDOptions
from xdx_lib.distill.method import METHODS
from xdx_lib.distill.signals import Signal, SignalKind
from xdx_lib.models.features import attention_map, captured, match_stages


def at_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]):
    r"""Attention transfer, "Paying More Attention to Attention" (Zagoruyko & Komodakis 2017).

    .. math:: L_{AT} = \sum_j \operatorname{mean}\big(\hat Q_S^j - \hat Q_T^j\big)^2

    over matched stages ``j`` (the authors' code: ``(at(x) - at(y)).pow(2).mean()``, used
    with a weight ``beta / 2``, ``beta = 1000``). A student stage of another resolution is
    resized to the teacher's first.

    Raises:
        ValueError: student and teacher have different numbers of stages (never a silent
            ``zip`` that drops the extra ones).
    """
    if len(student_feats) != len(teacher_feats):
        raise ValueError(
            f"attention transfer matches stages one to one, but the student has "
            f"{len(student_feats)} and the teacher {len(teacher_feats)}; pair them first "
            "with match_stages(student_feats, teacher_feats)"
        )
    total = student_feats[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student_feats, teacher_feats):
        if s.shape[-2:] != t.shape[-2:]:
            s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
        total = total + (attention_map(s) - attention_map(t)).pow(2).mean()
    return total


@dataclass(frozen=True)
class ATOptions(KDOptions):
    """Attention transfer's options: KD's, and ``at_beta``, the weight of its term."""

    at_beta: float


@METHODS.register("at")
class AttentionTransfer(KD):
    r"""KD plus attention transfer (Zagoruyko & Komodakis 2017):
    ``L = L_KD + (at_beta / 2) * L_AT`` over the stages of student and teacher.

    The teacher's attention at each stage is a signal like its logits
    (:func:`xdx_lib.distill.signals.teacher_attention`): computed once for the training split, or on
    every augmented batch with ``teacher_signal: online``.
    """

    name = "at"
    Options = ATOptions

    def signals(self) -> list[Signal]:
        return [Signal(SignalKind.LOGITS), Signal(SignalKind.ATTENTION)]

    def forward(self, model: nn.Module, batch: dict) -> dict:
        """The logits and the student's stage outputs, read by hooks registered once per
        network (:func:`xdx_lib.models.features.captured`), which a compiled graph also runs."""
        logits, s_feats = captured(model, "stages").run(model, batch["x"])
        # different stage counts: pair by resolution, explicitly (never a silent zip)
        t_feats = match_stages(s_feats, list(batch["teacher_attention"]))
        return {"logits": logits, "student_feats": s_feats, "teacher_feats": t_feats}

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        terms = super().loss_terms(out, batch)
        terms["at"] = self.opts.at_beta / 2 * at_loss(out["student_feats"],
                                                             out["teacher_feats"])
        return terms
