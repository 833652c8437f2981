"""Post-hoc explanations: one interface over Captum, plus normalising, batching and caching.

The spec's teacher explanation is ``e_T(x) = N(E(T, x, c))`` (METHOD.md, "Teacher
explanation"): ``E`` is a Captum attribution method, ``c`` the model's predicted class (or a
given label), and ``N`` turns Captum's raw attribution into a map in [0, 1] of the input's
size (:func:`normalize_maps`). This module never re-implements an attribution method; it
adds only what Captum lacks:

* choosing the layer (Grad-CAM explains ``model.gradcam_layer`` or a layer named by its
  dotted path), the baselines and the superpixels (LIME, KernelSHAP);
* one sign convention per explainer (:attr:`Explainer.sign`) and per-image min-max scaling;
* batching on the model's device, with the model in eval mode (BatchNorm must use its
  running statistics, and must not update them, while we differentiate through it);
* an on-disk cache keyed by what determines the maps (:func:`cached_maps`).

Explainers are registered in :data:`EXPLAINERS` and built by name, so a config can name any
of them::

    maps = explain(teacher, x, method="integrated_gradients", n_steps=32)  # [N, 1, H, W]
    explainer = make_explainer("gradcam", teacher)
    maps = explainer.explain(x[:8])

Sign conventions (``Explainer.sign``), following common practice for each family:

==========================  ==========  ===================================================
explainer                   sign        map before min-max scaling
==========================  ==========  ===================================================
``gradcam``                 positive    ``relu(sum_k w_k A_k)`` (Selvaraju et al. 2017)
``saliency``                absolute    ``sum_c |d y_c / d x_c|`` (Simonyan et al. 2014)
``integrated_gradients``    absolute    ``sum_c |IG_c|`` (Sundararajan et al. 2017)
``gradient_shap``           absolute    ``sum_c |GradientSHAP_c|`` (Lundberg & Lee 2017)
``deeplift``                absolute    ``sum_c |DeepLIFT_c|`` (Shrikumar et al. 2017)
``occlusion``               positive    ``relu(drop in the class score when occluded)``
``lime``                    positive    ``relu(superpixel coefficient)`` (Ribeiro et al. 2016)
``kernel_shap``             positive    ``relu(superpixel Shapley value)``
==========================  ==========  ===================================================

Gradient methods are signed per channel and their sign flips with the input's contrast, so
the magnitude is what is compared; Grad-CAM, occlusion and the surrogate methods give
evidence *for* the class with a meaningful sign, so their positive part is kept.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cache import atomic_torch_save, hash_dict, load_tensors, runs_dir
from .registry import Registry

# Captum imports ``tqdm.auto``, which warns in a Jupyter kernel without ipywidgets; our
# progress bars are plain tqdm, so the warning says nothing to a reader of the book.
warnings.filterwarnings("ignore", message="IProgress not found")

#: The explainers by name (``gradcam``, ``saliency``, ``integrated_gradients``, ...).
EXPLAINERS = Registry("explainer")

#: Bumped when the stored maps would change for the same key (normalisation, file layout).
MAPS_FORMAT = 1

#: Ways to turn a signed, multi-channel attribution into one map (see :func:`normalize_maps`).
SIGNS = ("positive", "absolute", "signed")


# ----------------------------------------------------------------------------- helpers


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, and restore each one's own mode afterwards.

    Restoring per submodule (not ``model.train(was_training)``) keeps deliberate mixes, such
    as a frozen BatchNorm inside a training model, as they were.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@contextmanager
def seeded(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Run a block with torch's, NumPy's and ``random``'s RNGs seeded to ``seed``, and put
    their previous states back afterwards.

    Stochastic explainers sample inside Captum (GradientSHAP draws its path points and
    baselines with NumPy, LIME and KernelSHAP their perturbations with torch); seeding them
    makes cached maps reproducible without disturbing a training run's RNG streams.
    ``seed=None`` leaves the RNGs alone.
    """
    if seed is None:
        yield
        return
    devices = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def check_finite(t: Tensor, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` when ``t`` holds NaN or inf."""
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(
            f"{what} contains {bad} NaN or inf value(s); cannot explain or normalise it"
        )


def resolve_target(model: nn.Module, x: Tensor, target: Tensor | int | None) -> Tensor:
    """Class indices ``[N]`` on ``x``'s device: ``target`` broadcast, or the predicted class.

    The predicted class costs one forward pass (no gradients), done here once per batch.
    """
    n = x.shape[0]
    if target is None:
        with torch.no_grad():
            return model(x).argmax(dim=1)
    target = torch.as_tensor(target, device=x.device).long()
    if target.dim() == 0:
        target = target.expand(n)
    if target.shape != (n,):
        raise ValueError(f"target must be an int or have shape [{n}], got {tuple(target.shape)}")
    return target


def grid_feature_mask(height: int, width: int, patch: int) -> Tensor:
    """Superpixels as a grid of ``patch`` x ``patch`` squares: ids ``[1, 1, H, W]`` from 0.

    LIME and KernelSHAP perturb whole superpixels; a 4 px grid gives 49 features on a 28x28
    image and 64 on a 32x32 one, few enough for a surrogate fitted on ~200 samples. Edge
    patches are smaller when ``patch`` does not divide the size.
    """
    cols = -(-width // patch)
    r = torch.arange(height) // patch
    c = torch.arange(width) // patch
    return (r[:, None] * cols + c[None, :]).view(1, 1, height, width)


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
) -> Tensor:
    """Turn raw attributions ``[N, C, h, w]`` into maps ``[N, 1, H, W]`` in [0, 1] (float32).

    The spec's ``N`` (METHOD.md): reduce the channels, keep the part of the sign that
    matters, resize to the input, min-max per image:

    1. channels: ``m = sum_c |a_c|`` when ``absolute`` (the gradient-method convention),
       else ``m = sum_c a_c``;
    2. sign: ``m = relu(m)`` when ``positive`` and not ``absolute`` (the Grad-CAM
       convention: evidence for the class); with neither flag the signed sum is kept;
    3. size: bilinear interpolation to ``size`` (``align_corners=False``) when given and
       different (Grad-CAM's 7x7 map to 28x28);
    4. scale: :func:`minmax_per_image`; a constant map becomes all zeros.

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
    return minmax_per_image(m)


# ----------------------------------------------------------------------------- explainers


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
        sign: ``"positive"``, ``"absolute"`` or ``"signed"``: how :func:`normalize_maps`
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
        )


def _baseline_like(x: Tensor, value: float) -> Tensor:
    return torch.full_like(x, float(value))


def _grad_input(x: Tensor) -> Tensor:
    """``x`` as a leaf that requires grad (Captum warns when it has to set that itself)."""
    return x.detach().requires_grad_(True)


@EXPLAINERS.register("gradcam")
class GradCamExplainer(Explainer):
    """Grad-CAM (Selvaraju et al. 2017) via ``captum.attr.LayerGradCam``.

    ``cam = relu(sum_k w_k A_k)`` with ``w_k = mean_{ij} d y_c / d A_k[i, j]``, where ``A``
    is the output of ``model.gradcam_layer`` (or of ``settings["layer"]``, a dotted module
    path such as ``"features.1"``), then bilinearly upsampled to the input.

    Settings:
        layer: dotted name of the layer to explain; None uses ``model.gradcam_layer``.
    """

    name = "gradcam"
    sign = "positive"
    defaults = {"layer": None}

    def _layer(self) -> nn.Module:
        name = self.settings["layer"]
        if name is not None:
            return self.model.get_submodule(name)
        if not hasattr(self.model, "gradcam_layer"):
            raise ValueError(
                f"{type(self.model).__name__} has no `gradcam_layer`; "
                "give the Grad-CAM layer by name with layer='...'"
            )
        return self.model.gradcam_layer

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        from captum.attr import LayerGradCam

        return LayerGradCam(self.model, self._layer()).attribute(
            _grad_input(x), target=target, relu_attributions=True
        )


@EXPLAINERS.register("saliency")
class SaliencyExplainer(Explainer):
    """Vanilla gradients (Simonyan et al. 2014) via ``captum.attr.Saliency``: ``|d y_c / d x|``."""

    name = "saliency"
    sign = "absolute"
    defaults: ClassVar[dict[str, Any]] = {}

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        from captum.attr import Saliency

        return Saliency(self.model).attribute(_grad_input(x), target=target, abs=True)


@EXPLAINERS.register("integrated_gradients")
class IntegratedGradientsExplainer(Explainer):
    """Integrated Gradients (Sundararajan et al. 2017) via ``captum.attr.IntegratedGradients``.

    ``IG(x) = (x - x') * int_0^1 d y_c(x' + a (x - x')) / dx da`` from the constant baseline
    ``x'``, approximated with ``n_steps`` points. Each image is expanded ``n_steps`` times, so
    ``internal_batch_size`` caps how many expanded images go through the model at once
    (memory; ARCHITECTURE.md measured 3.6 GB with 1024 on the CPU teacher).

    Settings:
        n_steps: integration points (32).
        internal_batch_size: expanded images per forward pass (128).
        baseline: the constant baseline image value (0.0, black).
    """

    name = "integrated_gradients"
    sign = "absolute"
    defaults = {"n_steps": 32, "internal_batch_size": 128, "baseline": 0.0}

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        from captum.attr import IntegratedGradients

        s = self.settings
        return IntegratedGradients(self.model).attribute(
            _grad_input(x),
            baselines=_baseline_like(x, s["baseline"]),
            target=target,
            n_steps=s["n_steps"],
            # Captum needs at least one expanded batch per image; never below the batch
            internal_batch_size=max(s["internal_batch_size"], len(x)),
        )


@EXPLAINERS.register("gradient_shap")
class GradientShapExplainer(Explainer):
    """GradientSHAP (Lundberg & Lee 2017) via ``captum.attr.GradientShap``.

    Expected gradients times (input - baseline) over random baselines and random points on
    the path. The baseline distribution is the black image plus ``n_noise_baselines`` images
    of uniform noise in ``[0, baseline_noise]``; ``stdevs`` adds Gaussian noise to the input
    (SmoothGrad-style). Captum expands every image ``n_samples`` times and has no internal
    batching, so images go through in chunks of ``internal_batch_size // n_samples``.

    Settings:
        n_samples: random (baseline, path point) draws per image (16).
        stdevs: std of the input noise (0.01).
        n_noise_baselines: noisy baselines beside the black one (4).
        baseline_noise: upper bound of the noisy baselines' values (0.2).
        internal_batch_size: expanded images per forward pass (512).
        seed: RNG seed for the baselines and Captum's draws, set again for every batch (0);
            None leaves the RNGs alone (and the maps irreproducible).
    """

    name = "gradient_shap"
    sign = "absolute"
    defaults = {
        "n_samples": 16,
        "stdevs": 0.01,
        "n_noise_baselines": 4,
        "baseline_noise": 0.2,
        "internal_batch_size": 512,
        "seed": 0,
    }

    def baselines(self, x: Tensor) -> Tensor:
        """Zeros plus ``n_noise_baselines`` uniform-noise images: ``[1 + k, C, H, W]``."""
        s = self.settings
        zeros = torch.zeros_like(x[:1])
        noise = (
            torch.rand((s["n_noise_baselines"], *x.shape[1:]), device=x.device, dtype=x.dtype)
            * s["baseline_noise"]
        )
        return torch.cat([zeros, noise])

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        from captum.attr import GradientShap

        s = self.settings
        method = GradientShap(self.model)
        baselines = self.baselines(x)
        chunk = max(1, s["internal_batch_size"] // s["n_samples"])
        parts = [
            method.attribute(
                _grad_input(x[i : i + chunk]),
                baselines=baselines,
                n_samples=s["n_samples"],
                stdevs=s["stdevs"],
                target=target[i : i + chunk],
            )
            for i in range(0, x.shape[0], chunk)
        ]
        return torch.cat(parts)


@EXPLAINERS.register("deeplift")
class DeepLiftExplainer(Explainer):
    """DeepLIFT, Rescale rule (Shrikumar et al. 2017) via ``captum.attr.DeepLift``.

    Needs each nonlinearity to be its own ``nn.Module`` called once per forward pass (true
    of the ConvNets here). torchvision's ResNet calls one ``relu`` twice per block, which
    DeepLIFT's hooks cannot handle: that raises a ``ValueError`` naming the alternatives.

    Settings:
        baseline: the constant reference image value (0.0).
    """

    name = "deeplift"
    sign = "absolute"
    defaults = {"baseline": 0.0}

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        from captum.attr import DeepLift

        baselines = _baseline_like(x, self.settings["baseline"])
        with warnings.catch_warnings():  # Captum's notice that it hooks the activations
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
            try:
                return DeepLift(self.model).attribute(
                    _grad_input(x), target=target, baselines=baselines
                )
            except RuntimeError as e:
                if "used more than once" not in str(e):
                    raise
                raise ValueError(
                    f"DeepLIFT cannot explain {type(self.model).__name__}: it reuses an "
                    "activation module within one forward pass (Captum's DeepLift needs one "
                    "module per use); use integrated_gradients or gradient_shap instead"
                ) from e


@EXPLAINERS.register("occlusion")
class OcclusionExplainer(Explainer):
    """Occlusion (Zeiler & Fergus 2014) via ``captum.attr.Occlusion``.

    Slides a ``window`` x ``window`` patch of ``baseline`` over the image with ``stride``;
    a pixel's attribution is the mean drop of the class score over the windows covering it.
    The 4 px window with stride 2 suits 28x28 and 32x32 images (169 and 225 windows).
    Captum evaluates ``perturbations_per_eval`` occluded copies of *every* image of the batch
    per forward pass, so that number is set to ``internal_batch_size // N`` (at least 1):
    a fixed ``perturbations_per_eval`` of 64 on a batch of 256 would make forward passes
    of 16384 images.

    Settings:
        window: patch side in pixels (4).
        stride: step in pixels (2).
        baseline: value of the occluding patch (0.0).
        internal_batch_size: occluded images per forward pass, across the batch (256).
    """

    name = "occlusion"
    sign = "positive"
    defaults = {"window": 4, "stride": 2, "baseline": 0.0, "internal_batch_size": 256}

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        from captum.attr import Occlusion

        s = self.settings
        c = x.shape[1]
        return Occlusion(self.model).attribute(
            x,
            sliding_window_shapes=(c, s["window"], s["window"]),
            strides=(c, s["stride"], s["stride"]),
            baselines=float(s["baseline"]),
            target=target,
            perturbations_per_eval=max(1, s["internal_batch_size"] // x.shape[0]),
        )


class _SurrogateExplainer(Explainer):
    """Shared loop of LIME and KernelSHAP: one surrogate model per image over grid superpixels.

    Captum fits one interpretable model per example anyway (and warns when given a batch),
    so the loop is explicit here.
    """

    sign = "positive"

    def _method(self):
        raise NotImplementedError

    def attribute(self, x: Tensor, target: Tensor) -> Tensor:
        s = self.settings
        method = self._method()
        mask = grid_feature_mask(x.shape[-2], x.shape[-1], s["patch"]).to(x.device)
        parts = [
            method.attribute(
                x[i : i + 1],
                target=target[i : i + 1],
                baselines=float(s["baseline"]),
                feature_mask=mask,
                n_samples=s["n_samples"],
                perturbations_per_eval=s["perturbations_per_eval"],
            )
            for i in range(x.shape[0])
        ]
        return torch.cat(parts)


@EXPLAINERS.register("lime")
class LimeExplainer(_SurrogateExplainer):
    """LIME (Ribeiro et al. 2016) via ``captum.attr.Lime`` with a Lasso surrogate.

    Superpixels are a square grid (:func:`grid_feature_mask`); switched-off superpixels take
    ``baseline``. Needs scikit-learn (Captum's ``SkLearnLasso``).

    Settings:
        n_samples: perturbed images per explained image (200).
        patch: superpixel side in pixels (4).
        baseline: value of switched-off superpixels (0.0).
        alpha: Lasso regularisation of the surrogate (0.01, Captum's default).
        perturbations_per_eval: perturbed images per forward pass (50).
        seed: RNG seed for the sampled perturbations (0).
    """

    name = "lime"
    defaults = {
        "n_samples": 200,
        "patch": 4,
        "baseline": 0.0,
        "alpha": 0.01,
        "perturbations_per_eval": 50,
        "seed": 0,
    }

    def _method(self):
        from captum._utils.models.linear_model import SkLearnLasso
        from captum.attr import Lime

        return Lime(self.model, interpretable_model=SkLearnLasso(alpha=self.settings["alpha"]))


@EXPLAINERS.register("kernel_shap")
class KernelShapExplainer(_SurrogateExplainer):
    """KernelSHAP (Lundberg & Lee 2017) via ``captum.attr.KernelShap`` over grid superpixels.

    Settings:
        n_samples: coalitions sampled per image (200).
        patch: superpixel side in pixels (4).
        baseline: value of absent superpixels (0.0).
        perturbations_per_eval: coalitions per forward pass (50).
        seed: RNG seed for the sampled coalitions (0).
    """

    name = "kernel_shap"
    defaults = {
        "n_samples": 200,
        "patch": 4,
        "baseline": 0.0,
        "perturbations_per_eval": 50,
        "seed": 0,
    }

    def _method(self):
        from captum.attr import KernelShap

        return KernelShap(self.model)


def make_explainer(name: str, model: nn.Module, **settings: Any) -> Explainer:
    """Build the registered explainer ``name`` for ``model`` (see :data:`EXPLAINERS`)."""
    return EXPLAINERS.get(name)(model, **settings)


# ----------------------------------------------------------------------------- batching


def explain(
    model: nn.Module,
    x: Tensor,
    method: str = "gradcam",
    target: Tensor | int | None = None,
    batch_size: int = 256,
    progress: bool = False,
    **settings: Any,
) -> Tensor:
    """Explain ``x`` with the registered explainer ``method``: maps ``[N, 1, H, W]`` in [0, 1].

    Each batch is moved to the model's device; the model is in eval mode throughout and
    every submodule's mode is restored afterwards.

    Args:
        model: the classifier to explain.
        x: images ``[N, C, H, W]`` in [0, 1], on any device.
        method: a name in :data:`EXPLAINERS`.
        target: class indices ``[N]`` (e.g. the true labels) or one int; None explains the
            model's predicted class (one extra forward pass per batch).
        batch_size: images per batch (per-example methods loop inside a batch anyway).
        progress: show a tqdm progress bar over batches.
        **settings: the explainer's settings (e.g. ``n_steps=32``, ``layer="features.1"``).

    Returns:
        float32 maps on the CPU.

    Raises:
        ValueError: unknown method or setting, NaN/inf in ``x``, a badly shaped ``target``.

    Examples::

        >>> from xdx_lib.models import create_model
        >>> maps = explain(create_model("student_tiny"), torch.rand(4, 1, 28, 28))
        >>> maps.shape
        torch.Size([4, 1, 28, 28])
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape [N, C, H, W], got {tuple(x.shape)}")
    explainer = make_explainer(method, model, **settings)
    device = model_device(model)
    n = x.shape[0]
    if target is not None:
        target = torch.as_tensor(target).long()
        if target.dim() == 0:
            target = target.expand(n)
        if target.shape != (n,):
            raise ValueError(
                f"target must be an int or have shape [{n}], got {tuple(target.shape)}"
            )
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=method, unit="batch")
    out = []
    with eval_mode(model):
        for i in starts:
            xb = x[i : i + batch_size].to(device)
            tb = None if target is None else target[i : i + batch_size].to(device)
            out.append(explainer.explain(xb, tb).float().cpu())
    if not out:
        return torch.zeros((0, 1, *x.shape[-2:]))
    return torch.cat(out)


# ----------------------------------------------------------------------------- caching


def tensor_hash(t: Tensor, length: int = 12) -> str:
    """A short SHA-256 of a tensor's values, dtype and shape (identifies inputs and targets)."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:length]


def maps_cache_key(
    explainer: Explainer,
    x: Tensor,
    *,
    checkpoint_hash: str,
    split: str,
    subset: Any,
    target: Tensor | int | None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """What determines a set of maps, as JSON-normal data (tuples become lists).

    The model (its checkpoint hash), the explainer with *all* its resolved settings, the
    data (split, subset tag, N, image shape and a hash of the pixels), the target kind
    (``predicted``, or ``given`` with a hash of the labels) and :data:`MAPS_FORMAT`. For a
    stochastic explainer (one with a ``seed`` setting) also the batch size, since its RNG
    is re-seeded for every batch.
    """
    if target is None:
        target_key: Any = "predicted"
    else:
        target_key = {"given": tensor_hash(torch.as_tensor(target).long())}
    key = {
        "format": MAPS_FORMAT,
        "checkpoint_hash": checkpoint_hash,
        "method": explainer.name,
        "settings": explainer.settings,
        "split": split,
        "subset": subset,
        "n": int(x.shape[0]),
        "image_shape": list(x.shape[1:]),
        "inputs": tensor_hash(x),
        "target": target_key,
        "batch_size": batch_size if "seed" in explainer.settings else None,
    }
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def _stale_reason(blob: Any, key: dict[str, Any], shape: tuple[int, ...]) -> str | None:
    """Why a loaded cache file cannot be used for ``key`` (None when it can)."""
    if not isinstance(blob, dict) or "key" not in blob or "maps" not in blob:
        return "it is not a maps file (no 'key' and 'maps')"
    if blob["key"] != key:
        return "its stored key differs from the requested one"
    maps = blob["maps"]
    if not isinstance(maps, Tensor) or tuple(maps.shape) != shape:
        got = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        return f"its maps have shape {got}, expected {shape}"
    if not torch.isfinite(maps).all():
        return "its maps contain NaN or inf"
    return None


def cached_maps(
    model: nn.Module,
    x: Tensor,
    method: str,
    settings: dict[str, Any] | None = None,
    *,
    checkpoint_hash: str,
    split: str,
    subset: Any,
    cache_dir: str | Path | None = None,
    target: Tensor | int | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> Tensor:
    """:func:`explain` once, then load the maps from the run cache.

    The file ``<cache_dir>/<method>-<split>-<hash>.pt`` holds ``{"key": ..., "maps": ...}``
    (written atomically); the hash is of :func:`maps_cache_key`. On load, a file whose stored
    key or maps shape does not match, or that cannot be read, is recomputed and overwritten
    with a warning: a stale or corrupt file is never used.

    Args:
        model: the model explained; ``checkpoint_hash`` must identify its weights
            (:func:`xdx_lib.cache.file_hash` of the checkpoint).
        x: images ``[N, C, H, W]``.
        method: a name in :data:`EXPLAINERS`.
        settings: the explainer's settings (resolved against its defaults for the key).
        checkpoint_hash: identity of the model's weights.
        split: the data split (``"train"``, ``"test"``).
        subset: a tag for the subset of the split (its size and seed, or None for all).
        cache_dir: where maps are stored (default ``runs_dir() / "maps"``).
        target: as in :func:`explain`; predicted and given targets are cached apart.
        batch_size, progress: passed to :func:`explain` (the batch size is part of the key
            only for stochastic explainers).

    Returns:
        float32 maps ``[N, 1, H, W]`` on the CPU.
    """
    settings = dict(settings or {})
    explainer = make_explainer(method, model, **settings)
    key = maps_cache_key(
        explainer,
        x,
        checkpoint_hash=checkpoint_hash,
        split=split,
        subset=subset,
        target=target,
        batch_size=batch_size,
    )
    folder = Path(cache_dir) if cache_dir is not None else runs_dir() / "maps"
    safe_split = re.sub(r"[^A-Za-z0-9_.-]", "_", str(split))
    path = folder / f"{method}-{safe_split}-{hash_dict(key)}.pt"
    shape = (int(x.shape[0]), 1, *(int(s) for s in x.shape[-2:]))
    if path.exists():
        try:
            blob = load_tensors(path)
        except RuntimeError as e:
            warnings.warn(f"recomputing maps: {e}", stacklevel=2)
        else:
            reason = _stale_reason(blob, key, shape)
            if reason is None:
                return blob["maps"].float()
            warnings.warn(f"recomputing maps: {path} is stale: {reason}", stacklevel=2)
    maps = explain(
        model, x, method, target=target, batch_size=batch_size, progress=progress, **settings
    )
    atomic_torch_save({"key": key, "maps": maps}, path)
    return maps
