"""Tests of the CAE ``g``, its loss (:mod:`xdx_lib.distill.method`) and inference; its stand-alone
training is tested with :mod:`xdx_lib.distill.cae_pretraining` (``test_cae_training.py``)."""

from __future__ import annotations

import math

import pytest
import torch
from images import LOSS_KINDS, blobs

from xdx_lib.distill.explanation_losses import explanation_loss
from xdx_lib.models.cae import CAE, CAE_VARIANTS, cae_parameter_counts, create_cae, predict_maps
from xdx_lib.models.classifiers import count_parameters

# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("variant", list(CAE_VARIANTS))
@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_map_has_input_size_and_range(variant, size, channels):
    torch.manual_seed(0)
    g = create_cae(variant, in_channels=channels, width=8)
    x = torch.rand(3, channels, size, size)
    for mode in (True, False):  # batch statistics and running statistics
        g.train(mode)
        m = g(x)
        assert m.shape == (3, 1, size, size)
        assert torch.isfinite(m).all()
        assert m.min() >= 0 and m.max() <= 1


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("size", [(28, 28), (32, 32), (27, 30)])
@pytest.mark.parametrize("skip_mode", ["add", "concat"])
def test_any_depth_and_size_not_divisible_by_the_stride(depth, size, skip_mode):
    g = create_cae("both", width=4, depth=depth, skip_mode=skip_mode).eval()
    x = torch.rand(2, 1, *size)
    m, z = g.forward_with_features(x)
    assert m.shape == (2, 1, *size)
    # the bottleneck is ceil(H / 2^depth) high: stride-2 convolutions with padding 1
    expect = tuple(math.ceil(s / 2**depth) for s in size)
    assert z.shape == (2, g.bottleneck_channels, *expect)


def test_forward_with_features_matches_forward_and_encode():
    torch.manual_seed(0)
    g = create_cae("both", width=16, depth=2).eval()
    x = torch.rand(5, 1, 28, 28)
    m, z = g.forward_with_features(x)
    assert g.bottleneck_channels == 64 and g.bottleneck_stride == 4
    assert z.shape == (5, g.bottleneck_channels, 7, 7)
    torch.testing.assert_close(m, g(x))
    torch.testing.assert_close(z, g.encode(x))


def test_wrong_input_channels_is_a_clear_error():
    g = create_cae("plain", in_channels=3, width=4)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        g(torch.rand(2, 1, 28, 28))


def test_unknown_variant_and_options_list_the_choices():
    with pytest.raises(ValueError, match="plain, separable, skips, both"):
        create_cae("tiny")
    with pytest.raises(ValueError, match="add, concat"):
        CAE(skip_mode="mul")
    with pytest.raises(ValueError, match="depth"):
        CAE(depth=0)


def test_variant_names_round_trip():
    for name in CAE_VARIANTS:
        assert create_cae(name, width=4).variant == name
    with pytest.raises(TypeError):
        create_cae()  # no default variant: the config names it (cae_variant)


# ----------------------------------------------------------------------------- the switches


@pytest.mark.parametrize("width,depth,channels", [(8, 2, 1), (16, 2, 1), (16, 3, 3), (32, 2, 3)])
def test_separable_has_strictly_fewer_parameters(width, depth, channels):
    counts = cae_parameter_counts(channels, width, depth)
    assert counts["separable"] < counts["plain"]
    assert counts["both"] < counts["skips"]
    # at width 16 separable convolutions save well over half the weights
    if width >= 16:
        assert counts["separable"] < counts["plain"] / 3
    for name, n in counts.items():
        assert n == count_parameters(create_cae(name, channels, width, depth))


def test_skip_modes_cost_what_they_say():
    add = cae_parameter_counts(1, 16, 2)
    cat = cae_parameter_counts(1, 16, 2, skip_mode="concat")
    assert add["skips"] == add["plain"]  # addition is free
    assert cat["skips"] > cat["plain"]  # concatenation widens the decoder's input
    assert cat["plain"] == add["plain"] and cat["separable"] == add["separable"]


@pytest.mark.parametrize("skip_mode", ["add", "concat"])
def test_skips_carry_information_around_the_bottleneck(skip_mode):
    """Zero the bottleneck: only a skip path can still make the map depend on the input."""
    torch.manual_seed(0)
    expected = {"plain": False, "skips": True, "separable": False, "both": True}
    for variant, has_path in expected.items():
        g = create_cae(variant, width=8, skip_mode=skip_mode).eval()
        g.down[-1].register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))
        x = torch.rand(2, 1, 28, 28, requires_grad=True)
        g(x).sum().backward()
        stem_weight = next(g.stem.parameters())
        # without a skip the zeroed bottleneck cuts the input out of the graph: grad is None
        reaches_input = x.grad is not None and x.grad.abs().sum().item() > 0
        reaches_stem = stem_weight.grad is not None and stem_weight.grad.abs().sum().item() > 0
        assert reaches_input == has_path, variant
        assert reaches_stem == has_path, variant


# ----------------------------------------------------------------------------- the loss


