"""An experiment's config: one YAML names the methods, seeds, explainers, sweeps and
KD grid of a reproduction, and is checked whole before anything is trained.

:func:`load_experiment` reads and validates an :class:`ExperimentConfig`
(:func:`validate_experiment`): the experiment's own fields, then every
:class:`~xdx_lib.core.config.RunConfig` the experiment will build, so that a config that passes
cannot fail later on its values. :func:`preflight` checks what the run needs beyond valid values
(the device, the data root, a writable runs folder). :mod:`xdx_lib.experiments.tuning` chooses KD's
options on the validation split, :mod:`xdx_lib.experiments.runner` runs what the experiment names.
Layer: above the methods and the session's inputs (config, data, explainers, devices);
nothing here trains.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from xdx_lib.analysis import selection
from xdx_lib.core.cache import check_writable, runs_dir
from xdx_lib.core.config import ConfigError, RunConfig, config_from_dict, read_yaml_mapping
from xdx_lib.core.devices import resolve_device
from xdx_lib.data.datasets import check_data_root
from xdx_lib.distill.method import METHODS
from xdx_lib.explain import EXPLAINERS


@dataclass
class ExperimentConfig:
    """One reproduction: the methods, seeds, explainers and sweeps run on one setting.

    Loaded from YAML (:func:`load_experiment`); ``run`` holds the
    :class:`~xdx_lib.core.config.RunConfig` fields shared by every run (dataset, profile,
    models, schedule, method options).

    Attributes:
        name: the experiment's name; its results go to ``runs/<name>/``.
        run: shared RunConfig fields.
        methods: the methods compared (T1).
        seeds: student seeds; every method runs on every seed (paired comparisons).
        explainers: explainers under which explanations are compared with the teacher's
            (T2); the first is the one reported in T1.
        n_slow: test images for the slow explainers (all but gradcam and saliency).
        n_faithful: test images for deletion and insertion AUC.
        sweeps: XDistillation option -> values, each run with ``sweep_seeds`` (T4).
        sweep_seeds: seeds of the sweep runs.
        localisation_methods: methods also trained on generated ``shapes`` and scored by
            pointing game and relevance mass (empty: skip).
        localisation_seeds: the seeds of those runs (empty: ``seeds``).
        claim_methods: the methods the claims compare (C1-C3: scratch, kd, xdistill), run
            on ``seeds`` and ``claim_seeds`` and scored only on what the claims read
            (accuracy, agreement, Grad-CAM and deployed-explanation similarity; group
            ``claims``), so that the claims' intervals get the power of more seeds for a
            fraction of the cost of every metric on every method (empty: skip).
        claim_seeds: the extra seeds of ``claim_methods``.
        kd_grid: KD's options to choose on the validation split (``alpha``,
            ``temperature``: lists of values), before anything else runs
            (:func:`~xdx_lib.experiments.tuning.tune_kd`); the chosen values then serve every method
            with a KD term (empty: the run's values are used as given).
        tune_seeds: the seeds each point of ``kd_grid`` is trained with; none of them a
            seed of ``seeds`` or ``claim_seeds``, so that no student a claim reads was
            picked for scoring well (default: :func:`xdx_lib.analysis.selection.tune_seeds`).
        xdistill_seeds: the tune seeds XDistillation's pre-training epochs, schedule, routing
            and fusion are chosen with, on the validation split
            (:func:`~xdx_lib.experiments.choices.choose_xdistill`); the claims then run what was
            picked (empty: nothing is chosen, the run's values are used as given).
        plateau_seeds: the seeds of the students the plateau is judged on
            (:func:`~xdx_lib.experiments.tuning.plateau_runs`): none a claim seed, a tune seed
            or an XDistillation seed, so that no run the check reads was picked on its seed;
            two or more let the check decide (default:
            :func:`xdx_lib.analysis.selection.plateau_seeds`).
        xdistill_choice: what that choice picked, with its evidence, once
            :func:`~xdx_lib.experiments.tuning.tuned_session` has made it (not a YAML field).
    """

    name: str = "experiment"
    run: dict = field(default_factory=dict)
    methods: list = field(default_factory=lambda: ["scratch", "kd", "at", "e2kd", "xdistill"])
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    explainers: list = field(default_factory=lambda: ["gradcam", "saliency"])
    n_slow: int = 128
    n_faithful: int = 128
    sweeps: dict = field(default_factory=dict)
    sweep_seeds: list = field(default_factory=lambda: [0])
    localisation_methods: list = field(default_factory=list)
    localisation_seeds: list = field(default_factory=list)
    claim_methods: list = field(default_factory=list)
    claim_seeds: list = field(default_factory=list)
    kd_grid: dict = field(default_factory=dict)
    tune_seeds: list = field(default_factory=lambda: selection.tune_seeds(1))
    xdistill_seeds: list = field(default_factory=list)
    plateau_seeds: list = field(default_factory=lambda: selection.plateau_seeds(1))
    xdistill_choice: object = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        validate_experiment(self)

    @property
    def base(self) -> RunConfig:
        """The validated, profile-resolved RunConfig shared by every run."""
        return config_from_dict(self.run).resolved()

    @property
    def shapes_seeds(self) -> list:
        """The localisation runs' seeds, ``localisation_seeds`` or else ``seeds``."""
        return self.localisation_seeds or self.seeds

    @property
    def sweepable(self) -> tuple[str, ...]:
        """XDistillation's own config fields, the options a sweep may vary."""
        return METHODS.get("xdistill").option_names()

    def with_run(self, **changes) -> ExperimentConfig:
        """A copy whose shared RunConfig fields take ``changes`` (e.g. a chapter's
        ``device``), validated as a loaded experiment is; this one is left as it is."""
        return dataclasses.replace(self, run={**self.run, **changes})


#: The type of each experiment field (bool is never an int).
_FIELD_TYPES = {"name": str, "run": dict, "methods": list, "seeds": list, "explainers": list,
                "n_slow": int, "n_faithful": int, "sweeps": dict, "sweep_seeds": list,
                "localisation_methods": list, "localisation_seeds": list,
                "claim_methods": list, "claim_seeds": list, "kd_grid": dict,
                "tune_seeds": list, "xdistill_seeds": list,
                "plateau_seeds": list}  # fmt: skip


def _unique(what: str, values: list) -> None:
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{what}={values!r} repeats {', '.join(repeated)}; give each once")


def validate_experiment(exp: ExperimentConfig) -> None:
    """Every check the real run relies on, as one ConfigError line (no data, no training).

    First the experiment's own fields (``_check_fields``), then each RunConfig
    :func:`~xdx_lib.experiments.runner.run_experiment` will build (``_check_runs``: every method and
    seed, every sweep value, the shapes runs), so a config that passes cannot fail later on
    its values.
    """
    _check_fields(exp)
    try:
        base = config_from_dict(exp.run).resolved()
    except ConfigError as e:
        raise ConfigError(f"run: {e}") from None
    _check_runs(exp, base)


def _check_fields(exp: ExperimentConfig) -> None:
    """Types, the name, empty and repeated lists, known methods, seeds and explainers."""
    for key, expected in _FIELD_TYPES.items():
        value = getattr(exp, key)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} should be a {expected.__name__}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", exp.name):
        raise ConfigError(
            f"name={exp.name!r} is not a plain file name (its results go to runs/<name>/); "
            "use letters, digits, '-', '_' and '.', starting with a letter or digit"
        )
    for key in ("methods", "seeds", "explainers"):
        if not getattr(exp, key):
            raise ConfigError(f"{key} is empty; name at least one")
    for key in ("methods", "seeds", "explainers", "sweep_seeds", "localisation_methods",
                "localisation_seeds", "claim_methods"):  # fmt: skip
        _unique(key, getattr(exp, key))
    _unique("seeds + claim_seeds", exp.seeds + exp.claim_seeds)
    if exp.claim_seeds and not exp.claim_methods:
        raise ConfigError("claim_seeds are given but claim_methods is empty; name the methods")
    for m in exp.methods + exp.localisation_methods + exp.claim_methods:
        if m not in METHODS:
            raise ConfigError(f"method {m!r} is unknown; choose from "
                              f"{', '.join(METHODS.names())}")  # fmt: skip
    for s in exp.seeds + exp.sweep_seeds + exp.claim_seeds + exp.localisation_seeds:
        if not isinstance(s, int) or isinstance(s, bool):
            raise ConfigError(f"seed {s!r} should be an int")
    for e in exp.explainers:
        if e not in EXPLAINERS:
            raise ConfigError(f"explainer {e!r} is unknown; choose from "
                              f"{', '.join(EXPLAINERS.names())}")  # fmt: skip
    if exp.n_slow < 1 or exp.n_faithful < 1:
        raise ConfigError("n_slow and n_faithful must be at least 1")
    if exp.sweeps and not exp.sweep_seeds:
        raise ConfigError("sweep_seeds is empty; name at least one seed for the sweeps")


def _check_runs(exp: ExperimentConfig, base: RunConfig) -> None:
    """Build every RunConfig the experiment will run; the first bad one is the error."""

    def build(where: str, **changes) -> None:
        try:
            dataclasses.replace(base, **changes)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    for method in exp.methods:
        for seed in exp.seeds:
            build(f"method {method}, seed {seed}", method=method, seed=seed)
    for method in exp.claim_methods:
        for seed in exp.claim_seeds:
            build(f"claims: method {method}, seed {seed}", method=method, seed=seed)
    for option, v in _option_values("sweeps", exp.sweeps, exp.sweepable,
                                    "swept (sweeps vary XDistillation's options)"):  # fmt: skip
        for seed in exp.sweep_seeds:
            build(f"sweeps.{option}", method="xdistill", seed=seed, **{option: v})
    _check_choosing(exp, base)
    if exp.kd_grid:
        for option, v in _option_values("kd_grid", exp.kd_grid, TUNABLE, "tuned"):
            build(f"kd_grid.{option}", method="kd", **{option: v})
    if exp.localisation_methods:
        build("localisation", **shapes_changes(base))
        for method in exp.localisation_methods:
            for seed in exp.shapes_seeds:
                build(f"localisation {method}, seed {seed}", **shapes_changes(base),
                      method=method, seed=seed)  # fmt: skip


#: The options ``kd_grid`` may vary: KD's own.
TUNABLE = ("alpha", "temperature")


def _option_values(field: str, options: dict, allowed, reason: str):
    """Each ``(option, value)`` of ``field`` (``sweeps``, ``kd_grid``), once every option
    is checked to be allowed and to hold a list of one or more distinct values."""
    for option, values in options.items():
        if option not in allowed:
            raise ConfigError(f"{field}.{option} cannot be {reason}; choose from "
                              f"{', '.join(allowed)}")  # fmt: skip
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{field}.{option} should be a list of one or more values")
        _unique(f"{field}.{option}", values)
    return [(option, v) for option, values in options.items() for v in values]


def _check_choosing(exp: ExperimentConfig, base: RunConfig) -> None:
    """What every choice of the experiment needs, checked before anything trains: a
    validation split to choose on (the students' plateau is judged on it in every
    experiment, KD's grid and XDistillation's options chosen on it when the experiment says
    so), and tune seeds of its own that no claim reads
    (:func:`xdx_lib.analysis.selection.check_disjoint`)."""
    if not base.val_size:
        raise ConfigError("run.val_size is 0, but the experiment's choices (the students' "
                          "plateau, kd_grid) are made on a validation split; set run.val_size "
                          "above 0, e.g. 5000 training images held out")  # fmt: skip
    if not exp.tune_seeds:
        raise ConfigError("tune_seeds is empty; name at least one seed to choose with")
    _unique("tune_seeds", exp.tune_seeds)
    for s in exp.tune_seeds:
        if not isinstance(s, int) or isinstance(s, bool):
            raise ConfigError(f"seed {s!r} should be an int")
    if not exp.plateau_seeds:
        raise ConfigError("plateau_seeds is empty; name at least one seed for the plateau check")
    for key in ("xdistill_seeds", "plateau_seeds"):
        _unique(key, getattr(exp, key))
        for s in getattr(exp, key):
            if not isinstance(s, int) or isinstance(s, bool):
                raise ConfigError(f"seed {s!r} should be an int")
    if exp.xdistill_seeds and "xdistill" not in exp.methods + exp.claim_methods:
        raise ConfigError("xdistill_seeds are given but no method is xdistill; name it in "
                          "methods or claim_methods, or leave xdistill_seeds out")  # fmt: skip
    try:
        selection.check_disjoint(exp.tune_seeds, exp.seeds + exp.claim_seeds)
        selection.check_disjoint(exp.xdistill_seeds, exp.seeds + exp.claim_seeds,
                                 "xdistill_seeds")  # fmt: skip
        selection.check_disjoint(exp.plateau_seeds, exp.seeds + exp.claim_seeds,
                                 "plateau_seeds")  # fmt: skip
        selection.check_disjoint(exp.plateau_seeds, exp.tune_seeds + exp.xdistill_seeds,
                                 "plateau_seeds", "seeds a choice is made on")  # fmt: skip
    except ValueError as e:
        raise ConfigError(str(e)) from None


def shapes_changes(base: RunConfig) -> dict:
    """The config changes of the localisation runs: generated ``shapes``, with no validation
    split and the teacher on the students' images (the experiment's Fashion-MNIST sizes
    would not fit the generated set)."""
    if base.dataset == "shapes":  # the experiment's own runs already are
        return {"dataset": "shapes"}
    return {"dataset": "shapes", "val_size": 0, "teacher_subset": base.train_subset}


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment YAML; every bad field is one clear ConfigError."""
    path = Path(path)
    d = read_yaml_mapping(path, "experiment config")
    for key in d:
        if key not in _FIELD_TYPES:
            raise ConfigError(f"{path.name}: unknown field {key!r}; known: "
                              f"{', '.join(_FIELD_TYPES)}")  # fmt: skip
    try:
        return ExperimentConfig(**d)
    except ConfigError as e:
        raise ConfigError(f"{path.name}: {e}") from None


def preflight(exp: ExperimentConfig) -> None:
    """What the run needs beyond valid values, checked before anything is trained or
    written: the device exists, the data root exists (or may be downloaded), the runs
    folder is writable. ``experiment --check`` runs it too."""
    base = exp.base
    resolve_device(base.device)
    check_data_root(base.dataset, base.data_root, base.download)
    check_writable(runs_dir())
