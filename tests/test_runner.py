"""The experiment runner: the runs an experiment names, a smoke reproduction end to end,
resume, and rank 0 alone scoring and writing under torchrun."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from tiny_experiment import TINY, write_config

from xdx_lib.analysis import stats
from xdx_lib.experiments import runner, studies
from xdx_lib.experiments.experiment_config import ExperimentConfig, load_experiment
from xdx_lib.experiments.runner import run_experiment
from xdx_lib.experiments.session import Session


@pytest.fixture
def runs(tmp_path):
    return tmp_path / "runs"


def test_the_teacher_is_a_run_spec_scored_and_stored_as_any_run(tmp_path):
    specs = runner.run_specs(load_experiment(write_config(tmp_path, TINY)))
    teachers = [s for s in specs if isinstance(s, runner.TeacherSpec)]
    assert [(s.label, s.group, s.method, s.references) for s in teachers] == [
        ("teacher", "teacher", "teacher", True), ("shapes-teacher", "shapes", "teacher", False)]
    assert specs[0] is teachers[0] and [s.label for s in specs if s.references] == ["teacher"]
    assert [s.label for s in specs[1:4]] == ["scratch-s0", "kd-s0", "xdistill-s0"]
    asked = []
    session = SimpleNamespace(teacher=lambda: "the teacher", cfg="its config",
                              student=lambda verbose, **c: asked.append((verbose, c)) or "S",
                              config=lambda **c: ("config", c))  # fmt: skip
    assert teachers[1].trained(session) == ("the teacher", "its config") and asked == []
    assert specs[1].trained(session) == ("S", ("config", {"method": "scratch", "seed": 0}))
    assert asked == [(False, {"method": "scratch", "seed": 0})]  # quiet, the session untouched


def test_the_session_given_keeps_its_verbosity(tmp_path, capsys):
    d = {**TINY, "methods": ["scratch"], "seeds": [0], "explainers": ["gradcam"],
         "sweeps": {}, "localisation_methods": [], "claim_methods": [], "claim_seeds": [],
         "run": {**TINY["run"], "teacher": "student_tiny", "student": "student_tiny"}}
    exp = load_experiment(write_config(tmp_path, d))
    session = Session(exp.base, verbose=True)
    results = run_experiment(exp, verbose=False, session=session)
    assert session.verbose is True
    epochs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == exp.base.teacher_epochs  # the teacher's lines; the student trains quietly
    assert [r["label"] for r in results][:2] == ["teacher", "reference: mean teacher map"]
    assert (tmp_path / "runs" / exp.name / "results" / "teacher.json").is_file()


def test_smoke_reproduction_and_resume(tmp_path, runs):
    exp = load_experiment(write_config(tmp_path, TINY))
    results = run_experiment(exp, verbose=False)
    df = stats.results_frame(results)
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
    assert saved["provenance"]["precision"] == "float32"  # no bfloat16 units (conftest)
    assert saved["metrics"]["accuracy"] == main[(main.method == "kd") & (main.seed == 1)].iloc[0][
        "accuracy"]

    spread = {(r["method"], r["quantity"]): r for r in studies.seed_spread_table(exp)}
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
    again = stats.results_frame(run_experiment(exp, verbose=False))
    assert (runs / "tiny" / "results" / "scratch-s0.json").stat().st_mtime_ns == untouched
    cols = ["label", "accuracy", "agreement", "gradcam/pearson"]
    key = ["label"]
    a = df[cols].sort_values(key).reset_index(drop=True)
    b = again[cols].sort_values(key).reset_index(drop=True)
    assert a.equals(b)


def test_a_failure_on_rank_zero_reaches_the_other_ranks(pretend_rank, broadcasts):
    from xdx_lib.core.devices import on_rank_zero

    def fail():
        raise ValueError("no data")

    pretend_rank(0)
    with pytest.raises(ValueError, match="no data"):
        on_rank_zero(fail)
    pretend_rank(1)
    with pytest.raises(RuntimeError, match="rank 0 failed: ValueError: no data"):
        on_rank_zero(lambda: "never called on rank 1")


def test_rank_zero_goes_first_and_nested_blocks_add_no_barrier(pretend_rank):
    from xdx_lib.core.devices import rank_zero_first

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

    from xdx_lib.core.config import RunConfig

    exp = ExperimentConfig(name="ddp", run={"dataset": "shapes", "profile": "smoke"})
    cfg = RunConfig(dataset="shapes", profile="smoke")
    model = SimpleNamespace(key="k", history=[], path=runs / "students" / "s" / "model.pt",
                            method=SimpleNamespace(attached_key=""))  # fmt: skip
    session = SimpleNamespace(teacher=lambda: model, cfg=cfg, student=lambda **c: model,
                              config=lambda **c: cfg)  # fmt: skip
    spec = runner.RunSpec("kd-s0", "main", "kd", 0, "full", {"method": "kd"})

    def score(run, s):
        log.append("score")
        return {"accuracy": 0.5}

    monkeypatch.setattr(runner, "provenance", lambda device, amp: {})
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
    results = {r["label"]: r for r in run_experiment(load_experiment(write_config(tmp_path, exp)),
                                                     verbose=False)}  # fmt: skip
    assert {"kd-s0", "kd_cae-s0", "claims-kd_cae-s0"} <= set(results)
    kd, kd_cae = results["kd-s0"], results["kd_cae-s0"]
    assert kd["checkpoint"] == kd_cae["checkpoint"] and len(list(runs.glob("students/*"))) == 1
    assert "cae/pearson" in kd_cae["metrics"] and "cae/pearson" not in kd["metrics"]
    assert kd_cae["metrics"]["accuracy"] == kd["metrics"]["accuracy"]

    longer = {**exp, "run": {**exp["run"], "cae_epochs": 2}}  # another CAE, the same students
    again = {r["label"]: r for r in run_experiment(load_experiment(write_config(tmp_path, longer)),
                                                   verbose=False)}  # fmt: skip
    assert again["kd-s0"]["key"] == kd["key"] and again["kd_cae-s0"]["key"] != kd_cae["key"]
    assert len(list(runs.glob("students/*"))) == 1
