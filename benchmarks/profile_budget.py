"""How long does each chapter take on each profile and device? Arithmetic, not a timing.

Counts the forward FLOPs per image of every model a profile uses
(``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products, a
multiply-add counted as 2), multiplies by what each chapter does with them (images x
epochs x runs, from ``PROFILES``, the profiles' chapter sizes and the results chapter's
experiment config, ``configs/`` by profile), and divides by an assumed effective throughput.

What one image costs, in forward passes F of the model concerned (assumptions):

* a training step: 3F (forward, then a backward of about twice the forward); e2KD 6F (the
  student's Grad-CAM is differentiated: a second backward); XDistillation 3(F_student +
  F_CAE); an online teacher signal adds F_teacher (logits) or 3F_teacher (maps);
* Grad-CAM and saliency 2F; Integrated Gradients and GradientSHAP 2F per step or sample;
  occlusion one F per window position; deletion and insertion 21 F each (20 steps), for the
  student's and the teacher's maps; evaluation after each curve epoch
  (``xdx_lib.training.learning_curve.curve_epoch``) F on the test split, plus Grad-CAM of the 500
  tracked
  test images;
* the chapters run in the book's order and share the run cache: a teacher, a student, a
  CAE or a map is counted in the first chapter that makes it.

Devices (assumptions, stated again in the output):

* ``cpu``: this project's 2-core machines, calibrated: the effective FLOP/s that makes the
  book profile's results chapter take its measured 757 s (README), no per-step cost;
* ``t4``: a free Colab T4, 65 TFLOP/s fp16 tensor-core peak; assumed 4 TFLOP/s effective
  (about 6 %: small convolutions, 28x28 images) and 3 ms of host time per optimiser step;
* ``h200``: an H200-class GPU, about 990 TFLOP/s bf16 dense peak; assumed 60 TFLOP/s
  effective and the same 3 ms per step (small models are host-bound there).

Each chapter also pays :data:`CHAPTER_START` seconds (kernel start, imports, data). No
GPU time in here is measured; treat the GPU columns as an order of magnitude.

Usage::

    python benchmarks/profile_budget.py                  # every profile, every device
    python benchmarks/profile_budget.py --profiles colab
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xdx_lib.core.config import PROFILES, RunConfig  # noqa: E402
from xdx_lib.distill.cae_pretraining import build_cae  # noqa: E402
from xdx_lib.distill.method import TRACKED_TEST_IMAGES  # noqa: E402
from xdx_lib.experiments.experiment_config import load_experiment  # noqa: E402
from xdx_lib.experiments.runner import TeacherSpec, run_specs  # noqa: E402
from xdx_lib.experiments.tuning import kd_grid_points, plateau_methods  # noqa: E402
from xdx_lib.models.cae import CAE_OUTPUTS, CAE_VARIANTS  # noqa: E402
from xdx_lib.models.classifiers import create_model  # noqa: E402
from xdx_lib.report.notebook import experiment_config_path  # noqa: E402
from xdx_lib.training.learning_curve import CURVE_TEST_IMAGES, curve_epoch  # noqa: E402

CHAPTERS = ("kd", "explainers", "gap", "cae", "xdistill", "results")
#: Images of each split, channels and side of the datasets the profiles use.
DATASETS = {"fashion_mnist": (60_000, 10_000, 1, 28), "cifar10": (50_000, 10_000, 3, 32),
            "shapes": (6_000, 1_000, 1, 28)}  # fmt: skip
#: Seconds every chapter pays before its work (kernel start, imports, data).
CHAPTER_START = 10.0
#: Measured on this project's 2-core CPU machines (README; `make book` from a fresh clone
#: at 2fba321, 32-epoch students): the book profile's results chapter, the calibration of
#: the ``cpu`` row.
MEASURED_CPU_RESULTS_SECONDS = 757
#: Forward passes per image of deletion plus insertion (20 steps each: 21 passes), for the
#: student's and the teacher's maps.
FAITHFULNESS_PASSES = 2 * 21 * 2
#: Forward passes per image of each explainer (times F; steps and samples are the defaults
#: of ``xdx_lib.explain``; occlusion: a 4-pixel window, stride 2).
EXPLAINER_PASSES = {"gradcam": 2, "saliency": 2, "deeplift": 2, "integrated_gradients": 64,
                    "gradient_shap": 32}  # fmt: skip


@dataclass(frozen=True)
class Device:
    """An assumed effective throughput: FLOP/s and host seconds per optimiser step."""

    name: str
    flops: float
    step_seconds: float
    note: str


GPUS = (
    Device("t4", 4e12, 3e-3, "T4 (Colab): 4 TFLOP/s effective fp16 (peak 65), 3 ms/step"),
    Device("h200", 60e12, 3e-3, "H200-class: 60 TFLOP/s effective bf16 (peak ~990), 3 ms/step"),
)


def forward_flops(model: torch.nn.Module, channels: int, side: int) -> float:
    """Forward FLOPs per image of ``model`` (FlopCounterMode, a batch of 2, halved)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(2, channels, side, side))
    return counter.get_total_flops() / 2


