"""The training code's fingerprint: what ties the run cache's keys to the code that fills it.

A cache key (:mod:`~xdx_lib.core.layout`) holds the config fields that determine a model and
a format version, not the code. A change to a loss that leaves every key as it was would
read models trained by the old loss. So the code that determines what the run cache stores
(:data:`TRAINING_PACKAGES`) has a fingerprint, and :data:`TRAINING_CODE` records it as of
the last time someone checked that the format versions still hold. ``tests/test_fingerprint.py``
fails when the two differ: whoever changed the code then either bumps the format version of
what it changes (``RUN_FORMAT``, ``MAPS_FORMAT`` ... in :mod:`~xdx_lib.core.layout`), so that
the old files are computed again, or, when the stored files stay the same (a refactor,
checked with ``tools/compare_builds.py``), records the new fingerprint.

The fingerprint reads the code as Python's parser does, without comments and docstrings,
so that rewording them changes nothing. A published run archive is named by the recorded
fingerprint and the format versions (:mod:`~xdx_lib.core.run_archive`).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

#: The folders of ``xdx_lib`` whose code determines what the run cache stores: models, maps
#: and scored results. ``analysis`` and ``report`` read results and store nothing.
TRAINING_PACKAGES = ("core", "data", "models", "explain", "metrics", "training", "distill",
                     "evaluation", "experiments")  # fmt: skip
#: This file, the archive's own code and the shipped teacher's installer: they store nothing
#: a key names.
EXCLUDED = ("core/fingerprint.py", "core/run_archive.py", "core/shipped_teacher.py")

#: :func:`code_fingerprint` as last checked against the format versions (see the module's
#: docstring for when to change it).
TRAINING_CODE = "2e84705bfe93b853"

PACKAGE = Path(__file__).resolve().parents[1]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """``tree`` with the docstring of every module, class and function removed."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):  # fmt: skip
            node.body = body[1:] or [ast.Pass()]
    return tree


def source_fingerprint(source: str) -> str:
    """A hash of one module's code: its syntax tree, without comments and docstrings."""
    tree = _without_docstrings(ast.parse(source))
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest()


def code_fingerprint(package: Path = PACKAGE) -> str:
    """A 16-digit hash of every module of :data:`TRAINING_PACKAGES` (their paths and code)."""
    h = hashlib.sha256()
    for folder in TRAINING_PACKAGES:
        for path in sorted((package / folder).rglob("*.py")):
            name = path.relative_to(package).as_posix()
            if name in EXCLUDED:
                continue
            h.update(f"{name}\0{source_fingerprint(path.read_text())}\0".encode())
    return h.hexdigest()[:16]
