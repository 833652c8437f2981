"""The training loop: it learns, it resumes to the same weights after a kill, checkpoints
are checked against the model, every method trains, and DDP runs with 2 CPU processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from xdx_lib.config import RunConfig
from xdx_lib.data import Dataset, make_shapes
from xdx_lib.methods import create_method
from xdx_lib.models import create_model
from xdx_lib.session import train_student, train_teacher
from xdx_lib.train import CheckpointMismatch, epoch_batches, fit, load_checkpoint, resolve_device

ROOT = Path(__file__).resolve().parents[1]


class Kill(Exception):
    pass


def _scratch():
    return create_method(RunConfig(method="scratch", student="student_tiny"))


def _fit(shapes, path=None, epochs=2, callback=None, seed=0):
    train, test = shapes
    torch.manual_seed(seed)
    model = create_model("student_tiny", 1, 4)
    hist = fit(model, _scratch(), train, test, epochs=epochs, batch_size=64, lr=1e-2,
               seed=seed, ckpt_path=path, meta={"m": "tiny"}, callback=callback,
               verbose=False)  # fmt: skip
    return model, hist


def test_fit_learns_shapes(shapes):
    train, test = make_shapes(512, seed=0), shapes[1]
    torch.manual_seed(0)
    model = create_model("student_tiny", 1, 4)
    hist = fit(model, _scratch(), train, test, epochs=6, batch_size=32, lr=3e-3, verbose=False)
    assert len(hist) == 6 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["test_acc"] > 0.45  # 4 classes: chance is 0.25
    assert {"epoch_time", "test_loss", "lr", "ce"} <= set(hist[-1])
    assert hist[-1]["lr"] == pytest.approx(0.0, abs=1e-9)  # the cosine ends at zero


def test_a_killed_run_resumes_to_the_same_weights(shapes, tmp_path):
    full, full_hist = _fit(shapes, tmp_path / "full.pt", epochs=3)

    def kill(epoch, step):
        if epoch == 1 and step == 1:
            raise Kill

    path = tmp_path / "killed.pt"
    with pytest.raises(Kill):
        _fit(shapes, path, epochs=3, callback=kill)
    assert load_checkpoint(path, create_model("student_tiny", 1, 4))["epoch"] == 1
    assert not list(tmp_path.glob("*.tmp*"))  # nothing half-written beside it
    resumed, hist = _fit(shapes, path, epochs=3, seed=0)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["test_acc"] for h in hist] == [h["test_acc"] for h in full_hist]


def test_a_finished_run_is_loaded_not_retrained(shapes, tmp_path):
    path = tmp_path / "m.pt"
    _fit(shapes, path, epochs=1)

    def fail(epoch, step):
        raise AssertionError("trained again")

    _, hist = _fit(shapes, path, epochs=1, callback=fail)
    assert len(hist) == 1


def test_checkpoint_of_another_model_is_refused(shapes, tmp_path):
    path = tmp_path / "m.pt"
    _fit(shapes, path, epochs=1)
    with pytest.raises(CheckpointMismatch, match="does not fit this model"):
        load_checkpoint(path, create_model("student_small", 1, 4))
    with pytest.raises(CheckpointMismatch, match="was written for"):
        load_checkpoint(path, create_model("student_tiny", 1, 4), meta={"m": "other"})


def test_corrupt_checkpoint_says_delete_it(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt.*delete it"):
        load_checkpoint(path, create_model("student_tiny", 1, 4))


def test_epoch_batches_cover_every_image_once_and_split_across_ranks():
    batches = list(epoch_batches(10, 4, seed=0, epoch=0))
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert [len(b) for b in batches] == [4, 4, 2]
    ranks = [list(epoch_batches(10, 4, 0, 0, rank=r, world=2)) for r in (0, 1)]
    joined = torch.cat([torch.cat([a, b]) for a, b in zip(*ranks)])
    assert sorted(joined.tolist()) == list(range(10))
    assert not torch.equal(batches[0], next(epoch_batches(10, 4, seed=0, epoch=1)))


def test_nan_loss_stops_with_a_clear_error(shapes):
    train, test = shapes
    bad = type(train)(train.x.clone(), train.y)
    bad.x[0] = float("nan")
    model = create_model("student_tiny", 1, 4)
    with pytest.raises(FloatingPointError, match="lower the learning rate or check the inputs"):
        fit(model, _scratch(), bad, test, epochs=1, batch_size=len(bad), verbose=False)


def test_resolve_device():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device 'cuda' is not available here"):
            resolve_device("cuda")


@pytest.fixture(scope="module")
def tiny_data():
    train, test = make_shapes(160, seed=0), make_shapes(40, seed=1)
    return Dataset("shapes", train, test, ["a", "b", "c", "d"])


@pytest.mark.parametrize("method", ["scratch", "kd", "at", "e2kd", "xdistill"])
def test_every_method_trains_a_student_and_is_cached(method, tiny_data):
    cfg = RunConfig(dataset="shapes", profile="smoke", method=method, student="student_tiny",
                    teacher="student_small", batch_size=32, cae_epochs=1)  # fmt: skip
    teacher = train_teacher(cfg, tiny_data, verbose=False)
    run = train_student(cfg, tiny_data, teacher, verbose=False)
    last = run.history[-1]
    assert 0.0 <= last["test_acc"] <= 1.0 and 0.0 <= last["agreement"] <= 1.0
    assert -1.0 <= last["gradcam_pearson"] <= 1.0
    assert run.path.is_file()
    again = train_student(cfg, tiny_data, teacher, verbose=False)
    assert again.path == run.path and again.history == run.history


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from xdx_lib.config import RunConfig
    from xdx_lib.data import make_shapes
    from xdx_lib.methods import create_method
    from xdx_lib.models import create_model
    from xdx_lib.train import fit
    torch.manual_seed(0)
    model = create_model("student_tiny", 1, 4)
    method = create_method(RunConfig(method="scratch", student="student_tiny"))
    hist = fit(model, method, make_shapes(128, seed=0), make_shapes(32, seed=1), epochs=2,
               batch_size=32, device="cpu", ckpt_path=sys.argv[1], verbose=False)
    rank = torch.distributed.get_rank()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save(flat, sys.argv[1] + f".rank{rank}")
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    ckpt = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={_free_port()}", str(script), str(ckpt)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    w0 = torch.load(f"{ckpt}.rank0")
    w1 = torch.load(f"{ckpt}.rank1")
    assert torch.equal(w0, w1)  # gradients were all-reduced: the replicas stayed equal
    model = create_model("student_tiny", 1, 4)
    assert load_checkpoint(ckpt, model)["epoch"] == 2  # rank 0 wrote the checkpoint


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
    from xdx_lib.train import resolve_precision

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision(amp, torch.device("cuda:0")) is expected


def test_auto_precision_is_none_on_a_cpu_and_forced_ones_apply_there():
    from xdx_lib.train import resolve_precision

    assert resolve_precision("auto", "cpu") is None
    assert resolve_precision("fp16", "cpu") is torch.float16
    with pytest.raises(ValueError, match="choose one of: auto, bf16, fp16, off"):
        resolve_precision("fp8", "cpu")


def test_fp16_trains_through_the_gradient_scaler_on_a_cpu(shapes, monkeypatch):
    from xdx_lib import train as train_module

    scaled = []
    real = torch.amp.GradScaler.scale

    def spy(self, loss):
        scaled.append(self.is_enabled())
        return real(self, loss)

    monkeypatch.setattr(torch.amp.GradScaler, "scale", spy)
    train, test = shapes
    torch.manual_seed(0)
    model = create_model("student_tiny", 1, 4)
    hist = train_module.fit(model, _scratch(), train, test, epochs=2, batch_size=32, lr=3e-3,
                            amp="fp16", verbose=False)  # fmt: skip
    assert scaled and all(scaled)  # every step went through the enabled scaler
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights


def test_bf16_and_off_never_scale(shapes, monkeypatch):
    from xdx_lib.train import grad_scaler

    assert not grad_scaler("cpu", torch.bfloat16).is_enabled()
    assert not grad_scaler("cpu", None).is_enabled()
    assert grad_scaler("cpu", torch.float16).is_enabled()
