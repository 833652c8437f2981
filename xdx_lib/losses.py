"""Loss terms of knowledge distillation. Each method is the cross-entropy plus its terms.

The prediction terms (cross-entropy, Hinton's KD), the feature and explanation terms of
the baselines (attention transfer, e2KD's Grad-CAM match) and XDistillation's explanation
loss ``L_exp`` between the CAE's map and the teacher's (:func:`explanation_loss`) all live
here, with the hooks that read a network's stage outputs for them (:func:`captured`).
Imports: torch, torchmetrics, :mod:`xdx_lib.registry` and ``xdx_lib._utils`` only.

Notation: ``s`` and ``t`` are student and teacher logits ``[N, K]``, ``y`` labels,
``tau`` the softmax temperature.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._utils import unwrap
from .registry import Registry


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float):
    r"""Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network".

    .. math::
        L_{KD} = \tau^2 \, \mathrm{KL}\big(\mathrm{softmax}(t/\tau) \,\|\,
                 \mathrm{softmax}(s/\tau)\big)

    averaged over the batch. The factor :math:`\tau^2` keeps the gradient's scale
    independent of the temperature, so the weight of this term need not change with it.

    Examples::

        >>> s = torch.tensor([[0.0, 0.0]]); t = torch.tensor([[0.0, 0.0]])
        >>> float(kd_loss(s, t, 4.0))
        0.0
    """
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * temperature**2


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / temperature)``: the teacher's "dark knowledge" at a temperature."""
    return F.softmax(logits.float() / temperature, dim=-1)


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The usual cross-entropy with the true labels, averaged over the batch."""
    return F.cross_entropy(student_logits.float(), labels)


@contextmanager
def capture_outputs(modules: Sequence[nn.Module]) -> Iterator[list]:
    """Record the outputs of ``modules`` during the forward passes inside the ``with`` block.

    Yields a list that fills with one output per module, in order of the modules; the hooks
    are removed on exit, also when the block raises (as pytorch-grad-cam's
    ``ActivationsAndGradients.release``). A training step uses :func:`captured` instead,
    whose hooks a compiled network also runs.
    """
    outputs: list = [None] * len(modules)

    def hook_for(i):
        def hook(module, inputs, output):
            outputs[i] = output

        return hook

    handles = [m.register_forward_hook(hook_for(i)) for i, m in enumerate(modules)]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


class OutputCapture:
    """The outputs of some modules during one forward pass, from hooks registered once.

    ``torch.compile`` traces a network with the hooks its modules have at the first call
    and does not see hooks added later, so a training step cannot hook a stage for its own
    pass (as :func:`capture_outputs` does). A method asks :func:`captured` for the one
    capture of a network and runs each forward pass through :meth:`run`. Outside
    :meth:`run` the hooks record nothing, so evaluation and explainers keep no activations
    alive through them.
    """

    def __init__(self, modules: Sequence[nn.Module]):
        self.outputs: list = [None] * len(modules)
        self.recording = False
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(modules)]

    def _hook(self, i: int):
        def hook(module, inputs, output):
            if self.recording:
                self.outputs[i] = output

        return hook

    def run(self, fn: Callable, *args, **kwargs) -> tuple[object, list]:
        """``fn(*args, **kwargs)`` while recording; returns its result and the outputs.

        The list is filled in place (a compiled graph writes into the list it was traced
        with) and emptied after each pass, so no pass reads another's outputs.

        Raises:
            RuntimeError: a captured module did not run in the pass.
        """
        self.recording = True
        try:
            result = fn(*args, **kwargs)
        finally:
            self.recording = False
        outputs = list(self.outputs)
        self.outputs[:] = [None] * len(outputs)
        if any(o is None for o in outputs):
            raise RuntimeError(
                f"{outputs.count(None)} of {len(outputs)} captured modules did not run in the "
                "forward pass; a network compiled before its capture was made never calls "
                "the hooks: make the capture (losses.captured) before the first call"
            )
        return result, outputs

    def remove(self) -> None:
        """Remove the hooks."""
        for h in self.handles:
            h.remove()


#: The captures of each network, by the part captured (``stages``, ``gradcam_layer``).
_CAPTURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def captured(model: nn.Module, part: str) -> OutputCapture:
    """The capture of the network's ``part`` (an attribute naming one module or a list of
    them: ``stages``, ``gradcam_layer``), made the first time the network is asked for.

    ``model`` may be wrapped by DDP or ``torch.compile``: the hooks go on the network inside
    (``xdx_lib._utils.unwrap``), and are found again whichever wrapper asks. The
    registry holds the network weakly, so a capture lives as long as its network.
    """
    net = unwrap(model)
    per_part = _CAPTURES.setdefault(net, {})
    if part not in per_part:
        modules = getattr(net, part)
        modules = [modules] if isinstance(modules, nn.Module) and not isinstance(
            modules, nn.ModuleList) else list(modules)  # fmt: skip
        per_part[part] = OutputCapture(modules)
    return per_part[part]


def attention_map(activations: torch.Tensor) -> torch.Tensor:
    r"""Zagoruyko & Komodakis (2017): the spatial attention of a stage, ``[N, H*W]``.

    .. math:: Q = \mathrm{vec}\Big(\frac{1}{C}\sum_{k=1}^{C} A_k^2\Big),
              \qquad \hat Q = Q / \lVert Q \rVert_2
    """
    q = activations.float().pow(2).mean(1).flatten(1)
    return F.normalize(q, dim=1)


def match_stages(student_feats: Sequence[torch.Tensor],
                 teacher_feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:  # fmt: skip
    """The teacher stage that attention transfer pairs with each student stage, explicitly.

    With as many stages on both sides, stage ``j`` with stage ``j``. Otherwise each student
    stage is paired with the teacher stage of the same spatial resolution (a ResNet-18's
    ``layer1..3`` with a 3-stage CNN's stages; its ``layer4`` has no partner and is not
    matched). Returns the teacher's features in the student's stage order.

    Raises:
        ValueError: a student stage has no teacher stage of its resolution.
    """
    if len(student_feats) == len(teacher_feats):
        return list(teacher_feats)
    by_size: dict = {}
    for t in teacher_feats:
        by_size.setdefault(tuple(t.shape[-2:]), t)
    out = []
    for j, s in enumerate(student_feats):
        size = tuple(s.shape[-2:])
        if size not in by_size:
            raise ValueError(
                f"attention transfer cannot pair student stage {j + 1} ({size[0]}x{size[1]}) "
                f"with a teacher stage: the teacher's stages are "
                f"{', '.join(f'{a}x{b}' for a, b in by_size)}; choose a student and a teacher "
                "with matching stage resolutions"
            )
        out.append(by_size[size])
    return out


def at_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]):
    r"""Attention transfer, "Paying More Attention to Attention" (Zagoruyko & Komodakis 2017).

    .. math:: L_{AT} = \sum_j \operatorname{mean}\big(\hat Q_S^j - \hat Q_T^j\big)^2

    over matched stages ``j`` (the authors' code: ``(at(x) - at(y)).pow(2).mean()``, used
    with a weight ``beta / 2``, ``beta = 1000``). A student stage of another resolution is
    resized to the teacher's first.

    Raises:
        ValueError: student and teacher have different numbers of stages (never a silent
            ``zip`` that drops the extra ones).
    """
    if len(student_feats) != len(teacher_feats):
        raise ValueError(
            f"attention transfer matches stages one to one, but the student has "
            f"{len(student_feats)} and the teacher {len(teacher_feats)}; pair them first "
            "with match_stages(student_feats, teacher_feats)"
        )
    total = student_feats[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student_feats, teacher_feats):
        if s.shape[-2:] != t.shape[-2:]:
            s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
        total = total + (attention_map(s) - attention_map(t)).pow(2).mean()
    return total


def gradcam_in_graph(logits: torch.Tensor, activations: torch.Tensor, target: torch.Tensor,
                     size: Sequence[int]) -> torch.Tensor:  # fmt: skip
    r"""Grad-CAM (Selvaraju et al. 2017) as a differentiable function of the network.

    .. math:: w_k = \frac{1}{HW}\sum_{ij} \frac{\partial y_c}{\partial A_{kij}},\qquad
              \mathrm{cam} = \mathrm{ReLU}\Big(\sum_k w_k A_k\Big)

    computed with ``create_graph=True``, so a loss on the map trains the network (e2KD).
    Returns ``[N, 1, *size]`` maps, bilinearly resized, not normalised.
    """
    score = logits.gather(1, target[:, None]).sum()
    grads = torch.autograd.grad(score, activations, create_graph=True)[0]
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(1, keepdim=True))
    return F.interpolate(cam.float(), size=tuple(size), mode="bilinear", align_corners=False)


def e2kd_loss(student_cam: torch.Tensor, teacher_maps: torch.Tensor) -> torch.Tensor:
    r"""e2KD's explanation term (Parchami-Araghi et al. 2024, "Good Teachers Explain"):
    ``mean_i (1 - cos(GradCAM_T(x_i), GradCAM_S(x_i)))`` over flattened maps. Both maps are
    the raw ReLU Grad-CAM, upsampled (the paper's code): cosine is scale-free but not
    shift-invariant, so a min-max normalised teacher map would be another target. A zero
    map has cosine 0 (the ``eps``), never NaN."""
    cos = F.cosine_similarity(student_cam.flatten(1), teacher_maps.float().flatten(1), dim=1,
                              eps=1e-8)  # fmt: skip
    return (1 - cos).mean()


# ----------------------------------------------------------------------------- explanation loss

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


@EXPLANATION_LOSSES.register("pearson")
def pearson_loss(pred: Tensor, target: Tensor) -> Tensor:
    r"""``1 - r`` per image, averaged: :math:`\frac{1}{N}\sum_i (1 - r(g(x_i), e_T(x_i)))`.

    Pearson's r over each image's pixels is blind to the map's offset and scale, so this
    loss is of the same size (between 0 and 2) whatever the maps' levels, unlike MSE of two
    [0, 1] maps, which is small beside cross-entropy and KD and makes the weight ``b``
    mean little. It asks for the map's *shape*, which is what the similarity metrics
    score. A constant map has no r; a small epsilon keeps the gradient finite there.
    """
    p = pred.flatten(1)
    t = target.flatten(1)
    p = p - p.mean(dim=1, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    r = (p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1) + 1e-8)
    return (1 - r).mean()


def explanation_loss(pred: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """The CAE's loss ``L_exp(g(x), e_T(x))``: ``"mse"``, ``"bce"``, ``"ssim"`` or ``"pearson"``.

    XDistillation's objective weighs it by ``b``. Computed in float32 with autocast off, so
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


