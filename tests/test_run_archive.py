"""Published run caches: packed, served and fetched with the same bytes; refused, with
nothing written, when made by other code, changed, unsafe, not an archive or not there; the
archive's id moved by everything that determines the models; the ``xdx runs`` command."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tiny_experiment import TINY, write_config

from xdx_lib.__main__ import main
from xdx_lib.core import config, fingerprint, layout, run_archive
from xdx_lib.core.cache import using_runs_dir
from xdx_lib.core.run_archive import ArchiveError, archive_id, archive_name, fetch, pack

ROOT = Path(__file__).resolve().parents[1]

#: A fake run cache: a file of each kind the layout names.
FILES = {
    "teachers/fashion_mnist-cnn_teacher-0123456789ab/model.pt": b"teacher weights",
    "teachers/fashion_mnist-cnn_teacher-0123456789ab/logits_test.pt": b"logits",
    "students/fashion_mnist-kd-student_small-s0-ba9876543210/model.pt": b"student weights",
    "students/fashion_mnist-kd-student_small-s0-ba9876543210/interventions.json": b"{}",
    "maps/gradcam-test-abcdefabcdef.pt": b"maps",
    "exp/results/a.json": b'{"metrics": {"accuracy": 0.5}}',
}


@pytest.fixture(autouse=True)
def _in_the_project(monkeypatch):
    """The profiles' experiment configs are found from the project's folder."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def runs_a(tmp_path) -> Path:
    """A fake run cache, with a write in progress that no archive may hold."""
    folder = tmp_path / "A"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "maps" / ".gradcam-test-x.pt.k3j2.tmp").write_bytes(b"half a file")
    return folder


