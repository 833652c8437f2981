"""Augmentation and the GPU-ready loop: per-image augmentation, the augmented teacher and its
cache key, online teacher signals for augmented students, no host sync in a step, and
provenance that records only the project's own commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xdx_lib
from xdx_lib.core.config import RunConfig
from xdx_lib.data.batches import augment_batch
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.distill.kd import KD
from xdx_lib.distill.method import create_method
from xdx_lib.experiments import runner, session
from xdx_lib.models.classifiers import create_model
from xdx_lib.training.loop import Reporting, Schedule, fit

TORCH_DIR = str(Path(torch.__file__).parent)


def _shifts(x: torch.Tensor, p: int) -> list[torch.Tensor]:
    """Every shift of one image [C, H, W] by up to ``p`` pixels, zeros filling in."""
    h, w = x.shape[-2:]
    pad = torch.nn.functional.pad(x, (p, p, p, p))
    return [pad[:, dy : dy + h, dx : dx + w] for dy in range(2 * p + 1) for dx in range(2 * p + 1)]


def test_grey_augmentation_shifts_each_image_on_its_own():
    x = torch.rand(64, 1, 28, 28)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    found = []
    for i in range(len(x)):  # each output is one shift of its own input, never a mirror
        hits = [k for k, s in enumerate(_shifts(x[i], 2)) if torch.equal(s, out[i])]
        assert len(hits) == 1
        found.append(hits[0])
    assert len(set(found)) > 5  # the shift is drawn per image, not once per batch


def test_rgb_augmentation_crops_and_flips_per_image():
    x = torch.rand(64, 3, 32, 32)
    out = augment_batch(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    flipped = 0
    for i in range(len(x)):
        plain = any(torch.equal(s, out[i]) for s in _shifts(x[i], 4))
        mirror = any(torch.equal(s, out[i]) for s in _shifts(x[i].flip(-1), 4))
        assert plain != mirror
        flipped += mirror
    assert 10 < flipped < 54  # about half, each image its own coin


def test_augmentation_is_reproducible_from_its_generator():
    x = torch.rand(16, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(5))
    b = augment_batch(x, torch.Generator().manual_seed(5))
    c = augment_batch(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.fixture(scope="module")
def tiny_data():
    return Dataset("shapes", make_shapes(96, seed=0), make_shapes(32, seed=1), list("abcd"))


def _cfg(**kw):
    base = dict(dataset="shapes", profile="smoke", student="student_tiny",
                teacher="student_tiny", batch_size=32)  # fmt: skip
    return RunConfig(**{**base, **kw})


def test_teacher_trains_augmented_by_default_and_is_keyed_by_it(tiny_data, monkeypatch):
    seen = []
    real_fit = session.fit

    def spy(*args, **kwargs):
        seen.append(kwargs["schedule"].augment)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(session, "fit", spy)
    assert RunConfig().teacher_augment is True
    on = session.train_teacher(_cfg(), tiny_data, verbose=False)
    off = session.train_teacher(_cfg(teacher_augment=False), tiny_data, verbose=False)
    assert seen == [True, False]
    assert on.key != off.key and on.path != off.path
    # the student's `augment` does not touch the teacher
    again = session.train_teacher(_cfg(augment=True, method="scratch"), tiny_data,
                                      verbose=False)  # fmt: skip
    assert again.key == on.key and seen == [True, False]


def _spy_batches(monkeypatch, cls):
    batches = []
    real = cls.loss_terms

    def spy(self, out, batch):
        batches.append({k: v.detach().clone() for k, v in batch.items()
                        if isinstance(v, torch.Tensor)})
        return real(self, out, batch)

    monkeypatch.setattr(cls, "loss_terms", spy)
    return batches


def test_online_teacher_logits_are_the_teachers_on_the_augmented_batch(tiny_data, monkeypatch):
    teacher = session.train_teacher(_cfg(), tiny_data, verbose=False)
    batches = _spy_batches(monkeypatch, KD)
    cfg = _cfg(method="kd", teacher_signal="online", augment=True)
    run = session.train_student(cfg, tiny_data, teacher, verbose=False)
    assert run.history and 0 <= run.history[-1]["agreement"] <= 1
    assert len(batches) == 3  # 96 images, batches of 32, one epoch
    for b in batches:
        with torch.no_grad():
            expected = teacher.model.eval()(b["x"])
        torch.testing.assert_close(b["teacher_logits"], expected)
        assert not torch.equal(b["x"], tiny_data.train.x[b["index"]])  # it was augmented
    # the cached student is another run
    cached = session.train_student(_cfg(method="kd"), tiny_data, teacher, verbose=False)
    assert cached.key != run.key


def test_online_e2kd_gets_maps_and_target_classes_of_the_augmented_batch(tiny_data, monkeypatch):
    from xdx_lib.distill.e2kd import E2KD
    from xdx_lib.explain import explain

    teacher = session.train_teacher(_cfg(), tiny_data, verbose=False)
    (maps_signal,) = [s for s in create_method(_cfg(method="e2kd")).signals() if s.kind == "maps"]
    batches = _spy_batches(monkeypatch, E2KD)
    cfg = _cfg(method="e2kd", teacher_signal="online", augment=True)
    session.train_student(cfg, tiny_data, teacher, verbose=False)
    b = batches[0]
    assert torch.equal(b["target_class"], b["teacher_logits"].argmax(1))
    maps = explain(teacher.model, b["x"], maps_signal.explainer, target=b["target_class"],
                   **maps_signal.settings)  # fmt: skip
    assert maps_signal.settings == {"normalize": False}  # e2KD matches the raw Grad-CAM
    torch.testing.assert_close(b["teacher_maps"], maps)


@pytest.mark.parametrize("schedule", ["staged", "joint"])
def test_online_xdistill_reads_maps_per_batch_only_when_its_cae_learns(tiny_data, monkeypatch,
                                                                      schedule):  # fmt: skip
    from xdx_lib.distill.xdistill import XDistill

    teacher = session.train_teacher(_cfg(), tiny_data, verbose=False)
    batches = _spy_batches(monkeypatch, XDistill)
    cfg = _cfg(method="xdistill", teacher_signal="online", augment=True, schedule=schedule)
    run = session.train_student(cfg, tiny_data, teacher, verbose=False)
    assert "cae_pearson" in run.history[-1]
    assert all(("teacher_maps" in b) == (schedule == "joint") for b in batches)


def test_no_item_in_a_step_and_the_sums_are_the_per_step_means(shapes, monkeypatch):
    train, test = shapes
    method = create_method(RunConfig(method="scratch", student="student_tiny"))
    losses, items_at_step = [], []
    real_loss_terms, real_item = type(method).loss_terms, torch.Tensor.item
    count = [0]

    def counting_item(self):  # .item() from our code: the optimiser's own are on the CPU
        caller = sys._getframe(1).f_code.co_filename
        if not caller.startswith(TORCH_DIR):
            count[0] += 1
        return real_item(self)

    def spy(self, out, batch):
        terms = real_loss_terms(self, out, batch)
        losses.append((terms["ce"].detach().clone(), len(batch["y"])))
        return terms

    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    monkeypatch.setattr(type(method), "loss_terms", spy)
    torch.manual_seed(0)
    hist = fit(create_model("student_tiny", 1, 4), method, train, test,
               Schedule(epochs=1, batch_size=32),
               reporting=Reporting(verbose=False,
                                   callback=lambda epoch, step: items_at_step.append(count[0])))
    assert len(items_at_step) == 8 and len(set(items_at_step)) == 1  # no .item() per step
    expected = sum(float(v) * k for v, k in losses) / len(train)
    assert hist[0]["train_loss"] == expected and hist[0]["ce"] == expected


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def test_provenance_records_only_the_projects_own_commit(tmp_path, monkeypatch):
    outer = tmp_path / "other_repo"
    (outer / "vendored" / "xdx_lib" / "experiments").mkdir(parents=True)
    _git(outer, "init", "-q")
    _git(outer, "commit", "-q", "--allow-empty", "-m", "x")
    monkeypatch.setattr(runner, "__file__", str(outer / "vendored" / "xdx_lib" / "experiments"
                                              / "runner.py"))
    assert runner.provenance("cpu")["git_commit"] == "unknown"  # not the outer repo's commit
    monkeypatch.setattr(runner, "__file__", str(outer / "xdx_lib" / "experiments" / "runner.py"))
    assert runner.provenance("cpu")["git_commit"] == _git(outer, "rev-parse", "HEAD")


def test_provenance_reads_the_version_from_the_source_when_not_installed(monkeypatch):
    import importlib.metadata as md

    real = md.version

    def version(name):
        if name == "xdx":
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(md, "version", version)
    assert runner.provenance("cpu")["versions"]["xdx"] == xdx_lib.__version__
