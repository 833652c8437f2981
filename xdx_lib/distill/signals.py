"""What a student reads from its teacher, declared by the method and provided by one of two
providers: from the run cache, or online on every batch.

A method lists its needs as :class:`Signal` entries (:meth:`xdx_lib.distill.method.Method.signals`):
the teacher's logits, its maps of an explainer (raw or normalised, of its predicted class or
of the label), the class those maps explain, or its attention at each stage. It then reads
them from the batch under :attr:`Signal.key` and never learns where they came from:

* :func:`cached_signals` (``teacher_signal: cached``, the default) computes each signal once
  for the whole training split, on the un-augmented images, and stores it in the run cache;
  the loop slices it into every batch;
* :class:`OnlineSignals` (``teacher_signal: online``, needed with ``augment``) runs the frozen
  teacher on each (augmented) batch.

Both give the same numbers on the same images (a test checks it). Layer: beside the trained models
(:mod:`xdx_lib.training.trained_model`), above the batches (:class:`~xdx_lib.data.batches.Extras`,
what it provides), the precision, the losses and the explainers; below the methods, which only
declare.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from xdx_lib.core._utils import channels_last
from xdx_lib.core.kinds import StrEnum
from xdx_lib.core.registry import declare_choices
from xdx_lib.data.batches import Extras
from xdx_lib.explain import make_explainer
from xdx_lib.models.features import attention_map, captured
from xdx_lib.training.precision import autocast, resolve_precision
from xdx_lib.training.trained_model import TrainedModel, model_maps, teacher_logits

#: Where a student's teacher signals come from, ``cached`` (computed once on the
#: un-augmented images) or ``online`` (the teacher run on each, augmented, batch).
TEACHER_SIGNALS = declare_choices("teacher signal", ("cached", "online"))

#: The classes a teacher's map may explain, its prediction (``pred``) or the label.
MAP_TARGETS = declare_choices("map target", ("pred", "label"))

class SignalKind(StrEnum):
    """What a signal is: the teacher's ``logits``, its explanation ``maps``, the
    ``target_class`` the maps explain, or its ``attention`` at each stage."""

    LOGITS = "logits"
    MAPS = "maps"
    TARGET_CLASS = "target_class"
    ATTENTION = "attention"


#: Each kind of signal, and the batch key it is read under.
BATCH_KEYS = {SignalKind.LOGITS: "teacher_logits", SignalKind.MAPS: "teacher_maps",
              SignalKind.TARGET_CLASS: "target_class",
              SignalKind.ATTENTION: "teacher_attention"}  # fmt: skip


@dataclass(frozen=True)
class Signal:
    """One thing a method reads from the teacher in every training batch.

    Attributes:
        kind: ``logits``, ``maps`` (explanations ``[B, 1, H, W]``), ``target_class`` (the
            class the maps explain, ``[B]``) or ``attention`` (one ``[B, 1, h, w]`` tensor
            per stage: the one-channel feature whose attention map is the teacher's).
        explainer: for ``maps``: a registered explainer.
        raw: for ``maps``: the explainer's raw output (``normalize=False``), not min-max
            normalised per image.
        target: for ``maps`` and ``target_class``: ``pred`` (the teacher's prediction) or
            ``label``.
    """

    kind: SignalKind
    explainer: str = "gradcam"
    raw: bool = False
    target: str = "pred"

    def __post_init__(self) -> None:
        if self.kind not in BATCH_KEYS:
            raise ValueError(f"unknown signal {self.kind!r}; choose one of: "
                             f"{', '.join(BATCH_KEYS)}")  # fmt: skip
        object.__setattr__(self, "kind", SignalKind(self.kind))
        if self.target not in MAP_TARGETS:
            raise ValueError(f"signal target {self.target!r}; choose one of: "
                             f"{', '.join(MAP_TARGETS)}")  # fmt: skip

    @property
    def key(self) -> str:
        """The batch key the method reads this signal under."""
        return BATCH_KEYS[self.kind]

    @property
    def settings(self) -> dict:
        """The explainer's settings for ``maps``."""
        return {"normalize": False} if self.raw else {}


def _check_unique_keys(signals: list[Signal]) -> None:
    keys = [s.key for s in signals]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two signals share a batch key: {signals}")


@torch.no_grad()
def teacher_attention(teacher: nn.Module, x: Tensor, batch_size: int = 512) -> list[Tensor]:
    """The teacher's attention at each stage, as one-channel features ``[N, 1, h, w]``.

    Each is the square root of the normalised attention map
    (:func:`xdx_lib.models.features.attention_map`), so that :func:`~xdx_lib.distill.at.at_loss`
    reads it as it reads the teacher's activations, at 1/C of their size. Returned on the device of
    ``x``'s batches as given (the CPU for a whole split).
    """
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    stages = captured(teacher, "stages")  # hooked once, not once per online batch
    out: list[list[Tensor]] = []
    try:
        for start in range(0, len(x), batch_size):
            xb = channels_last(x[start : start + batch_size].to(device))
            _, feats = stages.run(teacher, xb)
            out.append([attention_map(f).sqrt().view(len(xb), 1, *f.shape[-2:])
                        .to(x.device) for f in feats])  # fmt: skip
    finally:
        teacher.train(was_training)
    return [torch.cat(stage) for stage in zip(*out)]


def cached_signals(teacher: TrainedModel, data, signals: list[Signal]) -> dict[str, object]:
    """Every signal of the training split, computed once (un-augmented images) and cached.

    Logits and maps come from the run cache (:func:`~xdx_lib.training.trained_model.teacher_logits`,
    :func:`~xdx_lib.training.trained_model.model_maps`); attention is computed here, once per run.
    Returns ``{signal.key: per-image tensor, or a list of them for attention}``, aligned with
    ``data.train``.
    """
    _check_unique_keys(signals)
    train = data.train
    uses_logits = {SignalKind.LOGITS, SignalKind.TARGET_CLASS}
    logits = None
    if any(s.kind in uses_logits or (s.kind == SignalKind.MAPS and s.target == "pred")
           for s in signals):  # fmt: skip
        logits = teacher_logits(teacher, data, ("train",))["train"]
    compute = {
        SignalKind.LOGITS: lambda s: logits,
        SignalKind.TARGET_CLASS: lambda s: train.y if s.target == "label" else logits.argmax(1),
        SignalKind.MAPS: lambda s: model_maps(
            teacher, train.x, s.explainer, split="train",
            target=train.y if s.target == "label" else None, **s.settings),
        SignalKind.ATTENTION: lambda s: teacher_attention(teacher.model, train.x),
    }  # fmt: skip
    return {s.key: compute[s.kind](s) for s in signals}


class OnlineSignals:
    """The signals of each (augmented) batch, from the frozen teacher in eval mode.

    Called by the loop on every batch after augmentation (``Extras.per_batch``). Logits are
    computed without gradient under the run's precision, then in float32; the class a map
    explains is the label or the teacher's argmax on the augmented image; maps are computed
    in float32, as the cached ones, and stay on the device.
    """

    def __init__(self, teacher: TrainedModel, signals: list[Signal], device, amp: str = "auto"):
        _check_unique_keys(signals)
        self.teacher, self.signals = teacher, signals
        self.model = teacher.model.to(device).eval()
        self.dtype = resolve_precision(amp, device)
        self.device = torch.device(device)
        self.explainers = {s: make_explainer(s.explainer, self.model, **s.settings)
                           for s in signals if s.kind == SignalKind.MAPS}  # fmt: skip

    def __call__(self, batch: dict) -> dict:
        x = batch["x"]
        with torch.no_grad(), autocast(self.device, self.dtype):
            logits = self.teacher.method.logits(self.model, x).float()
        def target(s: Signal) -> Tensor:
            return batch["y"] if s.target == "label" else logits.argmax(1)

        compute = {
            SignalKind.LOGITS: lambda s: logits,
            SignalKind.TARGET_CLASS: target,
            SignalKind.MAPS: lambda s: self.explainers[s].explain(x, target(s)),
            SignalKind.ATTENTION: lambda s: teacher_attention(self.model, x, batch_size=len(x)),
        }
        return {s.key: compute[s.kind](s) for s in self.signals}


def training_extras(source: str, teacher: TrainedModel, data, signals: list[Signal], device,
            amp: str = "auto") -> Extras:  # fmt: skip
    """The training loop's :class:`~xdx_lib.data.batches.Extras` for ``signals``, from ``source``.

    ``cached``: per-image tensors of the training split (:func:`cached_signals`); ``online``:
    a per-batch function (:class:`OnlineSignals`). Nothing is computed when the method
    asks for nothing.
    """
    if source not in TEACHER_SIGNALS:
        raise ValueError(f"teacher_signal {source!r}; choose one of: {', '.join(TEACHER_SIGNALS)}")
    if not signals:
        return Extras()
    if source == "cached":
        return Extras(train=cached_signals(teacher, data, signals))
    return Extras(per_batch=OnlineSignals(teacher, signals, device, amp))
