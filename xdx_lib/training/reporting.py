"""What the training loop tells while it runs: per-epoch lines, a progress bar, a callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Reporting:
    """What the loop tells while it runs, none of which changes what it trains.

    Attributes:
        verbose: print one line per epoch (rank 0 only).
        progress: show a tqdm bar per epoch (rank 0 only).
        callback: ``callback(epoch, step)`` after every step (tests use it to interrupt).
    """

    verbose: bool = True
    progress: bool = False
    callback: Callable[[int, int], None] | None = None


#: A loop that prints nothing.
QUIET = Reporting(verbose=False)
