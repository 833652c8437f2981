"""The run cache: where expensive things live, how they are keyed, and atomic writes.

Everything expensive (teacher checkpoints, teacher logits and maps, students, metrics)
is stored under the runs directory, keyed by a short hash of what determines it. A file
is always written to a temporary name and renamed into place, so a killed process never
leaves a half-written checkpoint or result behind. A file that cannot be read back is a
:class:`CacheReadError`, one that cannot be written a :class:`CacheWriteError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch


def project_root() -> Path | None:
    """The folder holding xdx's ``pyproject.toml`` above the current directory, if any."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "xdx_lib").is_dir():
            return d
    return None


#: The runs folder chosen for the code running inside :func:`using_runs_dir` (None: none).
_CHOSEN_RUNS_DIR: ContextVar[Path | None] = ContextVar("xdx_runs_dir", default=None)


def runs_dir() -> Path:
    """Where the run cache lives: the folder :func:`using_runs_dir` chose, else
    ``$XDX_RUNS``, else ``<project>/runs``, else ``./runs``."""
    chosen = _CHOSEN_RUNS_DIR.get()
    if chosen is not None:
        return chosen
    if os.environ.get("XDX_RUNS"):
        return Path(os.environ["XDX_RUNS"])
    root = project_root()
    return (root or Path.cwd()) / "runs"


@contextmanager
def using_runs_dir(folder: str | os.PathLike | None) -> Iterator[None]:
    """Inside the block, :func:`runs_dir` is ``folder`` (None: as outside the block).

    The command line's ``--runs`` chooses the folder this way for the code it calls, so
    that neither the environment of the process nor anything outside the block changes.
    """
    if folder is None:
        yield
        return
    token = _CHOSEN_RUNS_DIR.set(Path(folder))
    try:
        yield
    finally:
        _CHOSEN_RUNS_DIR.reset(token)


def hash_dict(d: Any, length: int = 12) -> str:
    """A short, stable hash of JSON-able data (keys sorted), used as a cache key."""
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_hash(path: str | os.PathLike, length: int = 12) -> str:
    """A short SHA-256 of a file's bytes: the identity of a checkpoint in cache keys."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


class CacheWriteError(OSError):
    """A file of the run cache cannot be written; the message says where, why and what to do."""


class CacheReadError(RuntimeError):
    """A file of the run cache cannot be read back (corrupt, truncated, or not one of ours);
    the message says which and what to do. A RuntimeError, as a failed ``torch.load`` is."""


def _why(e: OSError) -> str:
    return e.strerror or type(e).__name__


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove it writable with a temporary file.

    Called before anything is trained, so that a read-only runs folder fails in a second,
    not after an epoch of training. Raises :class:`CacheWriteError` (one line).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".xdx-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise CacheWriteError(
            f"cannot write to the runs folder {folder} ({_why(e)}); make it writable, or "
            "choose another with --runs or XDX_RUNS"
        ) from None
    return folder


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Write ``path`` by calling ``write`` on a binary file at a temporary name beside it,
    then renaming it into place: a killed process never leaves a half-written file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, CacheWriteError):
            raise CacheWriteError(
                f"cannot save {path} ({_why(e)}); nothing was written there: free disk "
                "space or make the folder writable, or choose another runs folder (XDX_RUNS)"
            ) from None
        raise
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename it into place."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON (indented, keys sorted) atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    return atomic_write(path, lambda f: f.write(text))


def read_result(path: Path, key: str) -> dict | None:
    """The JSON record at ``path`` when it is there, readable and written for ``key`` (its
    ``key`` field); None otherwise, so that the caller computes it again and overwrites."""
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: recompute and overwrite
    return result if result.get("key") == key else None


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write bytes atomically."""
    return atomic_write(path, lambda f: f.write(data))


def load_tensors(path: str | os.PathLike) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU; a corrupt file is a
    :class:`CacheReadError` that says so clearly."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same to a user
        raise CacheReadError(
            f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            " -- the file is corrupt or not one of ours; delete it and run again"
        ) from None


def tensor_hash(t: torch.Tensor, length: int = 12) -> str:
    """A short SHA-256 of a tensor's values, dtype and shape (identifies inputs and targets)."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:length]
