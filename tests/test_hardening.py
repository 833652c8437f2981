"""Every bad input is one clear line and a non-zero exit, and nothing is written where it
should not be: configs, experiments, data, devices, the runs folder, papermill parameters,
and the e2KD / attention-transfer targets. Each test is named for the bad input."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from xdx_lib.__main__ import main
from xdx_lib.core.cache import (
    CacheWriteError,
    atomic_write_bytes,
    atomic_write_json,
    check_writable,
)
from xdx_lib.core.config import ConfigError, RunConfig, config_from_dict, load_config
from xdx_lib.core.devices import DeviceUnavailable, available_devices, resolve_device
from xdx_lib.data.datasets import BadDataError, DataNotFoundError, check_data_root, load_dataset
from xdx_lib.distill.at import at_loss
from xdx_lib.distill.e2kd import e2kd_loss, gradcam_in_graph
from xdx_lib.distill.method import create_method
from xdx_lib.experiments.experiment_config import load_experiment
from xdx_lib.explain import explain
from xdx_lib.models.features import match_stages
from xdx_lib.report.notebook import ParameterError, check_papermill_parameters

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--profile", "smoke", "--train-subset", "256", "--test-subset", "128", "--epochs", "1"]


def _one_error_line(capsys, starts: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: "), err[0]
    assert starts in err[0], err[0]
    return err[0]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _experiment(tmp_path, **fields) -> Path:
    d = {"name": "exp", "run": {"dataset": "shapes", "profile": "smoke"}, "methods": ["kd"],
         "seeds": [0], "explainers": ["gradcam"], **fields}  # fmt: skip
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


# ----------------------------------------------------------------------------- experiment configs


@pytest.mark.parametrize("check", [True, False])
def test_experiment_name_dot_dot_escaped(tmp_path, capsys, check):
    path = _experiment(tmp_path, name="../escaped")
    assert main(["experiment", str(path), *(["--check"] if check else [])]) == 2
    _one_error_line(capsys, "name='../escaped' is not a plain file name")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"sweeps": {"method": ["kd"]}}, "sweeps.method cannot be swept"),
        ({"sweeps": {"seed": [1]}}, "sweeps.seed cannot be swept"),
        ({"methods": []}, "methods is empty; name at least one"),
        ({"seeds": [0, 0, 1]}, "seeds=[0, 0, 1] repeats 0; give each once"),
        ({"sweeps": {"beta": [float("nan")]}}, "beta=nan is not a finite number"),
        ({"sweeps": {"beta": []}}, "sweeps.beta should be a list of one or more values"),
        ({"run": {"dataset": "shapes", "augment": True}}, "set teacher_signal: online"),
        ({"name": "a/b"}, "is not a plain file name"),
    ],
)
def test_experiment_check_refuses_what_the_run_would_crash_on(tmp_path, capsys, fields, message):
    path = _experiment(tmp_path, **fields)
    assert main(["experiment", str(path), "--check"]) == 2
    _one_error_line(capsys, message)
    with pytest.raises(ConfigError, match="exp.yaml: "):
        load_experiment(path)
    assert not (tmp_path / "runs").exists()


def test_experiment_config_in_python_is_validated_too():
    from xdx_lib.experiments.experiment_config import ExperimentConfig

    with pytest.raises(ConfigError, match="seeds=.* repeats 0"):
        ExperimentConfig(seeds=[0, 0])
    with pytest.raises(ConfigError, match="name='../x' is not a plain file name"):
        ExperimentConfig(name="../x")


def test_experiment_check_on_a_good_config_passes(tmp_path, capsys):
    assert main(["experiment", str(_experiment(tmp_path)), "--check"]) == 0
    assert "ok (1 methods x 1 seeds)" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_yaml_config(tmp_path, capsys, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="is empty; give at least one field"):
        load_config(path)
    assert main(["train-teacher", "--config", str(path)]) == 2
    _one_error_line(capsys, "config file")
    assert main(["experiment", str(path), "--check"]) == 2
    _one_error_line(capsys, "is empty")


# ----------------------------------------------------------------------------- run configs


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--beta", "nan"], "config: beta=nan is not a finite number"),
        (["--lr", "inf"], "config: lr=inf is not a finite number"),
        (["--alpha", "nan"], "config: alpha=nan is not a finite number"),
        (["--temperature=-inf"], "config: temperature=-inf is not a finite number"),
    ],
)
def test_non_finite_numbers_on_the_command_line(tmp_path, capsys, flags, message):
    assert main(["distill", "--method", "xdistill", *SMOKE, *flags]) == 2
    _one_error_line(capsys, message)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"alpha": 1.5}, r"alpha=1.5 must lie in \[0, 1\]"),
        ({"profile": "gpu"}, "profile='gpu' is unknown; choose one of: smoke, book, paper"),
        ({"beta": math.nan}, "beta=nan is not a finite number"),
        ({"batch_size": True}, "batch_size=True has the wrong type"),
        ({"device": "cuda:x"}, "device='cuda:x' is unknown"),
        ({"teacher_signal": "live"}, "teacher_signal='live' is unknown; choose one of: cached"),
    ],
)
def test_runconfig_built_in_python_is_validated(fields, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**fields)
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(RunConfig(), **fields)


def test_runconfig_alpha_above_one_never_trains_with_negative_ce():
    with pytest.raises(ConfigError, match="alpha=1.5"):
        RunConfig(profile="smoke", method="kd", alpha=1.5).resolved()


def test_augment_with_cached_teacher_signals():
    with pytest.raises(ConfigError, match="augment=True with teacher_signal='cached'.*"
                                          "set teacher_signal: online or augment: false"):
        config_from_dict({"augment": True, "method": "kd"})
    # legal: the teacher itself (scratch), or the teacher's signals computed online
    cfg = RunConfig(augment=True, method="scratch")
    assert dataclasses.replace(cfg, student="student_tiny").augment
    assert RunConfig(augment=True, method="e2kd", teacher_signal="online").augment


@pytest.mark.parametrize("fields", [
    {"method": "xdistill"},
    {"method": "kd", "seed": 3, "student": "student_tiny", "alpha": 0.5},
    {"method": "e2kd", "augment": True, "teacher_signal": "online"},
    {"method": "at", "augment": True, "teacher_signal": "online", "teacher_augment": False},
])  # fmt: skip
def test_train_teacher_turns_any_valid_student_config_into_its_teacher(monkeypatch, fields):
    """train_teacher re-validates a student config as the teacher's (method scratch, the
    teacher's model): no valid student config is refused there, and the teacher is the one
    that every student of the same data shares."""
    from xdx_lib.data.datasets import Dataset, make_shapes
    from xdx_lib.experiments import session

    seen = []

    def record(job, data, teacher=None, progress=False, verbose=True):
        seen.append({"method": job.method, "path": job.path, "meta": job.meta,
                     "epochs": job.epochs, "seed": job.seed, "teacher": teacher,
                     "augment": job.augment})  # fmt: skip

    monkeypatch.setattr(session, "train_or_load", record)
    data = Dataset("shapes", make_shapes(8), make_shapes(4, seed=1), ["a", "b", "c", "d"])
    base = RunConfig(profile="smoke", dataset="shapes")
    student_cfg = RunConfig(profile="smoke", dataset="shapes", **fields)
    session.train_teacher(base, data, verbose=False)
    session.train_teacher(student_cfg, data, verbose=False)
    shared, got = seen
    assert got["method"].name == "scratch" and got["teacher"] is None
    assert got["method"].cfg.method == "scratch"
    assert got["method"].cfg.student == got["meta"]["model"] == "cnn_teacher"
    model = got["method"].build_model(data.in_channels, data.num_classes)
    assert type(model).__name__ == "ConvNet" and model.classifier.in_features == 128
    assert got["augment"] is student_cfg.teacher_augment
    assert got["seed"] == student_cfg.teacher_seed and got["epochs"] == 1
    if student_cfg.teacher_augment == base.teacher_augment:
        assert got["path"] == shared["path"]  # one teacher for every method, seed, student
    else:
        assert got["path"] != shared["path"]


# ----------------------------------------------------------------------------- data


@pytest.mark.parametrize("command", ["distill", "data"])
def test_data_root_no_such_dir(tmp_path, capsys, command):
    missing = tmp_path / "no" / "such" / "dir"
    args = ["data", "--data-root", str(missing)] if command == "data" else [
        "distill", *SMOKE, "--data-root", str(missing)]  # fmt: skip
    assert main(args) == 2
    _one_error_line(capsys, f"data root {missing} does not exist")
    assert not missing.exists() and not (tmp_path / "no").exists()
    assert not (tmp_path / "runs").exists()


def test_data_root_missing_is_allowed_only_with_download(tmp_path):
    missing = tmp_path / "new"
    with pytest.raises(DataNotFoundError, match="allow a download"):
        check_data_root("fashion_mnist", missing, download=False)
    assert check_data_root("fashion_mnist", missing, download=True) == missing
    assert not missing.exists()  # created only by load_dataset, deliberately
    with pytest.raises(DataNotFoundError, match="does not exist"):
        check_data_root("imagefolder", missing, download=True)  # nothing to download
    assert check_data_root("shapes", missing) == missing


def _png(path: Path, value: int = 128) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)


def _folder(root: Path, train=("a", "b"), test=("a", "b")) -> Path:
    for split, classes in (("train", train), ("test", test)):
        for c in classes:
            _png(root / split / c / "0.png")
    return root


def test_image_folder_that_works(tmp_path):
    ds = load_dataset("imagefolder", _folder(tmp_path / "imgs"), image_size=8)
    assert ds.classes == ["a", "b"] and len(ds.train) == 2


def test_image_folder_empty(tmp_path, capsys):
    root = tmp_path / "imgs"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    with pytest.raises(BadDataError, match=f"image folder {root / 'train'} holds no images"):
        load_dataset("imagefolder", root)
    (root / "train" / "a").mkdir()  # a class folder without images
    with pytest.raises(BadDataError, match="holds no images"):
        load_dataset("imagefolder", root)
    assert main(["data", "--dataset", "imagefolder", "--data-root", str(root)]) == 2
    _one_error_line(capsys, "holds no images")


def test_image_folder_train_test_class_mismatch(tmp_path, capsys):
    root = _folder(tmp_path / "imgs", test=("a", "c"))
    with pytest.raises(BadDataError, match=r"has classes \['a', 'c'\], but the training split "
                                           r"has \['a', 'b'\]; give train/ and test/ the same"):
        load_dataset("imagefolder", root)
    assert main(["data", "--dataset", "imagefolder", "--data-root", str(root)]) == 2
    _one_error_line(capsys, "same class folders")


def test_image_folder_text_file_named_png(tmp_path, capsys):
    root = _folder(tmp_path / "imgs")
    bad = root / "train" / "a" / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(BadDataError, match=f"cannot read image {bad}.*replace or delete"):
        load_dataset("imagefolder", root)
    assert main(["data", "--dataset", "imagefolder", "--data-root", str(root)]) == 2
    _one_error_line(capsys, f"cannot read image {bad}")


def _small_folder(root: Path, n_train: int) -> Path:
    for i in range(n_train):
        _png(root / "train" / "ab"[i % 2] / f"{i}.png", value=10 * i)
    for i in range(4):
        _png(root / "test" / "ab"[i % 2] / f"{i}.png", value=10 * i)
    return root


def test_image_folder_too_small_for_the_profile_is_one_line(tmp_path, capsys):
    """17 images under the smoke profile (256 held out for validation): one line that says
    the sizes and what to set, status 2, no traceback, nothing written; then the remedy
    it names trains."""
    root = _small_folder(tmp_path / "imgs", 17)
    args = ["train-teacher", "--profile", "smoke", "--dataset", "imagefolder", "--data-root",
            str(root), "--image-size", "8", "--epochs", "1"]  # fmt: skip
    assert main(args) == 2
    line = _one_error_line(capsys, "data too small: the training split has 17 images")
    assert "val_size 256" in line and "--val-size" in line and "below 17" in line
    assert _files(tmp_path / "runs") == []
    assert main([*args, "--val-size", "4"]) == 0
    assert "train-teacher: " in capsys.readouterr().out


def test_session_on_too_small_data_raises_one_error_type(tmp_path):
    from xdx_lib.data.datasets import SplitSizeError
    from xdx_lib.experiments.session import Session

    cfg = RunConfig(dataset="imagefolder", profile="smoke", image_size=8,
                    data_root=str(_small_folder(tmp_path / "imgs", 12)))  # fmt: skip
    with pytest.raises(SplitSizeError, match="has 12 images, too few to hold out val_size 256"):
        Session(cfg).data  # noqa: B018 (the property loads the data)
    with pytest.raises(ConfigError):  # what the command line prints as one line
        Session(cfg).teacher()
    assert _files(tmp_path / "runs") == []


@pytest.mark.parametrize("check", [True, False])
def test_experiment_over_too_small_data_is_one_line(tmp_path, capsys, check):
    """A config over 12 training images: ``experiment --check`` (what ``make reproduce``
    runs before any notebook) and the run itself stop with the same line."""
    root = _small_folder(tmp_path / "imgs", 12)
    path = _experiment(tmp_path, run={"dataset": "imagefolder", "profile": "smoke",
                                      "data_root": str(root), "image_size": 8})  # fmt: skip
    assert main(["experiment", str(path), *(["--check"] if check else [])]) == 2
    line = _one_error_line(capsys, "data too small: the training split has 12 images")
    assert "val_size 256" in line and "below 12" in line
    assert _files(tmp_path / "runs") == []


def test_experiment_check_does_not_download(tmp_path, capsys, monkeypatch):
    """Data not yet on disk passes the check (the run downloads it); nothing is fetched."""
    from xdx_lib.data import sources

    asked = []

    def offline(cls, root, train, download, label, remedy):
        asked.append(download)
        raise DataNotFoundError(f"{label} not found under {root}")

    monkeypatch.setattr(sources, "_torchvision", offline)
    path = _experiment(tmp_path, run={"dataset": "cifar10", "profile": "smoke",
                                      "data_root": str(tmp_path), "download": True})  # fmt: skip
    assert main(["experiment", str(path), "--check"]) == 0
    assert "ok (1 methods x 1 seeds)" in capsys.readouterr().out
    assert asked == [False]  # looked on disk once, never downloaded


def test_image_folder_truncated_jpeg(tmp_path):
    from PIL import Image

    root = _folder(tmp_path / "imgs")
    bad = root / "test" / "b" / "cut.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(bad, quality=95)
    bad.write_bytes(bad.read_bytes()[:400])
    with pytest.raises(BadDataError, match=f"cannot read image {bad}"):
        load_dataset("imagefolder", root)


# ----------------------------------------------------------------------------- devices


@pytest.mark.parametrize("device", ["mps", "cuda", "cuda:7"])
def test_device_not_available(tmp_path, capsys, device):
    if device in available_devices() or (device == "cuda" and torch.cuda.is_available()):
        pytest.skip(f"{device} exists on this machine")
    with pytest.raises(DeviceUnavailable, match="available: cpu"):
        resolve_device(device)
    assert main(["distill", *SMOKE, "--dataset", "shapes", "--device", device]) == 2
    line = _one_error_line(capsys, f"device {device!r} is not available here (available: cpu")
    assert line.endswith("choose one of those, or auto")
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- the runs folder


def test_runs_folder_not_writable(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    runs = blocker / "runs"  # under a file: not writable, even for root
    with pytest.raises(CacheWriteError, match=f"cannot write to the runs folder {runs}"):
        check_writable(runs)
    assert main(["distill", *SMOKE, "--dataset", "shapes", "--runs", str(runs)]) == 2
    line = _one_error_line(capsys, "cannot write to the runs folder")
    assert line.endswith("choose another with --runs or XDX_RUNS")


def test_runs_folder_read_only_fails_before_training(tmp_path, capsys, monkeypatch):
    """A read-only runs folder is refused before the first epoch, not when saving it."""
    from xdx_lib.training import loop as train

    runs = tmp_path / "runs"
    monkeypatch.setenv("XDX_RUNS", str(runs))
    real = train.check_writable
    calls = []

    def read_only(folder):
        calls.append(folder)
        raise CacheWriteError(f"cannot write to the runs folder {folder} (Read-only file "
                              "system); make it writable, or choose another")  # fmt: skip

    monkeypatch.setattr(train, "check_writable", read_only)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    from xdx_lib.data.datasets import Split
    from xdx_lib.distill.method import METHODS

    split = Split(torch.rand(8, 1, 2, 2), torch.randint(0, 2, (8,)))
    steps = []
    with pytest.raises(CacheWriteError, match="Read-only file system"):
        train.fit(model, METHODS.get("scratch")(RunConfig()), split, split,
                  train.Schedule(epochs=1),
                  checkpointing=train.Checkpointing(runs / "x" / "model.pt"),
                  reporting=train.Reporting(verbose=False,
                                            callback=lambda e, s: steps.append(s)))  # fmt: skip
    assert calls and not steps  # refused before a single step
    monkeypatch.setattr(train, "check_writable", real)


@pytest.mark.parametrize("writer", ["json", "bytes"])
def test_failed_save_says_where_and_leaves_no_partial_file(tmp_path, monkeypatch, writer):
    target = tmp_path / "results" / "kd-s0.json"

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CacheWriteError, match=f"cannot save {target} \\(No space left on device\\)"
                                              "; nothing was written there"):
        (atomic_write_json({"a": 1}, target) if writer == "json"
         else atomic_write_bytes(b"x", target))  # fmt: skip
    assert _files(tmp_path) == []  # neither the file nor its temporary


# ----------------------------------------------------------------------------- papermill


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "epocs", "3"], "results.ipynb: unknown parameter 'epocs'; this notebook takes: "
                               "profile, config, device"),
        (["-p", "profile", "3"], "results.ipynb: parameter profile=3 should be of type str"),
        (["-p", "device", "None"], "parameter device=None should be of type str"),
    ],
)
def test_papermill_parameter_wrong_name_or_type(capsys, args, message):
    nb = str(ROOT / "book" / "results.ipynb")
    assert main(["check-params", nb, *args]) == 2
    _one_error_line(capsys, message)


def test_papermill_parameters_that_fit_pass():
    nb = ROOT / "book" / "results.ipynb"
    got = check_papermill_parameters(nb, [("profile", "smoke"), ("device", "cpu")],
                                     [("config", "configs/x.yaml")])  # fmt: skip
    assert got == {"profile": "smoke", "device": "cpu", "config": "configs/x.yaml"}
    with pytest.raises(ParameterError, match="does not exist"):
        check_papermill_parameters(ROOT / "book" / "nowhere.ipynb")


def test_make_reproduce_checks_usage_first_and_on_stderr():
    text = (ROOT / "Makefile").read_text()
    assert "reproduce: reproduce-usage $(STAMP) data" in text
    usage = text[text.index("reproduce-usage:"):text.index("reproduce: reproduce-usage")]
    assert usage.count(">&2") == 2
    assert "check-params" in text


# ----------------------------------------------------------------------------- e2KD and AT


class _LinearCam(nn.Module):
    """conv (the Grad-CAM layer) -> global average pool -> linear: a Grad-CAM by hand."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            for p in self.parameters():  # positive: a map > 0 everywhere, so min-max shifts
                p.copy_(torch.rand(p.shape, generator=g) + 0.1)

    @property
    def gradcam_layer(self):
        return self.conv

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def test_e2kd_teacher_target_is_the_raw_gradcam_by_hand():
    """cam = ReLU(sum_k (W_ck / hw) A_k), upsampled bilinearly: no min-max (e2KD's code)."""
    model = _LinearCam().eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        a = model.conv(x)  # [N, K, h, w]
    h, w = a.shape[-2:]
    weights = model.fc.weight.detach()[target] / (h * w)  # dy_c / dA_kij, averaged: W_ck / hw
    by_hand = F.relu((weights[:, :, None, None] * a).sum(1, keepdim=True))
    by_hand = F.interpolate(by_hand, size=(8, 8), mode="bilinear", align_corners=False)
    raw = explain(model, x, "gradcam", target=target, normalize=False)
    torch.testing.assert_close(raw, by_hand, atol=1e-5, rtol=1e-4)
    # the student side, in the graph, is the same function
    acts = model.conv(x)
    in_graph = gradcam_in_graph(model.fc(acts.mean((2, 3))), acts, target, (8, 8))
    torch.testing.assert_close(in_graph.detach(), by_hand, atol=1e-5, rtol=1e-4)
    # 1 - cos is 0 for every image whose map is not all zero (a zero map has cosine 0)
    zero = (by_hand.flatten(1).abs().sum(1) == 0).float()
    expected = float(zero.mean())
    assert float(e2kd_loss(in_graph.detach(), raw)) == pytest.approx(expected, abs=1e-5)
    # the min-max map is another target: cosine is not shift-invariant
    normalised = explain(model, x, "gradcam", target=target)
    assert float(e2kd_loss(in_graph.detach(), normalised)) > expected + 1e-4


