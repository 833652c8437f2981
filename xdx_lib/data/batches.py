"""Batches: which images an epoch's steps see, in what order, augmented how, and what a
method is given beside them.

:func:`epoch_batches` shuffles an epoch by ``(seed, epoch)`` alone (so a resumed run sees
the same batches) and shares each batch among the ranks; :func:`make_batch` gathers the
batch dict a method sees, with the teacher's signals (:class:`Extras`);
:func:`augment_batch` augments it with the rank's own draws (:func:`augmentation_seed`).
:func:`predict_logits` is the batched inference every score goes through.

Layer: imports the data (:class:`~xdx_lib.data.datasets.Split`), ``xdx_lib.core._utils`` and torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from xdx_lib.core._utils import channels_last as to_channels_last
from xdx_lib.data.datasets import Split


@dataclass
class Extras:
    """What a batch holds beside ``x`` and ``y``: the teacher's signals.

    Attributes:
        train, test: per-image tensors (or lists of them, one per stage) aligned with the
            splits, sliced into every batch (train) or read by the per-epoch metrics (test)
            under their names.
        per_batch: ``batch -> dict`` of more batch entries, called on every training batch
            after augmentation (the online teacher's signals of the augmented images).
    """

    train: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    per_batch: Callable[[dict], dict] | None = None


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1):
    """Index tensors of one epoch's shuffled batches, the same on every rank.

    The order depends only on ``(seed, epoch)``, so a resumed run sees the same batches.
    With ``world`` processes each takes its share of every global batch; a last batch of
    fewer images than processes is dropped, as a rank with no image would stall the others.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        if len(idx) >= world:
            yield idx[rank::world]


def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """How many batches :func:`epoch_batches` yields (``ceil(n / batch_size)`` for one
    process), which the learning-rate schedule spans."""
    last = n % batch_size
    return n // batch_size + (1 if last and last >= world else 0)


def _rows(v, idx: torch.Tensor, device):
    """``v[idx]`` on ``device``, for a tensor or a list of tensors."""
    if isinstance(v, (list, tuple)):
        return [t[idx].to(device) for t in v]
    return v[idx].to(device)


def make_batch(split: Split, idx: torch.Tensor, extras: dict | None, device,
               index: torch.Tensor | None = None) -> dict:  # fmt: skip
    """The batch dict a method sees: ``x``, ``y``, ``index`` and the cached extras.

    ``idx`` indexes the split's tensors on their device (:func:`xdx_lib.training.loop.fit` keeps
    the training split and its extras on a CUDA device, :func:`resident`, so that a batch
    is gathered there with no copy from the host); ``index`` is what the batch records as
    ``index`` (default ``idx``).
    """
    batch = {"x": split.x[idx].to(device), "y": split.y[idx].to(device),
             "index": idx if index is None else index}  # fmt: skip
    for k, v in (extras or {}).items():
        batch[k] = _rows(v, idx, device)
    return batch


def resident(train: Split, extras: Extras, device: torch.device) -> tuple[Split, Extras]:
    """The training split and its per-image signals copied to ``device`` once, so that every
    batch is gathered there with no copy from the host (the loop does this on CUDA)."""
    train = Split(train.x.to(device), train.y.to(device))
    on_device = {k: _rows(v, slice(None), device) for k, v in extras.train.items()}
    return train, Extras(on_device, extras.test, extras.per_batch)


#: Spaces the augmentation seeds of the ranks apart (a prime, far above any epoch count).
_RANK_SEED_STRIDE = 104_729


def augmentation_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of one rank's augmentation in one epoch.

    Each rank draws its own flips and shifts (ranks seeded alike would augment their
    shares in lockstep); rank 0, and so a single process, keeps the seed ``(seed, epoch)``
    alone gives.
    """
    return seed * 7919 + epoch + rank * _RANK_SEED_STRIDE


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard augmentation of a batch, each image its own draw; shape and range are kept.

    * RGB (3 channels): the CIFAR recipe, a random crop of the image's size from the image
      padded by 4 zero pixels on each side, and a horizontal flip with probability 1/2;
    * grey (any other channel count): a random shift of up to 2 pixels each way (a crop
      from a 2-pixel zero padding), no flip. One rule serves MNIST, where a mirrored digit
      is another glyph (or none), and Fashion-MNIST, whose 28x28 items are centred by the
      dataset's preparation so that small shifts are the variation a test image shows;
      flipping would be harmless there but is left out to keep the two grey sets alike.

    Batched on ``x``'s device, with no loop over images: the batch is padded once and each
    image's window is gathered with its own row and column offsets. The draws (flips, then
    offsets) come from ``generator``, on the generator's device (a CUDA generator keeps the
    step free of host synchronisation), so a run is reproducible from its seed.
    """
    n, c, h, w = x.shape
    rgb = c == 3
    p = 4 if rgb else 2
    dev = generator.device if generator is not None else x.device
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator, device=dev)
    if rgb:
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    padded = F.pad(x, (p, p, p, p)).permute(0, 2, 3, 1)  # [N, H + 2p, W + 2p, C]
    offsets = offsets.to(x.device)
    rows = offsets[0].view(n, 1, 1) + torch.arange(h, device=x.device).view(1, h, 1)
    cols = offsets[1].view(n, 1, 1) + torch.arange(w, device=x.device).view(1, 1, w)
    images = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[images, rows, cols].permute(0, 3, 1, 2).contiguous()  # [N, C, H, W]


@torch.no_grad()
def predict_logits(logits_fn: Callable, x: torch.Tensor, device, batch_size: int = 512):
    """Logits for every image of ``x``, batched, returned on the CPU as float32.

    Image batches go in as ``channels_last``, the memory format the library's models train
    and run in (``xdx_lib.core._utils.channels_last``).
    """
    out = []
    for start in range(0, len(x), batch_size):
        out.append(logits_fn(to_channels_last(x[start : start + batch_size].to(device)))
                   .float().cpu())  # fmt: skip
    return torch.cat(out) if out else torch.empty(0)

