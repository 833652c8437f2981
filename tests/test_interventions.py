"""Map interventions: which maps the XDistillation student is shown in place of its CAE's,
each matched to the CAE map's per-image mean and spread, and how they are scored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.distill.method import create_method
from xdx_lib.evaluation import interventions
from xdx_lib.evaluation.interventions import (
    INTERVENTIONS,
    derangement,
    intervention_maps,
    map_interventions,
    match_moments,
)
from xdx_lib.metrics.predictions import accuracy, agreement
from xdx_lib.models.cae import predict_maps
from xdx_lib.models.classifiers import create_model
from xdx_lib.training.trained_model import TrainedModel, model_maps, teacher_logits


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(32, seed=0), make_shapes(12, seed=1), list("abcd"))


def _trained(model: nn.Module, method, path) -> TrainedModel:
    """An untrained model posing as a trained one: its weights saved where the caches key
    its maps and logits by the file's hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return TrainedModel(model.eval(), method, path, [], path.parent.name)


@pytest.fixture
def fakes(tmp_path):
    """A teacher and an XDistillation student (channel fusion), random but fixed."""
    torch.manual_seed(0)
    teacher = _trained(create_model("student_tiny", 1, 4),
                       create_method(RunConfig(method="scratch")), tmp_path / "t" / "model.pt")
    method = create_method(RunConfig(method="xdistill", student="student_tiny", cae_width=4))
    student = _trained(method.build_model(1, 4), method, tmp_path / "s" / "model.pt")
    return teacher, student


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_a_derangement_moves_every_index_and_depends_on_its_seed_alone(n):
    perm = derangement(n, seed=3)
    assert sorted(perm.tolist()) == list(range(n))
    assert (perm != torch.arange(n)).all()
    assert torch.equal(perm, derangement(n, seed=3))
    with pytest.raises(ValueError, match="at least two items, got 1"):
        derangement(1)


def _pixels(maps: torch.Tensor) -> torch.Tensor:
    return maps.double().flatten(1)


def test_matching_by_hand():
    ref = torch.tensor([[10.0, 10, 14, 14]]).reshape(1, 1, 2, 2)  # mean 12, sd 2
    two_levels = torch.tensor([[0.0, 0, 2, 2]]).reshape(1, 1, 2, 2)  # mean 1, sd 1
    torch.testing.assert_close(match_moments(two_levels, ref), ref)
    # the offset and a positive scale of the map do not matter; a negative one flips it
    torch.testing.assert_close(match_moments(5 * two_levels + 3, ref), ref)
    flipped = torch.tensor([[14.0, 14, 10, 10]]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(match_moments(-two_levels, ref), flipped)
    ramp = torch.tensor([[0.0, 1, 2, 3]]).reshape(1, 1, 2, 2)  # mean 1.5, sd sqrt(1.25)
    step = 2 / 1.25**0.5
    expected = torch.tensor([12 - 1.5 * step, 12 - 0.5 * step, 12 + 0.5 * step, 12 + 1.5 * step])
    torch.testing.assert_close(match_moments(ramp, ref).flatten(), expected)


def test_a_map_without_spread_becomes_the_reference_mean_and_never_nan():
    ref = torch.tensor([[10.0, 10, 14, 14], [-1.0, 0, 1, 4]]).reshape(2, 1, 2, 2)
    flat = match_moments(torch.full_like(ref, 5.0), ref)
    torch.testing.assert_close(flat, torch.tensor([[12.0] * 4, [1.0] * 4]).reshape(2, 1, 2, 2))
    torch.testing.assert_close(match_moments(torch.zeros_like(ref), ref), flat)
    constant_ref = torch.full((1, 1, 2, 2), 7.0)  # a CAE map without spread gives none
    out = match_moments(torch.tensor([[0.0, 1, 2, 3]]).reshape(1, 1, 2, 2), constant_ref)
    torch.testing.assert_close(out, constant_ref)
    assert not torch.isnan(flat).any() and not torch.isnan(out).any()


def test_matched_maps_take_the_reference_moments_and_keep_their_content():
    gen = torch.Generator().manual_seed(0)
    maps = torch.rand(6, 1, 5, 5, generator=gen).pow(3)  # skewed, like a sparse map
    ref = 4 * torch.randn(6, 1, 5, 5, generator=gen) - 2
    out = match_moments(maps, ref)
    assert out.dtype == torch.float32 and out.shape == maps.shape
    sd, mean = torch.std_mean(_pixels(out), dim=1, correction=0)
    ref_sd, ref_mean = torch.std_mean(_pixels(ref), dim=1, correction=0)
    torch.testing.assert_close(mean, ref_mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(sd, ref_sd, atol=1e-5, rtol=0)
    for m, o in zip(_pixels(maps), _pixels(out)):  # Pearson r 1: the same content
        assert torch.corrcoef(torch.stack([m, o]))[0, 1] == pytest.approx(1, abs=1e-6)
    with pytest.raises(ValueError, match=r"maps \(6, 1, 5, 5\) and reference \(6, 25\)"):
        match_moments(maps, ref.flatten(1))


def test_each_intervention_shows_the_map_it_names(fakes, tiny):
    teacher, run = fakes
    maps = intervention_maps(run, teacher, tiny, seed=5)
    assert list(maps) == list(INTERVENTIONS)
    own = predict_maps(run.model.cae, tiny.test.x)
    torch.testing.assert_close(maps["own"], own, rtol=0, atol=0)  # as deployed, not rescaled
    own_mean = own.flatten(1).mean(1)
    torch.testing.assert_close(maps["flat"], own_mean[:, None, None, None].expand_as(own))
    train = model_maps(teacher, tiny.train.x, "gradcam", split="train")
    mean_map = train.mean(0, keepdim=True).expand_as(own)
    torch.testing.assert_close(maps["teacher mean"], match_moments(mean_map, own))
    perm = derangement(len(own), seed=5)
    assert (perm != torch.arange(len(own))).all()  # another image's CAE map, never its own
    torch.testing.assert_close(maps["other image"], match_moments(own[perm], own))
    true = model_maps(teacher, tiny.test.x, "gradcam")
    torch.testing.assert_close(maps["teacher true"], match_moments(true, own))
    # the control: the teacher's map of the class it ranks second
    second = teacher_logits(teacher, tiny, ("test",))["test"].topk(2, dim=1).indices[:, 1]
    other = model_maps(teacher, tiny.test.x, "gradcam", target=second)
    torch.testing.assert_close(maps["teacher other class"], match_moments(other, own))


def test_other_class_is_the_best_class_but_the_explained_one():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0], [1.0, 1.0, 0.0]])
    assert interventions.other_class(logits, torch.tensor([0, 1, 0])).tolist() == [2, 2, 1]
    # explaining the label, which need not be the top class: the top class is the other one
    assert interventions.other_class(logits, torch.tensor([2, 2, 2])).tolist() == [0, 1, 0]


