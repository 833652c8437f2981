"""The training loop: it learns, it stops on a NaN loss, its records come from a config in
one place, every method trains, and DDP runs with 2 CPU processes (one model, one history,
one writer, each rank its own augmentation)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from xdx_lib.core.cache import load_tensors
from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.distill.method import create_method
from xdx_lib.experiments import session as session_module
from xdx_lib.experiments.session import (
    loop_records,
    student_job,
    teacher_job,
    train_student,
    train_teacher,
)
from xdx_lib.models.classifiers import create_model
from xdx_lib.training.learning_curve import CURVE_POINTS, curve_epoch
from xdx_lib.training.loop import QUIET, Checkpointing, Hardware, LoopState, Schedule, fit

ROOT = Path(__file__).resolve().parents[1]


def _scratch():
    return create_method(RunConfig(method="scratch", student="student_tiny"))


def test_fit_learns_shapes(shapes):
    train, test = make_shapes(512, seed=0), shapes[1]
    torch.manual_seed(0)
    model = create_model("student_tiny", 1, 4)
    hist = fit(model, _scratch(), train, test, Schedule(epochs=6, batch_size=32, lr=3e-3),
               reporting=QUIET)  # fmt: skip
    assert len(hist) == 6 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["test_acc"] > 0.45  # 4 classes: chance is 0.25
    assert {"epoch_time", "test_loss", "lr", "ce"} <= set(hist[-1])
    assert hist[-1]["lr"] == pytest.approx(0.0, abs=1e-9)  # the cosine ends at zero


def test_training_or_loading_starts_by_choosing_the_ranks_gpu(monkeypatch, tiny_data):
    class Started(Exception):
        pass

    def start():
        raise Started

    def touched(*args, **kwargs):
        raise AssertionError("a device or a model was used before the rank's GPU was set")

    monkeypatch.setattr(session_module, "distributed", start)
    monkeypatch.setattr(session_module, "resolve_device", touched)
    monkeypatch.setattr(session_module, "checkpoint_epochs", touched)
    cfg = RunConfig(dataset="shapes", profile="smoke", teacher="student_tiny")
    with pytest.raises(Started):
        train_teacher(cfg, tiny_data)


def test_nan_loss_stops_with_a_clear_error(shapes):
    train, test = shapes
    bad = type(train)(train.x.clone(), train.y)
    bad.x[0] = float("nan")
    model = create_model("student_tiny", 1, 4)
    with pytest.raises(FloatingPointError, match="lower the learning rate or check the inputs"):
        fit(model, _scratch(), bad, test, Schedule(epochs=1, batch_size=len(bad)), reporting=QUIET)


def test_the_records_keep_the_loops_defaults_and_the_state_is_built_by_keyword():
    # the defaults every run that names none trains with; changing one changes its numbers
    assert Schedule(epochs=1) == Schedule(1, batch_size=128, lr=3e-3, weight_decay=5e-4,
                                          seed=0, augment=False)  # fmt: skip
    assert Hardware() == Hardware("cpu", precision="auto", compile=False, channels_last=True)
    assert Checkpointing() == Checkpointing(path=None, meta=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Schedule(epochs=1).epochs = 2
    with pytest.raises(TypeError):
        LoopState(*range(16))  # every field named


def test_a_jobs_records_come_from_its_config_and_its_role(tiny_data):
    cfg = RunConfig(dataset="shapes", profile="smoke", method="kd", teacher="student_tiny",
                    student="student_tiny", batch_size=48, lr=2e-3, weight_decay=1e-4,
                    teacher_epochs=3, student_epochs=2, teacher_seed=7, seed=5,
                    teacher_augment=True, augment=False, amp="off").resolved()  # fmt: skip
    tjob = teacher_job(cfg, tiny_data)
    schedule, hardware, checkpointing = loop_records(tjob, torch.device("cpu"))
    assert schedule == Schedule(epochs=3, batch_size=48, lr=2e-3, weight_decay=1e-4, seed=7,
                                augment=True)  # fmt: skip
    assert hardware == Hardware(torch.device("cpu"), precision="off", compile=False)
    assert checkpointing == Checkpointing(tjob.path, tjob.meta)
    teacher = train_teacher(cfg, tiny_data, verbose=False)
    sjob = student_job(cfg, teacher)
    schedule, _, checkpointing = loop_records(sjob, torch.device("cpu"))
    assert (schedule.epochs, schedule.seed, schedule.augment) == (2, 5, False)
    assert checkpointing.path == sjob.path and checkpointing.meta["method"] == "kd"


@pytest.fixture(scope="module")
def tiny_data():
    train, test = make_shapes(160, seed=0), make_shapes(40, seed=1)
    return Dataset("shapes", train, test, ["a", "b", "c", "d"])


@pytest.mark.parametrize("method", ["scratch", "kd", "at", "e2kd", "xdistill"])
def test_every_method_trains_a_student_and_is_cached(method, tiny_data):
    cfg = RunConfig(dataset="shapes", profile="smoke", method=method, student="student_tiny",
                    teacher="student_small", batch_size=32, cae_epochs=1)  # fmt: skip
    teacher = train_teacher(cfg, tiny_data, verbose=False)
    run = train_student(cfg, tiny_data, teacher, verbose=False)
    last = run.history[-1]
    assert 0.0 <= last["test_acc"] <= 1.0 and 0.0 <= last["agreement"] <= 1.0
    assert -1.0 <= last["gradcam_pearson"] <= 1.0
    assert run.path.is_file()
    again = train_student(cfg, tiny_data, teacher, verbose=False)
    assert again.path == run.path and again.history == run.history


DDP_SCRIPT = textwrap.dedent(
    """
    # One torchrun worker: a teacher, then kd (cached signals), xdistill (staged: a CAE
    # pre-trained first), e2kd (a double backward through DDP) and at (online signals on
    # augmented batches), each through session.train_student, with spies that log what
    # this rank computed and wrote.
    import os, sys
    from pathlib import Path
    import torch
    from xdx_lib.distill import cae_pretraining as cae_training
    from xdx_lib.experiments import session
    from xdx_lib.training import checkpoints
    from xdx_lib.training import loop as train
    from xdx_lib.training import trained_model as trained
    from xdx_lib.core.cache import runs_dir
    from xdx_lib.core.config import RunConfig
    from xdx_lib.data.datasets import Dataset, Split, make_shapes

    log = {"writes": [], "computed": [], "fits": [], "steps": [], "augmented": []}

    def spy(owner, name, before=None, after=None):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if before:
                before(*args, **kwargs)
            out = real(*args, **kwargs)
            if after:
                after(out, *args, **kwargs)
            return out

        setattr(owner, name, wrapper)

    def wrote(obj, path):
        log["writes"].append(Path(path).relative_to(runs_dir()).as_posix())

    for module in (checkpoints, trained, cae_training):
        spy(module, "atomic_torch_save", before=wrote)
    spy(trained, "explain", before=lambda *a, **k: log["computed"].append("maps"))
    spy(cae_training, "fit_cae", before=lambda *a, **k: log["computed"].append("cae"))
    spy(trained.TrainedModel, "logits", before=lambda *a: log["computed"].append("logits"))
    spy(train, "training_step",
        after=lambda out, loop, batch, where: log["steps"].append(
            (out[0].item(), len(batch["y"]))))
    spy(train, "augment_batch", after=lambda out, *a: log["augmented"].append(out.clone()))

    def fitted(history, model, *args, **kwargs):
        state = {k: v.clone() for k, v in model.state_dict().items()}
        log["fits"].append({"path": str(kwargs["checkpointing"].path), "history": history,
                            "steps": log["steps"], "augmented": log["augmented"],
                            "state": state})
        log["steps"], log["augmented"] = [], []

    spy(session, "fit", after=fitted)

    base = dict(dataset="shapes", profile="smoke", teacher="student_tiny", device="cpu",
                student="student_tiny", batch_size=32, cae_epochs=1)
    data = Dataset("shapes", make_shapes(96, seed=0), make_shapes(32, seed=1), list("abcd"))
    teacher = session.train_teacher(RunConfig(**base), data, verbose=False)
    for method in ("kd", "xdistill", "e2kd"):
        session.train_student(RunConfig(**base, method=method), data, teacher, verbose=False)
    # every training image the same: any difference between the ranks' augmented batches
    # comes from their augmentation draws
    same = Split(data.train.x[:1].expand_as(data.train.x).clone(), data.train.y)
    online = RunConfig(**base, method="at", augment=True, teacher_signal="online")
    session.train_student(online, Dataset("shapes", same, data.test, data.classes),
                          teacher, verbose=False)
    torch.save(log, sys.argv[1] + f".rank{torch.distributed.get_rank()}")
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(script_text: str, folder: Path) -> list:
    """Run ``script_text`` as two gloo CPU ranks under ``torchrun``; each rank saves what it
    logged to ``argv[1].rank<r>``, returned in rank order."""
    script = folder / "ddp.py"
    script.write_text(script_text)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "XDX_RUNS": str(folder / "runs")}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={_free_port()}", str(script), str(folder / "log")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(folder / f"log.rank{r}", weights_only=False) for r in (0, 1)]


