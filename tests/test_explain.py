"""Explainers: normalisation, a smoke test per registered explainer, Grad-CAM against a
direct computation, analytic answers on a linear model, eval mode, and the maps cache."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xdx_lib.explain import EXPLAINERS, explain, grid_feature_mask, make_explainer, normalize_maps
from xdx_lib.models.classifiers import create_model
from xdx_lib.training import trained_model as trained_mod
from xdx_lib.training.trained_model import cached_maps

#: Small settings that keep the slow explainers fast in tests.
FAST = {
    "integrated_gradients": {"n_steps": 8},
    "gradient_shap": {"n_samples": 4},
    "lime": {"n_samples": 16},
    "kernel_shap": {"n_samples": 16},
    "occlusion": {"window": 7, "stride": 7},
}


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return create_model("student_tiny", in_channels=1, num_classes=10)


@pytest.fixture
def images():
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def minmax(m: torch.Tensor) -> torch.Tensor:
    """Reference per-image min-max; an exactly constant map (a Grad-CAM that ReLU zeroed)
    becomes zeros."""
    flat = m.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    out = (flat - lo) / (hi - lo)
    return torch.where(hi > lo, out, torch.zeros_like(out)).view_as(m)


# ----------------------------------------------------------------------------- normalisation


def test_normalize_positive_absolute_and_signed_conventions():
    raw = torch.tensor([[[[-2.0, 1.0], [0.0, 3.0]]]])
    pos = normalize_maps(raw, positive=True)
    absolute = normalize_maps(raw, absolute=True)
    signed = normalize_maps(raw, positive=False)
    torch.testing.assert_close(pos, torch.tensor([[[[0.0, 1 / 3], [0.0, 1.0]]]]))
    torch.testing.assert_close(absolute, torch.tensor([[[[2 / 3, 1 / 3], [0.0, 1.0]]]]))
    torch.testing.assert_close(signed, torch.tensor([[[[0.0, 0.6], [0.4, 1.0]]]]))


def test_normalize_sums_channels_and_resizes_bilinearly():
    raw = torch.rand(2, 3, 7, 7, generator=torch.Generator().manual_seed(1))
    out = normalize_maps(raw, positive=True, size=(28, 28))
    assert out.shape == (2, 1, 28, 28) and out.dtype == torch.float32
    ref = F.interpolate(raw.sum(1, keepdim=True), size=(28, 28), mode="bilinear")
    torch.testing.assert_close(out, minmax(ref))
    # absolute: |a| summed over channels, not |sum a|
    signed = torch.stack([torch.ones(4, 4), -torch.ones(4, 4)]).unsqueeze(0)
    signed[0, 0, 0, 0] = 3.0
    torch.testing.assert_close(normalize_maps(signed, absolute=True)[0, 0, 0, 0], torch.tensor(1.0))
    assert normalize_maps(signed, positive=True)[0, 0, 0, 0] == 1.0


def test_constant_map_becomes_zeros_not_nan():
    for raw in (torch.zeros(2, 1, 5, 5), torch.full((2, 3, 5, 5), 7.0), -torch.ones(1, 1, 4, 4)):
        out = normalize_maps(raw, positive=True, size=(10, 10))
        assert torch.equal(out, torch.zeros(raw.shape[0], 1, 10, 10))
    # a map whose positive part is constant (all negative) is constant too
    assert normalize_maps(-torch.rand(1, 1, 4, 4) - 0.1, positive=True).eq(0).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_raises(bad, tiny, images):
    raw = torch.rand(1, 1, 4, 4)
    raw[0, 0, 1, 1] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        normalize_maps(raw)
    x = images.clone()
    x[0, 0, 3, 3] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        explain(tiny, x, "saliency")


def test_grid_feature_mask():
    mask = grid_feature_mask(28, 28, 4)
    assert mask.shape == (1, 1, 28, 28)
    assert torch.equal(torch.bincount(mask.flatten()), torch.full((49,), 16))
    assert mask[0, 0, 0, 4].item() == 1 and mask[0, 0, 4, 0].item() == 7
    edge = grid_feature_mask(30, 30, 4)  # 8 x 8 patches, the last row and column 2 px wide
    assert edge.unique().numel() == 64 and (edge == 63).sum().item() == 4


# ----------------------------------------------------------------------------- every explainer


@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_smoke_every_explainer(name, tiny, images):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our wrappers should not trigger Captum's warnings
        maps = explain(tiny, images, name, **FAST.get(name, {}))
    assert maps.shape == (4, 1, 28, 28)
    assert maps.dtype == torch.float32 and maps.device.type == "cpu"
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1
    assert EXPLAINERS.get(name).sign in ("positive", "absolute")


def test_registry_names_and_unknown_settings(tiny):
    assert set(EXPLAINERS.names()) == {
        "gradcam", "saliency", "integrated_gradients", "gradient_shap",
        "deeplift", "occlusion", "lime", "kernel_shap",
    }  # fmt: skip
    with pytest.raises(ValueError, match="unknown explainer"):
        make_explainer("gradcamm", tiny)
    with pytest.raises(ValueError, match="n_step"):
        make_explainer("integrated_gradients", tiny, n_step=4)
    assert make_explainer("integrated_gradients", tiny).settings["n_steps"] == 32


def test_stochastic_explainers_are_seeded(tiny, images):
    state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    a = explain(tiny, images, "gradient_shap", n_samples=4)
    b = explain(tiny, images, "gradient_shap", n_samples=4)
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNGs are left alone
    assert (np.random.get_state()[1] == np_state).all()
    c = explain(tiny, images, "gradient_shap", n_samples=4, seed=1)
    assert not torch.equal(a, c)


# ----------------------------------------------------------------------------- Grad-CAM


def direct_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """Grad-CAM by hand: hooks for the activations, autograd for their gradient.

    ``w_k = mean_ij d y_c / d A_k``, ``cam = relu(sum_k w_k A_k)``, bilinear upsampling,
    min-max per image.
    """
    acts = []
    handle = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        logits = model(x)
    finally:
        handle.remove()
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), acts[0])
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * acts[0]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return minmax(cam.detach())


def test_gradcam_matches_direct_computation(images):
    torch.manual_seed(3)
    model = create_model("student_small").eval()
    target = model(images).argmax(1)
    expected = direct_gradcam(model, model.gradcam_layer, images, target)
    torch.testing.assert_close(explain(model, images, "gradcam"), expected, atol=1e-5, rtol=0)
    other = torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(
        explain(model, images, "gradcam", target=other),
        direct_gradcam(model, model.gradcam_layer, images, other),
        atol=1e-5,
        rtol=0,
    )
    torch.testing.assert_close(
        explain(model, images, "gradcam", layer="features.1"),
        direct_gradcam(model, model.features[1], images, target),
        atol=1e-5,
        rtol=0,
    )
    assert not model._forward_hooks and not model.gradcam_layer._forward_hooks


def test_explain_uses_eval_mode_and_restores_modes(tiny, images):
    tiny.train()
    frozen = tiny.features[0][0][1]
    frozen.eval()  # a deliberately frozen BatchNorm stays frozen afterwards
    bn = tiny.features[1][0][1]
    stats = bn.running_mean.clone()
    maps = explain(tiny, images, "gradcam", batch_size=3)
    assert torch.equal(bn.running_mean, stats)  # no BatchNorm update during attribution
    assert tiny.training and bn.training and not frozen.training
    expected = explain(tiny.eval(), images, "gradcam")
    torch.testing.assert_close(maps, expected)  # batches of 3 and 1 agree with one of 4


def test_predicted_target_is_the_default(tiny, images):
    pred = tiny.eval()(images).argmax(1)
    torch.testing.assert_close(
        explain(tiny, images, "saliency"), explain(tiny, images, "saliency", pred)
    )
    assert explain(tiny, images, "saliency", progress=True, batch_size=2).shape == (4, 1, 28, 28)


# ----------------------------------------------------------------------------- linear model


class Linear(nn.Module):
    """``logits = W x`` on flattened 1x4x4 images: every gradient method has a known answer."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 3, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(3, 16, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_gradient_methods_on_a_linear_model():
    model = Linear()
    x = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(1)) + 0.1
    target = torch.tensor([0, 2])
    w = model.fc.weight.detach()[target].view(2, 1, 4, 4)
    # Saliency: |d y_c / dx| = |W_c|; IG and DeepLIFT from a zero baseline: x * W_c
    torch.testing.assert_close(explain(model, x, "saliency", target=target), minmax(w.abs()))
    expected = minmax((x * w).abs())
    ig = explain(model, x, "integrated_gradients", target=target, n_steps=4)
    torch.testing.assert_close(ig, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(explain(model, x, "deeplift", target=target), expected)


def test_occlusion_on_a_linear_model():
    model = Linear()
    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(2)) + 0.1
    # one-pixel windows: the drop of y_c when pixel j is zeroed is x_j W_cj; positive part
    got = explain(model, x, "occlusion", target=1, window=1, stride=1)
    expected = minmax(torch.relu(x * model.fc.weight.detach()[1].view(1, 1, 4, 4)))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- cache


