"""Config validation and the command line: profiles, one clear line for each bad value,
``--help``, ``--config``, and a real train-teacher / distill round trip."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from xdx_lib.__main__ import build_parser, main
from xdx_lib.core.config import (
    PROFILES,
    ConfigError,
    RunConfig,
    config_from_dict,
    kind_choices,
    load_config,
)


def test_profiles_fill_what_is_left_none():
    cfg = RunConfig(profile="smoke").resolved()
    p = PROFILES["smoke"]
    assert (cfg.train_subset, cfg.student_epochs, cfg.batch_size) == (
        p.train_subset, p.student_epochs, p.batch_size)  # fmt: skip
    mine = RunConfig(profile="smoke", student_epochs=7).resolved()
    assert mine.student_epochs == 7


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"method": "dkd"},
         r"method='dkd' is unknown; choose one of: at, e2kd, kd, kd_cae, scratch"),
        ({"lr": -1.0}, "lr=-1.0 must be positive"),
        ({"alpha": 1.5}, r"alpha=1.5 must lie in \[0, 1\]"),
        ({"epochs": 3}, "unknown field 'epochs'"),
        ({"batch_size": "64"}, "batch_size='64' has the wrong type"),
        ({"amp": 1}, "amp=1 has the wrong type"),
        ({"student": "big"}, "student='big' is unknown; choose one of: cnn_teacher"),
        ({"fusion": "concat"}, "fusion='concat' is unknown; choose one of: channel, gate"),
        ({"device": "tpu"}, "device='tpu' is unknown"),
        ({"train_subset": 0}, "train_subset=0 must be at least 1"),
    ],
)
def test_bad_values_name_the_field_and_the_choices(bad, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(bad)


def test_an_int_is_a_float_and_yaml_files_load(tmp_path):
    assert config_from_dict({"lr": 1}).lr == 1
    path = tmp_path / "c.yaml"
    path.write_text("profile: smoke\nmethod: scratch\n")
    cfg = load_config(path, {"seed": 3})
    assert (cfg.profile, cfg.method, cfg.seed) == ("smoke", "scratch", 3)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)
    path.write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "xdx_lib", *args], capture_output=True,
                          text=True)  # fmt: skip


@pytest.mark.parametrize("command", ["train-teacher", "distill", "data", "experiment"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and "usage: xdx" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, match",
    [
        (["distill", "--lr", "-1"], "error: config: lr=-1.0 must be positive"),
        (["distill", "--student", "big"],
         "error: config: student='big' is unknown; choose one of: cnn_teacher"),
        (["distill", "--method", "xdistill", "--fusion", "concat"],
         "error: config: fusion='concat' is unknown"),
        (["train-teacher", "--config", "nowhere.yaml"], "error: config file nowhere.yaml"),
        (["distill", "--dataset", "mnist", "--data-root", "{tmp}"], "error: MNIST not found"),
    ],
)
def test_bad_cli_values_give_one_line_and_exit_2(args, match, tmp_path, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(match)


def test_argparse_rejects_unknown_method():
    proc = _cli("distill", "--method", "dkd")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: config: method='dkd' is unknown; choose one of: at, "
                                   "e2kd, kd, kd_cae, scratch, xdistill")


def test_train_teacher_then_distill_from_a_config_file(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "dataset": "shapes", "profile": "smoke", "teacher": "student_small",
        "student": "student_tiny", "train_subset": 128, "test_subset": 32, "batch_size": 32,
    }))  # fmt: skip
    assert main(["train-teacher", "--config", str(cfg), "--json"]) == 0
    teacher = _json_tail(capsys.readouterr().out)
    assert teacher["parameters"] > 0 and 0 <= teacher["test_acc"] <= 1
    assert main(["distill", "--config", str(cfg), "--method", "kd", "--seed", "1",
                 "--temperature", "2", "--json"]) == 0  # fmt: skip
    student = _json_tail(capsys.readouterr().out)
    assert "-kd-student_tiny-s1-" in student["checkpoint"]
    assert 0 <= student["agreement"] <= 1
    # the same command again loads the cached student and trains nothing
    assert main(["distill", "--config", str(cfg), "--method", "kd", "--seed", "1",
                 "--temperature", "2", "--json"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "epoch 1/" not in out and _json_tail(out) == student


def _json_tail(out: str) -> dict:
    """The JSON object a ``--json`` command prints after its progress lines."""
    return json.loads(out[out.index("{\n"):])


def _distill_actions() -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["distill"]._actions}


def test_every_config_field_is_a_flag_with_its_real_default_and_choices():
    actions = _distill_actions()
    for f in dataclasses.fields(RunConfig):
        action = actions[f.name]
        assert "--" + f.name.replace("_", "-") in action.option_strings
        assert action.default is None  # a flag not given leaves the file's value alone
        shown = "the profile's" if f.default is None else str(f.default)
        assert action.help.endswith(f"(default: {shown})"), (f.name, action.help)
        kind = f.metadata.get("kind")
        if kind is not None:
            allowed = kind_choices(kind)
            assert f"one of: {', '.join(allowed)}" in action.help
            assert f.default is None or f.default in allowed


def test_help_lists_every_option(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(RunConfig):
        assert "--" + f.name.replace("_", "-") in text
    assert "pearson" in text  # the default explanation loss, which a hand-written help omitted


def test_boolean_flags_turn_off_and_on():
    args = build_parser().parse_args(["distill", "--no-cae-freeze", "--augment"])
    assert args.cae_freeze is False and args.augment is True


@pytest.mark.parametrize("argv, stage", [
    (["train-teacher", "--profile", "smoke"], "experiments.session.train_teacher"),
    (["distill", "--profile", "smoke"], "experiments.session.Session.student"),
    (["experiment", "configs/fashion_mnist_smoke.yaml"], "experiments.runner.run_experiment"),
])  # fmt: skip
def test_ctrl_c_while_training_is_one_line_and_status_130(argv, stage, monkeypatch, capsys):
    from xdx_lib.experiments import session

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(f"xdx_lib.{stage}", interrupted)
    monkeypatch.setattr(session, "load_data", lambda cfg: None)
    monkeypatch.setattr("xdx_lib.experiments.experiment_config.preflight", lambda exp: None)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    try:
        status = main(argv)
    except KeyboardInterrupt:  # caught here, or it would stop the whole test session
        pytest.fail("Ctrl-C left main() as a KeyboardInterrupt (a traceback)")
    assert status == 130
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("stopped: training was interrupted")
    assert "run cache" in err and "running the same command again resumes" in err
    assert "Traceback" not in out + err


def _stub_training(monkeypatch, train):
    """``train-teacher`` with ``train`` in place of the training (and no data loaded)."""
    from xdx_lib.experiments import session

    monkeypatch.setattr(session, "load_data", lambda cfg: None)
    monkeypatch.setattr(session, "train_teacher", train)


def test_runs_flag_chooses_the_folder_and_leaves_the_environment(tmp_path, monkeypatch,
                                                                capsys):  # fmt: skip
    import os

    from xdx_lib.core.cache import runs_dir

    seen = []

    def train(cfg, data, *args, **kwargs):
        seen.append(runs_dir())
        raise KeyboardInterrupt

    _stub_training(monkeypatch, train)
    before = os.environ["XDX_RUNS"]
    mine = tmp_path / "mine"
    assert main(["train-teacher", "--profile", "smoke", "--dataset", "shapes",
                 "--runs", str(mine)]) == 130  # fmt: skip
    assert seen == [mine] and mine.is_dir()
    assert f"run cache ({mine})" in capsys.readouterr().err  # the interruption names it too
    assert os.environ["XDX_RUNS"] == before and runs_dir() == Path(before)


def test_the_type_of_a_read_error_decides_the_exit_not_its_text(monkeypatch, capsys):
    from xdx_lib.core.cache import CacheReadError

    def unreadable(cfg, data, *args, **kwargs):
        raise CacheReadError("cannot read teacher.pt: EOFError: -- the file is corrupt")

    argv = ["train-teacher", "--profile", "smoke", "--dataset", "shapes"]
    _stub_training(monkeypatch, unreadable)
    assert main(argv) == 2
    assert capsys.readouterr().err == ("error: cannot read teacher.pt: EOFError: -- the file "
                                       "is corrupt\n")  # fmt: skip

    def other(cfg, data, *args, **kwargs):
        raise RuntimeError("cannot read the tea leaves")  # a bug, not a corrupt cache file

    _stub_training(monkeypatch, other)
    with pytest.raises(RuntimeError, match="tea leaves"):
        main(argv)
