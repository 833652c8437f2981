"""Trained models and their cached signals (:mod:`xdx_lib.training.trained_model`): logits in eval
mode on
the CPU, teacher logits computed once and recomputed when their file is corrupt or belongs
to another checkpoint, maps that are never read from a stale or corrupt file, and the
hashes that key them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xdx_lib.core.cache import load_tensors, runs_dir, tensor_hash
from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, Split
from xdx_lib.distill.method import METHODS
from xdx_lib.models.classifiers import create_model
from xdx_lib.training import trained_model as trained_mod
from xdx_lib.training.trained_model import TrainedModel, model_maps, teacher_logits

SIZE = 12  # images are 1 x 12 x 12: three stages of student_tiny still fit


def _save_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """Write ``model`` as :func:`xdx_lib.training.loop.fit` does (a real file: its hash is the
    key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "epoch": 1, "history": [{"epoch": 1}],
                "meta": {"model": "student_tiny"}}, path)  # fmt: skip


@pytest.fixture
def run() -> TrainedModel:
    """A tiny trained model (random weights, eval mode) with its checkpoint on disk."""
    torch.manual_seed(0)
    model = create_model("student_tiny", in_channels=1, num_classes=3).eval()
    path = runs_dir() / "teachers" / "t" / "model.pt"
    _save_checkpoint(model, path)
    method = METHODS.get("scratch")(RunConfig(method="scratch"))
    return TrainedModel(model, method, path, [{"epoch": 1}], "t")


@pytest.fixture
def forwards(run) -> list[int]:
    """The batch size of every forward pass of ``run.model``."""
    calls: list[int] = []
    run.model.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    return calls


