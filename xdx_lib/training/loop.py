"""The training loop: one :func:`fit` for every model and method, with evaluation after each
epoch, checkpoints, resume, mixed precision and DDP.

:func:`fit` trains any model with any :class:`~xdx_lib.distill.method.Method`: the method
supplies the forward pass, the loss terms and its per-epoch metrics, the loop supplies
everything else. What a run is told comes in three records: its :class:`Schedule` (epochs,
batches, learning rate, seed, augmentation), its :class:`Hardware` (device, precision,
compilation, memory format) and its :class:`Checkpointing` (file and ``meta``);
:func:`xdx_lib.experiments.session.loop_records` builds them from a config. The module reads in the
order a run goes: :func:`fit` sets up (optimiser, schedule,
:func:`~xdx_lib.training.checkpoints.resume`) and holds what every step reads in a
:class:`LoopState`; :func:`run_epochs` runs :func:`train_one_epoch` (each step
:func:`training_step`), evaluates (:func:`finish_epoch`, :func:`evaluate_epoch`) and saves
(:func:`~xdx_lib.training.checkpoints.save_checkpoint`).

Checkpoints are written atomically after every epoch; a run that is killed resumes from
the last finished epoch and, on a CPU, ends with the same weights as a run that never
stopped (data order comes from a generator seeded by (seed, epoch), and the global RNG
state travels in the checkpoint).

Under ``torchrun`` (:func:`~xdx_lib.core.devices.distributed`) each process trains on its share
of every batch through DistributedDataParallel, with augmentation of its own; the epoch's
loss is the mean over every rank's images, rank 0 evaluates and shares the record, so the
history is the same on every rank, and only rank 0 writes.

Layer: imports the data, the metrics, the cache, the devices, the precision, the batches,
the checkpoints and ``xdx_lib.core._utils``; never a method, a config or the runner (a method
is passed in, and used only through its hooks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from xdx_lib.core._utils import channels_last as to_channels_last
from xdx_lib.core.cache import check_writable
from xdx_lib.core.devices import distributed
from xdx_lib.data.batches import (
    Extras,
    augment_batch,
    augmentation_seed,
    epoch_batches,
    make_batch,
    predict_logits,
    resident,
    steps_per_epoch,
)
from xdx_lib.data.datasets import Split
from xdx_lib.metrics.predictions import accuracy
from xdx_lib.training.checkpoints import resume, save_checkpoint
from xdx_lib.training.learning_curve import curve_epoch, curve_split
from xdx_lib.training.optim import cosine_optimizer
from xdx_lib.training.precision import (
    autocast,
    grad_scaler,
    optimizer_step,
    precision_name,
    resolve_precision,
)
from xdx_lib.training.reporting import QUIET, Reporting  # noqa: F401  (part of fit's API)


@dataclass(frozen=True)
class Schedule:
    """How a run goes through its data: how long, in what batches, how fast.

    Attributes:
        epochs: passes over the training split.
        batch_size: images per step (over all ranks under DDP).
        lr, weight_decay: AdamW's peak learning rate (decayed by a cosine to zero over the
            run, :func:`~xdx_lib.training.optim.cosine_optimizer`) and its weight decay.
        seed: seeds the data order (:func:`~xdx_lib.data.batches.epoch_batches`) and the
            augmentation (:func:`~xdx_lib.data.batches.augmentation_seed`).
        augment: augment each training batch (:func:`~xdx_lib.data.batches.augment_batch`).
    """

    epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0
    augment: bool = False


@dataclass(frozen=True)
class Hardware:
    """Where and how a run computes; none of it enters a run's cache key.

    On a CPU without bfloat16 units none of it changes what a run computes. Where ``auto``
    picks a lower precision (GPUs; CPUs with bfloat16 matrix units) the numbers move by
    rounding, and the checkpoint records the precision (``precision`` beside its ``meta``).

    Attributes:
        device: a ``torch.device`` or its name (already resolved:
            :func:`~xdx_lib.core.devices.resolve_device`).
        precision: mixed precision (a config's ``amp``:
            :data:`~xdx_lib.training.precision.PRECISIONS`, read by
            :func:`~xdx_lib.training.precision.resolve_precision`).
        compile: on CUDA only, train through ``torch.compile``; ignored elsewhere. A method
            that cannot train compiled says so (``MethodOptions.cannot_compile``) and the config
            refuses the pair.
        channels_last: train in the ``channels_last`` memory format, as the library does
            (why: ``xdx_lib.core._utils.channels_last``); images of other than 4 dimensions
            train without it.
    """

    device: torch.device | str = "cpu"
    precision: str = "auto"
    compile: bool = False
    channels_last: bool = True


@dataclass(frozen=True)
class Checkpointing:
    """Where a run's checkpoint lives, and what it must have been written for.

    Attributes:
        path: the checkpoint file, written after every epoch and resumed from when it is
            there (None: none written, none read).
        meta: stored in the checkpoint; one written with another ``meta`` is refused
            (:class:`~xdx_lib.training.checkpoints.CheckpointMismatch`).
    """

    path: str | Path | None = None
    meta: dict | None = None




def fit(
    model: nn.Module,
    method,
    train: Split,
    test: Split,
    schedule: Schedule,
    *,
    hardware: Hardware | None = None,
    checkpointing: Checkpointing | None = None,
    extras: Extras | None = None,
    reporting: Reporting | None = None,
) -> list[dict]:
    """Train ``model`` with ``method`` for ``schedule.epochs`` epochs and return the history.

    AdamW with a cosine decay (:func:`~xdx_lib.training.optim.cosine_optimizer`); after
    each epoch the model is evaluated on ``test`` (:func:`evaluate_epoch`) and, given a
    checkpoint path, a checkpoint is written atomically. An existing checkpoint with the
    same ``meta`` is resumed (:func:`~xdx_lib.training.checkpoints.resume`); a complete one
    returns its history untrained. On CUDA no step waits for the host; the numbers are the
    same as elsewhere. Under ``torchrun`` every rank calls ``fit`` alike and returns the same
    history.

    Args:
        model, method: the network to train (moved to the device) and the
            :class:`~xdx_lib.distill.method.Method` giving its forward pass and loss terms.
        train, test: data splits held in memory.
        schedule, hardware, checkpointing: the run's records (default hardware: the CPU,
            ``auto`` precision; default checkpointing: none).
        extras: the teacher's signals (:class:`~xdx_lib.data.batches.Extras`).
        reporting: what the loop prints and calls as it runs (default: a line per epoch).

    Returns:
        list[dict]: one dict per epoch, with ``epoch``, ``train_loss``, each term's mean,
        ``epoch_time`` (seconds of training, evaluation excluded), ``test_images``,
        ``test_acc``, ``test_loss``, the method's
        :meth:`~xdx_lib.distill.method.Method.epoch_metrics` and ``lr``.
    """
    hardware, checkpointing = hardware or Hardware(), checkpointing or Checkpointing()
    reporting = reporting or Reporting()
    device = torch.device(hardware.device)
    rank, world = distributed()
    if checkpointing.path is not None and rank == 0:
        check_writable(Path(checkpointing.path).parent)  # fail now, not after the first epoch
    extras = extras or Extras()
    channels_last = hardware.channels_last and train.x.dim() == 4
    opt, sched, history = _start(model, device, channels_last, len(train), world, schedule,
                                 checkpointing)  # fmt: skip
    if history and reporting.verbose and rank == 0 and len(history) < schedule.epochs:
        print(f"resuming {Path(checkpointing.path).name} after epoch {len(history)}")
    if device.type == "cuda":
        train, extras = resident(train, extras, device)
    dtype = resolve_precision(hardware.precision, device)
    net = _wrap(model, device, world, hardware.compile, method.may_leave_parameters_unused)
    loop = LoopState(
        net=net, model=model, method=method, train=train, extras=extras, opt=opt,
        sched=sched, scaler=grad_scaler(device, dtype), device=device, dtype=dtype,
        schedule=schedule, channels_last=channels_last, rank=rank, world=world,
        progress=reporting.progress, callback=reporting.callback,
    )  # fmt: skip
    return run_epochs(loop, history, test, checkpointing, reporting.verbose)


def _start(model: nn.Module, device: torch.device, channels_last: bool, n_train: int,
           world: int, schedule: Schedule, checkpointing: Checkpointing):  # fmt: skip
    """The model on ``device`` (in ``channels_last`` if asked), its optimiser and schedule,
    and the history of the checkpoint resumed (empty for a fresh run)."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    total_steps = schedule.epochs * steps_per_epoch(n_train, schedule.batch_size, world)
    opt, sched = cosine_optimizer(model, schedule.lr, schedule.weight_decay, total_steps)
    history = resume(checkpointing.path, model, opt, sched, checkpointing.meta)
    return opt, sched, history


