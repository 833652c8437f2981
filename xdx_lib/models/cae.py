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

``CAE_VARIANTS`` names the four combinations; ``"both"`` is our reading of the paper's modified CAE.
Which one XDistillation deploys is a config option (``cae_variant``, default ``skips``, chosen by
measurement in the book's XDistillation chapter). This module holds the architecture and batched
inference (:func:`predict_maps`) only: the CAE's loss is with the other losses
(:func:`xdx_lib.distill.explanation_losses.explanation_loss`), and its stand-alone training on
cached teacher maps, the ``staged`` schedule's first stage, is in a module of its own
(:func:`xdx_lib.distill.cae_pretraining.pretrain_cae`). Imports:
:mod:`xdx_lib.models.classifiers`,
:mod:`xdx_lib.core.registry` and ``xdx_lib.core._utils``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdx_lib.core._utils import channels_last, model_device
from xdx_lib.core.registry import declare_choices
from xdx_lib.models.classifiers import count_parameters

__all__ = [
    "CAE",
    "CAE_OUTPUTS",
    "CAE_VARIANTS",
    "GridCAE",
    "cae_parameter_counts",
    "create_cae",
    "predict_maps",
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


class GridCAE(nn.Module):
    """A CAE whose decoder stops at the explanation's own grid, then upsamples as Grad-CAM does.

    A teacher's Grad-CAM is its last stage's grid (7x7 for ``cnn_teacher`` on 28x28,
    4x4 for ``resnet18_cifar`` on 32x32) upsampled bilinearly: a full-resolution decoder
    spends most of its work re-creating detail the target never had. This CAE encodes
    straight down to that grid, refines there, and upsamples the way the explainer does::

        down_i  block(C or w 2^(i-2) -> w 2^(i-1)), stride 2, i=1..d    ceil(H / 2^i)
        grid_j  block(c -> c), stride 1, j=1..blocks                    [+ input when skips]
        head    1x1 conv (c -> 1); bilinear upsample to H x W; sigmoid

    with ``c = w 2^(d-1)`` (``bottleneck_channels``). The paper's two modifications stay
    switches: ``separable`` (depthwise-separable 3x3 convolutions) and ``skips``, here
    residual connections around each grid block (the information path that U-Net's skips
    give a full-resolution decoder). Its map is in [0, 1] and of the input's size, like
    :class:`CAE`'s, so the two are interchangeable.

    Args:
        in_channels: image channels.
        width: channels of the first (stride-2) block.
        depth: stride-2 blocks; choose ``2**depth`` = the explainer's stride (2 for
            ``cnn_teacher``'s Grad-CAM, 3 for ``resnet18_cifar``'s).
        blocks: refining blocks at the grid.
        separable, skips: the paper's two modifications.

    Examples::

        >>> g = GridCAE(in_channels=1, width=16, depth=2)
        >>> m, z = g.forward_with_features(torch.rand(4, 1, 28, 28))
        >>> tuple(m.shape), tuple(z.shape)
        ((4, 1, 28, 28), (4, 32, 7, 7))
    """

    def __init__(self, in_channels: int = 1, width: int = 16, depth: int = 2, blocks: int = 2,
                 separable: bool = True, skips: bool = True):  # fmt: skip
        super().__init__()
        if min(in_channels, width, depth) < 1 or blocks < 0:
            raise ValueError(
                f"GridCAE needs in_channels, width and depth >= 1 and blocks >= 0, got "
                f"in_channels={in_channels}, width={width}, depth={depth}, blocks={blocks}"
            )
        self.in_channels, self.width, self.depth, self.blocks = in_channels, width, depth, blocks
        self.separable, self.skips = separable, skips
        ch = [in_channels] + [width * 2**i for i in range(depth)]
        self.bottleneck_channels = ch[-1]
        self.bottleneck_stride = 2**depth
        self.down = nn.ModuleList(
            cae_block(ch[i], ch[i + 1], stride=2, separable=separable) for i in range(depth)
        )
        self.grid = nn.ModuleList(
            cae_block(ch[-1], ch[-1], separable=separable) for _ in range(blocks)
        )
        self.head = nn.Conv2d(ch[-1], 1, kernel_size=1)

    variant = CAE.variant
    _check_input = CAE._check_input

    def extra_repr(self) -> str:
        return (f"variant={self.variant!r}, width={self.width}, depth={self.depth}, "
                f"blocks={self.blocks}")  # fmt: skip

    def encode(self, x: Tensor) -> Tensor:
        """The grid features ``[N, bottleneck_channels, ceil(H/2^d), ceil(W/2^d)]``."""
        self._check_input(x)
        h = x
        for block in self.down:
            h = block(h)
        for block in self.grid:
            h = block(h) + h if self.skips else block(h)
        return h

    def _decode(self, z: Tensor, size) -> Tensor:
        logits = F.interpolate(self.head(z), size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(map, grid features)`` from one pass: what the ``feature`` fusion needs."""
        z = self.encode(x)
        return self._decode(z, x.shape[-2:]), z

    def forward(self, x: Tensor) -> Tensor:
        """The explanation map ``[N, 1, H, W]`` in [0, 1], the input's size."""
        return self._decode(self.encode(x), x.shape[-2:])


#: The four CAEs of the ablation (T3). ``"both"`` is the paper's modified CAE (our reading).
CAE_VARIANTS: dict[str, dict[str, bool]] = {
    "plain": dict(separable=False, skips=False),
    "separable": dict(separable=True, skips=False),
    "skips": dict(separable=False, skips=True),
    "both": dict(separable=True, skips=True),
}
declare_choices("cae variant", tuple(CAE_VARIANTS))


#: The decoders a CAE may have, ``full`` (:class:`CAE`, up to the input's resolution) or
#: ``grid`` (:class:`GridCAE`, the explainer's grid, then bilinear upsampling).
CAE_OUTPUTS = declare_choices("cae output", ("full", "grid"))


def create_cae(
    variant: str, in_channels: int = 1, width: int = 16, depth: int = 2,
    output: str = "full", **kwargs,
) -> CAE | GridCAE:  # fmt: skip
    """Build the CAE ``variant`` of :data:`CAE_VARIANTS`.

    ``output`` picks the decoder (:data:`CAE_OUTPUTS`; ``full`` builds the autoencoder as the paper
    draws it). XDistillation builds its CAE from the config instead
    (:func:`xdx_lib.distill.cae_pretraining.build_cae`, whose defaults are the config's). Extra
    keyword arguments go to the class (``skip_mode``, ``upsample`` for :class:`CAE`; ``blocks`` for
    :class:`GridCAE`).

    Examples::

        >>> create_cae("plain", in_channels=3).variant
        'plain'
    """
    try:
        switches = CAE_VARIANTS[variant]
    except KeyError:
        known = ", ".join(CAE_VARIANTS)
        raise ValueError(f"unknown CAE variant {variant!r}; choose one of: {known}") from None
    if output not in CAE_OUTPUTS:
        raise ValueError(f"unknown CAE output {output!r}; choose one of: {', '.join(CAE_OUTPUTS)}")
    cls = GridCAE if output == "grid" else CAE
    return cls(in_channels=in_channels, width=width, depth=depth, **switches, **kwargs)


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


@torch.no_grad()
def predict_maps(cae: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """The CAE's maps for every image of ``x``: ``[N, 1, H, W]`` float32 on the CPU.

    Runs in eval mode (batch norm uses its running statistics) without gradients, in
    batches on the device the CAE's parameters are on; the CAE's mode is restored after.
    """
    device = model_device(cae)
    was_training = cae.training
    cae.eval()
    try:
        out = [
            cae(channels_last(x[s : s + batch_size].to(device, torch.float32)))
            .float().cpu().contiguous()
            for s in range(0, len(x), batch_size)
        ]
    finally:
        cae.train(was_training)
    if not out:
        return torch.empty(0, 1, *x.shape[-2:])
    return torch.cat(out)

