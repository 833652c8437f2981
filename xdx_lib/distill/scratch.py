"""A student trained from scratch on the labels alone: the baseline every method is compared with.

``L = CE(S(x), y)``: the base :class:`~xdx_lib.distill.method.Method`'s hooks, registered as
``scratch``.
"""
from __future__ import annotations

from xdx_lib.distill.method import METHODS, Method


@METHODS.register("scratch")
class Scratch(Method):
    """Train on the labels only, ``L = CE(S(x), y)``: :class:`~xdx_lib.distill.method.Method`'s
    hooks as they are."""

    name = "scratch"