def _wrap(model: nn.Module, device: torch.device, world: int, compile: bool,
          find_unused: bool = False) -> nn.Module:  # fmt: skip
    """The module the forward pass goes through: DDP across processes, compiled on CUDA.

    ``find_unused``: some trainable parameters may get no gradient in a step
    (``Method.may_leave_parameters_unused``); without it DDP waits for their gradients and
    stops the next step with "Expected to have finished reduction".
    """
    net = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                  find_unused_parameters=find_unused)
    if compile and device.type == "cuda":
        net = torch.compile(net)
    return net


@dataclass(kw_only=True)
class LoopState:
    """What every epoch and step of one run reads: set up once by :func:`fit`, by keyword.

    The optimiser, its schedule and the gradient scaler change as the run steps; the rest
    stays.

    Attributes:
        net: what the forward pass goes through (the model, or its DDP/compiled wrapper).
        model: the bare model (its mode is set per epoch).
        method: the :class:`~xdx_lib.distill.method.Method` giving forward and loss terms.
        train: the training split (on the device when that is CUDA).
        extras: the teacher's signals (:class:`~xdx_lib.data.batches.Extras`; ``train`` on the
            device with CUDA).
        opt, sched, scaler: optimiser, learning-rate schedule, gradient scaler.
        device, dtype: where to train and the autocast dtype (None: full precision).
        schedule: the run's :class:`Schedule` (epochs, batch size, seed, augmentation).
        channels_last: whether batches go in as ``channels_last``.
        rank, world: this process's rank and the number of processes (DDP).
        progress: show a tqdm bar (rank 0 only).
        callback: ``callback(epoch, step)`` after every step.
    """

    net: nn.Module
    model: nn.Module
    method: object
    train: Split
    extras: Extras
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    dtype: torch.dtype | None
    schedule: Schedule
    channels_last: bool
    rank: int = 0
    world: int = 1
    progress: bool = False
    callback: Callable[[int, int], None] | None = None

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"


