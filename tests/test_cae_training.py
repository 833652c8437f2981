"""The CAE trained alone on a teacher's maps: its loop (:func:`fit_cae`), which learns, repeats
itself and refuses misaligned data, and its cache (:func:`pretrain_cae`), keyed by the
training images and the explainer's settings."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from images import LOSS_KINDS, blobs

from xdx_lib.core.config import RunConfig
from xdx_lib.core.layout import CAE_FIELDS
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.distill.cae_pretraining import build_cae, fit_cae, pretrain_cae
from xdx_lib.distill.explanation_losses import explanation_loss
from xdx_lib.experiments.session import train_teacher
from xdx_lib.models.cae import create_cae, predict_maps


@pytest.mark.parametrize("loss", LOSS_KINDS)
def test_fit_cae_learns_a_tiny_task(loss):
    """Target maps = the blob itself: the CAE must learn where the object is (30 steps)."""
    torch.manual_seed(0)
    x = blobs(96, seed=0)
    maps = x.clone()
    g = create_cae("both", width=8)
    before = explanation_loss(predict_maps(g, x), maps, loss).item()
    history = fit_cae(g, x, maps, epochs=5, batch_size=16, lr=2e-2, loss=loss, seed=0)
    assert len(history) == 5 and all(math.isfinite(v) for v in history)
    assert history[-1] < history[0]
    after = explanation_loss(predict_maps(g, x), maps, loss).item()
    assert after < 0.7 * before, (before, after)  # here mse 0.22 -> 0.006, ssim 0.99 -> 0.1


def test_fit_cae_is_reproducible_and_restores_the_mode():
    x = blobs(64)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        g = create_cae("skips", width=4).eval()
        runs.append(fit_cae(g, x, x, epochs=2, batch_size=16, seed=5))
        assert not g.training
    assert runs[0] == runs[1]
    torch.manual_seed(3)
    g = create_cae("skips", width=4)
    assert fit_cae(g, x, x, epochs=2, batch_size=16, seed=6) != runs[0]  # order matters


def test_fit_cae_rejects_misaligned_data_and_unknown_loss():
    g = create_cae("plain", width=4)
    x = torch.rand(8, 1, 28, 28)
    with pytest.raises(ValueError, match="aligned"):
        fit_cae(g, x, torch.rand(7, 1, 28, 28), epochs=1)
    with pytest.raises(ValueError, match="maps are"):
        fit_cae(g, x, torch.rand(8, 1, 14, 14), epochs=1)
    with pytest.raises(ValueError, match="choose one of"):
        fit_cae(g, x, torch.rand(8, 1, 28, 28), epochs=1, loss="l1")


def test_build_cae_follows_the_config():
    cfg = RunConfig(cae_variant="plain", cae_output="grid", cae_width=4, cae_depth=2)
    assert type(build_cae(cfg, 1)).__name__ == "GridCAE"
    assert type(build_cae(dataclasses.replace(cfg, cae_output="full"), 1)).__name__ == "CAE"
    assert {"explainer", "cae_epochs", "seed", "batch_size"} <= set(CAE_FIELDS)


@pytest.fixture(scope="module")
def tiny_data():
    return Dataset("shapes", make_shapes(128, seed=0), make_shapes(32, seed=1),
                   ["a", "b", "c", "d"])  # fmt: skip


def test_pretrained_caes_are_keyed_by_their_training_images_and_settings(tiny_data):
    cfg = RunConfig(dataset="shapes", profile="smoke", method="xdistill", student="student_tiny",
                    teacher="student_tiny", batch_size=32, cae_epochs=1, cae_width=4)  # fmt: skip
    teacher = train_teacher(cfg, tiny_data, verbose=False)
    fewer = Dataset("shapes", tiny_data.train.subset(64, seed=1), tiny_data.test,
                    tiny_data.classes)  # fmt: skip
    a = pretrain_cae(cfg, tiny_data, teacher, verbose=False)
    b = pretrain_cae(cfg, fewer, teacher, verbose=False)
    c = pretrain_cae(dataclasses.replace(cfg, explainer="saliency"), fewer, teacher,
                     verbose=False)  # fmt: skip
    assert len({a.key, b.key, c.key}) == 3
    again = pretrain_cae(cfg, fewer, teacher, verbose=False)
    assert again.key == b.key  # read back from the cache
    assert again.seconds == b.seconds > 0  # with the seconds its training recorded