@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_loss_is_zero_for_identical_maps_and_positive_otherwise(kind):
    g = torch.Generator().manual_seed(0)
    # binary maps: the minimum of BCE, the target's entropy, is then zero too
    target = (blobs(4) > 0.5).float()
    same = explanation_loss(target.clone(), target, kind)
    assert same.dim() == 0
    assert abs(same.item()) < 1e-5
    other = torch.rand(target.shape, generator=g)
    assert explanation_loss(other, target, kind).item() > 0.05


@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_loss_gradient_flows_and_vanishes_at_the_target(kind):
    g = torch.Generator().manual_seed(1)
    target = blobs(4) * 0.8 + 0.1  # soft maps strictly inside (0, 1)
    pred = torch.rand(target.shape, generator=g).mul(0.8).add(0.1).requires_grad_()
    explanation_loss(pred, target, kind).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    at_target = target.clone().requires_grad_()
    explanation_loss(at_target, target, kind).backward()
    assert at_target.grad.abs().max() < 1e-4  # the loss is minimal at pred = target


def test_loss_known_values():
    half = torch.full((2, 1, 16, 16), 0.5)
    assert explanation_loss(half, torch.zeros_like(half), "mse").item() == pytest.approx(0.25)
    assert explanation_loss(half, torch.ones_like(half), "bce").item() == pytest.approx(
        math.log(2), rel=1e-6
    )
    # SSIM of an image with itself is 1; of an image and its negative it is below 0
    x = blobs(2, size=16)
    assert explanation_loss(x, 1 - x, "ssim").item() > 1.0


def test_loss_works_under_autocast():
    target = blobs(2)
    pred = (blobs(2, seed=1) * 0.9 + 0.05).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = {k: explanation_loss(pred, target, k) for k in LOSS_KINDS}
    for k, v in values.items():
        assert v.dtype == torch.float32, k
        assert v.item() == pytest.approx(explanation_loss(pred, target, k).item(), rel=1e-6)


def test_unknown_loss_kind_lists_the_choices():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="bce, mse, pearson, ssim"):
        explanation_loss(x, x, "l1")
    with pytest.raises(ValueError, match="shape"):
        explanation_loss(x, torch.rand(1, 1, 8, 9))


# ----------------------------------------------------------------------------- inference


def test_predict_maps_batches_in_eval_mode_on_the_cpu():
    torch.manual_seed(0)
    g = create_cae("both", width=4)
    g.train()
    x = torch.rand(10, 1, 28, 28)
    out = predict_maps(g, x, batch_size=3)
    assert g.training  # mode restored
    assert out.shape == (10, 1, 28, 28) and out.device.type == "cpu"
    assert out.dtype == torch.float32 and not out.requires_grad
    g.eval()
    with torch.no_grad():
        torch.testing.assert_close(out, g(x))  # eval mode: batching does not change maps
    assert predict_maps(g, x[:0]).shape == (0, 1, 28, 28)


# ----------------------------------------------------------------------------- grid decoder


@pytest.mark.parametrize("variant", list(CAE_VARIANTS))
def test_grid_cae_stops_at_the_explainer_grid_and_upsamples_bilinearly(variant):
    g = create_cae(variant, 1, width=8, depth=2, output="grid").eval()
    x = torch.rand(3, 1, 28, 28)
    m, z = g.forward_with_features(x)
    assert m.shape == (3, 1, 28, 28) and z.shape == (3, g.bottleneck_channels, 7, 7)
    assert g.variant == variant
    # the map is the sigmoid of the head's 7x7 output upsampled as Grad-CAM is
    logits = torch.nn.functional.interpolate(g.head(z), size=(28, 28), mode="bilinear",
                                             align_corners=False)  # fmt: skip
    torch.testing.assert_close(m, torch.sigmoid(logits))


def test_grid_cae_depth_three_gives_resnet_layer4_grid_on_32x32():
    g = create_cae("both", 3, width=8, depth=3, output="grid")
    assert g.encode(torch.rand(2, 3, 32, 32)).shape[-2:] == (4, 4)


def test_grid_cae_is_smaller_than_the_full_one_and_switches_cut_parameters():
    full = count_parameters(create_cae("plain", 1, width=16, output="full"))
    grid = {v: count_parameters(create_cae(v, 1, width=16, output="grid")) for v in CAE_VARIANTS}
    assert grid["plain"] < full
    assert grid["separable"] < grid["plain"] and grid["skips"] == grid["plain"]


def test_grid_cae_skips_are_residual_around_the_grid_blocks():
    torch.manual_seed(0)
    with_skips = create_cae("skips", 1, width=4, output="grid").eval()
    without = create_cae("plain", 1, width=4, output="grid").eval()
    without.load_state_dict(with_skips.state_dict())
    x = torch.rand(2, 1, 28, 28)
    h = without.down[1](without.down[0](x))
    expected = with_skips.grid[1](with_skips.grid[0](h) + h) + with_skips.grid[0](h) + h
    torch.testing.assert_close(with_skips.encode(x), expected)


def test_unknown_cae_output_lists_the_choices():
    with pytest.raises(ValueError, match="full, grid"):
        create_cae("both", 1, output="half")
