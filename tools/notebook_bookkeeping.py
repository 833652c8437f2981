"""How much of each chapter's code is bookkeeping rather than the chapter's story.

Counted: the non-blank, non-comment lines of the chapter's code cells, those a reader sees
and those the book hides (tagged ``remove-cell``, ``remove-input``, ...) alike. Left out is
the frame every chapter shares, which tests of their own check: the ``parameters`` cell
(the chapter's knobs, which papermill documents), the Colab set-up cell
(``tools/colab_cell.py`` writes it) and the parameter check (``check_parameters``);
``--with-frame`` counts them too, as bookkeeping. A chapter's bookkeeping may be at most a
third of its lines (:data:`MAX_SHARE`): the tool exits with status 1 when one is over, and
``tests/test_book.py`` holds every chapter to it.

The rule works on statements (``ast``); every line of a bookkeeping statement counts, but
an import counts as one line however the formatter wraps its names, and a cell's imports
from the library count as one line however many of its folders they name (the library's
layout is not the chapter's bookkeeping). A simple statement is
bookkeeping when it

1. imports;
2. calls a glue function (``glue``, ``glue_many``, ``glue_column``, ...) or sets the
   chapter up: ``run_config``, ``describe_run``, ``sizes``, ``check_parameters``,
   ``experiment_config_path``;
3. reads the profile or copies a size: it names ``smoke`` or ``cfg.profile``, or passes or
   assigns ``size.<name>`` under the same name (``cae_epochs=size.cae_epochs``,
   ``n_show = size.n_show``);
4. is table plumbing: it calls ``rename``, ``rename_axis``, ``reindex``, ``set_index``,
   ``reset_index``, ``astype``, ``format`` (``style.format``, ``"{:.3f}".format``),
   ``DataFrame``, ``from_dict`` or ``concat``, assigns ``.columns`` or ``.index.name``, or
   assigns a dict literal of strings to strings (display names of columns).

A compound statement's header line (``for``, ``if``, ``with``, ``def``) is bookkeeping when
every statement of its body is. Everything else is the story, the hidden checks that nbval
runs included: they state what the chapter's text relies on. The numbers and readings the
text quotes are glued, so bookkeeping; the rules that pick a reading's words are in
``xdx_lib.report.readings``.

Usage::

    python tools/notebook_bookkeeping.py                  # the chapters as they are now
    python tools/notebook_bookkeeping.py --before HEAD~1  # beside a git revision's
    python tools/notebook_bookkeeping.py -v book/kd.ipynb # each line, marked B or s
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Tags that hide a cell's code in the book (Jupyter Book's ``remove-*`` and ``hide-*``).
HIDDEN_TAG_PREFIXES = ("remove-", "hide-")
SETUP_CALLS = {"run_config", "describe_run", "sizes", "check_parameters",
               "experiment_config_path"}  # fmt: skip
TABLE_CALLS = {"rename", "rename_axis", "reindex", "set_index", "reset_index", "astype",
               "format", "DataFrame", "from_dict", "concat"}  # fmt: skip
PROFILE_NAMES = {"smoke"}
#: The most of a chapter's code lines that may be bookkeeping.
MAX_SHARE = Fraction(1, 3)


def _size_attr(node: ast.AST) -> str | None:
    """``name`` for ``size.name``, else None."""
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "size"):  # fmt: skip
        return node.attr
    return None


def _str_dict(node: ast.AST) -> bool:
    """A dict literal whose keys and values are all string constants."""
    return isinstance(node, ast.Dict) and bool(node.keys) and all(
        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys + node.values)


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def _is_bookkeeping(stmt: ast.stmt) -> bool:
    """Rules 1-4 of the module's docstring for one simple statement."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if stmt.value is not None and _str_dict(stmt.value):
            return True
        names = set()
        for t in targets:
            if isinstance(t, ast.Attribute) and (
                t.attr == "columns"
                or (t.attr == "name" and isinstance(t.value, ast.Attribute)
                    and t.value.attr == "index")):  # fmt: skip
                return True
            names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        if names & {_size_attr(n) for n in ast.walk(stmt.value)}:
            return True
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if "glue" in name or name in SETUP_CALLS or name in TABLE_CALLS:
                return True
            if any(k.arg and k.arg == _size_attr(k.value) for k in node.keywords):
                return True
        elif isinstance(node, ast.Name) and node.id in PROFILE_NAMES:
            return True
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "cfg" and node.attr == "profile"):  # fmt: skip
            return True
    return False


def _classify(body: list[ast.stmt], marks: dict[int, bool]) -> bool:
    """Mark the lines of ``body``'s statements; return whether all of them are bookkeeping."""
    every = True
    for stmt in body:
        inner = [getattr(stmt, k) for k in ("body", "orelse", "finalbody")
                 if getattr(stmt, k, None)]  # fmt: skip
        inner += [h.body for h in getattr(stmt, "handlers", [])]
        if inner:  # the body first; then its header, else: and decorator lines
            keep = all([_classify(b, marks) for b in inner])
            first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
            for line in range(first, stmt.end_lineno + 1):
                marks.setdefault(line, keep)
        else:
            keep = _is_bookkeeping(stmt)
            for line in range(stmt.lineno, stmt.end_lineno + 1):
                marks[line] = keep
        every &= keep
    return every


