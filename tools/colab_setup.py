"""What a chapter's Colab set-up cell runs once it has fetched the repository.

The cell (``tools/colab_cell.py`` writes it) gets the repository onto Colab's disk, since
nothing of the project is there before it; then it calls :func:`set_up` of this file, from
the fetched copy. Only the standard library is imported here: the library and its
dependencies are not installed yet when it runs. ``tests/test_colab_cell.py`` runs both on
a stand-in Colab, ``tests/test_reader.py`` in a fresh environment.
"""

from __future__ import annotations

import os
import subprocess
import sys

#: Written into the clone's ``.git`` once the fetch and the install have worked; the cell
#: fetches again (and this installs again) while it is missing, so that a run interrupted
#: half-way is completed by the next.
READY = ".git/xdx-ready"


def run(*command: str) -> None:
    """Run one set-up step; when it fails, show its output and stop the notebook."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        print(done.stdout, done.stderr, sep="\n")
        raise SystemExit(f"Colab set-up failed: `{' '.join(command)}` exited with status "
                         f"{done.returncode}; its output is above.")  # fmt: skip


def fetch_published_runs(home: str, profile: str) -> None:
    """Start from the trained models the book's workflow published for this code and
    ``profile``, where it published them (``xdx runs fetch --published``): the chapter then
    reads them instead of training. Without such an archive (a profile never published, code
    changed since, no network) the chapter trains what it needs, as it would have; one line
    says which. A fetch that worked is not repeated for the same run cache."""
    if profile == "auto":  # else the library decides, as the chapter will (GPU or not)
        profile = os.environ.get("XDX_PROFILE") or "auto"
    runs = os.environ.get("XDX_RUNS") or os.path.join(home, "runs")  # where xdx_lib reads it
    done = os.path.join(runs, f".xdx-fetched-{profile}")
    if os.path.isfile(done):
        return
    fetch = [sys.executable, "-m", "xdx_lib", "runs", "fetch", "--published", profile]
    got = subprocess.run(fetch, capture_output=True, text=True)
    if got.returncode == 0:
        print(got.stdout.strip())
        os.makedirs(runs, exist_ok=True)
        open(done, "w").close()
    else:
        why = (got.stderr.strip().splitlines() or ["no reason given"])[-1]
        print(f"No published models for profile {profile} ({why}); the chapter trains them.")


def set_up(home: str, drive: bool = False, profile: str = "auto") -> None:
    """Install the clone at ``home`` (once) and set the running chapter up to use it.

    The library is installed editable into the running Python; the chapter runs in
    ``home/book``, so that the run cache and the data go to ``home/runs`` and
    ``home/data``; torchvision may download the data (Colab has a network). With
    ``drive``, Google Drive is mounted beside ``home`` and holds the run cache, since a
    disconnect loses the VM's disk. Then the models published for ``profile`` are
    fetched, where there are some (:func:`fetch_published_runs`).
    """
    content = os.path.dirname(home)  # Colab's disk, /content
    ready = os.path.join(home, READY)
    if not os.path.isfile(ready):
        run(sys.executable, "-m", "pip", "install", "-q", "-e", home)
        open(ready, "w").close()
    sys.path.insert(0, home)
    os.chdir(f"{home}/book")
    os.environ.setdefault("XDX_DOWNLOAD", "1")
    if drive:
        from google.colab import drive as colab_drive

        colab_drive.mount(f"{content}/drive")
        os.environ.setdefault("XDX_RUNS", f"{content}/drive/MyDrive/xdx/runs")
    fetch_published_runs(home, profile)
