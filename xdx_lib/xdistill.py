"""XDistillation (Alharbi, Vu & Thai 2021): a student that learns the teacher's
explanations through a convolutional autoencoder, and how it is trained.

The deployed model is ``g + S``: the CAE ``g`` (:mod:`xdx_lib.cae`) turns an image into an
explanation map, and the student ``S`` classifies the image *with* that map (the paper's
"explainable-features fusion"). No teacher or explainer is needed at inference, and one
forward pass returns the logits and an explanation. Training minimises

.. math::
    L = (1 - a)\\,\\mathrm{CE}(S, y) + a\\,t^2\\,\\mathrm{KL}(p_T^t \\| p_S^t)
        + b\\,L_{exp}\\big(g(x), e_T(x)\\big)

where ``e_T(x)`` is the teacher's cached explanation
(:meth:`~xdx_lib.methods.Method.teacher_maps`) and
``L_exp`` is MSE by default (:func:`xdx_lib.cae.explanation_loss`).

What is the paper's and what is ours: the paper names the CAE approximating the teacher's
explanations and the fusion of its output into the student, trained with KD. The three
fusion modes, the weight ``b``, the loss ``L_exp`` and the two schedules are our reading;
each is a config option so that the book can ablate it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cae import CAE, create_cae, explanation_loss
from .methods import KD, METHODS
from .models import create_model

FUSIONS = ("channel", "gate", "feature")


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

    ``forward(x)`` returns the logits, so explainers and evaluation treat it as any
    classifier (Grad-CAM explains ``S``'s last stage, see ``gradcam_layer``);
    ``forward(x, return_map=True)`` returns ``(logits, m)`` from the same pass.

    Args:
        cae: the autoencoder ``g``.
        student: the classifier ``S``; with ``channel`` fusion it takes one more channel.
        fusion: ``channel``, ``gate`` or ``feature``.
        freeze_cae: keep ``g``'s weights and batch-norm statistics fixed (``staged``).
    """

    def __init__(self, cae: CAE, student: nn.Module, fusion: str = "channel",
                 freeze_cae: bool = False):  # fmt: skip
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of: {', '.join(FUSIONS)}")
        self.cae, self.student, self.fusion = cae, student, fusion
        self.freeze_cae = freeze_cae
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

    def explain(self, x: Tensor) -> Tensor:
        """The student's own explanation of ``x``: the CAE's map ``[N, 1, H, W]``."""
        return self.cae(x)

    def forward(self, x: Tensor, return_map: bool = False):
        if self.fusion == "feature":
            m, self._z = self.cae.forward_with_features(x)
            try:
                logits = self.student(x)
            finally:
                self._z = None
        else:
            m = self.cae(x)
            fused = torch.cat([x, m.to(x.dtype)], 1) if self.fusion == "channel" else x * (1 + m)
            logits = self.student(fused)
        return (logits, m) if return_map else logits


@METHODS.register("xdistill")
class XDistill(KD):
    r"""XDistillation: KD plus ``b * L_exp(g(x), e_T(x))``, with ``S`` fed by ``g``.

    Schedules: ``joint`` (default) trains ``g`` and ``S`` together from the start;
    ``staged`` first trains ``g`` alone on the cached teacher maps
    (:func:`xdx_lib.experiments.train_cae`, cached), then trains ``S`` with ``g``
    frozen (``cae_freeze``, default) or fine-tuned with the same loss.
    """

    name = "xdistill"
    needs_teacher_logits = True
    needs_teacher_maps = True
    config_fields = ("alpha", "temperature", "beta", "exp_loss", "fusion", "schedule",
                     "cae_variant", "cae_width", "cae_epochs", "cae_freeze", "explainer",
                     "map_target")  # fmt: skip

    def __init__(self, cfg):
        super().__init__(cfg)
        self._pretrained: dict | None = None

    @property
    def frozen(self) -> bool:
        return self.cfg.schedule == "staged" and self.cfg.cae_freeze

    def prepare(self, teacher, data, extras: dict) -> dict:
        """Cache the teacher's maps (train and test); for ``staged``, pre-train ``g``."""
        extras["train"]["teacher_maps"] = self.teacher_maps(teacher, data, "train")
        extras["test"]["teacher_maps"] = self.teacher_maps(teacher, data, "test")
        if self.cfg.schedule == "staged":
            from .experiments import train_cae

            cae_run = train_cae(self.cfg, data, teacher, verbose=False)
            self._pretrained = cae_run.model.state_dict()
        return extras

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        cfg = self.cfg
        cae = create_cae(cfg.cae_variant, in_channels, width=cfg.cae_width)
        if self._pretrained is not None:
            cae.load_state_dict(self._pretrained)
        s_in = in_channels + 1 if cfg.fusion == "channel" else in_channels
        student = create_model(cfg.student, s_in, num_classes)
        return XDistillStudent(cae, student, cfg.fusion, freeze_cae=self.frozen)

    def forward(self, model: nn.Module, batch: dict) -> dict:
        logits, m = model(batch["x"], return_map=True)
        return {"logits": logits, "map": m}

    def logits(self, model: nn.Module, x: Tensor) -> Tensor:
        return model(x)

    def epoch_metrics(self, model: nn.Module, split, extras: dict) -> dict[str, float]:
        """After each epoch: Pearson r of the CAE's test maps with the teacher's."""
        if "teacher_maps" not in extras:
            return {}
        from .cae import predict_maps
        from .metrics import pearson

        maps = predict_maps(model.cae, split.x)
        return {"cae_pearson": pearson(maps, extras["teacher_maps"]).mean().item()}

    def loss_terms(self, out: dict, batch: dict) -> dict[str, Tensor]:
        terms = super().loss_terms(out, batch)
        if not self.frozen and self.cfg.beta > 0:
            exp = explanation_loss(out["map"].float(), batch["teacher_maps"], self.cfg.exp_loss)
            terms["exp"] = self.cfg.beta * exp
        return terms
