"""Checkpoints: a killed run resumes to the same weights, a finished one is loaded, not
retrained, one of another model or run is refused, a corrupt one says to delete it, and
what a checkpoint holds keeps the keys every cached run has."""

from __future__ import annotations

import pytest
import torch

from xdx_lib.core.cache import load_tensors
from xdx_lib.core.config import RunConfig
from xdx_lib.distill.method import create_method
from xdx_lib.models.classifiers import create_model
from xdx_lib.training.checkpoints import (
    CheckpointMismatch,
    checkpoint_epochs,
    load_checkpoint,
    resume,
    save_checkpoint,
)
from xdx_lib.training.loop import Checkpointing, Reporting, Schedule, fit
from xdx_lib.training.optim import cosine_optimizer


class Kill(Exception):
    pass


def _fit(shapes, path=None, epochs=2, callback=None, seed=0):
    train, test = shapes
    torch.manual_seed(seed)
    model = create_model("student_tiny", 1, 4)
    method = create_method(RunConfig(method="scratch", student="student_tiny"))
    hist = fit(model, method, train, test, Schedule(epochs=epochs, batch_size=64, lr=1e-2,
                                                    seed=seed),
               checkpointing=Checkpointing(path, {"m": "tiny"}),
               reporting=Reporting(verbose=False, callback=callback))  # fmt: skip
    return model, hist


def test_a_killed_run_resumes_to_the_same_weights(shapes, tmp_path):
    full, full_hist = _fit(shapes, tmp_path / "full.pt", epochs=3)

    def kill(epoch, step):
        if epoch == 1 and step == 1:
            raise Kill

    path = tmp_path / "killed.pt"
    with pytest.raises(Kill):
        _fit(shapes, path, epochs=3, callback=kill)
    assert load_checkpoint(path, create_model("student_tiny", 1, 4))["epoch"] == 1
    assert checkpoint_epochs(path) == 1 and checkpoint_epochs(tmp_path / "none.pt") == 0
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
    assert checkpoint_epochs(path) == 0  # unreadable: nothing finished


def test_a_checkpoint_holds_the_keys_of_every_cached_run(tmp_path):
    # the run cache's checkpoints are read by these keys: a new one would orphan them
    # (``precision`` is provenance alone: nothing reads it to load a run)
    model = torch.nn.Linear(2, 1)
    opt, sched = cosine_optimizer(model, 1e-3, 0.0, 4)
    history = [{"epoch": 1}, {"epoch": 2}]
    save_checkpoint(tmp_path / "m.pt", model, opt, sched, history, {"key": "k"})
    ckpt = load_tensors(tmp_path / "m.pt")
    assert set(ckpt) == {"model", "optimizer", "scheduler", "rng", "cuda_rng", "epoch",
                         "history", "meta", "precision"}  # fmt: skip
    assert ckpt["epoch"] == 2 and ckpt["meta"] == {"key": "k"} and ckpt["precision"] == "float32"
    torch.rand(5)  # the global generator moves on; resuming restores it
    fresh = torch.nn.Linear(2, 1)
    opt2, sched2 = cosine_optimizer(fresh, 1e-3, 0.0, 4)
    assert resume(tmp_path / "m.pt", fresh, opt2, sched2, {"key": "k"}) == history
    assert torch.equal(torch.get_rng_state(), ckpt["rng"])
    assert resume(None, fresh, opt2, sched2, None) == []


class _FakeCuda:
    """torch.cuda as a machine with ``count`` GPUs would show it, recording what is set."""

    def __init__(self, count: int, states: list[torch.Tensor]):
        self.count, self.states, self.set = count, states, {}

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: list(self.states))
        monkeypatch.setattr(torch.cuda, "set_rng_state",
                            lambda state, device: self.set.__setitem__(device, state))


def _save_and_resume(tmp_path, saved_on: _FakeCuda, resumed_on: _FakeCuda, monkeypatch):
    model = torch.nn.Linear(2, 1)
    opt, sched = cosine_optimizer(model, 1e-3, 0.0, 4)
    saved_on.install(monkeypatch)
    save_checkpoint(tmp_path / "m.pt", model, opt, sched, [{"epoch": 1}], {"key": "k"})
    resumed_on.install(monkeypatch)
    resume(tmp_path / "m.pt", model, opt, sched, {"key": "k"})


def test_a_gpu_runs_random_state_is_saved_and_restored(tmp_path, monkeypatch):
    states = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)]
    later = _FakeCuda(2, [])
    _save_and_resume(tmp_path, _FakeCuda(2, states), later, monkeypatch)
    assert sorted(later.set) == [0, 1]
    assert all(torch.equal(later.set[d], states[d]) for d in (0, 1))


def test_resuming_on_fewer_gpus_restores_what_it_can_and_says_so(tmp_path, monkeypatch):
    states = [torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)]
    later = _FakeCuda(1, [])
    with pytest.warns(UserWarning, match="not bit-identical"):
        _save_and_resume(tmp_path, _FakeCuda(2, states), later, monkeypatch)
    assert list(later.set) == [0] and torch.equal(later.set[0], states[0])


def test_a_cpu_run_saves_no_gpu_state(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt, sched = cosine_optimizer(model, 1e-3, 0.0, 4)
    save_checkpoint(tmp_path / "m.pt", model, opt, sched, [], {"key": "k"})
    assert load_tensors(tmp_path / "m.pt")["cuda_rng"] is None
