"""Pretended torchrun ranks for the tests of code that orders its ranks (the runner, the
studies): one process plays rank 0, then rank 1, of two, with the barriers and broadcasts
between them recorded or replayed. Each test module wraps these in fixtures."""

from __future__ import annotations

from xdx_lib.core import devices


def pretend_rank(monkeypatch):
    """Make this process a pretended rank (of 2); returns ``set_rank(r)``, which sets the
    rank and returns the (cleared) log of barriers and of what the code under test records
    in it."""
    log: list = []
    rank = {"r": 0}
    monkeypatch.setattr(devices, "distributed", lambda: (rank["r"], 2))
    monkeypatch.setattr(devices.dist, "barrier", lambda *a, **k: log.append("barrier"))

    def set_rank(r):
        rank["r"] = r
        log.clear()
        return log

    return set_rank


def broadcasts(monkeypatch):
    """``broadcast_object_list`` between pretended ranks run one after the other: what rank 0
    sends, a later rank 1 receives. Returns the queue of what was sent."""
    sent: list = []

    def broadcast(objects, src=0):
        if devices.distributed()[0] == src:
            sent.append(list(objects))
        else:
            objects[:] = sent.pop(0)

    monkeypatch.setattr(devices.dist, "broadcast_object_list", broadcast)
    return sent
