"""tools/compare_builds.py tells a changed number from a changed timing."""

from __future__ import annotations

import json

from scripts import load_script

TABLE = ('<table id="T_{id}"><th id="T_{id}_level0_col0" >accuracy</th>'
         '<th id="T_{id}_level0_col1" >epoch s</th><th id="T_{id}_level0_row0" >kd</th>'
         '<td id="T_{id}_row0_col0" >{acc}</td><td id="T_{id}_row0_col1" >{sec}</td></table>')


def _build(folder, acc="0.873", sec="1.2", table_id="ab12c", glued="0.873"):
    folder.mkdir()
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "text": ["teacher 0.912\n"]},
        {"output_type": "display_data", "data": {
            "text/html": TABLE.format(id=table_id, acc=acc, sec=sec),
            "text/plain": f"<pandas.io.formats.style.Styler at 0x7f{table_id}>"}}]}]}
    (folder / "kd.ipynb").write_text(json.dumps(nb))
    glue = {"acc_kd": {"data": {"text/plain": glued}}, "kd_speedup": {"data": {"text/plain": sec}}}
    (folder / "kd.glue.json").write_text(json.dumps(glue))
    return folder


def test_timings_and_styler_ids_pass_a_number_fails(tmp_path, capsys):
    tool = load_script("tools/compare_builds.py")
    before = _build(tmp_path / "before")
    same = _build(tmp_path / "same", sec="3.4", table_id="ff00e")
    assert tool.main([str(before), str(same)]) == 0
    assert "2 timing differences; 0 other differences" in capsys.readouterr().out
    moved = _build(tmp_path / "moved", acc="0.874", glued="0.874")
    assert tool.main([str(before), str(moved)]) == 1
    out = capsys.readouterr().out
    assert "NUMBER  kd: cell 0 ('kd', '|accuracy'): 0.873 -> 0.874" in out
    assert "NUMBER  kd: glue acc_kd: '0.873' -> '0.874'" in out


def test_moved_cells_match_by_content_and_a_changed_number_still_fails(tmp_path, capsys):
    tool = load_script("tools/compare_builds.py")
    before = _build(tmp_path / "before")
    # after: the same outputs moved to another chapter behind a new cell, a timing changed,
    # the glued value reworded around the same number and glued by the other chapter
    after = _build(tmp_path / "after", sec="3.4", table_id="ff00e",
                   glued="KD reaches 0.873")  # fmt: skip
    nb = json.loads((after / "kd.ipynb").read_text())
    new = {"cell_type": "code", "outputs": [{"output_type": "stream", "text": ["new\n"]}]}
    (after / "kd.ipynb").write_text(json.dumps({"cells": [new]}))
    (after / "appendix.ipynb").write_text(json.dumps({"cells": [new, *nb["cells"]]}))
    (after / "kd.glue.json").rename(after / "appendix.glue.json")
    assert tool.main([str(before), str(after)]) == 1  # by position it fails
    capsys.readouterr()
    assert tool.main(["--moved", str(before), str(after)]) == 0
    assert "2 timing differences; 0 other differences" in capsys.readouterr().out
    changed = _build(tmp_path / "changed", acc="0.874", glued="KD reaches 0.874")
    assert tool.main(["--moved", str(before), str(changed)]) == 1
    out = capsys.readouterr().out
    assert "NUMBER  kd: cell 0 ('kd', '|accuracy'): 0.873 -> 0.874" in out
    assert "NUMBER  kd: glue acc_kd: '0.873' -> 'KD reaches 0.874'" in out
    (changed / "kd.glue.json").write_text("{}")
    assert tool.main(["--moved", str(before), str(changed)]) == 1
    assert "glue acc_kd not glued after" in capsys.readouterr().out
