"""The optimiser every model of the library trains with: AdamW, its learning rate decayed
per step along a cosine to zero (:func:`cosine_optimizer`). One home, so that the training
loop (:mod:`xdx_lib.training.loop`) and a resumed checkpoint build the same pair. Layer:
training."""

from __future__ import annotations

import math

import torch
from torch import nn


def cosine_optimizer(model: nn.Module, lr: float, weight_decay: float, total_steps: int):
    """AdamW with a per-step cosine decay of the learning rate to zero over ``total_steps``."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = max(1, total_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    return opt, sched
