"""The library's layers point only down: a folder imports only folders below it, and no
module imports itself back through another (no import circle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xdx_lib"

#: Every folder of the library by layer, bottom first; a folder's modules may import their
#: own folder's modules and those of the layers before it, never one of its own layer or
#: above (the README's "Architecture" section draws the same order).
LAYERS = [
    ["core"],
    ["analysis"],
    ["data", "models", "explain", "metrics"],
    ["training"],
    ["distill"],
    ["evaluation"],
    ["experiments"],
    ["report"],
]
#: The package's own files: the public face and the command, above every folder.
TOP = ["__init__", "__main__"]
RANK = {folder: i for i, layer in enumerate(LAYERS) for folder in layer} | {
    name: len(LAYERS) for name in TOP
}


def _folder_of(path: Path, package: Path = PACKAGE) -> str:
    return path.relative_to(package).parts[0].removesuffix(".py")


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    return ".".join(["xdx_lib", *parts]).removesuffix(".__init__")


def _imported(path: Path, package: Path = PACKAGE) -> set[str]:
    """The xdx_lib modules ``path`` imports (dotted, absolute), at module level or inside a
    function; a relative import is resolved against ``path``'s package."""
    tree = ast.parse(path.read_text())
    here = _module_name(path, package).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "xdx_lib" or module.startswith("xdx_lib."):
                out.add(module)
                out.update(f"{module}.{a.name}" for a in node.names)  # names may be modules
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("xdx_lib"))
    return out


def _folders(modules: set[str]) -> set[str]:
    return {m.split(".")[1] for m in modules if m.count(".") >= 1}


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {_module_name(p, package): p for p in package.rglob("*.py")}


def test_every_folder_is_placed():
    folders = {_folder_of(p) for p in PACKAGE.rglob("*.py")}
    assert folders == set(RANK)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))  # fmt: skip
def test_imports_point_down(path):
    folder = _folder_of(path)
    if path == PACKAGE / "__init__.py":
        return
    upward = sorted(f for f in _folders(_imported(path)) - {folder}
                    if f in RANK and RANK[f] >= RANK[folder])  # fmt: skip
    assert not upward, (f"{path.relative_to(PACKAGE)} imports {upward}, at or above "
                        f"{folder!r}'s layer in LAYERS")  # fmt: skip


def _cycle(package: Path = PACKAGE) -> list[str] | None:
    """One import circle among the package's modules (a folder's ``__init__`` aside), or None."""
    modules = _modules(package)
    graph = {m: sorted(i for i in _imported(p, package) if i in modules and i != m
                       and not modules[i].name == "__init__.py")  # fmt: skip
             for m, p in modules.items() if p.name != "__init__.py"}  # fmt: skip
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in graph.get(m, []):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in graph:
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circle():
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_the_checker_sees_upward_imports_inside_functions(tmp_path):
    pkg = tmp_path / "xdx_lib"
    (pkg / "explain").mkdir(parents=True)
    bad = pkg / "explain" / "gradient.py"
    bad.write_text("from .base import X\n\ndef f():\n    from ..experiments import runner\n"
                   "    import xdx_lib.report.tables\n")
    assert _folders(_imported(bad, pkg)) >= {"explain", "experiments", "report"}


def test_the_checker_finds_a_circle(tmp_path):
    pkg = tmp_path / "xdx_lib"
    (pkg / "core").mkdir(parents=True)
    (pkg / "core" / "a.py").write_text("from xdx_lib.core.b import y\n")
    (pkg / "core" / "b.py").write_text("def f():\n    from xdx_lib.core import a\n")
    assert _cycle(pkg) is not None
    (pkg / "core" / "b.py").write_text("y = 1\n")
    assert _cycle(pkg) is None
