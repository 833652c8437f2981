"""The book's notebooks as files: parameters, Colab set-up, stored without outputs, in the TOC."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from scripts import load_script

from xdx_lib.report.notebook import ParameterError, check_parameters, resolve_profile, run_config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _toc_files(node) -> list[str]:
    """Every ``root`` and ``file`` entry of a parsed ``_toc.yml``, in order."""
    if isinstance(node, list):
        return [f for item in node for f in _toc_files(item)]
    if not isinstance(node, dict):
        return []
    own = [node[k] for k in ("root", "file") if k in node]
    return own + [f for k, v in node.items() if k not in ("root", "file") for f in _toc_files(v)]


def test_toc_and_book_folder_list_the_same_pages():
    assert NOTEBOOKS, "book/ holds no notebooks"
    entries = _toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    assert len(entries) == len(set(entries)), f"_toc.yml lists a page twice: {entries}"
    for entry in entries:
        found = [p for p in (ROOT / f"{entry}.ipynb", ROOT / f"{entry}.md") if p.is_file()]
        assert len(found) == 1, f"_toc.yml entry {entry!r} should be one .ipynb or .md file"
    pages = sorted(p for p in (ROOT / "book").iterdir() if p.suffix in (".ipynb", ".md"))
    listed = {f"{p.parent.name}/{p.stem}" for p in pages}
    assert listed == set(entries), (
        f"in book/ but not in _toc.yml: {sorted(listed - set(entries))}; "
        f"in _toc.yml but not in book/: {sorted(set(entries) - listed)}")


def _module_nodes(tree: ast.AST):
    """Every node of ``tree`` outside function and class bodies (what binds a global)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                 ast.Lambda)):  # fmt: skip
            stack.extend(ast.iter_child_nodes(node))


