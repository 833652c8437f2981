"""A small name -> factory registry shared by models, explainers and methods.

Modelled on timm's ``register_model`` / ``create_model``: a module registers its
builders with a decorator, and callers build things by name, so that a config file
or a command-line flag can name any registered thing and an unknown name fails with
the list of known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T", bound=Callable)


class Registry:
    """Map names to factories (functions or classes).

    Args:
        kind: what the registry holds ("model", "explainer", "method"), used in errors.

    Examples::

        >>> MODELS = Registry("model")
        >>> @MODELS.register("tiny")
        ... def tiny(**kw):
        ...     return "built"
        >>> MODELS.get("tiny")()
        'built'
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator that registers a factory under ``name`` (default: its ``__name__``)."""

        def deco(fn: T) -> T:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable:
        """Return the factory registered as ``name``; unknown names list the known ones."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
