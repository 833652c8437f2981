"""The training loop, with evaluation, atomic checkpoints, resume, AMP and DDP.

:func:`fit` trains any model with any :class:`~xdx_lib.methods.Method`: the method
supplies the forward pass, the loss terms and its per-epoch metrics, the loop supplies
everything else. The CAE's stand-alone pre-training (:func:`xdx_lib.xdistill.fit_cae`)
shares the loop's parts: :func:`epoch_batches`, :func:`autocast` and
:func:`optimizer_step`.
Checkpoints are written atomically after every epoch; a run that is killed resumes from
the last finished epoch and, on a CPU, ends with the same weights as a run that never
stopped (data order comes from a generator seeded by (seed, epoch), and the global RNG
state travels in the checkpoint).

It is the longest module (about 430 lines) for a reason: the loop's CPU and CUDA paths,
resume, DDP, augmentation and the device checks it starts with belong to one job.

Layer: imports the data, the metrics, the cache and ``xdx_lib._utils``; never a method,
a config or the runner (a method is passed in, and used only through its hooks).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ._utils import channels_last as to_channels_last
from .cache import atomic_torch_save, check_writable, load_tensors
from .data import Split
from .metrics import accuracy


class DeviceUnavailable(RuntimeError):
    """The device asked for does not exist here; the message names those that do."""


def available_devices() -> list[str]:
    """The devices of this machine: ``cpu``, each ``cuda:N``, and ``mps`` where it works."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        out.append("mps")
    return out


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; other names must exist here.

    Raises:
        DeviceUnavailable: ``cuda``, ``cuda:N`` or ``mps`` is not available (one line that
            names the available devices).
    """
    if name != "auto":
        available = available_devices()
        ok = name in available or (name == "cuda" and "cuda:0" in available)
        if not ok:
            raise DeviceUnavailable(
                f"device {name!r} is not available here (available: {', '.join(available)}); "
                "choose one of those, or auto"
            )
        return torch.device(name)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        return torch.device(f"cuda:{local}")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (initialisation, dropout) on every device, NumPy's
    and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def distributed() -> tuple[int, int]:
    """``(rank, world_size)``; starts the process group when launched by ``torchrun``."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if world > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1):
    """Index tensors of one epoch's shuffled batches, the same on every rank.

    The order depends only on ``(seed, epoch)``, so a resumed run sees the same batches.
    With ``world`` processes each takes its share of every global batch.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        yield idx[rank::world]


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard augmentation of a batch, each image its own draw; shape and range are kept.

    * RGB (3 channels): the CIFAR recipe, a random crop of the image's size from the image
      padded by 4 zero pixels on each side, and a horizontal flip with probability 1/2;
    * grey (any other channel count): a random shift of up to 2 pixels each way (a crop
      from a 2-pixel zero padding), no flip. One rule serves MNIST, where a mirrored digit
      is another glyph (or none), and Fashion-MNIST, whose 28x28 items are centred by the
      dataset's preparation so that small shifts are the variation a test image shows;
      flipping would be harmless there but is left out to keep the two grey sets alike.

    Batched on ``x``'s device, with no loop over images: the batch is padded once and each
    image's window is gathered with its own row and column offsets. The draws (flips, then
    offsets) come from ``generator``, on the generator's device (a CUDA generator keeps the
    step free of host synchronisation), so a run is reproducible from its seed.
    """
    n, c, h, w = x.shape
    rgb = c == 3
    p = 4 if rgb else 2
    dev = generator.device if generator is not None else x.device
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator, device=dev)
    if rgb:
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    padded = F.pad(x, (p, p, p, p)).permute(0, 2, 3, 1)  # [N, H + 2p, W + 2p, C]
    offsets = offsets.to(x.device)
    rows = offsets[0].view(n, 1, 1) + torch.arange(h, device=x.device).view(1, h, 1)
    cols = offsets[1].view(n, 1, 1) + torch.arange(w, device=x.device).view(1, 1, w)
    images = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[images, rows, cols].permute(0, 3, 1, 2).contiguous()  # [N, C, H, W]


