"""Batches: every image once an epoch, shared among ranks with none left empty, the
schedule counting the steps, each rank's own augmentation seed, the batch dict a method
sees and the batched inference."""

from __future__ import annotations

import torch

from xdx_lib.data.batches import (
    Extras,
    augmentation_seed,
    epoch_batches,
    make_batch,
    predict_logits,
    resident,
    steps_per_epoch,
)
from xdx_lib.data.datasets import Split


def test_epoch_batches_cover_every_image_once_and_split_across_ranks():
    batches = list(epoch_batches(10, 4, seed=0, epoch=0))
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert [len(b) for b in batches] == [4, 4, 2]
    ranks = [list(epoch_batches(10, 4, 0, 0, rank=r, world=2)) for r in (0, 1)]
    joined = torch.cat([torch.cat([a, b]) for a, b in zip(*ranks)])
    assert sorted(joined.tolist()) == list(range(10))
    assert not torch.equal(batches[0], next(epoch_batches(10, 4, seed=0, epoch=1)))


def test_the_order_is_the_seeded_permutation():
    # the rule a resumed run and the CAE's pre-training rely on: (seed, epoch) alone
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(2 * 100_003 + 5))
    assert torch.equal(torch.cat(list(epoch_batches(10, 4, seed=2, epoch=5))), expected)


def test_ranks_never_get_an_empty_batch_and_the_schedule_counts_the_steps():
    for n, batch_size, world in [(10, 4, 1), (9, 4, 2), (8, 4, 2), (65, 32, 2), (64, 32, 4)]:
        per_rank = [list(epoch_batches(n, batch_size, 0, 0, r, world)) for r in range(world)]
        assert all(len(b) >= 1 for batches in per_rank for b in batches)
        assert {len(batches) for batches in per_rank} == {steps_per_epoch(n, batch_size, world)}
    assert steps_per_epoch(10, 4) == 3 and steps_per_epoch(9, 4, world=2) == 2


def test_each_rank_augments_with_its_own_seed_and_rank_zero_keeps_the_old_one():
    assert augmentation_seed(3, 2) == augmentation_seed(3, 2, rank=0) == 3 * 7919 + 2
    seeds = {augmentation_seed(0, e, r) for e in range(200) for r in range(8)}
    assert len(seeds) == 200 * 8  # no two (epoch, rank) pairs share their draws


def test_a_batch_holds_its_rows_of_every_extra():
    split = Split(torch.arange(5.0).view(5, 1, 1, 1), torch.tensor([0, 1, 0, 1, 0]))
    extras = {"logits": torch.arange(10.0).view(5, 2),
              "stages": [torch.arange(5), -torch.arange(5)]}  # fmt: skip
    batch = make_batch(split, torch.tensor([3, 1]), extras, "cpu")
    assert batch["x"].flatten().tolist() == [3.0, 1.0] and batch["y"].tolist() == [1, 1]
    assert batch["index"].tolist() == [3, 1]
    assert batch["logits"].tolist() == [[6.0, 7.0], [2.0, 3.0]]
    assert [t.tolist() for t in batch["stages"]] == [[3, 1], [-3, -1]]
    on = make_batch(split, torch.tensor([0]), None, "cpu", index=torch.tensor([7]))
    assert on["index"].tolist() == [7] and set(on) == {"x", "y", "index"}


def test_resident_copies_the_split_and_the_per_image_signals_only():
    split = Split(torch.rand(3, 1, 2, 2), torch.tensor([0, 1, 2]))
    per_batch = lambda batch: {}  # noqa: E731
    extras = Extras({"t": torch.rand(3, 2)}, {"test": torch.rand(2)}, per_batch)
    train, moved = resident(split, extras, torch.device("cpu"))
    assert torch.equal(train.x, split.x) and torch.equal(moved.train["t"], extras.train["t"])
    assert moved.test is extras.test and moved.per_batch is per_batch


def test_predict_logits_batches_and_returns_float32_on_the_cpu():
    seen = []

    def logits(xb):
        seen.append((len(xb), xb.is_contiguous(memory_format=torch.channels_last)))
        return xb.flatten(1).sum(1, keepdim=True).double()

    x = torch.rand(5, 2, 3, 3)
    out = predict_logits(logits, x, "cpu", batch_size=2)
    assert [n for n, _ in seen] == [2, 2, 1] and all(cl for _, cl in seen)
    assert out.dtype == torch.float32 and out.shape == (5, 1)
    assert torch.allclose(out[:, 0], x.flatten(1).sum(1))
    assert predict_logits(logits, x[:0], "cpu").numel() == 0
