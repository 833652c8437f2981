"""Generated images the CAE tests train and score on, and the explanation losses they try."""

from __future__ import annotations

import torch

LOSS_KINDS = ("mse", "bce", "ssim", "pearson")


def blobs(n: int, size: int = 28, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """Images of one Gaussian blob each, at a random place, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=g) * (size - 8) + 4
    coords = torch.arange(size, dtype=torch.float32)
    dy = (coords.view(1, size, 1) - centre[:, 0].view(n, 1, 1)) ** 2
    dx = (coords.view(1, 1, size) - centre[:, 1].view(n, 1, 1)) ** 2
    img = torch.exp(-(dy + dx) / (2 * 3.0**2)).unsqueeze(1)
    return img.expand(n, channels, size, size).contiguous()
