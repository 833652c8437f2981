"""Datasets held as tensors in memory: the splits, the dataset, how one is loaded by name
and carved into the students', the teacher's and the validation images, and generated
shapes with known object masks.

Iterating over a torchvision dataset item by item (PIL image, transforms) costs about
30 s an epoch on a 2-core machine for Fashion-MNIST; indexing one tensor costs 0.3 s.
So every source is loaded once into a :class:`Dataset` of float tensors in [0, 1]
(``[N, C, H, W]``) with integer labels, and training indexes into it.

:func:`load_dataset` loads any dataset registered in :data:`DATASETS`: the generated
``shapes`` (:func:`make_shapes`) here, the datasets read from files (Fashion-MNIST, MNIST,
CIFAR-10, an image folder) in :mod:`xdx_lib.data.sources`, which says where each comes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from xdx_lib.core.cache import project_root
from xdx_lib.core.config import ConfigError
from xdx_lib.core.registry import Registry

#: Every dataset a config can name, ``shapes`` (here), ``fashion_mnist``, ``mnist``,
#: ``cifar10`` and ``imagefolder`` (:mod:`xdx_lib.data.sources`).
DATASETS = Registry("dataset")

#: The classes of the generated ``shapes`` (:func:`make_shapes`).
SHAPE_CLASSES = ["square", "disc", "triangle", "cross"]


class DataNotFoundError(FileNotFoundError):
    """A dataset is neither on disk nor downloadable; the message says what to do."""


class BadDataError(DataNotFoundError):
    """Data is on disk but cannot be used (empty, mismatched, unreadable); the message names
    the folder or file and what to do. A :class:`DataNotFoundError`, so one ``except``
    catches every data problem."""


class SplitSizeError(ConfigError):
    """The training split cannot be carved into the sizes asked
    (:func:`~xdx_lib.data.datasets.carve_training`):
    a size below its minimum, or a validation split that leaves no image to train on. The
    message names the sizes, the images there are and the fields (and flags) to change. A
    :class:`~xdx_lib.core.config.ConfigError`, since the remedy is a config value: the command
    line prints it as its one line."""


@dataclass
class Split:
    """One split: images ``x`` (float32 in [0, 1], ``[N, C, H, W]``), labels ``y`` (int64),
    and for generated data the object ``masks`` (bool, ``[N, 1, H, W]``)."""

    x: torch.Tensor
    y: torch.Tensor
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int | None, seed: int = 0) -> Split:
        """A deterministic random subset of ``n`` items (all of them when ``n`` is None).

        The subset depends on ``seed`` only, never on a run's training seed, so that every
        method and seed of an experiment sees the same images.
        """
        if n is None or n >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].sort().values
        masks = None if self.masks is None else self.masks[idx]
        return Split(self.x[idx], self.y[idx], masks)


@dataclass
class Dataset:
    """A dataset in memory: its splits, class names and image shape.

    Attributes:
        train: the students' training images.
        test: the test images (every score the book reports).
        classes: the class names.
        val: images of the training split that no model trains on, for choosing options
            such as KD's weight and temperature (None: none held out).
        teacher_train: the teacher's training images, the students' among them (None: the
            same as ``train``).
    """

    name: str
    train: Split
    test: Split
    classes: list[str]
    val: Split | None = None
    teacher_train: Split | None = None

    @property
    def teacher_split(self) -> Split:
        """The images the teacher trains on (``teacher_train``, else ``train``)."""
        return self.train if self.teacher_train is None else self.teacher_train

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.x.shape[-2:])


def default_data_dir() -> Path:
    """``$XDX_DATA``, else the project's ``data/`` folder, else ``./data``."""
    if os.environ.get("XDX_DATA"):
        return Path(os.environ["XDX_DATA"])
    return (project_root() or Path.cwd()) / "data"


def downloads_allowed(download: bool | None) -> bool:
    """``download`` if given, else whether ``XDX_DOWNLOAD=1`` is set."""
    if download is not None:
        return bool(download)
    return os.environ.get("XDX_DOWNLOAD", "0").lower() in ("1", "true", "yes")


