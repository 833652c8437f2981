"""Write the Colab set-up cell into every chapter (``book/*.ipynb``), or check it is there.

    python tools/colab_cell.py          # rewrite the cell in every notebook
    python tools/colab_cell.py --check  # exit 1 if a notebook's cell differs

The cell is the same in every chapter; this file holds its one copy (``tests/test_colab_cell.py``
checks the notebooks against it). It is the second code cell, after the parameters, so that
a reader can set ``drive = True`` there. It does nothing outside Colab (the book build and
nbval run it too). On Colab it completes a clone of the repository named in ``_config.yml``
(also one left half-made by an interrupted run), then hands over to the clone's
``tools/colab_setup.py``, which installs the library and sets the chapter up. Any failing
step stops the notebook with the step's output and one sentence. Two environment variables
let ``tests/test_reader.py`` play Colab on another machine: ``XDX_REPO_URL`` (where to
clone from) and ``XDX_CONTENT`` (Colab's disk, ``/content``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: The cell, with ``{url}`` for the repository's URL. Only the fetch is here: nothing of the
#: project is on Colab's disk before it, and the rest is tested code in the clone.
CELL = """\
# On Colab only: fetch the book's repository, then its tools/colab_setup.py installs it and
# sets the chapter up (tools/colab_cell.py writes this cell). A failing step stops here.
import os as _os, runpy as _runpy, subprocess as _sp, sys as _sys  # noqa: E401, I001

if "google.colab" in _sys.modules:
    _home = _os.environ.get("XDX_CONTENT", "/content") + "/xdx"  # on Colab's disk
    _url = _os.environ.get("XDX_REPO_URL", "{url}")
    _fetch = [["init", "-q", _home], ["-C", _home, "fetch", "-q", "--depth", "1", _url, "HEAD"],
              ["-C", _home, "checkout", "-q", "-f", "FETCH_HEAD"]]
    for _git in [] if _os.path.isfile(f"{_home}/.git/xdx-ready") else _fetch:  # new or half-made
        if (_done := _sp.run(["git", *_git], capture_output=True, text=True)).returncode:
            raise SystemExit(f"Colab set-up failed: `git {' '.join(_git)}` exited with status "
                             f"{_done.returncode}:\\n{_done.stdout}{_done.stderr}")
    _runpy.run_path(f"{_home}/tools/colab_setup.py")["set_up"](_home, drive, profile)
"""


def cell_source(root: Path = ROOT) -> str:
    """The cell's text, naming the repository set in ``_config.yml``."""
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    return CELL.replace("{url}", url).rstrip("\n")


def _lines(text: str) -> list[str]:
    """A cell source as a notebook file stores it: lines that keep their newline."""
    return text.splitlines(keepends=True)


def colab_cells(nb: dict) -> list[dict]:
    """The notebook's Colab set-up cells (one, in a well-formed chapter)."""
    return [c for c in nb["cells"] if c["cell_type"] == "code"
            and "google.colab" in "".join(c["source"])]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check``, compare) the cell of every chapter.

    The notebooks are edited as JSON, not through nbformat, so that nothing but the cell
    changes in the file (nbformat would sort every cell's keys).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if any differ")
    args = parser.parse_args(argv)
    source = _lines(cell_source())
    stale = []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        cells = colab_cells(nb)
        if len(cells) != 1:
            print(f"error: {path.name} has {len(cells)} Colab set-up cells, not 1",
                  file=sys.stderr)  # fmt: skip
            return 2
        if cells[0]["source"] != source:
            stale.append(path.name)
            if not args.check:
                cells[0]["source"] = source
                path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    if args.check and stale:
        print(f"Colab cell out of date in {', '.join(stale)}; run python tools/colab_cell.py",
              file=sys.stderr)  # fmt: skip
        return 1
    done = "rewrote" if stale and not args.check else "up to date:"
    print(f"Colab cell {done} {', '.join(stale) or 'in every chapter'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
