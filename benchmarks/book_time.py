"""Where does ``make book``'s time go, and what would bfloat16 buy each model on this CPU?

1. **Chapters** (``--chapters``): executes the book's notebooks with papermill, in the order
   ``make book`` does (jupyter-book reads, and so executes, the documents sorted by name),
   on ``--profile`` and a fresh run cache (``--runs``, default a temporary folder; the
   chapters share it, as in the build). After each chapter it reads what the run cache
   gained: teachers, students (by method and epochs), CAEs, and maps. A run's training
   seconds are those its checkpoint recorded: the epochs' ``epoch_time`` (training only,
   without the per-epoch evaluation) or a CAE's ``seconds``. What is left of a chapter's
   wall time is everything else: kernel start, data, the per-epoch evaluation, the
   teacher's maps, scoring, explaining and plots.
2. **Throughput** (``--throughput``): images per second of one training step (forward,
   backward, AdamW) of each model the profile trains, on random images of the dataset's
   shape, in float32, float32 ``channels_last`` (how the library trains) and bfloat16
   autocast ``channels_last``; the last column is bfloat16 over the library's float32. It
   prints whether this CPU has bfloat16 matrix units
   (:func:`xdx_lib.training.precision.cpu_has_bf16_units`), which decides what
   ``precision: auto`` trains in: without them oneDNN emulates bfloat16.

Usage::

    python benchmarks/book_time.py --throughput                  # a minute
    python benchmarks/book_time.py --chapters --profile smoke    # about 3 minutes
    python benchmarks/book_time.py --chapters --profile book     # as long as make book
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xdx_lib.core.config import PROFILES, RunConfig  # noqa: E402
from xdx_lib.distill.cae_pretraining import build_cae  # noqa: E402
from xdx_lib.models.classifiers import create_model  # noqa: E402
from xdx_lib.training.precision import cpu_has_bf16_units  # noqa: E402

#: The kinds of run the run cache holds, by folder.
RUN_FOLDERS = ("teachers", "students", "cae")


def chapter_order(toc: Path = ROOT / "_toc.yml") -> list[Path]:
    """The notebooks of ``_toc.yml``, in the order ``make book`` executes them (by name)."""
    import yaml

    files = []
    for part in yaml.safe_load(toc.read_text())["parts"]:
        files += [ROOT / f"{c['file']}.ipynb" for c in part["chapters"]]
    return sorted((f for f in files if f.is_file()), key=lambda f: f.name)


def run_files(runs: Path) -> set[Path]:
    """Every stored teacher, student and CAE checkpoint under ``runs``."""
    return {p for folder in RUN_FOLDERS for p in (runs / folder).glob("*/model.pt")}


def run_seconds(path: Path) -> tuple[str, float]:
    """What a checkpoint trained (``teacher``, ``cae``, or ``<method> <epochs> ep``) and the
    seconds its training took, as it recorded them."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    folder = path.parent.parent.name
    if folder == "cae":
        return "cae", float(ckpt.get("seconds", 0.0))
    history = ckpt.get("history") or []
    seconds = sum(float(r.get("epoch_time", 0.0)) for r in history)
    if folder == "teachers":
        return "teacher", seconds
    return f"{ckpt['meta']['method']} {len(history)} ep", seconds


def chapter_share(new_runs: set[Path], maps: int, wall: float) -> dict:
    """One chapter's row: its wall time, what it trained and for how long, and the rest."""
    kinds: Counter = Counter()
    seconds: dict[str, float] = defaultdict(float)
    for path in new_runs:
        kind, s = run_seconds(path)
        kinds[kind] += 1
        seconds[kind] += s
    training = sum(seconds.values())
    return {"wall": wall, "training": training, "rest": wall - training, "maps": maps,
            "runs": {k: (kinds[k], seconds[k]) for k in sorted(kinds)}}  # fmt: skip


def time_chapters(profile: str, runs: Path, out: Path) -> dict[str, dict]:
    """Execute each chapter (:func:`chapter_order`) on ``profile`` with the run cache
    ``runs``, and return each one's :func:`chapter_share`."""
    import papermill

    os.environ.update(XDX_PROFILE=profile, XDX_RUNS=str(runs))
    rows = {}
    for nb in chapter_order():
        before, maps_before = run_files(runs), len(list((runs / "maps").glob("*")))
        t0 = time.perf_counter()
        papermill.execute_notebook(str(nb), str(out / nb.name), cwd=str(nb.parent),
                                   progress_bar=False)  # fmt: skip
        wall = time.perf_counter() - t0
        maps = len(list((runs / "maps").glob("*"))) - maps_before
        rows[nb.stem] = chapter_share(run_files(runs) - before, maps, wall)
        print(f"{nb.stem}: {wall:.0f} s", flush=True)
    return rows