def make_shapes(n: int, size: int = 28, seed: int = 0, noise: float = 0.15) -> Split:
    """Generated grey images of one shape each, with the shape's exact mask.

    Each image holds one object (square, disc, triangle or cross, the class) of random
    size, position and brightness on a noisy background with two faint distractor
    blobs, so that the object's pixels are known and localisation metrics (pointing
    game, relevance mass) can be scored against ground truth. Deterministic in ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    yy, xx = yy.float(), xx.float()
    xs, ys, ms = [], [], []
    for _ in range(n):
        label = int(torch.randint(len(SHAPE_CLASSES), (1,), generator=g))
        r = float(torch.empty(1).uniform_(size * 0.14, size * 0.24, generator=g))
        cy, cx = (float(v) for v in torch.empty(2).uniform_(r + 1, size - r - 2, generator=g))
        dy, dx = (yy - cy).abs(), (xx - cx).abs()
        if label == 0:
            mask = (dy <= r) & (dx <= r)
        elif label == 1:
            mask = dy**2 + dx**2 <= r**2
        elif label == 2:
            mask = (yy - cy <= r) & (yy - cy >= -r) & (dx <= (yy - cy + r) / 2)
        else:
            mask = ((dy <= r) & (dx <= r / 3)) | ((dx <= r) & (dy <= r / 3))
        img = torch.rand(size, size, generator=g) * noise
        for _ in range(2):  # faint distractors that are not the object
            by, bx = (float(v) for v in torch.randint(0, size, (2,), generator=g))
            img += 0.25 * torch.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / 8.0)
        bright = float(torch.empty(1).uniform_(0.6, 1.0, generator=g))
        img = torch.where(mask, torch.full_like(img, bright), img).clamp(0, 1)
        xs.append(img)
        ys.append(label)
        ms.append(mask)
    return Split(torch.stack(xs).unsqueeze(1), torch.tensor(ys), torch.stack(ms).unsqueeze(1))


@DATASETS.register("shapes")
def load_shapes(root: Path, download: bool, n_train: int = 6000, n_test: int = 1000, seed=0):
    """Generated shapes with object masks (see :func:`make_shapes`); nothing is read."""
    train = make_shapes(n_train, seed=seed)
    test = make_shapes(n_test, seed=seed + 1)
    return Dataset("shapes", train, test, list(SHAPE_CLASSES))


def check_data_root(name: str, root: str | os.PathLike | None,
                    download: bool | None = None) -> Path:  # fmt: skip
    """The data folder of dataset ``name``; a given root that does not exist is an error.

    Nothing is created by mistake: a mistyped ``--data-root`` fails here instead of being
    filled with a dataset. Only when downloads are allowed (and the dataset can be
    downloaded) is a missing root created, deliberately. The default folder
    (:func:`default_data_dir`) is always accepted; ``shapes`` reads nothing.
    """
    if root is None:
        return default_data_dir()
    root = Path(root)
    if name == "shapes" or root.is_dir():
        return root
    if root.exists():
        raise DataNotFoundError(f"data root {root} is not a folder; give the data folder")
    if name == "imagefolder":
        raise DataNotFoundError(
            f"data root {root} does not exist; an imagefolder dataset needs "
            "root/train/<class>/* and root/test/<class>/* (set data_root to that root)"
        )
    if not downloads_allowed(download):
        raise DataNotFoundError(
            f"data root {root} does not exist; check the path (--data-root, data_root), or "
            "allow a download (--download) to create it"
        )
    return root


def load_dataset(
    name: str = "fashion_mnist",
    root: str | os.PathLike | None = None,
    download: bool | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    teacher_subset: int | None = None,
    val_size: int = 0,
    **options,
) -> Dataset:
    """Load a registered dataset into memory, optionally as deterministic subsets.

    Args:
        name: a registered dataset (``fashion_mnist``, ``mnist``, ``cifar10``,
            ``imagefolder``, ``shapes``).
        root: data folder (default :func:`~xdx_lib.data.datasets.default_data_dir`; for
            ``imagefolder``, the folder holding ``train/`` and ``test/``).
        download: allow torchvision to download; None (the default): whether
            ``XDX_DOWNLOAD=1`` is set, so that the environment decides.
        train_subset, test_subset: keep this many images of each split (None: all).
        subset_seed: which subset; fixed per experiment, independent of training seeds.
        teacher_subset: the teacher's training images, the students' among them (None:
            the students' own).
        val_size: training images held out as ``val``
            (:func:`~xdx_lib.data.datasets.carve_training`).
        **options: source-specific options (``image_size``, ``grayscale`` for
            ``imagefolder``; ``n_train``, ``n_test`` for ``shapes``).

    Raises:
        DataNotFoundError: the data is not on disk and cannot be downloaded, or ``root``
            was given and does not exist (without ``download``); the message names the
            remedies. :class:`~xdx_lib.data.datasets.BadDataError` (a subclass): the data is
            there but unusable.
        SplitSizeError: the training split cannot be carved into ``val_size``,
            ``train_subset`` and ``teacher_subset`` (:func:`~xdx_lib.data.datasets.check_carving`).
    """
    loader = DATASETS.get(name)
    root = check_data_root(name, root, download)
    if not root.is_dir() and name != "shapes" and downloads_allowed(download):
        root.mkdir(parents=True)  # asked for: a download into a new folder
    ds = loader(root, downloads_allowed(download), **options)
    ds.train, ds.teacher_train, ds.val = carve_training(ds.train, train_subset, teacher_subset,
                                                        val_size, subset_seed)  # fmt: skip
    ds.test = ds.test.subset(test_subset, subset_seed)
    return ds


def _take(split: Split, idx: torch.Tensor) -> Split:
    idx = idx.sort().values
    return Split(split.x[idx], split.y[idx], None if split.masks is None else split.masks[idx])


def carve_training(train: Split, student: int | None, teacher: int | None, val_size: int,
                   seed: int = 0) -> tuple[Split, Split | None, Split | None]:  # fmt: skip
    """The students', the teacher's and the validation images of one training split.

    One seeded permutation of the split decides all three: its first ``val_size`` images
    are the validation split, which no model trains on; of the rest, the first ``teacher``
    are the teacher's (None: the students' own) and the first ``student`` the students'
    (None: all the rest). So the students' images are among the teacher's whenever
    ``student <= teacher``, and every method and seed of an experiment sees the same images.

    ``val_size`` is exact; ``student`` and ``teacher`` are at most so many, all the rest
    when fewer are left (as :meth:`Split.subset` keeps all of a smaller split), so that a
    profile's subsets fit a smaller dataset: the ``book`` profile's 55,000 teacher images
    are CIFAR-10's 45,000 left beside its 5,000 validation images.

    Returns ``(students, teacher, validation)``; the teacher's is None when it equals the
    students' and the validation split None when ``val_size`` is 0.

    Raises:
        SplitSizeError: ``val_size`` below 0, ``student`` or ``teacher`` below 1, or no
            image left to train on beside the validation split (:func:`check_carving`).
    """
    check_carving(len(train), student, teacher, val_size)
    if val_size == 0 and teacher is None:
        return train.subset(student, seed), None, None  # one subset, as it always was
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train), generator=g)
    val, rest = perm[:val_size], perm[val_size:]
    students = _take(train, rest[:student])
    teachers = None if teacher is None or teacher == student else _take(train, rest[:teacher])
    return students, teachers, (_take(train, val) if val_size else None)


def check_carving(n: int, student: int | None, teacher: int | None, val_size: int) -> None:
    """Raise :class:`SplitSizeError` unless :func:`carve_training` can carve ``n`` training
    images into ``val_size`` validation images and the students' and teacher's subsets.

    The message says what was asked, how many images there are and which field (and flag)
    to change: the profile's sizes apply unless set, so a small dataset under a profile
    sized for Fashion-MNIST meets its ``val_size`` first.
    """
    for name, flag, size in (("train_subset", "--train-subset", student),
                             ("teacher_subset", "--teacher-subset", teacher)):  # fmt: skip
        if size is not None and size < 1:
            raise SplitSizeError(f"config: {name}={size!r} must be at least 1 (training "
                                 f"images); set {name} ({flag}) to 1 or more")  # fmt: skip
    if val_size < 0:
        raise SplitSizeError(f"config: val_size={val_size!r} must be >= 0; set val_size "
                             "(--val-size) to 0 (no validation split) or more")  # fmt: skip
    if n == 0:
        raise SplitSizeError("data too small: the training split has no images; give the "
                             "dataset training images")  # fmt: skip
    if val_size >= n:
        teachers = "the students'" if teacher is None else teacher
        asked = (f"train_subset {'all' if student is None else student}, "
                 f"teacher_subset {teachers}")  # fmt: skip
        raise SplitSizeError(
            f"data too small: the training split has {n} images, too few to hold out "
            f"val_size {val_size} for validation and train on the rest ({asked}, at most "
            f"what is left); set val_size (--val-size, the profile's unless given) below "
            f"{n}, or 0 for no validation split"
        )
