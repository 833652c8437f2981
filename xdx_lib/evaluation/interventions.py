"""What an XDistillation student takes from its map: its scores when shown other maps
than its CAE's, each on the scale of the CAE's own output for the image.

A student that ignores its map scores the same under every intervention of
:data:`INTERVENTIONS` (its own map, a flat one, the teacher's mean map, another image's,
the teacher's true map, the teacher's map of another class); one that leans on it loses
accuracy when the map is flat or another image's. The teacher's map of the class it ranks
next (:func:`other_class`) is the control for the true map: a student that gains as much
from it uses where the teacher looked, one that gains only from the true map reads the
teacher's class off it. :func:`intervention_maps` makes the maps, :func:`logits_with_maps` runs the
fused student (:class:`~xdx_lib.models.fusion.XDistillStudent`) on them, and
:func:`map_interventions` scores each.

Every replacement map is matched to the per-image statistics of the CAE's own map of that
image (:func:`match_moments`): shifted and scaled so that its mean and standard deviation
over the image's pixels are the CAE map's, so that only the map's content differs from what
the student saw in training. The teacher's maps are min-max scaled to [0, 1] per image,
while the CAE, trained with the loss ``1 - r`` (Pearson's r), has no fixed offset or scale:
without matching, a drop in accuracy could mean only that the student met an input unlike
any it trained on. Why the mean and standard deviation, and not the quantiles:

* ``1 - r`` is blind to exactly a per-image offset and a positive per-image scale, and to
  nothing else: a CAE that reproduced the teacher's map perfectly (``r = 1``) would output
  that map shifted and scaled, by the offset and scale that matching the mean and standard
  deviation of the CAE's output picks. Moment matching removes the freedom the CAE's
  training leaves and keeps everything ``r`` reads: the matched map has the same Pearson r
  with every other map as the replacement had.
* Quantile matching (the CAE's sorted values placed in the replacement's rank order) keeps
  the CAE's value distribution exactly, but reshapes the replacement by a monotone,
  non-linear map that changes its r with the teacher's map, so a teacher's map would no
  longer be the map the CAE was trained to reproduce; and where a map is flat (Grad-CAM's
  zeros, the plateau of the mean map) its ties have no order, so a tie-break would invent
  structure the replacement does not have.

The ``flat`` map is the "no information" control on the same scale: each image's CAE mean
at every pixel, zero spread (:func:`match_moments` of an all-zero map). It keeps the one
thing every matched replacement shares with the CAE's map, its level, and drops all
spatial content, so what a replacement adds over ``flat`` is its content alone; a map of
literal zeros would lie off the CAE's scale and confound the two again.

Layer: above the fused student, the trained models and the metrics; the studies
(:func:`xdx_lib.experiments.studies.intervention_rows`) cache its scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

from xdx_lib.core._utils import channels_last, eval_mode, model_device
from xdx_lib.metrics.predictions import accuracy, agreement
from xdx_lib.metrics.similarity import reference_maps
from xdx_lib.models.cae import predict_maps
from xdx_lib.models.fusion import XDistillStudent
from xdx_lib.training.trained_model import TrainedModel, model_maps, teacher_logits

#: What the XDistillation student is shown in place of its CAE's map, in
#: :func:`map_interventions`'s order (:func:`intervention_maps` says what each is).
INTERVENTIONS = ("own", "flat", "teacher mean", "other image", "teacher true",
                 "teacher other class")


def other_class(logits: Tensor, explained: Tensor) -> Tensor:
    """For each image, the class of highest logit other than ``explained`` (the class the
    teacher's true map explains: its prediction, or the label): its second choice when it
    explains its prediction."""
    masked = logits.float().clone()
    masked[torch.arange(len(masked)), explained.long()] = -torch.inf
    return masked.argmax(dim=1)


def match_moments(maps: Tensor, reference: Tensor) -> Tensor:
    """``maps`` shifted and scaled per image to the mean and standard deviation of
    ``reference`` over each image's pixels (both ``[N, ...]``; float32 out).

    Each map becomes ``mean_ref + sd_ref (m - mean_m) / sd_m`` (standard deviations with
    divisor the pixel count): the same content, as Pearson's r reads it, on the reference's
    level and spread. A map with no spread (``sd_m = 0``: all-zero, constant) has no content
    to scale and becomes the reference's mean at every pixel, never NaN. Computed in float64
    so that the matched moments are the reference's to float32 precision.

    Raises:
        ValueError: ``maps`` and ``reference`` differ in shape.
    """
    if maps.shape != reference.shape:
        raise ValueError(f"match_moments: maps {tuple(maps.shape)} and reference "
                         f"{tuple(reference.shape)} differ in shape")  # fmt: skip
    m = maps.double().flatten(1)
    r = reference.double().flatten(1)
    m_sd, m_mean = torch.std_mean(m, dim=1, correction=0, keepdim=True)
    r_sd, r_mean = torch.std_mean(r, dim=1, correction=0, keepdim=True)
    spread = m_sd > 0
    scaled = (m - m_mean) / torch.where(spread, m_sd, torch.ones_like(m_sd))
    out = r_mean + torch.where(spread, r_sd * scaled, torch.zeros_like(scaled))
    return out.float().reshape(maps.shape)


def derangement(n: int, seed: int = 0) -> Tensor:
    """A permutation of ``range(n)`` with no fixed point, the same for the same ``n`` and
    ``seed``: a seeded random order of the indices, each sent to the next one in it (one
    cycle through all ``n``), so that every image is given another image's map.

    Raises:
        ValueError: fewer than two indices (one cannot be moved).
    """
    if n < 2:
        raise ValueError(f"a derangement needs at least two items, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = torch.empty(n, dtype=torch.long)
    out[order] = order.roll(-1)
    return out


def intervention_maps(run: TrainedModel, teacher: TrainedModel, data,
                      seed: int = 0) -> dict[str, Tensor]:  # fmt: skip
    """The maps shown to an XDistillation student for each of :data:`INTERVENTIONS`, on the
    test split: ``[N, 1, H, W]`` each, on the CPU, each replacement matched to the mean and
    standard deviation of the CAE's own map of the same image (:func:`match_moments`).

    * ``own``: its CAE's map of the image (what it sees when deployed), as it is;
    * ``flat``: the CAE map's mean for the image at every pixel, no spread: the "no
      information" control on the CAE's scale;
    * ``teacher mean``: the mean over the training split of the teacher's maps, as the CAE
      learned them (:func:`~xdx_lib.distill.cae_pretraining.pretrain_cae`'s targets: the option's
      explainer and class): the same content for every image;
    * ``other image``: its CAE's map of another test image (a fixed :func:`derangement`,
      seeded by ``seed``);
    * ``teacher true``: the teacher's own map of the image, what the CAE was trained to
      reproduce;
    * ``teacher other class``: the teacher's map of the same image for another class
      (:func:`other_class`): where the teacher looks for its second choice, the control
      that tells where it looked from which class it saw.

    Raises:
        ValueError: ``run`` is not an XDistillation student with channel or gate fusion.
    """
    model = run.model
    if not isinstance(model, XDistillStudent) or model.fusion == "feature":
        fusion = getattr(model, "fusion", "none")
        raise ValueError(f"map interventions need an XDistillation student with channel or "
                         f"gate fusion; got {type(model).__name__} (fusion {fusion})")  # fmt: skip
    opts = run.method.opts
    by_label = opts.map_target == "label"
    train_maps = model_maps(teacher, data.train.x, opts.explainer, split="train",
                            target=data.train.y if by_label else None)  # fmt: skip
    own = predict_maps(model.cae, data.test.x)
    t_logits = teacher_logits(teacher, data, ("test",))["test"]
    explained = data.test.y if by_label else t_logits.argmax(dim=1)
    replacements = {
        "flat": torch.zeros_like(own),
        "teacher mean": reference_maps(train_maps, own)["mean teacher map"],
        "other image": own[derangement(len(own), seed)],
        "teacher true": model_maps(teacher, data.test.x, opts.explainer,
                                   target=data.test.y if by_label else None),
        "teacher other class": model_maps(teacher, data.test.x, opts.explainer,
                                          target=other_class(t_logits, explained)),
    }  # fmt: skip
    matched = {name: match_moments(m, own) for name, m in replacements.items()}
    return {name: own if name == "own" else matched[name] for name in INTERVENTIONS}


@torch.no_grad()
def logits_with_maps(model: XDistillStudent, x: Tensor, maps: Tensor,
                     batch_size: int = 512) -> Tensor:  # fmt: skip
    """The student's logits of ``x`` when it is shown ``maps`` in place of its CAE's:
    batched, without gradients, in eval mode, on the model's device; float32 on the CPU."""
    device = model_device(model)
    out = []
    with eval_mode(model):
        for s in range(0, len(x), batch_size):
            xb = channels_last(x[s : s + batch_size].to(device))
            out.append(model(xb, maps=maps[s : s + batch_size].to(device)).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def map_interventions(run: TrainedModel, teacher: TrainedModel, data,
                      seed: int = 0) -> dict[str, dict[str, float]]:  # fmt: skip
    """What an XDistillation student takes from its map: its test accuracy (against the
    labels) and agreement (against the teacher's predictions) when shown each map of
    :func:`intervention_maps` in place of its CAE's.

    A student that ignores its map scores the same under every intervention; one that
    leans on it loses accuracy when the map is flat or another image's, and may gain
    when shown the teacher's true map.

    Returns:
        ``{intervention: {"accuracy": a, "agreement": g}}`` in :data:`INTERVENTIONS`' order.
    """
    maps = intervention_maps(run, teacher, data, seed)
    t_logits = teacher_logits(teacher, data, ("test",))["test"]
    out = {}
    for name, m in maps.items():
        logits = logits_with_maps(run.model, data.test.x, m)
        out[name] = {"accuracy": accuracy(logits, data.test.y),
                     "agreement": agreement(logits, t_logits)}  # fmt: skip
    return out