def _imports_library(stmt: ast.stmt) -> bool:
    """Whether ``stmt`` imports from ``xdx_lib`` (the package or one of its folders)."""
    if isinstance(stmt, ast.ImportFrom):
        return (stmt.module or "").split(".")[0] == "xdx_lib"
    if isinstance(stmt, ast.Import):
        return all(a.name.split(".")[0] == "xdx_lib" for a in stmt.names)
    return False


def _python_lines(source: str) -> list[str]:
    """A cell's lines, with IPython magics and shell escapes blanked: they are not Python,
    and neither story nor counted."""
    return ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]


def cell_lines(source: str) -> list[tuple[str, bool]]:
    """The counted lines of a cell's source, each with whether it is bookkeeping."""
    lines = _python_lines(source)
    tree = ast.parse("\n".join(lines))
    marks: dict[int, bool] = {}
    _classify(tree.body, marks)
    wrapped = {line for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               for line in range(node.lineno + 1, node.end_lineno + 1)}  # fmt: skip
    wrapped |= set(sorted(n.lineno for n in tree.body if _imports_library(n))[1:])
    out = []
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if not stripped or stripped.startswith("#") or number in wrapped:
            continue
        out.append((text, marks.get(number, False)))
    return out


def _checks_parameters(source: str) -> bool:
    """Whether a cell is the parameter check: imports, then ``check_parameters(...)``."""
    *imports, last = ast.parse("\n".join(_python_lines(source))).body or [None]
    calls = [n for n in ast.walk(last) if isinstance(n, ast.Call)] if last else []
    only_imports = all(isinstance(stmt, (ast.Import, ast.ImportFrom)) for stmt in imports)
    return only_imports and any(_call_name(c) == "check_parameters" for c in calls)


def code_cells(notebook: dict, with_frame: bool = False) -> list[tuple[str, str]]:
    """``(source, kind)`` of each counted code cell, in order: ``"shown"`` or ``"hidden"``,
    and with ``with_frame`` also ``"frame"`` (the parameters, the Colab set-up and the
    parameter check)."""
    out = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        source = "".join(cell["source"])
        if "parameters" in tags or "google.colab" in source or _checks_parameters(source):
            if with_frame:
                out.append((source, "frame"))
        else:
            hidden = any(t.startswith(HIDDEN_TAG_PREFIXES) for t in tags)
            out.append((source, "hidden" if hidden else "shown"))
    return out


def count(notebook: dict, with_frame: bool = False, verbose: bool = False) -> tuple[int, int]:
    """``(code lines, bookkeeping lines)`` of one notebook."""
    total = kept = 0
    for source, kind in code_cells(notebook, with_frame):
        for text, bookkeeping in cell_lines(source):
            bookkeeping = bookkeeping or kind == "frame"
            total += 1
            kept += bookkeeping
            if verbose:
                print(f"{'B' if bookkeeping else 's'} {text}")
        if verbose:
            print(f"{'-' * 30} {kind}")
    return total, kept


def over_share(counts: tuple[int, int]) -> bool:
    """Whether ``(lines, bookkeeping lines)`` holds more bookkeeping than :data:`MAX_SHARE`
    (exactly, in fractions: 30 of 90 lines pass)."""
    total, kept = counts
    return kept > total * MAX_SHARE


def _at_revision(path: Path, rev: str) -> dict | None:
    rel = path.resolve().relative_to(ROOT).as_posix()
    shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{rel}"],
                           capture_output=True, text=True)  # fmt: skip
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def _cell(counts: tuple[int, int] | None) -> str:
    if counts is None:
        return f"{'-':>18}"
    total, kept = counts
    share = kept / total if total else 0.0
    return f"{kept:>5} / {total:<4} {share:>5.0%}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path,
                   help="notebooks to count (default: book/*.ipynb)")  # fmt: skip
    p.add_argument("--before", metavar="REV", help="also count the notebooks at git revision REV")
    p.add_argument("--with-frame", action="store_true",
                   help="count the parameters, Colab set-up and parameter check cells too, "
                        "as bookkeeping")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="print each line, marked")
    args = p.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    head = f"{'chapter':<12}"
    if args.before:
        head += f"{'before: B / lines':>18}  "
    print(head + f"{'now: B / lines':>18}")
    over = []
    for path in paths:
        row = f"{path.stem:<12}"
        if args.before:
            old = _at_revision(path, args.before)
            row += _cell(old and count(old, args.with_frame)) + "  "
        notebook = json.loads(path.read_text())
        now = count(notebook, args.with_frame, args.verbose)
        print(row + _cell(now))
        if over_share(count(notebook) if args.with_frame else now):  # the rule leaves out the frame
            over.append(path.stem)
    if over:
        print(f"over a third bookkeeping: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
