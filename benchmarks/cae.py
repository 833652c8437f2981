"""The CAE's three targets, as ratios from one run: speed of its map, cost of an
XDistillation epoch, and fidelity of its map.

1. images/s of the default CAE's map (:func:`xdx_lib.models.cae.predict_maps`) over images/s of
   the teacher's batched Grad-CAM of its predicted class (target: at least 10x);
2. seconds of one XDistillation epoch over one KD epoch, both with cached teacher logits and
   maps (target: at most 1.3x), for the default and for the old reading (full-resolution
   CAE, task gradients into the CAE, MSE);
3. the Pearson r of the CAE's map with the teacher's Grad-CAM on the test split, for the
   stand-alone CAE and for the default XDistillation student's CAE (target: at least 0.85).

1 and 2 time random-weight models on Fashion-MNIST-shaped data (the values do not change
the time). 3 needs trained models: it reads the book profile's teacher, CAE and student
from the run cache and trains what is missing (minutes on a CPU; ``--skip-fidelity``
leaves it out).

Usage::

    python benchmarks/cae.py                  # all three, book profile, this machine
    python benchmarks/cae.py --skip-fidelity  # only the two speed ratios (about a minute)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xdx_lib.core.config import RunConfig  # noqa: E402
from xdx_lib.core.devices import resolve_device, seed_everything  # noqa: E402
from xdx_lib.data.batches import Extras  # noqa: E402
from xdx_lib.data.datasets import Split  # noqa: E402
from xdx_lib.distill.cae_pretraining import build_cae, pretrain_cae  # noqa: E402
from xdx_lib.distill.method import create_method  # noqa: E402
from xdx_lib.evaluation.scoring import timed  # noqa: E402
from xdx_lib.experiments import session  # noqa: E402
from xdx_lib.explain import explain  # noqa: E402
from xdx_lib.metrics.similarity import pearson  # noqa: E402
from xdx_lib.models.cae import predict_maps  # noqa: E402
from xdx_lib.models.classifiers import create_model  # noqa: E402
from xdx_lib.training.loop import QUIET, Hardware, Schedule, fit  # noqa: E402
from xdx_lib.training.trained_model import model_maps  # noqa: E402

#: The old reading of XDistillation, before the defaults were chosen by measurement.
OLD = {"schedule": "joint", "cae_grad": "all", "cae_output": "full", "cae_variant": "both",
       "exp_loss": "mse", "cae_width": 8}


def epoch_seconds(cfg: RunConfig, n: int, device: torch.device) -> float:
    """Seconds of one training epoch of ``cfg``'s method on ``n`` random images."""
    g = torch.Generator().manual_seed(0)
    train = Split(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    test = Split(train.x[:64], train.y[:64])
    extras = {"teacher_logits": torch.randn(n, 10, generator=g),
              "teacher_maps": torch.rand(n, 1, 28, 28, generator=g)}  # fmt: skip
    method = create_method(cfg)
    seed_everything(0)
    model = method.build_model(1, 10)
    schedule = Schedule(epochs=1, batch_size=cfg.batch_size, lr=cfg.lr)
    history = fit(model, method, train, test, schedule, hardware=Hardware(device),
                  extras=Extras(train=extras), reporting=QUIET)  # fmt: skip
    return history[-1]["epoch_time"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="book")
    p.add_argument("--n", type=int, default=2000, help="images timed for the map speed")
    p.add_argument("--n-epoch", type=int, default=10000, help="images of the timed epochs")
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-fidelity", action="store_true")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cfg = RunConfig(profile=args.profile, method="xdistill", device=args.device).resolved()
    print(f"device {device}, {torch.get_num_threads()} threads, profile {args.profile}")

    x = torch.rand(args.n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    teacher = create_model(cfg.teacher, 1, 10).to(device).eval()
    cae = build_cae(cfg, 1).to(device).eval()
    gradcam = timed(lambda im: explain(teacher, im, "gradcam"), x, repeats=3).images_per_second
    cae_ips = timed(lambda im: predict_maps(cae, im), x, repeats=3).images_per_second
    print(f"1. CAE map {cae_ips:,.0f} images/s, teacher Grad-CAM (predicted class) "
          f"{gradcam:,.0f} images/s: ratio {cae_ips / gradcam:.1f}x (target >= 10x)")

    kd = epoch_seconds(dataclasses.replace(cfg, method="kd"), args.n_epoch, device)
    xd = epoch_seconds(cfg, args.n_epoch, device)
    old = epoch_seconds(dataclasses.replace(cfg, **OLD), args.n_epoch, device)
    print(f"2. epoch over {args.n_epoch} images: KD {kd:.2f} s, XDistillation {xd:.2f} s "
          f"(ratio {xd / kd:.2f}x, target <= 1.3x); old reading {old:.2f} s "
          f"({old / kd:.2f}x)")

    if not args.skip_fidelity:
        data = session.load_data(cfg)
        trained = session.train_teacher(cfg, data, verbose=False)
        t_maps = model_maps(trained, data.test.x, "gradcam")
        alone = pretrain_cae(cfg, data, trained, verbose=False)  # the default's pre-training
        student = session.train_student(cfg, data, trained, verbose=False)
        r_alone = pearson(predict_maps(alone.model, data.test.x), t_maps).mean().item()
        r_joint = pearson(predict_maps(student.model.cae, data.test.x), t_maps).mean().item()
        print(f"3. CAE map r with the teacher's Grad-CAM on {len(t_maps)} test images: "
              f"stand-alone ({cfg.cae_epochs} epochs) {r_alone:.3f}, in the default "
              f"XDistillation student "
              f"{r_joint:.3f} (target >= 0.85)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
