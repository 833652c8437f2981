"""The experiment config: every bad field is one ConfigError line that names it, before
anything is trained, and the command line's ``--check`` exits with it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tiny_experiment import TINY, write_config

from xdx_lib.core.config import ConfigError
from xdx_lib.experiments.experiment_config import ExperimentConfig, load_experiment, shapes_changes


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"seeds": 3}, "seeds=3 should be a list"),
        ({"seeds": [0, "one"]}, "seed 'one' should be an int"),
        ({"methods": ["kd", "distil"]}, "method 'distil' is unknown"),
        ({"explainers": ["gradcam", "shap"]}, "explainer 'shap' is unknown"),
        ({"run": {"dataset": "imagenet"}}, "dataset='imagenet' is unknown"),
        ({"run": {"student_epochs": 1.5}}, "student_epochs=1.5 has the wrong type"),
        ({"sweeps": {"fusion": ["sum"]}}, "fusion='sum' is unknown"),
        ({"sweeps": {"beta": 2.0}}, "sweeps.beta should be a list"),
        ({"n_slow": 0}, "at least 1"),
        ({"claim_seeds": [1, 2]}, r"seeds \+ claim_seeds=\[0, 1, 1, 2\] repeats 1"),
        ({"claim_methods": [], "claim_seeds": [2]}, "claim_methods is empty"),
        ({"localisation_seeds": [0, 0]}, r"localisation_seeds=\[0, 0\] repeats 0"),
        ({"localisation_seeds": ["a"]}, "seed 'a' should be an int"),
    ],
)
def test_config_errors_name_the_field(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(write_config(tmp_path, {**TINY, **change}))


def test_with_run_returns_a_validated_copy_and_leaves_the_experiment(tmp_path):
    exp = load_experiment(write_config(tmp_path, TINY))
    on_cpu = exp.with_run(device="cpu")
    assert on_cpu.base.device == "cpu" and on_cpu.run == {**exp.run, "device": "cpu"}
    assert "device" not in exp.run and on_cpu.methods == exp.methods
    with pytest.raises(ConfigError, match="run: config: device='gpu' is unknown"):
        exp.with_run(device="gpu")


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(bad)


def test_cli_check_exits_2_with_one_line(tmp_path):
    path = write_config(tmp_path, {**TINY, "seeds": "all"})
    proc = subprocess.run([sys.executable, "-m", "xdx_lib", "experiment", str(path), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kd_grid": {"beta": [1.0]}}, "kd_grid.beta cannot be tuned"),
        ({"kd_grid": {"alpha": [0.5, 1.5]}}, r"kd_grid.alpha: .*alpha=1.5 must lie in \[0, 1\]"),
    ],
)
def test_a_bad_kd_grid_is_one_line(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(write_config(tmp_path, {**TINY, **change}))


@pytest.mark.parametrize("grid", [{}, {"kd_grid": {"alpha": [0.5]}}], ids=["no grid", "grid"])
@pytest.mark.parametrize(
    "change, message",
    [
        ({"run": {**TINY["run"], "val_size": 0}}, "run.val_size is 0.*set run.val_size above 0"),
        ({"tune_seeds": []}, "tune_seeds is empty"),
        ({"tune_seeds": [100, 100]}, r"tune_seeds=\[100, 100\] repeats 100"),
        ({"tune_seeds": [1]}, r"tune_seeds \[1\] are also claim seeds"),
        ({"tune_seeds": [2]}, r"tune_seeds \[2\] are also claim seeds"),
    ],
)
def test_every_experiment_has_a_validation_split_and_seeds_of_its_own_to_choose_on(
        tmp_path, grid, change, message):
    """With or without a KD grid: the plateau is judged on validation, on a tune seed, in
    every experiment, so a config without them fails at ``--check``, before any training."""
    with pytest.raises(ConfigError, match=message):
        load_experiment(write_config(tmp_path, {**TINY, **grid, **change}))


def test_check_refuses_an_experiment_without_a_validation_split(tmp_path):
    path = write_config(tmp_path, {**TINY, "run": {**TINY["run"], "val_size": 0}})
    proc = subprocess.run([sys.executable, "-m", "xdx_lib", "experiment", str(path), "--check"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "val_size" in proc.stderr and not (tmp_path / "runs").exists()


def test_the_localisation_runs_move_to_shapes_with_the_students_images(tmp_path):
    exp = load_experiment(write_config(tmp_path, {**TINY, "run": {"dataset": "fashion_mnist",
                                                                 "profile": "smoke"}}))
    changes = shapes_changes(exp.base)
    assert changes == {"dataset": "shapes", "val_size": 0,
                       "teacher_subset": exp.base.train_subset}  # fmt: skip
    assert shapes_changes(load_experiment(write_config(tmp_path, TINY)).base) == {
        "dataset": "shapes"}


def test_a_sweep_may_vary_xdistills_options_only(tmp_path):
    exp = ExperimentConfig(run={"dataset": "shapes", "profile": "smoke"})
    assert {"beta", "fusion", "schedule", "cae_epochs"} <= set(exp.sweepable)
    assert "lr" not in exp.sweepable and "seed" not in exp.sweepable
    with pytest.raises(ConfigError, match="sweeps.lr cannot be swept"):
        ExperimentConfig(run={"dataset": "shapes", "profile": "smoke"}, sweeps={"lr": [0.1]})
