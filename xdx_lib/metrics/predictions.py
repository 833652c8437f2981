"""Numbers of predictions: accuracy, agreement with another model, and flips between seeds.
"""
from __future__ import annotations

from torch import Tensor

try:  # the reference SSIM; the fallback below reproduces it
    from torchmetrics.functional.image import structural_similarity_index_measure as _tm_ssim
except ImportError:  # pragma: no cover - torchmetrics is a declared dependency
    _tm_ssim = None



def accuracy(logits: Tensor, y: Tensor) -> float:
    """Fraction of rows whose top-1 class is the label ``y``."""
    return (logits.argmax(dim=1) == y.to(logits.device)).float().mean().item()


def agreement(logits_a: Tensor, logits_b: Tensor) -> float:
    """Fraction of rows where two models predict the same top-1 class (student vs teacher)."""
    return (
        (logits_a.argmax(dim=1) == logits_b.argmax(dim=1).to(logits_a.device)).float().mean().item()
    )


def flip_spread(correct: Tensor) -> dict[str, float]:
    """How much of the spread of accuracy between seeds independent per-image flips explain.

    ``correct`` is ``[seeds, images]``, 1 where a seed's model is right on an image (or
    agrees with the teacher). With ``p_i`` the share of seeds right on image ``i``, if
    each image flipped independently between seeds the accuracies' standard deviation
    would be ``sqrt(sum_i p_i (1 - p_i) / (S - 1) * S) / N`` (the sample standard
    deviation of a sum of independent Bernoullis). Returns ``observed_sd`` (of the
    seeds' accuracies), ``independent_sd`` (that prediction), their ``ratio`` and
    ``unstable`` (the share of images on which the seeds do not all agree). A ratio near 1
    says the spread is the test set's finite size, which more test images shrink; well
    above 1, seeds differ as wholes, which only more seeds average out.
    """
    c = correct.double()
    if c.dim() != 2 or c.shape[0] < 2:
        raise ValueError(f"correct should be [seeds >= 2, images], got {tuple(c.shape)}")
    s, n = c.shape
    p = c.mean(0)
    observed = c.mean(1).std().item()
    independent = ((p * (1 - p)).sum() * s / (s - 1)).sqrt().item() / n
    return {"observed_sd": observed, "independent_sd": independent,
            "ratio": observed / independent if independent > 0 else float("nan"),
            "unstable": ((p > 0) & (p < 1)).double().mean().item()}  # fmt: skip
