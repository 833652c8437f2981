"""Write the chapters as plain Jupyter shows them, for Colab, or check copies already written.

    python tools/colab_copies.py _build/jupyter_execute/book _build/colab   # write the copies
    python tools/colab_copies.py --check _build/colab                       # exit 1 on raw MyST
    python tools/colab_copies.py --check-html _build/html/book              # the built pages too
    python tools/colab_copies.py --source-notes book                        # refresh the notes

The book's text is MyST: its sentences carry numbers computed in the build (``{glue:}``
roles), links to other chapters (``{doc}``) and to the API (``{py:func}`` ...). Jupyter
Book renders them; Colab shows them as literal text, and ``glue(...)`` prints nothing there.
So, as Dive into Deep Learning publishes Colab copies of its notebooks, the book's workflow
writes a copy of every executed chapter in which each role is what the book shows: the
glued value (as that build computed it, on its profile), a link to the published page. Code
cells and their outputs are the build's. A first cell says where the copy comes from and
that running it recomputes every number. The chapters' own sources keep one markdown cell,
tagged ``source-note`` and hidden in the book, that sends a reader who opened a source in
plain Jupyter to the published page and to its Colab copy; copies leave it out.

An unknown role or directive is an error, not a copy with raw syntax in it, and ``--check``
renders each copy's markdown as plain Jupyter does (markdown-it, CommonMark) and fails on
anything left of MyST (``tests/test_colab_copies.py``; ``make test`` runs it on the smoke
build).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: ``{glue:}`key``` and ``{glue:text}`key:format```: a value computed in the build.
GLUE = re.compile(r"\{glue(?::(?:text|any|md)?)?\}`([^`:]+)(?::([^`]+))?`")
#: ``{doc}`target``` and ``{doc}`text <target>```: another page of the book.
DOC = re.compile(r"\{doc\}`(?:([^`<]*?)\s*<([^>`]+)>|([^`]+))`")
#: ``{py:func}`~xdx_lib.x.y```: an entry of the API chapter.
PY = re.compile(r"\{py:(?:func|class|mod|data|meth|attr|obj)\}`(~?)([\w.]+)`")
#: ``{cite:p}`a,b``` (also ``{cite}``) and ``{cite:t}`a```: papers of ``references.bib``.
CITE = re.compile(r"\{cite(?::(p|t|ps|ts))?\}`([^`]+)`")
#: ``{term}`name``` and ``{term}`text <name>```: an entry of the glossary.
TERM = re.compile(r"\{term\}`(?:([^`<]*?)\s*<([^>`]+)>|([^`]+))`")
#: What is left of MyST in rendered HTML: a role before code, a backtick directive's fence.
RAW = re.compile(r"\{[a-z][\w:-]*\}(?:<code>|`)|<code class=\"language-\{")
#: What is left of MyST in a markdown line: a target label, a colon directive's fence.
RAW_LINES = re.compile(r"^[ \t]*(?:\([\w-]+\)=|:::+\{[\w-]+\}).*$", re.M)


#: The tag of a source chapter's note on where to read it whole; copies drop that cell.
SOURCE_NOTE = "source-note"


class CopyError(ValueError):
    """A chapter cannot be copied faithfully (an unknown role, a value not glued)."""


def published_site(root: Path = ROOT) -> str:
    """The published book's address, from the repository named in ``_config.yml``
    (GitHub Pages: ``https://<owner>.github.io/<name>``)."""
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    owner, name = url.rstrip("/").split("/")[-2:]
    return f"https://{owner}.github.io/{name}"


def colab_copy_url(chapter: str, root: Path = ROOT) -> str:
    """Where Colab opens ``chapter``'s copy: the branch ``_config.yml`` names for it."""
    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    owner, name = repo["url"].rstrip("/").split("/")[-2:]
    return (f"https://colab.research.google.com/github/{owner}/{name}/blob/"
            f"{repo['branch']}/book/{chapter}.ipynb")  # fmt: skip


def source_note(chapter: str, root: Path = ROOT) -> str:
    """The note a source chapter carries for a reader who opened it in plain Jupyter."""
    return (f"*You are reading this chapter's source. Its sentences take their numbers from "
            f"the book's build, and plain Jupyter shows the markup instead: read it in the "
            f"[published book]({published_site(root)}/book/{chapter}.html), or open its "
            f"[Colab copy]({colab_copy_url(chapter, root)}), where every sentence is whole. "
            f"The code cells run the same either way.*")  # fmt: skip


def _is_note(cell: dict) -> bool:
    return SOURCE_NOTE in cell.get("metadata", {}).get("tags", [])


def source_notes(book: Path, write: bool = False, root: Path = ROOT) -> list[str]:
    """The source chapters of ``book`` whose note is missing or stale; with ``write``, the
    note is put right (as the second cell, after the title) and the file rewritten."""
    stale = []
    for path in sorted(book.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        notes = [c for c in nb["cells"] if _is_note(c)]
        expected = source_note(path.stem, root)
        if len(notes) == 1 and _text(notes[0]["source"]) == expected:
            continue
        stale.append(path.name)
        if write:
            cells = [c for c in nb["cells"] if not _is_note(c)]
            cells.insert(1, {"cell_type": "markdown", "id": f"{SOURCE_NOTE}-{path.stem}"[:64],
                             "metadata": {"tags": ["remove-cell", SOURCE_NOTE]},
                             "source": expected})  # fmt: skip
            nb["cells"] = cells
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return stale


def citations(root: Path = ROOT) -> dict[str, tuple[str, str]]:
    """``{key: (authors, year)}`` of the bibliography ``_config.yml`` names, as the book
    cites them in author-year style: "Hinton et al.", "Lundberg & Lee"."""
    from pybtex.database import parse_file

    config = yaml.safe_load((root / "_config.yml").read_text())
    out = {}
    for bib in config.get("bibtex_bibfiles", []):
        for key, entry in parse_file(str(root / bib)).entries.items():
            names = [re.sub(r"\\[a-zA-Z]+|[{}\\\"']", "", " ".join(p.last_names))
                     for p in entry.persons.get("author", [])]  # fmt: skip
            authors = (names[0] if len(names) == 1 else " & ".join(names) if len(names) == 2
                       else f"{names[0]} et al.")  # fmt: skip
            out[key] = (authors, entry.fields.get("year", "n.d."))
    return out


def glued_values(executed: Path) -> dict[str, str]:
    """``{key: text}`` of what a chapter glued, from the ``<chapter>.glue.json`` myst-nb
    writes beside the executed notebook (plain text; a glued figure is named, not drawn)."""
    path = executed.with_suffix(".glue.json")
    if not path.is_file():
        return {}
    values = {}
    for key, output in json.loads(path.read_text()).items():
        data = output.get("data", {})
        text = data.get("text/plain", "")
        values[key] = "(a figure: see the book)" if "image/png" in data else str(text)
    return values


def _glue(match: re.Match, values: dict[str, str]) -> str:
    key, fmt = match.group(1), match.group(2)
    if key not in values:
        raise CopyError(f"{{glue:}}`{key}` is not glued by the chapter; glue it or drop it")
    value = values[key]
    if fmt:
        try:
            value = format(float(value), fmt)
        except ValueError:
            pass
    return value


def _doc(match: re.Match, site: str) -> str:
    text, target = (match.group(1), match.group(2)) if match.group(2) else (None, match.group(3))
    page = target.strip().removeprefix("/").removeprefix("book/")
    return f"[{text or page}]({site}/book/{page}.html)"


def _py(match: re.Match, site: str) -> str:
    short, name = match.group(1), match.group(2)
    shown = name.rsplit(".", 1)[-1] if short else name
    return f"[`{shown}`]({site}/book/api.html#{name})"


def _cite(match: re.Match, papers: dict[str, tuple[str, str]], site: str) -> str:
    keys = [k.strip() for k in match.group(2).split(",")]
    unknown = [k for k in keys if k not in papers]
    if unknown:
        raise CopyError(f"{{cite}}`{unknown[0]}` is not in the bibliography; add it to it")
    if match.group(1) in ("t", "ts"):
        shown = "; ".join(f"{papers[k][0]} ({papers[k][1]})" for k in keys)
        return f"[{shown}]({site}/book/references.html)"
    shown = "; ".join(f"{papers[k][0]}, {papers[k][1]}" for k in keys)
    return f"([{shown}]({site}/book/references.html))"


def _term(match: re.Match, site: str) -> str:
    text, name = (match.group(1), match.group(2)) if match.group(2) else (None, match.group(3))
    anchor = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
    return f"[{text or name}]({site}/book/glossary.html#term-{anchor})"


def plain_markdown(text: str, values: dict[str, str], site: str,
                   papers: dict[str, tuple[str, str]] | None = None) -> str:  # fmt: skip
    """``text`` with every MyST role the chapters use written as plain markdown
    (``papers``: :func:`citations`, read when None)."""
    if CITE.search(text):
        papers = citations() if papers is None else papers
        text = CITE.sub(lambda m: _cite(m, papers, site), text)
    text = TERM.sub(lambda m: _term(m, site), text)
    text = GLUE.sub(lambda m: _glue(m, values), text)
    text = DOC.sub(lambda m: _doc(m, site), text)
    text = PY.sub(lambda m: _py(m, site), text)
    left = unrendered(text)
    if left:
        raise CopyError(f"MyST that a copy cannot show: {left[0]!r}; teach tools/colab_copies.py")
    return text


def unrendered(markdown: str) -> list[str]:
    """What plain Jupyter would show of MyST after rendering ``markdown`` (CommonMark, as
    markdown-it renders it): roles, directive fences and labels, each as found."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").render(markdown)
    return [m.group(0) for m in RAW.finditer(html)] + RAW_LINES.findall(markdown)


def header_cell(chapter: str, site: str, note: str) -> dict:
    """The copy's first cell: where it comes from, and what running it does."""
    text = (f"*This is the Colab copy of the chapter [{chapter}]({site}/book/{chapter}.html) "
            f"of the published book. {note} The numbers in the text and the outputs below are "
            "that build's; running the cells computes them again on the profile you choose in "
            "the parameters cell.*")  # fmt: skip
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _text(source: str | list[str]) -> str:
    """A cell's source as one string (a notebook file may store it as a list of lines)."""
    return "".join(source) if isinstance(source, list) else source


def plain_notebook(executed: Path, site: str, note: str) -> dict:
    """The executed chapter ``executed`` as a notebook plain Jupyter shows whole."""
    nb = json.loads(executed.read_text())
    values, papers = glued_values(executed), citations()
    nb["cells"] = [c for c in nb["cells"] if not _is_note(c)]
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            source = _text(cell["source"])
            try:
                cell["source"] = plain_markdown(source, values, site, papers)
            except CopyError as e:
                raise CopyError(f"{executed.name}: {e}") from None
    nb["cells"].insert(0, header_cell(executed.stem, site, note))
    return nb


def write_copies(executed_dir: Path, out: Path, note: str = "") -> list[Path]:
    """A plain copy of every executed chapter of ``executed_dir`` in ``out``."""
    site = published_site()
    chapters = sorted(executed_dir.glob("*.ipynb"))
    if not chapters:
        raise CopyError(f"no executed chapters in {executed_dir}; build the book first")
    copies = [(out / c.name, plain_notebook(c, site, note)) for c in chapters]
    out.mkdir(parents=True, exist_ok=True)
    for path, nb in copies:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return [path for path, _ in copies]


def sentences(markdown: str) -> list[str]:
    """The sentences of a markdown text: paragraphs and list items, split after ``.``,
    ``!`` or ``?`` where the next sentence begins."""
    blocks = re.split(r"\n\s*\n|^\s*(?:[-*]|\d+\.)\s+", markdown, flags=re.M)
    return [s.strip() for b in blocks for s in re.split(r"(?<=[.!?])\s+(?=[A-Z*(\[`])", b)
            if s.strip()]  # fmt: skip


def long_generated_sentences(executed_dir: Path, limit: int) -> list[str]:
    """``"<chapter>: <n> words: <sentence>"`` for every sentence of the book's text over
    ``limit`` words that a reading wrote (a glued value of five words or more is in it):
    the generated sentences must read as well as the written ones."""
    site, papers, long = published_site(), citations(), []
    for executed in sorted(executed_dir.glob("*.ipynb")):
        values = glued_values(executed)
        for cell in json.loads(executed.read_text())["cells"]:
            source = _text(cell["source"])
            if cell["cell_type"] != "markdown" or not GLUE.search(source):
                continue
            glued = [values[m.group(1)] for m in GLUE.finditer(source)
                     if len(values.get(m.group(1), "").split()) >= 5]  # fmt: skip
            for sentence in sentences(plain_markdown(source, values, site, papers)):
                words = len(re.sub(r"\]\([^)]*\)", "]", sentence).split())
                if words > limit and any(g in sentence for g in glued):
                    long.append(f"{executed.stem}: {words} words: {sentence}")
    return long


#: A role of the book's text left unrendered in a built page, tags stripped.
RAW_ROLE = re.compile(r"\{(?:glue|doc|cite|term|py|ref|numref)(?::[\w-]*)?\}")


def check_html(folder: Path) -> list[str]:
    """``"<page>: <role>"`` for every role the HTML build left as text, in the book's pages
    (the API page is left out: its docstrings name roles on purpose)."""
    import html as html_lib

    problems = []
    for page in sorted(folder.glob("*.html")):
        if page.stem == "api":
            continue
        text = html_lib.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        problems += [f"{page.name}: {m.group(0)}" for m in RAW_ROLE.finditer(text)]
    return problems


def check_copies(folder: Path) -> list[str]:
    """``"<chapter>: <what>"`` for everything of MyST left in the copies' markdown."""
    problems = []
    for path in sorted(folder.glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                source = _text(cell["source"])
                problems += [f"{path.name}: {raw}" for raw in unrendered(source)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="EXECUTED OUT to write; FOLDER with --check")
    parser.add_argument("--check", action="store_true", help="check copies, write nothing")
    parser.add_argument("--check-html", action="store_true",
                        help="check a folder of built pages for roles left as text")
    parser.add_argument("--source-notes", action="store_true",
                        help="write each source chapter's note on where to read it whole")
    parser.add_argument("--note", default="", help="a sentence on the build (commit, profile)")
    parser.add_argument("--max-words", type=int, default=0,
                        help="also fail on a generated sentence longer than this (0: no check)")
    args = parser.parse_args(argv)
    try:
        if args.source_notes:
            for name in source_notes(Path(args.folders[0]), write=True):
                print(f"source note written in {name}")
            return 0
        if args.check_html:
            problems = check_html(Path(args.folders[0]))
            for p in problems:
                print(f"unrendered role in {p}", file=sys.stderr)
            return 1 if problems else 0
        if args.check:
            problems = check_copies(Path(args.folders[0]))
            for p in problems:
                print(f"unrendered MyST in {p}", file=sys.stderr)
            return 1 if problems else 0
        if len(args.folders) != 2:
            parser.error("give the executed chapters' folder and the folder to write to")
        for path in write_copies(Path(args.folders[0]), Path(args.folders[1]), args.note):
            print(path)
        if args.max_words:
            long = long_generated_sentences(Path(args.folders[0]), args.max_words)
            for sentence in long:
                print(f"a generated sentence over {args.max_words} words in {sentence}",
                      file=sys.stderr)  # fmt: skip
            return 1 if long else 0
    except CopyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
