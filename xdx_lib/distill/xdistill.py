"""XDistillation (Alharbi, Vu & Thai 2021): a student that learns the teacher's
explanations through a convolutional autoencoder, and how it is trained.

The deployed model is ``g + S``: the CAE ``g`` (:mod:`xdx_lib.models.cae`) turns an image into an
explanation map, and the student ``S`` classifies the image *with* that map (the paper's
"explainable-features fusion"). No teacher or explainer is needed at inference, and one
forward pass returns the logits and an explanation. Training minimises

.. math::
    L = (1 - a)\\,\\mathrm{CE}(S, y) + a\\,t^2\\,\\mathrm{KL}(p_T^t \\| p_S^t)
        + b\\,L_{exp}\\big(g(x), e_T(x)\\big)

where ``e_T(x)`` is the teacher's explanation (a :class:`~xdx_lib.distill.signals.Signal`) and
``L_exp`` is ``1 - Pearson r`` per image by default
(:func:`xdx_lib.distill.explanation_losses.explanation_loss`; MSE, BCE and SSIM are options). By
default (``schedule: staged``) ``g`` is trained first, alone, on the teacher's maps
(:func:`~xdx_lib.distill.cae_pretraining.pretrain_cae`), then frozen while ``S`` learns from the
first two terms, so the CAE stays an explanation of the teacher. With ``schedule: joint`` both learn
together, and ``cae_grad: exp`` (default) still lets only ``L_exp`` train ``g``: the student sees
``g``'s map detached.

This module holds the method and its options: XDistillation's training hooks
(:class:`XDistill`, :class:`XDistillOptions`, :data:`SCHEDULES`, :data:`CAE_GRADS`) and
``kd_cae`` (:class:`KDWithCAE`), a KD student deploying the same pre-trained CAE's maps,
which reads what the fusion adds. Its parts have modules of their own: the fused student
(:class:`~xdx_lib.models.fusion.XDistillStudent`), the CAE's stand-alone pre-training on the
cached teacher maps (:func:`~xdx_lib.distill.cae_pretraining.pretrain_cae`), and the map
interventions (:func:`~xdx_lib.evaluation.interventions.map_interventions`), which show the student
other maps than its CAE's. Layer: beside :mod:`xdx_lib.distill.method`, above the fused student,
the CAE's pre-training, the trained models and the losses; it never imports the runner.

What is the paper's and what is ours: the paper names the CAE approximating the teacher's
explanations and the fusion of its output into the student, trained with KD. The three
fusion modes, the weight ``b``, the loss ``L_exp``, the two schedules, which losses train
the CAE (``cae_grad``) and a decoder that stops at the explainer's grid (``cae_output``)
are our reading; each is a config option so that the book can ablate it, and the defaults
were chosen by measurement (the XDistillation chapter shows the table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from xdx_lib.core.config import RunConfig
from xdx_lib.core.devices import resolve_device
from xdx_lib.core.registry import declare_choices
from xdx_lib.distill.cae_pretraining import build_cae, pretrain_cae
from xdx_lib.distill.explanation_losses import explanation_loss
from xdx_lib.distill.kd import KD, KDOptions
from xdx_lib.distill.method import METHODS, TRACKED_TEST_IMAGES
from xdx_lib.distill.signals import Signal, SignalKind
from xdx_lib.metrics.similarity import pearson
from xdx_lib.models.cae import predict_maps
from xdx_lib.models.classifiers import create_model
from xdx_lib.models.fusion import XDistillStudent
from xdx_lib.training.trained_model import model_maps

#: The schedules, ``joint`` (the CAE trains with the student) or ``staged`` (first, alone;
#: see :class:`XDistill`).
SCHEDULES = declare_choices("schedule", ("joint", "staged"))
#: The gradient routings, ``exp`` (``L_exp`` alone trains the CAE; the student sees its
#: output detached) or ``all`` (the task and KD gradients reach it through the fusion too).
CAE_GRADS = declare_choices("cae grad", ("exp", "all"))


@dataclass(frozen=True)
class XDistillOptions(KDOptions):
    """XDistillation's options: KD's, then the explanation it learns, how, and its CAE.

    Attributes:
        explainer, map_target: the teacher explanation ``e_T`` (explainer, class explained).
        beta, exp_loss: the weight ``b`` and the loss ``L_exp``.
        fusion, schedule, cae_grad, cae_freeze: how the student sees the map, when and from
            what the CAE learns (see :class:`XDistill`).
        cae_variant, cae_output, cae_depth, cae_width, cae_epochs: the CAE and its
            pre-training (:func:`~xdx_lib.distill.cae_pretraining.build_cae`,
            :func:`~xdx_lib.distill.cae_pretraining.pretrain_cae`).
    """

    explainer: str
    map_target: str
    beta: float
    exp_loss: str
    fusion: str
    schedule: str
    cae_grad: str
    cae_freeze: bool
    cae_variant: str
    cae_output: str
    cae_depth: int
    cae_width: int
    cae_epochs: int


@METHODS.register("xdistill")
class XDistill(KD):
    r"""XDistillation: KD plus ``b * L_exp(g(x), e_T(x))``, with ``S`` fed by ``g``.

    ``cae_grad: exp`` (default) routes only ``L_exp``'s gradient into ``g``; ``all`` lets
    the task and KD terms reach it through the fusion (the ablation).

    Schedules: ``staged`` (default) first trains ``g`` alone on the cached teacher maps
    (:func:`~xdx_lib.distill.cae_pretraining.pretrain_cae`, cached), then trains ``S`` with ``g``
    frozen (``cae_freeze``, default) or fine-tuned with the same loss; ``joint`` trains
    ``g`` and ``S`` together from the start. Only a CAE that still learns reads the
    teacher's maps per batch, so the default asks for the teacher's logits alone
    (:meth:`signals`).
    """

    name = "xdistill"
    Options: ClassVar[type] = XDistillOptions

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        self._pretrained: dict | None = None
        self.tracked_cae_target: Tensor | None = None

    @property
    def frozen(self) -> bool:
        return self.opts.schedule == "staged" and self.opts.cae_freeze

    @property
    def learns_maps(self) -> bool:
        """Whether ``L_exp`` trains the CAE while the student learns (it then reads the
        teacher's maps in every batch)."""
        return not self.frozen and self.opts.beta > 0

    @property
    def may_leave_parameters_unused(self) -> bool:
        """A CAE that is not frozen but gets no explanation loss (``beta: 0``, ``joint`` or
        ``cae_freeze: false``) learns nothing from ``L_exp``: with ``cae_grad: exp`` no
        gradient reaches it at all, and with ``feature`` fusion its decoder gets none."""
        return not self.frozen and self.opts.beta == 0

    @property
    def imitated_explainer(self) -> str:
        return self.opts.explainer

    def signals(self) -> list[Signal]:
        maps = Signal(SignalKind.MAPS, self.opts.explainer, target=self.opts.map_target)
        return [Signal(SignalKind.LOGITS)] + ([maps] if self.learns_maps else [])

    def prepare(self, teacher, data) -> None:
        """Fetch the teacher's test maps the CAE is tracked on; for ``staged``, pre-train
        ``g`` (:func:`~xdx_lib.distill.cae_pretraining.pretrain_cae`, cached)."""
        super().prepare(teacher, data)
        target = data.test.y if self.opts.map_target == "label" else None
        test_maps = model_maps(teacher, data.test.x, self.opts.explainer, target=target)
        self.tracked_cae_target = test_maps[:TRACKED_TEST_IMAGES]
        if self.opts.schedule == "staged":
            cae_run = pretrain_cae(self.cfg, data, teacher, verbose=False)
            self._pretrained = cae_run.model.state_dict()

    def build_model(self, in_channels: int, num_classes: int) -> nn.Module:
        cae = build_cae(self.cfg, in_channels)
        if self._pretrained is not None:
            cae.load_state_dict(self._pretrained)
        fusion = self.opts.fusion
        s_in = in_channels + 1 if fusion == "channel" else in_channels
        student = create_model(self.cfg.student, s_in, num_classes)
        return XDistillStudent(cae, student, fusion, freeze_cae=self.frozen,
                               detach=self.opts.cae_grad == "exp")  # fmt: skip

    def forward(self, model: nn.Module, batch: dict) -> dict:
        logits, m = model(batch["x"], return_map=True)
        return {"logits": logits, "map": m}

    def deployed_maps(self, model: nn.Module, x: Tensor) -> Tensor:
        """The CAE's maps: the explanation the deployed student returns with its logits."""
        return predict_maps(model.cae, x)

    def epoch_metrics(self, model: nn.Module, split, extras: dict,
                      logits: Tensor) -> dict[str, float]:  # fmt: skip
        """The students' metrics, then the Pearson r of the CAE's maps with the teacher's on
        the :data:`~xdx_lib.distill.method.TRACKED_TEST_IMAGES` test images that Grad-CAM is
        tracked on (the final number, on the whole split, is the evaluation's)."""
        out = super().epoch_metrics(model, split, extras, logits)
        if self.tracked_cae_target is not None:
            target = self.tracked_cae_target
            maps = predict_maps(model.cae, split.x[: len(target)])
            out["cae_pearson"] = pearson(maps, target).mean().item()
        return out

    def loss_terms(self, out: dict, batch: dict) -> dict[str, Tensor]:
        terms = super().loss_terms(out, batch)
        if self.learns_maps:
            exp = explanation_loss(out["map"].float(), batch["teacher_maps"], self.opts.exp_loss)
            terms["exp"] = self.opts.beta * exp
        return terms


@METHODS.register("kd_cae")
class KDWithCAE(KD):
    r"""A KD student with XDistillation's pre-trained CAE attached, and no fusion: the fair
    baseline of XDistillation's deployed explanation.

    A ``staged`` XDistillation student with a frozen CAE deploys the CAE's map of the image,
    which does not depend on the student at all, so the same CAE beside a plain KD student
    deploys the very same map. ``kd_cae`` trains exactly as ``kd`` and shares its students
    (``shares_training_of``: one training and one checkpoint for both); once the student is
    trained or loaded, :meth:`attach` loads (or pre-trains) the CAE that
    :func:`~xdx_lib.distill.cae_pretraining.pretrain_cae` gives for the config and seed, the one
    XDistillation of that seed starts from, and :meth:`deployed_maps` returns its maps. Its
    logits are KD's, its explanation XDistillation's: comparing it with ``xdistill``
    separates what fusing the map changes from what the CAE alone gives. The CAE reads the
    config's XDistillation fields (``explainer``, ``map_target``, ``cae_*``), which do not
    enter the student's key; :meth:`attach` records the CAE's cache key in the method's
    ``attached_key``, so that the scores of a ``kd_cae`` student change with its CAE.
    """

    name = "kd_cae"
    shares_training_of = "kd"

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        self.cae: nn.Module | None = None

    @property
    def imitated_explainer(self) -> str:
        return self.cfg.explainer

    def attach(self, teacher, data) -> None:
        """Load (or pre-train and cache) the config's CAE, on the device the run uses."""
        cae_run = pretrain_cae(self.cfg, data, teacher, verbose=False)
        self.cae = cae_run.model.to(resolve_device(self.cfg.device)).eval()
        self.attached_key = cae_run.key

    def attached_modules(self) -> list[nn.Module]:
        """The attached CAE, which the deployed baseline runs beside its student."""
        return [] if self.cae is None else [self.cae]

    def deployed_maps(self, model: nn.Module, x: Tensor) -> Tensor:
        """The attached CAE's maps of ``x`` (the student ``model`` plays no part)."""
        if self.cae is None:
            raise RuntimeError("kd_cae deploys its CAE's maps: call attach(teacher, data) "
                               "first (a Session does, for every student it returns)")  # fmt: skip
        return predict_maps(self.cae, x)