@pytest.fixture
def counted(monkeypatch):
    """Count the calls cached_maps makes to explain."""
    calls = []
    real = trained_mod.explain

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(trained_mod, "explain", counting)
    return calls


def cache_args(tmp_path, **overrides):
    args = dict(checkpoint_hash="abc123", split="test", subset="n4", cache_dir=tmp_path)
    return {**args, **overrides}


def test_cache_computes_once(tiny, images, tmp_path, counted):
    first = cached_maps(tiny, images, "gradcam", {}, **cache_args(tmp_path))
    second = cached_maps(tiny, images, "gradcam", {}, **cache_args(tmp_path))
    assert len(counted) == 1
    assert torch.equal(first, second)
    assert len(list(tmp_path.glob("gradcam-test-*.pt"))) == 1
    # anything in the key makes a new entry
    cached_maps(tiny, images, "gradcam", {"layer": "features.1"}, **cache_args(tmp_path))
    cached_maps(tiny, images, "gradcam", {}, **cache_args(tmp_path, checkpoint_hash="other"))
    cached_maps(tiny, images, "gradcam", {}, **cache_args(tmp_path, target=torch.zeros(4)))
    cached_maps(tiny, images[:3], "gradcam", {}, **cache_args(tmp_path))
    cached_maps(tiny, images.flip(-1), "gradcam", {}, **cache_args(tmp_path))
    assert len(counted) == 6
    # default settings spelt out give the same key
    cached_maps(tiny, images, "gradcam", {"layer": None}, **cache_args(tmp_path))
    assert len(counted) == 6