def _bound_names(tree: ast.AST) -> set[str]:
    """Global names a piece of code binds: assignments, imports, definitions, loop variables
    (a function's locals are not globals, so they are left out)."""
    names = set()
    for node in _module_nodes(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _checks_parameters(node: ast.AST) -> bool:
    """Whether ``node`` holds a call ``check_parameters(globals())`` (maybe as an attribute)."""
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            name = getattr(call.func, "attr", getattr(call.func, "id", None))
            arg = call.args[0] if len(call.args) == 1 else None
            if (name == "check_parameters" and isinstance(arg, ast.Call)
                    and getattr(arg.func, "id", None) == "globals"):  # fmt: skip
                return True
    return False


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_checked_before_the_notebook_defines_a_name(path):
    """papermill injects its cell right after the parameters cell; ``check_parameters``
    takes any public value it finds there for an injected, unknown parameter, so it must
    run before the notebook binds a public name of its own."""
    cells = _code_cells(path)
    assert "parameters" in cells[0].metadata.get("tags", []), f"{path.name}: first cell untagged"
    checks = [i for i, c in enumerate(cells) if _checks_parameters(ast.parse(c.source))]
    assert checks, f"{path.name}: no cell calls check_parameters(globals())"
    first = checks[0]
    for cell in cells[1:first]:
        public = sorted(n for n in _bound_names(ast.parse(cell.source)) if not n.startswith("_"))
        assert not public, f"{path.name}: {public} bound before check_parameters"
    for stmt in ast.parse(cells[first].source).body:
        if _checks_parameters(stmt):
            break
        assert isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("xdx_lib"), (
            f"{path.name}: only the import of check_parameters may precede it, not line "
            f"{stmt.lineno}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_annotated_parameters(path):
    first = _code_cells(path)[0]
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: first cell untagged"
    tree = ast.parse(first.source)
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign), (
            f"{path.name}: every parameter needs a type annotation (line {node.lineno})"
        )
    names = [n.target.id for n in tree.body]
    assert "profile" in names
    for line in first.source.splitlines():
        assert "#" in line, f"{path.name}: parameter without a one-line meaning: {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    for cell in _code_cells(path):
        assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_names_the_configured_repository(path):
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    sources = "\n".join(c.source for c in _code_cells(path))
    found = re.findall(r'"XDX_REPO_URL", "([^"]+)"', sources)
    assert found == [url], f"{path.name}: Colab set-up cell names {found}, _config.yml {url}"


def test_toc_lists_every_notebook():
    toc = (ROOT / "_toc.yml").read_text()
    for path in NOTEBOOKS:
        assert f"book/{path.stem}" in toc, f"{path.name} is not in _toc.yml"


def test_check_parameters_rejects_unknown_and_wrong_types():
    ns = {"__annotations__": {"epochs": int, "profile": str}, "epochs": 2, "profile": "auto"}
    assert check_parameters(ns) == {"epochs": 2, "profile": "auto"}
    with pytest.raises(ParameterError, match="unknown parameter 'epocs'"):
        check_parameters({**ns, "epocs": 3})
    with pytest.raises(ParameterError, match="epochs=1.5"):
        check_parameters({**ns, "epochs": 1.5})
    with pytest.raises(ParameterError, match="epochs=True"):
        check_parameters({**ns, "epochs": True})


def test_profile_auto_reads_environment(monkeypatch):
    monkeypatch.setenv("XDX_PROFILE", "smoke")
    assert resolve_profile("auto") == "smoke"
    monkeypatch.delenv("XDX_PROFILE")
    assert resolve_profile("auto") == "book"
    with pytest.raises(ParameterError, match="profile 'gpu' is unknown"):
        resolve_profile("gpu")


@pytest.mark.parametrize(("colab", "gpu", "expected"),
                         [(False, True, "book"), (True, True, "colab"), (True, False, "book")])
def test_profile_auto_on_colab_follows_the_runtime(monkeypatch, capsys, colab, gpu, expected):
    """On a Colab GPU ``auto`` is the published profile; on Colab's CPU it is ``book``, and
    the chapter says what the published one would cost."""
    import importlib.util

    import torch

    from xdx_lib.report import notebook

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        (object() if colab else None) if name == "google.colab" else real(name, *a)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.delenv("XDX_PROFILE", raising=False)
    notebook.default_profile.cache_clear()
    try:
        assert resolve_profile("auto") == expected
        said = capsys.readouterr().out
        assert ("No GPU in this Colab runtime" in said) == (colab and not gpu)
        assert resolve_profile("auto") == expected and capsys.readouterr().out == ""  # once
    finally:
        notebook.default_profile.cache_clear()


def test_run_config_zero_means_profile():
    cfg = run_config({"profile": "smoke", "teacher_epochs": 0, "seed": 3})
    assert cfg.teacher_epochs == 1 and cfg.seed == 3 and cfg.profile == "smoke"


def test_glued_strings_show_without_quotes():
    from IPython.core.formatters import format_display_data

    from xdx_lib.report.notebook import GluedText

    data, _ = format_display_data(GluedText("0.829"))
    assert data["text/plain"] == "0.829"  # a plain str would show as '0.829'
    assert format_display_data("0.829")[0]["text/plain"] == "'0.829'"


# ----------------------------------------------------------------- the page works offline

HTML = ROOT / "_build" / "html"
_SCRIPT_SRC = re.compile(r"""<script\b[^>]*?\bsrc\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def test_config_serves_mathjax_and_no_widget_scripts_from_the_book():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    assert "sphinx-mathjax-offline" in sphinx["extra_extensions"], (
        "_config.yml must enable sphinx-mathjax-offline, or the math loads from a CDN")
    assert not str(sphinx["config"].get("mathjax_path", "")).startswith(("http", "//"))
    assert sphinx["config"].get("nb_ipywidgets_js") == {}, "myst-nb would load CDN scripts"
    book_extra = (ROOT / "pyproject.toml").read_text()
    assert '"sphinx-mathjax-offline' in book_extra


def test_remote_script_pattern():
    page = '<script defer src="_static/mathjax/tex-chtml.js"></script>' \
           '<script src="https://cdn.example.org/x.js"></script>'
    assert _SCRIPT_SRC.findall(page) == ["_static/mathjax/tex-chtml.js",
                                         "https://cdn.example.org/x.js"]


@pytest.mark.skipif(not HTML.is_dir(), reason="the book is not built (_build/html)")
def test_built_html_loads_no_script_from_another_host():
    pages = sorted(HTML.rglob("*.html"))
    assert pages
    remote = {}
    for page in pages:
        for src in _SCRIPT_SRC.findall(page.read_text(errors="replace")):
            if src.startswith(("http://", "https://", "//")):
                remote.setdefault(src, []).append(str(page.relative_to(HTML)))
    assert not remote, f"scripts loaded from other hosts: {remote}"
    assert (HTML / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_chapter_sizes_take_the_profile_unless_a_parameter_is_given():
    from xdx_lib.core.config import PROFILES
    from xdx_lib.report.notebook import ParameterError, sizes

    assert sizes("smoke").n_show == PROFILES["smoke"].chapter["n_show"]
    assert sizes("book", n_show=0).n_show == PROFILES["book"].chapter["n_show"]
    assert sizes("book", n_show=3).n_show == 3
    with pytest.raises(ParameterError, match="no chapter size named 'n_shwo'"):
        sizes("book", n_shwo=3)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameter_lines_fit_the_page(path):
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    long = [line for line in cell.source.splitlines() if len(line) > 82]
    assert not long, f"{path.name}: parameter lines wider than the page: {long}"


def test_glue_without_myst_nb_shows_the_value_or_nothing(monkeypatch, capsys):
    """Colab has no myst-nb (only the book extra installs it): glue must not fail there."""
    import sys

    from xdx_lib.report.notebook import glue

    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb raises ImportError
    assert glue("acc", "0.829") is None
    assert capsys.readouterr().out == ""
    glue("acc", "0.829", display=True)
    assert capsys.readouterr().out.strip() == "0.829"


def test_a_wrong_papermill_parameter_fails_with_the_one_line(tmp_path):
    """papermill shows the failing cell's error: the parameter check's line, no traceback."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nb.cells = [
        nbformat.v4.new_code_cell("epochs: int = 2  # passes", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("from xdx_lib.report import notebook\n\n"
                                  "params = notebook.check_parameters(globals())"),
    ]  # fmt: skip
    nbformat.write(nb, tmp_path / "in.ipynb")
    with pytest.raises(PapermillExecutionError) as failed:
        papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"epocs": 3}, cwd=str(ROOT), progress_bar=False)
    assert failed.value.traceback == [
        "ParameterError: unknown parameter 'epocs'; this notebook takes: epochs"]
    assert "check_parameters" not in str(failed.value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_sizes_by_profile_come_from_the_library(path):
    """What a reader sees never branches on the profile: sizes are notebook.sizes'."""
    inline = re.compile(r"\bif smoke\b|\bsmoke\s*=[^=]|\bcfg\.profile\s*[!=]=")
    for cell in _code_cells(path):
        if "remove-cell" in cell.metadata.get("tags", []):
            continue
        found = inline.search(cell.source)
        assert not found, f"{path.name}, cell {cell.get('id')}: {found.group(0)!r}; use sizes()"


def _bookkeeping_tool():
    return load_script("tools/notebook_bookkeeping.py")


def test_bookkeeping_rule_by_hand():
    tool = _bookkeeping_tool()
    source = ("import torch\n"
              "cfg = notebook.run_config(params)\n"
              "maps = explain(model, x[:size.n_show])\n"
              "n_show = size.n_show\n"
              "# a comment\n"
              "for name in names:\n"
              "    glue(name, f'{v:.3f}')\n"
              "table = pd.DataFrame(rows).set_index(\n"
              "    'model')\n"
              "fig = plots.show_maps(x, maps)\n")  # fmt: skip
    marks = [b for _, b in tool.cell_lines(source)]
    assert marks == [True, True, False, True, True, True, True, True, False]
    nb = {"cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "n: int = 0  # n"},
        {"cell_type": "code", "metadata": {"tags": ["remove-cell"]},
         "source": 'import sys as _sys\nif "google.colab" in _sys.modules:\n    _x = 1'},
        {"cell_type": "code", "metadata": {"tags": ["remove-cell"]},
         "source": ("from xdx_lib.report import notebook\n\n"
                    "params = notebook.check_parameters(globals())")},
        {"cell_type": "code", "metadata": {"tags": ["remove-input"]}, "source": "glue('a', 1)"},
        {"cell_type": "code", "metadata": {"tags": ["remove-cell"]}, "source": "assert x\n"},
        {"cell_type": "code", "metadata": {}, "source": source},
    ]}  # fmt: skip
    assert tool.count(nb) == (11, 8)  # hidden cells count; the frame does not
    assert tool.count(nb, with_frame=True) == (17, 14)
    assert [kind for _, kind in tool.code_cells(nb)] == ["hidden", "hidden", "shown"]
    wrapped = "from xdx_lib import (\n    notebook,\n    plots,\n)\nfig = plots.show(x)\n"
    assert tool.cell_lines(wrapped) == [("from xdx_lib import (", True),  # one line, wrapped
                                        ("fig = plots.show(x)", False)]  # fmt: skip
    folders = ("import torch\nfrom xdx_lib import Session\nfrom xdx_lib.report import plots\n"
               "fig = plots.show(x)\n")
    assert tool.cell_lines(folders) == [("import torch", True),  # the library's imports: one
                                        ("from xdx_lib import Session", True),
                                        ("fig = plots.show(x)", False)]  # fmt: skip
    branches = "if rows:\n    glue('a', 1)\nelse:\n    glue('a', 2)\nshow(rows)\n"
    assert [b for _, b in tool.cell_lines(branches)] == [True, True, True, True, False]


