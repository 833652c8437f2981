"""Mixed precision and the optimiser step, shared by every loop of the library.

:func:`resolve_precision` reads a config's ``amp`` (:data:`PRECISIONS`) as an autocast dtype for a
device; :func:`autocast` and :func:`grad_scaler` apply it; :func:`optimizer_step` is one step on a
loss, refusing a NaN or inf one. The student loop (:func:`xdx_lib.training.loop.fit`), the CAE's
pre-training (:func:`xdx_lib.distill.cae_pretraining.fit_cae`) and the online teacher signals
(:mod:`xdx_lib.distill.signals`) all go through them.

Layer: imports the registry (to declare the precisions) and torch.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch

from xdx_lib.core.registry import declare_choices

#: Mixed precision, ``auto`` (bfloat16 on GPUs with bfloat16 tensor cores and on CPUs with
#: bfloat16 matrix units, float16 with a gradient scaler on older GPUs, none on other CPUs),
#: or one forced: ``bf16``, ``fp16``, ``off``.
PRECISIONS = declare_choices("precision", ("auto", "bf16", "fp16", "off"))

#: Set to ``0`` or ``1`` to override :func:`cpu_has_bf16_units` (a float32 baseline on a CPU
#: that has the units, or a check of the bfloat16 path on one that has not).
CPU_BF16_ENV = "XDX_CPU_BF16"


def cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bfloat16 matrix products in hardware: AMX tiles or AVX-512
    BF16, as torch's own CPU probes report them (oneDNN uses those units under autocast).

    Without them oneDNN emulates bfloat16 and autocast is slower than float32, so ``auto``
    keeps float32 there. :data:`CPU_BF16_ENV` overrides the probe.
    """
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ValueError(f"{CPU_BF16_ENV}={forced!r}; set it to 0 or 1, or unset it")
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)  # private probes: absent in some torch builds
        try:
            if check is not None and check():
                return True
        except RuntimeError:
            continue
    return False


def resolve_precision(amp: str | bool, device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` (:data:`PRECISIONS`) on ``device``, or None for none.

    ``auto`` picks bfloat16 on a CUDA GPU of compute capability 8.0 or more (A100, H100,
    RTX 30xx and later have bfloat16 tensor cores), float16 below (T4, V100: cuDNN has no
    bfloat16 convolutions there), bfloat16 on a CPU with bfloat16 matrix units
    (:func:`cpu_has_bf16_units`), and nothing on other CPUs or MPS. ``bf16`` and ``fp16``
    force that dtype on any device (CPU autocast included), ``off`` none. ``True``/``False``
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
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16_units() else None
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def precision_name(dtype: torch.dtype | None) -> str:
    """How a run's provenance names the precision it computed in: ``bfloat16``, ``float16``
    or ``float32`` (no autocast)."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


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
    loop (:func:`xdx_lib.training.loop.fit`) and the CAE's pre-training.
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
