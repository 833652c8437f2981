"""The learning curve: which epochs a run scores while it trains, and on which test images.

Every table reads a run's last epoch, scored on the whole test split; the epochs before it
are scored only for the curves the chapters draw, which report and choose nothing. A long
schedule is scored every few epochs (:func:`curve_epoch`), each time on the first
:data:`CURVE_TEST_IMAGES` test images (:func:`curve_split`). Layer: above the data.
"""

from __future__ import annotations

import math

import torch

from xdx_lib.data.datasets import Split

#: Test images scored after each curve epoch but the last (:func:`curve_epoch`); the last
#: epoch scores the whole test split, the number every table reads. Scoring all 10,000
#: images after each epoch would cost a small CPU student about as much as training it.
CURVE_TEST_IMAGES = 1000

#: The most learning-curve points a run scores before its last epoch. A long schedule is
#: scored every few epochs (every 3rd of 32, every 4th of 48, every 8th of 96), since
#: scoring every epoch would cost a sixth of a small student's training.
CURVE_POINTS = 12


def curve_epoch(epoch: int, epochs: int, points: int = CURVE_POINTS) -> bool:
    """Whether ``epoch`` (counted from 0) of an ``epochs``-long run is scored: every epoch
    of a run of at most ``points + 1`` epochs, else every ``ceil((epochs - 1) / points)``-th,
    the smallest step that keeps ``points`` at most before the last; and always the last,
    which every table reads."""
    every = max(1, math.ceil((epochs - 1) / points))
    return epoch == epochs - 1 or (epoch + 1) % every == 0


def curve_split(test: Split, extras: dict, n: int = CURVE_TEST_IMAGES) -> tuple[Split, dict]:
    """The first ``n`` test images and the matching rows of the test extras (the teacher's
    logits), for an epoch's learning-curve point; the whole split when it is no larger."""
    if len(test) <= n:
        return test, extras
    masks = None if test.masks is None else test.masks[:n]
    rows = {k: v[:n] if torch.is_tensor(v) and len(v) == len(test) else v
            for k, v in extras.items()}  # fmt: skip
    return Split(test.x[:n], test.y[:n], masks), rows
