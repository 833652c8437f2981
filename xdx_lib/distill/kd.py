r"""Knowledge distillation (Hinton, Vinyals & Dean 2015): the loss and the method.

The student matches the teacher's softened class probabilities as well as the labels:

.. math::
    L = (1 - a)\,\mathrm{CE}(S(x), y) + a\,\tau^2\,
        \mathrm{KL}\big(\mathrm{softmax}(t/\tau) \,\|\, \mathrm{softmax}(s/\tau)\big)

with ``s`` and ``t`` the student's and the teacher's logits ``[N, K]``, ``y`` the labels and
``tau`` the softmax temperature. :func:`kd_loss` is the second term, :class:`KD` the method
that trains a student with both (its options :class:`KDOptions`), reading the teacher's
logits in every batch. AT, e2KD and XDistillation build on :class:`KD`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from xdx_lib.distill.method import METHODS, Method, MethodOptions, cross_entropy
from xdx_lib.distill.signals import Signal, SignalKind


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float):
    r"""Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network".

    .. math::
        L_{KD} = \tau^2 \, \mathrm{KL}\big(\mathrm{softmax}(t/\tau) \,\|\,
                 \mathrm{softmax}(s/\tau)\big)

    averaged over the batch. The factor :math:`\tau^2` keeps the gradient's scale
    independent of the temperature, so the weight of this term need not change with it.

    Examples::

        >>> s = torch.tensor([[0.0, 0.0]]); t = torch.tensor([[0.0, 0.0]])
        >>> float(kd_loss(s, t, 4.0))
        0.0
    """
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * temperature**2


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / temperature)``: the teacher's "dark knowledge" at a temperature."""
    return F.softmax(logits.float() / temperature, dim=-1)


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


@METHODS.register("kd")
class KD(Method):
    r"""Hinton et al. (2015): ``L = (1 - a) CE(S, y) + a t^2 KL(p_T^t || p_S^t)``."""

    name = "kd"
    Options = KDOptions

    def signals(self) -> list[Signal]:
        return [Signal(SignalKind.LOGITS)]

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        a, t = self.opts.alpha, self.opts.temperature
        return {
            "ce": (1 - a) * cross_entropy(out["logits"], batch["y"]),
            "kd": a * kd_loss(out["logits"], batch["teacher_logits"], t),
        }
