"""What training a method's student costs, counted in floating-point operations.

A choice between schedules "by cost" must not depend on the machine that measured it:
seconds an epoch move with the CPU, the other jobs running and the cache's state, so two
readers could pick different defaults from the same scores. :func:`training_flops` counts
instead the operations one training image costs over the whole schedule, with torch's own
counter (:class:`torch.utils.flop_counter.FlopCounterMode`) on one forward and backward
pass of the untrained model: the student's epochs, plus, for XDistillation's ``staged``
schedule, the epochs that pre-train its CAE alone. The teacher's logits and maps are
computed once for every method alike (and cached), so they are left out. Layer: beside the
methods (:mod:`xdx_lib.distill.method`), above the models; nothing here trains.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from xdx_lib.core.config import RunConfig
from xdx_lib.distill.cae_pretraining import build_cae
from xdx_lib.distill.method import create_method


def step_flops(model: nn.Module, x: torch.Tensor, outputs) -> int:
    """Operations of one forward and backward pass of ``model`` on ``x``; ``outputs`` maps
    the model's output to the tensors a loss would be taken of (their sum is backpropagated,
    so only what trains is counted: a frozen or detached part costs its forward alone)."""
    model.train()
    with FlopCounterMode(display=False) as counter:
        trained = [t.float().sum() for t in outputs(model, x) if t.requires_grad]
        if trained:  # a model that learns nothing costs its forward pass alone
            sum(trained).backward()
    return counter.get_total_flops()


def training_flops(cfg: RunConfig, x: torch.Tensor, num_classes: int) -> float:
    """Operations that training one image costs over ``cfg``'s whole schedule.

    ``x``: a few training images (their shape is what matters). The student's step is
    counted on the method's untrained model (:meth:`~xdx_lib.distill.method.Method.build_model`),
    with XDistillation's map as an output when its explanation loss trains the CAE; a
    ``staged`` XDistillation adds ``cae_epochs`` passes of the CAE alone. Returns
    ``student_epochs * step + cae_epochs * pre-training step``, per image.
    """
    cfg = cfg.resolved()
    method = create_method(cfg)
    torch.manual_seed(0)  # the count does not depend on the weights; keep it reproducible
    model = method.build_model(x.shape[1], num_classes)
    learns_maps = bool(getattr(method, "learns_maps", False))

    def student_outputs(m, images):
        if cfg.method != "xdistill":
            return [m(images)]
        logits, maps = m(images, return_map=True)
        return [logits, maps] if learns_maps else [logits]

    per_image = cfg.student_epochs * step_flops(model, x, student_outputs) / len(x)
    if cfg.method == "xdistill" and cfg.schedule == "staged":
        cae = build_cae(cfg, x.shape[1])
        per_image += cfg.cae_epochs * step_flops(cae, x, lambda m, images: [m(images)]) / len(x)
    return float(per_image)