def autocast(device: torch.device, amp: bool = True):
    """bfloat16 autocast on CUDA when ``amp``; a no-op context elsewhere."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, where: str,
                   remedy: str = "check the inputs") -> None:  # fmt: skip
    """One step on ``loss``: refuse a NaN or inf loss (naming ``where``), then backward, step.

    Shared by the student loop (:func:`fit`) and the CAE's pre-training.
    """
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"{where} became {loss.item()}; lower the learning rate or {remedy}"
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def make_batch(split: Split, idx: torch.Tensor, extras: dict | None, device,
               index: torch.Tensor | None = None) -> dict:  # fmt: skip
    """The batch dict a method sees: ``x``, ``y``, ``index`` and the cached extras.

    ``idx`` indexes the split's tensors (on their device: :func:`fit` keeps the training
    split and its extras on a CUDA device, so a batch is gathered there with no copy from
    the host); ``index`` is what the batch records as ``index`` (default ``idx``).
    """
    batch = {"x": split.x[idx].to(device), "y": split.y[idx].to(device),
             "index": idx if index is None else index}  # fmt: skip
    for k, v in (extras or {}).items():
        batch[k] = v[idx].to(device)
    return batch


@torch.no_grad()
def predict_logits(logits_fn: Callable, x: torch.Tensor, device, batch_size: int = 512):
    """Logits for every image of ``x``, batched, returned on the CPU as float32.

    Image batches go in as ``channels_last``, the memory format the library's models train
    and run in (``xdx_lib._utils.channels_last``).
    """
    out = []
    for start in range(0, len(x), batch_size):
        out.append(logits_fn(to_channels_last(x[start : start + batch_size].to(device)))
                   .float().cpu())  # fmt: skip
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def evaluate(model, method, split: Split, device, extras: dict | None = None, batch_size=512):
    """Test accuracy and loss, then the method's own per-epoch metrics.

    Agreement with the teacher, the Grad-CAM tracking of students and the CAE's map
    quality all come from :meth:`~xdx_lib.methods.Method.epoch_metrics`.
    """
    was_training = model.training
    model.eval()
    logits = predict_logits(lambda xb: method.logits(model, xb), split.x, device, batch_size)
    model.train(was_training)
    res = {
        "test_acc": accuracy(logits, split.y),
        "test_loss": F.cross_entropy(logits, split.y).item(),
    }
    res.update(method.epoch_metrics(model, split, extras or {}, logits))
    return res


class CheckpointMismatch(RuntimeError):
    """A checkpoint does not fit the model or run it is loaded into."""


def load_state_checked(model: nn.Module, state: dict, path: str | os.PathLike) -> None:
    """``load_state_dict`` with one clear error listing what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        if shapes:
            k = shapes[0]
            parts.append(f"{k} has shape {tuple(state[k].shape)}, model has {tuple(own[k].shape)}")
        raise CheckpointMismatch(
            f"checkpoint {path} does not fit this model ({'; '.join(parts)}); "
            "check the model name and dataset, or delete the checkpoint to retrain"
        )
    model.load_state_dict(state)


def checkpoint_epochs(path: str | os.PathLike) -> int:
    """Epochs a checkpoint at ``path`` has finished (0 when there is none, or it is unreadable).

    The runner asks this before preparing a method, so that a finished student costs only
    loading its weights.
    """
    if not Path(path).is_file():
        return 0
    try:
        ckpt = load_tensors(path)
    except RuntimeError:
        return 0
    return int(ckpt.get("epoch", 0)) if isinstance(ckpt, dict) else 0


