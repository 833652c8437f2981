"""What an XDistillation student takes from its map: its scores when shown other maps
than its CAE's.

A student that ignores its map scores the same under every intervention of
:data:`INTERVENTIONS` (its own map, an empty one, the teacher's mean map, another image's,
the teacher's true map); one that leans on it loses accuracy when the map is zeroed or
another image's. :func:`intervention_maps` makes the maps, :func:`logits_with_maps` runs the
fused student (:class:`~xdx_lib.fusion.XDistillStudent`) on them, and
:func:`map_interventions` scores each. Layer: above the fused student, the trained models
and the metrics; the studies (:func:`xdx_lib.studies.intervention_rows`) cache its scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._utils import channels_last, eval_mode, model_device
from .cae import predict_maps
from .fusion import XDistillStudent
from .metrics import accuracy, agreement, reference_maps
from .trained import TrainedModel, model_maps, teacher_logits

#: What the XDistillation student is shown in place of its CAE's map, in
#: :func:`map_interventions`'s order (:func:`intervention_maps` says what each is).
INTERVENTIONS = ("own", "zeroed", "teacher mean", "other image", "teacher true")


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
    test split: ``[N, 1, H, W]`` each, on the CPU, on the scale of the CAE's output.

    * ``own``: its CAE's map of the image (what it sees when deployed);
    * ``zeroed``: an empty map;
    * ``teacher mean``: the mean over the training split of the teacher's maps, as the CAE
      learned them (:func:`~xdx_lib.cae_training.pretrain_cae`'s targets: the option's
      explainer and class);
    * ``other image``: its CAE's map of another test image (a fixed :func:`derangement`,
      seeded by ``seed``);
    * ``teacher true``: the teacher's own map of the image, what the CAE was trained to
      reproduce.

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
    return {
        "own": own,
        "zeroed": torch.zeros_like(own),
        "teacher mean": reference_maps(train_maps, own)["mean teacher map"],
        "other image": own[derangement(len(own), seed)],
        "teacher true": model_maps(teacher, data.test.x, opts.explainer,
                                   target=data.test.y if by_label else None),
    }  # fmt: skip


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
    leans on it loses accuracy when the map is zeroed or another image's, and may gain
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
