"""Metrics on inputs whose answer is known: similarity, faithfulness, localisation, agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xdx_lib.metrics import faithfulness, similarity
from xdx_lib.metrics.faithfulness import deletion_auc, insertion_auc, pointing_game, relevance_mass
from xdx_lib.metrics.predictions import accuracy, agreement, flip_spread
from xdx_lib.metrics.similarity import (
    centred_blob,
    cosine,
    pearson,
    rank_average,
    reference_maps,
    similarity_table,
    spearman,
    ssim,
    ssim_torch,
    summarize,
    topk_iou,
)


def rand_maps(n: int = 5, size: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g)


# ----------------------------------------------------------------------------- similarity


def test_pearson_self_one_negation_minus_one():
    a = rand_maps()
    torch.testing.assert_close(pearson(a, a), torch.ones(5))
    torch.testing.assert_close(pearson(a, 1 - a), -torch.ones(5))
    torch.testing.assert_close(pearson(a, 3 * a + 2), torch.ones(5))


def test_pearson_matches_numpy():
    a, b = rand_maps(seed=1), rand_maps(seed=2)
    expected = [np.corrcoef(a[i].flatten(), b[i].flatten())[0, 1] for i in range(5)]
    torch.testing.assert_close(pearson(a, b), torch.tensor(expected, dtype=torch.float32))


def test_rank_average_ties_share_their_mean_rank():
    v = torch.tensor([[3.0, 1.0, 1.0, 2.0], [5.0, 5.0, 5.0, 5.0]], dtype=torch.float64)
    expected = torch.tensor([[3.0, 0.5, 0.5, 2.0], [1.5, 1.5, 1.5, 1.5]], dtype=torch.float64)
    torch.testing.assert_close(rank_average(v), expected)


def test_spearman_monotone_and_scipy_with_ties():
    a = rand_maps()
    torch.testing.assert_close(spearman(a, a**3), torch.ones(5))
    torch.testing.assert_close(spearman(a, -a), -torch.ones(5))
    stats = pytest.importorskip("scipy.stats")
    qa, qb = (a * 4).floor(), (rand_maps(seed=3) * 3).floor()  # many ties
    expected = [stats.spearmanr(qa[i].flatten(), qb[i].flatten())[0] for i in range(5)]
    torch.testing.assert_close(spearman(qa, qb), torch.tensor(expected, dtype=torch.float32))


def test_cosine_known_values():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.zeros(2, 1, 2, 2)
    a[0, 0, 0, 0], b[0, 0, 1, 1] = 1.0, 1.0  # disjoint supports: orthogonal
    a[1, 0, 0, :], b[1, 0, 0, 0] = 1.0, 1.0  # (1, 1, 0, 0) vs (1, 0, 0, 0): 1 / sqrt(2)
    torch.testing.assert_close(cosine(a, b), torch.tensor([0.0, 2**-0.5]))
    torch.testing.assert_close(cosine(a, a), torch.ones(2))


def test_topk_iou_known_sets():
    a = torch.zeros(1, 1, 10, 10)
    b = torch.zeros(1, 1, 10, 10)
    a.view(-1)[0:10] = torch.linspace(1, 2, 10)  # top 10 % = pixels 0..9
    b.view(-1)[5:15] = torch.linspace(1, 2, 10)  # top 10 % = pixels 5..14
    torch.testing.assert_close(topk_iou(a, b), torch.tensor([5 / 15]))
    torch.testing.assert_close(topk_iou(a, a), torch.tensor([1.0]))
    torch.testing.assert_close(topk_iou(a, b, k=5), torch.tensor([0.0]))  # 5..9 vs 10..14


def test_ssim_identity_and_fallback_matches_torchmetrics():
    a, b = rand_maps(size=28, seed=4), rand_maps(size=28, seed=5)
    torch.testing.assert_close(ssim(a, a), torch.ones(5))
    assert (ssim(a, b) < 0.5).all()
    torch.testing.assert_close(
        ssim_torch(a.double(), b.double()).float(), ssim(a, b), atol=1e-6, rtol=0
    )


def test_ssim_without_torchmetrics_uses_the_fallback(monkeypatch):
    a, b = rand_maps(size=28, seed=6), rand_maps(size=28, seed=7)
    with_tm = ssim(a, b)
    monkeypatch.setattr(similarity, "_tm_ssim", None)
    torch.testing.assert_close(ssim(a, b), with_tm, atol=1e-6, rtol=0)


def test_constant_maps_give_numbers_not_nan():
    const = torch.full((3, 1, 28, 28), 0.5)
    zeros = torch.zeros(3, 1, 28, 28)
    a = rand_maps(3, 28)
    for x, y in [(const, a), (a, zeros), (zeros, zeros), (const, const)]:
        table = similarity_table(x, y)
        assert set(table) == {"pearson", "spearman", "ssim", "cosine", "topk_iou"}
        for name, values in table.items():
            assert values.shape == (3,), name
            assert torch.isfinite(values).all(), name
    assert (pearson(const, a) == 0).all() and (spearman(const, a) == 0).all()
    assert (cosine(zeros, a) == 0).all()


def test_similarity_rejects_nan_and_shape_mismatch():
    a = rand_maps()
    bad = a.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pearson(a, bad)
    with pytest.raises(ValueError, match="shape"):
        cosine(a, rand_maps(size=8))


def test_summarize_means():
    table = {"pearson": torch.tensor([1.0, 0.0]), "cosine": torch.tensor([0.5, 0.5])}
    assert summarize(table) == {"pearson": 0.5, "cosine": 0.5}


# ----------------------------------------------------------------------------- faithfulness


class MeanProbability(nn.Module):
    """A two-class model with ``p(0) = mean pixel value`` and ``p(1) = 1 - p(0)``: linear in x.

    Removing pixels of value v in order lowers p(0) by v / D each, so the deletion curve is
    the running sum of the sorted pixel values, and its AUC is known exactly.
    """

    def forward(self, x):
        m = x.flatten(1).mean(1).clamp(1e-12, 1 - 1e-12)
        return torch.stack([m.log(), (1 - m).log()], dim=1)


def expected_curve_auc(values: np.ndarray, removed_first: np.ndarray, insertion: bool) -> float:
    """Trapezoid AUC of p(0) when pixels go one at a time in the order given."""
    d = values.size
    done = np.concatenate([[0.0], np.cumsum(values[removed_first])]) / d
    p = done if insertion else values.sum() / d - done
    return float(np.trapezoid(p, np.linspace(0, 1, d + 1)))


def test_deletion_auc_constant_image_is_one_quarter():
    x = torch.full((2, 1, 4, 4), 0.5)
    maps = rand_maps(2, 4)
    auc = deletion_auc(MeanProbability(), x, maps, target=0, steps=4)
    torch.testing.assert_close(auc, torch.full((2,), 0.25))  # int_0^1 0.5 (1 - f) df


def test_deletion_and_insertion_auc_on_a_linear_model():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 4, generator=g)
    model = MeanProbability()
    good, bad = x.clone(), -x  # relevance = the pixel's contribution, and its reverse
    dele = deletion_auc(model, x, good, target=0, steps=16)
    ins = insertion_auc(model, x, good, target=0, steps=16, baseline=0.0)
    for i in range(3):
        v = x[i].flatten().numpy().astype(np.float64)
        order = np.argsort(-v, kind="stable")
        assert dele[i].item() == pytest.approx(expected_curve_auc(v, order, False), abs=1e-6)
        assert ins[i].item() == pytest.approx(expected_curve_auc(v, order, True), abs=1e-6)
    assert (dele < deletion_auc(model, x, bad, target=0, steps=16)).all()
    assert (ins > insertion_auc(model, x, bad, target=0, steps=16, baseline="zeros")).all()
    # p(1) = 1 - p(0), so the class-1 curve mirrors the class-0 one
    torch.testing.assert_close(deletion_auc(model, x, good, target=1, steps=16), 1 - dele)


def test_insertion_blur_baseline_starts_from_the_blurred_image():
    x = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    model = MeanProbability()
    blurred = faithfulness._blur(x)
    # with one step, AUC = (p(start) + p(x)) / 2
    auc = insertion_auc(model, x, rand_maps(2, 12), target=0, steps=1)
    expected = (blurred.flatten(1).mean(1) + x.flatten(1).mean(1)) / 2
    torch.testing.assert_close(auc, expected)


def test_deletion_auc_explains_the_predicted_class_by_default():
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    model = MeanProbability()
    pred = model(x).argmax(1)
    maps = rand_maps(4, 4)
    torch.testing.assert_close(deletion_auc(model, x, maps), deletion_auc(model, x, maps, pred))


# ----------------------------------------------------------------------------- localisation


def test_pointing_game_and_relevance_mass_on_hand_made_masks():
    masks = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    masks[:, 0, :2, :2] = True  # object: the top-left 2x2 square
    maps = torch.zeros(3, 1, 4, 4)
    maps[0, 0, 0, 0], maps[0, 0, 3, 3] = 3.0, 1.0  # peak inside; 3 / 4 of the mass inside
    maps[1, 0, 3, 3], maps[1, 0, 1, 1] = 2.0, 1.0  # peak outside; 1 / 3 inside
    maps[2] = 0.7  # constant: points nowhere; 4 / 16 of the mass inside
    torch.testing.assert_close(pointing_game(maps, masks), torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(relevance_mass(maps, masks), torch.tensor([0.75, 1 / 3, 0.25]))
    assert relevance_mass(torch.zeros(3, 1, 4, 4), masks).eq(0).all()


def test_pointing_game_tolerance_grows_the_mask():
    masks = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    masks[0, 0, 2, 2] = True
    maps = torch.zeros(1, 1, 6, 6)
    maps[0, 0, 3, 3] = 1.0  # one pixel diagonally off the object
    assert pointing_game(maps, masks).item() == 0.0
    assert pointing_game(maps, masks, tolerance=1).item() == 1.0


# ----------------------------------------------------------------------------- prediction


def test_accuracy_and_agreement():
    logits_a = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    logits_b = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, 0, 1])
    assert accuracy(logits_a, y) == pytest.approx(0.75)
    assert agreement(logits_a, logits_b) == pytest.approx(0.75)
    assert agreement(logits_a, logits_a) == 1.0


def test_faithfulness_runs_in_eval_mode_and_restores_it():
    from xdx_lib.models.classifiers import create_model

    torch.manual_seed(0)
    model = create_model("student_tiny").train()
    bn = model.features[0][0][1]
    stats = bn.running_mean.clone()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    auc = insertion_auc(model, x, rand_maps(3, 28), steps=5)
    assert auc.shape == (3,) and ((auc >= 0) & (auc <= 1)).all()
    assert model.training and bn.training and torch.equal(bn.running_mean, stats)


def test_reference_maps_are_image_blind_and_shaped_like_the_test_maps():
    train = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])  # mean 0.5 everywhere
    test = torch.rand(3, 1, 4, 4)
    refs = reference_maps(train, test)
    assert set(refs) == {"mean teacher map", "centred blob"}
    for ref in refs.values():
        assert ref.shape == test.shape and torch.equal(ref[0], ref[2])
    torch.testing.assert_close(refs["mean teacher map"], torch.full_like(test, 0.5))
    torch.testing.assert_close(refs["centred blob"][0], centred_blob((4, 4))[0])


def test_similarity_table_computes_only_the_named_metrics():
    a, b = rand_maps(4, 28), rand_maps(4, 28)
    full = similarity_table(a, b)
    light = similarity_table(a, b, ["pearson", "topk_iou"])
    assert list(light) == ["pearson", "topk_iou"]
    torch.testing.assert_close(light["pearson"], full["pearson"])
    with pytest.raises(ValueError, match="unknown similarity 'ssmi'"):
        similarity_table(a, b, ["ssmi"])


def test_flip_spread_tells_independent_flips_from_whole_seed_shifts():
    g = torch.Generator().manual_seed(0)
    seeds, n = 60, 4000
    p = torch.where(torch.rand(n, generator=g) < 0.2, torch.rand(n, generator=g) * 0.6 + 0.2, 1.0)
    independent = (torch.rand(seeds, n, generator=g) < p).float()
    out = flip_spread(independent)
    assert 0.75 < out["ratio"] < 1.25  # sample sd of 60 seeds: about 10 % error
    assert out["unstable"] == pytest.approx(0.2, abs=0.03)
    # every unstable image flips with its seed's one coin: the seeds differ as wholes
    coin = torch.rand(seeds, 1, generator=g) < 0.5
    shifted = torch.where(p < 1, coin.expand(seeds, n), torch.ones(seeds, n, dtype=torch.bool))
    assert flip_spread(shifted.float())["ratio"] > 5
    # a hand-worked case: two seeds, one image each way -> accuracies 0.5 and 0.5
    same = flip_spread(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert same["observed_sd"] == 0 and same["independent_sd"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="seeds >= 2"):
        flip_spread(torch.ones(1, 5))
