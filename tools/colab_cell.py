"""Write the Colab set-up cell into every chapter (``book/*.ipynb``), or check it is there.

    python tools/colab_cell.py          # rewrite the cell in every notebook
    python tools/colab_cell.py --check  # exit 1 if a notebook's cell differs

The cell is the same in every chapter; this file holds its one copy (``tests/test_colab_cell.py``
checks the notebooks against it). It is the second code cell, after the parameters, so that
a reader can set ``drive = True`` there. It does nothing outside Colab (the book build and
nbval run it too). On Colab it completes a clone of the repository named in ``_config.yml``
(also one left half-made by an interrupted run), installs the library, lets torchvision
download the data and, with ``drive``, keeps the run cache on Google Drive, since a
disconnect loses the VM's disk. Any failing step stops the notebook with the step's output
and one sentence. Two environment variables let ``tests/test_reader.py`` play Colab on
another machine: ``XDX_REPO_URL`` (where to clone from) and ``XDX_CONTENT`` (Colab's disk,
``/content``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CELL = '''\
# On Colab only: clone the book's repository and install it (tools/colab_cell.py writes
# this cell). A failing step stops here and shows its output.
import os as _os
import subprocess as _subprocess
import sys as _sys

_REPOSITORY = "{url}"


def _run(*command):
    """Run one set-up step; when it fails, show its output and stop the notebook."""
    done = _subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        print(done.stdout, done.stderr, sep="\\n")
        raise SystemExit(f"Colab set-up failed: `{{' '.join(command)}}` exited with status "
                         f"{{done.returncode}}; its output is above.")


if "google.colab" in _sys.modules:
    _content = _os.environ.get("XDX_CONTENT", "/content")  # Colab's disk
    _home = f"{{_content}}/xdx"
    _ready = f"{{_home}}/.git/xdx-ready"  # written once the clone and the install worked
    if not _os.path.isfile(_ready):  # new, or half-made by an interrupted run: complete it
        _run("git", "init", "-q", _home)
        _run("git", "-C", _home, "fetch", "-q", "--depth", "1",
             _os.environ.get("XDX_REPO_URL", _REPOSITORY), "HEAD")
        _run("git", "-C", _home, "checkout", "-q", "-f", "FETCH_HEAD")
        _run(_sys.executable, "-m", "pip", "install", "-q", "-e", _home)
        open(_ready, "w").close()
    _sys.path.insert(0, _home)
    _os.chdir(f"{{_home}}/book")  # the run cache and the data go to xdx/runs and xdx/data
    _os.environ.setdefault("XDX_DOWNLOAD", "1")  # Colab has a network: torchvision downloads
    if drive:  # the parameter: keep the run cache where a disconnect does not lose it
        from google.colab import drive as _drive

        _drive.mount(f"{{_content}}/drive")
        _os.environ.setdefault("XDX_RUNS", f"{{_content}}/drive/MyDrive/xdx/runs")
'''


def cell_source(root: Path = ROOT) -> str:
    """The cell's text, naming the repository set in ``_config.yml``."""
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    return CELL.format(url=url).rstrip("\n")


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
