"""The CAE trained alone on a teacher's cached explanation maps: the first stage of
XDistillation's ``staged`` schedule, the baseline ``kd_cae``'s CAE, and the CAE chapter's
amortised explainers.

:func:`pretrain_cae` trains (or reads from the run cache) the CAE a config names
(:func:`build_cae`) on the teacher's maps of the training split; its cache key holds
:data:`~xdx_lib.core.layout.CAE_FIELDS`, the CAE variant, the explainer's settings, a hash of the
training images and the teacher's checkpoint. :func:`fit_cae` is its loop, on tensors in memory; its
docstring says why it is not :func:`xdx_lib.training.loop.fit`. Layer: above the trained models (the
teacher's cached maps), the loop's parts (batches, precision, checkpoints, devices), the CAE and the
losses; below the methods that use it (:mod:`xdx_lib.distill.xdistill`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from xdx_lib.core import layout
from xdx_lib.core._utils import channels_last, model_device
from xdx_lib.core.cache import atomic_torch_save, tensor_hash
from xdx_lib.core.config import RunConfig
from xdx_lib.core.devices import resolve_device, seed_everything
from xdx_lib.data.batches import epoch_batches
from xdx_lib.distill.explanation_losses import EXPLANATION_LOSSES, explanation_loss
from xdx_lib.models.cae import create_cae
from xdx_lib.training.checkpoints import load_checkpoint
from xdx_lib.training.loop import Hardware
from xdx_lib.training.precision import autocast, grad_scaler, optimizer_step, resolve_precision
from xdx_lib.training.trained_model import TrainedModel, model_maps


def fit_cae(
    cae: nn.Module,
    x: Tensor,
    maps: Tensor,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    loss: str = "mse",
    hardware: Hardware | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train the CAE alone to reproduce cached teacher maps: the ``staged`` schedule's stage 1.

    Minimises ``explanation_loss(cae(x), maps, loss)`` with Adam on tensors held in memory (no
    DataLoader: Fashion-MNIST fits in memory many times over). Batches are drawn from a permutation
    seeded by ``(seed, epoch)`` (:func:`xdx_lib.data.batches.epoch_batches`, the same rule as the
    student's loop), so a run is reproducible on a CPU given the CAE's initial weights; each step is
    the loop's :func:`~xdx_lib.training.precision.optimizer_step`. The forward pass runs under the
    precision ``hardware.precision`` picks (:func:`~xdx_lib.training.precision.resolve_precision`:
    bfloat16 on a CPU only where it has bfloat16 matrix units); the loss is taken in float32.

    Why not :func:`xdx_lib.training.loop.fit` (the students' loop, which shares these batches,
    precision and step): (1) its AdamW with weight decay and cosine decay
    (:func:`~xdx_lib.training.optim.cosine_optimizer`) would change every pre-trained CAE, and with
    it every ``staged`` student and every ``kd_cae`` map; it also takes the loss inside
    autocast, where this one is float32. (2) It scores each epoch through logits and labels,
    which a CAE has not. (3) Under ``torchrun`` its all-reduce and barriers need every rank,
    while rank 0 alone pre-trains the CAE (:func:`~xdx_lib.core.devices.rank_zero_first`).

    Args:
        cae: the autoencoder (trained in place; its train/eval mode is restored after).
        x: images ``[N, C, H, W]`` in [0, 1] (any device; batches are moved).
        maps: the teacher's maps ``[N, 1, H, W]`` in [0, 1], aligned with ``x``.
        epochs: passes over the data.
        batch_size: images per step.
        lr: Adam's learning rate.
        loss: a name in :data:`~xdx_lib.distill.explanation_losses.EXPLANATION_LOSSES`.
        hardware: the device and mixed precision to train with, as the student loop's
            (None: the device the CAE's parameters are on, ``auto`` precision).
        seed: seeds the shuffling.
        progress: show a tqdm bar per epoch.

    Returns:
        The mean training loss of each epoch (weighted by batch size), ``len == epochs``.

    Raises:
        ValueError: misaligned ``x`` and ``maps`` or an unknown ``loss``.
        FloatingPointError: the loss became NaN or inf.
    """
    EXPLANATION_LOSSES.get(loss)  # fail before any work on an unknown name
    _check_aligned(x, maps)
    hardware = hardware or Hardware(model_device(cae))
    device = torch.device(hardware.device)
    cae.to(device, memory_format=torch.channels_last)  # as every model trains (fit)
    was_training = cae.training
    cae.train()
    opt = torch.optim.Adam(cae.parameters(), lr=lr)
    dtype = resolve_precision(hardware.precision, device)
    scaler = grad_scaler(device, dtype)
    history: list[float] = []
    try:
        for epoch in range(epochs):
            batches = epoch_batches(len(x), batch_size, seed, epoch)
            bar = tqdm(batches, total=math.ceil(len(x) / batch_size), leave=False,
                       desc=f"CAE epoch {epoch + 1}/{epochs}", disable=not progress)
            step = functools.partial(_cae_step, cae, loss=loss, opt=opt, scaler=scaler,
                                     device=device, dtype=dtype)  # fmt: skip
            history.append(_cae_epoch(step, x, maps, bar, epoch))
    finally:
        cae.train(was_training)
    return history


