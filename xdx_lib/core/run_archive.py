"""A run cache packed for others, and fetched from them: readers start from trained models.

:func:`pack` writes the run cache (:func:`~xdx_lib.core.cache.runs_dir`) as one gzip tar,
``xdx-runs-<profile>-<id>.tar.gz``, with a ``manifest.json`` beside the files under
``runs/``: the archive's id, the profile, the commit and the machine that made it, and the
SHA-256 of every file. :func:`fetch` downloads such an archive (or reads a local one),
checks everything before it writes anything, and adds its files to the run cache, where
the experiments then find their models and results and train nothing.

The id (:func:`archive_id`) is a hash of what determines the profile's models and results:
the recorded fingerprint of the training code
(:data:`~xdx_lib.core.fingerprint.TRAINING_CODE`), the run cache's format versions
(:mod:`~xdx_lib.core.layout`), the profile's sizes and its experiment config. An archive
whose id is not the running code's holds models that this code would not have trained, so
it is refused rather than read: the cache keys alone would not notice a changed loss.

Every refusal is an :class:`ArchiveError`, one line that says what to do.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import hashlib
import http.client
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import torch
import yaml

from xdx_lib.core import fingerprint, layout
from xdx_lib.core.cache import atomic_write, hash_dict, project_root, runs_dir
from xdx_lib.core.config import PROFILES, Profile

#: The manifest's own format; bumped when its fields change meaning.
MANIFEST_FORMAT = 1
#: The manifest's name in the archive, and the folder that holds the run cache's files.
MANIFEST = "manifest.json"
PREFIX = "runs"
#: The prefix of the folders and files :func:`fetch` stages inside the run cache.
STAGING = ".xdx-fetch-"
#: How long a download may wait for the server before it gives up, in seconds.
TIMEOUT_S = 60


class ArchiveError(ValueError):
    """A run archive cannot be made, read or unpacked; the one-line message says what to do."""


def config_path(profile: str) -> Path:
    """The experiment config the profile's chapters run (``configs/<experiment>.yaml``),
    found as the notebooks find it: under the project's folder, else the current one."""
    return (project_root() or Path.cwd()) / "configs" / f"{_profile(profile).experiment}.yaml"


def _profile(name: str) -> Profile:
    """The :class:`~xdx_lib.core.config.Profile` named ``name``; an unknown name is an
    :class:`ArchiveError` that lists the known ones."""
    if name not in PROFILES:
        raise ArchiveError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]


def _config_data(profile: str) -> Any:
    """The profile's experiment config as parsed YAML.

    Parsed, not as text: a reworded comment changes no model, and must not make every
    published archive of the profile unreadable.
    """
    path = config_path(profile)
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ArchiveError(
            f"cannot read the experiment config {path} of profile {profile} ({type(e).__name__}); "
            "run from the project's folder, where configs/ is"
        ) from None


def archive_id(profile: str) -> str:
    """A short hash of what determines the profile's trained models and scored results.

    It holds the training code's recorded fingerprint, the five format versions, the
    profile's sizes and its experiment config: two copies of the code with the same id
    train the same models, so one may read the other's archive.
    """
    formats = {name: getattr(layout, name) for name in
               ("RUN_FORMAT", "MAPS_FORMAT", "SCORES_FORMAT", "REFERENCES_FORMAT",
                "INTERVENTIONS_FORMAT")}  # fmt: skip
    return hash_dict({"code": fingerprint.TRAINING_CODE, "formats": formats,
                      "profile": dataclasses.asdict(_profile(profile)),
                      "config": _config_data(profile)})  # fmt: skip


def archive_name(profile: str) -> str:
    """The file name of the profile's archive, e.g. ``xdx-runs-smoke-<id>.tar.gz``."""
    return f"xdx-runs-{profile}-{archive_id(profile)}.tar.gz"


