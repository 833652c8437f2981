"""XDistillation the method: the objective's terms, the gradient routings, the schedules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fused import fused_student

from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.distill.cae_pretraining import pretrain_cae
from xdx_lib.distill.explanation_losses import explanation_loss
from xdx_lib.distill.kd import kd_loss
from xdx_lib.distill.method import create_method
from xdx_lib.experiments.session import train_student, train_teacher
from xdx_lib.models.fusion import FUSIONS


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
    model = fused_student("channel", detach=False).train()
    batch = _batch()
    out = method.forward(model, batch)
    terms = method.loss_terms(out, batch)
    assert set(terms) == {"ce", "kd", "exp"}
    logits, m = out["logits"], out["map"]
    torch.testing.assert_close(terms["ce"], 0.3 * F.cross_entropy(logits, batch["y"]))
    torch.testing.assert_close(
        terms["kd"], 0.7 * kd_loss(logits, batch["teacher_logits"], 3.0)
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
    model = fused_student(fusion, detach=True, output=output).train()
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
    model = fused_student(fusion, detach=False).train()
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
    assert explanation_loss(a, b, "pearson").item() == pytest.approx(0.4, abs=1e-6)
    assert explanation_loss(a, 3 * a + 2, "pearson").item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("changes", [{"beta": 0.0, "schedule": "joint"}, {"schedule": "staged"}])
def test_no_explanation_term_when_beta_is_zero_or_the_cae_is_frozen(changes):
    method = create_method(RunConfig(method="xdistill", **changes))
    model = fused_student("channel", freeze=method.frozen)
    batch = _batch()
    assert set(method.loss_terms(method.forward(model, batch), batch)) == {"ce", "kd"}


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


def test_what_a_method_attached_is_an_instance_field_never_a_class_attribute():
    from xdx_lib.distill.method import Method
    from xdx_lib.distill.xdistill import KDWithCAE

    kd_cae, kd = create_method(RunConfig(method="kd_cae")), create_method(RunConfig(method="kd"))
    assert kd_cae.attached_key == "" == kd.attached_key
    assert not any("attached_key" in vars(c) for c in (*KDWithCAE.__mro__, Method))
    kd_cae.attached_key = "a CAE"  # as attach records it: the other method is untouched
    assert kd.attached_key == "" and create_method(RunConfig(method="kd_cae")).attached_key == ""
