"""The optimiser and its cosine schedule."""

import math

import pytest
import torch

from xdx_lib.training.optim import cosine_optimizer


def test_the_learning_rate_decays_along_a_cosine_to_zero():
    model = torch.nn.Linear(2, 1)
    opt, sched = cosine_optimizer(model, 0.1, 0.01, total_steps=4)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.01
    rates = []
    for _ in range(6):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    half = 0.1 * 0.5 * (1 + math.cos(math.pi / 4))
    assert rates[:2] == pytest.approx([0.1, half]) and rates[4:] == pytest.approx([0.0, 0.0])
