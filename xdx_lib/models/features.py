"""What a network's stages output, read by forward hooks, and the attention maps of them.

:func:`captured` hooks a model's named part once (:class:`OutputCapture`) so that a method
reads the stage outputs of every forward pass; :func:`capture_outputs` is the one-off form.
:func:`attention_map` and :func:`match_stages` turn stage outputs into the attention maps
attention transfer compares.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from xdx_lib.core._utils import unwrap


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
    (``xdx_lib.core._utils.unwrap``), and are found again whichever wrapper asks. The
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
