"""The book-time benchmark: the chapters in the build's order, each run's training seconds
as its checkpoint recorded them, a chapter's rest, and the precisions' images/s."""

from __future__ import annotations

import pytest
import torch
from scripts import ROOT, load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/book_time.py")


def _store(path, **ckpt):
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    return path


def test_chapters_run_in_the_builds_order_and_only_notebooks(bench):
    order = bench.chapter_order()
    assert [p.name for p in order] == sorted(p.name for p in order)
    assert {p.stem for p in order} >= {"kd", "cae", "xdistill", "results", "protocol"}
    assert all(p.suffix == ".ipynb" and p.parent == ROOT / "book" for p in order)


def test_each_run_counts_its_recorded_training_seconds(bench, tmp_path):
    runs = tmp_path / "runs"
    epochs = [{"epoch": e, "epoch_time": 1.5} for e in (1, 2, 3, 4)]
    student = _store(runs / "students" / "s" / "model.pt", history=epochs,
                     meta={"method": "kd", "key": "k"})  # fmt: skip
    teacher = _store(runs / "teachers" / "t" / "model.pt", history=epochs[:2], meta={})
    cae = _store(runs / "cae" / "c" / "model.pt", history=[0.5], seconds=7.0, meta={})
    (runs / "maps").mkdir()
    assert bench.run_files(runs) == {student, teacher, cae}
    assert bench.run_seconds(student) == ("kd 4 ep", 6.0)
    assert bench.run_seconds(teacher) == ("teacher", 3.0)
    assert bench.run_seconds(cae) == ("cae", 7.0)
    row = bench.chapter_share({student, cae}, maps=3, wall=20.0)
    assert row["training"] == 13.0 and row["rest"] == 7.0 and row["maps"] == 3
    assert row["runs"] == {"cae": (1, 7.0), "kd 4 ep": (1, 6.0)}


def test_throughput_times_every_precision_of_every_model(bench):
    models = {"tiny": torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(),
                                          torch.nn.LazyLinear(10))}  # fmt: skip
    models["tiny"](torch.zeros(1, 1, 8, 8))  # materialise the lazy layer
    [(name, fp32, fp32_cl, bf16_cl, ratio)] = bench.throughput(models, (1, 8, 8), 4, 2)
    assert name == "tiny" and min(fp32, fp32_cl, bf16_cl) > 0
    assert ratio == pytest.approx(bf16_cl / fp32_cl)


def test_it_asks_what_to_measure(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main([])
    assert "--chapters, --throughput or both" in capsys.readouterr().err