def print_chapters(rows: dict[str, dict]) -> None:
    """The chapters' table, then each chapter's runs by kind."""
    print(f"\n{'chapter':<12}{'wall s':>9}{'training s':>12}{'rest s':>9}{'maps':>6}")
    for name, r in rows.items():
        print(f"{name:<12}{r['wall']:>9.0f}{r['training']:>12.0f}{r['rest']:>9.0f}{r['maps']:>6}")
    total = {k: sum(r[k] for r in rows.values()) for k in ("wall", "training", "rest")}
    print(f"{'all':<12}{total['wall']:>9.0f}{total['training']:>12.0f}{total['rest']:>9.0f}")
    for name, r in rows.items():
        for kind, (n, s) in r["runs"].items():
            print(f"  {name:<10} {kind:<22} {n:>3} runs {s:>8.0f} s")


def _step_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool,
               dtype: torch.dtype | None, steps: int) -> float:  # fmt: skip
    """Images per second of ``steps`` training steps (after two not timed)."""
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_of = _loss(model)
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * len(x) / (time.perf_counter() - t0)


def _loss(model: torch.nn.Module):
    """The training loss of a classifier (cross-entropy) or a CAE (its map's squared
    error against a zero map: the cost is the same)."""
    if getattr(model, "is_cae", False):
        return lambda x, y: model(x).float().pow(2).mean()
    return lambda x, y: torch.nn.functional.cross_entropy(model(x).float(), y)


def throughput(models: dict[str, torch.nn.Module], shape: tuple[int, int, int],
               batch_size: int, steps: int) -> list[tuple]:  # fmt: skip
    """Each model's images/s: float32, float32 channels_last, bfloat16 channels_last."""
    torch.manual_seed(0)
    x = torch.randn(batch_size, *shape)
    y = torch.randint(0, 10, (batch_size,))
    rows = []
    for name, model in models.items():
        rates = [_step_rate(model.float(), x, y, cl, dt, steps)
                 for cl, dt in ((False, None), (True, None), (True, torch.bfloat16))]  # fmt: skip
        rows.append((name, *rates, rates[2] / rates[1]))
    return rows


def profile_models(profile: str) -> dict[str, torch.nn.Module]:
    """The teacher, the student and the default CAE of ``profile`` (random weights)."""
    p = PROFILES[profile]
    cae = build_cae(RunConfig(), 1)
    cae.is_cae = True
    return {p.teacher: create_model(p.teacher, 1, 10), p.student: create_model(p.student, 1, 10),
            "cae (default)": cae}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chapters", action="store_true", help="time each chapter (papermill)")
    ap.add_argument("--throughput", action="store_true", help="images/s by precision")
    ap.add_argument("--profile", default="book")
    ap.add_argument("--runs", type=Path, default=None, help="run cache (default: a new one)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args(argv)
    if not (args.chapters or args.throughput):
        ap.error("say what to measure: --chapters, --throughput or both")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bfloat16 units: "
          f"{'yes' if cpu_has_bf16_units() else 'no'} (precision auto trains in "
          f"{'bfloat16' if cpu_has_bf16_units() else 'float32'} here)")  # fmt: skip
    if args.throughput:
        print(f"\n{'model':<16}{'fp32':>9}{'fp32 cl':>10}{'bf16 cl':>10}{'bf16/fp32 cl':>14}")
        for name, *rates, ratio in throughput(profile_models(args.profile), (1, 28, 28),
                                              args.batch_size, args.steps):  # fmt: skip
            print(f"{name:<16}" + "".join(f"{r:>9,.0f} " for r in rates) + f"{ratio:>12.2f}x")
    if args.chapters:
        with tempfile.TemporaryDirectory() as tmp:
            runs = args.runs or Path(tmp) / "runs"
            print_chapters(time_chapters(args.profile, runs, Path(tmp)))


if __name__ == "__main__":
    main()
