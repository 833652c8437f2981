"""Methods: the options each one reads, the teacher signals it declares, its loss terms, the
explanation its deployed model gives, and which methods train through torch.compile."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from xdx_lib.core.config import ConfigError, RunConfig
from xdx_lib.core.layout import STUDENT_FIELDS
from xdx_lib.distill.e2kd import E2KDOptions, gradcam_in_graph
from xdx_lib.distill.kd import KDOptions
from xdx_lib.distill.method import METHODS, Method, NoOptions, create_method
from xdx_lib.distill.scratch import Scratch
from xdx_lib.distill.signals import Signal, teacher_attention
from xdx_lib.models.classifiers import create_model
from xdx_lib.models.features import capture_outputs, captured, match_stages


@pytest.mark.parametrize("name", METHODS.names())
def test_options_are_config_fields_of_the_same_type(name):
    cls = METHODS.get(name)
    config_types = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(cls.Options):
        assert f.name in config_types, f"{name}: {f.name} is not a RunConfig field"
        assert typing.get_type_hints(cls.Options)[f.name] == config_types[f.name]
        assert f.name not in STUDENT_FIELDS  # keyed once, by the method's own options


def test_options_come_from_the_config_and_key_only_their_method():
    cfg = RunConfig(method="kd", alpha=0.3, temperature=2.0, at_beta=7.0)
    kd = create_method(cfg)
    assert (kd.opts.alpha, kd.opts.temperature) == (0.3, 2.0)
    assert kd.option_names() == ("alpha", "temperature")
    assert "at_beta" in create_method(dataclasses.replace(cfg, method="at")).option_names()
    assert "fusion" not in kd.option_names()  # a sweep of XDistillation keeps KD's students
    assert create_method(RunConfig(method="scratch")).option_names() == ()


@pytest.mark.parametrize("name, changes, kinds", [
    ("scratch", {}, []),
    ("kd", {}, ["logits"]),
    ("at", {}, ["logits", "attention"]),
    ("e2kd", {}, ["logits", "maps", "target_class"]),
    ("xdistill", {}, ["logits"]),  # staged and frozen: its CAE never reads a map per batch
    ("xdistill", {"schedule": "joint"}, ["logits", "maps"]),
    ("xdistill", {"cae_freeze": False}, ["logits", "maps"]),
    ("xdistill", {"schedule": "joint", "beta": 0.0}, ["logits"]),
])  # fmt: skip
def test_each_method_declares_what_it_reads_from_the_teacher(name, changes, kinds):
    method = create_method(RunConfig(method=name, **changes))
    assert [s.kind for s in method.signals()] == kinds


_SIGNAL_CONFIGS = [{}, {"schedule": "joint"}, {"cae_freeze": False},
                   {"schedule": "joint", "beta": 0.0}, {"map_target": "label"}]


@pytest.mark.parametrize("name", METHODS.names())
@pytest.mark.parametrize("changes", _SIGNAL_CONFIGS)
def test_options_say_whether_their_method_reads_the_teacher(name, changes):
    """The config refuses augment with cached signals by ``Options.reads_teacher``: it must
    say what the method's own signals say, for every method and option."""
    method = create_method(RunConfig(method=name, **changes))
    assert METHODS.options(name) is type(method.opts) is METHODS.get(name).Options
    assert type(method.opts).reads_teacher == bool(method.signals()), name


def test_scratch_is_the_method_base_under_a_name():
    scratch = create_method(RunConfig(method="scratch"))
    assert type(scratch) is Scratch and isinstance(scratch, Method)
    assert (scratch.name, scratch.trains_as, Method.name) == ("scratch", "scratch", "")
    assert not isinstance(create_method(RunConfig(method="kd")), Scratch)


@pytest.mark.parametrize("name", METHODS.names())
def test_the_class_and_its_instances_name_one_training(name):
    """``training_name`` (asked of the class, as the plateau check does before any method is
    built) and ``trains_as`` (of an instance, as the cache key) must agree."""
    cls = METHODS.get(name)
    assert cls.training_name() == create_method(RunConfig(method=name)).trains_as
    assert cls.training_name() == (cls.shares_training_of or name)
    assert METHODS.get("kd_cae").training_name() == "kd"


