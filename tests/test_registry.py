"""The registry: names by kind, factories by name, and the options classes they declare."""

from __future__ import annotations

import itertools

import pytest

from xdx_lib.core.registry import Registry, choices, declare_choices, options_class

_unique = (f"test kind {i}" for i in itertools.count())


def test_a_registry_lists_its_names_sorted_and_refuses_unknown_ones():
    kind = next(_unique)
    toys = Registry(kind)
    toys.register("b")(lambda: "b")
    toys.register("a")(lambda: "a")
    assert choices(kind) == ("a", "b") and toys.get("a")() == "a" and "b" in toys
    with pytest.raises(ValueError, match=r"unknown .* 'c'; choose one of: a, b"):
        toys.get("c")
    with pytest.raises(ValueError, match="registered twice"):
        toys.register("a")(lambda: "again")


def test_declared_choices_keep_their_order_and_a_kind_is_declared_once():
    kind = next(_unique)
    assert declare_choices(kind, ["z", "a"]) == ("z", "a") == choices(kind)
    with pytest.raises(ValueError, match="declared twice"):
        declare_choices(kind, ["again"])
    with pytest.raises(KeyError, match="no kind of name 'never declared'"):
        choices("never declared")


def test_the_options_class_is_recorded_at_registration_and_nothing_is_built():
    kind = next(_unique)
    built = []

    class ToyOptions:
        pass

    class Toy:
        Options = ToyOptions

        def __init__(self):
            built.append(self)

    registry = Registry(kind, options_attribute="Options")
    registry.register("toy")(Toy)
    assert options_class(kind, "toy") is ToyOptions is registry.options("toy")
    assert built == []
    with pytest.raises(ValueError, match="unknown .* 'other'; choose one of: toy"):
        registry.options("other")
    with pytest.raises(TypeError, match="declares no options class 'Options'"):
        registry.register("bare")(lambda: None)
    with pytest.raises(TypeError, match="records no options"):
        Registry(next(_unique)).options("toy")


def test_methods_declare_their_options_in_the_registry():
    import xdx_lib  # noqa: F401  (registers every method)
    from xdx_lib.distill.kd import KDOptions
    from xdx_lib.distill.method import NoOptions

    assert options_class("method", "scratch") is NoOptions
    assert options_class("method", "kd_cae") is KDOptions  # it trains as KD