@pytest.fixture(scope="module")
def ddp_logs(tmp_path_factory):
    """What each of two gloo ranks did in :data:`DDP_SCRIPT`, run once by ``torchrun``."""
    return _torchrun(DDP_SCRIPT, tmp_path_factory.mktemp("ddp"))


def test_ddp_ranks_train_one_model_and_share_its_history(ddp_logs):
    rank0, rank1 = ddp_logs
    assert len(rank0["fits"]) == len(rank1["fits"]) == 5  # teacher, kd, xdistill, e2kd, at
    for fit0, fit1 in zip(rank0["fits"], rank1["fits"]):
        assert fit0["history"] == fit1["history"]  # rank 0's evaluation, sent to rank 1
        for k, v in fit0["state"].items():  # weights all-reduced, buffers sent by rank 0
            assert torch.equal(v, fit1["state"][k]), k
        ckpt = load_tensors(fit0["path"])
        for k, v in ckpt["model"].items():  # what every rank holds is the checkpoint
            assert torch.equal(v, fit1["state"][k]), k


def test_ddp_train_loss_is_the_mean_over_both_ranks_batches(ddp_logs):
    rank0, rank1 = ddp_logs
    for fit0, fit1 in zip(rank0["fits"], rank1["fits"]):
        steps = fit0["steps"] + fit1["steps"]
        assert [n for _, n in fit0["steps"]] == [16, 16, 16]  # 96 images, 32 per batch
        mean = sum(loss * n for loss, n in steps) / sum(n for _, n in steps)
        assert fit0["history"][0]["train_loss"] == pytest.approx(mean, rel=1e-9)
        own = sum(loss * n for loss, n in fit0["steps"]) / 48
        assert own != pytest.approx(mean, rel=1e-9)  # so rank 0's own mean would differ


