"""Command line: ``python -m xdx_lib train-teacher ...`` and ``python -m xdx_lib distill ...``.

Every option is a field of :class:`~xdx_lib.config.RunConfig`; ``--config FILE.yaml``
reads a file of them, and flags given on the command line win over the file. A bad value
prints one line that says what to do and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .config import PROFILES, ConfigError, RunConfig, config_from_dict, load_config
from .methods import METHODS


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of RunConfig fields (flags override it)")
    p.add_argument("--profile", choices=list(PROFILES), help="run profile (default: book)")
    p.add_argument("--dataset", help="fashion_mnist | mnist | cifar10 | imagefolder | shapes")
    p.add_argument("--data-root", dest="data_root", help="data folder (default: ./data)")
    p.add_argument("--download", action="store_true", default=None,
                   help="allow torchvision to download missing data")  # fmt: skip
    p.add_argument("--epochs", type=int, help="passes over the training subset")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="images per step")
    p.add_argument("--lr", type=float, help="peak learning rate (AdamW, cosine decay)")
    p.add_argument("--train-subset", dest="train_subset", type=int, help="training images kept")
    p.add_argument("--test-subset", dest="test_subset", type=int, help="test images kept")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--teacher", help="teacher model name")
    p.add_argument("--runs", help="run cache folder (default: ./runs, or $XDX_RUNS)")
    p.add_argument("--progress", action="store_true", help="show tqdm progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``xdx`` argument parser with its two sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m xdx_lib",
        description="Train teachers and distil students (KD, XDistillation and baselines).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train-teacher", help="train (or load from the run cache) a teacher")
    _common(t)
    t.add_argument("--seed", dest="teacher_seed", type=int, help="the teacher's seed")
    d = sub.add_parser("distill", help="train (or load) a student with a method")
    _common(d)
    d.add_argument("--method", choices=METHODS.names(), help="training method (default kd)")
    d.add_argument("--student", help="student model name")
    d.add_argument("--seed", type=int, help="the student's seed")
    d.add_argument("--alpha", type=float, help="weight of the KD term, in [0, 1]")
    d.add_argument("--temperature", type=float, help="KD softmax temperature")
    m = d.add_argument_group("method options (xdistill, at, e2kd)")
    m.add_argument("--explainer", help="teacher explanation the CAE learns (default gradcam)")
    m.add_argument("--map-target", dest="map_target", help="pred | label: class explained")
    m.add_argument("--beta", type=float, help="xdistill: weight b of the explanation loss")
    m.add_argument("--exp-loss", dest="exp_loss", help="xdistill: mse | bce | ssim")
    m.add_argument("--fusion", help="xdistill: channel | gate | feature")
    m.add_argument("--schedule", help="xdistill: joint | staged")
    m.add_argument("--cae-variant", dest="cae_variant", help="plain | separable | skips | both")
    m.add_argument("--cae-width", dest="cae_width", type=int, help="CAE channels, first block")
    m.add_argument("--cae-epochs", dest="cae_epochs", type=int, help="staged: CAE epochs")
    m.add_argument("--cae-freeze", dest="cae_freeze", action=argparse.BooleanOptionalAction,
                   help="staged: keep the pre-trained CAE frozen")  # fmt: skip
    m.add_argument("--at-beta", dest="at_beta", type=float, help="at: weight of the AT term")
    m.add_argument("--e2kd-weight", dest="e2kd_weight", type=float,
                   help="e2kd: weight of 1 - cos(GradCAM_T, GradCAM_S)")  # fmt: skip
    a = sub.add_parser("data", help="make a dataset available offline and print its sizes")
    a.add_argument("--dataset", default="fashion_mnist", help="dataset name")
    a.add_argument("--data-root", dest="data_root", help="data folder (default: ./data)")
    a.add_argument("--download", action="store_true", default=None, help="allow downloads")
    e = sub.add_parser("experiment", help="run (or check) an experiment config: all its runs")
    e.add_argument("config", help="experiment YAML, e.g. configs/fashion_mnist_book.yaml")
    e.add_argument("--check", action="store_true", help="only validate the config")
    e.add_argument("--runs", help="run cache folder (default: ./runs, or $XDX_RUNS)")
    n = sub.add_parser("check-params", help="check papermill -p/-r parameters against a "
                       "notebook's declared names and types, before papermill runs it")  # fmt: skip
    n.add_argument("notebook", help="the notebook, e.g. book/results.ipynb")
    n.add_argument("-p", "--parameters", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="as papermill's -p")  # fmt: skip
    n.add_argument("-r", "--parameters_raw", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="as papermill's -r (a string)")  # fmt: skip
    for p in (t, d):
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


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
    from .cache import CacheWriteError
    from .data import DataNotFoundError
    from .train import CheckpointMismatch, DeviceUnavailable

    return (ConfigError, DataNotFoundError, CheckpointMismatch, DeviceUnavailable,
            CacheWriteError)  # fmt: skip


def _fail(e: BaseException) -> int:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2


def _experiment(args: argparse.Namespace) -> int:
    """``experiment CONFIG``: validate, then train and evaluate everything it names.

    ``--check`` runs exactly the checks the real run starts with: every value of every run
    (:func:`~xdx_lib.runner.load_experiment`), then the device, the data root and the runs
    folder (:func:`~xdx_lib.runner.preflight`).
    """
    from .runner import load_experiment, preflight, run_experiment

    try:
        exp = load_experiment(args.config)
        if args.check:
            preflight(exp)
            print(f"{args.config}: ok ({len(exp.methods)} methods x {len(exp.seeds)} seeds)")
            return 0
        results = run_experiment(exp)
    except _errors() as e:
        return _fail(e)
    print(f"{exp.name}: {len(results)} results in runs/{exp.name}/results/")
    return 0


def _interrupted() -> int:
    """Ctrl-C during training: one line instead of a traceback, and the shell's status 130.

    Every finished epoch is already in the run cache, so the same command resumes there.
    """
    from .cache import runs_dir

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
    try:
        return _train(args)
    except KeyboardInterrupt:
        return _interrupted()


def _check_params(args: argparse.Namespace) -> int:
    """``check-params NOTEBOOK -p ...``: papermill's parameters against the notebook's."""
    from .notebook import ParameterError, check_papermill_parameters

    try:
        params = check_papermill_parameters(args.notebook, args.parameters,
                                            args.parameters_raw)  # fmt: skip
    except ParameterError as e:
        return _fail(e)
    print(f"{args.notebook}: parameters ok ({', '.join(params) or 'none given'})")
    return 0


def _data(args: argparse.Namespace) -> int:
    """``data --dataset NAME``: make a dataset available and print its sizes."""
    from .data import load_dataset

    try:
        ds = load_dataset(args.dataset, root=args.data_root, download=args.download)
    except (*_errors(), ValueError) as e:
        return _fail(e)
    h, w = ds.image_size
    print(f"{ds.name}: {len(ds.train)} train, {len(ds.test)} test images "
          f"of {ds.in_channels}x{h}x{w}, {ds.num_classes} classes")
    return 0


def _train(args: argparse.Namespace) -> int:
    """``train-teacher``, ``distill`` and ``experiment``: train (or load) and report."""
    if getattr(args, "runs", None):
        os.environ["XDX_RUNS"] = args.runs
    if args.command == "experiment":
        return _experiment(args)
    try:
        cfg = config_from_args(args)
        from . import experiments
        from .cache import check_writable, runs_dir
        from .data import check_data_root
        from .train import resolve_device

        # what would otherwise fail late: the device, the data root, the runs folder
        resolve_device(cfg.device)
        check_data_root(cfg.dataset, cfg.data_root, cfg.download)
        check_writable(runs_dir())
        data = experiments.load_data(cfg)
        if args.command == "train-teacher":
            run = experiments.train_teacher(cfg, data, progress=args.progress)
        else:
            run = experiments.train_student(cfg, data, progress=args.progress)
    except _errors() as e:
        return _fail(e)
    except RuntimeError as e:
        if "cannot read" in str(e) or "CUDA" in str(e):
            return _fail(e)
        raise
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