def test_a_third_bookkeeping_is_the_most():
    tool = _bookkeeping_tool()
    assert not tool.over_share((90, 30)) and tool.over_share((90, 31))
    assert tool.over_share((0, 1)) and not tool.over_share((0, 0))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_bookkeeping_is_at_most_a_third_of_the_chapter(path):
    tool = _bookkeeping_tool()
    lines, kept = tool.count(json.loads(path.read_text()))
    assert not tool.over_share((lines, kept)), (
        f"{path.name}: {kept} of {lines} code lines are bookkeeping, over a third; "
        f"python tools/notebook_bookkeeping.py -v {path.relative_to(ROOT)} marks each")


#: The most non-blank lines of a hidden cell (the Colab set-up cell excepted, which
#: tests/test_colab_cell.py holds to its own size): what a chapter concludes from its
#: numbers is in the library (``xdx_lib.report.readings``), not in code the book does not show.
HIDDEN_CELL_LINES = 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_hidden_cells_are_short(path):
    for cell in _code_cells(path):
        hidden = any(t.startswith(("remove-", "hide-")) for t in cell.metadata.get("tags", []))
        if not hidden or "google.colab" in cell.source:
            continue
        lines = [line for line in cell.source.splitlines() if line.strip()]
        assert len(lines) <= HIDDEN_CELL_LINES, (
            f"{path.name}, cell {cell.get('id')}: {len(lines)} lines hidden; a reading belongs "
            "in xdx_lib.report.readings")


