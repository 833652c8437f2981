"""Gradient explainers: Grad-CAM, Saliency, Integrated Gradients, GradientSHAP, DeepLIFT.

Each wraps one Captum class and overrides only :meth:`~xdx_lib.explain.Explainer.attribute`.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from xdx_lib.explain.base import EXPLAINERS, Explainer, _baseline_like, _grad_input


@EXPLAINERS.register("gradcam")
class GradCamExplainer(Explainer):
    """Grad-CAM (Selvaraju et al. 2017) via ``captum.attr.LayerGradCam``.

    ``cam = relu(sum_k w_k A_k)`` with ``w_k = mean_{ij} d y_c / d A_k[i, j]``, where ``A``
    is the output of ``model.gradcam_layer`` (or of ``settings["layer"]``, a dotted module
    path such as ``"features.1"``), then bilinearly upsampled to the input.

    Settings:
        layer: dotted name of the layer to explain; None uses ``model.gradcam_layer``.
        normalize: min-max each map to [0, 1] (default); False keeps the raw ReLU map,
            upsampled, as e2KD's reference code matches it (a separate cache entry).
    """

    name = "gradcam"
    sign = "positive"
    defaults = {"layer": None, "normalize": True}

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
    (memory: 1024 took 3.6 GB on the CPU teacher).

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

