"""The GPU check script runs end to end (here on the CPU, tiny) and writes its record."""

from __future__ import annotations

import json
from pathlib import Path

from scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _load():
    return load_script("benchmarks/gpu_check.py")


def test_gpu_check_records_every_setting_with_provenance(tmp_path, capsys):
    out = tmp_path / "check.json"
    _load().main(["--device", "cpu", "--n-images", "64", "--batch-size", "32", "--methods",
                  "scratch,kd", "--student", "student_tiny", "--no-compile", "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["gpu"] == "cpu" and record["precision"] == "None"
    settings = [(r["method"], r["signal"], r["compile"]) for r in record["rows"]]
    assert settings == [("scratch", "cached", False), ("kd", "cached", False),
                        ("kd", "online", False)]  # no online teacher for scratch
    for row in record["rows"]:
        assert "error" not in row, row
        assert row["images_per_s"] > 0 and row["steps"] == 2
    assert record["provenance"]["device"] == "cpu" and "git_commit" in record["provenance"]
    assert "wrote" in capsys.readouterr().out
