"""Kinds that steer code in more than one layer, as types rather than bare strings.

Each is a string enum: its members compare equal to their values, so results stored as
JSON (where a group is a plain string) read back and compare as before, and a typo in the
code is an ``AttributeError`` rather than a silent mismatch.
"""

from __future__ import annotations

import enum

if hasattr(enum, "StrEnum"):  # Python 3.11+
    StrEnum = enum.StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, enum.Enum):
        """A string enum whose ``str()`` and format are its value (as 3.11's ``StrEnum``)."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return format(str(self.value), spec)


class RunGroup(StrEnum):
    """The group a result of an experiment belongs to, which says what reads it.

    ``teacher``: the experiment's teacher, scored as a run; ``main``: every method on the
    experiment's seeds, fully scored (the accuracy and explanation tables); ``claims``: the
    claims' methods on the seeds of the claims as well, lightly scored; ``sweep``: one
    XDistillation option varied; ``shapes``: the localisation runs on generated shapes;
    ``reference``: the image-blind reference maps.
    """

    TEACHER = "teacher"
    MAIN = "main"
    CLAIMS = "claims"
    SWEEP = "sweep"
    SHAPES = "shapes"
    REFERENCE = "reference"