def run_epochs(loop: LoopState, history: list[dict], test: Split, checkpointing: Checkpointing,
               verbose: bool) -> list[dict]:  # fmt: skip
    """The epochs after those in ``history``: train, evaluate (:func:`finish_epoch`), print
    and save a checkpoint after each; returns the whole history. The learning curve's
    epochs (:func:`~xdx_lib.training.learning_curve.curve_epoch`) but the last are scored on the
    first
    :data:`~xdx_lib.training.learning_curve.CURVE_TEST_IMAGES` test images (``test_images`` says how
    many), the last on them all; the other epochs' records hold the training numbers and
    the learning rate."""
    epochs = loop.schedule.epochs
    for epoch in range(len(history), epochs):
        t0 = time.perf_counter()
        record = {"epoch": epoch + 1, **train_one_epoch(loop, epoch)}
        record["epoch_time"] = time.perf_counter() - t0  # training only, not evaluation
        if curve_epoch(epoch, epochs):
            split, extras = ((test, loop.extras.test) if epoch == epochs - 1
                             else curve_split(test, loop.extras.test))  # fmt: skip
            record["test_images"] = len(split)
            history.append(finish_epoch(loop, record, split, extras))
        else:
            history.append(finish_epoch(loop, record, None, {}))
        if verbose and loop.rank == 0:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items() if k != "epoch")
            print(f"epoch {epoch + 1}/{epochs}: {shown}")
        if checkpointing.path is not None and loop.rank == 0:
            save_checkpoint(checkpointing.path, loop.model, loop.opt, loop.sched, history,
                            checkpointing.meta, precision_name(loop.dtype))  # fmt: skip
        if loop.world > 1:
            dist.barrier()
    return history


def train_one_epoch(loop: LoopState, epoch: int) -> dict[str, float]:
    """One pass over the training split; returns the mean loss and each term's mean.

    Each batch is gathered, augmented (a generator seeded by
    :func:`~xdx_lib.data.batches.augmentation_seed`), put in ``channels_last`` and given the
    online teacher's signals before the step. Loss sums are kept on the device in float64
    (float32 on MPS), which gives the same numbers as summing Python floats, and read once
    at the end of the epoch (``_epoch_totals``).
    """
    loop.model.train()
    gen_device = loop.device if loop.on_cuda else "cpu"
    aug_gen = torch.Generator(gen_device).manual_seed(
        augmentation_seed(loop.schedule.seed, epoch, loop.rank))
    sum_dtype = torch.float32 if loop.device.type == "mps" else torch.float64
    sums: dict[str, torch.Tensor] = {}
    n_seen = 0
    batches, on_device = _epoch_indices(loop, epoch)
    bar = tqdm(zip(batches, on_device), total=len(batches), leave=False,
               desc=f"epoch {epoch + 1}/{loop.schedule.epochs}",
               disable=not (loop.progress and loop.rank == 0))  # fmt: skip
    for step, (idx, idx_on_device) in enumerate(bar):
        batch = make_batch(loop.train, idx_on_device, loop.extras.train, loop.device, index=idx)
        if loop.schedule.augment:
            batch["x"] = augment_batch(batch["x"], aug_gen)
        if loop.channels_last:
            batch["x"] = to_channels_last(batch["x"])
        if loop.extras.per_batch is not None:
            batch.update(loop.extras.per_batch(batch))
        loss, terms = training_step(loop, batch, f"loss at epoch {epoch + 1} step {step}")
        n_seen += len(idx)
        for name, v in (("train_loss", loss), *terms.items()):
            v = v.detach().to(sum_dtype) * len(idx)
            sums[name] = sums[name] + v if name in sums else v
        if step % 10 == 0 and not bar.disable:  # each update waits for the device
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if loop.callback is not None:
            loop.callback(epoch, step)
    totals, n_seen = _epoch_totals(loop, sums, n_seen)
    if not math.isfinite(totals.get("train_loss", 0.0)):
        raise FloatingPointError(
            f"loss at epoch {epoch + 1} became {totals['train_loss']}; "
            "lower the learning rate or check the inputs"
        )
    return {k: v / max(n_seen, 1) for k, v in totals.items()}


