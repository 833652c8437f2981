"""Post-hoc explanations: one interface over Captum, plus normalising and batching.

The teacher explanation is ``e_T(x) = N(E(T, x, c))`` (see the book's chapter "Method,
claims and metrics"): ``E`` is a Captum attribution method, ``c`` the model's predicted class (or a
given label), and ``N`` turns Captum's raw attribution into a map in [0, 1] of the input's
size (:func:`normalize_maps`). This module never re-implements an attribution method; it
adds only what Captum lacks:

* choosing the layer (Grad-CAM explains ``model.gradcam_layer`` or a layer named by its
  dotted path), the baselines and the superpixels (LIME, KernelSHAP);
* one sign convention per explainer (:attr:`Explainer.sign`) and per-image min-max scaling;
* batching on the model's device, with the model in eval mode (BatchNorm must use its
  running statistics, and must not update them, while we differentiate through it);

The package is split by family, as Captum's ``attr`` is: ``explain.base``
(the :class:`Explainer` interface, :func:`normalize_maps`, :func:`explain`),
:mod:`~xdx_lib.explain.gradient` (Grad-CAM, Saliency, Integrated Gradients,
GradientSHAP, DeepLIFT) and :mod:`~xdx_lib.explain.perturbation` (occlusion, LIME,
KernelSHAP). Importing the package registers all eight. The on-disk cache of a trained
model's maps lives with the cached models (:func:`xdx_lib.training.trained_model.model_maps`).

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

from xdx_lib.explain.base import (
    EXPLAINERS,
    SIGNS,
    Explainer,
    explain,
    make_explainer,
    minmax_per_image,
    normalize_maps,
)
from xdx_lib.explain.gradient import (
    DeepLiftExplainer,
    GradCamExplainer,
    GradientShapExplainer,
    IntegratedGradientsExplainer,
    SaliencyExplainer,
)
from xdx_lib.explain.perturbation import (
    KernelShapExplainer,
    LimeExplainer,
    OcclusionExplainer,
    grid_feature_mask,
)

__all__ = [
    "EXPLAINERS", "SIGNS", "Explainer", "explain", "make_explainer", "minmax_per_image",
    "normalize_maps", "DeepLiftExplainer", "GradCamExplainer", "GradientShapExplainer",
    "IntegratedGradientsExplainer", "SaliencyExplainer", "KernelShapExplainer",
    "LimeExplainer", "OcclusionExplainer", "grid_feature_mask",
]  # fmt: skip
