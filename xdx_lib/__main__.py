"""The ``xdx`` command (also ``python -m xdx_lib``): ``xdx train-teacher ...``,
``xdx distill ...``, ``xdx experiment ...``, ``xdx data ...``, ``xdx runs ...``.

Every field of :class:`~xdx_lib.core.config.RunConfig` is a flag (``alpha`` is ``--alpha``,
``cae_width`` is ``--cae-width``), generated from the dataclass with its help line, its
default and its choices, so the help can never go stale. ``--config FILE.yaml`` reads a
file of fields, and flags given on the command line win over the file. A bad value prints
one line that says what to do and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing

from xdx_lib.core.config import ConfigError, RunConfig, config_from_dict, kind_choices, load_config

#: The argument groups of ``distill --help``, in order, and their titles.
GROUPS = {"data": "data", "models": "models", "schedule": "schedule",
          "device": "device and precision", "method": "method", "kd": "kd (and every method "
          "built on it)", "explanations": "teacher explanations (xdistill, e2kd)",
          "xdistill": "xdistill", "at": "at", "e2kd": "e2kd"}  # fmt: skip


def _base_type(annotation) -> type:
    """``int`` for ``int | None``, ``bool`` for ``bool | None``, ..."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def flag_help(f: dataclasses.Field) -> str:
    """A field's help line: its help, choices and real default."""
    text = f.metadata["help"]
    kind = f.metadata.get("kind")
    if kind is not None:
        text += f"; one of: {', '.join(kind_choices(kind))}"
    default = "the profile's" if f.default is None else f.default
    return f"{text} (default: {default})".replace("%", "%%")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`RunConfig` field, in argument groups by concern.

    Flags default to None (not given), so that a ``--config`` file's values stand unless a
    flag overrides them; the help shows the field's own default.
    """
    hints = typing.get_type_hints(RunConfig)
    groups = {g: parser.add_argument_group(title) for g, title in GROUPS.items()}
    for f in dataclasses.fields(RunConfig):
        kind = _base_type(hints[f.name])
        options: dict = {"dest": f.name, "default": None, "help": flag_help(f)}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif kind in (int, float):
            options["type"] = kind
        groups[f.metadata["group"]].add_argument("--" + f.name.replace("_", "-"), **options)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of RunConfig fields (flags override it)")
    p.add_argument("--epochs", type=int, help="passes over the training subset: sets "
                   "teacher_epochs for train-teacher, student_epochs for distill")  # fmt: skip
    p.add_argument("--runs", help="run cache folder (default: ./runs, or $XDX_RUNS)")
    p.add_argument("--progress", action="store_true", help="show tqdm progress bars")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_flags(p)


def build_parser() -> argparse.ArgumentParser:
    """The ``xdx`` argument parser with its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="xdx",
        description="Train teachers and distil students (KD, XDistillation and baselines).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("train-teacher", help="train (or load from the run cache) a teacher"))
    _common(sub.add_parser("distill", help="train (or load) a student with a method"))
    a = sub.add_parser("data", help="make a dataset available offline and print its sizes")
    a.add_argument("--dataset", default="fashion_mnist", help="dataset name")
    a.add_argument("--data-root", dest="data_root", help="data folder (default: ./data)")
    a.add_argument("--download", action="store_true", default=None, help="allow downloads")
    e = sub.add_parser("experiment", help="run (or check) an experiment config: all its runs")
    e.add_argument("config", help="experiment YAML, e.g. configs/fashion_mnist_book.yaml")
    e.add_argument("--check", action="store_true", help="only validate the config")
    e.add_argument("--runs", help="run cache folder (default: ./runs, or $XDX_RUNS)")
    _runs_parser(sub.add_parser("runs", help="pack the run cache as an archive for others, "
                                "fetch one, or install the shipped teacher, instead of "
                                "training"))  # fmt: skip
    n = sub.add_parser("check-params", help="check papermill -p/-r parameters against a "
                       "notebook's declared names and types, before papermill runs it")  # fmt: skip
    n.add_argument("notebook", help="the notebook, e.g. book/results.ipynb")
    n.add_argument("-p", "--parameters", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="as papermill's -p")  # fmt: skip
    n.add_argument("-r", "--parameters_raw", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="as papermill's -r (a string)")  # fmt: skip
    return parser


