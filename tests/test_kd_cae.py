"""kd_cae: KD's students, trained once for both methods, deploying the pre-trained CAE that
XDistillation of the same seed starts from."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from xdx_lib.core.config import RunConfig
from xdx_lib.data.datasets import Dataset, make_shapes
from xdx_lib.distill.cae_pretraining import pretrain_cae
from xdx_lib.distill.method import create_method
from xdx_lib.distill.xdistill import KDWithCAE
from xdx_lib.evaluation.scoring import CLAIM_SIMILARITIES, evaluate_model
from xdx_lib.experiments import session as session_module
from xdx_lib.experiments.session import Session
from xdx_lib.models.cae import predict_maps


@pytest.fixture(scope="module")
def tiny():
    return Dataset("shapes", make_shapes(64, seed=0), make_shapes(16, seed=1), list("abcd"))


def _cfg(**kw) -> RunConfig:
    base = dict(dataset="shapes", profile="smoke", teacher="student_tiny",
                student="student_tiny", batch_size=32, cae_width=4, cae_epochs=1)  # fmt: skip
    return RunConfig(**{**base, **kw})


def _count_fits(monkeypatch) -> list:
    calls = []
    real = session_module.fit
    monkeypatch.setattr(session_module, "fit", lambda *a, **k: calls.append(
        k["checkpointing"].path) or real(*a, **k))  # fmt: skip
    return calls


def test_kd_cae_trains_as_kd_with_kds_options_and_may_compile():
    method = create_method(_cfg(method="kd_cae", alpha=0.3))
    assert isinstance(method, KDWithCAE) and method.trains_as == "kd"
    assert method.option_names() == ("alpha", "temperature") and method.opts.alpha == 0.3
    assert [s.kind for s in method.signals()] == ["logits"]
    assert create_method(_cfg(method="kd")).trains_as == "kd"
    assert _cfg(method="kd_cae", compile=True).compile
    with pytest.raises(RuntimeError, match="call attach"):
        method.deployed_maps(method.build_model(1, 4), torch.rand(2, 1, 28, 28))


def test_kd_cae_shares_kds_checkpoint_and_training(tiny, monkeypatch):
    fits = _count_fits(monkeypatch)
    s = Session(_cfg(), tiny)
    both = s.student(method="kd_cae", seed=1)  # trains, for kd too
    kd = s.student(method="kd", seed=1)  # loads
    assert len(fits) == 2 and fits[1] == kd.path  # the teacher, then one student
    assert both.path == kd.path and both.key == kd.key and "-kd-" in kd.path.parent.name
    assert both is not kd and type(both.method) is KDWithCAE
    torch.testing.assert_close(both.logits(tiny.test.x), kd.logits(tiny.test.x))
    assert s.student(method="kd_cae", seed=1) is both
    again = Session(_cfg(), tiny).student(method="kd_cae", seed=1)  # loaded, and attached
    assert len(fits) == 2 and again.method.attached_key == both.method.attached_key


def test_kd_cae_deploys_the_seeds_pretrained_cae_as_xdistill_does(tiny):
    s = Session(_cfg(), tiny)
    x = tiny.test.x
    kd_cae = s.student(method="kd_cae", seed=1)
    xd = s.student(method="xdistill", seed=1)  # staged, its CAE frozen (the defaults)
    cae = pretrain_cae(s.config(method="xdistill", seed=1), tiny, s.teacher(), verbose=False)
    assert kd_cae.method.attached_key == cae.key
    maps = kd_cae.method.deployed_maps(kd_cae.model, x)
    torch.testing.assert_close(maps, predict_maps(cae.model, x))
    torch.testing.assert_close(maps, xd.method.deployed_maps(xd.model, x))
    other = pretrain_cae(s.config(method="kd_cae", seed=2), tiny, s.teacher(), verbose=False)
    assert other.key != cae.key  # the seed picks the CAE, as it does XDistillation's

    scores = {m: evaluate_model(s.student(method=m, seed=1), s.teacher(), tiny, n_faithful=0,
                                similarities=CLAIM_SIMILARITIES)
              for m in ("kd_cae", "xdistill", "kd")}  # fmt: skip
    assert "cae/pearson" not in scores["kd"]  # kd deploys its Grad-CAM
    for k in ("cae/pearson", "deployed/pearson", "deployed/topk_iou"):
        assert scores["kd_cae"][k] == pytest.approx(scores["xdistill"][k]), k
    for k in ("accuracy", "agreement", "gradcam/pearson"):
        assert scores["kd_cae"][k] == pytest.approx(scores["kd"][k]), k
    # what it deploys is the student and the CAE: both are counted
    cae_params = sum(p.numel() for p in cae.model.parameters())
    assert scores["kd_cae"]["parameters"] == scores["kd"]["parameters"] + cae_params


def test_kd_cae_reads_the_configs_explainer(tiny):
    method = create_method(dataclasses.replace(_cfg(), method="kd_cae", explainer="saliency"))
    assert method.imitated_explainer == "saliency"
