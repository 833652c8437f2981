"""XDistillation (Alharbi, Vu & Thai 2021): a student that learns the teacher's
explanations through a convolutional autoencoder, and how it is trained.

The deployed model is ``g + S``: the CAE ``g`` (:mod:`xdx_lib.cae`) turns an image into an
explanation map, and the student ``S`` classifies the image *with* that map (the paper's
"explainable-features fusion"). No teacher or explainer is needed at inference, and one
forward pass returns the logits and an explanation. Training minimises

.. math::
    L = (1 - a)\\,\\mathrm{CE}(S, y) + a\\,t^2\\,\\mathrm{KL}(p_T^t \\| p_S^t)
        + b\\,L_{exp}\\big(g(x), e_T(x)\\big)

where ``e_T(x)`` is the teacher's explanation (a :class:`~xdx_lib.signals.Signal`) and
``L_exp`` is ``1 - Pearson r`` per image by default (:func:`xdx_lib.losses.explanation_loss`;
MSE, BCE and SSIM are options). By default (``schedule: staged``) ``g`` is trained first,
alone, on the teacher's maps (:func:`pretrain_cae`), then frozen while ``S`` learns from the
first two terms, so the CAE stays an explanation of the teacher. With ``schedule: joint``
both learn together, and ``cae_grad: exp`` (default) still lets only ``L_exp`` train ``g``:
the student sees ``g``'s map detached.

This module holds the whole method: the fused student (:class:`XDistillStudent`), its
training hooks (:class:`XDistill`), the CAE's stand-alone pre-training on the cached
teacher maps (:func:`pretrain_cae`, cached; its loop :func:`fit_cae`), which the ``staged``
schedule and the CAE chapter use, and two ways to read what the fusion adds: ``kd_cae``
(:class:`KDWithCAE`), a KD student deploying the same pre-trained CAE's maps, and the map
interventions (:func:`map_interventions`), which show the student other maps than its
CAE's. Layer: beside :mod:`xdx_lib.methods`, above the trained models, the loop, the CAE
and the losses; it never imports the config or the runner.

What is the paper's and what is ours: the paper names the CAE approximating the teacher's
explanations and the fusion of its output into the student, trained with KD. The three
fusion modes, the weight ``b``, the loss ``L_exp``, the two schedules, which losses train
the CAE (``cae_grad``) and a decoder that stops at the explainer's grid (``cae_output``)
are our reading; each is a config option so that the book can ablate it, and the defaults
were chosen by measurement (the XDistillation chapter shows the table).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ._utils import channels_last, eval_mode, model_device
from .cache import atomic_torch_save, hash_dict, runs_dir
from .cae import create_cae, predict_maps
from .config import RunConfig
from .losses import EXPLANATION_LOSSES, explanation_loss
from .methods import KD, METHODS, TRACKED_TEST_IMAGES, KDOptions
from .metrics import accuracy, agreement, pearson, reference_maps
from .models import create_model
from .registry import declare_choices
from .signals import Signal
from .train import (
    autocast,
    epoch_batches,
    grad_scaler,
    load_checkpoint,
    optimizer_step,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from .trained import DATA_FIELDS, TrainedModel, model_maps, pick, teacher_logits, tensor_hash

#: The ways the student sees the CAE's map (see :class:`XDistillStudent`).
FUSIONS = declare_choices("fusion", ("channel", "gate", "feature"))
#: The schedules, ``joint`` (the CAE trains with the student) or ``staged`` (first, alone;
#: see :class:`XDistill`).
SCHEDULES = declare_choices("schedule", ("joint", "staged"))
#: The gradient routings, ``exp`` (``L_exp`` alone trains the CAE; the student sees its
#: output detached) or ``all`` (the task and KD gradients reach it through the fusion too).
CAE_GRADS = declare_choices("cae grad", ("exp", "all"))


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
    ``forward(x, return_map=True)`` returns ``(logits, m)`` from the same pass, and
    ``forward(x, maps=m2)`` shows ``S`` the maps ``m2`` in place of ``g(x)`` (channel and
    gate fusion; :func:`map_interventions` asks what the student takes from its map).

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


@dataclass(frozen=True)
class XDistillOptions(KDOptions):
    """XDistillation's options: KD's, then the explanation it learns, how, and its CAE.

    Attributes:
        explainer, map_target: the teacher explanation ``e_T`` (explainer, class explained).
        beta, exp_loss: the weight ``b`` and the loss ``L_exp``.
        fusion, schedule, cae_grad, cae_freeze: how the student sees the map, when and from
            what the CAE learns (see :class:`XDistill`).
        cae_variant, cae_output, cae_depth, cae_width, cae_epochs: the CAE and its
            pre-training (:func:`build_cae`, :func:`pretrain_cae`).
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
    (:func:`pretrain_cae`, cached), then trains ``S`` with ``g`` frozen (``cae_freeze``,
    default) or fine-tuned with the same loss; ``joint`` trains ``g`` and ``S`` together
    from the start. Only a CAE that still learns reads the teacher's maps per batch, so the
    default asks for the teacher's logits alone (:meth:`signals`).
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
        maps = Signal("maps", self.opts.explainer, target=self.opts.map_target)
        return [Signal("logits")] + ([maps] if self.learns_maps else [])

    def prepare(self, teacher, data) -> None:
        """Fetch the teacher's test maps the CAE is tracked on; for ``staged``, pre-train
        ``g`` (:func:`pretrain_cae`, cached)."""
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
        the :data:`~xdx_lib.methods.TRACKED_TEST_IMAGES` test images that Grad-CAM is
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
    :func:`pretrain_cae` gives for the config and seed, the one XDistillation of that seed
    starts from, and :meth:`deployed_maps` returns its maps. Its logits are KD's, its
    explanation XDistillation's: comparing it with ``xdistill`` separates what fusing the
    map changes from what the CAE alone gives. The CAE reads the config's XDistillation
    fields (``explainer``, ``map_target``, ``cae_*``), which do not enter the student's key.
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


