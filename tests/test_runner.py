"""The experiment runner: config errors, a smoke reproduction end to end, and resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from xdx_lib import report, runner
from xdx_lib import session as session_module
from xdx_lib.config import ConfigError
from xdx_lib.runner import load_experiment, run_experiment

TINY = {
    "name": "tiny",
    "run": {"dataset": "shapes", "profile": "smoke", "train_subset": 192, "test_subset": 48},
    "methods": ["scratch", "kd", "xdistill"],
    "seeds": [0, 1],
    "explainers": ["gradcam", "saliency"],
    "n_slow": 8,
    "n_faithful": 8,
    "sweeps": {"fusion": ["gate"]},
    "localisation_methods": ["kd"],
    "claim_methods": ["scratch", "kd"],
    "claim_seeds": [2],
}


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDX_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _write(tmp_path, d, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d))
    return path


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
        load_experiment(_write(tmp_path, {**TINY, **change}))


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(bad)


def test_cli_check_exits_2_with_one_line(tmp_path):
    path = _write(tmp_path, {**TINY, "seeds": "all"})
    proc = subprocess.run([sys.executable, "-m", "xdx_lib", "experiment", str(path), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kd_grid": {"alpha": [0.5]}}, "kd_grid needs a validation split"),
        ({"kd_grid": {"beta": [1.0]}, "run": {**TINY["run"], "val_size": 32}},
         "kd_grid.beta cannot be tuned"),
        ({"kd_grid": {"alpha": [0.5, 1.5]}, "run": {**TINY["run"], "val_size": 32}},
         r"kd_grid.alpha: .*alpha=1.5 must lie in \[0, 1\]"),
        ({"kd_grid": {"alpha": [0.5]}, "tune_seeds": [], "run": {**TINY["run"], "val_size": 32}},
         "tune_seeds is empty"),
    ],
)
def test_a_bad_kd_grid_is_one_line(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(_write(tmp_path, {**TINY, "run": {**TINY["run"], "val_size": 0},
                                          **change}))  # fmt: skip


def test_kd_is_tuned_on_the_validation_split(tmp_path, runs, monkeypatch):
    d = {**TINY, "run": {**TINY["run"], "val_size": 64}, "methods": ["kd"], "seeds": [0],
         "kd_grid": {"alpha": [0.0, 0.9], "temperature": [2, 4]}, "tune_seeds": [0, 1],
         "sweeps": {}, "localisation_methods": [], "claim_methods": [], "claim_seeds": []}
    exp = load_experiment(_write(tmp_path, d))
    tuned, table = runner.tune_kd(exp)
    assert len(table) == 8 and set(table.seed) == {0, 1}
    means = table.groupby(["alpha", "temperature"]).val_accuracy.mean()
    assert (tuned.run["alpha"], tuned.run["temperature"]) == means.idxmax()
    assert type(tuned.run["temperature"]) is int  # the grid's own value, as written
    assert tuned.kd_grid == {} and runner.tune_kd(tuned)[0] is tuned
    assert runner.kd_grid_points(exp)[1] == {"alpha": 0.0, "temperature": 4}
    assert runner.kd_grid_points(tuned) == []
    # one session serves the tuning and the tuned runs: the data is loaded once
    loads = []
    real_load = session_module.load_data
    monkeypatch.setattr(session_module, "load_data",
                        lambda cfg: loads.append(cfg) or real_load(cfg))
    same, session, again = runner.tuned_session(exp)
    assert same.run == tuned.run and again.equals(table)
    assert (session.cfg.alpha, session.cfg.temperature) == means.idxmax()
    session.student(method="kd", seed=0)
    assert len(loads) == 1
    # ... and so do the experiment and the seed spread, given that session
    given = run_experiment(same, verbose=False, session=session)
    assert runner.seed_spread_table(same, session) == [] and len(loads) == 1
    with pytest.raises(ValueError, match="tuned_session returned"):
        run_experiment(exp, verbose=False, session=session)  # the untuned experiment
    # the experiment trains its KD students with the chosen values
    result = run_experiment(exp, verbose=False)
    kd = [r for r in result if r.get("method") == "kd"][0]
    assert kd["config"]["alpha"] == tuned.run["alpha"]
    assert [r.get("key") for r in given] == [r.get("key") for r in result]


def test_smoke_reproduction_and_resume(tmp_path, runs):
    exp = load_experiment(_write(tmp_path, TINY))
    results = run_experiment(exp, verbose=False)
    df = report.results_frame(results)
    main = df[df.group == "main"]
    assert sorted(main.method.unique()) == ["kd", "scratch", "xdistill"]
    assert main.groupby("method").size().eq(2).all()
    assert (df.group == "sweep").sum() == 1 and (df.group == "shapes").sum() == 3
    claims = df[df.group == "claims"]
    assert sorted(zip(claims.method, claims.seed)) == sorted(
        (m, s) for m in ("scratch", "kd") for s in (0, 1, 2))
    assert claims["deployed/pearson"].notna().all() and "faith/deletion" not in claims.dropna(
        axis=1).columns
    light = set(claims.dropna(axis=1).columns)
    assert {"gradcam/topk_iou", "deployed/topk_iou"} <= light and not {
        "gradcam/ssim", "gradcam/spearman", "deployed/ssim"} & light  # what the claims read
    shared = claims[claims.seed < 2].set_index(["method", "seed"])["accuracy"]
    assert shared.equals(main.set_index(["method", "seed"])["accuracy"].loc[shared.index])
    assert main["accuracy"].between(0, 1).all()
    expected = {"gradcam/ssim", "saliency/pearson", "faith/deletion", "faith_teacher/insertion"}
    assert "saliency/ssim" not in df  # T2 reads Pearson r only
    assert expected <= set(df)
    assert main[main.method == "xdistill"]["cae/pearson"].notna().all()
    shapes = df[df.group == "shapes"]
    assert shapes["gradcam/pointing_game"].between(0, 1).all()
    saved = json.loads((runs / "tiny" / "results" / "kd-s1.json").read_text())
    assert saved["provenance"]["versions"]["torch"] and saved["history"]
    assert saved["metrics"]["accuracy"] == main[(main.method == "kd") & (main.seed == 1)].iloc[0][
        "accuracy"]

    spread = {(r["method"], r["quantity"]): r for r in runner.seed_spread_table(exp)}
    assert set(spread) == {(m, q) for m in ("scratch", "kd") for q in ("accuracy", "agreement")}
    assert all(r["seeds"] == 3 and 0 <= r["unstable"] <= 1 for r in spread.values())
    kd_acc = df[(df.group == "claims") & (df.method == "kd")]["accuracy"]
    assert spread["kd", "accuracy"]["observed_sd"] == pytest.approx(kd_acc.std(), abs=1e-6)

    # A run killed midway: its student checkpoint and result are gone. Rerunning trains
    # only that one and ends with the same table.
    student_dirs = list((runs / "students").glob("shapes-kd-*-s1-*"))
    assert len(student_dirs) == 1
    (student_dirs[0] / "model.pt").unlink()
    (runs / "tiny" / "results" / "kd-s1.json").unlink()
    untouched = (runs / "tiny" / "results" / "scratch-s0.json").stat().st_mtime_ns
    again = report.results_frame(run_experiment(exp, verbose=False))
    assert (runs / "tiny" / "results" / "scratch-s0.json").stat().st_mtime_ns == untouched
    cols = ["label", "accuracy", "agreement", "gradcam/pearson"]
    key = ["label"]
    a = df[cols].sort_values(key).reset_index(drop=True)
    b = again[cols].sort_values(key).reset_index(drop=True)
    assert a.equals(b)


@pytest.fixture
def pretend_rank(monkeypatch):
    """Set this process's pretended torchrun rank (of 2); returns the log of barriers and
    of what the code under test records in it."""
    from xdx_lib import train

    log: list = []
    rank = {"r": 0}
    monkeypatch.setattr(train, "distributed", lambda: (rank["r"], 2))
    monkeypatch.setattr(train.dist, "barrier", lambda *a, **k: log.append("barrier"))

    def set_rank(r):
        rank["r"] = r
        log.clear()
        return log

    return set_rank


@pytest.fixture
def broadcasts(monkeypatch):
    """``broadcast_object_list`` between pretended ranks run one after the other: what rank 0
    sends, a later rank 1 receives."""
    from xdx_lib import train

    sent: list = []

    def broadcast(objects, src=0):
        if train.distributed()[0] == src:
            sent.append(list(objects))
        else:
            objects[:] = sent.pop(0)

    monkeypatch.setattr(train.dist, "broadcast_object_list", broadcast)
    return sent


def test_variant_table_is_scored_on_rank_zero_and_shared(pretend_rank, broadcasts,
                                                         monkeypatch):  # fmt: skip
    from types import SimpleNamespace

    trained = []

    def student(**changes):
        trained.append(changes)
        return SimpleNamespace(history=[{"epoch": 1}], seed=changes["seed"])

    def score(run, *args, **kwargs):
        log.append("score")
        return {"accuracy": 0.5 + run.seed / 10}

    session = SimpleNamespace(student=student, teacher="teacher", data="data")
    monkeypatch.setattr(runner, "evaluate_model", score)
    variants = {"KD": {"method": "kd"}, "joint": {"schedule": "joint"}}
    log = pretend_rank(0)
    table0 = runner.variant_table(session, variants, seeds=[0, 1])
    assert log == ["score"] * 4 and len(trained) == 4
    log = pretend_rank(1)
    table1 = runner.variant_table(session, variants, seeds=[0, 1])
    assert log == [] and len(trained) == 8  # rank 1 trains (DDP) but does not score
    assert table1.equals(table0) and list(table1.accuracy) == [0.5, 0.6, 0.5, 0.6]


def test_seed_spread_is_scored_on_rank_zero_and_shared(pretend_rank, broadcasts, monkeypatch):
    from types import SimpleNamespace

    y = torch.tensor([0, 1, 0, 1])
    preds = {0: y, 1: torch.tensor([0, 1, 1, 1]), "teacher": y}
    session = SimpleNamespace(student=lambda method, seed: SimpleNamespace(seed=seed),
                              teacher=SimpleNamespace(seed="teacher"),
                              data=SimpleNamespace(test=SimpleNamespace(y=y)))  # fmt: skip

    def predicted(run, data):
        log.append("score")
        return preds[run.seed]

    monkeypatch.setattr(runner, "Session", lambda cfg, **kw: session)
    monkeypatch.setattr(runner, "predicted_classes", predicted)
    exp = runner.ExperimentConfig(name="ddp", run={"dataset": "shapes", "profile": "smoke"},
                                  methods=["kd"], seeds=[0, 1])  # fmt: skip
    log = pretend_rank(0)
    rows0 = runner.seed_spread_table(exp)
    assert log == ["score"] * 3
    log = pretend_rank(1)
    rows1 = runner.seed_spread_table(exp)
    assert log == [] and rows1 == rows0
    assert [(r["method"], r["quantity"], r["seeds"]) for r in rows1] == [
        ("kd", "accuracy", 2), ("kd", "agreement", 2)]


def test_a_failure_on_rank_zero_reaches_the_other_ranks(pretend_rank, broadcasts):
    from xdx_lib.train import on_rank_zero

    def fail():
        raise ValueError("no data")

    pretend_rank(0)
    with pytest.raises(ValueError, match="no data"):
        on_rank_zero(fail)
    pretend_rank(1)
    with pytest.raises(RuntimeError, match="rank 0 failed: ValueError: no data"):
        on_rank_zero(lambda: "never called on rank 1")


def test_rank_zero_goes_first_and_nested_blocks_add_no_barrier(pretend_rank):
    from xdx_lib.train import rank_zero_first

    for r, expected in ((0, ["work", "barrier"]), (1, ["barrier", "work"])):
        log = pretend_rank(r)
        with rank_zero_first():
            with rank_zero_first():  # inside: the ranks are already ordered
                log.append("work")
        assert log == expected
    log = pretend_rank(0)
    with pytest.raises(KeyError), rank_zero_first():
        raise KeyError  # rank 0 failed: the others are never told to go on and load
    assert log == []


def test_only_rank_zero_scores_and_writes_a_result(pretend_rank, runs, monkeypatch):
    from types import SimpleNamespace

    from xdx_lib.config import RunConfig

    exp = runner.ExperimentConfig(name="ddp", run={"dataset": "shapes", "profile": "smoke"})
    cfg = RunConfig(dataset="shapes", profile="smoke")
    model = SimpleNamespace(key="k", history=[], path=runs / "students" / "s" / "model.pt",
                            method=SimpleNamespace(attached_key=""))  # fmt: skip
    session = SimpleNamespace(teacher=model, cfg=cfg, student=lambda **c: model,
                              config=lambda **c: cfg)  # fmt: skip
    spec = runner.RunSpec("kd-s0", "main", "kd", 0, "full", {"method": "kd"})

    def score(run, s):
        log.append("score")
        return {"accuracy": 0.5}

    monkeypatch.setattr(runner, "provenance", lambda device: {})
    log = pretend_rank(0)
    first = runner._run_one(exp, spec, session, {"full": (score, {})}, verbose=False)
    assert log == ["score", "barrier"]  # written before the others are let through
    log = pretend_rank(1)
    again = runner._run_one(exp, spec, session, {"full": (score, {})}, verbose=False)
    assert log == ["barrier"] and again["metrics"] == first["metrics"]  # read, not scored


def test_kd_cae_runs_on_kds_students_and_is_rescored_when_its_cae_changes(tmp_path, runs):
    tiny_models = {"teacher": "student_tiny", "student": "student_tiny", "cae_width": 4}
    exp = {"name": "fair", "run": {**TINY["run"], **tiny_models, "cae_epochs": 1},
           "methods": ["kd", "kd_cae"], "seeds": [0], "explainers": ["gradcam"], "n_slow": 4,
           "n_faithful": 4, "claim_methods": ["kd", "kd_cae"]}  # fmt: skip
    results = {r["label"]: r for r in run_experiment(load_experiment(_write(tmp_path, exp)),
                                                     verbose=False)}  # fmt: skip
    assert {"kd-s0", "kd_cae-s0", "claims-kd_cae-s0"} <= set(results)
    kd, kd_cae = results["kd-s0"], results["kd_cae-s0"]
    assert kd["checkpoint"] == kd_cae["checkpoint"] and len(list(runs.glob("students/*"))) == 1
    assert "cae/pearson" in kd_cae["metrics"] and "cae/pearson" not in kd["metrics"]
    assert kd_cae["metrics"]["accuracy"] == kd["metrics"]["accuracy"]

    longer = {**exp, "run": {**exp["run"], "cae_epochs": 2}}  # another CAE, the same students
    again = {r["label"]: r for r in run_experiment(load_experiment(_write(tmp_path, longer)),
                                                   verbose=False)}  # fmt: skip
    assert again["kd-s0"]["key"] == kd["key"] and again["kd_cae-s0"]["key"] != kd_cae["key"]
    assert len(list(runs.glob("students/*"))) == 1
