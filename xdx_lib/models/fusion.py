"""XDistillation's deployed student: the CAE ``g`` and the classifier ``S``, fused, so that
``S`` classifies an image *with* the explanation map ``g`` makes of it (the paper's
"explainable-features fusion").

:class:`XDistillStudent` is one ``nn.Module`` with three ways for ``S`` to see the map
(:data:`FUSIONS`) and a switch for the gradient routing; ``forward(x, maps=...)`` shows
``S`` other maps than ``g``'s, which :mod:`xdx_lib.evaluation.interventions` uses to ask what the
student takes from its map. How it is trained is :mod:`xdx_lib.distill.xdistill`'s. Layer: beside
the CAE (:mod:`xdx_lib.models.cae`); only torch and the registry's choices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdx_lib.core.registry import declare_choices

#: The ways the student sees the CAE's map (see :class:`XDistillStudent`).
FUSIONS = declare_choices("fusion", ("channel", "gate", "feature"))


def _out_channels(module: nn.Module) -> int:
    """Channels a block outputs: those of its last convolution or batch norm."""
    last = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))][-1]
    return last.num_features if isinstance(last, nn.BatchNorm2d) else last.out_channels


class XDistillStudent(nn.Module):
    """The XDistillation student: the CAE ``g`` and the student network ``S``, fused.

    Fusion modes (how ``S`` sees ``m = g(x)``):

    * ``channel`` (default): ``S([x, m])``, the map as one more input channel;
    * ``gate``: ``S(x * (1 + m))``, the map brightens what it marks as relevant;
    * ``feature``: the CAE's bottleneck features ``z`` join a middle feature map ``h`` of
      ``S`` (its ``fusion_layer``) as ``h' = conv1x1([h, resize(z)])``, through one
      forward hook.

    ``forward(x)`` returns the logits, so explainers and evaluation treat it as any classifier
    (Grad-CAM explains ``S``'s last stage, see ``gradcam_layer``); ``forward(x, return_map=True)``
    returns ``(logits, m)`` from the same pass, and ``forward(x, maps=m2)`` shows ``S`` the maps
    ``m2`` in place of ``g(x)`` (channel and gate fusion;
    :func:`~xdx_lib.evaluation.interventions.map_interventions` asks what the student takes from its
    map).

    **Gradient routing.** With ``detach=True`` (``cae_grad: exp``, the default) the student
    receives ``m`` (or, for ``feature``, ``z``) detached: the cross-entropy and KD terms
    train ``S`` only, and ``g`` learns from the explanation loss alone, so it stays an
    approximation of the teacher's explanation. With ``detach=False`` (``cae_grad: all``)
    the task gradients reach ``g`` through the fusion as well, and are free to turn it into
    a feature extractor for ``S``.

    Args:
        cae: the autoencoder ``g``.
        student: the classifier ``S``; with ``channel`` fusion it takes one more channel.
        fusion: ``channel``, ``gate`` or ``feature``.
        freeze_cae: keep ``g``'s weights and batch-norm statistics fixed (``staged``).
        detach: hand ``S`` the CAE's output without its gradient (see above).
    """

    def __init__(self, cae: nn.Module, student: nn.Module, fusion: str = "channel",
                 freeze_cae: bool = False, detach: bool = True):  # fmt: skip
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of: {', '.join(FUSIONS)}")
        self.cae, self.student, self.fusion = cae, student, fusion
        self.freeze_cae, self.detach = freeze_cae, detach
        if freeze_cae:
            self.cae.requires_grad_(False)
        self._z: Tensor | None = None
        if fusion == "feature":
            c = _out_channels(student.fusion_layer)
            self.project = nn.Conv2d(c + cae.bottleneck_channels, c, kernel_size=1)
            student.fusion_layer.register_forward_hook(self._fuse_features)

    def _fuse_features(self, module, inputs, h: Tensor) -> Tensor:
        """Forward hook on ``S.fusion_layer``: concatenate the CAE's features, project."""
        if self._z is None:
            raise RuntimeError("feature fusion needs the CAE's features: call the wrapper")
        z = F.interpolate(self._z, size=h.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([h, z.to(h.dtype)], dim=1))

    def train(self, mode: bool = True) -> XDistillStudent:
        """As ``nn.Module.train``, but a frozen CAE stays in eval mode."""
        super().train(mode)
        if self.freeze_cae:
            self.cae.eval()
        return self

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.student.gradcam_layer

    @property
    def stages(self) -> list[nn.Module]:
        return self.student.stages

    @property
    def fusion_layer(self) -> nn.Module:
        return self.student.fusion_layer

    def forward(self, x: Tensor, return_map: bool = False, maps: Tensor | None = None):
        """The logits of ``x``, and with ``return_map`` the map ``S`` saw: ``(logits, m)``.

        ``maps`` (``[N, 1, H, W]`` on the scale of the CAE's output, [0, 1]) replace
        ``g(x)`` as what ``S`` sees, with channel or gate fusion; feature fusion feeds ``S``
        the CAE's features, not its map, and refuses them (ValueError).
        """
        if maps is not None:
            _check_given_maps(maps, x, self.fusion)
        if self.fusion == "feature":
            m, z = self.cae.forward_with_features(x)
            self._z = z.detach() if self.detach else z
            try:
                logits = self.student(x)
            finally:
                self._z = None
        else:
            m = self.cae(x) if maps is None else maps.to(x.device)
            seen = m.detach() if self.detach else m
            fused = (torch.cat([x, seen.to(x.dtype)], 1) if self.fusion == "channel"
                     else x * (1 + seen))  # fmt: skip
            logits = self.student(fused)
        return (logits, m) if return_map else logits


def _check_given_maps(maps: Tensor, x: Tensor, fusion: str) -> None:
    """Maps given in place of the CAE's must be ``[N, 1, H, W]`` for ``x`` ``[N, C, H, W]``,
    and the fusion must feed the student a map."""
    if fusion == "feature":
        raise ValueError("feature fusion feeds the student the CAE's features, not its map; "
                         "maps can replace the map with channel or gate fusion only")  # fmt: skip
    want = (len(x), 1, *x.shape[-2:])
    if tuple(maps.shape) != want:
        raise ValueError(f"maps {tuple(maps.shape)} should be {want} for images "
                         f"{tuple(x.shape)}")  # fmt: skip
