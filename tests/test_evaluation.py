"""Evaluation only scores: what each metric reads, and the deployed explanation by hook."""

from __future__ import annotations

import math

import pytest
import torch

from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, Split, make_shapes
from xdx_lib.evaluation.scoring import (
    CLAIM_SIMILARITIES,
    evaluate_model,
    localisation_scores,
    predicted_classes,
)
from xdx_lib.experiments import session as session_module
from xdx_lib.experiments.session import Session
from xdx_lib.metrics.names import CAE, faithfulness_keys, keys_of, metric_key
from xdx_lib.metrics.predictions import accuracy
from xdx_lib.training.trained_model import model_maps


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(64, seed=0), make_shapes(16, seed=1), list("abcd"))


@pytest.fixture
def trained_session(tiny):
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32)  # fmt: skip
    s = Session(cfg, tiny)
    s.student(method="kd"), s.student(method="xdistill")
    return s


def test_evaluation_never_trains(trained_session, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("evaluation trained a model")

    monkeypatch.setattr(session_module, "fit", no_training)
    s = trained_session
    scores = evaluate_model(s.student(method="kd"), s.teacher(), s.data, n_faithful=4)
    assert 0 <= scores["accuracy"] <= 1 and 0 <= scores["agreement"] <= 1
    assert faithfulness_keys(scores) == ["faith/deletion", "faith/insertion",
                                         "faith_teacher/deletion", "faith_teacher/insertion"]
    assert scores["accuracy"] == (predicted_classes(s.student(method="kd"), s.data)
                                  == s.data.test.y).float().mean().item()  # fmt: skip


def test_a_model_without_maps_deploys_its_gradcam(trained_session):
    s = trained_session
    scores = evaluate_model(s.student(method="kd"), s.teacher(), s.data, n_faithful=0)
    assert keys_of(scores, CAE) == []
    for sim in ("pearson", "topk_iou"):
        assert scores[f"deployed/{sim}"] == scores[f"gradcam/{sim}"]


def test_the_deployed_maps_come_from_the_methods_hook(trained_session, monkeypatch):
    s = trained_session
    run = s.student(method="xdistill")
    teacher_maps = model_maps(s.teacher(), s.data.test.x, "gradcam")
    monkeypatch.setattr(run.method, "deployed_maps", lambda model, x: teacher_maps)
    scores = evaluate_model(run, s.teacher(), s.data, n_faithful=0, similarities=CLAIM_SIMILARITIES)
    assert scores["cae/pearson"] == pytest.approx(1.0) == scores["deployed/pearson"]
    assert scores["cae/topk_iou"] == pytest.approx(1.0)
    assert keys_of(scores, CAE) == [metric_key(CAE, k) for k in CLAIM_SIMILARITIES]


def test_a_model_is_scored_on_the_validation_split_with_its_own_labels(tiny):
    # The validation split holds the test images under other labels: every score that reads
    # the images (agreement, maps) is the test split's, the accuracy is the other labels'.
    test = tiny.test
    relabelled = Split(test.x, (test.y + 1) % len(tiny.classes))
    data = Dataset("shapes", tiny.train, test, tiny.classes, val=relabelled)
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32)  # fmt: skip
    s = Session(cfg, data)
    run = s.student(method="xdistill")
    on = {split: evaluate_model(run, s.teacher(), data, n_faithful=0,
                                similarities=CLAIM_SIMILARITIES, split=split)
          for split in ("val", "test")}  # fmt: skip
    logits = run.logits(test.x)
    assert on["val"]["accuracy"] == accuracy(logits, relabelled.y)
    assert on["test"]["accuracy"] == accuracy(logits, test.y)
    assert on["val"]["accuracy"] + on["test"]["accuracy"] <= 1  # no image is right twice
    assert on["val"]["accuracy"] != on["test"]["accuracy"]
    for key in ("agreement", "gradcam/pearson", "cae/pearson", "deployed/pearson"):
        assert on["val"][key] == pytest.approx(on["test"][key]), key
    assert sorted(on["val"]) == sorted(on["test"])


def test_scoring_on_a_missing_validation_split_names_val_size(tiny):
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32)  # fmt: skip
    s = Session(cfg, tiny)
    run = s.student(method="kd")
    with pytest.raises(ValueError, match="no 'val' images.*val_size above 0"):
        evaluate_model(run, s.teacher(), tiny, n_faithful=0, split="val")
    empty = Dataset("shapes", tiny.train, tiny.test, tiny.classes,
                    val=Split(tiny.test.x[:0], tiny.test.y[:0]))  # fmt: skip
    with pytest.raises(ValueError, match="val_size"):
        evaluate_model(run, s.teacher(), empty, n_faithful=0, split="val")
    with pytest.raises(ValueError, match="split='train'"):
        evaluate_model(run, s.teacher(), tiny, n_faithful=0, split="train")


def test_localisation_scores_the_deployed_maps_too(tiny):
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny",
                    student="student_tiny", batch_size=32)  # fmt: skip
    s = Session(cfg, tiny)
    kd = localisation_scores(s.student(method="kd"), tiny)
    xd = localisation_scores(s.student(method="xdistill"), tiny)
    assert "cae/pointing_game" not in kd and "cae/pointing_game" in xd
    assert all(0 <= v <= 1 and not math.isnan(v) for v in xd.values())


def test_timed_keeps_the_fastest_call_and_the_output(monkeypatch):
    from xdx_lib.evaluation import scoring as evaluation

    clock = iter([0.0, 0.5, 1.0, 1.2, 2.0, 2.3])  # calls of 0.5, 0.2 and 0.3 s
    monkeypatch.setattr(evaluation.time, "perf_counter", lambda: next(clock))
    calls = []
    run = evaluation.timed(lambda x: calls.append(len(x)) or x.sum(), torch.ones(4, 1), repeats=3)
    assert calls == [4, 4, 4] and run.output.item() == 4
    assert run.seconds == pytest.approx(0.2) and run.images == 4
    assert run.images_per_second == pytest.approx(20.0)
    assert run.ms_per_image == pytest.approx(50.0)
    with pytest.raises(ValueError, match="repeats=0"):
        evaluation.timed(lambda x: x, torch.ones(1), repeats=0)


def test_latency_runs_without_gradients():
    from xdx_lib.evaluation.scoring import latency_ms

    seen = []
    ms = latency_ms(lambda x: seen.append(torch.is_grad_enabled()), torch.ones(8, 2), repeats=2)
    assert seen == [False, False] and ms > 0
