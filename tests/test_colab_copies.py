"""The chapters' Colab copies: every MyST role the chapters use becomes plain markdown (the
glued value, a link to the published page), an unknown role or a value not glued stops the
copy, and the check finds what plain Jupyter would show raw."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SITE = "https://example.github.io/xdx"


@pytest.fixture(scope="module")
def tool():
    return load_script("tools/colab_copies.py")


def _chapter(folder: Path, markdown: list[str], glued: dict[str, str]) -> Path:
    """An executed chapter as myst-nb leaves it: the notebook and its ``.glue.json``."""
    cells = [{"cell_type": "markdown", "metadata": {}, "source": m} for m in markdown]
    cells.append({"cell_type": "code", "metadata": {}, "source": "x = 1", "outputs": [],
                  "execution_count": 1})  # fmt: skip
    path = folder / "kd.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))  # fmt: skip
    glue = {k: {"output_type": "display_data", "data": {"text/plain": v},
                "metadata": {"scrapbook": {"name": k}}} for k, v in glued.items()}  # fmt: skip
    path.with_suffix(".glue.json").write_text(json.dumps(glue))
    return path


def test_each_role_becomes_what_the_book_shows(tool):
    text = ("KD scores {glue:}`acc` ({glue:text}`gap:.2f` over scratch); see {doc}`method` and "
            "{doc}`the KD chapter <kd>`, {py:func}`~xdx_lib.distill.kd.kd_loss` and "
            "{py:class}`xdx_lib.models.cae.CAE`.")  # fmt: skip
    out = tool.plain_markdown(text, {"acc": "0.881", "gap": "0.0381"}, SITE)
    assert out == (
        "KD scores 0.881 (0.04 over scratch); see [method](https://example.github.io/xdx/book/"
        "method.html) and [the KD chapter](https://example.github.io/xdx/book/kd.html), "
        "[`kd_loss`](https://example.github.io/xdx/book/api.html#xdx_lib.distill.kd.kd_loss) "
        "and [`xdx_lib.models.cae.CAE`](https://example.github.io/xdx/book/api.html#"
        "xdx_lib.models.cae.CAE).")


def test_citations_and_terms_read_as_the_book_shows_them(tool):
    papers = {"hinton2015distilling": ("Hinton et al.", "2015"),
              "lundberg2017unified": ("Lundberg & Lee", "2017")}  # fmt: skip
    text = ("KD {cite:p}`hinton2015distilling`, as {cite:t}`lundberg2017unified` say, with "
            "{term}`soft targets` and {term}`a baseline <baseline>`.")  # fmt: skip
    assert tool.plain_markdown(text, {}, SITE, papers) == (
        f"KD ([Hinton et al., 2015]({SITE}/book/references.html)), as "
        f"[Lundberg & Lee (2017)]({SITE}/book/references.html) say, with "
        f"[soft targets]({SITE}/book/glossary.html#term-soft-targets) and "
        f"[a baseline]({SITE}/book/glossary.html#term-baseline).")


def test_the_bibliography_names_authors_and_years(tool):
    papers = tool.citations()
    assert papers["hinton2015distilling"] == ("Hinton et al.", "2015")
    assert papers["zeiler2014visualizing"] == ("Zeiler & Fergus", "2014")
    assert papers["xiao2017fashion"] == ("Xiao et al.", "2017")


def test_a_value_not_glued_or_an_unknown_role_stops_the_copy(tool):
    with pytest.raises(tool.CopyError, match="`missing` is not glued"):
        tool.plain_markdown("{glue:}`missing`", {}, SITE)
    with pytest.raises(tool.CopyError, match="cannot show"):
        tool.plain_markdown("as {abbr}`KD (knowledge distillation)` shows", {}, SITE)
    with pytest.raises(tool.CopyError, match="`nobody2020` is not in the bibliography"):
        tool.plain_markdown("as {cite}`nobody2020` shows", {}, SITE)
    with pytest.raises(tool.CopyError, match="cannot show"):
        tool.plain_markdown("```{note}\nA note.\n```\n", {}, SITE)


def test_the_check_finds_raw_myst_as_plain_jupyter_renders_it(tool):
    assert tool.unrendered("{glue:}`acc` and {doc}`method`") == ["{glue:}<code>", "{doc}<code>"]
    assert tool.unrendered("(sec-kd)=\n# KD\n") == ["(sec-kd)="]
    assert tool.unrendered(":::{note}\nx\n:::\n") == [":::{note}"]
    assert tool.unrendered("```{math}\nx\n```\n") == ['<code class="language-{']
    assert tool.unrendered("Plain *text*, `code`, $x^2$ and [a link](https://a.b).") == []


def test_copies_are_written_whole_and_checked(tool, tmp_path):
    executed, out = tmp_path / "executed", tmp_path / "colab"
    executed.mkdir()
    _chapter(executed, ["# KD\n", "KD scores {glue:}`acc`."], {"acc": "0.881"})
    (copy,) = tool.write_copies(executed, out, note="Built at commit abc on `colab`.")
    cells = json.loads(copy.read_text())["cells"]
    assert "Colab copy of the chapter [kd]" in cells[0]["source"]
    assert "Built at commit abc" in cells[0]["source"]
    assert [c["source"] for c in cells[1:3]] == ["# KD\n", "KD scores 0.881."]
    assert cells[3]["cell_type"] == "code"
    assert tool.main(["--check", str(out)]) == 0
    cells[2]["source"] = "KD scores {glue:}`acc`."
    copy.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))  # fmt: skip
    assert tool.main(["--check", str(out)]) == 1


class _Anything(dict):
    """Glued values for any key: the chapters' roles checked without a build."""

    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return "0.5"


