"""The fused XDistillation student: three fusions, maps given in place of the CAE's, a
frozen CAE."""

from __future__ import annotations

import pytest
import torch
from fused import fused_student

from xdx_lib.models.cae import create_cae
from xdx_lib.models.classifiers import count_parameters, create_model
from xdx_lib.models.fusion import FUSIONS, XDistillStudent


@pytest.mark.parametrize("fusion", FUSIONS)
def test_forward_returns_logits_and_a_map_from_one_pass(fusion):
    model = fused_student(fusion).eval()
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
    model = fused_student("channel").eval()
    x = torch.rand(2, 1, 28, 28)
    m = model.cae(x)
    torch.testing.assert_close(model(x), model.student(torch.cat([x, m], 1)))


def test_gate_fusion_brightens_what_the_map_marks():
    model = fused_student("gate").eval()
    x = torch.rand(2, 1, 28, 28)
    m = model.cae(x)
    torch.testing.assert_close(model(x), model.student(x * (1 + m)))


def test_feature_fusion_uses_the_cae_features_and_needs_the_wrapper():
    model = fused_student("feature").eval()
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
    model = fused_student(fusion).eval()
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
        fused_student("feature")(x, maps=torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"maps \(2, 1, 14, 14\) should be \(2, 1, 28, 28\)"):
        fused_student("channel")(x, maps=torch.rand(2, 1, 14, 14))


def test_frozen_cae_gets_no_gradient_and_stays_in_eval_mode():
    model = fused_student("channel", freeze=True).train()
    assert not model.cae.training and model.student.training
    assert all(not p.requires_grad for p in model.cae.parameters())
    logits, m = model(torch.rand(4, 1, 28, 28), return_map=True)
    logits.sum().backward()
    assert all(p.grad is None for p in model.cae.parameters())
    assert any(p.grad is not None for p in model.student.parameters())


def test_the_deployed_student_counts_the_cae():
    model = fused_student("channel")
    assert count_parameters(model) == count_parameters(model.cae) + count_parameters(model.student)
