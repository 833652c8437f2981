"""Models: the registry, shapes of every model, the layers other modules use, sizes."""

from __future__ import annotations

import pytest
import torch

from xdx_lib.models.classifiers import MODELS, count_parameters, create_model


@pytest.mark.parametrize("name", ["cnn_teacher", "student_tiny", "student_small", "student_medium"])
@pytest.mark.parametrize("in_channels", [1, 2, 3])
def test_convnets_map_images_to_logits(name, in_channels):
    model = create_model(name, in_channels=in_channels, num_classes=7).eval()
    out = model(torch.rand(3, in_channels, 28, 28))
    assert out.shape == (3, 7) and torch.isfinite(out).all()


def test_resnet_teacher_on_cifar_sized_images():
    model = create_model("resnet18_cifar", in_channels=3, num_classes=10).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert 10_000_000 < count_parameters(model) < 12_000_000


def test_sizes_teacher_much_larger_than_students():
    sizes = {n: count_parameters(create_model(n)) for n in MODELS}
    assert 1_000 <= sizes["student_tiny"] < sizes["student_small"] < sizes["student_medium"]
    assert sizes["student_small"] < 100_000
    assert sizes["cnn_teacher"] > 5 * sizes["student_small"]


def test_count_trainable_only():
    model = create_model("student_tiny")
    total = count_parameters(model)
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - frozen.numel()


@pytest.mark.parametrize("name", ["cnn_teacher", "student_small", "resnet18_cifar"])
def test_named_layers_are_inside_the_model(name):
    model = create_model(name, in_channels=3)
    modules = set(model.modules())
    assert model.gradcam_layer in modules and model.fusion_layer in modules
    assert len(model.stages) >= 2 and all(s in modules for s in model.stages)
    seen = []
    hooks = [model.gradcam_layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))]
    model.eval()(torch.rand(1, 3, 32, 32))
    hooks[0].remove()
    assert len(seen) == 1 and len(seen[0]) == 4  # a spatial feature map


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="student_small"):
        create_model("vit_huge")
