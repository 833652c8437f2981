"""The explainer interface: a Captum method with its settings, returning normalised maps.

:class:`Explainer` is the one base class (each family overrides :meth:`Explainer.attribute`),
:func:`normalize_maps` the spec's ``N``, and :func:`explain` the batched entry point. May
import ``xdx_lib.core._utils`` and :mod:`xdx_lib.core.registry` only.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdx_lib.core._utils import (
    as_target,
    check_finite,
    eval_mode,
    model_device,
    resolve_target,
    seeded,
)
from xdx_lib.core.registry import Registry

# Captum imports ``tqdm.auto``, which warns in a Jupyter kernel without ipywidgets; our
# progress bars are plain tqdm, so the warning says nothing to a reader of the book.
warnings.filterwarnings("ignore", message="IProgress not found")

#: The explainers by name (``gradcam``, ``saliency``, ``integrated_gradients``, ...).
EXPLAINERS = Registry("explainer")

#: Ways to turn a signed, multi-channel attribution into one map (see :func:`normalize_maps`).
SIGNS = ("positive", "absolute")


def minmax_per_image(maps: Tensor, rtol: float = 1e-6) -> Tensor:
    """Scale each map of ``[N, ...]`` to [0, 1]: ``(m - min) / (max - min)``.

    A map whose range is zero, or below ``rtol`` times its largest magnitude (float noise
    on a constant map), carries no ranking and becomes all zeros, never NaN.
    """
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    informative = span > rtol * torch.maximum(hi.abs(), lo.abs())
    out = (flat - lo) / torch.where(informative, span, torch.ones_like(span))
    out = torch.where(informative, out, torch.zeros_like(out)).clamp_(0.0, 1.0)
    return out.view_as(maps)


def normalize_maps(
    maps: Tensor,
    positive: bool = True,
    *,
    absolute: bool = False,
    size: tuple[int, int] | None = None,
    scale: bool = True,
) -> Tensor:
    """Turn raw attributions ``[N, C, h, w]`` into maps ``[N, 1, H, W]`` in [0, 1] (float32).

    The teacher explanation's ``N``: reduce the channels, keep the part of the sign that
    matters, resize to the input, min-max per image:

    1. channels: ``m = sum_c |a_c|`` when ``absolute`` (the gradient-method convention),
       else ``m = sum_c a_c``;
    2. sign: ``m = relu(m)`` when ``positive`` and not ``absolute`` (the Grad-CAM
       convention: evidence for the class); with neither flag the signed sum is kept;
    3. size: bilinear interpolation to ``size`` (``align_corners=False``) when given and
       different (Grad-CAM's 7x7 map to 28x28);
    4. scale: :func:`minmax_per_image`; a constant map becomes all zeros. With
       ``scale=False`` this step is skipped and the maps keep their raw values (e2KD
       matches the raw Grad-CAM: cosine is scale- but not shift-invariant).

    Each explainer states which of these it uses in :attr:`Explainer.sign`.

    Args:
        maps: attributions ``[N, C, h, w]`` (any float dtype, any device).
        positive: keep the positive part after summing the channels.
        absolute: take absolute values before summing the channels.
        size: output ``(H, W)``; None keeps ``(h, w)``.

    Returns:
        Maps ``[N, 1, H, W]``, float32 in [0, 1], on the input's device.

    Raises:
        ValueError: ``maps`` is not 4-D or holds NaN or inf.
    """
    if maps.dim() != 4:
        raise ValueError(f"maps must have shape [N, C, H, W], got {tuple(maps.shape)}")
    check_finite(maps, "the attribution")
    m = maps.detach().float()
    m = m.abs().sum(dim=1, keepdim=True) if absolute else m.sum(dim=1, keepdim=True)
    if positive and not absolute:
        m = m.clamp_min(0.0)
    if size is not None and tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)
    return minmax_per_image(m) if scale else m


class Explainer:
    """A Captum attribution method with its settings, returning normalised maps.

    Subclasses override one hook, :meth:`attribute` (the Captum call, raw attributions of
    the input's shape or a layer's), and declare their ``defaults`` and ``sign``.
    :meth:`explain` adds the rest: finite-input check, eval mode, the predicted class as
    target, seeding for stochastic methods, :func:`normalize_maps`.

    Args:
        model: the classifier (images in [0, 1] ``[N, C, H, W]`` to logits).
        **settings: overrides of :attr:`defaults`; an unknown name is an error, so a typo in
            a config does not silently fall back to a default.

    Attributes:
        name: the registry name.
        sign: ``"positive"`` or ``"absolute"``: how :func:`normalize_maps`
            reduces the attribution (see the module docstring for the table).
        defaults: every setting with its default; ``self.settings`` is the resolved dict and
            goes into cache keys.
    """

    name: ClassVar[str] = ""
    sign: ClassVar[str] = "absolute"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: nn.Module, **settings: Any):
        unknown = sorted(set(settings) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(
                f"unknown setting(s) {unknown} for explainer {self.name!r}; known: {known}"
            )
        if self.sign not in SIGNS:
            raise ValueError(f"sign must be one of {SIGNS}, got {self.sign!r}")
        self.model = model
        self.settings: dict[str, Any] = {**self.defaults, **settings}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings})"

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        """Raw attributions for ``x`` and class indices ``target`` (the one hook to override)."""
        raise NotImplementedError

    def explain(self, x: Tensor, target: Tensor | int | None = None) -> Tensor:
        """Normalised maps ``[N, 1, H, W]`` in [0, 1] on ``x``'s device (one batch).

        Args:
            x: images ``[N, C, H, W]`` on the model's device.
            target: class indices ``[N]`` or one int; None explains the predicted class.
        """
        check_finite(x, "the input")
        with eval_mode(self.model):
            target = resolve_target(self.model, x, target)
            with seeded(self.settings.get("seed"), x.device):
                raw = self.attribute(x, target)
        return normalize_maps(
            raw,
            positive=self.sign == "positive",
            absolute=self.sign == "absolute",
            size=tuple(x.shape[-2:]),
            scale=bool(self.settings.get("normalize", True)),
        )


def _baseline_like(x: Tensor, value: float) -> Tensor:
    return torch.full_like(x, float(value))


def _grad_input(x: Tensor) -> Tensor:
    """``x`` as a leaf that requires grad (Captum warns when it has to set that itself)."""
    return x.detach().requires_grad_(True)


def make_explainer(name: str, model: nn.Module, **settings: Any) -> Explainer:
    """Build the registered explainer ``name`` for ``model`` (see :data:`EXPLAINERS`)."""
    return EXPLAINERS.get(name)(model, **settings)


def explain(
    model: nn.Module,
    x: Tensor,
    explainer: str = "gradcam",
    target: Tensor | int | None = None,
    batch_size: int = 256,
    progress: bool = False,
    **settings: Any,
) -> Tensor:
    """Explain ``x`` with the registered explainer ``explainer``: maps ``[N, 1, H, W]`` in [0, 1].

    Each batch is moved to the model's device; the model is in eval mode throughout and
    every submodule's mode is restored afterwards.

    Args:
        model: the classifier to explain.
        x: images ``[N, C, H, W]`` in [0, 1], on any device.
        explainer: a name in :data:`EXPLAINERS`.
        target: class indices ``[N]`` (e.g. the true labels) or one int; None explains the
            model's predicted class (one extra forward pass per batch).
        batch_size: images per batch (per-example methods loop inside a batch anyway).
        progress: show a tqdm progress bar over batches.
        **settings: the explainer's settings (e.g. ``n_steps=32``, ``layer="features.1"``).

    Returns:
        float32 maps on the CPU.

    Raises:
        ValueError: unknown explainer or setting, NaN/inf in ``x``, a badly shaped ``target``.

    Examples::

        >>> from xdx_lib.models.classifiers import create_model
        >>> maps = explain(create_model("student_tiny"), torch.rand(4, 1, 28, 28))
        >>> maps.shape
        torch.Size([4, 1, 28, 28])
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape [N, C, H, W], got {tuple(x.shape)}")
    explainer_ = make_explainer(explainer, model, **settings)
    device = model_device(model)
    n = x.shape[0]
    if target is not None:
        target = as_target(target, n)
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=explainer, unit="batch")
    out = []
    with eval_mode(model):
        for i in starts:
            xb = x[i : i + batch_size].to(device)
            tb = None if target is None else target[i : i + batch_size].to(device)
            out.append(explainer_.explain(xb, tb).float().cpu())
    if not out:
        return torch.zeros((0, 1, *x.shape[-2:]))
    return torch.cat(out)