def test_validation_builds_no_method(monkeypatch):
    def refuse(self, cfg):
        raise AssertionError("config validation built a method")

    monkeypatch.setattr(Method, "__init__", refuse)
    for name in METHODS.names():
        assert RunConfig(method=name, augment=True, teacher_signal="online").method == name
    with pytest.raises(ConfigError, match="augment=True with teacher_signal='cached'"):
        RunConfig(method="at", augment=True)


def test_each_options_class_checks_its_own_rules():
    cfg = RunConfig(method="scratch", augment=True)  # scratch reads no teacher: legal
    NoOptions.check(cfg)
    with pytest.raises(ConfigError, match="would train method 'scratch' on teacher logits"):
        KDOptions.check(cfg)  # a KD term would read the cached logits
    cfg = RunConfig(method="kd", compile=True)
    KDOptions.check(cfg)
    cfg.method = "e2kd"  # behind validation's back, to call e2KD's own check on it
    with pytest.raises(ConfigError, match="compile=True with method 'e2kd': its loss "
                                          "backpropagates .* set compile: false$"):
        E2KDOptions.check(cfg)


def test_declared_maps_follow_the_options():
    e2kd = create_method(RunConfig(method="e2kd", map_target="label"))
    assert Signal("maps", "gradcam", raw=True, target="label") in e2kd.signals()
    xd = create_method(RunConfig(method="xdistill", schedule="joint", explainer="saliency"))
    assert Signal("maps", "saliency") in xd.signals()


def _batch(n=6):
    torch.manual_seed(0)
    return {"x": torch.rand(n, 1, 28, 28), "y": torch.randint(0, 4, (n,)),
            "teacher_logits": torch.randn(n, 4)}  # fmt: skip


def test_kd_weights_its_two_terms_by_alpha():
    student = create_model("student_tiny", 1, 4)
    batch = _batch()
    terms = {a: create_method(RunConfig(method="kd", alpha=a, student="student_tiny"))
             for a in (0.0, 1.0, 0.25)}  # fmt: skip
    out = {a: m.loss_terms(m.forward(student, batch), batch) for a, m in terms.items()}
    assert out[0.0]["kd"].item() == 0 and out[1.0]["ce"].item() == 0
    ce, kd = out[0.0]["ce"], out[1.0]["kd"]
    torch.testing.assert_close(out[0.25]["ce"], 0.75 * ce)
    torch.testing.assert_close(out[0.25]["kd"], 0.25 * kd)


def test_only_xdistill_deploys_maps_of_its_own():
    x = torch.rand(3, 1, 28, 28)
    for name in ("scratch", "kd", "at", "e2kd"):
        method = create_method(RunConfig(method=name, student="student_tiny"))
        assert method.deployed_maps(method.build_model(1, 4), x) is None
        assert method.imitated_explainer == "gradcam"
    xd = create_method(RunConfig(method="xdistill", student="student_tiny",
                                 explainer="saliency"))  # fmt: skip
    model = xd.build_model(1, 4).eval()
    maps = xd.deployed_maps(model, x)
    _, from_forward = model(x, return_map=True)
    torch.testing.assert_close(maps, from_forward.detach().float())
    assert xd.imitated_explainer == "saliency"


def test_a_frozen_cae_adds_no_explanation_term():
    student_cfg = {"method": "xdistill", "student": "student_tiny"}
    batch = _batch()
    batch["teacher_maps"] = torch.rand(6, 1, 28, 28)
    frozen = create_method(RunConfig(**student_cfg))
    joint = create_method(RunConfig(**student_cfg, schedule="joint", beta=2.0))
    for method in (frozen, joint):
        model = method.build_model(1, 4)
        terms = method.loss_terms(method.forward(model, batch), batch)
        assert ("exp" in terms) == (method is joint)


