"""Typed run configuration and the run profiles (smoke, book, paper).

A :class:`RunConfig` names everything one training run needs: data, models, schedule,
method and its options. It loads from YAML or a dict and is validated on load: each bad
field gives one clear line naming the field, the value and what is allowed. Fields left
as ``None`` are filled from the chosen :data:`PROFILES` entry, so ``profile: smoke``
alone is a complete config.

Every :class:`RunConfig` is validated where it is made (``__post_init__``), so a config
built in Python, by ``dataclasses.replace``, from YAML or from the command line passes the
same checks: types, finite numbers, ranges, choices (:data:`CHOICES`) and the rules that
tie fields together (:func:`validate`).

The allowed names come from where each thing is defined, never from a second list here:
the registries of datasets, models, explainers, explanation losses and methods, the CAE
variants, XDistillation's fusions and schedules. Layer: the config sits above everything it
names (data, models, explainers, losses, methods) and below the runner, the notebooks and
the command line; nothing below it imports it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .cae import CAE_OUTPUTS, CAE_VARIANTS
from .data import DATASETS
from .explain import EXPLAINERS
from .losses import EXPLANATION_LOSSES
from .methods import MAP_TARGETS, METHODS
from .models import MODELS
from .xdistill import CAE_GRADS, FUSIONS, SCHEDULES


class ConfigError(ValueError):
    """A config value is wrong; the message names the field and what it accepts."""


@dataclass(frozen=True)
class Profile:
    """Sizes and schedules for one kind of machine.

    Attributes:
        train_subset, test_subset: images kept of each split (None: all).
        teacher, student: default model names.
        teacher_epochs, student_epochs: passes over the training subset.
        batch_size: images per optimiser step.
        lr: peak learning rate of AdamW with a cosine schedule.
    """

    train_subset: int | None
    test_subset: int | None
    teacher: str
    student: str
    teacher_epochs: int
    student_epochs: int
    batch_size: int
    lr: float


#: ``smoke``: seconds per notebook, for CI. ``book``: the 2-core CPU default, real
#: accuracies in minutes. ``paper``: a GPU, full data and schedules.
PROFILES: dict[str, Profile] = {
    "smoke": Profile(1024, 512, "cnn_teacher", "student_small", 1, 1, 64, 1e-2),
    "book": Profile(10000, None, "cnn_teacher", "student_small", 6, 3, 64, 1e-2),
    "paper": Profile(None, None, "resnet18_cifar", "student_medium", 60, 60, 128, 1e-3),
}


@dataclass
class RunConfig:
    """Everything that determines one teacher or student run.

    Fields left ``None`` take the profile's value (see :data:`PROFILES`).
    """

    # data
    dataset: str = "fashion_mnist"  # fashion_mnist | mnist | cifar10 | imagefolder | shapes
    profile: str = "book"  # smoke | book | paper
    data_root: str | None = None  # default: the project's data/ folder
    download: bool | None = None  # None: XDX_DOWNLOAD=1 decides
    train_subset: int | None = None  # images of the training split (None: profile)
    test_subset: int | None = None  # images of the test split (None: profile)
    subset_seed: int = 0  # which subset; the same for every method and seed
    image_size: int = 32  # imagefolder only: images are resized to this square
    grayscale: bool = False  # imagefolder only
    augment: bool = False  # students: per-image flips/crops (RGB) or shifts (grey); needs online
    teacher_augment: bool = True  # standard augmentation of the teacher's training images
    # (logits and maps are computed on un-augmented images)
    # models
    teacher: str | None = None  # model name (None: profile)
    student: str | None = None  # model name (None: profile)
    teacher_seed: int = 0  # one teacher is shared by every student seed
    # schedule
    teacher_epochs: int | None = None
    student_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 5e-4
    seed: int = 0  # the student's seed: initialisation and data order
    device: str = "auto"  # auto | cpu | cuda | mps
    amp: bool = True  # mixed precision (bfloat16) on CUDA; ignored elsewhere
    compile: bool = False  # torch.compile the trained network (CUDA only; ignored elsewhere)
    # method
    method: str = "kd"  # scratch | kd | at | e2kd | xdistill
    alpha: float = 0.9  # weight of the KD term; (1 - alpha) weighs cross-entropy
    temperature: float = 4.0  # softmax temperature of KD
    # XDistillation and the explanation baselines (at, e2kd)
    explainer: str = "gradcam"  # the teacher explanation the CAE learns and e2KD matches
    map_target: str = "pred"  # pred | label: the class the teacher's maps explain
    beta: float = 1.0  # weight b of the explanation loss L_exp (xdistill)
    exp_loss: str = "pearson"  # pearson | mse | bce | ssim: L_exp, CAE map vs teacher's map
    fusion: str = "channel"  # channel | gate | feature: how the student sees the CAE's map
    schedule: str = "staged"  # staged: the CAE is trained first, alone; joint: with the student
    cae_grad: str = "exp"  # exp: the CAE learns from L_exp alone, the student sees its map
    # detached; all: CE and KD gradients reach the CAE through the fusion too
    cae_variant: str = "skips"  # plain | separable | skips | both (the paper's two changes)
    cae_output: str = "grid"  # grid: decoder stops at the explainer's grid, then upsamples;
    # full: decoder up to the input's resolution
    cae_depth: int = 2  # stride-2 blocks of the CAE (2: a 7x7 grid for 28x28 images)
    cae_width: int = 16  # channels of the CAE's first block
    cae_epochs: int = 6  # staged: epochs of CAE pre-training on the cached teacher maps
    cae_freeze: bool = True  # staged: keep the pre-trained CAE frozen while the student learns
    at_beta: float = 1000.0  # weight of attention transfer's term (Zagoruyko & Komodakis)
    e2kd_weight: float = 1.0  # weight of e2KD's 1 - cos(GradCAM_T, GradCAM_S) term
    # cached | online: teacher logits/maps from the cache, or computed on each (augmented) batch
    teacher_signal: str = "cached"

    def __post_init__(self) -> None:
        validate(self)

    def resolved(self) -> RunConfig:
        """A copy with every ``None`` schedule/model field filled from the profile."""
        p = PROFILES[self.profile]
        updates = {
            f.name: getattr(p, f.name)
            for f in fields(Profile)
            if getattr(self, f.name) is None
        }
        return dataclasses.replace(self, **updates)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fits_type(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits a type annotation (bool is not an int; an int is a float).

    Used for config fields and for notebook parameters alike.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(fits_type(value, a) for a in typing.get_args(annotation))
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or annotation)


#: The sources of a teacher's logits and maps, ``cached`` (computed once on the
#: un-augmented images) or ``online`` (the teacher run on each, augmented, batch).
TEACHER_SIGNALS = ("cached", "online")

#: The allowed values of every field that names one thing, each from where it is defined
#: (a registry's ``names`` is called at validation time, so late registrations count). A new
#: field with a list of choices needs one entry here and nothing else.
CHOICES: dict[str, Iterable[str] | Callable[[], Iterable[str]]] = {
    "dataset": DATASETS.names,
    "profile": lambda: tuple(PROFILES),
    "method": METHODS.names,
    "map_target": MAP_TARGETS,
    "explainer": EXPLAINERS.names,
    "exp_loss": EXPLANATION_LOSSES.names,
    "fusion": FUSIONS,
    "schedule": SCHEDULES,
    "cae_variant": lambda: tuple(CAE_VARIANTS),
    "cae_output": CAE_OUTPUTS,
    "cae_grad": CAE_GRADS,
    "teacher_signal": TEACHER_SIGNALS,
}

#: Numeric fields that must be at least 1 (None, where allowed, means "the profile's").
AT_LEAST_ONE = ("train_subset", "test_subset", "teacher_epochs", "student_epochs", "batch_size",
                "image_size", "cae_width", "cae_epochs", "cae_depth")  # fmt: skip
#: Numeric fields that must be >= 0.
NON_NEGATIVE = ("weight_decay", "beta", "at_beta", "e2kd_weight")


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(RunConfig)


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def validate(cfg: RunConfig) -> None:
    """Check every field of ``cfg`` and the rules between fields; raise one ConfigError line.

    Runs from ``RunConfig.__post_init__``, so no config escapes it: types (bool is not an
    int), finite numbers (NaN passes every range check, so it is refused first), ranges,
    :data:`CHOICES`, devices and models, and the cross-field rules.
    """

    def bad(name, msg):
        raise ConfigError(f"config: {name}={getattr(cfg, name)!r} {msg}")

    for name, annotation in _field_types().items():
        value = getattr(cfg, name)
        if not fits_type(value, annotation):
            bad(name, f"has the wrong type; expected {_type_name(annotation)}")
        if isinstance(value, float) and not math.isfinite(value):
            bad(name, "is not a finite number; give a finite value")
    for name, allowed in CHOICES.items():
        allowed = tuple(allowed() if callable(allowed) else allowed)
        if getattr(cfg, name) not in allowed:
            bad(name, f"is unknown; choose one of: {', '.join(allowed)}")
    if cfg.device not in ("auto", "cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+",
                                                                           cfg.device):
        bad("device", "is unknown; choose auto, cpu, cuda, cuda:N or mps")
    for name in ("teacher", "student"):
        if getattr(cfg, name) is not None and getattr(cfg, name) not in MODELS:
            bad(name, f"is not a model; choose one of: {', '.join(MODELS.names())}")
    for name in AT_LEAST_ONE:
        v = getattr(cfg, name)
        if v is not None and v < 1:
            bad(name, "must be at least 1")
    for name in NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            bad(name, "must be >= 0")
    if cfg.lr is not None and not cfg.lr > 0:
        bad("lr", "must be positive")
    if not 0.0 <= cfg.alpha <= 1.0:
        bad("alpha", "must lie in [0, 1]")
    if not cfg.temperature > 0:
        bad("temperature", "must be positive")
    # cross-field rules
    method = METHODS.get(cfg.method)
    uses_teacher = method.needs_teacher_logits or method.needs_teacher_maps
    if cfg.augment and cfg.teacher_signal == "cached" and uses_teacher:
        raise ConfigError(
            f"config: augment=True with teacher_signal='cached' would train method "
            f"{cfg.method!r} on teacher logits and maps of un-augmented images; "
            "set teacher_signal: online or augment: false"
        )


def config_from_dict(d: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a dict (unknown keys are errors)."""
    if not isinstance(d, dict):
        raise ConfigError(f"config: expected a mapping of field: value, got {type(d).__name__}")
    known = _field_types()
    for key in d:
        if key not in known:
            raise ConfigError(
                f"config: unknown field {key!r}; known fields: {', '.join(sorted(known))}"
            )
    return dataclasses.replace(base or RunConfig(), **d)  # validated by __post_init__


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; any problem is one ConfigError line.

    ``what`` names the file in the message ("config file", "experiment config").
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())
        raise ConfigError(f"{what} {path} is not valid YAML: {msg}; fix the syntax") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{what} {path} cannot be read ({e}); check the file") from None
    if d is None:
        raise ConfigError(
            f"{what} {path} is empty; give at least one field (e.g. `profile: smoke`)"
        )
    if not isinstance(d, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of field: value")
    return d


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config file, apply ``overrides`` (e.g. from the command line), validate."""
    d = read_yaml_mapping(path, "config file")
    return config_from_dict({**d, **(overrides or {})})