def _runs_parser(r: argparse.ArgumentParser) -> None:
    """``runs id|pack|fetch``: the sub-commands of a published run cache
    (:mod:`~xdx_lib.core.run_archive`)."""
    runs_help = "run cache folder (default: ./runs, or $XDX_RUNS)"
    sub = r.add_subparsers(dest="runs_command", required=True)
    i = sub.add_parser("id", help="print the file name of a profile's archive (with its id)")
    i.add_argument("--profile", required=True, help="the profile, e.g. smoke or book")
    p = sub.add_parser("pack", help="pack the run cache as xdx-runs-<profile>-<id>.tar.gz")
    p.add_argument("--profile", required=True, help="the profile its runs were trained on")
    p.add_argument("--out", default=".", help="folder to write the archive to (default: .)")
    p.add_argument("--runs", help=runs_help)
    p.add_argument("--device", help="the machine that trained them, as the manifest records "
                   "it (default: this machine's GPU or CPU)")  # fmt: skip
    f = sub.add_parser("fetch", help="add a published archive's runs to the run cache")
    f.add_argument("source", nargs="?", help="the archive: an http(s) URL or a file")
    f.add_argument("--published", metavar="PROFILE", help="instead of SOURCE: the archive "
                   "the book's workflow published for this code and PROFILE (auto: as a "
                   "chapter's profile = 'auto' reads it)")  # fmt: skip
    f.add_argument("--runs", help=runs_help)
    t = sub.add_parser("teacher", help="install the repository's trained teacher of a profile "
                       "into the run cache (make book does), if one is shipped for it")  # fmt: skip
    t.add_argument("--profile", required=True, help="the profile, e.g. book")
    t.add_argument("--runs", help=runs_help)
    t.add_argument("--train", action="store_true", help="install nothing: check that the "
                   "run cache does not hold the shipped teacher, so the chapters train "
                   "their own")  # fmt: skip


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Merge ``--config`` with the flags that were given into a validated config."""
    skip = {"command", "config", "runs", "progress", "json", "epochs"}
    flags = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    if args.epochs is not None:
        key = "teacher_epochs" if args.command == "train-teacher" else "student_epochs"
        flags[key] = args.epochs
    if args.config:
        return load_config(args.config, flags)
    return config_from_dict(flags)


def _errors() -> tuple[type[BaseException], ...]:
    """The errors that are one line for the user (bad input), never a traceback."""
    from xdx_lib.core.cache import CacheWriteError
    from xdx_lib.core.devices import DeviceUnavailable
    from xdx_lib.data.datasets import DataNotFoundError
    from xdx_lib.training.checkpoints import CheckpointMismatch

    return (ConfigError, DataNotFoundError, CheckpointMismatch, DeviceUnavailable,
            CacheWriteError)  # fmt: skip


def _is_cuda_failure(e: RuntimeError) -> bool:
    """Whether ``e`` is torch's report of a CUDA failure (no usable device, out of memory, a
    kernel error), which is one line for the user. torch raises most of these as plain
    RuntimeErrors (a type of their own exists only in recent versions), so the text is
    the one mark they share."""
    return "CUDA" in str(e)


def _fail(e: BaseException) -> int:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2


def _experiment(args: argparse.Namespace) -> int:
    """``experiment CONFIG``: validate, then train and evaluate everything it names.

    ``--check`` runs exactly the checks the real run starts with: every value of every run
    (:func:`~xdx_lib.experiments.experiment_config.load_experiment`), then the device, the data root
    and the runs folder (:func:`~xdx_lib.experiments.experiment_config.preflight`), then the data
    (:func:`_check_data`).
    """
    from xdx_lib.core.devices import is_rank_zero
    from xdx_lib.experiments.experiment_config import load_experiment, preflight
    from xdx_lib.experiments.runner import run_experiment

    try:
        exp = load_experiment(args.config)
        if args.check:
            preflight(exp)
            _check_data(exp.base)
            print(f"{args.config}: ok ({len(exp.methods)} methods x {len(exp.seeds)} seeds)")
            return 0
        results = run_experiment(exp)
    except _errors() as e:
        return _fail(e)
    if is_rank_zero():  # under torchrun, one summary, not one per process
        print(f"{exp.name}: {len(results)} results in runs/{exp.name}/results/")
    return 0


def _check_data(cfg: RunConfig) -> None:
    """Load the config's data as the run will, so that data too small for its splits or
    unreadable stops the check (``make reproduce`` runs it before any notebook). Nothing is
    downloaded: data not yet on disk is the run's to fetch, and passes."""
    from xdx_lib.data.datasets import BadDataError, DataNotFoundError
    from xdx_lib.experiments.session import load_data

    try:
        load_data(dataclasses.replace(cfg, download=False))
    except DataNotFoundError as e:
        if isinstance(e, BadDataError):
            raise


