"""Checkpoints: a run's state written atomically after every epoch, checked when read back.

:func:`save_checkpoint` writes the weights, the optimiser, the schedule, the global RNG
state, the history and the run's ``meta`` in one file (atomically: a killed run leaves the
last finished epoch, never half a file); :func:`resume` reads them back into a fresh run,
so that a resumed CPU run ends with the weights of one that never stopped;
:func:`load_checkpoint` loads a finished one, refusing one written for another run
(:class:`CheckpointMismatch`); :func:`checkpoint_epochs` says how far one got without
building a model. The saved dict's keys are ``model``, ``optimizer``, ``scheduler``,
``rng``, ``epoch``, ``history`` and ``meta``; every run in the run cache has them.

Layer: imports the cache (atomic writes, safe reads) and torch.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from xdx_lib.core.cache import atomic_torch_save, load_tensors


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
    """Load a checkpoint written by :func:`xdx_lib.training.loop.fit` into ``model`` (read with
    ``weights_only=True``).

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


def save_checkpoint(path, model: nn.Module, opt, sched, history: list[dict], meta,
                    precision: str = "float32") -> None:  # fmt: skip
    """Write the run's state after an epoch, atomically: weights, optimiser, schedule, the
    CPU's and every GPU's RNG states (so that a resumed run ends bit-identical), history,
    ``meta`` and the ``precision`` its last epoch computed in
    (:func:`~xdx_lib.training.precision.precision_name`; not part of ``meta``, which a
    loaded run must match: a run is the same run whichever machine trained it)."""
    atomic_torch_save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": _cuda_rng_states(),
            "epoch": len(history),
            "history": history,
            "meta": meta,
            "precision": precision,
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
    _restore_cuda_rng_states(ckpt.get("cuda_rng"), path)
    return list(ckpt["history"])


def _cuda_rng_states() -> list[torch.Tensor] | None:
    """Every GPU's RNG state, or None where CUDA has not been used (reading it would start
    CUDA in a CPU run)."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    return torch.cuda.get_rng_state_all()


def _restore_cuda_rng_states(states: list[torch.Tensor] | None, path) -> None:
    """Put back the GPUs' RNG states a checkpoint saved. A checkpoint from a CPU run (None)
    or a run on another number of GPUs restores what it can and says what it could not."""
    if not states or not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    if len(states) != count:
        warnings.warn(f"{path} saved the random state of {len(states)} GPUs, this machine has "
                      f"{count}: the resumed run is not bit-identical", stacklevel=2)  # fmt: skip
    for device, state in enumerate(states[:count]):
        torch.cuda.set_rng_state(state, device)
