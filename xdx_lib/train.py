"""The training loop, with evaluation, atomic checkpoints, resume, mixed precision and DDP.

:func:`fit` trains any model with any :class:`~xdx_lib.methods.Method`: the method
supplies the forward pass, the loss terms and its per-epoch metrics, the loop supplies
everything else. It reads top-down: :func:`fit` sets up (optimiser, schedule,
:func:`resume`), runs :func:`train_one_epoch` (each step :func:`training_step`),
evaluates (:func:`evaluate_epoch`) and saves (:func:`save_checkpoint`). The CAE's
stand-alone pre-training (:func:`xdx_lib.xdistill.fit_cae`) shares its parts:
:func:`epoch_batches`, :func:`autocast` and :func:`optimizer_step`.

Checkpoints are written atomically after every epoch; a run that is killed resumes from
the last finished epoch and, on a CPU, ends with the same weights as a run that never
stopped (data order comes from a generator seeded by (seed, epoch), and the global RNG
state travels in the checkpoint).

Under ``torchrun`` (:func:`distributed`) each process trains on its share of every batch
through DistributedDataParallel, with augmentation of its own; the epoch's loss is the
mean over every rank's images, rank 0 evaluates and shares the record, so the history is
the same on every rank, and only rank 0 writes. What is computed once and cached (teacher
signals, a pre-trained CAE, results) is made by rank 0 while the others wait
(:func:`rank_zero_first`); scores every rank needs but none caches are computed by rank 0
and sent to the others (:func:`on_rank_zero`).

Layer: imports the data, the metrics, the cache, the registry and ``xdx_lib._utils``;
never a method, a config or the runner (a method is passed in, and used only through its
hooks).
"""

from __future__ import annotations

import datetime
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

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
from .registry import declare_choices

T = TypeVar("T")

#: Mixed precision, ``auto`` (bfloat16 on GPUs with bfloat16 tensor cores, float16 with a
#: gradient scaler on older GPUs, none on a CPU), or one forced: ``bf16``, ``fp16``, ``off``.
PRECISIONS = declare_choices("precision", ("auto", "bf16", "fp16", "off"))


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


def _local_rank() -> int:
    """This process's rank on its machine (``torchrun`` sets ``LOCAL_RANK``; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def _world_size() -> int:
    """The number of processes ``torchrun`` started (1 without it)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; other names must exist here.

    Under ``torchrun`` each process has its own GPU: ``auto`` and ``cuda`` give
    ``cuda:LOCAL_RANK``.

    Raises:
        DeviceUnavailable: ``cuda``, ``cuda:N`` or ``mps`` is not available (one line that
            names the available devices), or ``cuda:N`` is not this process's GPU under
            ``torchrun``.
    """
    if name != "auto":
        available = available_devices()
        ok = name in available or (name == "cuda" and "cuda:0" in available)
        if not ok:
            raise DeviceUnavailable(
                f"device {name!r} is not available here (available: {', '.join(available)}); "
                "choose one of those, or auto"
            )
        if not name.startswith("cuda") or _world_size() == 1:
            return torch.device(name)
        own = f"cuda:{_local_rank()}"
        if name not in ("cuda", own):
            raise DeviceUnavailable(
                f"device {name!r} under torchrun: each process trains on its own GPU, "
                f"{own} for this one; set device: cuda or auto"
            )
        return torch.device(own)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{_local_rank()}")
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
    """``(rank, world_size)``; under ``torchrun``, also this process's GPU and the group.

    Called before anything goes to a GPU (:func:`xdx_lib.session.train_or_load` starts with
    it): the process's CUDA device is set to ``cuda:LOCAL_RANK`` first, so that tensors,
    NCCL's communicator and its barriers use this process's GPU, never GPU 0 for all.
    """
    world = _world_size()
    if world == 1:
        return 0, 1
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(_local_rank())
    if not dist.is_initialized():
        if cuda:
            dist.init_process_group("nccl", timeout=RANK_ZERO_WAIT,
                                    device_id=torch.device("cuda", _local_rank()))  # fmt: skip
        else:
            dist.init_process_group("gloo", timeout=RANK_ZERO_WAIT)
    return dist.get_rank(), dist.get_world_size()


#: The process group's timeout, how long the other ranks may wait at a barrier while rank
#: 0 makes what is cached (teacher maps of the training split, a CAE, a run's scores),
#: which can outlast NCCL's default 10 minutes on a large dataset. It is the group's, not
#: the barrier's alone, as NCCL has not always honoured a barrier's own timeout; the cost
#: is that a rank stuck in training is reported after this long.
RANK_ZERO_WAIT = datetime.timedelta(hours=2)

#: How many :func:`rank_zero_first` blocks this process is inside.
_rank_zero_depth = 0


@contextmanager
def rank_zero_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks at once.

    For work whose result is written to the run cache: rank 0 computes and writes it, the
    other ranks wait at a barrier, then run the same block and find it there. A no-op
    without ``torchrun``, and inside another such block (the outer one already orders the
    ranks), so a function may use it whoever calls it. Every rank must enter the block; a
    block that raises on rank 0 leaves the others waiting until ``torchrun`` stops them.
    """
    global _rank_zero_depth
    rank, world = distributed()
    outer = world > 1 and _rank_zero_depth == 0
    if outer and rank != 0:
        dist.barrier()
    _rank_zero_depth += 1
    try:
        yield
    finally:
        _rank_zero_depth -= 1
    if outer and rank == 0:
        dist.barrier()


