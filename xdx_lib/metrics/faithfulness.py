"""Faithfulness and localisation: does a map point at what the model, or the object, uses?

* faithfulness of a map to a model: :func:`deletion_auc`, :func:`insertion_auc`
  (Petsiuk et al. 2018, RISE);
* localisation against object masks: :func:`pointing_game` (Zhang et al. 2018),
  :func:`relevance_mass` (Arras et al. 2022).

Each returns one value per image, ``[N]`` float32 on the CPU; maps are ``[N, 1, H, W]``.
Imports: torch, torchvision and ``xdx_lib.core._utils``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdx_lib.core._utils import check_finite, eval_mode, model_device, resolve_target
from xdx_lib.core._utils import check_maps as _check_maps
from xdx_lib.core._utils import safe_ratio as _safe_ratio

# ----------------------------------------------------------------------------- faithfulness


def _blur(x: Tensor, sigma: float = 5.0, kernel_size: int = 11) -> Tensor:
    """A Gaussian blur with reflect padding (RISE's insertion start: kernel 11, sigma 5)."""
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(x, kernel_size=[kernel_size, kernel_size], sigma=[sigma, sigma])


def _baseline_images(x: Tensor, baseline: float | str | Tensor) -> Tensor:
    if isinstance(baseline, str):
        if baseline == "blur":
            return _blur(x)
        if baseline == "zeros":
            return torch.zeros_like(x)
        raise ValueError(
            f"baseline must be a number, a tensor, 'blur' or 'zeros'; got {baseline!r}"
        )
    return torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)


def _pixel_ranks(maps: Tensor) -> Tensor:
    """Each pixel's position ``[N, 1, H, W]`` in order of decreasing relevance (ties: first
    pixel first)."""
    flat = maps.flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks.view(maps.shape[0], 1, *maps.shape[-2:])


