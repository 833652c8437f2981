"""The convolutional autoencoder (CAE) ``g`` that learns the teacher's explanations.

XDistillation's *explainable-features fusion* (Alharbi, Vu & Thai 2021) approximates a
post-hoc explainer of the teacher with a CAE, so that the deployed student needs neither
the teacher nor the explainer: ``g(x)`` maps an image ``[N, C, H, W]`` in [0, 1] to an
explanation map ``[N, 1, H, W]`` in [0, 1] (sigmoid output) of the input's exact size, in
one forward pass.

**The paper's words vs our reading.** The paper says only that the CAE is "modified to
reduce the number of parameters and information loss". We read this as the two standard
ways of doing so, each a switch of :class:`CAE` so that the book can ablate them (T3):

* ``separable``: depthwise-separable convolutions (a depthwise 3x3 convolution followed by
  a pointwise 1x1 one; Chollet 2017, Xception; Howard et al. 2017, MobileNets), which cut
  a 3x3 convolution's weights from ``9 Cin Cout`` to ``9 Cin + Cin Cout``;
* ``skips``: encoder-to-decoder skip connections (Ronneberger et al. 2015, U-Net), which
  hand each decoder stage the encoder's features of the same resolution, so that detail
  lost in the bottleneck can be recovered.

``CAE_VARIANTS`` names the four combinations; ``"both"`` is the paper's modified CAE and
the one XDistillation deploys. The same module holds the CAE's loss
(:func:`explanation_loss`), its stand-alone training on cached teacher maps (the
``staged`` schedule's first stage, :func:`train_cae`) and batched inference
(:func:`predict_maps`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from .models import count_parameters
from .registry import Registry
from .train import epoch_batches

__all__ = [
    "CAE",
    "CAE_VARIANTS",
    "EXPLANATION_LOSSES",
    "cae_parameter_counts",
    "create_cae",
    "explanation_loss",
    "predict_maps",
    "train_cae",
]

# ----------------------------------------------------------------------------- blocks


def conv3x3(cin: int, cout: int, stride: int = 1, separable: bool = False, bias: bool = False):
    """A 3x3 convolution (padding 1), plain or depthwise-separable.

    The separable form is a depthwise 3x3 convolution (one filter per input channel,
    ``groups=cin``) followed by a pointwise 1x1 convolution that mixes channels, as in
    Xception: no normalisation or non-linearity between the two. Weights:
    ``9 cin cout`` (plain) vs ``9 cin + cin cout`` (separable).
    """
    if not separable:
        return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
        nn.Conv2d(cin, cout, 1, bias=bias),
    )


def cae_block(cin: int, cout: int, stride: int = 1, separable: bool = False) -> nn.Sequential:
    """3x3 convolution (plain or separable), batch norm and ReLU: one CAE stage."""
    return nn.Sequential(
        conv3x3(cin, cout, stride=stride, separable=separable),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=False),
    )


# ----------------------------------------------------------------------------- the CAE


class CAE(nn.Module):
    """Convolutional autoencoder ``g``: image ``[N, C, H, W]`` -> map ``[N, 1, H, W]``.

    Architecture, with ``w = width`` and ``d = depth``::

        stem   block(C -> w), stride 1                      H x W            -> e_0
        down_i block(w 2^(i-1) -> w 2^i), stride 2, i=1..d  ceil(H / 2^i)    -> e_i
        (e_d is the bottleneck, ``bottleneck_channels = w 2^d``)
        up_i   upsample to e_(i-1)'s size, block(w 2^i -> w 2^(i-1)), i=d..1
               [+ e_(i-1) when ``skips``]
        head   3x3 conv (w -> 1) and sigmoid                H x W

    Each decoder stage upsamples (bilinear by default) to the exact size of the encoder
    stage it mirrors, not by a fixed factor 2, so any input size works, also sizes not
    divisible by ``2^depth`` (28x28 with depth 3: 28 -> 14 -> 7 -> 4 -> 7 -> 14 -> 28),
    and the map always has the input's size.

    **Skips add, by default.** ``skip_mode="add"`` sums the encoder's features into the
    decoder's (as LinkNet, Chaurasia & Culurciello 2017, does for efficiency); ``"concat"``
    concatenates them before the decoder's convolution, as U-Net does. We add because the
    paper's modification is meant to *reduce* parameters: addition costs none, so the
    ``skips`` variant has exactly the parameters of ``plain`` and the ablation measures
    the information path alone, not extra capacity. ``"concat"`` is kept for comparison.

    Args:
        in_channels: image channels (1 for Fashion-MNIST, 3 for CIFAR-10).
        width: channels of the first stage; stage ``i`` has ``width * 2**i``.
        depth: number of stride-2 down blocks (and of up blocks); at least 1. The
            default 2 gives a 7x7 bottleneck for 28x28 images.
        separable: depthwise-separable convolutions everywhere (fewer parameters).
        skips: encoder-to-decoder skip connections (less information loss).
        skip_mode: ``"add"`` (default) or ``"concat"``; ignored without ``skips``.
        upsample: interpolation of the decoder, ``"bilinear"`` (default) or ``"nearest"``.

    Attributes:
        bottleneck_channels: channels of :meth:`encode`'s output, ``width * 2**depth``,
            which XDistillation's ``feature`` fusion maps into the student with a 1x1
            convolution.
        bottleneck_stride: ``2**depth``: the bottleneck is ``ceil(H / 2**depth)`` high.

    Examples::

        >>> g = CAE(in_channels=1, width=16, depth=2, separable=True, skips=True)
        >>> m, z = g.forward_with_features(torch.rand(4, 1, 28, 28))
        >>> tuple(m.shape), tuple(z.shape)
        ((4, 1, 28, 28), (4, 64, 7, 7))
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 16,
        depth: int = 2,
        separable: bool = True,
        skips: bool = True,
        skip_mode: str = "add",
        upsample: str = "bilinear",
    ):
        super().__init__()
        if depth < 1 or width < 1 or in_channels < 1:
            raise ValueError(
                f"CAE needs in_channels, width and depth >= 1, got "
                f"in_channels={in_channels}, width={width}, depth={depth}"
            )
        if skip_mode not in ("add", "concat"):
            raise ValueError(f"unknown skip_mode {skip_mode!r}; choose one of: add, concat")
        if upsample not in ("bilinear", "nearest"):
            raise ValueError(f"unknown upsample {upsample!r}; choose one of: bilinear, nearest")
        self.in_channels, self.width, self.depth = in_channels, width, depth
        self.separable, self.skips = separable, skips
        self.skip_mode, self.upsample = skip_mode, upsample
        ch = [width * 2**i for i in range(depth + 1)]
        self.bottleneck_channels = ch[-1]
        self.bottleneck_stride = 2**depth

        self.stem = cae_block(in_channels, ch[0], separable=separable)
        self.down = nn.ModuleList(
            cae_block(ch[i - 1], ch[i], stride=2, separable=separable) for i in range(1, depth + 1)
        )
        # self.up[j] undoes self.down[-1 - j]: from ch[i] to ch[i - 1], i = depth .. 1
        concat = skips and skip_mode == "concat"
        self.up = nn.ModuleList(
            cae_block(ch[i] + (ch[i - 1] if concat else 0), ch[i - 1], separable=separable)
            for i in range(depth, 0, -1)
        )
        self.head = conv3x3(ch[0], 1, separable=separable, bias=True)

    def extra_repr(self) -> str:
        return (
            f"variant={self.variant!r}, width={self.width}, depth={self.depth}, "
            f"skip_mode={self.skip_mode!r}, upsample={self.upsample!r}"
        )

    @property
    def variant(self) -> str:
        """The name in :data:`CAE_VARIANTS` of this CAE's two switches."""
        for name, kw in CAE_VARIANTS.items():
            if kw == {"separable": self.separable, "skips": self.skips}:
                return name
        raise AssertionError("unreachable: CAE_VARIANTS covers all four combinations")

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"CAE expects images [N, {self.in_channels}, H, W], got {tuple(x.shape)}"
            )

    def _encode_all(self, x: Tensor) -> list[Tensor]:
        """Features of every encoder stage, ``[e_0, ..., e_depth]`` (``e_depth``: bottleneck)."""
        self._check_input(x)
        feats = [self.stem(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        return feats

    def _decode(self, feats: list[Tensor]) -> Tensor:
        h = feats[-1]
        for j, block in enumerate(self.up):
            skip = feats[-2 - j]  # the encoder stage of the resolution we go up to
            kw = {} if self.upsample == "nearest" else {"align_corners": False}
            h = F.interpolate(h, size=skip.shape[-2:], mode=self.upsample, **kw)
            if self.skips and self.skip_mode == "concat":
                h = block(torch.cat([h, skip], dim=1))
            elif self.skips:
                h = block(h) + skip
            else:
                h = block(h)
        return torch.sigmoid(self.head(h))

    def encode(self, x: Tensor) -> Tensor:
        """The bottleneck features ``[N, bottleneck_channels, ceil(H/2^d), ceil(W/2^d)]``."""
        return self._encode_all(x)[-1]

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(map, bottleneck)`` from one pass: what the ``feature`` fusion needs."""
        feats = self._encode_all(x)
        return self._decode(feats), feats[-1]

    def forward(self, x: Tensor) -> Tensor:
        """The explanation map ``[N, 1, H, W]`` in [0, 1], the input's size."""
        return self._decode(self._encode_all(x))


#: The four CAEs of the ablation (T3). ``"both"`` is the paper's modified CAE (our reading).
CAE_VARIANTS: dict[str, dict[str, bool]] = {
    "plain": dict(separable=False, skips=False),
    "separable": dict(separable=True, skips=False),
    "skips": dict(separable=False, skips=True),
    "both": dict(separable=True, skips=True),
}


def create_cae(
    variant: str = "both", in_channels: int = 1, width: int = 16, depth: int = 2, **kwargs
) -> CAE:
    """Build the CAE ``variant`` of :data:`CAE_VARIANTS` (default: the paper's, ``"both"``).

    Extra keyword arguments (``skip_mode``, ``upsample``) go to :class:`CAE`.

    Examples::

        >>> create_cae("plain", in_channels=3).variant
        'plain'
    """
    try:
        switches = CAE_VARIANTS[variant]
    except KeyError:
        known = ", ".join(CAE_VARIANTS)
        raise ValueError(f"unknown CAE variant {variant!r}; choose one of: {known}") from None
    return CAE(in_channels=in_channels, width=width, depth=depth, **switches, **kwargs)


def cae_parameter_counts(in_channels: int = 1, width: int = 16, depth: int = 2, **kwargs):
    """Parameters of each variant of :data:`CAE_VARIANTS` at the same size: ``{name: count}``.

    Examples::

        >>> counts = cae_parameter_counts()
        >>> counts["both"] < counts["plain"] == counts["skips"]
        True
    """
    return {
        name: count_parameters(create_cae(name, in_channels, width, depth, **kwargs))
        for name in CAE_VARIANTS
    }


# ----------------------------------------------------------------------------- the loss

#: Explanation losses ``L_exp(pred, target)`` by name; each returns a scalar (batch mean).
EXPLANATION_LOSSES = Registry("explanation loss")


@EXPLANATION_LOSSES.register("mse")
def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""Mean squared error over pixels and images, :math:`\frac{1}{NHW}\sum (g(x) - e_T)^2`."""
    return F.mse_loss(pred, target)


@EXPLANATION_LOSSES.register("bce")
def bce_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""Pixel-wise binary cross-entropy with soft targets in [0, 1].

    :math:`-\frac{1}{NHW}\sum e_T \log g(x) + (1 - e_T) \log(1 - g(x))`. Its minimum over
    ``pred`` is at ``pred = target``, where it equals the target's entropy: zero only for
    binary targets. Logs are clamped at -100 (PyTorch's convention), so a saturated pixel
    gives a large finite loss, not inf.
    """
    return F.binary_cross_entropy(pred, target)


@EXPLANATION_LOSSES.register("ssim")
def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - SSIM`` (Wang et al. 2004; torchmetrics, Gaussian 11x11 window, ``data_range=1``).

    SSIM compares local means, contrasts and structure rather than pixel values, so it
    rewards a map of the right shape even when its overall level is off. Differentiable.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    return 1.0 - structural_similarity_index_measure(pred, target, data_range=1.0)


def explanation_loss(pred: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """The CAE's loss ``L_exp(g(x), e_T(x))``: ``"mse"`` (default), ``"bce"`` or ``"ssim"``.

    METHOD.md's objective weighs it by ``b``. Computed in float32 with autocast off, so
    that it is the same number under AMP (and BCE, which autocast refuses, works there).

    Args:
        pred: the CAE's maps ``[N, 1, H, W]`` in [0, 1].
        target: the teacher's maps, same shape, in [0, 1].
        kind: a name in :data:`EXPLANATION_LOSSES`.

    Returns:
        A scalar tensor (mean over the batch), differentiable in ``pred``.

    Raises:
        ValueError: an unknown ``kind`` (the message lists the choices), or shapes differ.

    Examples::

        >>> p = torch.full((1, 1, 2, 2), 0.5)
        >>> float(explanation_loss(p, torch.zeros_like(p)))
        0.25
    """
    fn: Callable[[Tensor, Tensor], Tensor] = EXPLANATION_LOSSES.get(kind)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target maps differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    with torch.autocast(device_type=pred.device.type, enabled=False):
        return fn(pred.float(), target.to(pred.device, torch.float32))


# ----------------------------------------------------------------------------- training


def _param_device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def train_cae(
    cae: nn.Module,
    x: Tensor,
    maps: Tensor,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    loss: str = "mse",
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train the CAE alone to reproduce cached teacher maps: the ``staged`` schedule's stage 1.

    Minimises ``explanation_loss(cae(x), maps, loss)`` with Adam on tensors held in memory
    (no DataLoader: Fashion-MNIST fits in memory many times over). Batches are drawn from a
    permutation seeded by ``(seed, epoch)`` (:func:`xdx_lib.train.epoch_batches`, the same
    rule as the student's loop), so a run is reproducible on a CPU given the CAE's initial
    weights. The forward pass runs under bfloat16 autocast on CUDA only; the loss is taken
    in float32.

    Args:
        cae: the autoencoder (trained in place; its train/eval mode is restored after).
        x: images ``[N, C, H, W]`` in [0, 1] (any device; batches are moved).
        maps: the teacher's maps ``[N, 1, H, W]`` in [0, 1], aligned with ``x``.
        epochs: passes over the data.
        batch_size: images per step.
        lr: Adam's learning rate.
        loss: a name in :data:`EXPLANATION_LOSSES`.
        device: where to train; ``None`` keeps the device the CAE's parameters are on.
        seed: seeds the shuffling.
        progress: show a tqdm bar per epoch.

    Returns:
        The mean training loss of each epoch (weighted by batch size), ``len == epochs``.

    Raises:
        ValueError: misaligned ``x`` and ``maps`` or an unknown ``loss``.
        FloatingPointError: the loss became NaN or inf.
    """
    EXPLANATION_LOSSES.get(loss)  # fail before any work on an unknown name
    if len(x) != len(maps) or maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(
            f"x {tuple(x.shape)} and maps {tuple(maps.shape)} must be aligned [N, C, H, W] "
            "and [N, 1, H, W]"
        )
    if maps.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"maps are {tuple(maps.shape[-2:])}, images {tuple(x.shape[-2:])}")
    device = _param_device(cae) if device is None else torch.device(device)
    cae.to(device)
    was_training = cae.training
    cae.train()
    opt = torch.optim.Adam(cae.parameters(), lr=lr)
    use_amp = device.type == "cuda"
    steps = math.ceil(len(x) / batch_size)
    history: list[float] = []
    try:
        for epoch in range(epochs):
            total, seen = 0.0, 0
            bar = tqdm(epoch_batches(len(x), batch_size, seed, epoch), total=steps,
                       desc=f"CAE epoch {epoch + 1}/{epochs}", disable=not progress,
                       leave=False)  # fmt: skip
            for step, idx in enumerate(bar):
                xb = x[idx].to(device, torch.float32, non_blocking=True)
                mb = maps[idx].to(device, torch.float32, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    pred = cae(xb)
                value = explanation_loss(pred, mb, loss)
                if not torch.isfinite(value):
                    raise FloatingPointError(
                        f"CAE loss became {value.item()} at epoch {epoch + 1} step {step}; "
                        "lower the learning rate or check the maps"
                    )
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                total += value.item() * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{value.item():.4f}")
            history.append(total / max(seen, 1))
    finally:
        cae.train(was_training)
    return history


@torch.no_grad()
def predict_maps(cae: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """The CAE's maps for every image of ``x``: ``[N, 1, H, W]`` float32 on the CPU.

    Runs in eval mode (batch norm uses its running statistics) without gradients, in
    batches on the device the CAE's parameters are on; the CAE's mode is restored after.
    """
    device = _param_device(cae)
    was_training = cae.training
    cae.eval()
    try:
        out = [
            cae(x[s : s + batch_size].to(device, torch.float32)).float().cpu()
            for s in range(0, len(x), batch_size)
        ]
    finally:
        cae.train(was_training)
    if not out:
        return torch.empty(0, 1, *x.shape[-2:])
    return torch.cat(out)
