"""Would training several seeds at once make the CPU profile's students cheaper?

The book trains one student per method and seed. On a GPU, stacking the seeds' weights and
running them as one vectorised model (``torch.func.stack_module_state`` + ``vmap``) fills
the device; on a 2-core CPU a small student may already keep the cores busy. This prints the
images per second of ``student_small`` training steps (forward, backward and an SGD update,
batch 64 per model) for K models trained one after another and for the same K models
stacked and vectorised, on random 28x28 images.

    python benchmarks/seed_batching.py            # K = 1, 2, 4, 8
    python benchmarks/seed_batching.py --k 4 --steps 50

Batch norm's running statistics cannot be updated inside ``vmap``, so both sides use batch
statistics only (``torch.func.replace_all_batch_norm_modules_``): the arithmetic is the
same, the comparison fair.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import (
    functional_call,
    grad,
    replace_all_batch_norm_modules_,
    stack_module_state,
    vmap,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xdx_lib.models.classifiers import create_model  # noqa: E402

BATCH = 64
LR = 1e-2


def models(k: int) -> list[torch.nn.Module]:
    """``k`` students with their own initialisation (seeds 0..k-1), batch-norm stats off."""
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(replace_all_batch_norm_modules_(create_model("student_small", 1, 10)))
    return out


def sequential(nets: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
               steps: int) -> float:  # fmt: skip
    """Seconds for ``steps`` SGD steps of every model, one model after another."""
    t0 = time.perf_counter()
    for _ in range(steps):
        for i, net in enumerate(nets):
            loss = F.cross_entropy(net(x[i]), y[i])
            grads = torch.autograd.grad(loss, list(net.parameters()))
            with torch.no_grad():
                for p, g in zip(net.parameters(), grads):
                    p -= LR * g
    return time.perf_counter() - t0


def vectorised(nets: list[torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
               steps: int) -> float:  # fmt: skip
    """Seconds for ``steps`` SGD steps of the stacked models, as one ``vmap``."""
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def loss_fn(p, b, xb, yb):
        return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    step = vmap(grad(loss_fn))
    t0 = time.perf_counter()
    for _ in range(steps):
        grads = step(params, buffers, x, y)
        params = {k: v - LR * grads[k] for k, v in params.items()}
    return time.perf_counter() - t0


def measure(k: int, steps: int) -> dict[str, float]:
    """Images per second of both ways of training ``k`` models (after one warm-up step)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(k, BATCH, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (k, BATCH), generator=g)
    images = k * BATCH * steps
    out = {}
    for name, run in (("one after another", sequential), ("vectorised", vectorised)):
        run(models(k), x, y, 1)
        out[name] = images / run(models(k), x, y, steps)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, nargs="*", default=[1, 2, 4, 8], help="models at once")
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    args = p.parse_args(argv)
    print(f"student_small training steps, batch {BATCH} per model, "
          f"{torch.get_num_threads()} threads: images/s")  # fmt: skip
    for k in args.k:
        r = measure(k, args.steps)
        print(f"K={k}: one after another {r['one after another']:,.0f}, vectorised "
              f"{r['vectorised']:,.0f} ({r['vectorised'] / r['one after another']:.2f}x)")


if __name__ == "__main__":
    main()
