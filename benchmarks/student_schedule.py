"""Can another learning rate or batch size bring a student to its plateau in less time?

The ``book`` profile trains its students 32 epochs (batch 64, AdamW at 1e-2 with a cosine
decay), short of their plateau, and a longer schedule does not fit ``make book``'s hour.
This benchmark asks whether a different schedule reaches the longer schedule's accuracy for
less wall time. It trains KD students (the weight and temperature the book's grid chose)
on one seed that no chapter uses, for each point of a grid of learning rate, batch size and
epochs, and prints, for each, the validation accuracy (never the test split: this is a
choice), the wall seconds, the optimiser steps and the milliseconds a step.

The teacher is the profile's, so that its logits are the students' targets; only the
student's learning rate and batch size move (the config has one ``lr`` and one
``batch_size`` for both, so the student's job is made from a copy of the config with them
changed, and the teacher's key is untouched). Runs go to ``--runs`` (default a temporary
folder), so the book's own cache is never read or written.

Usage::

    python benchmarks/student_schedule.py                   # the default grid, about 15 min
    python benchmarks/student_schedule.py --grid 1e-2:64:32 3e-2:64:32   # lr:batch:epochs
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: lr:batch:epochs. The book's schedule and its double; a higher and a lower learning rate at
#: both lengths; batches of 128 and 256 (cheaper per image on a CPU) at twice the epochs;
#: batches of 32 (twice the steps of an epoch) at the book's epochs and twice them.
DEFAULT_GRID = ("1e-2:64:32", "1e-2:64:64", "3e-2:64:32", "3e-2:64:64", "3e-3:64:32",
                "3e-3:64:64", "1e-2:128:64", "2e-2:128:64", "2e-2:256:64", "1e-2:32:32",
                "5e-3:32:32", "1e-2:32:64")  # fmt: skip


def parse_point(text: str) -> tuple[float, int, int]:
    """``lr:batch:epochs`` as numbers; a malformed point is one clear error."""
    try:
        lr, batch, epochs = text.split(":")
        point = float(lr), int(batch), int(epochs)
    except ValueError:
        raise SystemExit(f"--grid: {text!r} is not lr:batch:epochs (e.g. 1e-2:64:32)") from None
    if point[0] <= 0 or point[1] < 1 or point[2] < 1:
        raise SystemExit(f"--grid: {text!r} needs a positive lr, batch and epochs")
    return point


def student_point(session, lr: float, batch: int, epochs: int, seed: int):
    """A KD student of ``session``'s config with the student's lr, batch and epochs changed,
    trained (or read from the run cache) against the session's teacher; with its seconds."""
    from xdx_lib.experiments.session import student_job, train_or_load

    teacher = session.teacher()
    cfg = dataclasses.replace(session.cfg, method="kd", seed=seed, lr=lr, batch_size=batch,
                              student_epochs=epochs)  # fmt: skip
    t0 = time.perf_counter()
    run = train_or_load(student_job(cfg, teacher), session.data, teacher, False, False)
    return run, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="book")
    ap.add_argument("--seed", type=int, default=120,
                    help="the students' seed (default 120: no chapter trains on it)")
    ap.add_argument("--alpha", type=float, default=0.5, help="KD's weight (the book's choice)")
    ap.add_argument("--temperature", type=float, default=4.0, help="KD's temperature")
    ap.add_argument("--grid", nargs="+", default=list(DEFAULT_GRID), metavar="LR:BATCH:EPOCHS")
    ap.add_argument("--runs", help="run cache (default: a temporary folder)")
    args = ap.parse_args(argv)
    points = [parse_point(p) for p in args.grid]
    os.environ["XDX_RUNS"] = args.runs or tempfile.mkdtemp(prefix="xdx-schedule-")

    from xdx_lib.core.config import RunConfig
    from xdx_lib.core.devices import resolve_device
    from xdx_lib.experiments.session import Session
    from xdx_lib.experiments.tuning import validation_accuracy
    from xdx_lib.training.precision import precision_name, resolve_precision

    session = Session(RunConfig(profile=args.profile, alpha=args.alpha,
                                temperature=args.temperature))  # fmt: skip
    t0 = time.perf_counter()
    session.teacher()
    dtype = resolve_precision(session.cfg.amp, resolve_device(session.cfg.device))
    print(f"teacher: {time.perf_counter() - t0:.0f} s; precision {precision_name(dtype)}; "
          f"KD a = {args.alpha:g}, "
          f"t = {args.temperature:g}, seed {args.seed}, {len(session.data.train)} images")
    print("| lr | batch | epochs | steps | val accuracy | wall s | ms a step |")
    print("|---|---|---|---|---|---|---|")
    for lr, batch, epochs in points:
        run, wall = student_point(session, lr, batch, epochs, args.seed)
        steps = epochs * -(-len(session.data.train) // batch)
        train_s = sum(r["epoch_time"] for r in run.history)
        print(f"| {lr:g} | {batch} | {epochs} | {steps:,} | "
              f"{validation_accuracy(run, session.data):.4f} | {wall:.0f} | "
              f"{1000 * train_s / steps:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
