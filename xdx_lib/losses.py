"""Loss terms of knowledge distillation. Each method is the cross-entropy plus its terms.

Notation: ``s`` and ``t`` are student and teacher logits ``[N, K]``, ``y`` labels,
``tau`` the softmax temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The usual cross-entropy with the true labels, averaged over the batch."""
    return F.cross_entropy(student_logits.float(), labels)