def on_rank_zero(fn: Callable[[], T]) -> T:
    """``fn()`` computed on rank 0 alone, and its result on every rank.

    For work every rank needs the answer of but only one should do, and that writes nothing
    to the cache (scoring models already trained): the other ranks wait for rank 0's result,
    sent to them (``broadcast_object_list``: it must pickle). Without ``torchrun``, or inside
    a :func:`rank_zero_first` block (whose ranks run one after the other, so a broadcast
    there would never be met), every rank simply calls ``fn``. When ``fn`` raises on rank
    0, the others raise a RuntimeError that quotes it, rather than wait for ever.
    """
    rank, world = distributed()
    if world == 1 or _rank_zero_depth > 0:
        return fn()
    box: list = [None]
    if rank == 0:
        try:
            box = [("result", fn())]
        except Exception as e:
            dist.broadcast_object_list([("error", f"{type(e).__name__}: {e}")], src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise RuntimeError(f"rank 0 failed: {value}")
    return value


def is_rank_zero() -> bool:
    """Whether this process writes files and prints: rank 0, or the only process."""
    return not dist.is_initialized() or dist.get_rank() == 0


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1):
    """Index tensors of one epoch's shuffled batches, the same on every rank.

    The order depends only on ``(seed, epoch)``, so a resumed run sees the same batches.
    With ``world`` processes each takes its share of every global batch; a last batch of
    fewer images than processes is dropped, as a rank with no image would stall the others.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        if len(idx) >= world:
            yield idx[rank::world]


def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """How many batches :func:`epoch_batches` yields (``ceil(n / batch_size)`` for one
    process), which the learning-rate schedule spans."""
    last = n % batch_size
    return n // batch_size + (1 if last and last >= world else 0)


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


def resolve_precision(amp: str | bool, device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` (:data:`PRECISIONS`) on ``device``, or None for none.

    ``auto`` picks bfloat16 on a CUDA GPU of compute capability 8.0 or more (A100, H100,
    RTX 30xx and later have bfloat16 tensor cores), float16 below (T4, V100: cuDNN has no
    bfloat16 convolutions there) and nothing on a CPU or MPS. ``bf16`` and ``fp16`` force
    that dtype on any device (CPU autocast included), ``off`` none. ``True``/``False``
    read as ``auto``/``off``.
    """
    amp = {True: "auto", False: "off"}.get(amp, amp) if isinstance(amp, bool) else amp
    if amp not in PRECISIONS:
        raise ValueError(f"amp={amp!r}; choose one of: {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if amp == "off":
        return None
    if amp in ("bf16", "fp16"):
        return torch.bfloat16 if amp == "bf16" else torch.float16
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def autocast(device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device`` (see :func:`resolve_precision`); None: a no-op."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for float16 only (whose small gradients underflow
    without it); disabled, it passes the loss and the step through unchanged."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=dtype == torch.float16)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, where: str | None,
                   remedy: str = "check the inputs",
                   scaler: torch.amp.GradScaler | None = None) -> None:  # fmt: skip
    """One step on ``loss``: refuse a NaN or inf loss (naming ``where``), then backward, step.

    ``where=None`` skips the check, which waits for the device (on CUDA the loop checks
    the epoch's sum instead). With an enabled ``scaler`` (float16) the loss is scaled
    before backward and a step whose gradients overflowed is skipped. Shared by the student
    loop (:func:`fit`) and the CAE's pre-training.
    """
    if where is not None and not torch.isfinite(loss):
        raise FloatingPointError(
            f"{where} became {loss.item()}; lower the learning rate or {remedy}"
        )
    opt.zero_grad(set_to_none=True)
    if scaler is None or not scaler.is_enabled():
        loss.backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


