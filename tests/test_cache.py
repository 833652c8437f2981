"""The run cache (:mod:`xdx_lib.core.cache`): stable keys, file identities, writes that never
leave a half-written file, clear errors for unreadable files and folders, where it lives."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
import torch

from xdx_lib.core import cache
from xdx_lib.core.cache import (
    CacheReadError,
    CacheWriteError,
    atomic_torch_save,
    atomic_write_json,
    check_writable,
    file_hash,
    hash_dict,
    load_tensors,
    runs_dir,
    using_runs_dir,
)


def _files(folder: Path) -> list[str]:
    """Names of every file below ``folder`` (temporary ones included), sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- hash_dict


def test_hash_dict_is_a_fixed_function_of_the_data():
    """A cache key must not change between processes or releases: pinned here."""
    key = {"dataset": "shapes", "seed": 0, "lr": 0.01, "teacher": None}
    assert hash_dict(key) == "bdfda5310259"
    assert hash_dict(key, length=20).startswith(hash_dict(key))
    assert len(hash_dict(key, length=20)) == 20


def test_hash_dict_ignores_key_order_at_every_depth():
    a = {"x": 1, "y": {"p": [1, 2], "q": "s"}}
    b = {"y": {"q": "s", "p": [1, 2]}, "x": 1}
    assert hash_dict(a) == hash_dict(b)


@pytest.mark.parametrize(
    "changed",
    [
        {"x": 2, "y": {"p": [1, 2], "q": "s"}},  # a value
        {"x": 1, "y": {"p": [1, 2], "q": "t"}},  # a nested value
        {"x": 1, "y": {"p": [2, 1], "q": "s"}},  # list order is data (stage widths, seeds)
        {"x": 1, "y": {"p": [1, 2], "q": "s", "r": None}},  # a new field, even None
        {"x": True, "y": {"p": [1, 2], "q": "s"}},  # True is not 1
        {"x": "1", "y": {"p": [1, 2], "q": "s"}},  # "1" is not 1
        {"x": 1.5, "y": {"p": [1, 2], "q": "s"}},
    ],
)
def test_hash_dict_differs_when_anything_changes(changed):
    assert hash_dict(changed) != hash_dict({"x": 1, "y": {"p": [1, 2], "q": "s"}})


# ----------------------------------------------------------------------------- file_hash


def test_file_hash_is_the_sha256_of_the_bytes_only(tmp_path):
    data = os.urandom(1024)
    a, b = tmp_path / "a.pt", tmp_path / "sub" / "b.bin"
    b.parent.mkdir()
    a.write_bytes(data)
    b.write_bytes(data)
    assert file_hash(a) == file_hash(b) == hashlib.sha256(data).hexdigest()[:12]
    assert len(file_hash(a, length=32)) == 32


def test_file_hash_sees_a_change_past_the_first_megabyte(tmp_path):
    data = bytearray(3 * (1 << 20) // 2)
    path = tmp_path / "big.pt"
    path.write_bytes(bytes(data))
    before = file_hash(path)
    data[-1] = 1
    path.write_bytes(bytes(data))
    assert file_hash(path) != before


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_torch_save_round_trips_and_makes_folders(tmp_path):
    target = tmp_path / "a" / "b" / "logits.pt"
    t = torch.arange(6.0).view(2, 3)
    assert atomic_torch_save({"tag": {"n": 2}, "logits": t}, target) == target
    back = load_tensors(target)
    assert back["tag"] == {"n": 2} and torch.equal(back["logits"], t)
    assert _files(tmp_path) == ["a/b/logits.pt"]


def _half_then(exc: BaseException):
    """A ``torch.save`` stand-in that writes a few bytes and then raises ``exc``."""

    def save(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise exc

    return save


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"),
                                 KeyboardInterrupt(), RuntimeError("cannot pickle")])  # fmt: skip
def test_a_failed_torch_save_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path, monkeypatch, exc
):
    target = tmp_path / "model.pt"
    atomic_torch_save({"v": torch.tensor([1.0])}, target)
    old = target.read_bytes()
    monkeypatch.setattr(torch, "save", _half_then(exc))
    expected = CacheWriteError if isinstance(exc, OSError) else type(exc)
    with pytest.raises(expected) as info:
        atomic_torch_save({"v": torch.tensor([2.0])}, target)
    assert target.read_bytes() == old
    assert _files(tmp_path) == ["model.pt"]
    if isinstance(exc, OSError):
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"cannot save {target} (No space left on device); "
                                  "nothing was written there")  # fmt: skip


def test_a_failed_first_torch_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _half_then(OSError(5, "Input/output error")))
    with pytest.raises(CacheWriteError, match=r"\(Input/output error\)"):
        atomic_torch_save({}, tmp_path / "runs" / "model.pt")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("writer", ["torch", "json"])