def _only_file(tmp_path):
    (path,) = tmp_path.glob("*.pt")
    return path


def test_cache_recomputes_a_mismatched_key_or_shape(tiny, images, tmp_path, counted):
    good = cached_maps(tiny, images, "saliency", {}, **cache_args(tmp_path))
    path = _only_file(tmp_path)
    blob = torch.load(path, weights_only=True)
    torch.save({"key": {**blob["key"], "split": "train"}, "maps": blob["maps"]}, path)
    with pytest.warns(UserWarning, match="stored key differs"):
        again = cached_maps(tiny, images, "saliency", {}, **cache_args(tmp_path))
    assert len(counted) == 2 and torch.equal(again, good)
    torch.save({"key": blob["key"], "maps": blob["maps"][:2]}, path)
    with pytest.warns(UserWarning, match="shape"):
        cached_maps(tiny, images, "saliency", {}, **cache_args(tmp_path))
    assert len(counted) == 3
    cached_maps(tiny, images, "saliency", {}, **cache_args(tmp_path))  # repaired on disk
    assert len(counted) == 3


def test_cache_recomputes_a_corrupt_file(tiny, images, tmp_path, counted):
    good = cached_maps(tiny, images, "gradcam", {}, **cache_args(tmp_path))
    path = _only_file(tmp_path)
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="corrupt"):
        again = cached_maps(tiny, images, "gradcam", {}, **cache_args(tmp_path))
    assert len(counted) == 2 and torch.equal(again, good)
    assert torch.load(path, weights_only=True)["maps"].shape == (4, 1, 28, 28)


class ReusedRelu(nn.Module):
    """One ReLU module called twice per forward, as in torchvision's ResNet blocks."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        h = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.fc(h.mean(dim=(2, 3)))


def test_unsupported_models_fail_clearly():
    x = torch.rand(2, 1, 6, 6)
    with pytest.raises(ValueError, match="integrated_gradients or gradient_shap"):
        explain(ReusedRelu(), x, "deeplift")
    with pytest.raises(ValueError, match="gradcam_layer"):
        explain(Linear(), torch.rand(2, 1, 4, 4), "gradcam")
    assert explain(ReusedRelu(), x, "gradcam", layer="conv2").shape == (2, 1, 6, 6)


def test_cache_key_holds_the_batch_size_only_for_stochastic_explainers(
    tiny, images, tmp_path, counted
):
    for bs in (2, 4):
        cached_maps(tiny, images, "gradcam", {}, batch_size=bs, **cache_args(tmp_path))
    assert len(counted) == 1
    for bs in (2, 4):
        settings = {"n_samples": 2}
        cached_maps(tiny, images, "gradient_shap", settings, batch_size=bs, **cache_args(tmp_path))
    assert len(counted) == 3
