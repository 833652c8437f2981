"""Scoring trained models against their teacher: every number a result file holds.

:func:`evaluate_model` gives one model's accuracy, agreement, explanation similarity under
each explainer, faithfulness and cost; :func:`localisation_scores` its pointing game and
relevance mass on generated shapes; :func:`reference_scores` what the image-blind
reference maps score; :func:`timed` is the one timer of the library, the chapters and the
benchmarks. It only scores: models come trained (:mod:`xdx_lib.experiments.session`), and
the runner (:mod:`xdx_lib.experiments.runner`) stores the scores; the chapters call them directly.
Layer: above the trained models, metrics and explainers; below the runner.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xdx_lib.analysis import selection
from xdx_lib.data.datasets import Dataset, Split
from xdx_lib.metrics.faithfulness import deletion_auc, insertion_auc, pointing_game, relevance_mass
from xdx_lib.metrics.names import CAE, DEPLOYED, faithfulness_key, metric_key
from xdx_lib.metrics.predictions import accuracy, agreement
from xdx_lib.metrics.similarity import pearson, reference_maps, similarity_table, summarize
from xdx_lib.models.classifiers import count_parameters
from xdx_lib.training.trained_model import TrainedModel, model_maps, teacher_logits

#: Explainers cheap enough to run on the whole test subset; others use ``n_slow`` images.
FAST_EXPLAINERS = ("gradcam", "saliency", "deeplift")

#: The splits a model is scored on, the validation split (which chooses) and the test
#: split (which reports).
SCORED_SPLITS = ("val", "test")


@dataclass(frozen=True)
class Timing:
    """What :func:`timed` measured: the output of the last call and the fastest call's
    seconds on ``images`` images."""

    output: Any
    seconds: float
    images: int

    @property
    def images_per_second(self) -> float:
        """Throughput of the fastest call."""
        return self.images / self.seconds

    @property
    def ms_per_image(self) -> float:
        """Latency of the fastest call, per image."""
        return 1000 * self.seconds / self.images


def timed(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int = 1) -> Timing:
    """Call ``fn(x)`` ``repeats`` times and keep the fastest wall-clock time.

    The one timer of the library, the chapters and the benchmarks: an explainer, a CAE or
    a model on a batch. One call times a pass that is itself the result (the chapters keep
    its output); more repeats keep the fastest, which a passing load on a shared machine
    disturbs least. Where CUDA is in use it is synchronised before and after each call, so
    the time covers the kernels and not only their launch.
    """
    if repeats < 1:
        raise ValueError(f"timed: repeats={repeats}; time at least one call")
    sync = torch.cuda.synchronize if torch.cuda.is_initialized() else (lambda: None)
    best, out = float("inf"), None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn(x)
        sync()
        best = min(best, time.perf_counter() - t0)
    return Timing(out, best, len(x))


def latency_ms(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int = 3) -> float:
    """Best-of-``repeats`` milliseconds per image of ``fn`` on the batch ``x``, without
    gradients (:func:`timed`)."""
    with torch.no_grad():
        return timed(fn, x, repeats).ms_per_image


#: What the claims, the sweeps and the variant tables read of a map comparison.
CLAIM_SIMILARITIES = ("pearson", "topk_iou")


def scored_split(data: Dataset, split: str) -> Split:
    """The split of ``data`` a model is scored on, ``"val"`` or ``"test"``.

    Raises:
        ValueError: another split, or ``"val"`` where the data has no validation images
            (its config's ``val_size`` is 0), so that a choice never falls back on the
            test split unseen.
    """
    if split not in SCORED_SPLITS:
        raise ValueError(f"split={split!r}: score on one of {', '.join(SCORED_SPLITS)}")
    if split == "val":
        val = selection.validation_split(data, "this score")
        if not len(val):
            raise ValueError("this score is made on the validation split, and it holds no "
                             "images: set val_size (--val-size) above 0")  # fmt: skip
        return val
    if not len(data.test):
        raise ValueError("the data has no 'test' images to score on; give it a test split")
    return data.test


def _deployed_scores(run: TrainedModel, teacher: TrainedModel, x: torch.Tensor,
                     own: torch.Tensor | None, explained: dict, similarities: Sequence[str] | None,
                     split: str) -> dict[str, float]:  # fmt: skip
    """``deployed/<similarity>``: the explanation the deployed model gives against the
    teacher's. A model without maps of its own (``own`` is None) deploys its Grad-CAM (read
    from ``explained`` when scored there); one with its own maps (XDistillation's CAE) is
    compared with the teacher's maps of the explainer they imitate, under ``cae/`` too."""
    if own is None:
        if "gradcam" in explained:
            deployed = explained["gradcam"]
        else:
            deployed = summarize(similarity_table(model_maps(run, x, "gradcam", split),
                                                  model_maps(teacher, x, "gradcam", split),
                                                  similarities))  # fmt: skip
        return {metric_key(DEPLOYED, k): v for k, v in deployed.items()}
    target_maps = model_maps(teacher, x, run.method.imitated_explainer, split)
    out: dict[str, float] = {}
    for k, v in summarize(similarity_table(own, target_maps, similarities)).items():
        out[metric_key(CAE, k)] = v
        out[metric_key(DEPLOYED, k)] = v
    return out


def evaluate_model(run: TrainedModel, teacher: TrainedModel, data: Dataset,
                   explainers: Sequence[str] = ("gradcam",), n_slow: int = 128,
                   n_faithful: int = 128, similarities: Sequence[str] | None = None,
                   split: str = "test") -> dict[str, float]:  # fmt: skip
    """Every metric of one trained model against its teacher, on the test split (or, with
    ``split="val"``, on the validation split, the one the book chooses on).

    Keys (named by :func:`~xdx_lib.metrics.names.metric_key`, picked out of a table by
    :func:`~xdx_lib.metrics.names.keys_of` and its kin): ``accuracy``, ``agreement`` (of the last
    epoch), ``parameters``, ``epoch_seconds``, ``latency_ms``; for the first explainer
    ``<explainer>/<similarity>`` (Pearson, Spearman, SSIM, cosine, top-k IoU of the model's map with
    the teacher's), for the others ``<explainer>/pearson`` (explainers outside
    :data:`FAST_EXPLAINERS` on the first ``n_slow`` images); for a model that returns its own maps
    (:meth:`~xdx_lib.distill.method.Method.deployed_maps`: XDistillation's CAE) ``cae/<similarity>``
    of those maps; ``deployed/<similarity>`` for the explanation the deployed model gives (its own
    maps where it has them, else its Grad-CAM), against the teacher's maps of the explainer they
    imitate; with ``n_faithful > 0``, faithfulness of the model's Grad-CAM on itself
    (``faith/deletion``, ``faith/insertion``) and judged by the teacher (``faith_teacher/...``),
    with ``cae_faith/...`` for the CAE's map. ``similarities`` narrows every ``<maps>/<similarity>``
    to those named (default: all of
    :data:`~xdx_lib.metrics.similarity.SIMILARITIES`; :data:`CLAIM_SIMILARITIES` for what the
    claims read).
    Every key means the same on either split: the accuracy on its labels, the agreement
    with the teacher's logits on it, the maps against the teacher's maps of its images.

    Raises:
        ValueError: ``split`` is not ``"val"`` or ``"test"``, or has no images
            (:func:`scored_split`).
    """
    part = scored_split(data, split)
    x, y = part.x, part.y
    t_logits = teacher_logits(teacher, data, (split,))[split]
    logits = run.logits(x)
    hist = run.history
    attached = run.method.attached_modules()  # kd_cae's CAE: deployed beside the student
    out: dict[str, float] = {
        "accuracy": accuracy(logits, y),
        "agreement": agreement(logits, t_logits),
        "parameters": float(run.num_parameters + sum(count_parameters(m) for m in attached)),
        "epoch_seconds": sum(h["epoch_time"] for h in hist) / max(len(hist), 1),
        "latency_ms": sum(latency_ms(m, x[:256].to(next(m.parameters()).device))
                          for m in (run.model, *attached)),
    }
    explained = _explanation_scores(run, teacher, x, explainers, n_slow, similarities, split)
    for explainer, scores in explained.items():
        out.update({metric_key(explainer, k): v for k, v in scores.items()})
    own = run.method.deployed_maps(run.model, x)
    out.update(_deployed_scores(run, teacher, x, own, explained, similarities, split))
    out.update(_faithfulness_scores(run, teacher, x[: min(n_faithful, len(x))], own, split))
    return out


def _explanation_scores(run: TrainedModel, teacher: TrainedModel, x: torch.Tensor,
                        explainers: Sequence[str], n_slow: int,
                        similarities: Sequence[str] | None, split: str = "test"
                        ) -> dict[str, dict[str, float]]:  # fmt: skip
    """``{explainer: {similarity: mean}}`` of the model's maps against the teacher's: every
    similarity for the first explainer (T1), Pearson r for the others (T2), the slow ones
    on the first ``n_slow`` images; ``split`` names where ``x`` comes from (the maps'
    cache key)."""
    out = {}
    for i, e in enumerate(explainers):
        n = len(x) if e in FAST_EXPLAINERS else min(n_slow, len(x))
        t_maps, s_maps = model_maps(teacher, x[:n], e, split), model_maps(run, x[:n], e, split)
        if i == 0:
            table = similarity_table(s_maps, t_maps, similarities)
        else:
            table = {"pearson": pearson(s_maps, t_maps)}
        out[e] = summarize(table)
    return out


def _faithfulness_scores(run: TrainedModel, teacher: TrainedModel, xf: torch.Tensor,
                         own: torch.Tensor | None, split: str = "test"
                         ) -> dict[str, float]:  # fmt: skip
    """Deletion and insertion AUC on ``xf`` of the model's Grad-CAM (and of its own maps,
    ``own``, when it has them), judged by the model itself and by the teacher."""
    if len(xf) == 0:
        return {}
    judges = {"model": run.model, "teacher": teacher.model}
    judged = {"gradcam": model_maps(run, xf, "gradcam", split)}
    if own is not None:
        judged[CAE] = own[: len(xf)]
    out = {}
    for name, maps in judged.items():
        for judge, model in judges.items():
            key = functools.partial(faithfulness_key, name, judge)
            out[key("deletion")] = deletion_auc(model, xf, maps).mean().item()
            out[key("insertion")] = insertion_auc(model, xf, maps, baseline="blur").mean().item()
    return out


def predicted_classes(run: TrainedModel, data: Dataset) -> torch.Tensor:
    """The model's predicted class of every test image, on the CPU."""
    return run.logits(data.test.x).argmax(1).cpu()


def localisation_scores(run: TrainedModel, data: Dataset) -> dict[str, float]:
    """Pointing game and relevance mass of the model's Grad-CAM (and CAE map) on ``shapes``."""
    x, masks = data.test.x, data.test.masks
    out = {"accuracy": accuracy(run.logits(x), data.test.y)}
    maps = {"gradcam": model_maps(run, x, "gradcam")}
    own = run.method.deployed_maps(run.model, x)
    if own is not None:
        maps[CAE] = own
    for name, m in maps.items():
        out[metric_key(name, "pointing_game")] = pointing_game(m, masks).float().mean().item()
        out[metric_key(name, "relevance_mass")] = relevance_mass(m, masks).mean().item()
    return out


def reference_scores(teacher: TrainedModel, data: Dataset,
                     explainer: str = "gradcam") -> dict[str, dict[str, float]]:  # fmt: skip
    """What the image-blind references score against the teacher's test maps.

    ``{reference name: {"<explainer>/<similarity>": value}}`` for the teacher's mean
    training map and the centred blob (:func:`xdx_lib.metrics.similarity.reference_maps`).
    """
    test = model_maps(teacher, data.test.x, explainer)
    train = model_maps(teacher, data.train.x, explainer, split="train")
    return {
        name: {metric_key(explainer, k): v
               for k, v in summarize(similarity_table(m, test)).items()}
        for name, m in reference_maps(train, test).items()
    }