def _data(n_train: int = 6, n_test: int = 4, seed: int = 0) -> Dataset:
    """Random images and labels of three classes."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        x = torch.rand(n, 1, SIZE, SIZE, generator=g)
        return Split(x, torch.randint(0, 3, (n,), generator=g))

    return Dataset("shapes", split(n_train), split(n_test), ["a", "b", "c"])


# ----------------------------------------------------------------------------- TrainedModel


def test_logits_are_cpu_float32_in_eval_mode(run):
    x = _data().test.x
    with torch.no_grad():
        expected = run.model.eval()(x)
    run.model.train()
    bn = next(m for m in run.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    got = run.logits(x)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert got.shape == (len(x), 3) and not got.requires_grad
    assert not run.model.training
    assert torch.equal(bn.running_mean, stats)  # BatchNorm used, not updated, its statistics
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_logits_of_a_double_model_are_float32(run):
    run.model.double()
    got = run.logits(_data().test.x.double())
    assert got.dtype == torch.float32


def _retrained(run: TrainedModel, change) -> TrainedModel:
    """The model after ``change`` to its weights, saved over its checkpoint, as a new
    TrainedModel (what retraining gives: a finished checkpoint per TrainedModel)."""
    with torch.no_grad():
        change(run.model)
    _save_checkpoint(run.model, run.path)
    return TrainedModel(run.model, run.method, run.path, run.history, run.key)


def test_checkpoint_hash_is_the_files_and_read_once(run, monkeypatch):
    from xdx_lib.training import trained_model as trained_module

    before = run.checkpoint_hash
    monkeypatch.setattr(trained_module, "file_hash", lambda p: "re-read")
    assert run.checkpoint_hash == before  # not hashed again
    monkeypatch.undo()
    after = _retrained(run, lambda m: m.classifier.bias.add_(1.0))
    assert after.checkpoint_hash != before


# ----------------------------------------------------------------------------- teacher_logits


def test_teacher_logits_are_computed_once_then_read(run, forwards):
    data = _data()
    first = teacher_logits(run, data)
    assert forwards == [6, 4]  # one pass per split
    for split in ("train", "test"):
        torch.testing.assert_close(first[split], run.logits(getattr(data, split).x))
        assert (run.path.parent / f"logits_{split}.pt").is_file()
    forwards.clear()
    second = teacher_logits(run, data)
    assert forwards == []  # the model never ran
    assert all(torch.equal(first[s], second[s]) for s in ("train", "test"))


def test_teacher_logits_recompute_a_corrupt_file(run, forwards):
    data = _data()
    first = teacher_logits(run, data)
    path = run.path.parent / "logits_test.pt"
    path.write_bytes(path.read_bytes()[:40])  # cut short, as by a full disk
    forwards.clear()
    again = teacher_logits(run, data)
    assert forwards == [4]  # the test split only
    assert torch.equal(again["test"], first["test"])
    assert torch.equal(load_tensors(path)["logits"], first["test"])  # repaired on disk


def test_teacher_logits_of_another_checkpoint_are_not_read(run, forwards):
    data = _data()
    old = teacher_logits(run, data)
    run = _retrained(run, lambda m: m.classifier.bias.add_(1.0))  # a new checkpoint file
    forwards.clear()
    new = teacher_logits(run, data)
    assert forwards == [6, 4]
    for split in ("train", "test"):
        torch.testing.assert_close(new[split], old[split] + 1.0)
        tag = load_tensors(run.path.parent / f"logits_{split}.pt")["tag"]
        assert tag["checkpoint"] == run.checkpoint_hash


def test_teacher_logits_of_another_split_size_are_not_read(run, forwards):
    teacher_logits(run, _data(n_train=6))
    forwards.clear()
    got = teacher_logits(run, _data(n_train=5), ("train",))
    assert forwards == [5] and got["train"].shape == (5, 3)


def test_teacher_logits_of_other_images_of_the_same_size_are_not_read(run, forwards):
    teacher_logits(run, _data(seed=0))
    forwards.clear()
    other = _data(seed=1)
    got = teacher_logits(run, other)
    assert forwards == [6, 4] and torch.equal(got["train"], run.logits(other.train.x))
    forwards.clear()
    teacher_logits(run, other)
    assert forwards == []


def test_teacher_logits_recompute_a_file_that_is_not_theirs(run, forwards):
    data = _data()
    first = teacher_logits(run, data)
    torch.save(torch.zeros(4, 3), run.path.parent / "logits_test.pt")
    again = teacher_logits(run, data)
    assert torch.equal(again["test"], first["test"])


# ----------------------------------------------------------------------------- maps


@pytest.fixture
def explained(monkeypatch) -> list[str]:
    """The explainer of every call the maps cache makes to ``explain``."""
    calls: list[str] = []
    real = trained_mod.explain

    def counting(model, x, explainer, **kwargs):
        calls.append(explainer)
        return real(model, x, explainer, **kwargs)

    monkeypatch.setattr(trained_mod, "explain", counting)
    return calls


def _maps_files() -> list[Path]:
    """Every file of the maps cache."""
    return sorted((runs_dir() / "maps").glob("*"))


def test_model_maps_are_computed_once_per_key(run, explained):
    data = _data()
    x, y = data.test.x, data.test.y
    first = model_maps(run, x)
    assert first.shape == (4, 1, SIZE, SIZE) and first.dtype == torch.float32
    assert torch.equal(model_maps(run, x, "gradcam", split="test"), first)
    assert torch.equal(model_maps(run, x, layer=None, normalize=True), first)  # the defaults
    assert len(explained) == 1 and len(_maps_files()) == 1
    other_target = (y + 1) % 3
    for kwargs in ({"split": "train"}, {"target": y}, {"target": other_target},
                   {"normalize": False}, {"layer": "features.1"}):  # fmt: skip
        model_maps(run, x, **kwargs)
    assert len(explained) == 6 and len(_maps_files()) == 6
    model_maps(run, x, target=y.clone())  # the same labels, another tensor: the same key
    assert len(explained) == 6


def test_model_maps_of_a_retrained_checkpoint_are_not_read(run, explained):
    x = _data().test.x
    model_maps(run, x)
    model_maps(_retrained(run, lambda m: m.classifier.weight.mul_(2.0)), x)
    assert len(explained) == 2 and len(_maps_files()) == 2


def _planted(blob, shape):
    """What to write over a good maps file: each a file the cache must not use."""
    bad = torch.full(shape, 0.25)
    nan = bad.clone()
    nan[0, 0, 0, 0] = float("nan")
    return {
        "corrupt": None,
        "not a dict": bad,
        "no key": {"maps": bad},
        "stale key": {"key": {**blob["key"], "checkpoint_hash": "0" * 12}, "maps": bad},
        "wrong shape": {"key": blob["key"], "maps": bad[:2]},
        "NaN": {"key": blob["key"], "maps": nan},
    }


#: The warning each planted file gives when the cache refuses it.
WARNINGS = {
    "corrupt": "recomputing maps: cannot read .*corrupt",
    "not a dict": "is stale: it is not a maps file",
    "no key": "is stale: it is not a maps file",
    "stale key": "is stale: its stored key differs",
    "wrong shape": r"is stale: its maps have shape \(2, 1, 12, 12\), expected \(4, 1, 12, 12\)",
    "NaN": "is stale: its maps contain NaN or inf",
}


@pytest.mark.parametrize("case", list(WARNINGS))
def test_model_maps_never_use_a_stale_or_corrupt_file(run, explained, case):
    x = _data().test.x
    good = model_maps(run, x)
    (path,) = _maps_files()
    planted = _planted(load_tensors(path), tuple(good.shape))[case]
    if planted is None:
        path.write_bytes(b"\x80\x02 not a torch file")
    else:
        torch.save(planted, path)
    with pytest.warns(UserWarning, match=WARNINGS[case]):
        again = model_maps(run, x)
    assert torch.equal(again, good) and len(explained) == 2
    blob = load_tensors(path)  # overwritten with the good maps
    assert torch.equal(blob["maps"], good)
    assert torch.equal(model_maps(run, x), good) and len(explained) == 2


# ----------------------------------------------------------------------------- tensor_hash


def test_tensor_hash_tells_dtype_shape_and_values_apart():
    zeros = torch.zeros(2, 3)
    assert tensor_hash(zeros) == tensor_hash(torch.zeros(2, 3))
    assert tensor_hash(zeros) != tensor_hash(torch.zeros(2, 3, dtype=torch.int32))  # same bytes
    assert tensor_hash(zeros) != tensor_hash(torch.zeros(3, 2))  # same bytes
    assert tensor_hash(zeros) != tensor_hash(torch.zeros(6))
    one = zeros.clone()
    one[1, 2] = 1e-6
    assert tensor_hash(zeros) != tensor_hash(one)
    labels = torch.tensor([0, 1, 2])
    assert tensor_hash(labels) != tensor_hash(torch.tensor([0, 2, 1]))
    assert len(tensor_hash(zeros, length=20)) == 20


def test_tensor_hash_ignores_memory_layout_and_autograd():
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    h = tensor_hash(x)
    assert tensor_hash(x.to(memory_format=torch.channels_last)) == h  # as models run
    assert tensor_hash(x.transpose(1, 3).contiguous().transpose(1, 3)) == h
    assert tensor_hash(x.clone().requires_grad_()) == h