@dataclass
class Extras:
    """What a batch holds beside ``x`` and ``y``: the teacher's signals.

    Attributes:
        train, test: per-image tensors (or lists of them, one per stage) aligned with the
            splits, sliced into every batch (train) or read by the per-epoch metrics (test)
            under their names.
        per_batch: ``batch -> dict`` of more batch entries, called on every training batch
            after augmentation (the online teacher's signals of the augmented images).
    """

    train: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    per_batch: Callable[[dict], dict] | None = None


def _rows(v, idx: torch.Tensor, device):
    """``v[idx]`` on ``device``, for a tensor or a list of tensors."""
    if isinstance(v, (list, tuple)):
        return [t[idx].to(device) for t in v]
    return v[idx].to(device)


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
        batch[k] = _rows(v, idx, device)
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
def evaluate_epoch(model, method, split: Split, device, extras: dict | None = None,
                   batch_size: int = 512) -> dict[str, float]:  # fmt: skip
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


def save_checkpoint(path, model: nn.Module, opt, sched, history: list[dict], meta) -> None:
    """Write the run's state after an epoch, atomically: weights, optimiser, schedule, the
    global RNG state (so that a resumed CPU run ends bit-identical), history and ``meta``."""
    atomic_torch_save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": torch.get_rng_state(),
            "epoch": len(history),
            "history": history,
            "meta": meta,
        },
        path,
    )


def resume(path, model: nn.Module, opt, sched, meta) -> list[dict]:
    """Load a checkpoint of this run into ``model``, ``opt`` and ``sched`` when there is one;
    returns its history (empty for a fresh run). Restores the global RNG state too."""
    if path is None or not Path(path).is_file():
        return []
    ckpt = load_checkpoint(path, model, meta)
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["rng"])
    return list(ckpt["history"])


def cosine_optimizer(model: nn.Module, lr: float, weight_decay: float, total_steps: int):
    """AdamW with a per-step cosine decay of the learning rate to zero over ``total_steps``."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = max(1, total_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )
    return opt, sched


@dataclass
class Loop:
    """The fixed parts of one training run that every epoch and step read.

    Attributes:
        net: what the forward pass goes through (the model, or its DDP/compiled wrapper).
        model: the bare model (its mode is set per epoch).
        method: the :class:`~xdx_lib.methods.Method` giving forward and loss terms.
        train: the training split (on the device when that is CUDA).
        extras: the teacher's signals (:class:`Extras`; ``train`` on the device with CUDA).
        opt, sched, scaler: optimiser, learning-rate schedule, gradient scaler.
        device, dtype: where to train and the autocast dtype (None: full precision).
        batch_size, seed, augment, channels_last: as in :func:`fit`.
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
    batch_size: int
    seed: int
    augment: bool
    channels_last: bool
    rank: int = 0
    world: int = 1
    progress: bool = False
    callback: Callable[[int, int], None] | None = None

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"


def training_step(loop: Loop, batch: dict, where: str) -> tuple[torch.Tensor, dict]:
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


def _epoch_indices(loop: Loop, epoch: int):
    """This epoch's batches of indices, with a copy of them on the device (one transfer per
    epoch, not one per step, on CUDA)."""
    batches = list(epoch_batches(len(loop.train), loop.batch_size, loop.seed, epoch,
                                 loop.rank, loop.world))  # fmt: skip
    on_device = batches
    if loop.on_cuda and batches:
        on_device = torch.cat(batches).to(loop.device).split([len(b) for b in batches])
    return batches, on_device


#: Spaces the augmentation seeds of the ranks apart (a prime, far above any epoch count).
_RANK_SEED_STRIDE = 104_729


