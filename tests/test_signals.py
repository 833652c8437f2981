"""Teacher signals: what a method declares, and the two providers (cached, online) that give
the same numbers on the same images."""

from __future__ import annotations

import pytest
import torch

from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.distill.signals import OnlineSignals, Signal, cached_signals, training_extras
from xdx_lib.experiments import session

SIGNALS = [Signal("logits"), Signal("maps", "gradcam"), Signal("target_class")]


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(64, seed=0), make_shapes(16, seed=1), list("abcd"))


@pytest.fixture
def teacher(tiny):
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny", batch_size=32)
    return session.train_teacher(cfg, tiny, verbose=False)


def _batch(tiny, n=16):
    return {"x": tiny.train.x[:n].contiguous(memory_format=torch.channels_last),
            "y": tiny.train.y[:n]}  # fmt: skip


@pytest.mark.parametrize("signal", [Signal("logits"), Signal("maps", "gradcam"),
                                    Signal("maps", "gradcam", raw=True),
                                    Signal("maps", "saliency", target="label"),
                                    Signal("target_class"), Signal("target_class", target="label"),
                                    Signal("attention")], ids=str)  # fmt: skip
def test_cached_and_online_signals_agree_on_unaugmented_images(tiny, teacher, signal):
    cached = cached_signals(teacher, tiny, [signal])[signal.key]
    online = OnlineSignals(teacher, [signal], "cpu", amp="off")(_batch(tiny))[signal.key]
    if signal.kind == "attention":
        assert len(cached) == len(online) == len(teacher.model.stages)
        for c, o in zip(cached, online):
            torch.testing.assert_close(c[:16], o, rtol=1e-5, atol=1e-6)
    else:
        torch.testing.assert_close(cached[:16].float(), online.float(), rtol=1e-5, atol=1e-5)


def test_label_targets_are_the_labels_and_pred_targets_the_teachers_argmax(tiny, teacher):
    got = cached_signals(teacher, tiny, [Signal("target_class", target="label")])
    assert torch.equal(got["target_class"], tiny.train.y)
    pred = cached_signals(teacher, tiny, [Signal("target_class")])["target_class"]
    assert torch.equal(pred, teacher.logits(tiny.train.x).argmax(1))


def test_nothing_is_computed_for_a_method_that_asks_for_nothing(tiny, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("computed a signal nobody asked for")

    monkeypatch.setattr("xdx_lib.distill.signals.teacher_logits", boom)
    for source in ("cached", "online"):
        extras = training_extras(source, object(), tiny, [], "cpu")
        assert extras.train == {} and extras.per_batch is None


def test_provide_routes_to_one_provider(tiny, teacher):
    cached = training_extras("cached", teacher, tiny, SIGNALS, "cpu")
    assert set(cached.train) == {"teacher_logits", "teacher_maps", "target_class"}
    assert cached.per_batch is None
    online = training_extras("online", teacher, tiny, SIGNALS, "cpu")
    assert online.train == {} and isinstance(online.per_batch, OnlineSignals)
    with pytest.raises(ValueError, match="choose one of: cached, online"):
        training_extras("streamed", teacher, tiny, SIGNALS, "cpu")


def test_bad_signals_are_refused():
    with pytest.raises(ValueError, match="unknown signal 'features'"):
        Signal("features")
    with pytest.raises(ValueError, match="choose one of: pred, label"):
        Signal("maps", target="both")
    with pytest.raises(ValueError, match="share a batch key"):
        cached_signals(object(), None, [Signal("maps"), Signal("maps", raw=True)])
