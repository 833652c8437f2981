"""XDistillation's explanation loss ``L_exp`` between the CAE's map and the teacher's.

``1 - Pearson r`` per image by default (:func:`pearson_loss`); MSE, BCE and SSIM are
options, each registered in :data:`EXPLANATION_LOSSES` and picked by name with
:func:`explanation_loss`. Used by the CAE's pre-training and by XDistillation.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from xdx_lib.core.registry import Registry

#: Explanation losses ``L_exp(pred, target)`` by name; each returns a scalar (batch mean).
EXPLANATION_LOSSES = Registry("explanation loss")


@EXPLANATION_LOSSES.register("mse")
def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""Mean squared error over pixels and images, :math:`\frac{1}{NHW}\sum (g(x) - e_T)^2`."""
    return F.mse_loss(pred, target)


@EXPLANATION_LOSSES.register("bce")
def bce_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""Pixel-wise binary cross-entropy with soft targets in [0, 1].

    :math:`-\frac{1}{NHW}\sum e_T \log g(x) + (1 - e_T) \log(1 - g(x))`. Its minimum over
    ``pred`` is at ``pred = target``, where it equals the target's entropy: zero only for
    binary targets. Logs are clamped at -100 (PyTorch's convention), so a saturated pixel
    gives a large finite loss, not inf.
    """
    return F.binary_cross_entropy(pred, target)


@EXPLANATION_LOSSES.register("ssim")
def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - SSIM`` (Wang et al. 2004; torchmetrics, Gaussian 11x11 window, ``data_range=1``).

    SSIM compares local means, contrasts and structure rather than pixel values, so it
    rewards a map of the right shape even when its overall level is off. Differentiable.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    return 1.0 - structural_similarity_index_measure(pred, target, data_range=1.0)


@EXPLANATION_LOSSES.register("pearson")
def pearson_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""``1 - r`` per image, averaged: :math:`\frac{1}{N}\sum_i (1 - r(g(x_i), e_T(x_i)))`.

    Pearson's r over each image's pixels is blind to the map's offset and scale, so this
    loss is of the same size (between 0 and 2) whatever the maps' levels, unlike MSE of two
    [0, 1] maps, which is small beside cross-entropy and KD and makes the weight ``b``
    mean little. It asks for the map's *shape*, which is what the similarity metrics
    score. A constant map has no r; a small epsilon keeps the gradient finite there.
    """
    p = pred.flatten(1)
    t = target.flatten(1)
    p = p - p.mean(dim=1, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    r = (p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1) + 1e-8)
    return (1 - r).mean()


def explanation_loss(pred: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """The CAE's loss ``L_exp(g(x), e_T(x))``: ``"mse"``, ``"bce"``, ``"ssim"`` or ``"pearson"``.

    XDistillation's objective weighs it by ``b``. Computed in float32 with autocast off, so
    that it is the same number under AMP (and BCE, which autocast refuses, works there).

    Args:
        pred: the CAE's maps ``[N, 1, H, W]`` in [0, 1].
        target: the teacher's maps, same shape, in [0, 1].
        kind: a name in :data:`EXPLANATION_LOSSES`.

    Returns:
        A scalar tensor (mean over the batch), differentiable in ``pred``.

    Raises:
        ValueError: an unknown ``kind`` (the message lists the choices), or shapes differ.

    Examples::

        >>> p = torch.full((1, 1, 2, 2), 0.5)
        >>> float(explanation_loss(p, torch.zeros_like(p)))
        0.25
    """
    fn: Callable[[Tensor, Tensor], Tensor] = EXPLANATION_LOSSES.get(kind)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target maps differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    with torch.autocast(device_type=pred.device.type, enabled=False):
        return fn(pred.float(), target.to(pred.device, torch.float32))
