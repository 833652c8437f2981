"""Every package the library imports is declared in pyproject.toml: those imported when a
module loads among the base dependencies (``pip install xdx`` must run them), those imported
inside a function (the book's helpers) at least in an extra."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
#: Import names whose distribution is named otherwise.
DISTRIBUTION = {"yaml": "pyyaml", "PIL": "pillow", "sklearn": "scikit-learn",
                "IPython": "ipython", "myst_nb": "jupyter-book"}  # fmt: skip
#: Distributions an extra brings in through another it declares (myst-nb's IPython).
VIA = {"ipython": "ipykernel"}


def _declared() -> tuple[set[str], set[str]]:
    """The base dependencies' names and those of every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda spec: re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower()  # noqa: E731
    base = {name(s) for s in project["dependencies"]}
    extras = {name(s) for group in project["optional-dependencies"].values() for s in group}
    return base, extras


def third_party_imports(source: str) -> dict[str, bool]:
    """``{top-level name: imported when the module loads}`` for the non-standard imports."""
    found: dict[str, bool] = {}
    tree = ast.parse(source)
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for n in names:
            head = n.split(".")[0]
            if head in sys.stdlib_module_names or head in ("xdx_lib", "__future__"):
                continue
            found[head] = found.get(head, False) or id(node) in top
    return found


def test_every_import_of_the_library_is_declared():
    base, extras = _declared()
    missing = []
    for path in sorted((ROOT / "xdx_lib").rglob("*.py")):
        for head, at_load in third_party_imports(path.read_text()).items():
            dist = DISTRIBUTION.get(head, head).lower()
            where = base if at_load else base | extras | {d for d, e in VIA.items() if e in extras}
            if dist not in where:
                missing.append(f"{path.relative_to(ROOT)}: {head} ({dist})")
    assert not missing, f"undeclared in pyproject.toml: {missing}"


def test_an_undeclared_import_is_found():
    found = third_party_imports("import numpy\ndef f():\n    import scipy.stats\nimport os\n")
    assert found == {"numpy": True, "scipy": False}
