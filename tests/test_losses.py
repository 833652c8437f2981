"""Loss terms: KD by hand, attention transfer, Grad-CAM in the graph against Captum's."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam

from xdx_lib.core.config import RunConfig
from xdx_lib.distill.at import at_loss
from xdx_lib.distill.e2kd import e2kd_loss, gradcam_in_graph
from xdx_lib.distill.kd import kd_loss, soft_targets
from xdx_lib.distill.method import create_method
from xdx_lib.distill.signals import teacher_attention
from xdx_lib.models.classifiers import create_model
from xdx_lib.models.features import attention_map, capture_outputs


def test_kd_loss_matches_a_hand_computation():
    s = torch.tensor([[2.0, 0.0, -1.0]])
    t = torch.tensor([[0.5, 1.5, 0.0]])
    tau = 2.0
    p_t = [math.exp(v / tau) for v in t[0].tolist()]
    p_t = [v / sum(p_t) for v in p_t]
    p_s = [math.exp(v / tau) for v in s[0].tolist()]
    p_s = [v / sum(p_s) for v in p_s]
    kl = sum(a * math.log(a / b) for a, b in zip(p_t, p_s))
    assert kd_loss(s, t, tau).item() == pytest.approx(tau**2 * kl, rel=1e-5)


def test_kd_loss_is_zero_only_at_the_teacher_and_pulls_towards_it():
    t = torch.randn(8, 10)
    assert kd_loss(t.clone(), t, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(8, 10, requires_grad=True)
    loss = kd_loss(s, t, 4.0)
    assert loss.item() > 0
    loss.backward()
    with torch.no_grad():
        closer = s - 0.5 * s.grad
    assert kd_loss(closer, t, 4.0) < loss


def test_soft_targets_flatten_with_temperature():
    logits = torch.tensor([[4.0, 0.0, 0.0]])
    hot, warm = soft_targets(logits, 1.0), soft_targets(logits, 8.0)
    assert torch.allclose(hot.sum(), torch.tensor(1.0)) and hot[0, 0] > warm[0, 0] > 1 / 3


def test_capture_outputs_records_and_removes_hooks():
    model = create_model("student_tiny").eval()
    with capture_outputs(model.stages) as feats:
        model(torch.rand(2, 1, 28, 28))
    assert [f.shape[-1] for f in feats] == [28, 14, 7]
    with capture_outputs(model.stages) as again:
        pass
    model(torch.rand(2, 1, 28, 28))
    assert again == [None] * len(model.stages)  # the hooks are gone after the block


def test_attention_map_is_unit_norm_and_at_loss_zero_on_itself():
    a = torch.rand(3, 16, 7, 7)
    q = attention_map(a)
    assert q.shape == (3, 49) and torch.allclose(q.norm(dim=1), torch.ones(3))
    assert at_loss([a], [a]).item() == pytest.approx(0.0, abs=1e-7)
    # different channel counts and resolutions are fine: AT compares spatial maps
    other = torch.rand(3, 64, 14, 14)
    assert at_loss([other], [a]).item() > 0


def test_gradcam_in_graph_equals_captum_and_is_differentiable():
    torch.manual_seed(0)
    model = create_model("student_small").eval()
    x = torch.rand(4, 1, 28, 28)
    target = torch.tensor([0, 3, 5, 9])
    with capture_outputs([model.gradcam_layer]) as acts:
        logits = model(x)
    cam = gradcam_in_graph(logits, acts[0], target, (28, 28))
    ref = LayerGradCam(model, model.gradcam_layer).attribute(x, target=target)
    ref = F.interpolate(F.relu(ref), size=(28, 28), mode="bilinear", align_corners=False)
    assert cam.shape == (4, 1, 28, 28)
    assert torch.allclose(cam, ref, atol=1e-5 * ref.abs().max().item() + 1e-7)
    loss = e2kd_loss(cam, torch.rand(4, 1, 28, 28))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_e2kd_loss_range_and_zero_maps():
    m = torch.rand(5, 1, 8, 8)
    assert e2kd_loss(m, m).item() == pytest.approx(0.0, abs=1e-6)
    assert e2kd_loss(3 * m, m).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    zero = e2kd_loss(torch.zeros_like(m), m)
    assert torch.isfinite(zero) and zero.item() == pytest.approx(1.0)


def test_cached_teacher_attention_gives_the_on_the_fly_at_loss():

    torch.manual_seed(0)
    teacher = create_model("student_small", 1, 4).eval()
    student = create_model("student_tiny", 1, 4)
    method = create_method(RunConfig(method="at", student="student_tiny"))
    x = torch.rand(6, 1, 28, 28)
    batch = {"x": x, "y": torch.tensor([0, 1, 2, 3, 0, 1]), "teacher_logits": torch.randn(6, 4)}
    with torch.no_grad(), capture_outputs(teacher.stages) as feats:
        teacher(x)
    batch["teacher_attention"] = list(feats)  # the teacher's whole activations
    on_the_fly = method.loss_terms(method.forward(student, batch), batch)["at"]
    cached = teacher_attention(teacher, x, batch_size=4)  # two batches
    assert [tuple(c.shape) for c in cached] == [(6, 1, 28, 28), (6, 1, 14, 14), (6, 1, 7, 7)]
    batch["teacher_attention"] = cached
    from_cache = method.loss_terms(method.forward(student, batch), batch)["at"]
    assert on_the_fly.item() > 0
    torch.testing.assert_close(from_cache, on_the_fly, rtol=1e-5, atol=1e-7)
