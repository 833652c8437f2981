"""benchmarks/profile_budget.py: the FLOP counts it multiplies, and the colab profile's
budget on a T4 (arithmetic under the script's stated throughput)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripts import load_script

from xdx_lib.core.config import PROFILES
from xdx_lib.experiments.experiment_config import load_experiment
from xdx_lib.models.classifiers import create_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def budget():
    return load_script("benchmarks/profile_budget.py")


@pytest.mark.parametrize("name, mflops", [("cnn_teacher", 58.3), ("student_small", 3.8),
                                          ("student_medium", 14.7)])  # fmt: skip
def test_forward_flops_per_image_are_the_measured_ones(budget, name, mflops):
    model = create_model(name, 1, 10)
    assert budget.forward_flops(model, 1, 28) / 1e6 == pytest.approx(mflops, abs=0.05)


def test_the_colab_profile_has_its_experiment_and_fits_a_t4(budget):
    exp = load_experiment(ROOT / "configs" / "fashion_mnist_colab.yaml")
    assert exp.base.profile == "colab"
    assert exp.base.student_epochs == PROFILES["colab"].student_epochs  # not overridden
    t4 = budget.GPUS[0]
    seconds = budget.estimate(("colab",), devices=(t4,))["colab"]["t4"]
    assert seconds["results"] < 45 * 60
    assert max(v for k, v in seconds.items() if k not in ("results", "book")) < 20 * 60
    assert seconds["book"] < 60 * 60


def test_the_colab_profile_trains_the_book_students_longer():
    book, colab = PROFILES["book"], PROFILES["colab"]
    same = ("train_subset", "test_subset", "teacher_subset", "val_size", "teacher", "student",
            "batch_size", "lr")
    assert all(getattr(colab, k) == getattr(book, k) for k in same)
    # the plateau profile: past the book's own check (twice its epochs), so the book's
    # shortfall is measured on students the colab profile trains further
    assert colab.student_epochs >= 2 * book.student_epochs
    # one teacher for both (the same cache key): the two profiles differ in their students
    assert colab.teacher_epochs == book.teacher_epochs


def test_the_smoke_profile_costs_seconds_and_the_cpu_is_calibrated(budget):
    cpu = budget.cpu_device()
    seconds = budget.estimate(("smoke", "book"), devices=(cpu,))
    assert seconds["book"]["cpu"]["results"] == pytest.approx(
        budget.MEASURED_CPU_RESULTS_SECONDS)  # the calibration
    assert seconds["smoke"]["cpu"]["book"] < seconds["book"]["cpu"]["book"] / 5