# ----------------------------------------------------------------------------- CAE pre-training


def fit_cae(
    cae: nn.Module,
    x: Tensor,
    maps: Tensor,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    loss: str = "mse",
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = False,
    amp: str = "auto",
) -> list[float]:
    """Train the CAE alone to reproduce cached teacher maps: the ``staged`` schedule's stage 1.

    Minimises ``explanation_loss(cae(x), maps, loss)`` with Adam on tensors held in memory
    (no DataLoader: Fashion-MNIST fits in memory many times over). Batches are drawn from a
    permutation seeded by ``(seed, epoch)`` (:func:`xdx_lib.train.epoch_batches`, the same
    rule as the student's loop), so a run is reproducible on a CPU given the CAE's initial
    weights; each step is the loop's :func:`~xdx_lib.train.optimizer_step`. The forward
    pass runs under the precision ``amp`` picks (:func:`~xdx_lib.train.resolve_precision`:
    none on a CPU by default); the loss is taken in float32.

    Args:
        cae: the autoencoder (trained in place; its train/eval mode is restored after).
        x: images ``[N, C, H, W]`` in [0, 1] (any device; batches are moved).
        maps: the teacher's maps ``[N, 1, H, W]`` in [0, 1], aligned with ``x``.
        epochs: passes over the data.
        batch_size: images per step.
        lr: Adam's learning rate.
        loss: a name in :data:`~xdx_lib.losses.EXPLANATION_LOSSES`.
        device: where to train; ``None`` keeps the device the CAE's parameters are on.
        seed: seeds the shuffling.
        progress: show a tqdm bar per epoch.
        amp: mixed precision, as the student loop's.

    Returns:
        The mean training loss of each epoch (weighted by batch size), ``len == epochs``.

    Raises:
        ValueError: misaligned ``x`` and ``maps`` or an unknown ``loss``.
        FloatingPointError: the loss became NaN or inf.
    """
    EXPLANATION_LOSSES.get(loss)  # fail before any work on an unknown name
    _check_aligned(x, maps)
    device = model_device(cae) if device is None else torch.device(device)
    cae.to(device, memory_format=torch.channels_last)  # as every model trains (fit)
    was_training = cae.training
    cae.train()
    opt = torch.optim.Adam(cae.parameters(), lr=lr)
    dtype = resolve_precision(amp, device)
    scaler = grad_scaler(device, dtype)
    history: list[float] = []
    try:
        for epoch in range(epochs):
            batches = epoch_batches(len(x), batch_size, seed, epoch)
            bar = tqdm(batches, total=math.ceil(len(x) / batch_size), leave=False,
                       desc=f"CAE epoch {epoch + 1}/{epochs}", disable=not progress)
            total, seen = 0.0, 0
            for step, idx in enumerate(bar):
                value = _cae_step(cae, x[idx], maps[idx], loss, opt, scaler, device, dtype,
                                  f"CAE loss at epoch {epoch + 1} step {step}")  # fmt: skip
                total += value * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{value:.4f}")
            history.append(total / max(seen, 1))
    finally:
        cae.train(was_training)
    return history


def _check_aligned(x: Tensor, maps: Tensor) -> None:
    """Images ``[N, C, H, W]`` and maps ``[N, 1, H, W]`` of the same images and size."""
    if len(x) != len(maps) or maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(
            f"x {tuple(x.shape)} and maps {tuple(maps.shape)} must be aligned [N, C, H, W] "
            "and [N, 1, H, W]"
        )
    if maps.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"maps are {tuple(maps.shape[-2:])}, images {tuple(x.shape[-2:])}")