def _feature_batch(n=6):
    batch = _batch(n)
    teacher = create_model("student_small", 1, 4).eval()
    batch["teacher_attention"] = teacher_attention(teacher, batch["x"])
    batch["teacher_maps"] = torch.rand(n, 1, 28, 28)
    batch["target_class"] = torch.tensor([0, 1, 2, 3, 0, 1])[:n]
    return batch


def _per_step_hooks_terms(name, model, batch):
    """The loss terms as AT and e2KD computed them with hooks added for each step."""
    method = create_method(RunConfig(method=name, student="student_tiny"))
    if name == "at":
        with capture_outputs(model.stages) as feats:
            logits = model(batch["x"])
        t_feats = match_stages(list(feats), list(batch["teacher_attention"]))
        out = {"logits": logits, "student_feats": list(feats), "teacher_feats": t_feats}
    else:
        with capture_outputs([model.gradcam_layer]) as acts:
            logits = model(batch["x"])
        cam = gradcam_in_graph(logits, acts[0], batch["target_class"], (28, 28))
        out = {"logits": logits, "cam": cam}
    return method.loss_terms(out, batch)


@pytest.mark.parametrize("name, part", [("at", "stages"), ("e2kd", "gradcam_layer")])
def test_hooks_registered_once_give_the_per_step_hooks_losses(name, part):
    torch.manual_seed(0)
    model = create_model("student_tiny", 1, 4)
    method = create_method(RunConfig(method=name, student="student_tiny"))
    batch = _feature_batch()
    for _ in range(3):  # the same numbers on every step, from the same two hooks
        new = method.loss_terms(method.forward(model, batch), batch)
        old = _per_step_hooks_terms(name, model, batch)
        assert new.keys() == old.keys()
        for k in new:
            assert torch.equal(new[k], old[k]), k
            new[k].backward(retain_graph=True)  # differentiable, as in training
    hooked = model.stages if part == "stages" else [model.gradcam_layer]
    assert all(len(m._forward_hooks) == 1 for m in hooked)  # registered once, kept
    # a wrapper (torch.compile, DDP) finds the same capture on the network inside
    assert captured(torch.compile(model), part) is captured(model, part)


def test_captured_outputs_are_kept_only_during_the_methods_pass():
    model = create_model("student_tiny", 1, 4)
    stages = captured(model, "stages")
    _, feats = stages.run(model, torch.rand(2, 1, 28, 28))
    assert [f.shape[-1] for f in feats] == [28, 14, 7]
    model(torch.rand(2, 1, 28, 28))  # evaluation or an explainer: nothing recorded
    assert stages.outputs == [None, None, None]
    with pytest.raises(RuntimeError, match="did not run in the forward pass"):
        stages.run(lambda x: x, torch.rand(2))


def test_compile_is_refused_for_e2kd_with_one_line_that_says_what_to_set():
    with pytest.raises(ConfigError, match=r"double backward.*set compile: false"):
        RunConfig(method="e2kd", compile=True)
    for name in ("scratch", "kd", "at", "xdistill", "kd_cae"):
        assert RunConfig(method=name, compile=True).compile


@pytest.mark.parametrize("name, changes", [("at", {}), ("xdistill", {"schedule": "joint"})])
def test_compiled_graphs_train_with_the_eager_losses(name, changes):
    """torch.compile traced on the CPU (``aot_eager``: the graphs run by eager kernels): the
    hooks registered once are seen by the graph, and a step gives the eager loss terms."""
    batch = _feature_batch()
    method = create_method(RunConfig(method=name, student="student_tiny", **changes))
    torch.manual_seed(0)
    model = method.build_model(1, 4)
    eager = method.loss_terms(method.forward(model, batch), batch)
    compiled = torch.compile(model, backend="aot_eager")
    for _ in range(2):  # the second call runs the cached graph
        terms = method.loss_terms(method.forward(compiled, batch), batch)
        assert terms.keys() == eager.keys()
        for k in terms:
            torch.testing.assert_close(terms[k], eager[k], rtol=1e-5, atol=1e-6)
    sum(terms.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
