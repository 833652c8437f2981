"""How alike two explanation maps are, and the image-blind reference maps.

Every map metric is batched and returns one value per image, ``[N]`` (float32 on the CPU),
so that means, standard deviations and paired differences over images or seeds are taken
by the caller (:func:`summarize` averages a table, :func:`compare_maps` builds the "maps
vs the teacher's" table every chapter shows). Maps are ``[N, 1, H, W]`` in [0, 1] as
:func:`xdx_lib.explain.explain` returns them; NaN or inf in a map is a ``ValueError``, and a
constant map always gives a defined number, never NaN.

Groups (the book's chapter "Method, claims and metrics" defines each):

* prediction (:mod:`xdx_lib.metrics.predictions`): accuracy, agreement (same top-1 class
  as the teacher);
* similarity of two explanations of the same images: :func:`pearson`, :func:`spearman`,
  :func:`ssim`, :func:`cosine`, :func:`topk_iou`, all at once with
  :func:`similarity_table`;
* references: :func:`reference_maps` (the teacher's mean map, a centred blob).

The names of a result's metric keys (``accuracy``, ``cae/pearson``, ``faith/deletion``) are
built and picked out in :mod:`xdx_lib.metrics.names`, so that nothing parses a key's text.

Faithfulness (deletion, insertion) and localisation (pointing game, relevance mass) judge a
map against a model or a mask rather than another map: :mod:`xdx_lib.metrics.faithfulness`.
Imports: torch, torchmetrics and pandas only.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from xdx_lib.core._utils import check_maps as _check_maps
from xdx_lib.core._utils import safe_ratio as _safe_ratio

try:  # the reference SSIM; the fallback below reproduces it
    from torchmetrics.functional.image import structural_similarity_index_measure as _tm_ssim
except ImportError:  # pragma: no cover - torchmetrics is a declared dependency
    _tm_ssim = None


def _pair(maps_a: Tensor, maps_b: Tensor) -> tuple[Tensor, Tensor]:
    """Validate two map batches and flatten them to float64 ``[N, D]`` on the CPU."""
    _check_maps(maps_a, "maps_a")
    _check_maps(maps_b, "maps_b")
    if maps_a.shape != maps_b.shape:
        raise ValueError(f"maps differ in shape: {tuple(maps_a.shape)} vs {tuple(maps_b.shape)}")
    if maps_a.shape[0] == 0:
        raise ValueError("cannot compare maps over zero images; compare at least one map")
    a = maps_a.detach().cpu().flatten(1).double()
    b = maps_b.detach().cpu().flatten(1).double()
    return a, b


def _pearson_flat(a: Tensor, b: Tensor) -> Tensor:
    # a floor relative to the raw magnitudes, so that rounding in the mean of a constant map
    # (centred values of order 1e-16) does not turn into a correlation
    scale = a.abs().amax(1) * b.abs().amax(1) * a.shape[1]
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = (a.pow(2).sum(1) * b.pow(2).sum(1)).sqrt()
    den = torch.where(den > 1e-12 * scale, den, torch.zeros_like(den))
    return _safe_ratio((a * b).sum(1), den).clamp(-1.0, 1.0)


def pearson(maps_a: Tensor, maps_b: Tensor) -> Tensor:
    """Pearson correlation per image over the pixels.

    ``r = sum (a - mean a)(b - mean b) / (||a - mean a|| ||b - mean b||)``, computed in
    float64 over all pixels. A constant map has no variance: r = 0 (not NaN).

    Returns:
        ``[N]`` in [-1, 1].
    """
    a, b = _pair(maps_a, maps_b)
    return _pearson_flat(a, b).float()


def rank_average(values: Tensor) -> Tensor:
    """Ranks ``0 .. D-1`` along dim 1 of ``[N, D]``, tied values sharing their mean rank.

    Explanation maps have large tied regions (Grad-CAM's zeros after ReLU), where ordinal
    ranks would invent an order; averaged ranks are what ``scipy.stats.rankdata`` gives.
    """
    n, d = values.shape
    sorted_vals, order = values.sort(dim=1, stable=True)
    new_group = torch.ones_like(sorted_vals, dtype=torch.long)
    new_group[:, 1:] = (sorted_vals[:, 1:] != sorted_vals[:, :-1]).long()
    group = new_group.cumsum(1) - 1 + torch.arange(n).unsqueeze(1) * d  # unique per row
    pos = torch.arange(d, dtype=torch.float64).expand(n, d).reshape(-1)
    flat_group = group.reshape(-1)
    sums = torch.zeros(n * d, dtype=torch.float64).index_add_(0, flat_group, pos)
    counts = torch.zeros(n * d, dtype=torch.float64).index_add_(0, flat_group, torch.ones_like(pos))
    mean_rank = (sums / counts.clamp_min(1))[flat_group].view(n, d)
    ranks = torch.empty_like(mean_rank)
    ranks.scatter_(1, order, mean_rank)
    return ranks


def spearman(maps_a: Tensor, maps_b: Tensor) -> Tensor:
    """Spearman rank correlation per image: the Pearson r of the pixels' ranks.

    Ties get their average rank (:func:`rank_average`), as in ``scipy.stats.spearmanr``. A
    constant map gives 0.

    Returns:
        ``[N]`` in [-1, 1].
    """
    a, b = _pair(maps_a, maps_b)
    chunk = 4096  # rank_average holds a few [chunk, H * W] float64 tensors
    parts = [
        _pearson_flat(rank_average(a[i : i + chunk]), rank_average(b[i : i + chunk]))
        for i in range(0, a.shape[0], chunk)
    ]
    return torch.cat(parts).float() if parts else torch.zeros(0)


def cosine(maps_a: Tensor, maps_b: Tensor) -> Tensor:
    """Cosine similarity per image: ``<a, b> / (||a|| ||b||)``; an all-zero map gives 0.

    Unlike Pearson it is not centred: two maps in [0, 1] never have a negative cosine. This
    is the similarity e2KD trains with (``1 - cos``).

    Returns:
        ``[N]`` in [-1, 1].
    """
    a, b = _pair(maps_a, maps_b)
    return _safe_ratio((a * b).sum(1), a.norm(dim=1) * b.norm(dim=1)).clamp(-1.0, 1.0).float()


def _num_top(d: int, fraction: float, k: int | None) -> int:
    if k is None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        k = round(fraction * d)
    return int(min(max(k, 1), d))


def top_mask(values: Tensor, k: int) -> Tensor:
    """Boolean ``[N, D]`` marking each row's ``k`` largest values.

    Ties are broken by position (a stable sort, earlier pixel first), so the result is
    deterministic; a constant map selects its first ``k`` pixels.
    """
    order = values.argsort(dim=1, descending=True, stable=True)[:, :k]
    return torch.zeros_like(values, dtype=torch.bool).scatter_(1, order, True)


def topk_iou(maps_a: Tensor, maps_b: Tensor, fraction: float = 0.1, k: int | None = None) -> Tensor:
    """Intersection over union of the two maps' top-k pixel sets, per image.

    ``IoU = |A_k & B_k| / |A_k | B_k|`` with ``A_k`` the ``k`` most relevant pixels of a;
    ``k = round(fraction * H * W)`` (10 % by default) unless ``k`` is given. Ties are broken
    by pixel position (:func:`top_mask`).

    Returns:
        ``[N]`` in [0, 1].
    """
    a, b = _pair(maps_a, maps_b)
    n_top = _num_top(a.shape[1], fraction, k)
    ta, tb = top_mask(a, n_top), top_mask(b, n_top)
    inter = (ta & tb).sum(1).double()
    union = (ta | tb).sum(1).double()
    return (inter / union).float()


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype) -> Tensor:
    dist = torch.arange((1 - size) / 2, (1 + size) / 2, 1.0, dtype=dtype)
    g = torch.exp(-((dist / sigma) ** 2) / 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_torch(
    maps_a: Tensor, maps_b: Tensor, sigma: float = 1.5, data_range: float = 1.0
) -> Tensor:
    """SSIM per image (Wang et al. 2004) with a Gaussian window, in plain torch.

    ``SSIM = mean_px (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(v_a + v_b + C2))``
    (``v`` the local variances, ``s_ab`` the local covariance), with local statistics from a
    Gaussian window of std ``sigma`` (side ``2 * int(3.5 sigma + 0.5) + 1`` = 11 px),
    reflect padding, ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2`` for ``L = data_range``: the
    same choices as torchmetrics, which :func:`ssim` prefers; this is its fallback. Two
    constant maps give a defined value (1 when equal).
    """
    _, c, h, w = maps_a.shape
    size = 2 * int(3.5 * sigma + 0.5) + 1
    pad = (size - 1) // 2
    if pad >= min(h, w):
        raise ValueError(f"maps of {h}x{w} are too small for an SSIM window of {size}")
    a = F.pad(maps_a, (pad, pad, pad, pad), mode="reflect")
    b = F.pad(maps_b, (pad, pad, pad, pad), mode="reflect")
    kernel = _gaussian_window(size, sigma, a.dtype).expand(c, 1, size, size)
    stats = F.conv2d(torch.cat([a, b, a * a, b * b, a * b]), kernel, groups=c).split(a.shape[0])
    mu_a, mu_b, aa, bb, ab = stats
    var_a = (aa - mu_a**2).clamp_min(0)
    var_b = (bb - mu_b**2).clamp_min(0)
    cov = ab - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return s.flatten(1).mean(1)


def ssim(maps_a: Tensor, maps_b: Tensor, data_range: float = 1.0) -> Tensor:
    """Structural similarity per image of maps in [0, 1] (``data_range`` 1).

    Uses ``torchmetrics.functional.structural_similarity_index_measure`` (Gaussian window,
    sigma 1.5, ``reduction="none"``) when torchmetrics is importable, else
    :func:`ssim_torch`, which computes the same quantity. Computed in float32: in float64
    the 11x11 window's convolutions cost many times more on a CPU (more than the rest of a
    student's evaluation), for differences below 1e-6.

    Returns:
        ``[N]``, at most 1 (1 for identical maps).
    """
    _pair(maps_a, maps_b)  # validation
    a = maps_a.detach().cpu().float()
    b = maps_b.detach().cpu().float()
    if _tm_ssim is not None:
        out = _tm_ssim(a, b, data_range=data_range, reduction="none")
    else:  # pragma: no cover - exercised by forcing the fallback in the tests
        out = ssim_torch(a, b, data_range=data_range)
    return out.float()


#: The explanation-similarity metrics (the book's chapter "Method, claims and metrics"), by
#: the names tables use.
SIMILARITIES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "pearson": pearson,
    "spearman": spearman,
    "ssim": ssim,
    "cosine": cosine,
    "topk_iou": topk_iou,
}


def similarity_table(maps_a: Tensor, maps_b: Tensor,
                     names: Sequence[str] | None = None) -> dict[str, Tensor]:  # fmt: skip
    """The metrics ``names`` (default: every one of :data:`SIMILARITIES`) for two map
    batches: ``{name: [N]}``."""
    names = list(SIMILARITIES) if names is None else list(names)
    unknown = [n for n in names if n not in SIMILARITIES]
    if unknown:
        raise ValueError(f"unknown similarity {unknown[0]!r}; choose from "
                         f"{', '.join(SIMILARITIES)}")  # fmt: skip
    return {name: SIMILARITIES[name](maps_a, maps_b) for name in names}


def summarize(table: dict[str, Tensor]) -> dict[str, float]:
    """The mean over images of each per-image metric in ``table`` (e.g. a similarity table).

    Raises:
        ValueError: a metric holds no images (the mean of nothing is not a score).
    """
    empty = [name for name, values in table.items() if values.numel() == 0]
    if empty:
        raise ValueError(f"cannot summarise {', '.join(empty)} over zero images; "
                         "compare at least one map")  # fmt: skip
    return {name: values.float().mean().item() for name, values in table.items()}


def compare_maps(candidates: dict[str, Tensor], target: Tensor) -> pd.DataFrame:
    """The mean of every similarity of :data:`SIMILARITIES` between each candidate and
    ``target``: one row per candidate (its name), one column per metric.

    The one table of "maps vs the teacher's" that the chapters and the runner show.
    """
    rows = {name: summarize(similarity_table(m, target)) for name, m in candidates.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(SIMILARITIES))


def centred_blob(size: tuple[int, int] | torch.Size, sigma: float = 0.25) -> Tensor:
    """A trivial reference map: a Gaussian centred on the image, ``[1, 1, H, W]`` in [0, 1].

    Beside every explanation-similarity figure the book shows what a map that knows nothing
    of the image scores (the book's chapter "Method, claims and metrics"): objects in
    centred datasets sit mid-image, so a blob already correlates with most explanations.
    ``sigma`` is a fraction of the image side.
    """
    h, w = int(size[0]), int(size[1])
    yy = (torch.arange(h, dtype=torch.float32) - (h - 1) / 2) / (sigma * h)
    xx = (torch.arange(w, dtype=torch.float32) - (w - 1) / 2) / (sigma * w)
    blob = torch.exp(-0.5 * (yy[:, None] ** 2 + xx[None, :] ** 2))
    return ((blob - blob.min()) / (blob.max() - blob.min())).view(1, 1, h, w)


def reference_maps(train_maps: Tensor, test_maps: Tensor) -> dict[str, Tensor]:
    """The two image-blind references, shaped like ``test_maps``.

    ``"mean teacher map"``: the mean of the teacher's training maps, the same for every
    image; ``"centred blob"``: :func:`centred_blob`. A student's or a CAE's map that does
    not beat these has learnt where explanations usually are, not this image's.
    """
    mean_map = train_maps.mean(0, keepdim=True).to(test_maps.dtype)
    return {
        "mean teacher map": mean_map.expand_as(test_maps),
        "centred blob": centred_blob(test_maps.shape[-2:]).expand_as(test_maps),
    }
