"""Devices, processes and seeds: where a run computes, which rank this process is, and how
the ranks take turns.

:func:`resolve_device` turns a config's ``device`` into a ``torch.device`` (one error that
names the devices there are when it does not exist); :func:`seed_everything` seeds the
global generators. Under ``torchrun`` (:func:`distributed`) every process is one rank with
its own GPU. What is computed once and cached (teacher signals, a pre-trained CAE, results)
is made by rank 0 while the others wait (:func:`rank_zero_first`); scores every rank needs
but none caches are computed by rank 0 and sent to the others (:func:`on_rank_zero`); only
rank 0 writes and prints (:func:`is_rank_zero`).

Layer: imports torch alone; the loop (:mod:`xdx_lib.training.loop`), the session and the runner
use it.
"""

from __future__ import annotations

import datetime
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


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

    Called before anything goes to a GPU (:func:`xdx_lib.experiments.session.train_or_load` starts
    with it): the process's CUDA device is set to ``cuda:LOCAL_RANK`` first, so that tensors, NCCL's
    communicator and its barriers use this process's GPU, never GPU 0 for all.
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
