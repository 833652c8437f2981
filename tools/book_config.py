"""Write a copy of the book's ``_config.yml`` without the per-cell time limit.

    python tools/book_config.py _build/_config.paper.yml

``_config.yml`` stops any cell that runs longer than ``execute.timeout`` (3600 s): on the
CPU profiles (smoke, book) a cell that takes that long is stuck, and the limit ends the
build instead of letting it hang. On a GPU profile (colab, paper) a chapter's one
experiment cell runs for as long as its experiment needs, so ``make book PROFILE=paper``
builds with this copy (``jupyter-book build --config``, which reads the file given *instead*
of ``_config.yml``). Everything else is kept as it is. ``-1`` is nbclient's "no limit";
the chapters set no limit of their own (a notebook's ``mystnb.execution_timeout`` would
override the build's, so ``tests/test_book.py`` refuses one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: nbclient's per-cell timeout that disables the limit.
NO_LIMIT = -1


def config_without_cell_limit(source: Path = ROOT / "_config.yml") -> dict:
    """The book's config with ``execute.timeout`` set to :data:`NO_LIMIT`."""
    config = yaml.safe_load(source.read_text())
    config.setdefault("execute", {})["timeout"] = NO_LIMIT
    return config


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="where to write the config (a git-ignored place)")
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_without_cell_limit(), sort_keys=False)
    args.out.write_text("# Written by tools/book_config.py from _config.yml; do not edit.\n" + text)


if __name__ == "__main__":
    main()
