"""The run cache's layout: every folder, key recipe and format version, in one place.

Everything expensive is stored under the run cache (:func:`~xdx_lib.core.cache.runs_dir`,
``runs/`` by default) and keyed by what determines it, so that a second run trains nothing:

=================================================  ===========================================
``teachers/<dataset>-<model>-<key>/model.pt``      a teacher (:func:`teacher_key`)
``students/<dataset>-<method>-<model>-s<seed>-``   a student (:func:`student_key`), with its
``<key>/model.pt``                                 ``interventions.json`` beside it
``cae/<dataset>-<output>-<variant>-<key>/``        a CAE trained alone on a teacher's maps
``model.pt``                                       (:func:`cae_key`)
``maps/<explainer>-<split>-<key>.pt``              a model's explanation maps (:func:`maps_key`)
``<experiment>/results/<label>.json``              a scored run of an experiment
                                                   (:func:`result_key`)
=================================================  ===========================================

A key is a short hash (:func:`~xdx_lib.core.cache.hash_dict`) of the config fields that
determine the thing, the keys of what it is made from, and a format version. A student's and
a CAE's key hold their teacher's *key*, not a hash of its checkpoint file (which stores an
epoch's wall time), so two builds of one commit give the same folders. Maps are keyed by the
explained model's checkpoint hash: they are read from those exact weights.

A format version is bumped when what is stored for the same key changes, so that older
files are computed again rather than read with missing fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xdx_lib.core.cache import hash_dict, runs_dir

#: The format of what a trained run records, its history fields and checkpoint layout. 3
#: e2KD matches the raw teacher Grad-CAM; 4 every model trains in ``channels_last``, on a
#: CPU too; 5 the epochs before the last are scored on the first test images only.
RUN_FORMAT = 5
#: The stored maps for one key (normalisation, file layout).
MAPS_FORMAT = 1
#: What a scorer writes in a result (its metrics and their settings).
SCORES_FORMAT = 1
#: The image-blind reference maps' scores.
REFERENCES_FORMAT = 1
#: How the intervention maps are made. 2 matches every replacement to the CAE's per-image
#: moments; 3 adds the teacher's map of another class, the true map's control.
INTERVENTIONS_FORMAT = 3

#: Config fields that determine the data a run sees.
DATA_FIELDS = ("dataset", "data_root", "train_subset", "test_subset", "subset_seed",
               "image_size", "grayscale", "teacher_subset", "val_size")  # fmt: skip
#: Config fields that determine a teacher.
TEACHER_FIELDS = DATA_FIELDS + ("teacher", "teacher_seed", "teacher_epochs", "batch_size",
                                "lr", "weight_decay", "teacher_augment")  # fmt: skip
#: Config fields that determine any student, beside its teacher's key and the fields of its
#: method's options (``Method.option_names``).
STUDENT_FIELDS = DATA_FIELDS + ("student", "seed", "student_epochs", "batch_size", "lr",
                                "weight_decay", "augment", "teacher_signal", "method")  # fmt: skip
#: Config fields that determine a CAE trained alone on the teacher's maps.
CAE_FIELDS = DATA_FIELDS + ("explainer", "map_target", "cae_width", "cae_epochs", "exp_loss",
                            "batch_size", "seed", "cae_output", "cae_depth")  # fmt: skip


def config_fields(cfg, names: Iterable[str]) -> dict:
    """``{name: cfg.name}`` for the config fields ``names`` (the parts of a cache key)."""
    return {k: getattr(cfg, k) for k in names}


def teacher_key(cfg) -> str:
    """A teacher's key: :data:`TEACHER_FIELDS` and :data:`RUN_FORMAT`."""
    return hash_dict({**config_fields(cfg, TEACHER_FIELDS), "format": RUN_FORMAT})


def teacher_path(cfg, key: str) -> Path:
    """Where the teacher of ``cfg`` with ``key`` is stored."""
    return runs_dir() / "teachers" / f"{cfg.dataset}-{cfg.teacher}-{key}" / "model.pt"


