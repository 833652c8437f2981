"""The project's GPU check: every method, cached and online teacher signals, compile off and
on, at the precision the GPU gets, in a few minutes on one GPU.

For each setting it trains one timed epoch (after a short warm-up) of
:func:`xdx_lib.training.loop.fit` on Fashion-MNIST-shaped images (real ones when on disk, never
downloaded; random otherwise: throughput does not depend on the pixels) with an untrained
teacher, and records steps run, images/s (training only) and the peak device memory. A
setting that fails is recorded with its one-line error instead of stopping the check.

It writes ``results/gpu/<gpu>-<commit>.json`` (``--out`` to change) with the provenance of
the run (:func:`xdx_lib.experiments.runner.provenance`: commit, versions, device) and prints a
table.
The README's GPU figures come from those files. Targets (a benchmark's, not a test's): KD
with ``student_medium`` at 250,000 images/s or more on an H100/H200-class GPU, and an
XDistillation epoch at most 1.3x a KD epoch.

Usage::

    python benchmarks/gpu_check.py                       # the lent GPU, 60,000 images
    python benchmarks/gpu_check.py --device cpu --n-images 256 --methods kd --out check.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import METHODS, make_data, random_teacher, time_method  # noqa: E402

from xdx_lib.core.cache import atomic_write_json  # noqa: E402
from xdx_lib.core.config import RunConfig  # noqa: E402
from xdx_lib.core.devices import resolve_device  # noqa: E402
from xdx_lib.experiments.runner import provenance  # noqa: E402
from xdx_lib.training.precision import resolve_precision  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-images", type=int, default=60_000, help="training images timed")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--student", default="student_medium")
    p.add_argument("--teacher", default="cnn_teacher")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", default="auto", help="auto | bf16 | fp16 | off")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    p.add_argument("--no-compile", action="store_true", help="skip the compile: true runs")
    p.add_argument("--out", help="the JSON to write (default: results/gpu/<gpu>-<commit>.json)")
    return p.parse_args(argv)


def device_name(device: torch.device) -> str:
    """The GPU's name (or ``cpu``), as a file-name-safe slug."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def one_setting(cfg: RunConfig, teacher, data, device: torch.device) -> dict:
    """Train one timed epoch of ``cfg``; images/s, steps and peak memory, or the error."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    try:
        images_per_s = time_method(cfg, teacher, data, device)
    except Exception as e:  # noqa: BLE001  (recorded: the check goes on with the others)
        return {"error": " ".join(f"{type(e).__name__}: {e}".split())[:300]}
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"images_per_s": images_per_s, "steps": -(-len(data.train) // cfg.batch_size),
            "peak_mib": peak, "wall_s": time.perf_counter() - t0}  # fmt: skip


def run_check(args: argparse.Namespace) -> dict:
    """Every setting the arguments name, with the device, precision and provenance."""
    device = resolve_device(args.device)
    os.environ["XDX_RUNS"] = tempfile.mkdtemp(prefix="xdx-gpu-check-")
    data, source = make_data(args.n_images, "auto")
    teacher = random_teacher(args.teacher, device)
    base = RunConfig(dataset="fashion_mnist", profile="smoke", student=args.student,
                     teacher=args.teacher, batch_size=args.batch_size, amp=args.amp)  # fmt: skip
    rows = []
    for compile_ in [False] + ([] if args.no_compile else [True]):
        for signal in ("cached", "online"):
            for m in args.methods.split(","):
                if signal == "online" and m == "scratch":
                    continue
                cfg = dataclasses.replace(base, method=m, teacher_signal=signal,
                                          augment=signal == "online", compile=compile_)
                row = {"method": m, "signal": signal, "compile": compile_,
                       **one_setting(cfg, teacher, data, device)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    dtype = resolve_precision(args.amp, device)
    return {"gpu": device_name(device), "precision": str(dtype).replace("torch.", ""),
            "data": source, "n_images": len(data.train), "batch_size": args.batch_size,
            "student": args.student, "teacher": args.teacher, "rows": rows,
            "provenance": provenance(str(device))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_check(args)
    commit = result["provenance"]["git_commit"][:7]
    out = Path(args.out or Path(__file__).resolve().parents[1] / "results" / "gpu"
               / f"{result['gpu']}-{commit}.json")  # fmt: skip
    atomic_write_json(result, out)
    print(f"{'method':<9} {'signal':<7} {'compile':<8} {'images/s':>10} {'peak MiB':>9}")
    for r in result["rows"]:
        speed = f"{r['images_per_s']:>10.0f}" if "images_per_s" in r else f"{'error':>10}"
        peak = f"{r['peak_mib']:>9.0f}" if r.get("peak_mib") is not None else f"{'-':>9}"
        print(f"{r['method']:<9} {r['signal']:<7} {r['compile']!s:<8} {speed} {peak}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