def test_every_replacement_has_the_cae_maps_moments_per_image(fakes, tiny):
    teacher, run = fakes
    maps = intervention_maps(run, teacher, tiny)
    sd, mean = torch.std_mean(_pixels(maps["own"]), dim=1, correction=0)
    for name in INTERVENTIONS:
        m_sd, m_mean = torch.std_mean(_pixels(maps[name]), dim=1, correction=0)
        torch.testing.assert_close(m_mean, mean, atol=1e-5, rtol=0, msg=name)
        expected_sd = torch.zeros_like(sd) if name == "flat" else sd
        torch.testing.assert_close(m_sd, expected_sd, atol=1e-5, rtol=0, msg=name)
        assert not torch.isnan(maps[name]).any(), name


def test_with_map_target_label_the_teacher_maps_explain_the_labels(fakes, tiny):
    teacher, run = fakes
    run.method = create_method(RunConfig(method="xdistill", student="student_tiny",
                                         cae_width=4, map_target="label"))  # fmt: skip
    maps = intervention_maps(run, teacher, tiny)
    true = model_maps(teacher, tiny.test.x, "gradcam", target=tiny.test.y)
    train = model_maps(teacher, tiny.train.x, "gradcam", split="train", target=tiny.train.y)
    own = maps["own"]
    torch.testing.assert_close(maps["teacher true"], match_moments(true, own))
    logits = teacher_logits(teacher, tiny, ("test",))["test"]
    other = model_maps(teacher, tiny.test.x, "gradcam",
                       target=interventions.other_class(logits, tiny.test.y))
    torch.testing.assert_close(maps["teacher other class"], match_moments(other, own))
    mean_map = train.mean(0, keepdim=True).expand_as(own)
    torch.testing.assert_close(maps["teacher mean"], match_moments(mean_map, own))


def test_the_own_map_scores_as_the_deployed_student(fakes, tiny):
    teacher, run = fakes
    scores = map_interventions(run, teacher, tiny)
    logits = run.logits(tiny.test.x)
    assert scores["own"] == {
        "accuracy": pytest.approx(accuracy(logits, tiny.test.y)),
        "agreement": pytest.approx(agreement(logits, teacher_logits(teacher, tiny)["test"])),
    }


def test_a_student_that_ignores_its_map_scores_alike_under_every_intervention(fakes, tiny):
    teacher, run = fakes
    first = next(m for m in run.model.student.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        first.weight[:, 1] = 0  # the map's channel reaches nothing
    x = tiny.test.x
    logits = {name: interventions.logits_with_maps(run.model, x, m)
              for name, m in intervention_maps(run, teacher, tiny).items()}  # fmt: skip
    for name in INTERVENTIONS:
        torch.testing.assert_close(logits[name], logits["own"], msg=name)
    scores = map_interventions(run, teacher, tiny)
    assert all(s == scores["own"] for s in scores.values())


def test_a_student_that_reads_its_map_gets_other_logits_from_other_maps(fakes, tiny):
    teacher, run = fakes
    x = tiny.test.x
    maps = intervention_maps(run, teacher, tiny)
    own = interventions.logits_with_maps(run.model, x, maps["own"])
    torch.testing.assert_close(own, run.logits(x))
    for name in ("flat", "other image", "teacher true"):
        assert not torch.allclose(interventions.logits_with_maps(run.model, x, maps[name]), own)


def test_interventions_need_a_student_that_sees_a_map(fakes, tiny, tmp_path):
    teacher, _ = fakes
    kd = create_method(RunConfig(method="kd", student="student_tiny"))
    plain = _trained(kd.build_model(1, 4), kd, tmp_path / "kd" / "model.pt")
    with pytest.raises(ValueError, match="got ConvNet"):
        map_interventions(plain, teacher, tiny)
    feature = create_method(RunConfig(method="xdistill", student="student_tiny", cae_width=4,
                                      fusion="feature"))  # fmt: skip
    fused = _trained(feature.build_model(1, 4), feature, tmp_path / "f" / "model.pt")
    with pytest.raises(ValueError, match=r"fusion feature"):
        map_interventions(fused, teacher, tiny)
