"""The Pages workflow: cache keys that a re-run cannot collide on, builds of main never
cancelled mid-run, the torch the book was measured with, and the run archive tried first."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps() -> list[dict]:
    return _workflow()["jobs"]["build"]["steps"]


def test_cache_keys_hold_the_code_and_the_attempt():
    keys = [s["with"]["key"] for s in _steps() if "actions/cache" in s.get("uses", "")]
    assert len(keys) == 2 and len(set(keys)) == 1, keys
    assert "steps.archive.outputs.tag" in keys[0], "the key must follow the training code"
    assert "github.run_attempt" in keys[0] and "github.run_id" in keys[0]


def test_a_build_is_never_cancelled_mid_run():
    assert _workflow()["concurrency"]["cancel-in-progress"] is False


def test_torch_is_pinned_to_the_version_make_setup_installs():
    pins = re.search(r"^TORCH_PIN \?= (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    wanted = set(pins.split())
    workflow_pin = _workflow()["env"]["TORCH_PIN"].split()
    assert wanted <= set(workflow_pin), (wanted, workflow_pin)


def test_the_published_archive_is_fetched_before_anything_trains():
    names = [s.get("name", s.get("uses", "")) for s in _steps()]
    fetch = next(i for i, n in enumerate(names) if "archive (fetch)" in n)
    build = next(i for i, n in enumerate(names) if n == "make book")
    assert fetch < build
    fetch_step = _steps()[fetch]
    assert "xdx runs fetch" in fetch_step["run"] and fetch_step["continue-on-error"] is True