def test_e2kd_asks_the_maps_cache_for_raw_gradcam(monkeypatch):
    from xdx_lib.data.datasets import Dataset, make_shapes
    from xdx_lib.distill import signals

    seen = []

    def fake_maps(run, x, explainer="gradcam", split="test", target=None, **settings):
        seen.append((explainer, split, settings))
        return torch.zeros(len(x), 1, *x.shape[-2:])

    monkeypatch.setattr(signals, "model_maps", fake_maps)
    monkeypatch.setattr(signals, "teacher_logits",
                        lambda t, d, splits=("train", "test"): {"train": torch.zeros(8, 4)})
    data = Dataset("shapes", make_shapes(8), make_shapes(4, seed=1), ["a", "b", "c", "d"])
    wanted = create_method(RunConfig(method="e2kd")).signals()
    got = signals.cached_signals(object(), data, wanted)
    assert seen == [("gradcam", "train", {"normalize": False})]
    assert set(got) == {"teacher_logits", "teacher_maps", "target_class"}


def test_raw_and_normalised_gradcam_are_cached_apart(tmp_path):
    from xdx_lib.training.trained_model import cached_maps

    model = _LinearCam()
    x = torch.rand(2, 1, 8, 8)
    args = {"checkpoint_hash": "h", "split": "train", "subset": 2, "cache_dir": tmp_path}
    norm = cached_maps(model, x, "gradcam", {}, **args)
    raw = cached_maps(model, x, "gradcam", {"normalize": False}, **args)
    assert len(_files(tmp_path)) == 2 and not torch.allclose(norm, raw)