def test_every_role_of_the_chapters_has_a_plain_form(tool):
    """A role or directive a chapter starts using must be taught to the copies first."""
    anything = _Anything()
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"])
                out = tool.plain_markdown(text, anything, SITE)
                assert not re.search(r"\{[a-z][\w:-]*\}`", out), (path.name, out)


def test_no_executed_chapters_is_one_line(tool, tmp_path, capsys):
    assert tool.main([str(tmp_path), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: no executed chapters in ")


def test_a_generated_sentence_over_the_limit_is_found(tool, tmp_path):
    long = " ".join(["word"] * 40)
    _chapter(tmp_path, ["So {glue:}`reading`. A short one: {glue:}`short`.",
                        "Written by hand, " + " ".join(["long"] * 40) + "."],
             {"reading": long, "short": "five words are here now"})  # fmt: skip
    found = tool.long_generated_sentences(tmp_path, 35)
    assert len(found) == 1 and found[0].startswith("kd: 41 words: So word word")
    assert tool.long_generated_sentences(tmp_path, 45) == []
    assert tool.main([str(tmp_path), str(tmp_path / "out"), "--max-words", "35"]) == 1


def test_sentences_split_paragraphs_items_and_full_stops(tool):
    text = "One sentence. Two (with 0.5 in it).\n\n- an item\n- another. Its second.\n"
    assert tool.sentences(text) == ["One sentence.", "Two (with 0.5 in it).", "an item",
                                    "another.", "Its second."]  # fmt: skip


def test_a_role_left_as_text_in_a_built_page_is_found(tool, tmp_path):
    (tmp_path / "intro.html").write_text(
        '<p>on the <code><span class="pre">{glue:}</span></code>results.ipynb::x`` profile</p>')
    (tmp_path / "kd.html").write_text("<p>KD <a href='#'>Hinton et al.</a> 0.881</p>")
    (tmp_path / "api.html").write_text("<p>glue for <code>{glue:}`name`</code></p>")
    assert tool.check_html(tmp_path) == ["intro.html: {glue:}"]
    assert tool.main(["--check-html", str(tmp_path)]) == 1
    (tmp_path / "intro.html").unlink()
    assert tool.main(["--check-html", str(tmp_path)]) == 0


def test_every_source_chapter_sends_a_plain_jupyter_reader_to_its_copy(tool):
    """A chapter's source opened as plain Jupyter shows MyST; its note, hidden in the book,
    links the published page and the Colab copy, and is up to date."""
    stale = tool.source_notes(ROOT / "book")
    assert stale == [], f"{stale}: run python tools/colab_copies.py --source-notes book"
    nb = json.loads((ROOT / "book" / "kd.ipynb").read_text())
    (note,) = [c for c in nb["cells"] if tool.SOURCE_NOTE in c["metadata"].get("tags", [])]
    assert "remove-cell" in note["metadata"]["tags"]
    text = tool._text(note["source"])
    assert "/book/kd.html)" in text and "/blob/colab/book/kd.ipynb)" in text
    assert tool.unrendered(text) == []


def test_a_stale_note_is_found_and_rewritten_and_copies_drop_it(tool, tmp_path):
    book, out = tmp_path / "book", tmp_path / "colab"
    book.mkdir()
    path = _chapter(book, ["# KD\n", "KD scores {glue:}`acc`."], {"acc": "0.881"})
    assert tool.source_notes(book) == ["kd.ipynb"]
    assert tool.source_notes(book, write=True) == ["kd.ipynb"]
    assert tool.source_notes(book) == []
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["source"] == "# KD\n" and tool.SOURCE_NOTE in cells[1]["metadata"]["tags"]
    (copy,) = tool.write_copies(book, out)
    copied = json.loads(copy.read_text())["cells"]
    assert not any(tool.SOURCE_NOTE in c["metadata"].get("tags", []) for c in copied)
    assert [c["source"] for c in copied[1:3]] == ["# KD\n", "KD scores 0.881."]
    cells[1]["source"] = "an old note"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))  # fmt: skip
    assert tool.source_notes(book) == ["kd.ipynb"]