def _interrupted() -> int:
    """Ctrl-C during training: one line instead of a traceback, and the shell's status 130.

    Every finished epoch is already in the run cache, so the same command resumes there.
    """
    from xdx_lib.core.cache import runs_dir

    print(f"stopped: training was interrupted; the finished epochs are saved in the run "
          f"cache ({runs_dir()}), and running the same command again resumes after them",
          file=sys.stderr)  # fmt: skip
    return 130


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "check-params":
        return _check_params(args)
    if args.command == "data":
        return _data(args)
    if args.command == "runs":
        return _runs(args)
    from xdx_lib.core.cache import using_runs_dir

    with using_runs_dir(getattr(args, "runs", None) or None):  # --runs, for all it calls
        try:
            return _train(args)
        except KeyboardInterrupt:
            return _interrupted()


def _check_params(args: argparse.Namespace) -> int:
    """``check-params NOTEBOOK -p ...``: papermill's parameters against the notebook's."""
    from xdx_lib.report.notebook import ParameterError, check_papermill_parameters

    try:
        params = check_papermill_parameters(args.notebook, args.parameters,
                                            args.parameters_raw)  # fmt: skip
    except ParameterError as e:
        return _fail(e)
    print(f"{args.notebook}: parameters ok ({', '.join(params) or 'none given'})")
    return 0


def _data(args: argparse.Namespace) -> int:
    """``data --dataset NAME``: make a dataset available and print its sizes."""
    from xdx_lib.data.datasets import load_dataset

    try:
        ds = load_dataset(args.dataset, root=args.data_root, download=args.download)
    except (*_errors(), ValueError) as e:
        return _fail(e)
    h, w = ds.image_size
    print(f"{ds.name}: {len(ds.train)} train, {len(ds.test)} test images "
          f"of {ds.in_channels}x{h}x{w}, {ds.num_classes} classes")
    return 0


def _runs(args: argparse.Namespace) -> int:
    """``runs id|pack|fetch|teacher``: an archive's name, the run cache packed, an archive
    fetched into it, or the shipped teacher installed there; a refusal is one line
    (:class:`~xdx_lib.core.run_archive.ArchiveError`,
    :class:`~xdx_lib.core.shipped_teacher.ShippedTeacherError`)."""
    from xdx_lib.core import shipped_teacher
    from xdx_lib.core.cache import CacheWriteError
    from xdx_lib.core.run_archive import ArchiveError, archive_name, fetch, pack, published_url

    try:
        if args.runs_command == "teacher":
            act = shipped_teacher.check_trains_own if args.train else shipped_teacher.install
            print(act(args.profile, args.runs))
        elif args.runs_command == "id":
            print(archive_name(args.profile))
        elif args.runs_command == "pack":
            print(pack(args.profile, args.out, args.runs, device=args.device))
        else:
            if (args.source is None) == (args.published is None):
                raise ArchiveError("give the archive (a URL or a file) or --published PROFILE")
            profile = args.published
            if profile == "auto":  # as a chapter reads it: colab on a Colab GPU, else book
                from xdx_lib.report.notebook import resolve_profile

                profile = resolve_profile(profile)
            got = fetch(args.source or published_url(profile), args.runs)
            print(f"fetched profile {got['profile']} (commit {got.get('commit') or 'unknown'}): "
                  f"{got['added']} files added, {got['present']} already there, in "
                  f"{got['runs']}")  # fmt: skip
    except (ArchiveError, shipped_teacher.ShippedTeacherError, CacheWriteError) as e:
        return _fail(e)
    return 0


def _train(args: argparse.Namespace) -> int:
    """``train-teacher``, ``distill`` and ``experiment``: train (or load) and report."""
    if args.command == "experiment":
        return _experiment(args)
    from xdx_lib.core.cache import CacheReadError

    try:
        cfg = config_from_args(args)
        from xdx_lib.core.cache import check_writable, runs_dir
        from xdx_lib.core.devices import is_rank_zero, resolve_device
        from xdx_lib.data.datasets import check_data_root
        from xdx_lib.experiments.session import Session

        # what would otherwise fail late: the device, the data root, the runs folder
        resolve_device(cfg.device)
        check_data_root(cfg.dataset, cfg.data_root, cfg.download)
        check_writable(runs_dir())
        session = Session(cfg, verbose=True, progress=args.progress)
        run = session.teacher() if args.command == "train-teacher" else session.student()
    except (*_errors(), CacheReadError) as e:
        return _fail(e)
    except RuntimeError as e:
        if _is_cuda_failure(e):
            return _fail(e)
        raise
    if not is_rank_zero():  # under torchrun, one summary, not one per process
        return 0
    last = run.history[-1] if run.history else {}
    result = {"checkpoint": str(run.path), "parameters": run.num_parameters, **last}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if isinstance(v, float))
        print(f"{args.command}: {run.path} ({run.num_parameters} parameters) {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