def test_ddp_rank_zero_alone_computes_and_writes_the_cache(ddp_logs):
    rank0, rank1 = ddp_logs
    assert rank1["writes"] == [] and rank1["computed"] == []  # rank 1 loaded everything
    assert sorted(rank0["computed"]) == ["cae", "logits", "logits"] + ["maps"] * 3
    assert len(rank0["writes"]) == len(set(rank0["writes"]))  # each file written once
    kinds = sorted(w.split("/")[0] + "/" + w.split("/")[-1].split("-")[0]
                   for w in rank0["writes"])  # fmt: skip
    assert kinds == ["cae/model.pt", *["maps/gradcam"] * 3, *["students/model.pt"] * 4,
                     "teachers/logits_test.pt", "teachers/logits_train.pt",
                     "teachers/model.pt"]  # fmt: skip


def test_ddp_ranks_draw_their_own_augmentation(ddp_logs):
    rank0, rank1 = ddp_logs
    at0, at1 = rank0["fits"][-1]["augmented"], rank1["fits"][-1]["augmented"]
    assert len(at0) == len(at1) == 3
    for a, b in zip(at0, at1):  # the same image everywhere, shifted differently
        assert a.shape == b.shape and not torch.equal(a, b)


UNUSED_SCRIPT = textwrap.dedent(
    """
    # One torchrun worker: XDistillation students whose CAE gets no gradient (beta 0, not
    # frozen), trained by fit with random teacher logits; saves each run's weights.
    import sys
    import torch
    from xdx_lib.core.config import RunConfig
    from xdx_lib.data.datasets import make_shapes
    from xdx_lib.distill.method import create_method
    from xdx_lib.data.batches import Extras
    from xdx_lib.training.loop import QUIET, Schedule, fit

    train, test = make_shapes(64, seed=0), make_shapes(16, seed=1)
    g = torch.Generator().manual_seed(0)
    extras = Extras({"teacher_logits": torch.randn(64, 4, generator=g)},
                    {"teacher_logits": torch.randn(16, 4, generator=g)})
    states = {}
    for changes in ({"schedule": "joint"}, {"cae_freeze": False, "fusion": "feature"}):
        method = create_method(RunConfig(dataset="shapes", method="xdistill", beta=0.0,
                                         student="student_tiny", **changes))
        torch.manual_seed(0)
        model = method.build_model(1, 4)
        before = {k: v.clone() for k, v in model.cae.state_dict().items()}
        fit(model, method, train, test, Schedule(epochs=2, batch_size=32), extras=extras,
            reporting=QUIET)
        states[str(changes)] = {"before": before, "after": model.state_dict()}
    torch.save(states, sys.argv[1] + f".rank{torch.distributed.get_rank()}")
    """
)


