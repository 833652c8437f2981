"""The datasets read from files: Fashion-MNIST, MNIST, CIFAR-10 and a folder of your own
images, each registered in :data:`~xdx_lib.data.datasets.DATASETS` and read whole into a
:class:`~xdx_lib.data.datasets.Dataset` of tensors.

Where the data comes from (``fashion_mnist``): the project's ``data/`` folder, then the
Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``), then a
torchvision download, only when downloads are allowed (``download=True``, or
``download=None`` and ``XDX_DOWNLOAD=1``). ``mnist`` and ``cifar10`` come from ``data/`` or
a download; ``imagefolder`` reads ``root/train/<class>/*`` and ``root/test/<class>/*``.
Every failure is one :class:`~xdx_lib.data.datasets.DataNotFoundError` line that says what to do.

Two environment variables change where Fashion-MNIST comes from, for a machine with a
local copy and for the tests that play a machine without Debian's package:
``XDX_SYSTEM_DATA`` replaces ``/usr/share/datasets`` (``none``: use no system data) and
``XDX_FASHION_MNIST_MIRROR`` is a URL torchvision downloads the four ``.gz`` files from.

Layer: just above :mod:`xdx_lib.data.datasets` (its types and registry); importing the package
``xdx_lib`` imports this module, so these datasets are registered wherever a dataset is
loaded.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from xdx_lib.core.cache import atomic_write_bytes
from xdx_lib.data.datasets import DATASETS, BadDataError, DataNotFoundError, Dataset, Split

#: Where Debian's ``dataset-fashion-mnist`` package puts the IDX files.
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def system_fashion_mnist() -> Path | None:
    """Debian's Fashion-MNIST folder: :data:`SYSTEM_FASHION_MNIST`, or
    ``$XDX_SYSTEM_DATA/fashion-mnist`` when that variable is set, or None when it is
    ``none`` (a machine without the package, as Colab is)."""
    root = os.environ.get("XDX_SYSTEM_DATA")
    if not root:
        return SYSTEM_FASHION_MNIST
    return None if root.lower() == "none" else Path(root) / SYSTEM_FASHION_MNIST.name


FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def _to_split(images, labels) -> Split:
    """uint8 images ``[N, H, W]`` or ``[N, H, W, C]`` -> a float
    :class:`~xdx_lib.data.datasets.Split`."""
    x = torch.as_tensor(np.asarray(images))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return Split(x.float().div_(255.0).contiguous(), y)


def _stage_system_fashion_mnist(raw: Path, system_dir: Path) -> bool:
    """Decompress Debian's gzipped IDX files into ``raw`` where torchvision expects them."""
    names = [
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    ]  # fmt: skip
    sources = []
    for n in names:
        plain, gz = system_dir / n, system_dir / f"{n}.gz"
        if plain.is_file():
            sources.append((plain, False))
        elif gz.is_file():
            sources.append((gz, True))
        else:
            return False
    for n, (src, zipped) in zip(names, sources):
        if not (raw / n).is_file():
            data = gzip.open(src).read() if zipped else src.read_bytes()
            atomic_write_bytes(data, raw / n)
    return True


def _torchvision(cls, root: Path, train: bool, download: bool, label: str, remedy: str):
    """Open a torchvision dataset, turning "not found" into one actionable error line."""
    try:
        return cls(str(root), train=train, download=download)
    except RuntimeError as e:
        if download:
            raise DataNotFoundError(
                f"{label}: download failed ({e}); check the network, or {remedy}"
            ) from None
        raise DataNotFoundError(
            f"{label} not found under {root}; {remedy}, or allow a download "
            "(--download, or XDX_DOWNLOAD=1) where a network exists"
        ) from None
    except OSError as e:  # network errors during download
        raise DataNotFoundError(f"{label}: download failed ({e}); {remedy}") from None