def augmentation_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one rank's augmentation in one epoch.

    Each rank draws its own flips and shifts (ranks seeded alike would augment their
    shares in lockstep); rank 0, and so a single process, keeps the seed ``(seed, epoch)``
    alone gives.
    """
    return seed * 7919 + epoch + rank * _RANK_SEED_STRIDE


def _epoch_totals(loop: Loop, sums: dict[str, torch.Tensor],
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


def train_one_epoch(loop: Loop, epoch: int, epochs: int) -> dict[str, float]:
    """One pass over the training split; returns the mean loss and each term's mean.

    Each batch is gathered, augmented (a generator seeded by :func:`augmentation_seed`), put
    in ``channels_last`` and given the online teacher's signals before the step. Loss sums
    are kept on the device in float64 (float32 on MPS), which gives the same numbers as
    summing Python floats, and read once at the end of the epoch (``_epoch_totals``).
    """
    loop.model.train()
    gen_device = loop.device if loop.on_cuda else "cpu"
    aug_gen = torch.Generator(gen_device).manual_seed(
        augmentation_seed(loop.seed, epoch, loop.rank))
    sum_dtype = torch.float32 if loop.device.type == "mps" else torch.float64
    sums: dict[str, torch.Tensor] = {}
    n_seen = 0
    batches, on_device = _epoch_indices(loop, epoch)
    bar = tqdm(zip(batches, on_device), total=len(batches), leave=False,
               desc=f"epoch {epoch + 1}/{epochs}", disable=not (loop.progress and loop.rank == 0))
    for step, (idx, idx_on_device) in enumerate(bar):
        batch = make_batch(loop.train, idx_on_device, loop.extras.train, loop.device, index=idx)
        if loop.augment:
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


def _share_buffers(loop: Loop) -> None:
    """Rank 0's buffers on every rank. DDP copies them from rank 0 before each forward
    pass, but each rank's last pass then updated its own (batch-norm statistics), and every
    rank's model must end the epoch as the checkpoint rank 0 writes."""
    if loop.world > 1:
        for b in loop.model.buffers():
            dist.broadcast(b, src=0)