def _cae_epoch(step: Callable, x: Tensor, maps: Tensor, bar, epoch: int) -> float:
    """One pass over the batches ``bar`` yields; the mean loss, weighted by batch size."""
    total, seen = 0.0, 0
    for i, idx in enumerate(bar):
        value = step(x[idx], maps[idx], where=f"CAE loss at epoch {epoch + 1} step {i}")
        total += value * len(idx)
        seen += len(idx)
        bar.set_postfix(loss=f"{value:.4f}")
    return total / max(seen, 1)


def _check_aligned(x: Tensor, maps: Tensor) -> None:
    """Images ``[N, C, H, W]`` and maps ``[N, 1, H, W]`` of the same images and size."""
    if len(x) != len(maps) or maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(
            f"x {tuple(x.shape)} and maps {tuple(maps.shape)} must be aligned [N, C, H, W] "
            "and [N, 1, H, W]"
        )
    if maps.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"maps are {tuple(maps.shape[-2:])}, images {tuple(x.shape[-2:])}")


def _cae_step(cae: nn.Module, xb: Tensor, mb: Tensor, loss: str, opt, scaler, device,
              dtype, where: str) -> float:  # fmt: skip
    """One optimiser step of the CAE on a batch; returns the batch's loss."""
    xb = channels_last(xb.to(device, torch.float32, non_blocking=True))
    mb = mb.to(device, torch.float32, non_blocking=True)
    with autocast(device, dtype):
        pred = cae(xb)
    value = explanation_loss(pred, mb, loss)
    optimizer_step(opt, value, where, remedy="check the maps", scaler=scaler)
    return value.item()


def build_cae(cfg: RunConfig, in_channels: int, variant: str | None = None) -> nn.Module:
    """The CAE a config names: ``variant`` (default ``cfg.cae_variant``), ``cae_output``,
    ``cae_depth`` and ``cae_width``, untrained."""
    return create_cae(variant or cfg.cae_variant, in_channels, width=cfg.cae_width,
                      depth=cfg.cae_depth, output=cfg.cae_output)  # fmt: skip


@dataclass
class TrainedCAE:
    """An explanation autoencoder trained alone on a teacher's cached maps.

    Attributes:
        model: the :class:`~xdx_lib.models.cae.CAE`, in eval mode.
        path: its checkpoint.
        history: the mean training loss of each epoch.
        key: its cache key.
        seconds: wall time of its training, as recorded when it was trained (so the same
            when it is read back from the cache; 0 for a checkpoint that recorded none).
    """

    model: nn.Module
    path: Path
    history: list[float]
    key: str
    seconds: float = 0.0


def pretrain_cae(cfg: RunConfig, data, teacher: TrainedModel, variant: str | None = None,
                 verbose: bool = True, settings: dict | None = None) -> TrainedCAE:  # fmt: skip
    """Train (or load) the CAE ``variant`` (default ``cfg.cae_variant``) on the teacher's maps.

    The maps are the teacher's ``cfg.explainer`` explanations (with the explainer's
    ``settings``, e.g. ``{"n_steps": 8}``) of ``data``'s training split, from the cache
    (:func:`~xdx_lib.training.trained_model.model_maps`); ``cfg`` is a
    :class:`~xdx_lib.core.config.RunConfig`. The cache key holds a hash of the training images, so a
    CAE trained on a smaller split is never mistaken for another. This is the first stage of the
    ``staged`` schedule, the subject of the CAE chapter's ablation, and its amortised explainers.
    """
    cfg = cfg.resolved()
    variant = variant or cfg.cae_variant
    settings = dict(settings or {})
    key = layout.cae_key(cfg, variant, settings, tensor_hash(data.train.x), teacher.key)
    path = layout.cae_path(cfg, variant, key)
    seed_everything(cfg.seed)
    cae = build_cae(cfg, data.in_channels, variant)
    if path.is_file():
        ckpt = load_checkpoint(path, cae, meta={"variant": variant, "key": key})
        cae.to(memory_format=torch.channels_last).eval()  # as trained (fit_cae)
        return TrainedCAE(cae, path, list(ckpt["history"]), key, float(ckpt.get("seconds", 0.0)))
    target = data.train.y if cfg.map_target == "label" else None
    maps = model_maps(teacher, data.train.x, cfg.explainer, split="train", target=target,
                      **settings)  # fmt: skip
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    history = fit_cae(cae, data.train.x, maps, cfg.cae_epochs, batch_size=cfg.batch_size,
                      loss=cfg.exp_loss, hardware=Hardware(device, precision=cfg.amp),
                      seed=cfg.seed)  # fmt: skip
    seconds = time.perf_counter() - t0
    if verbose:
        print(f"CAE {variant}: loss per epoch {[round(v, 4) for v in history]}, {seconds:.1f} s")
    atomic_torch_save({"model": cae.state_dict(), "history": history, "seconds": seconds,
                       "meta": {"variant": variant, "key": key}}, path)  # fmt: skip
    cae.eval()
    return TrainedCAE(cae, path, history, key, seconds)
