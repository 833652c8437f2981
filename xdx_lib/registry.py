"""Names of things, by kind: the registries of models, explainers, methods, ... and the
plain lists of choices (fusions, schedules, ...), all looked up with :func:`choices`.

Modelled on timm's ``register_model`` / ``create_model``: a module registers its
builders with a decorator, and callers build things by name, so that a config file
or a command-line flag can name any registered thing and an unknown name fails with
the list of known ones.

Every :class:`Registry` and every list declared with :func:`declare_choices` is known by
its *kind* ("model", "fusion", ...). The config (:mod:`xdx_lib.config`) validates a field
by the kind it names, so it imports this module only and sits below everything it
configures; a new option appears in validation and in the command line's help at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Callable)

#: Every kind of name, with a function giving its allowed names (called when asked, so
#: that registrations made after a kind is declared count).
_KINDS: dict[str, Callable[[], Sequence[str]]] = {}
_REGISTRIES: dict[str, Registry] = {}


def _declare(kind: str, names: Callable[[], Sequence[str]]) -> None:
    if kind in _KINDS:
        raise ValueError(f"the kind {kind!r} is declared twice")
    _KINDS[kind] = names


def declare_choices(kind: str, names: Sequence[str]) -> tuple[str, ...]:
    """Declare the fixed choices of ``kind`` (in the order given); returns them as a tuple.

    For options that name a way of doing something rather than a built thing, e.g.
    ``FUSIONS = declare_choices("fusion", ("channel", "gate", "feature"))``.
    """
    names = tuple(names)
    _declare(kind, lambda: names)
    return names


def choices(kind: str) -> tuple[str, ...]:
    """The allowed names of ``kind`` (a registry's are sorted; a declared list keeps its order).

    Raises:
        KeyError: ``kind`` was never declared (a programming error, not bad input).
    """
    try:
        return tuple(_KINDS[kind]())
    except KeyError:
        raise KeyError(f"no kind of name {kind!r} is declared; known: {sorted(_KINDS)}") from None


def lookup(kind: str, name: str) -> Callable:
    """The factory registered as ``name`` in the registry of ``kind`` (see :meth:`Registry.get`)."""
    return _REGISTRIES[kind].get(name)


class Registry:
    """Map names to factories (functions or classes).

    Args:
        kind: what the registry holds ("model", "explainer", "method"), used in errors.

    Examples::

        >>> TOYS = Registry("toy")
        >>> @TOYS.register("tiny")
        ... def tiny(**kw):
        ...     return "built"
        >>> TOYS.get("tiny")()
        'built'
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable] = {}
        _declare(kind, self.names)
        _REGISTRIES[kind] = self

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