def _fashion_mnist_class():
    """torchvision's ``FashionMNIST``, or with ``$XDX_FASHION_MNIST_MIRROR`` set, a copy that
    downloads from that URL instead of torchvision's mirror.

    The mirror is trusted as it is: its ``.gz`` files need not be byte-identical to the
    originals (Debian's are recompressed), so their MD5 sums are not checked. The copy keeps
    the name ``FashionMNIST``, which torchvision uses as the data folder's name.
    """
    from torchvision.datasets import FashionMNIST

    mirror = os.environ.get("XDX_FASHION_MNIST_MIRROR")
    if not mirror:
        return FashionMNIST
    resources = [(name, None) for name, _ in FashionMNIST.resources]
    return type("FashionMNIST", (FashionMNIST,),
                {"mirrors": [mirror.rstrip("/") + "/"], "resources": resources})  # fmt: skip


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(root: Path, download: bool, system_dir: Path | None = None):
    """Fashion-MNIST (Xiao et al. 2017): 60k/10k grey 28x28 images of 10 clothing classes.

    ``system_dir``: Debian's files (default :func:`system_fashion_mnist`)."""
    system_dir = system_dir or system_fashion_mnist()
    raw = root / "FashionMNIST" / "raw"
    have = all((raw / n).is_file() for n in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    if not have and system_dir is not None and system_dir.is_dir():
        have = _stage_system_fashion_mnist(raw, system_dir)
    remedy = (
        "install it with `sudo apt-get install dataset-fashion-mnist` "
        f"(files in {system_dir or SYSTEM_FASHION_MNIST})"
    )
    parts = [
        _torchvision(_fashion_mnist_class(), root, t, download and not have, "Fashion-MNIST",
                     remedy)  # fmt: skip
        for t in (True, False)
    ]
    train, test = (_to_split(p.data, p.targets) for p in parts)
    return Dataset("fashion_mnist", train, test, list(FASHION_CLASSES))


@DATASETS.register("mnist")
def load_mnist(root: Path, download: bool):
    """MNIST (LeCun et al. 1998): 60k/10k grey 28x28 handwritten digits."""
    from torchvision.datasets import MNIST

    remedy = f"place the IDX files in {root / 'MNIST' / 'raw'}"
    parts = [_torchvision(MNIST, root, t, download, "MNIST", remedy) for t in (True, False)]
    train, test = (_to_split(p.data, p.targets) for p in parts)
    return Dataset("mnist", train, test, [str(i) for i in range(10)])


@DATASETS.register("cifar10")
def load_cifar10(root: Path, download: bool):
    """CIFAR-10 (Krizhevsky 2009): 50k/10k colour 32x32 images of 10 classes."""
    from torchvision.datasets import CIFAR10

    remedy = f"place cifar-10-batches-py in {root}"
    parts = [_torchvision(CIFAR10, root, t, download, "CIFAR-10", remedy) for t in (True, False)]
    train, test = (_to_split(p.data, p.targets) for p in parts)
    return Dataset("cifar10", train, test, list(CIFAR10_CLASSES))


def _read_image_folder(folder: Path, size: int, grayscale: bool, classes=None):
    """Every image under ``folder/<class>/`` as one uint8 tensor, resized to ``size``.

    Raises:
        DataNotFoundError: the folder does not exist.
        BadDataError: it holds no class folder or no image, its classes differ from
            ``classes`` (the training split's), or a file is not a readable image (the
            message names the file).
    """
    from PIL import Image
    from torchvision.datasets import ImageFolder

    if not folder.is_dir():
        raise DataNotFoundError(
            f"image folder {folder} does not exist; an imagefolder dataset needs "
            "root/train/<class>/* and root/test/<class>/* (set data_root to that root)"
        )
    try:
        ds = ImageFolder(str(folder))
    except FileNotFoundError as e:  # no class folder, or no file with an image extension
        raise BadDataError(
            f"image folder {folder} holds no images ({' '.join(str(e).split())}); put images "
            "in one sub-folder per class, <class>/*.png or *.jpg"
        ) from None
    if classes is not None and ds.classes != classes:
        raise BadDataError(
            f"image folder {folder} has classes {ds.classes}, but the training split has "
            f"{classes}; give train/ and test/ the same class folders"
        )
    mode = "L" if grayscale else "RGB"
    images = []
    for path, _ in ds.samples:
        try:
            with Image.open(path) as img:
                images.append(np.asarray(img.convert(mode).resize((size, size), Image.BILINEAR)))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            why = " ".join(str(e).split()) or type(e).__name__
            raise BadDataError(
                f"cannot read image {path} ({why}); replace or delete that file"
            ) from None
    return np.stack(images), np.asarray(ds.targets), ds.classes


@DATASETS.register("imagefolder")
def load_imagefolder(root: Path, download: bool, image_size: int = 32, grayscale: bool = False):
    """Your own images: ``root/train/<class>/*`` and ``root/test/<class>/*``, any format
    PIL reads, resized to ``image_size`` squares (RGB, or grey with ``grayscale``)."""
    xtr, ytr, classes = _read_image_folder(root / "train", image_size, grayscale)
    xte, yte, _ = _read_image_folder(root / "test", image_size, grayscale, classes)
    return Dataset("imagefolder", _to_split(xtr, ytr), _to_split(xte, yte), classes)
