"""Typed run configuration and the run profiles (smoke, book, colab, paper).

A :class:`RunConfig` names everything one training run needs: data, models, schedule,
device, method and its options. It loads from YAML or a dict and is validated on load: each
bad field gives one clear line naming the field, the value and what is allowed. Fields left
as ``None`` are filled from the chosen :data:`PROFILES` entry, so ``profile: smoke``
alone is a complete config.

Every field is declared once, with :func:`option`: its type, default, a help line, and the
*kind* of name it takes (``"method"``, ``"fusion"``, ...). Validation looks those names up
in :mod:`xdx_lib.core.registry` at run time, and the command line (``python -m xdx_lib``)
builds its flags, help, choices and defaults from the same fields, so a new option appears
everywhere at once. Each method reads its own options as a small typed dataclass made from
this config (``Method.Options``, e.g. :class:`xdx_lib.distill.kd.KDOptions`), and that class
checks the rules between the method and the other fields (:func:`validate`).

Layer: the bottom, beside the registry: it imports only :mod:`xdx_lib.core.registry`, so every
module may name :class:`RunConfig` as a type.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from xdx_lib.core.registry import choices, options_class


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
        teacher_subset: the teacher's training images, the students' among them (None: the
            students' own).
        val_size: training images no model trains on, the validation split that KD's
            weight and temperature are chosen on.
        experiment: the experiment the chapters run on this profile (``configs/<name>.yaml``).
        chapter: sizes the chapters use beside the run config (images shown, timed,
            explained by slow explainers, judged for faithfulness; CAE epochs; training and
            test images of the CAEs that amortise a dear explainer, and that explainer's
            steps or samples; seeds of each XDistillation variant when choosing the
            defaults, on tune seeds; the sampling explainers' steps and samples in the
            explainers chapter; how often the KD chapter doubles the students' epochs to
            judge their plateau). A notebook parameter of 0 means "the profile's"
            (:func:`xdx_lib.report.notebook.sizes`).
    """

    train_subset: int | None
    test_subset: int | None
    teacher: str
    student: str
    teacher_epochs: int
    student_epochs: int
    batch_size: int
    lr: float
    teacher_subset: int | None = None
    val_size: int = 0
    experiment: str = ""
    chapter: Mapping[str, int] = field(default_factory=dict)

    def run_defaults(self) -> dict[str, Any]:
        """The :class:`RunConfig` fields the profile fills (all but ``experiment`` and
        ``chapter``, which are the chapters' own)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("experiment", "chapter")}  # fmt: skip


#: ``smoke``: seconds per notebook, for CI. ``book``: the 2-core CPU default, real
#: accuracies within the 60 minutes of ``make book``; its students train 32 epochs, short
#: of their plateau, which the KD chapter measures against 64 on validation and the results
#: chapter states; its teacher is the ``colab`` profile's (15 epochs, the same cache key),
#: so that the two differ in their students alone. ``colab``: the plateau profile, one free
#: Colab T4: the ``book`` profile's data, models and teacher, students trained 96 epochs
#: (checked against 192), more seeds and the slow explainers on more images
#: (``benchmarks/profile_budget.py`` sizes it). ``paper``: a GPU, full data and schedules.
#: Each profile also names the experiment its chapters run and their sizes: what a profile
#: means is stated here alone.
PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        1024, 512, "cnn_teacher", "student_small", 1, 1, 64, 1e-2, val_size=256,
        experiment="fashion_mnist_smoke",
        chapter={"n_show": 4, "n_timed": 16, "n_faithful": 8, "n_slow": 16, "n_slow_gap": 32,
                 "cae_epochs": 1, "n_amortised": 64, "n_amortised_test": 16, "dear_steps": 4,
                 "variant_seeds": 1, "ig_steps": 8, "shap_samples": 4, "lime_samples": 50,
                 "plateau_doublings": 1}),
    "book": Profile(
        5000, None, "cnn_teacher", "student_small", 15, 32, 64, 1e-2, teacher_subset=55000,
        val_size=5000, experiment="fashion_mnist_book",
        chapter={"n_show": 8, "n_timed": 256, "n_faithful": 64, "n_slow": 64, "n_slow_gap": 128,
                 "cae_epochs": 2, "n_amortised": 512, "n_amortised_test": 256, "dear_steps": 8,
                 "variant_seeds": 1, "ig_steps": 32, "shap_samples": 16, "lime_samples": 200,
                 "plateau_doublings": 1}),
    "paper": Profile(
        None, None, "resnet18_cifar", "student_medium", 60, 60, 128, 1e-3, val_size=5000,
        experiment="cifar10_paper",
        chapter={"n_show": 8, "n_timed": 256, "n_faithful": 64, "n_slow": 64, "n_slow_gap": 256,
                 "cae_epochs": 2, "n_amortised": 10000, "n_amortised_test": 1000,
                 "dear_steps": 32, "variant_seeds": 3, "ig_steps": 32, "shap_samples": 16,
                 "lime_samples": 200, "plateau_doublings": 1}),
    "colab": Profile(
        5000, None, "cnn_teacher", "student_small", 15, 96, 64, 1e-2, teacher_subset=55000,
        val_size=5000, experiment="fashion_mnist_colab",
        chapter={"n_show": 8, "n_timed": 256, "n_faithful": 64, "n_slow": 64, "n_slow_gap": 256,
                 "cae_epochs": 2, "n_amortised": 2000, "n_amortised_test": 500, "dear_steps": 16,
                 "variant_seeds": 2, "ig_steps": 32, "shap_samples": 16, "lime_samples": 200,
                 "plateau_doublings": 1}),
}  # fmt: skip


def option(default: Any, help: str, group: str, kind: str | None = None) -> Any:
    """A :class:`RunConfig` field: its default, a one-line ``help``, the ``group`` it belongs
    to (data, models, schedule, device, kd, explanations, xdistill, at, e2kd) and the
    ``kind`` of name it takes (validated against :func:`xdx_lib.core.registry.choices`)."""
    return field(default=default, metadata={"help": help, "group": group, "kind": kind})


@dataclass
class RunConfig:
    """Everything that determines one teacher or student run.

    Fields left ``None`` take the profile's value (see :data:`~xdx_lib.core.config.PROFILES`). Each
    field's help line is the command line's (``python -m xdx_lib distill --help``).
    """

    dataset: str = option("fashion_mnist", "the dataset", "data", kind="dataset")
    profile: str = option("book", "sizes and schedules (smoke: CI; book: 2 CPU cores; "
                          "colab: a Colab T4; paper: a GPU)", "data", kind="profile")  # fmt: skip
    data_root: str | None = option(None, "data folder (None: the project's data/)", "data")
    download: bool | None = option(None, "allow torchvision to download missing data "
                                   "(None: XDX_DOWNLOAD=1 decides)", "data")  # fmt: skip
    train_subset: int | None = option(None, "images kept of the training split "
                                      "(None: the profile's)", "data")  # fmt: skip
    test_subset: int | None = option(None, "images kept of the test split (None: the "
                                     "profile's)", "data")  # fmt: skip
    subset_seed: int = option(0, "which subset; the same for every method and seed", "data")
    teacher_subset: int | None = option(None, "the teacher's training images, the students' "
                                        "among them (None: the profile's)", "data")  # fmt: skip
    val_size: int | None = option(None, "training images held out for validation, where "
                                  "KD's weight and temperature are chosen; no model trains "
                                  "on them (None: the profile's)", "data")  # fmt: skip
    image_size: int = option(32, "imagefolder only: images are resized to this square", "data")
    grayscale: bool = option(False, "imagefolder only: read images as grey", "data")
    augment: bool = option(False, "augment the students' batches (flips/crops for RGB, "
                           "shifts for grey); needs teacher_signal online", "data")  # fmt: skip
    teacher_augment: bool = option(True, "augment the teacher's training batches (its logits "
                                   "and maps are of un-augmented images)", "data")  # fmt: skip
    teacher: str | None = option(None, "teacher model (None: the profile's)", "models",
                                 kind="model")  # fmt: skip
    student: str | None = option(None, "student model (None: the profile's)", "models",
                                 kind="model")  # fmt: skip
    teacher_seed: int = option(0, "the teacher's seed; one teacher serves every student",
                               "models")  # fmt: skip
    teacher_epochs: int | None = option(None, "the teacher's passes over the training "
                                        "subset (None: the profile's)", "schedule")  # fmt: skip
    student_epochs: int | None = option(None, "a student's passes over the training subset "
                                        "(None: the profile's)", "schedule")  # fmt: skip
    batch_size: int | None = option(None, "images per step (None: the profile's)", "schedule")
    lr: float | None = option(None, "peak learning rate of AdamW, cosine decay (None: the "
                              "profile's)", "schedule")  # fmt: skip
    weight_decay: float = option(5e-4, "AdamW's weight decay", "schedule")
    seed: int = option(0, "the student's seed: initialisation and data order", "schedule")
    device: str = option("auto", "auto | cpu | cuda | cuda:N | mps", "device")
    amp: str = option("auto", "mixed precision: auto (bf16 on GPUs with bf16 tensor cores "
                      "and on CPUs with bf16 matrix units, fp16 on older GPUs, none on other "
                      "CPUs), bf16, fp16 or off", "device",
                      kind="precision")  # fmt: skip
    compile: bool = option(False, "torch.compile the trained network (CUDA only)", "device")
    teacher_signal: str = option("cached", "the teacher's logits and maps: cached (computed "
                                 "once) or online (on each augmented batch)", "device",
                                 kind="teacher signal")  # fmt: skip
    method: str = option("kd", "the training method", "method", kind="method")
    alpha: float = option(0.9, "weight of the KD term; 1 - alpha weighs cross-entropy", "kd")
    temperature: float = option(4.0, "softmax temperature of KD", "kd")
    explainer: str = option("gradcam", "the teacher explanation the CAE learns",
                            "explanations", kind="explainer")  # fmt: skip
    map_target: str = option("pred", "the class the teacher's maps explain: its prediction "
                             "or the label", "explanations", kind="map target")  # fmt: skip
    beta: float = option(1.0, "weight b of the explanation loss L_exp", "xdistill")
    exp_loss: str = option("pearson", "L_exp, the CAE's map against the teacher's",
                           "xdistill", kind="explanation loss")  # fmt: skip
    fusion: str = option("channel", "how the student sees the CAE's map", "xdistill",
                         kind="fusion")  # fmt: skip
    schedule: str = option("staged", "staged: the CAE is trained first, alone; joint: with "
                           "the student", "xdistill", kind="schedule")  # fmt: skip
    cae_grad: str = option("exp", "exp: only L_exp trains the CAE (the student sees its map "
                           "detached); all: CE and KD reach it too", "xdistill",
                           kind="cae grad")  # fmt: skip
    cae_variant: str = option("skips", "the CAE's convolutions and skips (both: the "
                              "paper's two changes)", "xdistill", kind="cae variant")  # fmt: skip
    cae_output: str = option("grid", "grid: the decoder stops at the explainer's grid, then "
                             "upsamples; full: up to the input's size", "xdistill",
                             kind="cae output")  # fmt: skip
    cae_depth: int = option(2, "stride-2 blocks of the CAE", "xdistill")
    cae_width: int = option(16, "channels of the CAE's first block", "xdistill")
    cae_epochs: int = option(6, "staged: epochs of the CAE's pre-training on the teacher's "
                             "maps", "xdistill")  # fmt: skip
    cae_freeze: bool = option(True, "staged: keep the pre-trained CAE frozen", "xdistill")
    at_beta: float = option(1000.0, "weight of attention transfer's term", "at")
    e2kd_weight: float = option(1.0, "weight of e2KD's 1 - cos(GradCAM_T, GradCAM_S) term",
                                "e2kd")  # fmt: skip

    def __post_init__(self) -> None:
        validate(self)

    def resolved(self) -> RunConfig:
        """A copy with every ``None`` schedule/model field filled from the profile."""
        p = PROFILES[self.profile]
        updates = {k: v for k, v in p.run_defaults().items() if getattr(self, k) is None}
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


#: The kinds of name whose choices this module defines, not the registry: the field that
#: names a profile takes its choices from :data:`PROFILES`.
_CHOICES_DEFINED_HERE = {"profile": lambda: tuple(PROFILES)}


def kind_choices(kind: str) -> tuple[str, ...]:
    """The allowed names of a field's ``kind`` (registries, declared lists, profiles)."""
    local = _CHOICES_DEFINED_HERE.get(kind)
    return local() if local else choices(kind)


