"""Training costs counted in operations: the same on every call, and ordered as the
schedules' work is."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from xdx_lib.core.config import RunConfig
from xdx_lib.distill.cost import step_flops, training_flops

CFG = RunConfig(dataset="fashion_mnist", profile="book")
X = torch.rand(4, 1, 28, 28)


def flops(**changes) -> float:
    return training_flops(dataclasses.replace(CFG, **changes), X, 10)


def test_a_linear_step_counts_its_forward_and_backward():
    layer = nn.Linear(8, 3)
    x = torch.rand(5, 8)
    # forward 2*5*8*3; backward: the weight's gradient alone (the input needs none)
    assert step_flops(layer, x, lambda m, v: [m(v)]) == 2 * 5 * 8 * 3 * 2
    layer.requires_grad_(False)
    assert step_flops(layer, x, lambda m, v: [m(v)]) == 2 * 5 * 8 * 3  # the forward alone


def test_the_count_is_the_same_every_time_and_scales_with_epochs():
    assert flops(method="kd") == flops(method="kd")
    assert flops(method="kd", student_epochs=64) == 2 * flops(method="kd", student_epochs=32)


def test_the_schedules_cost_what_they_train():
    kd, staged = flops(method="kd"), flops(method="xdistill")
    joint = flops(method="xdistill", schedule="joint")
    assert kd < staged < joint  # the frozen CAE runs forward only while the student learns
    # the staged schedule's pre-training: each extra CAE epoch adds the same amount
    one_more = flops(method="xdistill", cae_epochs=CFG.cae_epochs + 1) - staged
    assert one_more > 0 and flops(method="xdistill", cae_epochs=CFG.cae_epochs + 2) - staged \
        == 2 * one_more
    assert flops(method="xdistill", schedule="joint", cae_epochs=1) == joint  # no pre-training
