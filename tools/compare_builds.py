"""Compare the numbers of two executed builds of the book, chapter by chapter.

    python tools/compare_builds.py BEFORE AFTER   # each a build's _build/jupyter_execute/book
    python tools/compare_builds.py --moved BEFORE AFTER   # the chapters were reorganised

Every output of every code cell (printed lines, tables, sentences) and every glued value is
compared. What is not a number of the book is normalised first (pandas Styler ids, object
addresses). Tables are compared cell by cell, and each differing cell is printed with its
row, its column and whether the column is a timing column (seconds, images/s, ...), which
differs between any two runs. Exits 1 when anything but a timing column or a glued speed
differs: a restructuring that should leave the book's numbers alone passes with 0.

With ``--moved`` (chapters that gained cells, or cells moved between chapters), outputs are
matched by content instead of position: every output of the before build must appear in
some chapter after (a table may differ in its timing columns only), and every glued value
must keep its numbers (the words around them may change), wherever the key is glued now.
What the after build adds is not compared.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

#: Column headers and glue names of timings, which differ between any two runs.
TIMING = re.compile(r"(\bs\b|second|images/s|\bms\b|minute|time|latency|speed)", re.I)
_CELL = re.compile(r'<td id="T_x_row(\d+)_col(\d+)"[^>]*>(.*?)</td>', re.S)


def _norm(text: str) -> str:
    return re.sub(r" at 0x[0-9a-f]+", " at 0x", re.sub(r"T_[0-9a-f]{5}", "T_x", text))


def outputs(nb: dict) -> list[tuple[int, str, str]]:
    """``(cell index, mime type, normalised text)`` of each code cell's outputs."""
    out = []
    for i, cell in enumerate(nb["cells"]):
        for o in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            if o["output_type"] == "stream":
                out.append((i, "stream", _norm("".join(o["text"]))))
            elif o["output_type"] == "error":
                out.append((i, "error", o.get("ename", "")))
            else:
                mime = next((m for m in ("text/html", "text/plain", "text/markdown")
                             if m in o.get("data", {})), None)  # fmt: skip
                if mime:
                    v = o["data"][mime]
                    out.append((i, mime, _norm("".join(v) if isinstance(v, list) else v)))
    return out


def table_cells(html: str) -> dict[tuple[str, str], str]:
    """A Styler table's cells by ``(row header, column headers)``."""
    heads: dict[int, str] = {}
    for m in re.finditer(r'<th id="T_x_level\d+_col(\d+)"[^>]*>(.*?)</th>', html, re.S):
        heads[int(m.group(1))] = heads.get(int(m.group(1)), "") + "|" + m.group(2).strip()
    rows = {int(m.group(1)): m.group(2).strip()
            for m in re.finditer(r'<th id="T_x_level0_row(\d+)"[^>]*>(.*?)</th>', html, re.S)}
    return {(rows.get(int(r), r), heads.get(int(c), c)): v.strip()
            for r, c, v in _CELL.findall(html)}  # fmt: skip


def compare_output(a: tuple, b: tuple) -> list[tuple[bool, str]]:
    """Each difference between two outputs: ``(is a timing, what differs)``."""
    if a == b:
        return []
    if a[1] == "text/html" and "<td id=" in a[2]:
        ca, cb = table_cells(a[2]), table_cells(b[2])
        diffs = [(bool(TIMING.search(k[1])), f"cell {a[0]} {k}: {v} -> {cb.get(k)}")
                 for k, v in ca.items() if v != cb.get(k)]  # fmt: skip
        if _CELL.sub("", a[2]) != _CELL.sub("", b[2]) or set(ca) != set(cb):
            diffs.append((False, f"cell {a[0]}: the table's rows or columns differ"))
        return diffs
    lines = difflib.unified_diff(a[2].splitlines(), b[2].splitlines(), lineterm="", n=0)
    return [(False, f"cell {a[0]} {a[1]}: {line[:200]}") for line in lines
            if not line.startswith(("---", "+++", "@@"))]


def compare_glue(a: dict, b: dict) -> list[tuple[bool, str]]:
    """Each glued value that differs: ``(is a timing, what differs)``."""
    def text(g: dict, k: str):
        return g.get(k, {}).get("data", {}).get("text/plain")

    return [(bool(TIMING.search(k)), f"glue {k}: {text(a, k)!r} -> {text(b, k)!r}")
            for k in sorted(set(a) | set(b)) if text(a, k) != text(b, k)]  # fmt: skip


