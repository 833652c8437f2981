"""Shared fixtures: every test writes its runs to a temporary folder and sees no profile
or download setting from the environment, so tests never touch ``runs/`` or the network.

``auto`` precision reads as float32 on every CPU here (``XDX_CPU_BF16=0``), so a test's
numbers do not depend on whether the machine has bfloat16 units; the tests of that
choice set the variable themselves."""

from __future__ import annotations

import pytest
import ranks

from xdx_lib.data.datasets import Split, make_shapes


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDX_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("XDX_PROFILE", raising=False)
    monkeypatch.delenv("XDX_DOWNLOAD", raising=False)
    monkeypatch.setenv("XDX_CPU_BF16", "0")


@pytest.fixture(scope="session")
def shapes() -> tuple[Split, Split]:
    """A small generated dataset (4 classes, 28x28, with masks)."""
    return make_shapes(256, seed=0), make_shapes(64, seed=1)


@pytest.fixture
def pretend_rank(monkeypatch):
    """This process plays a rank of a torchrun job (:func:`ranks.pretend_rank`)."""
    return ranks.pretend_rank(monkeypatch)


@pytest.fixture
def broadcasts(monkeypatch):
    """What the ranks broadcast, recorded (:func:`ranks.broadcasts`)."""
    return ranks.broadcasts(monkeypatch)