def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch,
                                                                    writer):  # fmt: skip
    target = tmp_path / ("m.pt" if writer == "torch" else "m.json")
    save = (lambda v: atomic_torch_save({"v": v}, target)) if writer == "torch" else (
        lambda v: atomic_write_json({"v": v}, target))  # fmt: skip
    save(1)
    old = target.read_bytes()

    def no_rename(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(CacheWriteError, match=r"cannot save .* \(Permission denied\)"):
        save(2)
    assert target.read_bytes() == old
    assert _files(tmp_path) == [target.name]


def test_atomic_write_json_is_indented_with_sorted_keys(tmp_path):
    target = tmp_path / "r" / "metrics.json"
    obj = {"b": [1, 2], "a": {"z": 1.5, "y": None}}
    atomic_write_json(obj, target)
    text = target.read_text()
    assert text == json.dumps(obj, indent=2, sort_keys=True)
    assert json.loads(text) == obj and text.index('"a"') < text.index('"b"')


# ----------------------------------------------------------------------------- load_tensors


class _Marker:
    """Pickles to a call that creates a file: loading it must not run that call."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _corrupt_files(tmp_path: Path) -> dict[str, Path]:
    """Files ``load_tensors`` must refuse: garbage, empty, truncated, arbitrary pickle."""
    good = tmp_path / "good.pt"
    torch.save({"x": torch.rand(64)}, good)
    files = {
        "garbage": b"not a torch file",
        "empty": b"",
        "truncated": good.read_bytes()[: len(good.read_bytes()) // 2],
    }
    out = {}
    for name, data in files.items():
        out[name] = tmp_path / f"{name}.pt"
        out[name].write_bytes(data)
    out["code"] = tmp_path / "code.pt"
    torch.save({"x": _Marker(tmp_path / "ran")}, out["code"])
    return out


def test_load_tensors_on_a_corrupt_file_says_so_in_one_line(tmp_path):
    for name, path in _corrupt_files(tmp_path).items():
        with pytest.raises(CacheReadError) as info:
            load_tensors(path)
        assert isinstance(info.value, RuntimeError)  # as a failed torch.load is
        message = str(info.value)
        assert "\n" not in message, name
        assert message.startswith(f"cannot read {path}: "), name
        assert message.endswith("the file is corrupt or not one of ours; delete it and run "
                                "again"), name  # fmt: skip
    assert not (tmp_path / "ran").exists()  # weights_only: the pickled call never ran


# ----------------------------------------------------------------------------- check_writable


def test_check_writable_makes_the_folder_and_leaves_it_empty(tmp_path):
    folder = tmp_path / "new" / "runs"
    assert check_writable(folder) == folder
    assert folder.is_dir() and _files(tmp_path) == []


def test_check_writable_on_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    """Root ignores file modes, so the refusal of the file system is simulated."""
    folder = tmp_path / "runs"
    folder.mkdir()

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(CacheWriteError) as info:
        check_writable(folder)
    assert isinstance(info.value, OSError)
    assert str(info.value) == (f"cannot write to the runs folder {folder} (Read-only file "
                               "system); make it writable, or choose another with --runs or "
                               "XDX_RUNS")  # fmt: skip


def test_check_writable_under_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(CacheWriteError, match=re.escape(f"runs folder {blocker / 'r'} (")):
        check_writable(blocker / "r")
    assert blocker.read_text() == ""


# ----------------------------------------------------------------------------- runs_dir


def test_runs_dir_is_xdx_runs_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("XDX_RUNS", str(tmp_path / "elsewhere"))
    assert runs_dir() == tmp_path / "elsewhere"


def test_runs_dir_without_xdx_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("XDX_RUNS")
    project = tmp_path / "proj"
    (project / "xdx_lib").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "book").mkdir()
    monkeypatch.chdir(project / "book")
    assert runs_dir() == project.resolve() / "runs"  # a notebook in book/ shares <project>/runs
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert cache.project_root() is None
    assert runs_dir().resolve() == outside.resolve() / "runs"


def test_using_runs_dir_chooses_the_folder_inside_the_block_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDX_RUNS", str(tmp_path / "env"))
    with using_runs_dir(tmp_path / "chosen"):
        assert runs_dir() == tmp_path / "chosen"
        assert os.environ["XDX_RUNS"] == str(tmp_path / "env")  # the environment is left
        with using_runs_dir(None):  # None: as outside
            assert runs_dir() == tmp_path / "chosen"
    assert runs_dir() == tmp_path / "env"
    with pytest.raises(KeyboardInterrupt), using_runs_dir(tmp_path / "chosen"):
        raise KeyboardInterrupt
    assert runs_dir() == tmp_path / "env"  # restored however the block ends
