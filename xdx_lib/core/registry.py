"""Names of things, by kind: the registries of models, explainers, methods, ... and the
plain lists of choices (fusions, schedules, ...), all looked up with :func:`choices`.

Modelled on timm's ``register_model`` / ``create_model``: a module registers its
builders with a decorator, and callers build things by name, so that a config file
or a command-line flag can name any registered thing and an unknown name fails with
the list of known ones.

Every :class:`Registry` and every list declared with :func:`declare_choices` is known by
its *kind* ("model", "fusion", ...). The config (:mod:`xdx_lib.core.config`) validates a field
by the kind it names, so it imports this module only and sits below everything it
configures; a new option appears in validation and in the command line's help at once.

A registry may also record, for every name, the options class its factory declares (a
method's ``Options``, see :meth:`Registry.options`): the config validates a method's
options through that class without building the method, and without importing the module
that defines it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Callable)

#: Every kind of name, with a function giving its allowed names (called when asked, so
#: that registrations made after a kind is declared count).
_NAMES_OF_KIND: dict[str, Callable[[], Sequence[str]]] = {}
_REGISTRIES: dict[str, Registry] = {}


def _declare(kind: str, names: Callable[[], Sequence[str]]) -> None:
    if kind in _NAMES_OF_KIND:
        raise ValueError(f"the kind {kind!r} is declared twice")
    _NAMES_OF_KIND[kind] = names


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
        return tuple(_NAMES_OF_KIND[kind]())
    except KeyError:
        known = sorted(_NAMES_OF_KIND)
        raise KeyError(f"no kind of name {kind!r} is declared; known: {known}") from None


def options_class(kind: str, name: str) -> type:
    """The options class the factory registered as ``name`` in the registry of ``kind``
    declares (see :meth:`Registry.options`); nothing is built."""
    return _REGISTRIES[kind].options(name)


class Registry:
    """Map names to factories (functions or classes).

    Args:
        kind: what the registry holds ("model", "explainer", "method"), used in errors.
        options_attribute: the class attribute in which every registered factory declares
            its options class (``"Options"`` for methods), recorded at registration and
            returned by :meth:`~xdx_lib.core.registry.Registry.options`; None (default): the
            factories declare none.

    Examples::

        >>> TOYS = Registry("toy")
        >>> @TOYS.register("tiny")
        ... def tiny(**kw):
        ...     return "built"
        >>> TOYS.get("tiny")()
        'built'
    """

    def __init__(self, kind: str, options_attribute: str | None = None):
        self.kind = kind
        self.options_attribute = options_attribute
        self._items: dict[str, Callable] = {}
        self._options: dict[str, type] = {}
        _declare(kind, self.names)
        _REGISTRIES[kind] = self

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator that registers a factory under ``name`` (default: its ``__name__``)."""

        def deco(fn: T) -> T:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            if self.options_attribute is not None:
                if not hasattr(fn, self.options_attribute):
                    raise TypeError(f"{self.kind} {key!r} declares no options class "
                                    f"{self.options_attribute!r}")  # fmt: skip
                self._options[key] = getattr(fn, self.options_attribute)
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

    def options(self, name: str) -> type:
        """The options class the factory registered as ``name`` declared at registration.

        Raises:
            ValueError: ``name`` is not registered (the message lists the known names).
            TypeError: this registry records no options (``options_attribute`` is None).
        """
        if self.options_attribute is None:
            raise TypeError(f"the {self.kind} registry records no options classes")
        self.get(name)  # an unknown name fails here, listing the known ones
        return self._options[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
