"""Map interventions: which maps the XDistillation student is shown in place of its CAE's,
and how they are scored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xdx_lib import interventions
from xdx_lib.cae import predict_maps
from xdx_lib.config import RunConfig
from xdx_lib.data import Dataset, make_shapes
from xdx_lib.interventions import INTERVENTIONS, derangement, intervention_maps, map_interventions
from xdx_lib.methods import create_method
from xdx_lib.metrics import accuracy, agreement
from xdx_lib.models import create_model
from xdx_lib.trained import TrainedModel, model_maps, teacher_logits


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


def test_each_intervention_shows_the_map_it_names(fakes, tiny):
    teacher, run = fakes
    maps = intervention_maps(run, teacher, tiny, seed=5)
    assert list(maps) == list(INTERVENTIONS)
    own = predict_maps(run.model.cae, tiny.test.x)
    torch.testing.assert_close(maps["own"], own)
    assert maps["zeroed"].shape == own.shape and not maps["zeroed"].any()
    train = model_maps(teacher, tiny.train.x, "gradcam", split="train")
    for m in maps["teacher mean"]:
        torch.testing.assert_close(m, train.mean(0))
    perm = derangement(len(own), seed=5)
    for i in range(len(own)):  # another image's CAE map, never its own
        assert perm[i] != i
        torch.testing.assert_close(maps["other image"][i], own[perm[i]])
    torch.testing.assert_close(maps["teacher true"], model_maps(teacher, tiny.test.x, "gradcam"))


def test_with_map_target_label_the_teacher_maps_explain_the_labels(fakes, tiny):
    teacher, run = fakes
    run.method = create_method(RunConfig(method="xdistill", student="student_tiny",
                                         cae_width=4, map_target="label"))  # fmt: skip
    maps = intervention_maps(run, teacher, tiny)
    true = model_maps(teacher, tiny.test.x, "gradcam", target=tiny.test.y)
    train = model_maps(teacher, tiny.train.x, "gradcam", split="train", target=tiny.train.y)
    torch.testing.assert_close(maps["teacher true"], true)
    torch.testing.assert_close(maps["teacher mean"][0], train.mean(0))


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
    for name in ("zeroed", "other image", "teacher true"):
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