#: Numeric fields that must be at least 1 (None, where allowed, means "the profile's").
AT_LEAST_ONE = ("train_subset", "test_subset", "teacher_subset", "teacher_epochs",
                "student_epochs", "batch_size", "image_size", "cae_width", "cae_epochs",
                "cae_depth")  # fmt: skip
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
    the named choices of each field's kind, devices, and the cross-field rules.

    The rules between the method and the other fields (a method that reads the teacher
    refuses augmented batches with cached signals, e2KD refuses ``compile``) belong to the
    method, and its options class checks them (``check``, see
    :class:`xdx_lib.distill.method.MethodOptions`). Each method declares that class when it
    registers, and the registry records it, so validation looks the class up by the
    method's name (:func:`xdx_lib.core.registry.options_class`) and calls its check: a lookup
    at run time, as every kind's choices are, that builds no method and no model and keeps
    this module from importing the methods above it.
    """

    def bad(name, msg):
        raise ConfigError(f"config: {name}={getattr(cfg, name)!r} {msg}")

    for name, annotation in _field_types().items():
        value = getattr(cfg, name)
        if not fits_type(value, annotation):
            bad(name, f"has the wrong type; expected {_type_name(annotation)}")
        if isinstance(value, float) and not math.isfinite(value):
            bad(name, "is not a finite number; give a finite value")
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        kind = f.metadata.get("kind")
        if kind is not None and value is not None and value not in kind_choices(kind):
            bad(f.name, f"is unknown; choose one of: {', '.join(kind_choices(kind))}")
    if cfg.device not in ("auto", "cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+",
                                                                           cfg.device):
        bad("device", "is unknown; choose auto, cpu, cuda, cuda:N or mps")
    for name in AT_LEAST_ONE:
        v = getattr(cfg, name)
        if v is not None and v < 1:
            bad(name, "must be at least 1")
    for name in NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            bad(name, "must be >= 0")
    if cfg.val_size is not None and cfg.val_size < 0:
        bad("val_size", "must be >= 0")
    if cfg.lr is not None and not cfg.lr > 0:
        bad("lr", "must be positive")
    if not 0.0 <= cfg.alpha <= 1.0:
        bad("alpha", "must lie in [0, 1]")
    if not cfg.temperature > 0:
        bad("temperature", "must be positive")
    options_class("method", cfg.method).check(cfg)  # the method's cross-field rules


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
