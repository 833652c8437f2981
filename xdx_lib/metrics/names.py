"""The names of a result's metrics: how a metric key is built, taken apart and picked out.

A result (:func:`xdx_lib.evaluation.scoring.evaluate_model`) is a flat mapping of keys to numbers,
which tables, claims and chapters select from. Every key is built and read here, so that no
caller tests a key's prefix or looks for a substring in it. Free of torch, so the table
layer (:mod:`xdx_lib.report.tables`) can use it with pandas alone.
"""

from __future__ import annotations

from collections.abc import Iterable

#: A result's metric keys (:func:`xdx_lib.evaluation.scoring.evaluate_model`) are bare names
#: (``accuracy``, ``agreement``, ``parameters``, ...) or ``<maps>/<metric>``: a metric of
#: :data:`~xdx_lib.metrics.similarity.SIMILARITIES`, :data:`FAITHFULNESS_METRICS` or
#: :data:`LOCALISATION_METRICS` measured of some maps, an explainer's (``gradcam``, ...)
#: or those named below.
KEY_SEPARATOR = "/"
#: The maps a model returns itself (XDistillation's CAE, ``kd_cae``'s attached CAE).
CAE = "cae"
#: The explanation the deployed model gives, its own maps where it has them, else its
#: Grad-CAM.
DEPLOYED = "deployed"
#: The faithfulness metrics (:mod:`xdx_lib.metrics.faithfulness`): deletion and insertion AUC.
FAITHFULNESS_METRICS = ("deletion", "insertion")
#: The ``<maps>`` of a faithfulness key, by the maps judged (the model's Grad-CAM or its
#: own, :data:`CAE`) and the model that judges them (the ``model`` itself or the ``teacher``).
JUDGED_MAPS: dict[tuple[str, str], str] = {
    ("gradcam", "model"): "faith",
    ("gradcam", "teacher"): "faith_teacher",
    (CAE, "model"): "cae_faith",
    (CAE, "teacher"): "cae_faith_teacher",
}
#: The localisation metrics on generated shapes (:mod:`xdx_lib.metrics.faithfulness`).
LOCALISATION_METRICS = ("pointing_game", "relevance_mass")


def metric_key(maps: str, metric: str) -> str:
    """The key of ``metric`` measured of ``maps``: ``metric_key(CAE, "pearson")`` is
    ``"cae/pearson"``."""
    return f"{maps}{KEY_SEPARATOR}{metric}"


def faithfulness_key(maps: str, judge: str, metric: str) -> str:
    """The key of a faithfulness ``metric`` of ``maps`` judged by ``judge``
    (:data:`JUDGED_MAPS`): ``faithfulness_key("gradcam", "teacher", "deletion")`` is
    ``"faith_teacher/deletion"``."""
    return metric_key(JUDGED_MAPS[(maps, judge)], metric)


def split_key(key: str) -> tuple[str, str]:
    """``(maps, metric)`` of a key: ``("cae", "pearson")`` for ``"cae/pearson"``, ``("",
    "accuracy")`` for a bare name. The one place a key is taken apart."""
    maps, separator, metric = key.partition(KEY_SEPARATOR)
    return (maps, metric) if separator else ("", key)


def keys_of(columns: Iterable[str], maps: str) -> list[str]:
    """The keys among ``columns`` measured of ``maps`` (e.g. :data:`CAE`), in their order."""
    return [c for c in columns if split_key(c)[0] == maps]


def faithfulness_keys(columns: Iterable[str]) -> list[str]:
    """The faithfulness keys among ``columns`` (every judge, every map), in their order."""
    families = set(JUDGED_MAPS.values())
    return [c for c in columns
            if split_key(c)[0] in families and split_key(c)[1] in FAITHFULNESS_METRICS]


def localisation_keys(columns: Iterable[str]) -> list[str]:
    """The localisation keys among ``columns`` (of every map), in their order."""
    return [c for c in columns if split_key(c)[0] and split_key(c)[1] in LOCALISATION_METRICS]