def _cae_step(cae: nn.Module, xb: Tensor, mb: Tensor, loss: str, opt, scaler, device,
              dtype, where: str) -> float:  # fmt: skip
    """One optimiser step of the CAE on a batch; returns the batch's loss."""
    xb = channels_last(xb.to(device, torch.float32, non_blocking=True))
    mb = mb.to(device, torch.float32, non_blocking=True)
    with autocast(device, dtype):
        pred = cae(xb)
    value = explanation_loss(pred, mb, loss)
    optimizer_step(opt, value, where, remedy="check the maps", scaler=scaler)
    return value.item()


#: Config fields that determine a CAE trained alone on the teacher's maps.
CAE_FIELDS = DATA_FIELDS + ("explainer", "map_target", "cae_width", "cae_epochs", "exp_loss",
                            "batch_size", "seed", "cae_output", "cae_depth")  # fmt: skip


def build_cae(cfg: RunConfig, in_channels: int, variant: str | None = None) -> nn.Module:
    """The CAE a config names: ``variant`` (default ``cfg.cae_variant``), ``cae_output``,
    ``cae_depth`` and ``cae_width``, untrained."""
    return create_cae(variant or cfg.cae_variant, in_channels, width=cfg.cae_width,
                      depth=cfg.cae_depth, output=cfg.cae_output)  # fmt: skip


@dataclass
class TrainedCAE:
    """An explanation autoencoder trained alone on a teacher's cached maps.

    Attributes:
        model: the :class:`~xdx_lib.cae.CAE`, in eval mode.
        path: its checkpoint.
        history: the mean training loss of each epoch.
        key: its cache key.
        seconds: wall time of its training (0 when it was loaded from the cache).
    """

    model: nn.Module
    path: Path
    history: list[float]
    key: str
    seconds: float = 0.0


def pretrain_cae(cfg: RunConfig, data, teacher: TrainedModel, variant: str | None = None,
                 verbose: bool = True, settings: dict | None = None) -> TrainedCAE:  # fmt: skip
    """Train (or load) the CAE ``variant`` (default ``cfg.cae_variant``) on the teacher's maps.

    The maps are the teacher's ``cfg.explainer`` explanations (with the explainer's
    ``settings``, e.g. ``{"n_steps": 8}``) of ``data``'s training split, from the cache
    (:func:`~xdx_lib.trained.model_maps`); ``cfg`` is a :class:`~xdx_lib.config.RunConfig`.
    The cache key holds a hash of the training images, so a CAE trained on a smaller
    split is never mistaken for another. This is the first stage of the ``staged``
    schedule, the subject of the CAE chapter's ablation, and its amortised explainers.
    """
    cfg = cfg.resolved()
    variant = variant or cfg.cae_variant
    settings = dict(settings or {})
    key = hash_dict({**pick(cfg, CAE_FIELDS), "variant": variant, "settings": settings,
                     "inputs": tensor_hash(data.train.x),
                     "teacher": teacher.checkpoint_hash})  # fmt: skip
    path = runs_dir() / "cae" / f"{cfg.dataset}-{cfg.cae_output}-{variant}-{key}" / "model.pt"
    seed_everything(cfg.seed)
    cae = build_cae(cfg, data.in_channels, variant)
    if path.is_file():
        ckpt = load_checkpoint(path, cae, meta={"variant": variant, "key": key})
        cae.to(memory_format=torch.channels_last).eval()  # as trained (fit_cae)
        return TrainedCAE(cae, path, list(ckpt["history"]), key)
    target = data.train.y if cfg.map_target == "label" else None
    maps = model_maps(teacher, data.train.x, cfg.explainer, split="train", target=target,
                      **settings)  # fmt: skip
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    history = fit_cae(cae, data.train.x, maps, cfg.cae_epochs, batch_size=cfg.batch_size,
                      loss=cfg.exp_loss, device=device, seed=cfg.seed, amp=cfg.amp)  # fmt: skip
    seconds = time.perf_counter() - t0
    if verbose:
        print(f"CAE {variant}: loss per epoch {[round(v, 4) for v in history]}, {seconds:.1f} s")
    atomic_torch_save({"model": cae.state_dict(), "history": history, "seconds": seconds,
                       "meta": {"variant": variant, "key": key}}, path)  # fmt: skip
    cae.eval()
    return TrainedCAE(cae, path, history, key, seconds)


# ----------------------------------------------------------------------------- map interventions

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
      learned them (:func:`pretrain_cae`'s targets: the option's explainer and class);
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
