"""Small helpers shared by the explainers, the metrics and the training loop.

One home for the jobs several modules need: which device a model is on, the network inside
a DDP or compiled wrapper, eval mode that restores each submodule's own mode, seeded RNGs,
the finite-input check, and which class a map explains (:func:`resolve_target`). This
module imports only torch and NumPy; every other module of the library may import it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn


def channels_last(x: Tensor) -> Tensor:
    """``x`` in the ``channels_last`` memory format when it is an image batch
    ``[N, C, H, W]``, else unchanged.

    Every model of the library trains and runs in that format (:func:`xdx_lib.training.loop.fit`):
    convolutions run faster in it on a CPU (oneDNN) and on a GPU it feeds the tensor cores
    (``benchmarks/train_throughput.py`` measures it). The values are the same either way.
    """
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside any DistributedDataParallel and ``torch.compile`` wrappers.

    The wrappers run the network's own modules, so hooks and attributes (``stages``,
    ``gradcam_layer``) belong on the network they wrap, in whatever order they were stacked.
    """
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


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


def as_target(target: Tensor | int, n: int, device: torch.device | str | None = None) -> Tensor:
    """Given classes as indices ``[n]`` (int64): one int is broadcast, a wrong shape raises."""
    target = torch.as_tensor(target, device=device).long()
    if target.dim() == 0:
        target = target.expand(n)
    if target.shape != (n,):
        raise ValueError(f"target must be an int or have shape [{n}], got {tuple(target.shape)}")
    return target


@torch.no_grad()
def resolve_target(
    model: nn.Module, x: Tensor, target: Tensor | int | None, batch_size: int = 512
) -> Tensor:
    """The classes to explain or score, ``[N]`` on ``x``'s device.

    ``target`` broadcast and checked (:func:`as_target`), or, when it is None, the model's
    predicted class: one forward pass without gradients, in batches on the model's device.
    """
    n = x.shape[0]
    if target is not None:
        return as_target(target, n, x.device)
    device = model_device(model)
    preds = [model(x[i : i + batch_size].to(device)).argmax(dim=1).to(x.device)
             for i in range(0, n, batch_size)]  # fmt: skip
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=x.device)


def check_maps(maps: Tensor, what: str = "maps") -> None:
    """Raise ``ValueError`` unless ``maps`` is a finite ``[N, 1, H, W]`` batch."""
    if maps.dim() != 4:
        raise ValueError(f"{what} must have shape [N, 1, H, W], got {tuple(maps.shape)}")
    if not torch.isfinite(maps).all():
        raise ValueError(f"{what} contain NaN or inf")


def safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0``, else 0 (a constant or zero map carries no signal)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))
