"""The library's layers point only down: no module imports one above it (no import circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xdx_lib"

#: Every module, bottom first; each may import only modules before it (the README's
#: "Architecture" section draws the same order).
ORDER = [
    "registry", "config", "cache", "keys", "_utils", "stats", "choices",
    "data", "sources", "models", "cae", "fusion", "losses", "explain", "metrics", "faithfulness",
    "devices", "precision", "batches", "checkpoints", "curves", "train", "trained", "signals",
    "cae_training", "methods", "xdistill", "interventions",
    "session",
    "evaluation", "experiment", "tuning", "runner", "studies",
    "claims", "tables", "readings", "plots", "notebook", "__main__",
]  # fmt: skip


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported(path: Path, package: Path = PACKAGE) -> set[str]:
    """The top-level xdx_lib modules ``path`` imports, at module level or in a function."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(package).parts)  # 1: xdx_lib/x.py, 2: xdx_lib/explain/x.py
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("xdx_lib."):
                    out.add(node.module.split(".")[1])
                continue
            if node.level < depth:  # a sibling inside the same subpackage
                continue
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("xdx_lib."):
                    out.add(alias.name.split(".")[1])
    return out


def test_every_module_is_placed():
    modules = {_module_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert modules == set(ORDER)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.name))
def test_imports_point_down(path):
    module = _module_of(path)
    if module == "__init__":
        return
    below = set(ORDER[: ORDER.index(module)])
    upward = sorted(_imported(path) - below - {module})
    assert not upward, f"{path.relative_to(PACKAGE)} imports {upward}, above it in ORDER"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    (tmp_path / "explain").mkdir()
    bad = tmp_path / "explain" / "gradient.py"
    bad.write_text("from .base import X\n\ndef f():\n    from ..experiments import y\n"
                   "    import xdx_lib.runner\n")
    assert _imported(bad, tmp_path) == {"experiments", "runner"}
