"""Trained models and their cached signals: checkpoints, teacher logits, explanation maps.

A :class:`TrainedModel` is a network with its checkpoint, history and cache key. What is
computed *from* a trained model once and reused by every method and chapter lives here
too: the teacher's logits on both splits (:func:`teacher_logits`) and any model's
explanation maps (:func:`model_maps`, on top of the on-disk maps cache
:func:`cached_maps`). Everything is keyed by the checkpoint's hash, so a retrained model
never reads another's maps.

Layer: below the methods (:mod:`xdx_lib.distill.method` reads teacher maps from here) and above
the batches (:func:`xdx_lib.data.batches.predict_logits`), the explainers and the cache. It
imports neither a method nor the loop.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from xdx_lib.core import layout
from xdx_lib.core.cache import atomic_torch_save, file_hash, load_tensors, tensor_hash
from xdx_lib.data.batches import predict_logits
from xdx_lib.explain import Explainer, explain, make_explainer
from xdx_lib.models.classifiers import count_parameters


class ScoresImages(Protocol):
    """What a trained model needs of the method that trained it (any
    :class:`~xdx_lib.distill.method.Method`): its class logits, the explanation the deployed
    model gives itself, if any, and what identifies the parts attached to it after
    training (empty when none), for the keys of its scores."""

    imitated_explainer: str
    attached_key: str

    def logits(self, model: nn.Module, x: Tensor) -> Tensor: ...

    def deployed_maps(self, model: nn.Module, x: Tensor) -> Tensor | None: ...

    def attached_modules(self) -> list[nn.Module]: ...


@dataclass
class TrainedModel:
    """A trained network with where it lives and how it got there.

    Attributes:
        model: the network, in eval mode, on the run's device.
        method: the :class:`~xdx_lib.distill.method.Method` that trained it (its ``logits`` gives
            class scores, its ``deployed_maps`` the model's own explanation, if any).
        path: the checkpoint file.
        history: one dict per epoch (see :func:`xdx_lib.training.loop.fit`).
        key: the cache key (a short hash).
    """

    model: nn.Module
    method: ScoresImages
    path: Path
    history: list[dict]
    key: str

    @functools.cached_property
    def checkpoint_hash(self) -> str:
        """The hash of the checkpoint file, read once (the file is final once a
        TrainedModel exists)."""
        return file_hash(self.path)

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of ``x`` (batched, no gradient, on the CPU)."""
        dev = next(self.model.parameters()).device
        self.model.eval()
        return predict_logits(lambda xb: self.method.logits(self.model, xb), x, dev)


def model_maps(
    run: TrainedModel,
    x: torch.Tensor,
    explainer: str = "gradcam",
    split: str = "test",
    target: torch.Tensor | None = None,
    **settings,
) -> torch.Tensor:
    """Explanations of a trained model on ``x``, computed once and cached by checkpoint.

    Args:
        run: a teacher or student (:func:`xdx_lib.experiments.session.train_teacher`, ...).
        x: images ``[N, C, H, W]`` (a split of the run's data, or a prefix of one).
        explainer: a registered explainer (:data:`xdx_lib.explain.EXPLAINERS`).
        split: which split ``x`` comes from (part of the cache key).
        target: classes to explain (default: the model's predictions).
        **settings: the explainer's settings (``n_steps``, ``n_samples``, ...).
    """
    return cached_maps(
        run.model, x, explainer, settings, checkpoint_hash=run.checkpoint_hash,
        split=split, subset=len(x), target=target,
    )  # fmt: skip


def teacher_logits(teacher: TrainedModel, data, splits: tuple[str, ...] = ("train", "test"),
                   ) -> dict[str, torch.Tensor]:  # fmt: skip
    """The teacher's logits on ``splits`` of ``data``, computed once and cached beside it,
    tagged with a hash of the images (another subset of the same size is recomputed)."""
    out = {}
    for split in splits:
        x = getattr(data, split).x
        path = teacher.path.parent / f"logits_{split}.pt"
        tag = {"checkpoint": teacher.checkpoint_hash, "n": len(x), "x": tensor_hash(x)}
        if path.is_file():
            try:
                cached = load_tensors(path)
                if isinstance(cached, dict) and cached.get("tag") == tag and "logits" in cached:
                    out[split] = cached["logits"]
                    continue
            except RuntimeError:
                pass  # corrupt: recompute below
        out[split] = teacher.logits(x)
        atomic_torch_save({"tag": tag, "logits": out[split]}, path)
    return out


# ----------------------------------------------------------------------------- the maps cache


def maps_cache_key(
    explainer: Explainer,
    x: Tensor,
    *,
    checkpoint_hash: str,
    split: str,
    subset: Any,
    target: Tensor | int | None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """What determines a set of maps (:func:`xdx_lib.core.layout.maps_key`).

    The model (its checkpoint hash), the explainer with *all* its resolved settings, the
    data (split, subset tag, N, image shape and a hash of the pixels), the target kind
    (``predicted``, or ``given`` with a hash of the labels) and the maps' format. For a
    stochastic explainer (one with a ``seed`` setting) also the batch size, since its RNG
    is re-seeded for every batch.
    """
    if target is None:
        target_key: Any = "predicted"
    else:
        target_key = {"given": tensor_hash(torch.as_tensor(target).long())}
    return layout.maps_key(
        checkpoint_hash=checkpoint_hash, explainer=explainer.name, settings=explainer.settings,
        split=split, subset=subset, n=int(x.shape[0]), image_shape=list(x.shape[1:]),
        inputs=tensor_hash(x), target=target_key,
        batch_size=batch_size if "seed" in explainer.settings else None,
    )


def _stale_reason(blob: Any, key: dict[str, Any], shape: tuple[int, ...]) -> str | None:
    """Why a loaded cache file cannot be used for ``key`` (None when it can)."""
    if not isinstance(blob, dict) or "key" not in blob or "maps" not in blob:
        return "it is not a maps file (no 'key' and 'maps')"
    if blob["key"] != key:
        return "its stored key differs from the requested one"
    maps = blob["maps"]
    if not isinstance(maps, Tensor) or tuple(maps.shape) != shape:
        got = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        return f"its maps have shape {got}, expected {shape}"
    if not torch.isfinite(maps).all():
        return "its maps contain NaN or inf"
    return None


def cached_maps(
    model: nn.Module,
    x: Tensor,
    explainer: str,
    settings: dict[str, Any] | None = None,
    *,
    checkpoint_hash: str,
    split: str,
    subset: Any,
    cache_dir: str | Path | None = None,
    target: Tensor | int | None = None,
    batch_size: int = 256,
) -> Tensor:
    """:func:`~xdx_lib.explain.explain` once, then load the maps from the run cache.

    The file ``<cache_dir>/<explainer>-<split>-<hash>.pt`` holds ``{"key": ..., "maps": ...}``
    (written atomically); the hash is of :func:`maps_cache_key`. On load, a file whose stored
    key or maps shape does not match, or that cannot be read, is recomputed and overwritten
    with a warning: a stale or corrupt file is never used.

    Args:
        model: the model explained; ``checkpoint_hash`` must identify its weights
            (:func:`xdx_lib.core.cache.file_hash` of the checkpoint).
        x: images ``[N, C, H, W]``.
        explainer: a name in :data:`~xdx_lib.explain.EXPLAINERS`.
        settings: the explainer's settings (resolved against its defaults for the key).
        checkpoint_hash: identity of the model's weights.
        split: the data split (``"train"``, ``"test"``).
        subset: a tag for the subset of the split (its size and seed, or None for all).
        cache_dir: where maps are stored (default: the run cache's ``maps`` folder).
        target: as in :func:`~xdx_lib.explain.explain`; predicted and given targets are
            cached apart.
        batch_size: passed to :func:`~xdx_lib.explain.explain` (part of the key only for
            stochastic explainers).

    Returns:
        float32 maps ``[N, 1, H, W]`` on the CPU.
    """
    settings = dict(settings or {})
    key = maps_cache_key(
        make_explainer(explainer, model, **settings),
        x,
        checkpoint_hash=checkpoint_hash,
        split=split,
        subset=subset,
        target=target,
        batch_size=batch_size,
    )
    path = layout.maps_path(explainer, split, key, cache_dir)
    shape = (int(x.shape[0]), 1, *(int(s) for s in x.shape[-2:]))
    maps = _read_maps(path, key, shape)
    if maps is None:
        maps = explain(model, x, explainer, target=target, batch_size=batch_size, **settings)
        atomic_torch_save({"key": key, "maps": maps}, path)
    return maps


def _read_maps(path: Path, key: dict[str, Any], shape: tuple[int, ...]) -> Tensor | None:
    """The maps stored at ``path`` for ``key``, as float32; None when there are none, or
    with a warning when the file cannot be read or is stale (the caller recomputes them)."""
    if not path.exists():
        return None
    try:
        blob = load_tensors(path)
    except RuntimeError as e:
        warnings.warn(f"recomputing maps: {e}", stacklevel=3)
        return None
    reason = _stale_reason(blob, key, shape)
    if reason is not None:
        warnings.warn(f"recomputing maps: {path} is stale: {reason}", stacklevel=3)
        return None
    return blob["maps"].float()
