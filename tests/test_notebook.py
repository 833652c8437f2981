"""What the chapters call in one line: glue by the dozen, sizes by profile, the run line."""

from __future__ import annotations

import pandas as pd
import pytest

from xdx_lib.core.config import PROFILES, RunConfig
from xdx_lib.experiments import experiment_config as experiment
from xdx_lib.experiments import tuning
from xdx_lib.report import notebook


@pytest.fixture
def glued(monkeypatch):
    """The values glued through :func:`xdx_lib.report.notebook.glue`, by name."""
    out: dict[str, object] = {}

    def glue(name, value, display=False):
        out[name] = value

    monkeypatch.setattr(notebook, "glue", glue)
    return out


def test_glue_many_formats_numbers_as_fstrings_do(glued):
    gap, ratio = 0.0123456, 41.6
    notebook.glue_many({"acc": 0.87654, "gap": gap, "ratio": ratio, "n": 512, "best": "grid: both"},
                       ".3f", gap="+.3f", ratio=".0f", n=",")  # fmt: skip
    assert glued == {"acc": "0.877", "gap": f"{gap:+.3f}", "ratio": f"{ratio:.0f}", "n": "512",
                     "best": "grid: both"}  # fmt: skip
    notebook.glue_many({"epochs": 6, "many": 12345}, many=",")
    assert glued["epochs"] == "6" and glued["many"] == "12,345"


def test_glue_many_refuses_a_format_for_nothing(glued):
    with pytest.raises(ValueError, match="a format for 'ratoi'"):
        notebook.glue_many({"ratio": 2.0}, ".1f", ratoi=".0f")
    assert glued == {}


def test_glue_column_names_each_row(glued):
    table = pd.DataFrame({"accuracy": [0.81234, 0.9]}, index=["kd", "xdistill"])
    notebook.glue_column("acc", table["accuracy"], ".3f")
    assert glued == {"acc_kd": "0.812", "acc_xdistill": "0.900"}


def test_every_profile_has_every_chapter_size():
    names = {name: set(p.chapter) for name, p in PROFILES.items()}
    assert set(names) == set(PROFILES)
    assert len({frozenset(n) for n in names.values()}) == 1, names


def test_explainer_settings_follow_the_sizes():
    smoke = notebook.explainer_settings(notebook.sizes("smoke"))
    book = notebook.explainer_settings(notebook.sizes("book", ig_steps=5))
    assert smoke["lime"] == smoke["kernel_shap"] == {"n_samples": 50}
    assert smoke["integrated_gradients"] == {"n_steps": 8}
    assert book["integrated_gradients"] == {"n_steps": 5}  # a parameter wins over the profile
    assert book["gradient_shap"] == {"n_samples": 16}


def test_describe_run_names_the_profile_and_sizes():
    cfg = RunConfig(profile="smoke").resolved()
    line = notebook.describe_run(cfg)
    assert line.startswith("profile smoke: ")
    assert f"students train on {cfg.train_subset:,} images, the teacher on the same" in line
    assert f"{cfg.val_size:,} held out for validation; {cfg.test_subset:,} test images" in line
    assert f"teacher {cfg.teacher} for {cfg.teacher_epochs} epochs" in line
    book = notebook.describe_run(RunConfig(profile="book").resolved())
    assert "the teacher on 55,000, 5,000 held out" in book and "; all test images" in book


def test_a_negative_kd_option_is_chosen_on_the_validation_split():
    given = notebook.run_config({"profile": "smoke", "alpha": 0.7, "temperature": 3.0})
    assert (given.alpha, given.temperature) == (0.7, 3.0)  # given values stay, nothing trains
    cfg = notebook.run_config({"profile": "smoke", "alpha": -1.0, "temperature": 3.0})
    grid = experiment.load_experiment(notebook.experiment_config_path("auto", "smoke")).kd_grid
    assert cfg.alpha in grid["alpha"] and cfg.temperature == 3.0
    tuned, table = tuning.tune_kd(experiment.load_experiment(
        notebook.experiment_config_path("auto", "smoke")))
    assert len(table) == len(grid["alpha"])


@pytest.mark.parametrize("text", ["True", "False", "None", "3", "-2", "1.5", "1e-3", "nan",
                                  "book", "", "true", "0x10", " 7 ", "1_000"])  # fmt: skip
def test_parameter_values_read_as_papermills_command_line_reads_them(text):
    """The library restates papermill's private rule; this follows papermill's changes."""
    from xdx_lib.report.notebook import value_from_text

    cli = pytest.importorskip("papermill.cli")
    if not hasattr(cli, "_resolve_type"):
        pytest.skip("papermill no longer has _resolve_type: compare with its command line")
    expected, got = cli._resolve_type(text), value_from_text(text)
    assert type(got) is type(expected)
    assert got == expected or (got != got and expected != expected)  # nan equals nan here


def test_show_source_shows_the_librarys_own_lines(capsys, monkeypatch):
    """The chapters show the idea's code from the library: the text is the source itself."""
    import builtins

    from xdx_lib.distill.kd import KD, kd_loss

    real_import = builtins.__import__

    def no_ipython(name, *args, **kwargs):
        if name.startswith("IPython"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipython)
    notebook.show_source(kd_loss, KD.loss_terms)
    out = capsys.readouterr().out
    assert out.startswith("def kd_loss(student_logits")
    assert "kl * temperature**2" in out
    assert "\n\ndef loss_terms(self, out: dict, batch: dict)" in out  # a method, dedented


def test_claim_seeds_are_the_profile_experiments_and_apart_from_every_tune_seed():
    """The XDistillation chapter checks its variant seeds against these before it trains."""
    from xdx_lib.analysis import selection

    seeds = notebook.claim_seeds("smoke")
    exp = experiment.load_experiment(notebook.experiment_config_path("auto", "smoke"))
    assert seeds == [*exp.seeds, *exp.claim_seeds] and seeds
    for profile in ("smoke", "book", "colab"):
        selection.check_disjoint(selection.tune_seeds(3), notebook.claim_seeds(profile))
    with pytest.raises(ValueError, match="also claim seeds"):
        selection.check_disjoint([seeds[0]], notebook.claim_seeds("smoke"))


def test_an_option_left_to_the_choice_is_filled_by_it_and_a_named_one_stays():
    params = {"profile": "smoke", "fusion": notebook.CHOSEN, "schedule": "joint",
              "cae_grad": notebook.CHOSEN}  # fmt: skip
    cfg = notebook.run_config(params)
    assert (cfg.fusion, cfg.schedule, cfg.cae_grad) == ("channel", "joint", "exp")  # defaults
    picked = {"fusion": "feature", "schedule": "staged", "cae_epochs": 2}
    assert notebook.chosen_options(picked, params) == {"fusion": "feature", "cae_epochs": 2}
    assert notebook.chosen_options({}, params) == {}
    with pytest.raises(ValueError, match="fusion"):
        notebook.run_config({"profile": "smoke", "fusion": "chosen-ish"})