def repository_url() -> str:
    """The project's repository: ``repository.url`` of the book's ``_config.yml`` (the one
    place it is set), else the installed package's ``Repository`` URL."""
    root = project_root()
    if root is not None and (root / "_config.yml").is_file():
        return yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("xdx").get_all("Project-URL") or []
    except PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip()
    raise ArchiveError("cannot tell the project's repository; give the archive's URL instead")


def published_url(profile: str, repository: str | None = None) -> str:
    """Where the book's workflow publishes the profile's archive for this code: the asset
    :func:`archive_name` of the release ``runs-<id>`` of the repository (``repository``,
    else ``$XDX_RUNS_REPOSITORY``, which a test points at a local server, else
    :func:`repository_url`)."""
    repo = (repository or os.environ.get("XDX_RUNS_REPOSITORY") or repository_url()).rstrip("/")
    return f"{repo}/releases/download/runs-{archive_id(profile)}/{archive_name(profile)}"


def _is_temporary(relative: PurePosixPath) -> bool:
    """Whether a file of the run cache is a write in progress (the ``.tmp`` names of the
    atomic writes, a fetch's staging folder, a write test): those are never packed."""
    return any(part.endswith(".tmp") or part.startswith(".xdx-") for part in relative.parts)


def run_files(runs: Path) -> dict[str, Path]:
    """``{relative POSIX path: path}`` of every file of the run cache, sorted, temporary
    files left out. A link is refused: an archive holds plain files only."""
    files = {}
    for path in sorted(runs.rglob("*")):
        relative = PurePosixPath(path.relative_to(runs).as_posix())
        if _is_temporary(relative):
            continue
        if path.is_symlink():
            raise ArchiveError(f"{path} is a link; a run archive holds plain files only: "
                               "replace it by the file it points to")  # fmt: skip
        if path.is_file():
            files[str(relative)] = path
    return files


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit(root: Path | None = None) -> str | None:
    """The project's commit (``git rev-parse HEAD``), or None outside a git checkout."""
    root = root or project_root()
    if root is None:
        return None
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def this_device() -> str:
    """A description of the machine that trains: the GPU's name, else the CPU's."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine() or 'unknown'})"


def manifest(profile: str, files: dict[str, Path], device: str | None = None) -> dict:
    """The manifest of an archive of ``files``: what made it, and each file's SHA-256."""
    return {"format": MANIFEST_FORMAT, "archive_id": archive_id(profile), "profile": profile,
            "commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "device": device or this_device(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "files": {name: sha256_file(path) for name, path in files.items()}}  # fmt: skip


def pack(profile: str, out_dir: str | os.PathLike, runs: str | os.PathLike | None = None,
         device: str | None = None) -> Path:  # fmt: skip
    """Write the run cache ``runs`` (default :func:`~xdx_lib.core.cache.runs_dir`) as
    ``out_dir/<archive_name(profile)>`` and return its path.

    The manifest comes first in the archive, so that :func:`fetch` reads it before any file.
    The archive is written to a temporary name and renamed, so a killed run leaves no half
    archive. ``device`` describes the machine that trained (default: this one's).
    """
    name = archive_name(profile)  # an unknown profile stops here, before any file is read
    runs = Path(runs) if runs is not None else runs_dir()
    files = run_files(runs) if runs.is_dir() else {}
    if not files:
        raise ArchiveError(f"the run cache {runs} holds no files; run the experiment first, "
                           "or give the folder that holds its runs (--runs)")  # fmt: skip
    info = json.dumps(manifest(profile, files, device), indent=2, sort_keys=True).encode()

    def write(f: BinaryIO) -> None:
        with tarfile.open(fileobj=f, mode="w:gz") as tar:
            member = tarfile.TarInfo(MANIFEST)
            member.size, member.mtime = len(info), int(time.time())
            tar.addfile(member, io.BytesIO(info))
            for relative, path in files.items():
                tar.add(path, f"{PREFIX}/{relative}", recursive=False, filter=_anonymous)

    return atomic_write(Path(out_dir) / name, write)


def _anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """``member`` without the packer's user and group: a published archive names no one."""
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _download(url: str, f: BinaryIO) -> None:
    """Copy what ``url`` serves into the open file ``f``; any failure is one line."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            shutil.copyfileobj(response, f, 1 << 20)
    except urllib.error.HTTPError as e:
        raise ArchiveError(f"cannot download {url}: HTTP {e.code} {e.reason}; check the "
                           "address") from None  # fmt: skip
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or type(e).__name__
        raise ArchiveError(
            f"cannot download {url} ({reason}); check the address and the "
            "network, or download the archive and fetch its path"
        ) from None


@contextmanager
def _local_archive(source: str, folder: Path) -> Iterator[Path]:
    """The archive ``source`` as a local file: a path as it is; an http(s) URL downloaded
    to a temporary file in ``folder`` (the run cache, where there is room for what it
    holds), removed afterwards whatever happens."""
    if not source.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise ArchiveError(f"{source} is not a file; give the path of a run archive or "
                               "its http(s) URL")  # fmt: skip
        yield path
        return
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=STAGING, suffix=".tar.gz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _download(source, f)
        yield Path(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _unsafe(name: str, why: str) -> ArchiveError:
    """The refusal of an archive member that could write outside the run cache."""
    return ArchiveError(f"the archive's member {name!r} {why}; the archive is unsafe: do not "
                        "use it, and tell whoever published it")  # fmt: skip


def archive_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The archive's files by (normalised) name, in the archive's order, each checked to be
    a plain file at a relative path inside the archive; folders are left out.

    A path that is absolute or climbs out with ``..``, a link, a device or a name given
    twice is refused before anything is written: extracted, it could write or point
    anywhere on the reader's machine.
    """
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise _unsafe(member.name, "points outside the archive's folder")
        if member.isdir():
            continue
        if not member.isfile():
            raise _unsafe(member.name, "is a link or a special file, not a plain file")
        if str(path) in members:
            raise _unsafe(member.name, "is given twice")
        members[str(path)] = member
    return members


def read_manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict:
    """The archive's manifest, checked to have the fields :func:`fetch` reads."""
    if MANIFEST not in members:
        raise ArchiveError(f"the archive has no {MANIFEST}; it is not a run archive: make one "
                           "with `xdx runs pack`")  # fmt: skip
    try:
        data = json.loads(tar.extractfile(members[MANIFEST]).read())
    except (ValueError, UnicodeDecodeError):
        data = None
    fields_ok = (isinstance(data, dict) and isinstance(data.get("archive_id"), str)
                 and isinstance(data.get("profile"), str) and isinstance(data.get("files"), dict)
                 and all(isinstance(v, str) for v in data["files"].values()))  # fmt: skip
    if not fields_ok:
        raise ArchiveError(f"the archive's {MANIFEST} is corrupt (not the JSON of a manifest); "
                           "download the archive again")  # fmt: skip
    return data


def check_made_by_this_code(data: dict) -> None:
    """Refuse an archive whose id is not the one this code computes for its profile: its
    models were trained by other code, or for other settings, and would be read as ours."""
    commit = data.get("commit") or "the commit"
    what = f"train the models, or check out {commit} that made it"
    if data["profile"] not in PROFILES:
        raise ArchiveError(f"this archive was made for the profile {data['profile']!r}, which "
                           f"this code does not know: {what}")  # fmt: skip
    ours = archive_id(data["profile"])
    if data["archive_id"] != ours:
        raise ArchiveError(f"this archive was made by other code (its id {data['archive_id']}, "
                           f"this code's {ours}): {what}")  # fmt: skip


def check_listing(members: dict[str, tarfile.TarInfo], files: dict[str, str]) -> None:
    """Refuse an archive whose files are not exactly those its manifest lists."""
    listed = {f"{PREFIX}/{name}" for name in files}
    held = set(members) - {MANIFEST}
    if held - listed:
        raise ArchiveError(f"the archive holds {min(held - listed)}, which its manifest does "
                           "not list; the archive was changed: download it again")  # fmt: skip
    if listed - held:
        raise ArchiveError(f"the archive lacks {min(listed - held)}, which its manifest "
                           "lists; the archive is incomplete: download it again")  # fmt: skip


def stage(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], files: dict[str, str],
          staging: Path) -> None:  # fmt: skip
    """Extract every listed file into ``staging`` and check its SHA-256 against the
    manifest. Files are read in the archive's order, so the archive is read once."""
    wanted = {f"{PREFIX}/{name}": name for name in files}
    for member_name, member in members.items():
        if member_name not in wanted:
            continue
        name = wanted[member_name]
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with tar.extractfile(member) as src, open(target, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                h.update(chunk)
                dst.write(chunk)
        if h.hexdigest() != files[name]:
            raise ArchiveError(f"the archive's file {member_name} differs from its manifest "
                               "(SHA-256); the archive is damaged or was changed: download "
                               "it again")  # fmt: skip


def install(staging: Path, files: dict[str, str], runs: Path) -> tuple[int, int]:
    """Move the staged files into the run cache; returns (files added, already there).

    Every file is checked before any is moved: one already there with the same bytes is
    left as it is, one with other bytes stops the fetch, so that nothing of the run cache
    is overwritten and a refused fetch adds nothing.
    """
    new = []
    for name, sha in files.items():
        dest = runs / name
        if not (dest.exists() or dest.is_symlink()):
            new.append(name)
        elif not dest.is_file() or dest.is_symlink() or sha256_file(dest) != sha:
            raise ArchiveError(f"the run cache already holds a different {dest}; move it away, "
                               "or fetch into another folder (--runs)")  # fmt: skip
    for name in new:
        (runs / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, runs / name)
    return len(new), len(files) - len(new)


@contextmanager
def _runs_folder(runs: Path) -> Iterator[Path]:
    """``runs``, created if needed, and removed again if it was created here and a failed
    fetch left it empty: a refused fetch leaves no trace."""
    created = not runs.exists()
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArchiveError(
            f"cannot create the run cache {runs} ({e.strerror}); make its "
            "parent writable, or choose another folder (--runs)"
        ) from None
    try:
        yield runs
    finally:
        if created and not any(runs.iterdir()):
            runs.rmdir()


def fetch(source: str, runs: str | os.PathLike | None = None) -> dict:
    """Add the files of the run archive ``source`` (an http(s) URL or a local path) to the
    run cache ``runs`` (default :func:`~xdx_lib.core.cache.runs_dir`).

    Everything is checked before anything reaches the run cache: the archive is a gzip tar
    of plain files at safe paths, its manifest's id is this code's, and every file's
    SHA-256 is the manifest's. The files are extracted into a temporary folder inside the
    run cache, then moved into place (:func:`install`). Returns the manifest with
    ``added`` and ``present`` (files already there) and the ``runs`` folder.
    """
    runs = Path(runs) if runs is not None else runs_dir()
    with _runs_folder(runs), _local_archive(source, runs) as path:
        staging = Path(tempfile.mkdtemp(dir=runs, prefix=STAGING))
        try:
            with tarfile.open(path, mode="r:gz") as tar:
                members = archive_members(tar)
                data = read_manifest(tar, members)
                check_made_by_this_code(data)
                check_listing(members, data["files"])
                stage(tar, members, data["files"], staging)
            added, present = install(staging, data["files"], runs)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise ArchiveError(
                f"{source} is not a gzip tar archive, or is damaged "
                f"({' '.join(str(e).split()) or type(e).__name__}); download "
                "it again"
            ) from None
        except OSError as e:
            raise ArchiveError(
                f"cannot unpack {source} into the run cache {runs} "
                f"({e.strerror or type(e).__name__}); free disk space or make "
                "it writable"
            ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {**data, "added": added, "present": present, "runs": str(runs)}