@pytest.fixture
def served(tmp_path):
    """``(folder, url)``: a local HTTP server on 127.0.0.1 serving ``folder``."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) and its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def listing(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, hidden ones too (None: there is no folder)."""
    if not folder.exists():
        return None
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rewritten(archive: Path, out: Path, change) -> Path:
    """A copy of ``archive`` at ``out`` whose members ``change([(info, bytes)])`` returns."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(out, "w:gz") as tar:
        for info, data in change(members):
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def with_manifest(members, edit):
    """``members`` with the manifest replaced by ``edit(manifest)``."""
    out = []
    for info, data in members:
        if info.name == "manifest.json":
            data = json.dumps(edit(json.loads(data))).encode()
        out.append((info, data))
    return out


def added(name: str, data: bytes = b"x", **info):
    """A change that adds the member ``name`` (a TarInfo with ``info``) to the archive."""

    def change(members):
        member = tarfile.TarInfo(name)
        for k, v in info.items():
            setattr(member, k, v)
        return [*members, (member, data)]

    return change


def tampered(members):
    return [(i, b"other weights" if i.name.endswith("kd-student_small-s0-ba9876543210/model.pt")
             else d) for i, d in members]  # fmt: skip


# ------------------------------------------------------------------------ pack and fetch


def test_pack_then_fetch_by_url_gives_the_same_files(runs_a, served, tmp_path):
    folder, url = served
    path = pack("smoke", folder, runs=runs_a)
    assert path == folder / archive_name("smoke") and listing(folder) == [path.name]
    got = fetch(f"{url}/{path.name}", runs=tmp_path / "B")
    assert tree(tmp_path / "B") == FILES  # the same files, the same bytes; no temporary left
    assert got["added"] == len(FILES) and got["present"] == 0
    assert got["archive_id"] == archive_id("smoke") and got["profile"] == "smoke"
    assert got["files"] == {name: sha(data) for name, data in FILES.items()}
    for field in ("commit", "torch", "python", "device", "created"):
        assert field in got
    assert got["torch"] and got["python"] and got["device"] and got["created"].endswith("+00:00")
    with tarfile.open(path, "r:gz") as tar:
        first = tar.getmembers()[0]
        assert first.name == "manifest.json" and all(m.uname == "" for m in tar.getmembers())


def test_fetch_from_a_path_and_again_adds_nothing(runs_a, tmp_path):
    path = pack("smoke", tmp_path, runs=runs_a, device="a test machine")
    got = fetch(str(path), runs=tmp_path / "B")
    assert got["device"] == "a test machine" and tree(tmp_path / "B") == FILES
    again = fetch(str(path), runs=tmp_path / "B")
    assert (again["added"], again["present"]) == (0, len(FILES))
    assert tree(tmp_path / "B") == FILES


def test_pack_refuses_an_empty_run_cache_and_a_link(tmp_path):
    (tmp_path / "empty").mkdir()
    for runs in (tmp_path / "empty", tmp_path / "nowhere"):
        with pytest.raises(ArchiveError, match="holds no files; run the experiment first"):
            pack("smoke", tmp_path / "out", runs=runs)
    (tmp_path / "empty" / "model.pt").symlink_to(tmp_path / "elsewhere.pt")
    with pytest.raises(ArchiveError, match="is a link"):
        pack("smoke", tmp_path / "out", runs=tmp_path / "empty")
    assert listing(tmp_path / "out") is None


def test_a_pack_stopped_midway_leaves_no_archive(runs_a, tmp_path, monkeypatch):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "add", stopped)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        pack("smoke", tmp_path / "out", runs=runs_a)
    assert listing(tmp_path / "out") == []


# ---------------------------------------------------------------------------- refusals


@pytest.fixture
def archive(runs_a, tmp_path) -> Path:
    return pack("smoke", tmp_path / "archives", runs=runs_a)


@pytest.fixture
def runs_b(tmp_path) -> Path:
    """A run cache that already holds a file of its own."""
    folder = tmp_path / "B"
    (folder / "teachers").mkdir(parents=True)
    (folder / "teachers" / "mine.pt").write_bytes(b"mine")
    return folder


def refused(source, runs: Path, match: str) -> str:
    """Fetch ``source`` into ``runs``, expect a one-line refusal matching ``match`` and
    nothing written; returns the message."""
    before = listing(runs)
    with pytest.raises(ArchiveError, match=match) as e:
        fetch(str(source), runs=runs)
    assert listing(runs) == before  # no new file, no temporary file or folder left
    assert "\n" not in str(e.value)
    return str(e.value)


def test_an_archive_of_other_code_is_refused(runs_a, tmp_path, runs_b, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(fingerprint, "TRAINING_CODE", "1234567890abcdef")
        path = pack("smoke", tmp_path, runs=runs_a)
        theirs = archive_id("smoke")
    message = refused(path, runs_b, "this archive was made by other code")
    commit = json.loads(tarfile.open(path).extractfile("manifest.json").read())["commit"]
    assert f"its id {theirs}, this code's {archive_id('smoke')}" in message
    assert f"train the models, or check out {commit or 'the commit'} that made it" in message
    refused(path, tmp_path / "new", "other code")  # a folder made for the fetch is gone again


@pytest.mark.parametrize("change, match", [
    (tampered, "differs from its manifest"),
    (added("runs/../evil.pt"), "points outside the archive's folder"),
    (added("/evil.pt"), "points outside the archive's folder"),
    (added("runs/link.pt", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "is a link"),
    (added("runs/maps/extra.pt"), "which its manifest does not list"),
    (added("runs/exp/results/a.json"), "is given twice"),
    (lambda ms: [(i, d) for i, d in ms if not i.name.endswith("a.json")], "lacks runs/exp"),
    (lambda ms: [(i, d) for i, d in ms if i.name != "manifest.json"], "has no manifest.json"),
    (lambda ms: with_manifest(ms, lambda d: [d]), "manifest.json is corrupt"),
    (lambda ms: with_manifest(ms, lambda d: {**d, "profile": "nope"}), "profile 'nope'"),
], ids=["tampered", "dotdot", "absolute", "link", "unlisted", "twice", "missing",
        "no-manifest", "corrupt-manifest", "unknown-profile"])  # fmt: skip
def test_a_changed_or_unsafe_archive_is_refused(archive, tmp_path, runs_b, change, match):
    refused(rewritten(archive, tmp_path / "changed.tar.gz", change), runs_b, match)


def test_what_is_not_a_gzip_tar_is_refused(archive, tmp_path, runs_b):
    (tmp_path / "notes.txt").write_text("not an archive")
    refused(tmp_path / "notes.txt", runs_b, "is not a gzip tar archive")
    (tmp_path / "half.tar.gz").write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    refused(tmp_path / "half.tar.gz", runs_b, "is not a gzip tar archive, or is damaged")
    with tarfile.open(tmp_path / "plain.tar", "w") as tar:
        tar.add(archive, "archive.tar.gz")
    refused(tmp_path / "plain.tar", runs_b, "is not a gzip tar archive")
    refused(tmp_path / "missing.tar.gz", runs_b, "is not a file")


def test_a_missing_or_unreachable_url_is_refused(served, runs_b):
    _, url = served
    refused(f"{url}/missing.tar.gz", runs_b, "HTTP 404")
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused(f"http://127.0.0.1:{closed}/a.tar.gz", runs_b, "check the address and the network")


def test_a_different_file_already_there_is_not_overwritten(archive, runs_b):
    name = "students/fashion_mnist-kd-student_small-s0-ba9876543210/model.pt"
    (runs_b / name).parent.mkdir(parents=True)
    (runs_b / name).write_bytes(b"my own student")
    refused(archive, runs_b, "already holds a different")
    assert (runs_b / name).read_bytes() == b"my own student"


# ------------------------------------------------------------------------------ the id


def test_the_id_moves_with_the_code_and_the_profile(monkeypatch):
    before = archive_id("smoke")
    assert archive_name("smoke") == f"xdx-runs-smoke-{before}.tar.gz"
    assert archive_id("book") != before
    with monkeypatch.context() as m:
        m.setattr(fingerprint, "TRAINING_CODE", "fedcba9876543210")
        assert archive_id("smoke") != before
    for name in ("RUN_FORMAT", "MAPS_FORMAT", "SCORES_FORMAT", "REFERENCES_FORMAT",
                 "INTERVENTIONS_FORMAT"):  # fmt: skip
        with monkeypatch.context() as m:
            m.setattr(layout, name, getattr(layout, name) + 1)
            assert archive_id("smoke") != before, name
    longer = dataclasses.replace(config.PROFILES["smoke"], student_epochs=2)
    monkeypatch.setitem(config.PROFILES, "smoke", longer)
    assert archive_id("smoke") != before
    with pytest.raises(ArchiveError, match="unknown profile 'nope'; choose one of: smoke, book"):
        archive_id("nope")


def test_the_id_moves_with_the_config_not_its_comments(tmp_path, monkeypatch):
    before = archive_id("smoke")
    (tmp_path / "pyproject.toml").write_text("")  # a copy of the project (project_root)
    (tmp_path / "xdx_lib").mkdir()
    (tmp_path / "configs").mkdir()
    config_file = tmp_path / "configs" / "fashion_mnist_smoke.yaml"
    text = (ROOT / "configs" / "fashion_mnist_smoke.yaml").read_text()
    config_file.write_text(text)
    monkeypatch.chdir(tmp_path)
    assert run_archive.config_path("smoke") == config_file and archive_id("smoke") == before
    config_file.write_text("# reworded\n" + text)
    assert archive_id("smoke") == before
    config_file.write_text(text.replace("seeds: [0, 1]", "seeds: [0, 1, 2]", 1))
    assert archive_id("smoke") != before
    config_file.unlink()
    with pytest.raises(ArchiveError, match="cannot read the experiment config"):
        archive_id("smoke")


# --------------------------------------------------------------------------- the command


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: ") and "Traceback" not in captured.err
    return captured.err


def test_the_command_names_packs_and_fetches(runs_a, tmp_path, capsys):
    assert main(["runs", "id", "--profile", "smoke"]) == 0
    assert capsys.readouterr().out == archive_name("smoke") + "\n"
    out = tmp_path / "out"
    assert main(["runs", "pack", "--profile", "smoke", "--out", str(out),
                 "--runs", str(runs_a)]) == 0  # fmt: skip
    path = capsys.readouterr().out.strip()
    assert path == str(out / archive_name("smoke"))
    assert main(["runs", "fetch", path, "--runs", str(tmp_path / "B")]) == 0
    line = capsys.readouterr().out
    assert line.startswith("fetched profile smoke (commit ")
    assert f"{len(FILES)} files added, 0 already there" in line and line.count("\n") == 1
    assert tree(tmp_path / "B") == FILES


def test_the_command_refuses_in_one_line(tmp_path, capsys):
    assert main(["runs", "fetch", str(tmp_path / "missing.tar.gz")]) != 0
    assert "missing.tar.gz is not a file" in _one_error_line(capsys)
    assert main(["runs", "id", "--profile", "nope"]) != 0
    assert "unknown profile 'nope'" in _one_error_line(capsys)
    assert main(["runs", "pack", "--profile", "smoke", "--runs", str(tmp_path / "empty")]) != 0
    assert "holds no files" in _one_error_line(capsys)


# ------------------------------------------------------------------------- end to end


def test_a_fetched_run_cache_trains_nothing(tmp_path, served):
    """A tiny experiment on the smoke profile (generated shapes, tiny models) run into A,
    packed, served and fetched into B: run again with B, it trains nothing and reads the
    same results."""
    from xdx_lib.experiments.experiment_config import load_experiment
    from xdx_lib.experiments.runner import run_experiment

    d = {**TINY, "methods": ["scratch", "kd"], "seeds": [0], "explainers": ["gradcam"],
         "sweeps": {}, "localisation_methods": [], "claim_methods": [], "claim_seeds": [],
         "run": {**TINY["run"], "teacher": "student_tiny", "student": "student_tiny"}}
    exp = load_experiment(write_config(tmp_path, d))
    with using_runs_dir(tmp_path / "A"):
        first = run_experiment(exp, verbose=False)
    folder, url = served
    path = pack("smoke", folder, runs=tmp_path / "A")
    fetch(f"{url}/{path.name}", runs=tmp_path / "B")
    fetched = tree(tmp_path / "B")
    assert fetched == tree(tmp_path / "A")
    with using_runs_dir(tmp_path / "B"):
        again = run_experiment(exp, verbose=False)
    models = [name for name in tree(tmp_path / "B") if name.endswith("model.pt")]
    assert models and sorted(models) == sorted(n for n in fetched if n.endswith("model.pt"))
    assert tree(tmp_path / "B") == fetched  # nothing trained, scored or written again

    def normal(results):  # by label: references read back come in the file's sorted order
        return json.loads(json.dumps({r["label"]: r for r in results}, default=str))

    assert normal(again) == normal(first)


def test_the_published_archive_is_a_release_asset_of_the_books_repository():
    import tomllib
    import yaml

    book_repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == book_repo, "pyproject.toml and _config.yml name two repositories"
    assert run_archive.repository_url() == book_repo
    url = run_archive.published_url("colab")
    assert url == (f"{book_repo}/releases/download/runs-{archive_id('colab')}/"
                   f"{archive_name('colab')}")  # fmt: skip
    assert run_archive.published_url("colab", "https://example.org/fork/").startswith(
        "https://example.org/fork/releases/download/runs-")


def test_fetch_needs_one_source(capsys):
    assert main(["runs", "fetch"]) == 2
    assert main(["runs", "fetch", "a.tar.gz", "--published", "book"]) == 2
    assert capsys.readouterr().err.count("give the archive") == 2