def test_at_stage_counts_differ():
    s = [torch.rand(2, 4, 8, 8), torch.rand(2, 4, 4, 4)]
    t = [torch.rand(2, 4, 8, 8), torch.rand(2, 4, 4, 4), torch.rand(2, 4, 2, 2)]
    with pytest.raises(ValueError, match="the student has 2 and the teacher 3; pair them first"):
        at_loss(s, t)
    paired = match_stages(s, t)  # explicit: by resolution, the 2x2 stage unmatched
    assert [p.shape[-1] for p in paired] == [8, 4]
    assert torch.isfinite(at_loss(s, paired))
    with pytest.raises(ValueError, match=r"cannot pair student stage 2 \(3x3\)"):
        match_stages([s[0], torch.rand(2, 4, 3, 3)], t)


def test_deletion_auc_of_nan_images_is_an_error_not_nan():
    from xdx_lib.metrics.faithfulness import deletion_auc

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    x = torch.rand(2, 1, 4, 4)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="the images contains 1 NaN or inf"):
        deletion_auc(model, x, torch.rand(2, 1, 4, 4))


def test_summarize_of_zero_maps_says_so():
    from xdx_lib.metrics.similarity import similarity_table, summarize

    empty = torch.zeros(0, 1, 28, 28)
    with pytest.raises(ValueError, match="over zero images"):
        summarize(similarity_table(empty, empty))
