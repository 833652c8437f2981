"""The Colab set-up cell of the chapters (``tools/colab_cell.py``) and the set-up it hands
over to (``tools/colab_setup.py``), run in this process with a stand-in ``google.colab`` and
a stand-in pip: the cell is the same in every chapter, does nothing outside Colab, completes
a half-made clone, stops loudly at a failing step and can put the run cache on Google
Drive. ``test_reader.py`` runs it for real, in a fresh environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    return load_script("tools/colab_cell.py")


def test_every_chapter_has_the_one_cell_after_its_parameters():
    tool = _tool()
    source = tool.cell_source()
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert "".join(code[1]["source"]) == source, (
            f"{path.name}: the Colab cell differs; run python tools/colab_cell.py")
        assert "remove-cell" in code[1]["metadata"].get("tags", [])
        assert "drive: bool = False" in "".join(code[0]["source"]), (
            f"{path.name}: the parameters lack drive, which the Colab cell reads")
    assert tool.main(["--check"]) == 0


def test_the_cell_only_fetches_the_clone_then_hands_over():
    """The set-up past the fetch is tools/colab_setup.py's, tested code, not the cell's."""
    code = [line for line in _tool().cell_source().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    assert len(code) <= 11, code
    assert code[-1].strip() == (
        '_runpy.run_path(f"{_home}/tools/colab_setup.py")["set_up"](_home, drive, profile)')
    ready = load_script("tools/colab_setup.py").READY  # the cell fetches while it is missing
    assert f'f"{{_home}}/{ready}"' in _tool().cell_source()


@pytest.fixture
def environ():
    """The process environment, restored after the test (the cell sets variables)."""
    saved = dict(os.environ)
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def colab(tmp_path, monkeypatch, environ):
    """Colab in this process: ``google.colab`` imported, ``/content`` in ``tmp_path``, a
    Python that records its arguments (``pip.log``) and fails an install when ``pip.fail``
    exists, a fetch of published runs when ``fetch.fail`` exists;
    ``run(drive=False, profile="book")`` executes the cell. The working directory and
    ``sys.path`` are restored afterwards."""
    content = tmp_path / "content"
    content.mkdir()
    mounted = []

    def mount(path):
        mounted.append(path)
        os.makedirs(f"{path}/MyDrive")

    drive = types.SimpleNamespace(mount=mount)
    colab_module = types.ModuleType("google.colab")
    colab_module.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab_module)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    pip = tmp_path / "python"
    pip.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/pip.log\n'
                   f'case "$*" in *"runs fetch"*) if [ -e {tmp_path}/fetch.fail ]; then '
                   'echo "error: HTTP Error 404: Not Found; no such archive" >&2; exit 2; fi; '
                   'echo "fetched profile book"; exit 0;; esac\n'
                   f'if [ -e {tmp_path}/pip.fail ]; then echo "ERROR: no such package" >&2; '
                   "exit 1; fi\n")  # fmt: skip
    pip.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(pip))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    environ.update(XDX_CONTENT=str(content), XDX_REPO_URL=str(_repository(tmp_path / "repo")))
    environ.pop("XDX_RUNS", None)
    source = _tool().cell_source()

    def run(drive: bool = False, profile: str = "book"):
        exec(compile(source, "colab-cell", "exec"), {"drive": drive, "profile": profile})  # noqa: S102

    return types.SimpleNamespace(run=run, home=content / "xdx", content=content,
                                 mounted=mounted, tmp=tmp_path)  # fmt: skip


def _repository(path: Path) -> Path:
    """A small git repository shaped like the project (``book/``, ``pyproject.toml``,
    ``tools/colab_setup.py``)."""
    (path / "book").mkdir(parents=True)
    (path / "book" / "intro.md").write_text("# intro\n")
    (path / "pyproject.toml").write_text("[project]\nname = 'xdx'\n")
    (path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "colab_setup.py", path / "tools")
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    return path


def test_outside_colab_the_cell_does_nothing(tmp_path, monkeypatch, environ):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    before = dict(os.environ)
    exec(compile(_tool().cell_source(), "colab-cell", "exec"), {"drive": True})  # noqa: S102
    assert Path.cwd() == tmp_path and dict(os.environ) == before
    assert list(tmp_path.iterdir()) == []


def test_the_cell_clones_installs_and_sets_up(colab):
    colab.run()
    assert (colab.home / "book" / "intro.md").is_file()
    assert Path.cwd() == colab.home / "book"
    assert sys.path[0] == str(colab.home)
    assert os.environ["XDX_DOWNLOAD"] == "1"
    assert "XDX_RUNS" not in os.environ and not colab.mounted
    install, fetch = (colab.tmp / "pip.log").read_text().splitlines()
    assert install.split() == ["-m", "pip", "install", "-q", "-e", str(colab.home)]
    assert fetch.split() == ["-m", "xdx_lib", "runs", "fetch", "--published", "book"]
    colab.run()  # a second run, e.g. after a restart: nothing is fetched or installed again
    assert len((colab.tmp / "pip.log").read_text().splitlines()) == 2


def test_the_cell_completes_a_folder_without_git(colab):
    colab.home.mkdir()
    (colab.home / "pyproject.toml").write_text("half-written\n")
    colab.run()
    assert (colab.home / "book" / "intro.md").is_file()
    assert (colab.home / "pyproject.toml").read_text().startswith("[project]")


def test_the_cell_completes_a_failed_checkout(colab):
    subprocess.run(["git", "clone", "-q", os.environ["XDX_REPO_URL"], str(colab.home)],
                   check=True)  # fmt: skip
    (colab.home / "book" / "intro.md").unlink()  # what a checkout stopped half-way leaves
    colab.run()
    assert (colab.home / "book" / "intro.md").is_file()


def test_a_failing_step_stops_with_one_sentence_and_its_output(colab):
    os.environ["XDX_REPO_URL"] = str(colab.tmp / "no-such-repository")
    with pytest.raises(SystemExit) as stop:
        colab.run()
    sentence, explanation = str(stop.value).split("\n", 1)
    assert sentence.startswith("Colab set-up failed: `git -C ") and "fetch" in sentence
    assert sentence.endswith("exited with status 128:")
    assert "no-such-repository" in explanation  # git's own


def test_a_failed_install_is_retried_on_the_next_run(colab, capsys):
    (colab.tmp / "pip.fail").touch()
    with pytest.raises(SystemExit, match=r"`.*python -m pip install -q -e .*` exited with st"):
        colab.run()
    assert "ERROR: no such package" in capsys.readouterr().out
    (colab.tmp / "pip.fail").unlink()
    colab.run()
    assert len((colab.tmp / "pip.log").read_text().splitlines()) == 3  # install twice, fetch
    assert (colab.home / ".git" / "xdx-ready").is_file()


def test_drive_keeps_the_run_cache_on_google_drive(colab):
    colab.run(drive=True)
    assert colab.mounted == [f"{colab.content}/drive"]
    assert os.environ["XDX_RUNS"] == f"{colab.content}/drive/MyDrive/xdx/runs"


def test_without_published_models_the_chapter_goes_on_and_tries_again_later(colab, capsys):
    (colab.tmp / "fetch.fail").touch()
    colab.run()  # no SystemExit: the chapter trains what it needs
    out = capsys.readouterr().out
    assert "No published models for profile book (error: HTTP Error 404" in out
    assert "the chapter trains them" in out
    assert Path.cwd() == colab.home / "book"
    (colab.tmp / "fetch.fail").unlink()
    colab.run()  # the next chapter tries again, and once it worked, no more
    colab.run()
    fetches = [line for line in (colab.tmp / "pip.log").read_text().splitlines()
               if "runs fetch" in line]  # fmt: skip
    assert len(fetches) == 2
    assert (colab.home / "runs" / ".xdx-fetched-book").is_file()


def test_auto_fetches_the_profile_it_resolves_to(colab):
    os.environ["XDX_PROFILE"] = "colab"
    colab.run(profile="auto")
    assert "--published colab" in (colab.tmp / "pip.log").read_text()