def finish_epoch(loop: Loop, record: dict, test: Split, test_extras: dict) -> dict:
    """``record`` with the test split's evaluation and the learning rate, the same on every
    rank: under DDP rank 0 evaluates (after ``_share_buffers``) and sends its record,
    so no two ranks' histories differ by a kernel's rounding."""
    _share_buffers(loop)
    if loop.rank == 0:
        record.update(evaluate_epoch(loop.model, loop.method, test, loop.device, test_extras))
        record["lr"] = loop.opt.param_groups[0]["lr"]
    if loop.world > 1:
        shared = [record]
        dist.broadcast_object_list(shared, src=0)
        record = shared[0]
    return record


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
    extras: Extras | None = None,
    amp: str = "auto",
    augment: bool = False,
    compile: bool = False,
    channels_last: bool = True,
    progress: bool = False,
    verbose: bool = True,
    callback: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Train ``model`` with ``method`` for ``epochs`` epochs and return the history.

    AdamW with a cosine decay (:func:`cosine_optimizer`); after each epoch the model is
    evaluated on ``test`` (:func:`evaluate_epoch`) and, given ``ckpt_path``, a checkpoint is
    written atomically (:func:`save_checkpoint`). An existing checkpoint with the same
    ``meta`` is resumed (:func:`resume`); a complete one returns its history untrained.

    Args:
        model: the network to train (moved to ``device``).
        method: a :class:`~xdx_lib.methods.Method` giving forward and loss terms.
        train, test: data splits held in memory.
        extras: the teacher's signals (:class:`Extras`), cached per image or per batch.
        amp: mixed precision (:data:`PRECISIONS`, :func:`resolve_precision`).
        augment: augment each training batch (:func:`augment_batch`).
        compile: on CUDA only, train through ``torch.compile``; ignored elsewhere. A method
            that cannot train compiled says so (``Method.cannot_compile``) and the config
            refuses the pair.
        channels_last: train in the ``channels_last`` memory format, as the library does
            (why: ``xdx_lib._utils.channels_last``).
        callback: ``callback(epoch, step)`` after every step (tests use it to interrupt).

    On CUDA no step waits for the host; the numbers are the same as elsewhere. Under
    ``torchrun`` every rank calls ``fit`` alike and returns the same history (the module
    docstring says how the ranks share the work).

    Returns:
        list[dict]: one dict per epoch, with ``epoch``, ``train_loss``, each term's mean,
        ``epoch_time`` (seconds of training, evaluation excluded), ``test_acc``,
        ``test_loss``, the method's :meth:`~xdx_lib.methods.Method.epoch_metrics` and ``lr``.
    """
    device = torch.device(device)
    rank, world = distributed()
    if ckpt_path is not None and rank == 0:
        check_writable(Path(ckpt_path).parent)  # fail now, not after the first epoch
    extras = extras or Extras()
    channels_last = channels_last and train.x.dim() == 4
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    total_steps = epochs * steps_per_epoch(len(train), batch_size, world)
    opt, sched = cosine_optimizer(model, lr, weight_decay, total_steps)
    history = resume(ckpt_path, model, opt, sched, meta)
    if history and verbose and rank == 0 and len(history) < epochs:
        print(f"resuming {Path(ckpt_path).name} after epoch {len(history)}")
    if device.type == "cuda":
        train, extras = _resident(train, extras, device)
    dtype = resolve_precision(amp, device)
    net = _wrap(model, device, world, compile, method.may_leave_parameters_unused)
    loop = Loop(net, model, method, train, extras, opt, sched,
                grad_scaler(device, dtype), device, dtype, batch_size, seed, augment,
                channels_last, rank, world, progress, callback)  # fmt: skip
    return run_epochs(loop, history, epochs, test, ckpt_path, meta, verbose)


def _resident(train: Split, extras: Extras, device: torch.device) -> tuple[Split, Extras]:
    """The training split and its per-image signals copied to ``device`` once, so that every
    batch is gathered there with no copy from the host."""
    train = Split(train.x.to(device), train.y.to(device))
    on_device = {k: _rows(v, slice(None), device) for k, v in extras.train.items()}
    return train, Extras(on_device, extras.test, extras.per_batch)


#: Test images scored after every epoch but the last, for the learning curves; the last
#: epoch scores the whole test split, the number every table reads. Scoring all 10,000
#: images after each epoch would cost a small CPU student about as much as training it.
CURVE_TEST_IMAGES = 1000


def curve_split(test: Split, extras: dict, n: int = CURVE_TEST_IMAGES) -> tuple[Split, dict]:
    """The first ``n`` test images and the matching rows of the test extras (the teacher's
    logits), for an epoch's learning-curve point; the whole split when it is no larger."""
    if len(test) <= n:
        return test, extras
    masks = None if test.masks is None else test.masks[:n]
    rows = {k: v[:n] if torch.is_tensor(v) and len(v) == len(test) else v
            for k, v in extras.items()}  # fmt: skip
    return Split(test.x[:n], test.y[:n], masks), rows


def run_epochs(loop: Loop, history: list[dict], epochs: int, test: Split, ckpt_path,
               meta: dict | None, verbose: bool) -> list[dict]:  # fmt: skip
    """The epochs after those in ``history``: train, evaluate (:func:`finish_epoch`), print
    and save a checkpoint after each; returns the whole history. Every epoch but the last
    is scored on the first :data:`CURVE_TEST_IMAGES` test images (``test_images`` says how
    many), the last on them all."""
    for epoch in range(len(history), epochs):
        t0 = time.perf_counter()
        record = {"epoch": epoch + 1, **train_one_epoch(loop, epoch, epochs)}
        record["epoch_time"] = time.perf_counter() - t0  # training only, not evaluation
        split, extras = ((test, loop.extras.test) if epoch == epochs - 1
                         else curve_split(test, loop.extras.test))  # fmt: skip
        record["test_images"] = len(split)
        history.append(finish_epoch(loop, record, split, extras))
        if verbose and loop.rank == 0:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items() if k != "epoch")
            print(f"epoch {epoch + 1}/{epochs}: {shown}")
        if ckpt_path is not None and loop.rank == 0:
            save_checkpoint(ckpt_path, loop.model, loop.opt, loop.sched, history, meta)
        if loop.world > 1:
            dist.barrier()
    return history
