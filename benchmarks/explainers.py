"""How fast is each explainer, batched and one image at a time, and how much memory does it take?

Builds a model (random weights by default, or ``--checkpoint``), explains ``--n`` images with
every method of ``--methods`` through :func:`xdx_lib.explain.explain`, and prints a table:
images/s batched, images/s as a per-image loop (1 / median time of one call), and peak
memory above the level before the method ran (the process's resident set sampled every 2 ms
with psutil, or ``ru_maxrss`` without it; ``torch.cuda.max_memory_allocated`` on a GPU).
The slow methods explain fewer images (``SLOW_CAPS``) so that the default run stays around
a minute on 2 idle CPU cores.

Images are Fashion-MNIST test images when ``xdx_lib.data.datasets`` can load them offline, else
smooth random blobs of the same shape (``--data random`` forces those).

Usage::

    python benchmarks/explainers.py                       # cnn_teacher, all explainers
    python benchmarks/explainers.py --model student_small --n 512 --methods gradcam,saliency
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xdx_lib.core.cache import load_tensors  # noqa: E402
from xdx_lib.evaluation.scoring import timed  # noqa: E402
from xdx_lib.explain import EXPLAINERS, explain  # noqa: E402
from xdx_lib.models.classifiers import create_model  # noqa: E402

#: At most this many images for the methods that cost many forward passes per image.
SLOW_CAPS = {
    "integrated_gradients": 32,
    "gradient_shap": 32,
    "occlusion": 32,
    "lime": 6,
    "kernel_shap": 6,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="cnn_teacher", help="a registered model name")
    p.add_argument("--checkpoint", default=None, help="weights to load (default: random)")
    p.add_argument("--n", type=int, default=256, help="images per method (capped for slow ones)")
    p.add_argument("--loop-n", type=int, default=32, help="images for the per-image loop")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--methods", default=",".join(EXPLAINERS.names()), help="comma-separated")
    p.add_argument("--data", choices=["auto", "fashion_mnist", "random"], default="auto")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-caps", action="store_true", help="explain --n images with every method")
    return p.parse_args(argv)


def random_images(n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Smooth random blobs in [0, 1] on a black background, shaped like Fashion-MNIST."""
    from torchvision.transforms.functional import gaussian_blur

    g = torch.Generator().manual_seed(seed)
    x = gaussian_blur(torch.rand(n, 1, size, size, generator=g), kernel_size=7, sigma=2.0)
    x = (x - x.mean(dim=(2, 3), keepdim=True)).clamp_min(0)
    return x / x.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)


def load_images(kind: str, n: int) -> tuple[torch.Tensor, str]:
    """``n`` test images and a word saying where they came from."""
    if kind != "random":
        try:
            from xdx_lib.data.datasets import load_dataset

            ds = load_dataset("fashion_mnist", test_subset=n, download=False)
            return ds.test.x[:n].float(), "fashion_mnist (test)"
        except Exception as e:  # noqa: BLE001 - any failure means: use random images
            if kind == "fashion_mnist":
                raise
            print(f"note: Fashion-MNIST unavailable ({type(e).__name__}); random images")
    return random_images(n), "random blobs"


def build_model(name: str, checkpoint: str | None, in_channels: int, device: str):
    model = create_model(name, in_channels=in_channels, num_classes=10)
    if checkpoint:
        ckpt = load_tensors(checkpoint)
        model.load_state_dict(ckpt["model"] if "model" in ckpt else ckpt)
    return model.to(device).eval()


def release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), so that the resident
    set measures what the next method allocates, not what earlier ones left in the heap."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the peak may read low after big methods
        pass


class PeakMemory:
    """Peak memory (MiB) above the level at entry, for the block it wraps.

    On CUDA: ``torch.cuda.max_memory_allocated``. On the CPU: the resident set sampled
    every 2 ms by a thread (psutil) after :func:`release_free_memory`, else the growth of
    ``ru_maxrss`` (which only sees a new high-water mark of the whole process).
    """

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.peak_mib = 0.0

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        release_free_memory()
        try:
            import psutil

            self.proc = psutil.Process()
        except ImportError:
            self.proc = None
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            return self
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self.stop.wait(0.002)

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elif self.proc is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        else:
            self.stop.set()
            self.thread.join()
            peak = max(self.peak, self.proc.memory_info().rss)
        self.peak_mib = max(0.0, (peak - self.base) / 2**20)


def bench_method(model, x: torch.Tensor, method: str, args) -> dict:
    """Images/s batched and one at a time, and peak memory of the batched run.

    The per-image rate is 1 / the median time of one call, which a passing load on a
    shared machine disturbs less than a total.
    """
    n = len(x) if args.no_caps else min(len(x), SLOW_CAPS.get(method, len(x)))
    loop_n = min(n, args.loop_n)
    explain(model, x[:1], method)  # warm-up: lazy imports (scikit-learn), allocator
    with PeakMemory(args.device) as mem:
        batched = timed(lambda im: explain(model, im, method, batch_size=args.batch_size), x[:n])

    per_image = [
        timed(lambda im: explain(model, im, method), x[i : i + 1]).seconds for i in range(loop_n)
    ]
    return {
        "method": method,
        "n": n,
        "batched": batched.images_per_second,
        "loop_n": loop_n,
        "loop": 1.0 / statistics.median(per_image),
        "peak_mib": mem.peak_mib,
    }


def print_table(rows: list[dict]) -> None:
    head = f"{'explainer':<22}{'n':>5}{'img/s batched':>15}{'loop n':>8}{'img/s loop':>12}"
    print(head + f"{'peak MiB':>10}")
    print("-" * (len(head) + 10))
    for r in rows:
        print(
            f"{r['method']:<22}{r['n']:>5}{r['batched']:>15.1f}{r['loop_n']:>8}"
            f"{r['loop']:>12.1f}{r['peak_mib']:>10.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        EXPLAINERS.get(m)  # unknown names fail before any work, listing the known ones
    x, source = load_images(args.data, args.n)
    model = build_model(args.model, args.checkpoint, x.shape[1], args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model {args.model} ({n_params / 1e6:.2f}M parameters, "
        f"{'checkpoint' if args.checkpoint else 'random weights'}) on {args.device}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; "
        f"images: {source} {tuple(x.shape[1:])}; batch size {args.batch_size}"
    )
    rows = []
    t0 = time.perf_counter()
    for m in methods:
        rows.append(bench_method(model, x, m, args))
    print_table(rows)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