def load_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict | None = None) -> dict:
    """Load a checkpoint written by :func:`fit` into ``model`` (``weights_only=True``).

    Returns the checkpoint dict (epoch, history, optimiser state, ...). Raises
    :class:`CheckpointMismatch` when its ``meta`` differs from the given one or its
    weights do not fit the model, and ``RuntimeError`` when the file is corrupt.
    """
    ckpt = load_tensors(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointMismatch(f"{path} is not an xdx checkpoint; delete it to retrain")
    if meta is not None and ckpt.get("meta") != meta:
        raise CheckpointMismatch(
            f"checkpoint {path} was written for {ckpt.get('meta')}, not {meta}; "
            "delete it or choose another runs folder"
        )
    load_state_checked(model, ckpt["model"], path)
    return ckpt


def fit(
    model: nn.Module,
    method,
    train: Split,
    test: Split,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: torch.device | str = "cpu",
    ckpt_path: str | os.PathLike | None = None,
    meta: dict | None = None,
    train_extras: dict | None = None,
    test_extras: dict | None = None,
    amp: bool = True,
    augment: bool = False,
    progress: bool = False,
    verbose: bool = True,
    callback: Callable[[int, int], None] | None = None,
    signals: Callable[[dict], dict] | None = None,
    channels_last: bool = False,
    compile: bool = False,
) -> list[dict]:
    """Train ``model`` with ``method`` for ``epochs`` epochs and return the history.

    Optimiser: AdamW with a per-step cosine decay of the learning rate to zero. After each
    epoch the model is evaluated on ``test`` (:func:`evaluate`) and, if ``ckpt_path`` is given,
    a checkpoint is written atomically. An existing checkpoint with the same ``meta`` is
    resumed; one that is complete returns its history without training.

    Args:
        model: the network to train (moved to ``device``).
        method: a :class:`~xdx_lib.methods.Method` giving forward and loss terms.
        train, test: data splits held in memory.
        train_extras, test_extras: per-image tensors aligned with the splits (cached
            teacher logits or maps), sliced into every batch under their names.
        augment: augment each training batch (:func:`augment_batch`, seeded by
            ``(seed, epoch)``).
        callback: called as ``callback(epoch, step)`` after every step (tests use it to
            interrupt a run).
        signals: ``batch -> dict`` of more batch tensors, called on every batch after
            augmentation (the online teacher's logits and maps of the augmented images,
            built by :mod:`xdx_lib.experiments` for ``teacher_signal: online``).
        channels_last: train in the ``channels_last`` memory format (images only; why: the
            docstring of ``xdx_lib._utils.channels_last``).
        compile: on CUDA only, train through ``torch.compile``; ignored elsewhere.

    On CUDA the loop keeps the GPU busy: the training split and its extras are copied to
    the device once, each epoch's indices once, augmentation draws on a CUDA generator,
    and no step waits for the host (loss sums stay on the device, and a NaN or inf loss is
    caught from the epoch's sum, before the checkpoint is written). Elsewhere every step
    checks its loss, as it costs nothing there; the numbers are the same either way.

    Returns:
        list[dict]: one dict per epoch, with ``epoch``, ``train_loss``, each term's mean,
        ``epoch_time`` (seconds of training, evaluation excluded), ``test_acc``,
        ``test_loss``, the method's :meth:`~xdx_lib.methods.Method.epoch_metrics`
        (``agreement`` and ``gradcam_pearson`` for students) and ``lr``.
    """
    device = torch.device(device)
    if ckpt_path is not None:
        check_writable(Path(ckpt_path).parent)  # fail now, not after the first epoch
    on_cuda = device.type == "cuda"
    rank, world = distributed()
    model.to(device)
    channels_last = channels_last and train.x.dim() == 4
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    history: list[dict] = []
    start_epoch = 0
    if ckpt_path is not None and Path(ckpt_path).is_file():
        ckpt = load_checkpoint(ckpt_path, model, meta)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"])
        history, start_epoch = list(ckpt["history"]), int(ckpt["epoch"])
        if verbose and rank == 0 and start_epoch < epochs:
            print(f"resuming {Path(ckpt_path).name} after epoch {start_epoch}")
    net = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if compile and on_cuda:
        net = torch.compile(net)
    if on_cuda:  # data resident on the device: batches are gathered there
        train = Split(train.x.to(device), train.y.to(device))
        train_extras = {k: v.to(device) for k, v in (train_extras or {}).items()}
    # float64 sums give the same numbers as summing Python floats (MPS has no float64)
    sum_dtype = torch.float32 if device.type == "mps" else torch.float64
    show_every = 10  # steps between progress-bar updates (each one waits for the device)

    for epoch in range(start_epoch, epochs):
        model.train()
        t0 = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        n_seen = 0
        aug_gen = torch.Generator(device if on_cuda else "cpu").manual_seed(seed * 7919 + epoch)
        batches = list(epoch_batches(len(train), batch_size, seed, epoch, rank, world))
        on_device = batches
        if on_cuda and batches:  # one copy of the epoch's indices, not one per step
            on_device = torch.cat(batches).to(device).split([len(b) for b in batches])
        show = progress and rank == 0
        bar = tqdm(zip(batches, on_device), total=steps_per_epoch, leave=False,
                   desc=f"epoch {epoch + 1}/{epochs}", disable=not show)  # fmt: skip
        for step, (idx, idx_on_device) in enumerate(bar):
            batch = make_batch(train, idx_on_device, train_extras, device, index=idx)
            if augment:
                batch["x"] = augment_batch(batch["x"], aug_gen)
            if channels_last:
                batch["x"] = to_channels_last(batch["x"])
            if signals is not None:
                batch.update(signals(batch))
            with autocast(device, amp):
                out = method.forward(net, batch)
                terms = method.loss_terms(out, batch)
            loss = sum(terms.values())
            if on_cuda:  # no host synchronisation: a non-finite sum is caught below
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            else:
                optimizer_step(opt, loss, f"loss at epoch {epoch + 1} step {step}")
            sched.step()
            k = len(idx)
            n_seen += k
            for name, v in (("train_loss", loss), *terms.items()):
                v = v.detach().to(sum_dtype) * k
                sums[name] = sums[name] + v if name in sums else v
            if show and step % show_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if callback is not None:
                callback(epoch, step)
        # one synchronisation per epoch: the sums, then the finite-loss check
        totals = dict(zip(sums, torch.stack(list(sums.values())).tolist())) if sums else {}
        if not math.isfinite(totals.get("train_loss", 0.0)):
            raise FloatingPointError(
                f"loss at epoch {epoch + 1} became {totals['train_loss']}; "
                "lower the learning rate or check the inputs"
            )
        record = {"epoch": epoch + 1, **{k: v / max(n_seen, 1) for k, v in totals.items()}}
        record["epoch_time"] = time.perf_counter() - t0  # training only, not evaluation
        record.update(evaluate(model, method, test, device, test_extras))
        record["lr"] = opt.param_groups[0]["lr"]
        history.append(record)
        if verbose and rank == 0:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch")
            print(f"epoch {epoch + 1}/{epochs}: {shown}")
        if ckpt_path is not None and rank == 0:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": torch.get_rng_state(),
                    "epoch": epoch + 1,
                    "history": history,
                    "meta": meta,
                },
                ckpt_path,
            )
        if world > 1:
            dist.barrier()
    return history
