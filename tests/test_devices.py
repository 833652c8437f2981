"""Devices and ranks: ``auto`` and named devices resolve (or fail naming those there are),
and under torchrun each rank sets its own GPU before the process group starts."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from xdx_lib.core import devices
from xdx_lib.core.devices import (
    RANK_ZERO_WAIT,
    DeviceUnavailable,
    distributed,
    resolve_device,
    seed_everything,
)


@pytest.fixture
def two_gpu_torchrun(monkeypatch):
    """This process as rank 1 of 2 under torchrun on a machine with two (pretended) GPUs;
    returns the log of the CUDA and process-group calls."""
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: any(c[0] == "init" for c in calls))
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: calls.append(
        ("init", backend, kw["device_id"], kw["timeout"])))  # fmt: skip
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    return calls


def test_each_rank_sets_its_gpu_before_the_process_group(two_gpu_torchrun):
    assert distributed() == (1, 2)
    wait = RANK_ZERO_WAIT  # the others wait while rank 0 makes the cache
    assert two_gpu_torchrun == [("set_device", 1), ("init", "nccl", torch.device("cuda", 1), wait)]
    assert distributed() == (1, 2) and len(two_gpu_torchrun) == 3  # started once
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda:1")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DeviceUnavailable, match="cuda:1 for this one; set device: cuda or auto"):
        resolve_device("cuda:0")


def test_resolve_device():
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device 'cuda' is not available here"):
            resolve_device("cuda")


def test_one_process_is_rank_zero_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed() == (0, 1) and devices.is_rank_zero()
    assert devices.on_rank_zero(lambda: 41 + 1) == 42  # no broadcast without torchrun


def test_seeding_repeats_the_global_draws():
    seed_everything(3)
    first = torch.rand(3)
    seed_everything(3)
    assert torch.equal(torch.rand(3), first)
