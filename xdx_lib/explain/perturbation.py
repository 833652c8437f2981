"""Perturbation explainers: occlusion, LIME and KernelSHAP (the last two over superpixels).

Each wraps one Captum class; LIME and KernelSHAP share ``_SurrogateExplainer``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xdx_lib.explain.base import EXPLAINERS, Explainer


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

