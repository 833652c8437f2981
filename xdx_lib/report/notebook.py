"""What the book's notebooks share: parameter checking, the run profile, sizes and glue.

papermill checks neither names nor types: ``-p epocs 3`` only prints "Passed unknown
parameter" and ``-p epochs 1.5`` injects a float. Each notebook therefore calls
:func:`check_parameters` right after its parameters cell; it reads the cell's annotated
names (``epochs: int = 2  # passes over the data``) and fails with one clear line for an
unknown name or a wrong type. Before papermill starts a kernel, :func:`check_papermill_parameters`
checks the ``-p`` values against the same declarations as papermill reads them
(``papermill --help-notebook``), so ``make reproduce`` stops with one line, not a traceback.

What a chapter sizes by profile comes from :func:`sizes` (the profile's
:attr:`~xdx_lib.core.config.Profile.chapter`), never an inline ``x if smoke else y``; the numbers
its text quotes are glued in one call per group (:func:`glue_many`, :func:`glue_column`), so the
chapter's code reads as its story.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import typing
from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from xdx_lib.core.config import PROFILES, RunConfig, config_from_dict, fits_type

if TYPE_CHECKING:
    import pandas as pd

_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_PAPERMILL_TYPES = (str, int, float, bool, type(None), list, dict, tuple)

#: A notebook parameter's value that leaves the option to the experiment's choice on
#: validation (:func:`run_config` drops it; :func:`chosen_options` fills it).
CHOSEN = "chosen"


class ParameterError(ValueError):
    """A notebook parameter is unknown or of the wrong type."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the one line. A wrong ``-p`` of
        papermill then fails with it, not with the frames of the parameter check."""
        return [f"{type(self).__name__}: {self}"]


#: What a chapter says on a Colab runtime without a GPU, where ``auto`` runs ``book``.
COLAB_CPU_NOTE = (
    "No GPU in this Colab runtime: the chapter runs the `book` profile (the whole book took "
    "40 min on a 2-core CPU), not the published `colab` one (its results chapter alone took "
    "2 h 21 min on a 2-core CPU). For the published profile choose Runtime > Change runtime "
    "type > GPU, then run the chapter again."
)


@functools.cache
def default_profile() -> str:
    """The profile ``auto`` means without ``$XDX_PROFILE``: the published book's, ``colab``,
    on a Colab runtime with a GPU; else ``book``, the CPU default. On a Colab runtime without
    a GPU it says so once (:data:`COLAB_CPU_NOTE`)."""
    try:
        on_colab = importlib.util.find_spec("google.colab") is not None
    except ModuleNotFoundError:  # no ``google`` package at all
        on_colab = False
    if not on_colab:
        return "book"
    import torch

    if torch.cuda.is_available():
        return "colab"
    print(COLAB_CPU_NOTE)
    return "book"


def resolve_profile(profile: str) -> str:
    """``auto`` becomes ``$XDX_PROFILE`` (set by ``make book`` and ``make test``), else
    :func:`default_profile` (``colab`` on a Colab GPU, else ``book``)."""
    if profile == "auto":
        profile = os.environ.get("XDX_PROFILE") or default_profile()
    if profile not in PROFILES:
        raise ParameterError(
            f"profile {profile!r} is unknown; choose one of: auto, {', '.join(PROFILES)}"
        )
    return profile


def check_parameters(namespace: dict) -> dict[str, Any]:
    """Check the notebook's parameters and return them as a dict.

    The parameters are the annotated names of the parameters cell (``__annotations__``
    of the notebook's namespace). Any other public name holding a value papermill can
    inject (a number, string, bool, None, list or dict) and defined before this call came
    from papermill and is unknown. Imported modules, functions and objects are not values
    papermill writes, so they are left alone; still, call it right after the parameters
    cell, before other imports, so that no constant of a module is mistaken for one.

    Raises:
        ParameterError: for an unknown name or a value of the wrong type.
    """
    annotations = namespace.get("__annotations__", {})
    unknown = [
        k
        for k, v in namespace.items()
        if not k.startswith("_")
        and k not in annotations
        and k not in _IPYTHON_NAMES
        and isinstance(v, _PAPERMILL_TYPES)
    ]
    if unknown:
        raise ParameterError(
            f"unknown parameter {unknown[0]!r}; this notebook takes: {', '.join(annotations)}"
        )
    params = {}
    for name, annotation in annotations.items():
        value = namespace.get(name)
        if isinstance(annotation, str):
            annotation = eval(annotation, dict(vars(typing)))  # noqa: S307 - the cell's own
        if not fits_type(value, annotation):
            raise ParameterError(
                f"parameter {name}={value!r} should be of type "
                f"{getattr(annotation, '__name__', annotation)}"
            )
        params[name] = value
    return params


def value_from_text(text: str) -> Any:
    """A ``-p`` value as papermill's command line reads it: ``True``, ``False`` and ``None``
    by name, then an int, then a float, else the text itself (``-p lr 1e-3`` is a float,
    ``-p profile book`` a string). Papermill keeps this rule private, so it is restated here
    and ``tests/test_notebook.py`` checks it against papermill's."""
    named = {"True": True, "False": False, "None": None}
    if text in named:
        return named[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_papermill_parameters(notebook, parameters: list[tuple[str, str]] = (),
                               raw: list[tuple[str, str]] = ()) -> dict[str, Any]:  # fmt: skip
    """Check papermill's ``-p NAME VALUE`` (and ``-r NAME VALUE``) against a notebook.

    The declared names and types come from papermill itself (``inspect_notebook``, what
    ``papermill --help-notebook`` prints); each ``-p`` value is converted as papermill's
    command line converts it (``True``, ``None``, ``3``, ``1.5``, else a string), ``-r``
    values stay strings. Returns the converted parameters.

    Raises:
        ParameterError: the notebook does not exist or has no parameters cell, a name is
            not declared, or a value does not fit the declared type (one line each).
    """
    from pathlib import Path

    import papermill

    path = Path(notebook)
    if not path.is_file():
        raise ParameterError(f"notebook {path} does not exist; give a notebook of book/")
    try:
        declared = papermill.inspect_notebook(str(path))
    except Exception as e:  # noqa: BLE001 - papermill raises several kinds for a bad notebook
        raise ParameterError(f"cannot read the parameters of {path} ({e}); check the file"
                             ) from None  # fmt: skip
    if not declared:
        raise ParameterError(f"{path} has no parameters cell; it takes no -p parameters")
    values = {name: value_from_text(v) for name, v in parameters}
    values.update(dict(raw))
    out = {}
    for name, value in values.items():
        if name not in declared:
            raise ParameterError(f"{path.name}: unknown parameter {name!r}; this notebook takes: "
                                 f"{', '.join(declared)} (see papermill --help-notebook {path})"
                                 )  # fmt: skip
        type_name = declared[name].get("inferred_type_name") or "None"
        try:
            annotation = eval(type_name, dict(vars(typing)))  # noqa: S307 - the notebook's own
        except Exception:  # noqa: BLE001 - an annotation papermill could not name: no check
            annotation = None
        if type_name != "None" and annotation is not None and not fits_type(value, annotation):
            raise ParameterError(
                f"{path.name}: parameter {name}={value!r} should be of type {type_name}; "
                f"give a {type_name} (see papermill --help-notebook {path})"
            )
        out[name] = value
    return out


def run_config(params: dict[str, Any], **fields) -> RunConfig:
    """A validated :class:`~xdx_lib.core.config.RunConfig` from notebook parameters plus fixed
    fields.

    Parameters named like config fields are used (``profile`` is resolved first);
    a value of 0 or None for epochs and subsets means "the profile's" (for ``cae_epochs``,
    the config's default; the chapter takes its size from :func:`sizes`). A negative
    ``alpha`` or ``temperature`` (the chapters' default) means "chosen on the validation
    split": both then come from :func:`tuned_kd_options`, so every chapter distils with
    the values the KD chapter chose, and shares its students. A field given as
    :data:`CHOSEN` is left at the config's default here, for the chapter to fill with
    the experiment's choice (:func:`chosen_options`).
    """
    known = set(RunConfig.__dataclass_fields__)
    d = {k: v for k, v in params.items() if k in known and v != CHOSEN}
    d["profile"] = resolve_profile(d.get("profile", "auto"))
    for k in ("teacher_epochs", "student_epochs", "train_subset", "test_subset"):
        if d.get(k) == 0:
            d[k] = None
    if d.get("cae_epochs") == 0:
        del d["cae_epochs"]
    chosen = [k for k in ("alpha", "temperature") if d.get(k, 0) < 0]
    for k in chosen:
        del d[k]
    d.update(fields)
    cfg = config_from_dict(d).resolved()
    if not chosen:
        return cfg
    return tuned_kd_options(cfg, keep={k: d[k] for k in ("alpha", "temperature") if k in d})


def chosen_options(options: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The config changes of an experiment's choice (``options``, e.g.
    :attr:`~xdx_lib.experiments.choices.XDistillChoice.options`) that the chapter's
    ``params`` leave to it: every option but those a parameter sets to another value than
    :data:`CHOSEN`, so a reader who names a value keeps it, and the claims' choice fills the
    rest."""
    return {k: v for k, v in options.items() if params.get(k, CHOSEN) == CHOSEN}


def tuned_kd_options(cfg: RunConfig, keep: Mapping[str, float] | None = None) -> RunConfig:
    """``cfg`` with KD's weight and temperature chosen on the validation split.

    The grid and its seeds are those of the profile's experiment config
    (:func:`experiment_config_path`); the choice is :func:`xdx_lib.experiments.tuning.tune_kd`'s,
    made with ``cfg``'s data, models and schedule, so with the profile's defaults it is the KD
    chapter's (read from the run cache). Options given in ``keep`` stay; without a grid, or without
    a validation split, ``cfg`` comes back unchanged.
    """
    import dataclasses

    from xdx_lib.experiments.experiment_config import load_experiment
    from xdx_lib.experiments.tuning import tune_kd

    keep = dict(keep or {})
    path = experiment_config_path("auto", cfg.profile)
    if len(keep) == 2 or not cfg.val_size or not path.is_file():
        return cfg
    exp = load_experiment(path)
    if not exp.kd_grid:
        return cfg
    run = {k: v for k, v in cfg.to_dict().items() if k not in ("alpha", "temperature")}
    grid = {k: v for k, v in exp.kd_grid.items() if k not in keep}
    tuned, _ = tune_kd(dataclasses.replace(exp, run={**run, **keep}, kd_grid=grid))
    return dataclasses.replace(cfg, alpha=tuned.run.get("alpha", cfg.alpha),
                               temperature=tuned.run.get("temperature", cfg.temperature))


def claim_seeds(profile: str) -> list[int]:
    """The seeds the claims of ``profile``'s experiment read (its ``seeds`` and
    ``claim_seeds``; none without its config), so that a chapter choosing on seeds of its
    own can check them apart (:func:`xdx_lib.analysis.selection.check_disjoint`)."""
    from xdx_lib.experiments.experiment_config import load_experiment

    path = experiment_config_path("auto", profile)
    if not path.is_file():
        return []
    exp = load_experiment(path)
    return [*exp.seeds, *exp.claim_seeds]


def sizes(profile: str, **given: int) -> SimpleNamespace:
    """The profile's chapter sizes (:attr:`~xdx_lib.core.config.Profile.chapter`), each
    replaced by a non-zero value in ``given`` (the notebook's parameter of the same name)."""
    out = dict(PROFILES[resolve_profile(profile)].chapter)
    unknown = sorted(set(given) - set(out))
    if unknown:
        raise ParameterError(f"no chapter size named {unknown[0]!r}; known: {', '.join(out)}")
    out.update({k: v for k, v in given.items() if v})
    return SimpleNamespace(**out)


def explainer_settings(size: SimpleNamespace) -> dict[str, dict[str, int]]:
    """The keyword arguments of the sampling explainers for a chapter's :func:`sizes`:
    Integrated Gradients' steps (``ig_steps``), GradientSHAP's samples (``shap_samples``),
    LIME's and KernelSHAP's perturbations per image (``lime_samples``). Modest counts fit a
    CPU; they are part of each map's cache key."""
    return {"integrated_gradients": {"n_steps": size.ig_steps},
            "gradient_shap": {"n_samples": size.shap_samples},
            "lime": {"n_samples": size.lime_samples},
            "kernel_shap": {"n_samples": size.lime_samples}}  # fmt: skip


def describe_run(cfg: RunConfig) -> str:
    """One line for the reader: the profile, its images, and what trains for how long."""

    def n(value: int | None) -> str:
        return "all" if value is None else f"{value:,}"

    teacher_images = ("the same" if cfg.teacher_subset in (None, cfg.train_subset)
                      else n(cfg.teacher_subset))  # fmt: skip
    held_out = f", {cfg.val_size:,} held out for validation" if cfg.val_size else ""
    return (f"profile {cfg.profile}: students train on {n(cfg.train_subset)} images, the "
            f"teacher on {teacher_images}{held_out}; {n(cfg.test_subset)} test images; "
            f"teacher {cfg.teacher} for {cfg.teacher_epochs} epochs, student {cfg.student} "
            f"for {cfg.student_epochs} epochs")  # fmt: skip


def experiment_config_path(config: str, profile: str = "auto"):
    """The experiment YAML a notebook runs: ``config``, or for ``auto`` the profile's default
    (``configs/<experiment>.yaml``, the profile's
    :attr:`~xdx_lib.core.config.Profile.experiment`)."""
    from pathlib import Path

    from xdx_lib.core.cache import project_root

    if config != "auto":
        return Path(config)
    name = PROFILES[resolve_profile(profile)].experiment
    return (project_root() or Path.cwd()) / "configs" / f"{name}.yaml"


class GluedText:
    """A string that reads without quotes where the book's text shows it (``{glue:}``)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def show_source(*objects: Any) -> None:
    """Show the library's own code of each function, class or method in the notebook.

    A chapter shows the lines that are its idea (the KD loss, the CAE's forward pass) from
    the library itself, so that there is one copy of them: what the reader reads is what
    trains the book's models. Highlighted as Python where IPython runs, else printed.
    """
    import inspect
    import textwrap

    text = "\n\n".join(textwrap.dedent(inspect.getsource(o)).rstrip() for o in objects)
    try:
        from IPython.display import Code, display
    except ImportError:  # not in a kernel
        print(text)
        return
    display(Code(text, language="python"))


def glue(name: str, value: Any, display: bool = False) -> None:
    """Glue ``value`` for ``{glue:}`name``` in the book's text; a string shows unquoted.

    myst-nb shows a glued object's plain-text repr, and the repr of a Python string carries
    quotes ('0.829'); the chapters glue formatted numbers and phrases, so they come here.
    Without myst-nb (only the ``book`` extra installs it; Colab has none) there is no book
    to glue into: the value is shown when ``display`` asks for it, and nothing else happens.
    """
    value = GluedText(value) if isinstance(value, str) else value
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            try:
                from IPython.display import display as show
            except ImportError:  # not in a kernel at all
                show = print
            show(value)
        return
    myst_glue(name, value, display=display)


def glue_many(values: Mapping[str, Any], fmt: str = "", /, **formats: str) -> None:
    """Glue every ``name: value`` of ``values`` at once, as text (:func:`glue`).

    A number is written with the format spec ``formats[name]``, else ``fmt`` (``".3f"``,
    ``"+.3f"``, ``","``; ``""`` as ``str``); a string is glued as it is. A chapter names
    its numbers in one call instead of one line each, and their formatting in one place.

    Raises:
        ValueError: ``formats`` names a value that ``values`` does not hold.
    """
    unknown = sorted(set(formats) - set(values))
    if unknown:
        raise ValueError(f"glue_many: a format for {unknown[0]!r}, which is not glued")
    for name, value in values.items():
        text = value if isinstance(value, str) else format(value, formats.get(name, fmt))
        glue(name, text)


def glue_column(prefix: str, column: pd.Series, fmt: str = "") -> None:
    """Glue each entry of a table's ``column`` as ``<prefix>_<row>``, with the format spec
    ``fmt`` (:func:`glue_many`): ``glue_column("acc", table["accuracy"], ".3f")`` glues
    ``acc_kd``, ``acc_scratch``, ... for a table indexed by method."""
    glue_many({f"{prefix}_{row}": value for row, value in column.items()}, fmt)


def glue_verdicts(table: pd.DataFrame) -> None:
    """Glue each claim of a :func:`xdx_lib.report.verdict_tables.claim_sentences` table for the
    book's text.

    Names: ``<claim>_verdict``, ``<claim>_evidence`` and ``<claim>_power`` (e.g.
    ``C1_verdict``), the columns ``verdict``, ``evidence`` and ``power``.
    """
    for claim, row in table.iterrows():
        for column in ("verdict", "evidence", "power"):
            glue(f"{claim}_{column}", row[column], display=False)
