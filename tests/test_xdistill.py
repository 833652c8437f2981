"""XDistillation: the fused student (three fusions), the objective's terms, the schedules."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from xdx_lib import losses
from xdx_lib.cae import create_cae
from xdx_lib.config import RunConfig
from xdx_lib.data import Dataset, make_shapes
from xdx_lib.methods import create_method
from xdx_lib.models import count_parameters, create_model
from xdx_lib.session import train_student, train_teacher
from xdx_lib.xdistill import FUSIONS, XDistillStudent, pretrain_cae


def _student(fusion: str, freeze: bool = False, seed: int = 0, detach: bool = True,
             output: str = "full") -> XDistillStudent:  # fmt: skip
    torch.manual_seed(seed)
    cae = create_cae("both", 1, width=4, output=output)
    s_in = 2 if fusion == "channel" else 1
    return XDistillStudent(cae, create_model("student_tiny", s_in, 4), fusion, freeze, detach)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_forward_returns_logits_and_a_map_from_one_pass(fusion):
    model = _student(fusion).eval()
    x = torch.rand(3, 1, 28, 28)
    logits, m = model(x, return_map=True)
    assert logits.shape == (3, 4) and m.shape == (3, 1, 28, 28)
    assert m.min() >= 0 and m.max() <= 1
    torch.testing.assert_close(model(x), logits)  # explainers see a plain classifier
    torch.testing.assert_close(model.cae(x), m)  # the map is the CAE's


def test_unknown_fusion_lists_the_choices():
    with pytest.raises(ValueError, match="channel, gate, feature"):
        XDistillStudent(create_cae("plain", 1, width=4), create_model("student_tiny", 1, 4),
                        "concat")  # fmt: skip


def test_channel_fusion_feeds_the_map_as_an_extra_channel():
    model = _student("channel").eval()
    x = torch.rand(2, 1, 28, 28)
    m = model.cae(x)
    torch.testing.assert_close(model(x), model.student(torch.cat([x, m], 1)))


def test_gate_fusion_brightens_what_the_map_marks():
    model = _student("gate").eval()
    x = torch.rand(2, 1, 28, 28)
    m = model.cae(x)
    torch.testing.assert_close(model(x), model.student(x * (1 + m)))


def test_feature_fusion_uses_the_cae_features_and_needs_the_wrapper():
    model = _student("feature").eval()
    x = torch.rand(2, 1, 28, 28)
    before = model(x)
    with torch.no_grad():  # change only the CAE's encoder: the logits must move
        for p in model.cae.parameters():
            p.add_(0.5 * torch.randn_like(p))
    assert not torch.allclose(model(x), before)
    with pytest.raises(RuntimeError, match="feature fusion needs the CAE's features"):
        model.student(x)


@pytest.mark.parametrize("fusion", ["channel", "gate"])
def test_given_maps_replace_the_cae_map(fusion):
    model = _student(fusion).eval()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(x, maps=model.cae(x)), model(x))  # its own map: as ever
    other = torch.rand(3, 1, 28, 28)
    logits, seen = model(x, return_map=True, maps=other)
    assert seen is other or torch.equal(seen, other)
    fused = torch.cat([x, other], 1) if fusion == "channel" else x * (1 + other)
    torch.testing.assert_close(logits, model.student(fused))
    assert not torch.allclose(logits, model(x))  # another map moves the logits


def test_given_maps_are_refused_by_feature_fusion_and_checked_for_shape():
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match="feature fusion feeds the student the CAE's features"):
        _student("feature")(x, maps=torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"maps \(2, 1, 14, 14\) should be \(2, 1, 28, 28\)"):
        _student("channel")(x, maps=torch.rand(2, 1, 14, 14))


def test_frozen_cae_gets_no_gradient_and_stays_in_eval_mode():
    model = _student("channel", freeze=True).train()
    assert not model.cae.training and model.student.training
    assert all(not p.requires_grad for p in model.cae.parameters())
    logits, m = model(torch.rand(4, 1, 28, 28), return_map=True)
    logits.sum().backward()
    assert all(p.grad is None for p in model.cae.parameters())
    assert any(p.grad is not None for p in model.student.parameters())


def _batch(n=4, k=4):
    torch.manual_seed(1)
    return {
        "x": torch.rand(n, 1, 28, 28),
        "y": torch.randint(0, k, (n,)),
        "teacher_logits": torch.randn(n, k),
        "teacher_maps": torch.rand(n, 1, 28, 28),
    }


def test_objective_terms_by_hand_and_gradient_reaches_the_cae():
    cfg = RunConfig(method="xdistill", alpha=0.7, temperature=3.0, beta=2.0, exp_loss="mse",
                    cae_grad="all", schedule="joint")  # fmt: skip
    method = create_method(cfg)
    model = _student("channel", detach=False).train()
    batch = _batch()
    out = method.forward(model, batch)
    terms = method.loss_terms(out, batch)
    assert set(terms) == {"ce", "kd", "exp"}
    logits, m = out["logits"], out["map"]
    torch.testing.assert_close(terms["ce"], 0.3 * F.cross_entropy(logits, batch["y"]))
    torch.testing.assert_close(
        terms["kd"], 0.7 * losses.kd_loss(logits, batch["teacher_logits"], 3.0)
    )
    torch.testing.assert_close(terms["exp"], 2.0 * F.mse_loss(m, batch["teacher_maps"]))
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in model.cae.parameters())


def _cae_grads(model, loss) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return [p.grad if p.grad is not None else torch.zeros_like(p)
            for p in model.cae.parameters()]  # fmt: skip


@pytest.mark.parametrize("output", ["full", "grid"])
@pytest.mark.parametrize("fusion", FUSIONS)
def test_cae_grad_exp_trains_the_cae_by_the_explanation_loss_alone(fusion, output):
    method = create_method(RunConfig(method="xdistill", cae_grad="exp", fusion=fusion,
                                     schedule="joint"))  # fmt: skip
    model = _student(fusion, detach=True, output=output).train()
    batch = _batch()
    terms = method.loss_terms(method.forward(model, batch), batch)
    task = _cae_grads(model, terms["ce"] + terms["kd"])
    assert all(g.abs().max() == 0 for g in task), "CE/KD reached the CAE"
    explanation = _cae_grads(model, terms["exp"])
    assert any(g.abs().max() > 0 for g in explanation)
    student = [p.grad for p in model.student.parameters()]
    assert all(g is None for g in student)  # L_exp does not train the student either


@pytest.mark.parametrize("fusion", FUSIONS)
def test_cae_grad_all_lets_the_task_loss_reach_the_cae(fusion):
    method = create_method(RunConfig(method="xdistill", cae_grad="all", fusion=fusion,
                                     schedule="joint"))  # fmt: skip
    model = _student(fusion, detach=False).train()
    batch = _batch()
    terms = method.loss_terms(method.forward(model, batch), batch)
    assert any(g.abs().max() > 0 for g in _cae_grads(model, terms["ce"] + terms["kd"]))
    assert any(g.abs().max() > 0 for g in _cae_grads(model, terms["exp"]))


def test_build_model_follows_cae_grad_and_cae_output():
    for grad, output in (("exp", "grid"), ("all", "full")):
        method = create_method(RunConfig(method="xdistill", cae_grad=grad, cae_output=output,
                                         student="student_tiny"))
        model = method.build_model(1, 10)
        assert model.detach == (grad == "exp")
        assert type(model.cae).__name__ == ("GridCAE" if output == "grid" else "CAE")


def test_pearson_loss_by_hand():
    a = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    b = torch.tensor([[[[1.0, 0.0], [3.0, 2.0]]]])
    # centred: a = [-1.5, -0.5, 0.5, 1.5], b = [-0.5, -1.5, 1.5, 0.5]; r = 3 / 5 = 0.6
    assert losses.explanation_loss(a, b, "pearson").item() == pytest.approx(0.4, abs=1e-6)
    assert losses.explanation_loss(a, 3 * a + 2, "pearson").item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("changes", [{"beta": 0.0, "schedule": "joint"}, {"schedule": "staged"}])
def test_no_explanation_term_when_beta_is_zero_or_the_cae_is_frozen(changes):
    method = create_method(RunConfig(method="xdistill", **changes))
    model = _student("channel", freeze=method.frozen)
    batch = _batch()
    assert set(method.loss_terms(method.forward(model, batch), batch)) == {"ce", "kd"}


def test_the_deployed_student_counts_the_cae():
    model = _student("channel")
    assert count_parameters(model) == count_parameters(model.cae) + count_parameters(model.student)


@pytest.fixture(scope="module")
def tiny_data():
    return Dataset("shapes", make_shapes(128, seed=0), make_shapes(32, seed=1),
                   ["a", "b", "c", "d"])  # fmt: skip


def test_staged_starts_from_the_pretrained_cae_and_keeps_it(tiny_data):
    cfg = RunConfig(dataset="shapes", profile="smoke", method="xdistill", schedule="staged",
                    student="student_tiny", teacher="student_small", batch_size=32,
                    cae_epochs=1, cae_width=4)  # fmt: skip
    teacher = train_teacher(cfg, tiny_data, verbose=False)
    pre = pretrain_cae(cfg, tiny_data, teacher, verbose=False).model.state_dict()
    run = train_student(cfg, tiny_data, teacher, verbose=False)
    for name, value in run.model.cae.state_dict().items():
        torch.testing.assert_close(value, pre[name], msg=f"CAE {name} changed in stage 2")
    assert "cae_pearson" in run.history[-1]


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
    assert again.key == b.key and again.seconds == 0.0  # read back from the cache