def _epoch_indices(loop: LoopState, epoch: int):
    """This epoch's batches of indices, with a copy of them on the device (one transfer per
    epoch, not one per step, on CUDA)."""
    batches = list(epoch_batches(len(loop.train), loop.schedule.batch_size, loop.schedule.seed,
                                 epoch, loop.rank, loop.world))  # fmt: skip
    on_device = batches
    if loop.on_cuda and batches:
        on_device = torch.cat(batches).to(loop.device).split([len(b) for b in batches])
    return batches, on_device


def training_step(loop: LoopState, batch: dict, where: str) -> tuple[torch.Tensor, dict]:
    """One optimiser step on ``batch``; returns the loss and its named terms (not detached).

    On CUDA nothing here waits for the device: a non-finite loss is caught from the epoch's
    sum (:func:`train_one_epoch`); elsewhere each step checks its loss, as it costs nothing.
    """
    with autocast(loop.device, loop.dtype):
        out = loop.method.forward(loop.net, batch)
        terms = loop.method.loss_terms(out, batch)
    loss = sum(terms.values())
    optimizer_step(loop.opt, loss, None if loop.on_cuda else where, scaler=loop.scaler)
    loop.sched.step()
    return loss, terms


def _epoch_totals(loop: LoopState, sums: dict[str, torch.Tensor],
                  n_seen: int) -> tuple[dict[str, float], float]:  # fmt: skip
    """The epoch's summed terms and its number of images, read from the device at once.

    Under DDP the sums and the counts of all ranks are added first (one ``all_reduce``), so
    that every rank reports the mean over the whole epoch, not over its own share.
    """
    if not sums:
        return {}, n_seen
    stacked = torch.stack(list(sums.values()))
    if loop.world == 1:
        return dict(zip(sums, stacked.tolist())), n_seen
    stacked = torch.cat([stacked, stacked.new_tensor([n_seen])])
    dist.all_reduce(stacked)
    *totals, n_all = stacked.tolist()
    return dict(zip(sums, totals)), n_all


def finish_epoch(loop: LoopState, record: dict, test: Split | None, test_extras: dict) -> dict:
    """``record`` with the test split's evaluation (none when ``test`` is None) and the
    learning rate, the same on every rank: under DDP rank 0 evaluates (after
    ``_share_buffers``) and sends its record, so no two ranks' histories differ by a
    kernel's rounding."""
    _share_buffers(loop)
    if loop.rank == 0:
        if test is not None:
            record.update(evaluate_epoch(loop.model, loop.method, test, loop.device,
                                         test_extras))  # fmt: skip
        record["lr"] = loop.opt.param_groups[0]["lr"]
    if loop.world > 1:
        shared = [record]
        dist.broadcast_object_list(shared, src=0)
        record = shared[0]
    return record


def _share_buffers(loop: LoopState) -> None:
    """Rank 0's buffers on every rank. DDP copies them from rank 0 before each forward
    pass, but each rank's last pass then updated its own (batch-norm statistics), and every
    rank's model must end the epoch as the checkpoint rank 0 writes."""
    if loop.world > 1:
        for b in loop.model.buffers():
            dist.broadcast(b, src=0)


@torch.no_grad()
def evaluate_epoch(model, method, split: Split, device, extras: dict | None = None,
                   batch_size: int = 512) -> dict[str, float]:  # fmt: skip
    """Test accuracy and loss, then the method's own per-epoch metrics.

    Agreement with the teacher, the Grad-CAM tracking of students and the CAE's map
    quality all come from :meth:`~xdx_lib.distill.method.Method.epoch_metrics`.
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