@torch.no_grad()
def _perturbation_curve(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    target: Tensor | None,
    steps: int,
    start: Tensor,
    end: Tensor,
    batch_size: int,
) -> tuple[Tensor, Tensor]:
    """Probabilities of the target class along a path that switches pixels from ``start`` to
    ``end`` in order of decreasing relevance: ``p [N, steps + 1]`` and fractions ``[steps + 1]``.

    At step ``s`` the ``round(s / steps * H * W)`` most relevant pixels (all channels) come
    from ``end`` and the rest from ``start``.
    """
    _check_maps(maps)
    check_finite(x, "the images")
    if maps.shape[0] != x.shape[0] or maps.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(x.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = model_device(model)
    with eval_mode(model):
        n, d = x.shape[0], x.shape[-2] * x.shape[-1]
        target = resolve_target(model, x.cpu(), target, batch_size)
        fractions = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        counts = (fractions * d).round().long()
        probs = torch.empty(n, steps + 1, dtype=torch.float64)
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            xb_start, xb_end = start[sl].to(device), end[sl].to(device)
            ranks = _pixel_ranks(maps[sl].to(device))
            tb = target[sl].to(device)
            for s, count in enumerate(counts.tolist()):
                xs = torch.where(ranks < count, xb_end, xb_start)
                p = model(xs).softmax(dim=1).gather(1, tb[:, None]).squeeze(1)
                probs[sl, s] = p.double().cpu()
    return probs, fractions


def _trapezoid_auc(probs: Tensor, fractions: Tensor) -> Tensor:
    return torch.trapezoid(probs, fractions, dim=1).float()


def deletion_auc(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    target: Tensor | int | None = None,
    steps: int = 20,
    baseline: float | str | Tensor = 0.0,
    batch_size: int = 256,
) -> Tensor:
    """Deletion AUC per image (Petsiuk et al. 2018): lower means a more faithful map.

    Pixels are replaced by ``baseline`` in order of decreasing relevance, ``1 / steps`` of
    the pixels at a time; the probability ``p_c`` of the target class is recorded after
    each step, and ``AUC = int_0^1 p_c(f) df`` over the fraction ``f`` removed, with the
    trapezoidal rule on ``steps + 1`` points (``f = 0`` is the intact image). A map that
    ranks the evidence first makes ``p_c`` fall fast.

    Args:
        model: classifier returning logits (put in eval mode here, its modes restored).
        x: images ``[N, C, H, W]``.
        maps: relevance ``[N, 1, H, W]`` at the images' size.
        target: class indices ``[N]`` or an int; None uses the model's prediction on ``x``.
        steps: removal steps (20 → 21 forward passes per image).
        baseline: what removed pixels become: a number (0.0, black, the default), a tensor
            broadcastable to ``x``, ``"zeros"`` or ``"blur"`` (the blurred image).
        batch_size: images per forward pass.

    Returns:
        ``[N]`` in [0, 1].
    """
    start = x
    end = _baseline_images(x, baseline)
    probs, fractions = _perturbation_curve(
        model, x, maps, _as_target(target), steps, start, end, batch_size
    )
    return _trapezoid_auc(probs, fractions)


def insertion_auc(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    target: Tensor | int | None = None,
    steps: int = 20,
    baseline: float | str | Tensor = "blur",
    batch_size: int = 256,
) -> Tensor:
    """Insertion AUC per image (Petsiuk et al. 2018): higher means a more faithful map.

    Starts from the ``baseline`` image and puts the true pixels back in order of decreasing
    relevance, ``1 / steps`` at a time; ``AUC = int_0^1 p_c(f) df`` over the fraction ``f``
    inserted (trapezoidal rule, ``steps + 1`` points; ``f = 1`` is the intact image).

    The default start is RISE's: the image blurred with a Gaussian (kernel 11, sigma 5), so
    that the path stays closer to natural images than a black canvas with pasted pixels;
    ``baseline=0.0`` (or ``"zeros"``) starts from black instead.

    Args:
        model, x, maps, target, steps, batch_size: as in :func:`deletion_auc`.
        baseline: the start image: ``"blur"`` (default), ``"zeros"``, a number, or a tensor
            broadcastable to ``x``.

    Returns:
        ``[N]`` in [0, 1].
    """
    start = _baseline_images(x, baseline)
    probs, fractions = _perturbation_curve(
        model, x, maps, _as_target(target), steps, start, x, batch_size
    )
    return _trapezoid_auc(probs, fractions)


def _as_target(target: Tensor | int | None) -> Tensor | None:
    return None if target is None else torch.as_tensor(target).long().cpu()


# ----------------------------------------------------------------------------- localisation


def _check_masks(maps: Tensor, masks: Tensor) -> Tensor:
    _check_maps(maps)
    if masks.shape != maps.shape:
        raise ValueError(f"masks {tuple(masks.shape)} and maps {tuple(maps.shape)} differ in shape")
    return masks.detach().cpu().bool().flatten(1)


def pointing_game(maps: Tensor, masks: Tensor, tolerance: int = 0) -> Tensor:
    """Pointing game per image (Zhang et al. 2018): 1 if the map's maximum lies in the object.

    The maximum is the first pixel of largest value in raster order. A constant map points
    nowhere and scores 0. ``tolerance`` grows the mask by that many pixels (a square
    dilation; the original used 15 px on ImageNet-size images, 0 suits 28x28).

    Returns:
        ``[N]`` of 0.0 / 1.0.
    """
    flat_masks = _check_masks(maps, masks)
    if tolerance > 0:
        grown = F.max_pool2d(
            masks.detach().cpu().float(), 2 * tolerance + 1, stride=1, padding=tolerance
        )
        flat_masks = grown.flatten(1) > 0
    flat = maps.detach().cpu().flatten(1)
    peak = flat.argmax(dim=1)
    informative = flat.amax(1) > flat.amin(1)
    hit = flat_masks.gather(1, peak[:, None]).squeeze(1) & informative
    return hit.float()


def relevance_mass(maps: Tensor, masks: Tensor) -> Tensor:
    """Relevance mass accuracy per image (Arras et al. 2022): ``sum_{mask} m / sum m``.

    The fraction of the map's (non-negative) mass that falls inside the object mask; an
    all-zero map gives 0.

    Returns:
        ``[N]`` in [0, 1].
    """
    flat_masks = _check_masks(maps, masks)
    flat = maps.detach().cpu().flatten(1).double().clamp_min(0)
    inside = (flat * flat_masks).sum(1)
    return _safe_ratio(inside, flat.sum(1)).float()
