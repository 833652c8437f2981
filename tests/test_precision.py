"""Mixed precision and the optimiser step: ``auto`` fits the GPU, forced precisions apply
on a CPU, float16 alone goes through the gradient scaler, and a NaN loss is refused."""

from __future__ import annotations

import pytest
import torch

from xdx_lib.core.config import RunConfig
from xdx_lib.distill.method import create_method
from xdx_lib.experiments.runner import provenance
from xdx_lib.models.classifiers import create_model
from xdx_lib.training.checkpoints import load_checkpoint
from xdx_lib.training.loop import QUIET, Checkpointing, Hardware, Schedule, fit
from xdx_lib.training.precision import (
    CPU_BF16_ENV,
    PRECISIONS,
    cpu_has_bf16_units,
    grad_scaler,
    optimizer_step,
    precision_name,
    resolve_precision,
)


def _scratch():
    return create_method(RunConfig(method="scratch", student="student_tiny"))


@pytest.mark.parametrize("amp, capability, expected", [
    ("auto", (8, 0), torch.bfloat16),   # A100, H100: bfloat16 tensor cores
    ("auto", (9, 0), torch.bfloat16),
    ("auto", (7, 5), torch.float16),    # T4: no bfloat16 convolutions in cuDNN
    ("auto", (7, 0), torch.float16),    # V100
    ("bf16", (7, 5), torch.bfloat16),   # forced
    ("fp16", (9, 0), torch.float16),
    ("off", (9, 0), None),
    (True, (7, 5), torch.float16),      # True reads as auto
    (False, (9, 0), None),
])  # fmt: skip
def test_precision_fits_the_gpu(monkeypatch, amp, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision(amp, torch.device("cuda:0")) is expected


def test_auto_precision_on_a_cpu_follows_its_bf16_units_and_forced_ones_apply_there(
        monkeypatch):  # fmt: skip
    assert resolve_precision("auto", "cpu") is None  # the fixture: no bfloat16 units
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert resolve_precision("auto", "cpu") is torch.bfloat16
    assert resolve_precision("off", "cpu") is None
    assert resolve_precision("fp16", "cpu") is torch.float16
    with pytest.raises(ValueError, match="choose one of: auto, bf16, fp16, off"):
        resolve_precision("fp8", "cpu")
    assert PRECISIONS == ("auto", "bf16", "fp16", "off")


def test_fp16_trains_through_the_gradient_scaler_on_a_cpu(shapes, monkeypatch):
    scaled = []
    real = torch.amp.GradScaler.scale

    def spy(self, loss):
        scaled.append(self.is_enabled())
        return real(self, loss)

    monkeypatch.setattr(torch.amp.GradScaler, "scale", spy)
    train, test = shapes
    torch.manual_seed(0)
    model = create_model("student_tiny", 1, 4)
    hist = fit(model, _scratch(), train, test, Schedule(epochs=2, batch_size=32, lr=3e-3),
               hardware=Hardware(precision="fp16"), reporting=QUIET)  # fmt: skip
    assert scaled and all(scaled)  # every step went through the enabled scaler
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights


def test_bf16_and_off_never_scale():
    assert not grad_scaler("cpu", torch.bfloat16).is_enabled()
    assert not grad_scaler("cpu", None).is_enabled()
    assert grad_scaler("cpu", torch.float16).is_enabled()


def test_an_optimizer_step_refuses_a_nan_loss_and_otherwise_steps():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    with pytest.raises(FloatingPointError, match="step 3 became nan; lower the learning "
                                                 "rate or check the maps"):  # fmt: skip
        optimizer_step(opt, w.sum() * float("nan"), "step 3", remedy="check the maps")
    assert w.item() == 1.0  # nothing stepped
    optimizer_step(opt, (2 * w).sum(), "step 4")
    assert w.item() == 0.0  # 1 - 0.5 * 2


@pytest.mark.parametrize("amx, avx512_bf16, expected", [
    (True, False, True),    # Sapphire Rapids and later: AMX tiles
    (False, True, True),    # Cooper Lake, Zen 4: AVX-512 BF16
    (False, False, False),  # AVX2 alone: oneDNN would emulate bfloat16, slower than float32
])  # fmt: skip
def test_bf16_units_are_detected_from_torchs_cpu_probes(monkeypatch, amx, avx512_bf16,
                                                        expected):  # fmt: skip
    monkeypatch.delenv(CPU_BF16_ENV)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16,
                        raising=False)  # fmt: skip
    assert cpu_has_bf16_units() is expected
    assert resolve_precision("auto", "cpu") is (torch.bfloat16 if expected else None)


def test_a_torch_without_the_probes_reads_as_no_units(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert cpu_has_bf16_units() is False


def test_the_override_wins_and_a_bad_value_says_what_to_set(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert cpu_has_bf16_units() is False
    monkeypatch.setenv(CPU_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="XDX_CPU_BF16='yes'; set it to 0 or 1"):
        cpu_has_bf16_units()


def test_the_checkpoint_and_the_provenance_record_the_precision(shapes, tmp_path,
                                                                monkeypatch):  # fmt: skip
    train, test = shapes
    for env, name in (("0", "float32"), ("1", "bfloat16")):
        monkeypatch.setenv(CPU_BF16_ENV, env)
        torch.manual_seed(0)
        model = create_model("student_tiny", 1, 4)
        path = tmp_path / f"{name}.pt"
        fit(model, _scratch(), train, test, Schedule(epochs=1, batch_size=64),
            checkpointing=Checkpointing(path=path, meta={"run": name}),
            reporting=QUIET)  # fmt: skip
        assert load_checkpoint(path, model, {"run": name})["precision"] == name
        assert provenance("cpu", "auto")["precision"] == name
    assert provenance("cpu", "off")["precision"] == "float32"
    assert [precision_name(d) for d in (None, torch.bfloat16, torch.float16)] == [
        "float32", "bfloat16", "float16"]