@dataclass
class Work:
    """What a chapter costs: FLOPs and optimiser steps."""

    flops: float = 0.0
    steps: int = 0

    def add(self, flops: float, steps: int = 0) -> None:
        self.flops += flops
        self.steps += steps

    def seconds(self, device: Device) -> float:
        return CHAPTER_START + self.flops / device.flops + self.steps * device.step_seconds


class Budget:
    """The work of one profile's chapters, counted in the book's order (a shared cache)."""

    def __init__(self, profile: str):
        self.profile = profile
        self.size = PROFILES[profile].chapter
        self.made: set = set()  # what the run cache holds already
        self.flops_cache: dict = {}

    def flops(self, cfg: RunConfig, what: str, cae_output: str | None = None,
              variant: str | None = None) -> float:  # fmt: skip
        """Forward FLOPs per image of the config's teacher, student or CAE."""
        n_train, n_test, c, side = DATASETS[cfg.dataset]
        key = (cfg.dataset, what, cfg.teacher, cfg.student, cfg.fusion,
               cae_output or cfg.cae_output, variant or cfg.cae_variant, cfg.cae_depth,
               cfg.cae_width)  # fmt: skip
        if key not in self.flops_cache:
            fed = c + (what == "xdistill_student" and cfg.fusion == "channel")  # + the map
            if what == "cae":
                cae_cfg = dataclasses.replace(cfg, cae_output=cae_output or cfg.cae_output)
                model = build_cae(cae_cfg, c, variant)
            elif what == "xdistill_student":
                model = create_model(cfg.student, fed, 10)
            else:
                model = create_model(getattr(cfg, what), c, 10)
            self.flops_cache[key] = forward_flops(model, fed, side)
        return self.flops_cache[key]

    def sizes(self, cfg: RunConfig, teacher: bool = False) -> tuple[int, int, int]:
        """Training images (the students', or with ``teacher`` the teacher's), test images
        and steps per epoch of the config; the validation split is held out of both."""
        n_train, n_test, _, _ = DATASETS[cfg.dataset]
        rest = n_train - (cfg.val_size or 0)
        n = min(cfg.train_subset or rest, rest)
        if teacher and cfg.teacher_subset is not None:
            n = min(cfg.teacher_subset, rest)
        n_test = min(cfg.test_subset or n_test, n_test)
        return n, n_test, math.ceil(n / cfg.batch_size)

    def once(self, key) -> bool:
        """True the first time ``key`` is asked for (it is then in the run cache)."""
        if key in self.made:
            return False
        self.made.add(key)
        return True

    def teacher(self, cfg: RunConfig, work: Work) -> None:
        """Train the teacher, then its logits and Grad-CAM maps of both splits."""
        if not self.once(("teacher", cfg.dataset, cfg.teacher, cfg.teacher_epochs,
                          cfg.train_subset, cfg.teacher_subset)):  # fmt: skip
            return
        n_teacher, n_test, steps = self.sizes(cfg, teacher=True)
        n_train = self.sizes(cfg)[0]
        f = self.flops(cfg, "teacher")
        work.add(cfg.teacher_epochs * (3 * n_teacher + n_test) * f, cfg.teacher_epochs * steps)
        work.add((n_train + n_test) * (1 + 2) * f)  # logits, Grad-CAM of the students' images

    def cae_pretraining(self, cfg: RunConfig, work: Work, n_images: int | None = None,
                        output: str | None = None, variant: str | None = None,
                        map_passes: float = 0) -> None:  # fmt: skip
        """A CAE trained alone on the teacher's maps (their cost: ``map_passes`` F_T)."""
        if not self.once(("cae", cfg.dataset, output or cfg.cae_output,
                          variant or cfg.cae_variant, cfg.explainer, cfg.seed, n_images,
                          cfg.cae_epochs)):  # fmt: skip
            return
        n = n_images or self.sizes(cfg)[0]
        work.add(n * map_passes * self.flops(cfg, "teacher"))
        work.add(cfg.cae_epochs * 3 * n * self.flops(cfg, "cae", output, variant),
                 cfg.cae_epochs * math.ceil(n / 128))

    def student(self, cfg: RunConfig, work: Work) -> None:
        """Train one student (and its CAE's pre-training), unless the cache holds it."""
        method = "kd" if cfg.method == "kd_cae" else cfg.method  # kd_cae shares kd's
        cfg = dataclasses.replace(cfg, method=method)
        key = ("student", cfg.dataset, cfg.method, cfg.seed, cfg.student, cfg.fusion,
               cfg.schedule, cfg.cae_grad, cfg.cae_output, cfg.cae_variant, cfg.exp_loss,
               cfg.alpha, cfg.temperature, cfg.cae_freeze, cfg.student_epochs)  # fmt: skip
        if not self.once(key):
            return
        n_train, n_test, steps = self.sizes(cfg)
        f_t = self.flops(cfg, "teacher")
        if cfg.method == "xdistill":
            f = self.flops(cfg, "xdistill_student") + self.flops(cfg, "cae")
            if cfg.schedule == "staged":
                self.cae_pretraining(dataclasses.replace(cfg, seed=0), work)
        else:
            f = self.flops(cfg, "student")
        step = {"e2kd": 6}.get(cfg.method, 3) * f
        if cfg.teacher_signal == "online" and cfg.method != "scratch":
            step += f_t * (3 if cfg.method in ("e2kd", "at") else 1)
        scored = sum(curve_epoch(e, cfg.student_epochs) for e in range(cfg.student_epochs))
        curve = ((scored - 1) * min(CURVE_TEST_IMAGES, n_test) + n_test  # the curve's epochs
                 + scored * TRACKED_TEST_IMAGES * 2)  # and Grad-CAM of the tracked images
        work.add(cfg.student_epochs * n_train * step + curve * f, cfg.student_epochs * steps)

    def score(self, cfg: RunConfig, work: Work, explainers=("gradcam",), n_slow=0,
              n_faithful=0) -> None:  # fmt: skip
        """Score a student: accuracy, explainers (fast ones on the whole test split),
        faithfulness; the CAE's own maps for XDistillation."""
        _, n_test, _ = self.sizes(cfg)
        f = self.flops(cfg, "student")
        flops = n_test * f + n_faithful * FAITHFULNESS_PASSES * f
        for name in explainers:
            n = n_test if name in ("gradcam", "saliency", "deeplift") else n_slow
            side = DATASETS[cfg.dataset][3]
            passes = EXPLAINER_PASSES.get(name, ((side - 4) // 2 + 1) ** 2)  # occlusion
            flops += n * passes * f
        if cfg.method == "xdistill":
            flops += n_test * self.flops(cfg, "cae")
        work.add(flops)

    # ------------------------------------------------------------------ the chapters

    def chapter_kd(self, cfg: RunConfig, work: Work) -> None:
        """The teacher, KD's grid on the validation split, scratch and KD on every seed of
        the claims (the premise), and every kind of student the claims compare for the
        epochs and 2, 4, ... times them on the first tune seed (the plateau, ``plateau_doublings``
        doublings; KD's run of the profile's epochs is the grid's)."""
        self.teacher(cfg, work)
        exp = load_experiment(experiment_config_path("auto", self.profile))
        for point in kd_grid_points(exp):
            for seed in exp.tune_seeds:
                self.student(dataclasses.replace(cfg, method="kd", seed=seed, **point), work)
        cfg = tune_kd_on_paper(cfg, exp)
        for seed in exp.seeds + exp.claim_seeds:
            for method in ("scratch", "kd"):
                self.student(dataclasses.replace(cfg, method=method, seed=seed), work)
        for method in plateau_methods(exp):
            for doubling in range(self.size["plateau_doublings"] + 1):
                self.student(dataclasses.replace(
                    cfg, method=method, seed=exp.tune_seeds[0],
                    student_epochs=2**doubling * cfg.student_epochs), work)  # fmt: skip

    def chapter_explainers(self, cfg: RunConfig, work: Work) -> None:
        # every explainer on n_timed images (the slow ones on a sixteenth), on the trained
        # and on a randomised teacher; faithfulness of each on n_faithful images
        s, f_t = self.size, self.flops(cfg, "teacher")
        fast, slow = 6, 5  # explainers of each kind in the chapter's tables
        per_model = (fast * 2 * s["n_timed"] + slow * s["n_timed"] / 16 * 2 * s["lime_samples"])
        work.add(2 * per_model * f_t + (fast + slow) * s["n_faithful"] * 42 * f_t)

    def chapter_gap(self, cfg: RunConfig, work: Work) -> None:
        _, n_test, _ = self.sizes(cfg)
        for what in ("teacher", "student", "student"):  # the teacher, scratch, kd
            f = self.flops(cfg, what)
            work.add((2 + 2) * n_test * f + self.size["n_slow_gap"] * 2 * 32 * f)

    def chapter_cae(self, cfg: RunConfig, work: Work) -> None:
        cfg = dataclasses.replace(cfg, cae_epochs=self.size["cae_epochs"])
        for output in CAE_OUTPUTS:
            for variant in CAE_VARIANTS:
                self.cae_pretraining(cfg, work, output=output, variant=variant)
        n = self.size["n_amortised"]
        steps = self.size["dear_steps"]
        for name in ("integrated_gradients", "gradient_shap"):
            dear = dataclasses.replace(cfg, explainer=name)
            for output in CAE_OUTPUTS:
                self.cae_pretraining(dear, work, n, output, "both", map_passes=2 * steps)

    def chapter_xdistill(self, cfg: RunConfig, work: Work) -> None:
        for method in ("scratch", "kd", "at", "e2kd", "xdistill"):
            self.student(dataclasses.replace(cfg, method=method), work)
            self.score(dataclasses.replace(cfg, method=method), work)
        base = dataclasses.replace(cfg, method="xdistill")
        variants = [{"method": "kd"}, {}, {"schedule": "joint"},
                    {"schedule": "joint", "cae_grad": "all"},
                    {"schedule": "joint", "cae_grad": "all", "cae_output": "full",
                     "cae_variant": "both", "exp_loss": "mse"}]  # fmt: skip
        for seed in range(self.size["variant_seeds"]):
            for changes in variants:
                run = dataclasses.replace(base, seed=seed, **changes)
                self.student(run, work)
                self.score(run, work)
            self.cae_pretraining(dataclasses.replace(base, seed=seed), work)
        self.student(dataclasses.replace(base, schedule="joint", exp_loss="mse"), work)

    def chapter_results(self, work: Work) -> None:
        exp = load_experiment(experiment_config_path("auto", self.profile))
        base = tune_kd_on_paper(exp.base, exp)
        for spec in run_specs(exp):
            cfg = dataclasses.replace(base, **spec.changes).resolved()
            if isinstance(spec, TeacherSpec):
                self.teacher(cfg, work)
                continue
            self.student(cfg, work)
            if spec.scoring == "full":
                self.score(cfg, work, exp.explainers, exp.n_slow, exp.n_faithful)
            else:
                self.score(cfg, work)

    def chapters(self) -> dict[str, Work]:
        """Each chapter's work, in the book's order."""
        exp = load_experiment(experiment_config_path("auto", self.profile))
        cfg = tune_kd_on_paper(RunConfig(profile=self.profile).resolved(), exp)
        out = {}
        for name in CHAPTERS:
            work = Work()
            if name == "results":
                self.chapter_results(work)
            else:
                getattr(self, f"chapter_{name}")(cfg, work)
            out[name] = work
        return out


def tune_kd_on_paper(cfg: RunConfig, exp) -> RunConfig:
    """The config with the grid's first point: arithmetic cannot know which point the
    validation split will choose, and every point costs the same."""
    points = kd_grid_points(exp)
    return dataclasses.replace(cfg, **points[0]) if points else cfg


def cpu_device() -> Device:
    """The 2-core CPU, calibrated on the book profile's measured results chapter."""
    work = Budget("book").chapters()["results"]
    flops = work.flops / (MEASURED_CPU_RESULTS_SECONDS - CHAPTER_START)
    return Device("cpu", flops, 0.0, f"2-core CPU: {flops / 1e9:.1f} GFLOP/s effective, "
                  "calibrated on the book profile's measured results chapter "
                  f"({MEASURED_CPU_RESULTS_SECONDS} s)")


def estimate(profiles=tuple(PROFILES), devices=None) -> dict[str, dict[str, dict[str, float]]]:
    """Seconds per chapter: ``{profile: {device: {chapter: seconds, "book": sum}}}``."""
    devices = devices or (cpu_device(), *GPUS)
    out = {}
    for profile in profiles:
        work = Budget(profile).chapters()
        out[profile] = {}
        for d in devices:
            seconds = {name: w.seconds(d) for name, w in work.items()}
            out[profile][d.name] = {**seconds, "book": sum(seconds.values())}
    return out


def _minutes(s: float) -> str:
    return f"{s / 60:,.1f}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated")
    args = p.parse_args(argv)
    devices = (cpu_device(), *GPUS)
    print("Arithmetic, not a measurement. Assumed effective throughput:")
    for d in devices:
        print(f"  {d.name}: {d.note}")
    table = estimate(tuple(args.profiles.split(",")), devices)
    print("\nminutes per chapter (the book: every chapter, set-up and HTML excluded)")
    print(f"{'profile':8} {'device':6} " + " ".join(f"{c:>10}" for c in (*CHAPTERS, "book")))
    for profile, by_device in table.items():
        for device, seconds in by_device.items():
            cells = " ".join(f"{_minutes(seconds[c]):>10}" for c in (*CHAPTERS, "book"))
            print(f"{profile:8} {device:6} {cells}")


if __name__ == "__main__":
    main()
