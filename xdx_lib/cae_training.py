"""The CAE trained alone on a teacher's cached explanation maps: the first stage of
XDistillation's ``staged`` schedule, the baseline ``kd_cae``'s CAE, and the CAE chapter's
amortised explainers.

:func:`pretrain_cae` trains (or reads from the run cache) the CAE a config names
(:func:`build_cae`) on the teacher's maps of the training split; its cache key holds
:data:`CAE_FIELDS`, the CAE variant, the explainer's settings, a hash of the training
images and the teacher's checkpoint. :func:`fit_cae` is its loop, on tensors in memory;
its docstring says why it is not :func:`xdx_lib.train.fit`. Layer: above the trained
models (the teacher's cached maps), the loop's parts (batches, precision, checkpoints,
devices), the CAE and the losses; below the methods that use it (:mod:`xdx_lib.xdistill`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ._utils import channels_last, model_device
from .batches import epoch_batches
from .cache import atomic_torch_save, hash_dict, runs_dir
from .cae import create_cae
from .checkpoints import load_checkpoint
from .config import RunConfig
from .devices import resolve_device, seed_everything
from .losses import EXPLANATION_LOSSES, explanation_loss
from .precision import autocast, grad_scaler, optimizer_step, resolve_precision
from .trained import DATA_FIELDS, TrainedModel, model_maps, pick, tensor_hash


def fit_cae(
    cae: nn.Module,
    x: Tensor,
    maps: Tensor,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    loss: str = "mse",
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
    amp: str = "auto",
) -> list[float]:
    """Train the CAE alone to reproduce cached teacher maps: the ``staged`` schedule's stage 1.

    Minimises ``explanation_loss(cae(x), maps, loss)`` with Adam on tensors held in memory
    (no DataLoader: Fashion-MNIST fits in memory many times over). Batches are drawn from a
    permutation seeded by ``(seed, epoch)`` (:func:`xdx_lib.batches.epoch_batches`, the same
    rule as the student's loop), so a run is reproducible on a CPU given the CAE's initial
    weights; each step is the loop's :func:`~xdx_lib.precision.optimizer_step`. The forward
    pass runs under the precision ``amp`` picks (:func:`~xdx_lib.precision.resolve_precision`:
    none on a CPU by default); the loss is taken in float32.

    Why not :func:`xdx_lib.train.fit` (the students' loop, which shares these batches,
    precision and step): (1) its AdamW with weight decay and cosine decay
    (:func:`~xdx_lib.train.cosine_optimizer`) would change every pre-trained CAE, and with
    it every ``staged`` student and every ``kd_cae`` map; it also takes the loss inside
    autocast, where this one is float32. (2) It scores each epoch through logits and labels,
    which a CAE has not. (3) Under ``torchrun`` its all-reduce and barriers need every rank,
    while rank 0 alone pre-trains the CAE (:func:`~xdx_lib.devices.rank_zero_first`).

    Args:
        cae: the autoencoder (trained in place; its train/eval mode is restored after).
        x: images ``[N, C, H, W]`` in [0, 1] (any device; batches are moved).
        maps: the teacher's maps ``[N, 1, H, W]`` in [0, 1], aligned with ``x``.
        epochs: passes over the data.
        batch_size: images per step.
        lr: Adam's learning rate.
        loss: a name in :data:`~xdx_lib.losses.EXPLANATION_LOSSES`.
        device: where to train; ``None`` keeps the device the CAE's parameters are on.
        seed: seeds the shuffling.
        progress: show a tqdm bar per epoch.
        amp: mixed precision, as the student loop's.

    Returns:
        The mean training loss of each epoch (weighted by batch size), ``len == epochs``.

    Raises:
        ValueError: misaligned ``x`` and ``maps`` or an unknown ``loss``.
        FloatingPointError: the loss became NaN or inf.
    """
    EXPLANATION_LOSSES.get(loss)  # fail before any work on an unknown name
    _check_aligned(x, maps)
    device = model_device(cae) if device is None else torch.device(device)
    cae.to(device, memory_format=torch.channels_last)  # as every model trains (fit)
    was_training = cae.training
    cae.train()
    opt = torch.optim.Adam(cae.parameters(), lr=lr)
    dtype = resolve_precision(amp, device)
    scaler = grad_scaler(device, dtype)
    history: list[float] = []
    try:
        for epoch in range(epochs):
            batches = epoch_batches(len(x), batch_size, seed, epoch)
            bar = tqdm(batches, total=math.ceil(len(x) / batch_size), leave=False,
                       desc=f"CAE epoch {epoch + 1}/{epochs}", disable=not progress)
            total, seen = 0.0, 0
            for step, idx in enumerate(bar):
                value = _cae_step(cae, x[idx], maps[idx], loss, opt, scaler, device, dtype,
                                  f"CAE loss at epoch {epoch + 1} step {step}")  # fmt: skip
                total += value * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{value:.4f}")
            history.append(total / max(seen, 1))
    finally:
        cae.train(was_training)
    return history


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


#: Config fields that determine a CAE trained alone on the teacher's maps.
CAE_FIELDS = DATA_FIELDS + ("explainer", "map_target", "cae_width", "cae_epochs", "exp_loss",
                            "batch_size", "seed", "cae_output", "cae_depth")  # fmt: skip


def build_cae(cfg: RunConfig, in_channels: int, variant: str | None = None) -> nn.Module:
    """The CAE a config names: ``variant`` (default ``cfg.cae_variant``), ``cae_output``,
    ``cae_depth`` and ``cae_width``, untrained."""
    return create_cae(variant or cfg.cae_variant, in_channels, width=cfg.cae_width,
                      depth=cfg.cae_depth, output=cfg.cae_output)  # fmt: skip


@dataclass
class TrainedCAE:
    """An explanation autoencoder trained alone on a teacher's cached maps.

    Attributes:
        model: the :class:`~xdx_lib.cae.CAE`, in eval mode.
        path: its checkpoint.
        history: the mean training loss of each epoch.
        key: its cache key.
        seconds: wall time of its training (0 when it was loaded from the cache).
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
    (:func:`~xdx_lib.trained.model_maps`); ``cfg`` is a :class:`~xdx_lib.config.RunConfig`.
    The cache key holds a hash of the training images, so a CAE trained on a smaller
    split is never mistaken for another. This is the first stage of the ``staged``
    schedule, the subject of the CAE chapter's ablation, and its amortised explainers.
    """
    cfg = cfg.resolved()
    variant = variant or cfg.cae_variant
    settings = dict(settings or {})
    key = hash_dict({**pick(cfg, CAE_FIELDS), "variant": variant, "settings": settings,
                     "inputs": tensor_hash(data.train.x),
                     "teacher": teacher.checkpoint_hash})  # fmt: skip
    path = runs_dir() / "cae" / f"{cfg.dataset}-{cfg.cae_output}-{variant}-{key}" / "model.pt"
    seed_everything(cfg.seed)
    cae = build_cae(cfg, data.in_channels, variant)
    if path.is_file():
        ckpt = load_checkpoint(path, cae, meta={"variant": variant, "key": key})
        cae.to(memory_format=torch.channels_last).eval()  # as trained (fit_cae)
        return TrainedCAE(cae, path, list(ckpt["history"]), key)
    target = data.train.y if cfg.map_target == "label" else None
    maps = model_maps(teacher, data.train.x, cfg.explainer, split="train", target=target,
                      **settings)  # fmt: skip
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    history = fit_cae(cae, data.train.x, maps, cfg.cae_epochs, batch_size=cfg.batch_size,
                      loss=cfg.exp_loss, device=device, seed=cfg.seed, amp=cfg.amp)  # fmt: skip
    seconds = time.perf_counter() - t0
    if verbose:
        print(f"CAE {variant}: loss per epoch {[round(v, 4) for v in history]}, {seconds:.1f} s")
    atomic_torch_save({"model": cae.state_dict(), "history": history, "seconds": seconds,
                       "meta": {"variant": variant, "key": key}}, path)  # fmt: skip
    cae.eval()
    return TrainedCAE(cae, path, history, key, seconds)