def student_key(cfg, option_names: Iterable[str], trains_as: str, teacher: str) -> str:
    """A student's key: :data:`STUDENT_FIELDS`, its method's option fields, the method whose
    training makes it (``trains_as``), its teacher's key and :data:`RUN_FORMAT`."""
    fields = {**config_fields(cfg, (*STUDENT_FIELDS, *option_names)), "method": trains_as}
    return hash_dict({**fields, "teacher": teacher, "format": RUN_FORMAT})


def student_path(cfg, trains_as: str, key: str) -> Path:
    """Where a student of method ``trains_as`` with ``key`` is stored."""
    name = f"{cfg.dataset}-{trains_as}-{cfg.student}-s{cfg.seed}-{key}"
    return runs_dir() / "students" / name / "model.pt"


def cae_key(cfg, variant: str, settings: dict, inputs: str, teacher: str) -> str:
    """A stand-alone CAE's key: :data:`CAE_FIELDS`, its variant, the explainer's settings,
    a hash of the training images (``inputs``) and its teacher's key."""
    return hash_dict({**config_fields(cfg, CAE_FIELDS), "variant": variant,
                      "settings": settings, "inputs": inputs, "teacher": teacher})  # fmt: skip


def cae_path(cfg, variant: str, key: str) -> Path:
    """Where the CAE ``variant`` with ``key`` is stored."""
    return runs_dir() / "cae" / f"{cfg.dataset}-{cfg.cae_output}-{variant}-{key}" / "model.pt"


def maps_key(*, checkpoint_hash: str, explainer: str, settings: dict, split: str, subset: Any,
             n: int, image_shape: list, inputs: str, target: Any,
             batch_size: int | None) -> dict[str, Any]:  # fmt: skip
    """What determines a set of maps, as JSON-normal data (tuples become lists): the model's
    weights, the explainer with all its settings, the images and the target kind."""
    key = {"format": MAPS_FORMAT, "checkpoint_hash": checkpoint_hash, "method": explainer,
           "settings": settings, "split": split, "subset": subset, "n": n,
           "image_shape": image_shape, "inputs": inputs, "target": target,
           "batch_size": batch_size}  # fmt: skip
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def maps_path(explainer: str, split: str, key: dict, cache_dir: str | Path | None = None) -> Path:
    """Where the maps of ``key`` are stored (``cache_dir`` default: ``runs/maps``)."""
    folder = Path(cache_dir) if cache_dir is not None else runs_dir() / "maps"
    safe_split = re.sub(r"[^A-Za-z0-9_.-]", "_", str(split))
    return folder / f"{explainer}-{safe_split}-{hash_dict(key)}.pt"


def result_path(experiment: str, label: str) -> Path:
    """Where the result ``label`` of the experiment named ``experiment`` is stored."""
    return runs_dir() / experiment / "results" / f"{label}.json"


def scorer_settings(settings: dict) -> dict:
    """A scorer's settings as they enter a result's key, with :data:`SCORES_FORMAT`."""
    return {**settings, "format": SCORES_FORMAT}


def result_key(run: str, teacher: str, settings: dict, attached: str | None = None) -> str:
    """A scored run's key: the run's and its teacher's keys, the scorer's settings and what
    a method attached that its run key leaves out (``kd_cae``'s CAE)."""
    return hash_dict({"run": run, "teacher": teacher, **settings,
                      **({"attached": attached} if attached else {})})  # fmt: skip


def references_key(teacher: str) -> str:
    """The key of the reference maps' scores of one teacher."""
    return hash_dict({"teacher": teacher, "kind": "references", "format": REFERENCES_FORMAT})


def scores_path(checkpoint: Path, split: str) -> Path:
    """Where a chooser's scores of one run on ``split`` are stored: beside its checkpoint."""
    return Path(checkpoint).parent / f"scores-{split}.json"


def interventions_path(checkpoint: Path) -> Path:
    """Where a student's map interventions are stored: beside its checkpoint."""
    return Path(checkpoint).parent / "interventions.json"


def interventions_key(run: str, teacher: str, interventions: Iterable[str]) -> str:
    """The key of a student's map interventions."""
    return hash_dict({"run": run, "teacher": teacher, "interventions": list(interventions),
                      "format": INTERVENTIONS_FORMAT})  # fmt: skip
