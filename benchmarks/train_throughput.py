"""How many training images per second does each method reach, and how far is each from KD?

Times one epoch of :func:`xdx_lib.training.loop.fit` for every method (scratch, kd, at, e2kd,
xdistill) on ``--n-images`` Fashion-MNIST-shaped images (1 x 28 x 28, 10 classes): the real
training images when ``xdx_lib.data.datasets`` finds them on disk (never downloaded), else random
ones (``--data random`` forces those; throughput does not depend on the pixels). The
teacher has random weights (untrained: its logits and maps cost the same). The teacher's
cached signals (logits, maps) are computed before the clock starts, as in a real run; with
``--online`` every method that uses the teacher also runs with ``teacher_signal: online``
and ``augment`` (the teacher on each augmented batch, inside the timed epoch). Each method
first runs a short warm-up epoch (not timed) on two batches.

Prints one table from one run, on whatever device ``--device`` resolves to: method, signal,
images/s (training only: ``epoch_time`` excludes the per-epoch evaluation) and the ratio
to KD with the same signal. With ``--compile`` a method that cannot train compiled (e2KD:
``MethodOptions.cannot_compile``) is timed uncompiled and marked ``(eager)``.

Usage::

    python benchmarks/train_throughput.py                          # auto device, 4096 images
    python benchmarks/train_throughput.py --n-images 512 --device cpu --online
    python benchmarks/train_throughput.py --teacher resnet18_cifar --student student_medium
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xdx_lib.core.cache import atomic_torch_save  # noqa: E402
from xdx_lib.core.config import RunConfig  # noqa: E402
from xdx_lib.core.devices import resolve_device  # noqa: E402
from xdx_lib.data.batches import Extras  # noqa: E402
from xdx_lib.data.datasets import Dataset, Split, load_dataset  # noqa: E402
from xdx_lib.distill.method import METHODS as REGISTERED  # noqa: E402
from xdx_lib.distill.method import create_method  # noqa: E402
from xdx_lib.distill.signals import training_extras  # noqa: E402
from xdx_lib.models.classifiers import create_model  # noqa: E402
from xdx_lib.training.loop import QUIET, Hardware, Schedule, fit  # noqa: E402
from xdx_lib.training.trained_model import TrainedModel, teacher_logits  # noqa: E402

METHODS = ("scratch", "kd", "at", "e2kd", "xdistill")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-images", type=int, default=4096, help="training images timed")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--student", default="student_medium")
    p.add_argument("--teacher", default="cnn_teacher")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    p.add_argument("--online", action="store_true",
                   help="also time teacher_signal: online with augment")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch.compile (CUDA only)")
    p.add_argument("--data", choices=["auto", "random"], default="auto")
    return p.parse_args(argv)


def make_data(n: int, kind: str) -> tuple[Dataset, str]:
    """``n`` training images and 64 test images, real when on disk, else random."""
    if kind == "auto":
        try:
            data = load_dataset("fashion_mnist", download=False, train_subset=n, test_subset=64)
            return data, "fashion_mnist (from disk)"
        except Exception:  # noqa: BLE001  (no data here: random images instead)
            pass
    g = torch.Generator().manual_seed(0)

    def split(k: int) -> Split:
        return Split(torch.rand(k, 1, 28, 28, generator=g),
                     torch.randint(0, 10, (k,), generator=g))  # fmt: skip

    return Dataset("random", split(n), split(64), [str(i) for i in range(10)]), "random"


def _head(v, n: int):
    """The first ``n`` rows of a per-image signal (a tensor, or a list of them)."""
    return [t[:n] for t in v] if isinstance(v, list) else v[:n]


def time_method(cfg: RunConfig, teacher: TrainedModel, data: Dataset, device) -> float:
    """Images/s of one timed epoch of ``cfg.method`` (after a two-batch warm-up epoch).

    The method is prepared and its signals gathered as a real run does
    (:func:`xdx_lib.experiments.session.train_or_load`), before the clock starts.
    """
    method = create_method(cfg)
    if cfg.method != "scratch":
        method.prepare(teacher, data)
    extras = training_extras(cfg.teacher_signal, teacher, data, method.signals(), device, cfg.amp)
    extras.test["teacher_logits"] = teacher_logits(teacher, data)["test"]
    schedule = Schedule(epochs=1, batch_size=cfg.batch_size, lr=1e-3, augment=cfg.augment)
    kw = dict(hardware=Hardware(device, precision=cfg.amp, compile=cfg.compile), reporting=QUIET)
    warm = 2 * cfg.batch_size
    small = Split(data.train.x[:warm], data.train.y[:warm])
    warm_extras = Extras({k: _head(v, warm) for k, v in extras.train.items()}, extras.test,
                         extras.per_batch)  # fmt: skip
    torch.manual_seed(0)
    fit(method.build_model(1, 10), method, small, data.test, schedule, extras=warm_extras, **kw)
    torch.manual_seed(0)
    hist = fit(method.build_model(1, 10), method, data.train, data.test, schedule,
               extras=extras, **kw)  # fmt: skip
    return len(data.train) / hist[0]["epoch_time"]


def random_teacher(name: str, device) -> TrainedModel:
    """An untrained teacher with a checkpoint in the run cache (``$XDX_RUNS``): its logits
    and maps cost what a trained one's do."""
    torch.manual_seed(0)
    net = create_model(name, 1, 10).to(device).eval()
    path = Path(os.environ["XDX_RUNS"]) / "teacher" / "model.pt"
    atomic_torch_save({"model": net.state_dict()}, path)
    return TrainedModel(net, create_method(RunConfig(method="scratch")), path, [], "random")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    tmp = tempfile.mkdtemp(prefix="xdx-throughput-")
    os.environ["XDX_RUNS"] = tmp  # the teacher's logits and maps are cached here, not in runs/
    data, source = make_data(args.n_images, args.data)
    teacher = random_teacher(args.teacher, device)
    base = RunConfig(dataset="fashion_mnist", profile="smoke", student=args.student,
                     teacher=args.teacher, batch_size=args.batch_size)  # fmt: skip
    signals = ["cached"] + (["online"] if args.online else [])
    methods = args.methods.split(",")
    print(f"device {device}, {len(data.train)} images ({source}), batch {args.batch_size}, "
          f"teacher {args.teacher} (untrained), student {args.student}, "
          f"threads {torch.get_num_threads()}")  # fmt: skip
    rows = []
    for signal in signals:
        for m in methods:
            if signal == "online" and m == "scratch":
                continue  # no teacher: nothing to compute online
            compiled = args.compile and not REGISTERED.options(m).cannot_compile
            cfg = dataclasses.replace(base, method=m, teacher_signal=signal, compile=compiled,
                                      augment=signal == "online")  # fmt: skip
            label = m if compiled or not args.compile else f"{m} (eager)"
            rows.append((label, signal, time_method(cfg, teacher, data, device)))
    kd = {s: r for m, s, r in rows if m == "kd"}
    print(f"{'method':<14} {'signal':<7} {'images/s':>10} {'vs kd':>7}")
    for m, s, r in rows:
        ratio = f"{r / kd[s]:.2f}" if s in kd else "-"
        print(f"{m:<14} {s:<7} {r:>10.0f} {ratio:>7}")


if __name__ == "__main__":
    main()