def test_ddp_trains_a_model_whose_cae_gets_no_gradient(tmp_path):
    # Without find_unused_parameters DDP stops the second step ("Expected to have finished
    # reduction in the prior iteration"); the method declares that its CAE may get none.
    rank0, rank1 = _torchrun(UNUSED_SCRIPT, tmp_path)
    assert len(rank0) == 2
    for run, run0 in rank0.items():
        after1 = rank1[run]["after"]
        for k, v in run0["after"].items():  # one model on both ranks
            assert torch.equal(v, after1[k]), (run, k)
        cae_weights = [k for k in run0["before"] if "running" not in k and "batches" not in k]
        for k in cae_weights:  # no gradient and no weight decay: the CAE did not move
            assert torch.equal(run0["before"][k], run0["after"][f"cae.{k}"]), (run, k)


def test_only_a_cae_left_without_a_loss_asks_ddp_to_find_unused_parameters():
    def unused(**changes):
        cfg = RunConfig(method="xdistill", student="student_tiny", **changes)
        return create_method(cfg).may_leave_parameters_unused

    assert unused(beta=0.0, schedule="joint") and unused(beta=0.0, cae_freeze=False)
    assert not unused(beta=0.0)  # staged and frozen: the CAE has no trainable parameter
    assert not unused(schedule="joint") and not _scratch().may_leave_parameters_unused


def test_a_long_schedule_scores_every_few_epochs_and_always_the_last():
    scored = [e + 1 for e in range(48) if curve_epoch(e, 48)]
    assert scored == list(range(4, 49, 4))  # 12 points, the last among them
    assert [e for e in range(12) if curve_epoch(e, 12)] == list(range(12))
    assert [e + 1 for e in range(25) if curve_epoch(e, 25)] == [*range(2, 25, 2), 25]
    assert [e + 1 for e in range(40) if curve_epoch(e, 40)] == [*range(4, 37, 4), 40]


@pytest.mark.parametrize("epochs", range(1, 400))
def test_no_schedule_scores_more_curve_points_than_curves_allows(epochs):
    scored = [e for e in range(epochs) if curve_epoch(e, epochs)]
    assert scored[-1] == epochs - 1 and len(scored) - 1 <= CURVE_POINTS
    assert len(scored) - 1 >= min(epochs - 1, CURVE_POINTS // 2)  # and not far fewer


def test_the_epochs_off_the_curve_keep_their_training_numbers_but_score_nothing(shapes):
    model = create_model("student_tiny", 1, 4)
    train, test = make_shapes(256, seed=0), shapes[1]
    hist = fit(model, _scratch(), train, test, Schedule(epochs=26, batch_size=128, lr=3e-3),
               reporting=QUIET)  # fmt: skip
    scored = [h["epoch"] for h in hist if "test_acc" in h]
    assert scored == [*range(3, 25, 3), 26] and all("lr" in h and "train_loss" in h for h in hist)
    assert hist[-1]["test_images"] == len(test)