def compare(before: Path, after: Path) -> list[tuple[bool, str]]:
    """Every difference between two folders of executed chapters (and their glue files)."""
    diffs = []
    for pa in sorted(before.glob("*.ipynb")):
        pb = after / pa.name
        if not pb.exists():
            diffs.append((False, f"{pa.name}: missing after"))
            continue
        a, b = outputs(json.loads(pa.read_text())), outputs(json.loads(pb.read_text()))
        if len(a) != len(b):
            diffs.append((False, f"{pa.name}: {len(a)} outputs before, {len(b)} after"))
        diffs += [(t, f"{pa.stem}: {d}") for x, y in zip(a, b) for t, d in compare_output(x, y)]
        ga, gb = pa.with_suffix(".glue.json"), pb.with_suffix(".glue.json")
        if ga.exists() and gb.exists():
            diffs += [(t, f"{pa.stem}: {d}") for t, d in
                      compare_glue(json.loads(ga.read_text()), json.loads(gb.read_text()))]
    return diffs


NUMBER = re.compile(r"[-+\u2212]?\d[\d,]*(?:\.\d+)?")


def _numbers(text: str | None) -> list[str]:
    return NUMBER.findall(text or "")


def _all_outputs(folder: Path) -> list[tuple[str, tuple]]:
    return [(p.stem, o) for p in sorted(folder.glob("*.ipynb"))
            for o in outputs(json.loads(p.read_text()))]  # fmt: skip


def _all_glue(folder: Path) -> dict[tuple[str, str], str | None]:
    glued = {}
    for g in sorted(folder.glob("*.glue.json")):
        for k, v in json.loads(g.read_text()).items():
            glued[(g.name.removesuffix(".glue.json"), k)] = v.get("data", {}).get("text/plain")
    return glued


def _find_table(o: tuple, candidates: list[tuple]) -> list[tuple[bool, str]] | None:
    """The differences from the after table with the same rows and columns, or None."""
    cells = set(table_cells(o[2]))
    for c in candidates:
        if c[1] == "text/html" and "<td id=" in c[2] and set(table_cells(c[2])) == cells:
            return compare_output(o, c)
    return None


def compare_moved(before: Path, after: Path) -> list[tuple[bool, str]]:
    """Every output and glued number of ``before`` not found in ``after``, by content."""
    later = _all_outputs(after)
    shown = {(o[1], o[2]) for _, o in later}
    diffs: list[tuple[bool, str]] = []
    for chapter, o in _all_outputs(before):
        if (o[1], o[2]) in shown:
            continue
        table = _find_table(o, [x for _, x in later]) if "<td id=" in o[2] else None
        if table is None:
            diffs.append((False, f"{chapter}: cell {o[0]} {o[1]} not found after: {o[2][:160]!r}"))
        else:
            diffs += [(t, f"{chapter}: {d}") for t, d in table]
    glue_after = _all_glue(after)
    by_key: dict[str, list[str | None]] = {}
    for (_, k), v in glue_after.items():
        by_key.setdefault(k, []).append(v)
    for (chapter, k), v in _all_glue(before).items():
        now = [glue_after[(chapter, k)]] if (chapter, k) in glue_after else by_key.get(k, [])
        if not now:
            diffs.append((False, f"{chapter}: glue {k} not glued after"))
        elif all(_numbers(n) != _numbers(v) for n in now):
            diffs.append((bool(TIMING.search(k)), f"{chapter}: glue {k}: {v!r} -> {now[0]!r}"))
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--moved", action="store_true",
                        help="match outputs by content: chapters gained or moved cells")
    args = parser.parse_args(argv)
    diffs = (compare_moved if args.moved else compare)(args.before, args.after)
    for timing, what in diffs:
        print(f"{'timing' if timing else 'NUMBER'}  {what}")
    numbers = sum(not t for t, _ in diffs)
    print(f"{len(diffs) - numbers} timing differences; {numbers} other differences")
    return 1 if numbers else 0


if __name__ == "__main__":
    sys.exit(main())