def _make_book_commands(profile: str) -> str:
    """What ``make book PROFILE=<profile>`` would run (``make -n``: nothing runs)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "book", f"PROFILE={profile}"], cwd=ROOT,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return done.stdout.replace("\\\n", " ")


@pytest.mark.parametrize("profile", ["colab", "paper"])
def test_gpu_profiles_build_the_book_without_a_cell_time_limit(profile):
    commands = _make_book_commands(profile)
    config = f"_build/_config.{profile}.yml"
    assert f"tools/book_config.py {config}" in commands
    build = next(line for line in commands.splitlines() if "jupyter-book build" in line)
    assert f"--config {config}" in build


@pytest.mark.parametrize("profile", ["smoke", "book"])
def test_cpu_profiles_build_the_book_with_the_cell_time_limit(profile):
    commands = _make_book_commands(profile)
    assert "--config" not in commands and "book_config.py" not in commands
    assert yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["timeout"] == 3600


def test_the_config_without_a_cell_limit_differs_only_in_the_limit(tmp_path):
    jb_config = pytest.importorskip("jupyter_book.config")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import book_config
    finally:
        sys.path.remove(str(ROOT / "tools"))
    out = tmp_path / "_config.paper.yml"
    book_config.main([str(out)])

    def sphinx_config(path):
        return jb_config.get_final_config(user_yaml=path, sourcedir=ROOT,
                                          cli_config={"latex_individualpages": False})[0]

    unlimited, limited = sphinx_config(out), sphinx_config(ROOT / "_config.yml")
    assert unlimited["nb_execution_timeout"] == -1 and limited["nb_execution_timeout"] == 3600
    unlimited.pop("nb_execution_timeout"), limited.pop("nb_execution_timeout")
    assert unlimited == limited


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_chapter_sets_its_own_cell_time_limit(path):
    # A notebook's limit would override the build's, on every profile.
    metadata = nbformat.read(path, as_version=4).metadata
    assert "execution_timeout" not in metadata.get("mystnb", {})
    assert "timeout" not in metadata.get("execution", {})
