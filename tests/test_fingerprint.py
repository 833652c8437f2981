"""The training code's fingerprint: recorded as it is, blind to comments and docstrings,
moved by a change to the code."""

from __future__ import annotations

from pathlib import Path

from xdx_lib.core import fingerprint
from xdx_lib.core.fingerprint import TRAINING_CODE, code_fingerprint, source_fingerprint


def test_the_recorded_fingerprint_is_the_codes():
    """Fails when the code that fills the run cache changed and no one checked the formats."""
    now = code_fingerprint()
    assert now == TRAINING_CODE, (
        f"the training code's fingerprint is {now}, recorded {TRAINING_CODE}: bump the format "
        "version of what changed in xdx_lib/core/layout.py, or, if the stored files stay the "
        "same (tools/compare_builds.py), set TRAINING_CODE in xdx_lib/core/fingerprint.py to it"
    )


def test_comments_and_docstrings_do_not_count():
    a = 'def f(x):\n    """Twice x."""\n    return 2 * x  # doubled\n'
    b = 'def f(x):\n    """Two times x, reworded."""\n\n    return 2 * x\n'
    assert source_fingerprint(a) == source_fingerprint(b)


def test_a_changed_expression_counts():
    assert source_fingerprint("def f(x):\n    return 2 * x\n") != source_fingerprint(
        "def f(x):\n    return 3 * x\n"
    )


def test_a_docstring_only_body_still_parses():
    assert source_fingerprint('def f():\n    """Nothing."""\n') == source_fingerprint(
        "def f():\n    pass\n"
    )


def test_a_change_in_a_training_package_moves_the_fingerprint(tmp_path: Path):
    for folder in fingerprint.TRAINING_PACKAGES:
        (tmp_path / folder).mkdir()
    (tmp_path / "distill" / "kd.py").write_text("T = 4\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "plots.py").write_text("W = 1\n")
    before = code_fingerprint(tmp_path)
    (tmp_path / "report" / "plots.py").write_text("W = 2\n")
    assert code_fingerprint(tmp_path) == before, "report/ stores nothing: not fingerprinted"
    (tmp_path / "distill" / "kd.py").write_text("T = 2\n")
    assert code_fingerprint(tmp_path) != before
