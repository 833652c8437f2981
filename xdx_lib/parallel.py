"""Students trained side by side: a CPU's cores used by one-thread processes.

A small student keeps the two threads of one process only partly busy (its convolutions
are too small to split well between cores), so a CPU trains more students an hour as
several one-thread processes, one student each. :func:`train_students` does that for the
students a caller is about to ask its :class:`~xdx_lib.session.Session` for: it trains
those the run cache lacks in worker processes and returns, and the caller then asks the
session for them as before, which loads them from the cache.

Each worker trains with one thread, so what a worker trains does not depend on how many
cores the machine has. On a GPU, under ``torchrun``, with one worker
(``XDX_WORKERS=1``) or with fewer than two students missing, nothing happens here and
the session trains each student itself when asked. Layer: above the session.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Iterable, Mapping

import torch

from .cache import runs_dir
from .checkpoints import checkpoint_epochs
from .config import ConfigError, RunConfig
from .devices import distributed, resolve_device
from .session import Session, student_job

#: The environment variable that sets how many processes train students side by side on
#: a CPU (1: none; the session trains them one by one).
WORKERS_ENV = "XDX_WORKERS"

#: The most worker processes :func:`default_workers` starts on its own.
MAX_WORKERS = 4


def default_workers(cfg: RunConfig) -> int:
    """How many one-thread processes train students for ``cfg``: ``$XDX_WORKERS`` when set,
    else one per core this process may use (at most :data:`MAX_WORKERS`) on a CPU, and 1
    on a GPU or under ``torchrun`` (where the session trains, on its device or ranks).

    Raises:
        ConfigError: ``$XDX_WORKERS`` is not a whole number of at least 1.
    """
    given = os.environ.get(WORKERS_ENV, "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise ConfigError(f"{WORKERS_ENV}={given!r}: give a whole number of training "
                              "processes, at least 1 (1: train one student at a time)")  # fmt: skip
        return int(given)
    if resolve_device(cfg.device).type != "cpu" or distributed()[1] > 1:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


def missing(session: Session, changes: Iterable[Mapping]) -> list[dict]:
    """The ``changes`` whose students the run cache does not hold finished, each student
    once (two changes that make one student, as ``kd`` and ``kd_cae`` do, count once)."""
    teacher = session.teacher()
    out, seen = [], set()
    for change in changes:
        job = student_job(session.config(**change), teacher)
        if job.path in seen or checkpoint_epochs(job.path) >= job.epochs:
            continue
        seen.add(job.path)
        out.append(dict(change))
    return out


def train_students(session: Session, changes: Iterable[Mapping],
                   workers: int | None = None) -> int:  # fmt: skip
    """Train the students ``session.student(**change)`` would make, for every change the
    run cache lacks, in ``workers`` one-thread processes at once (None:
    :func:`default_workers`); returns how many were trained here (0: none, the session
    will train them when asked).

    The session's teacher is trained (or loaded) first, here, so that every worker reads
    it from the cache. A student that fails in a worker raises here, with its error.
    """
    workers = default_workers(session.cfg) if workers is None else workers
    if workers < 2:
        return 0
    todo = missing(session, changes)
    if len(todo) < 2:
        return 0
    spawn = multiprocessing.get_context("spawn")  # no forked copy of the caller's threads
    with concurrent.futures.ProcessPoolExecutor(
            min(workers, len(todo)), mp_context=spawn, initializer=_start_worker,
            initargs=(str(runs_dir()),)) as pool:  # fmt: skip
        list(pool.map(_train_one, [session.cfg] * len(todo), todo))
    return len(todo)


#: Each worker's sessions, by config: its data and teacher are loaded once per worker.
_SESSIONS: dict[str, Session] = {}


def _start_worker(runs: str) -> None:
    """A worker trains with one thread, into the caller's run cache."""
    torch.set_num_threads(1)
    os.environ["XDX_RUNS"] = runs


def _train_one(cfg: RunConfig, change: dict) -> None:
    """In a worker: train (or find) one student of ``cfg`` with ``change``, quietly."""
    session = _SESSIONS.setdefault(repr(cfg), Session(cfg))
    session.student(verbose=False, **change)
