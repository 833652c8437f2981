"""The datasets read from files: Fashion-MNIST from Debian's folder, a mirror or a
download, MNIST and CIFAR-10, image folders, and the one error a missing dataset gives."""

from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from xdx_lib.data.datasets import DataNotFoundError, load_dataset
from xdx_lib.data.sources import SYSTEM_FASHION_MNIST, load_fashion_mnist


def _write_idx(folder, n_train=20, n_test=10, gz=True):
    """Tiny IDX files in the layout of Debian's dataset-fashion-mnist."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def images(n):
        header = np.array([2051, n, 28, 28], dtype=">i4").tobytes()
        return header + rng.integers(0, 256, (n, 28, 28), dtype=np.uint8).tobytes()

    def labels(n):
        return np.array([2049, n], dtype=">i4").tobytes() + (np.arange(n) % 10).astype(
            np.uint8
        ).tobytes()

    files = {
        "train-images-idx3-ubyte": images(n_train),
        "train-labels-idx1-ubyte": labels(n_train),
        "t10k-images-idx3-ubyte": images(n_test),
        "t10k-labels-idx1-ubyte": labels(n_test),
    }
    for name, data in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def test_fashion_mnist_from_a_system_folder(tmp_path):
    system = tmp_path / "system"
    _write_idx(system)
    ds = load_fashion_mnist(tmp_path / "data", download=False, system_dir=system)
    assert (len(ds.train), len(ds.test)) == (20, 10)
    assert ds.train.x.shape == (20, 1, 28, 28) and ds.train.x.dtype == torch.float32
    assert 0.0 <= ds.train.x.min() and ds.train.x.max() <= 1.0
    assert ds.train.y.tolist() == [i % 10 for i in range(20)]
    # staged into data/ so that the next load needs nothing else
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    again = load_fashion_mnist(tmp_path / "data", download=False, system_dir=tmp_path / "none")
    assert torch.equal(again.train.x, ds.train.x)


def test_missing_fashion_mnist_names_both_remedies(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_fashion_mnist(tmp_path / "data", download=False, system_dir=tmp_path / "none")
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "--download" in msg and "XDX_DOWNLOAD=1" in msg


def test_missing_mnist_offline_is_one_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="MNIST not found"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_cli_data_missing_exits_2_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "xdx_lib", "data", "--dataset", "cifar10",
         "--data-root", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CIFAR-10 not found")


@pytest.mark.skipif(not SYSTEM_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist absent")
def test_real_fashion_mnist_subsets_are_deterministic(tmp_path):
    a = load_dataset("fashion_mnist", root=tmp_path, train_subset=500, test_subset=100)
    b = load_dataset("fashion_mnist", root=tmp_path, train_subset=500, test_subset=100)
    c = load_dataset("fashion_mnist", root=tmp_path, train_subset=500, subset_seed=1)
    assert len(a.train) == 500 and len(a.test) == 100
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.train.y, c.train.y)
    assert a.num_classes == 10 and a.in_channels == 1 and a.image_size == (28, 28)
    # every class is present in a random subset of 500 real images
    assert len(a.train.y.unique()) == 10


def test_imagefolder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.{'png' if i % 2 else 'jpg'}")
    ds = load_dataset("imagefolder", root=tmp_path, image_size=16)
    assert ds.classes == ["cat", "dog"]
    assert ds.train.x.shape == (6, 3, 16, 16) and ds.test.x.shape == (4, 3, 16, 16)
    grey = load_dataset("imagefolder", root=tmp_path, image_size=16, grayscale=True)
    assert grey.in_channels == 1


def test_imagefolder_missing_says_the_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"root/train/<class>"):
        load_dataset("imagefolder", root=tmp_path / "nothing")


@pytest.mark.parametrize("name, source", [("fashion_mnist", "FashionMNIST"),
                                          ("mnist", "MNIST"), ("cifar10", "CIFAR10")])  # fmt: skip
def test_xdx_download_lets_a_default_config_download(name, source, tmp_path, monkeypatch):
    """A config that says nothing about downloads leaves it to XDX_DOWNLOAD (as on Colab);
    an explicit download=False still wins."""
    import torchvision.datasets

    from xdx_lib.core.config import RunConfig
    from xdx_lib.experiments import session

    asked = []

    class Source:  # torchvision's dataset, without the network
        def __init__(self, root, train, download):
            asked.append(download)
            shape = (2, 32, 32, 3) if name == "cifar10" else (2, 28, 28)
            self.data, self.targets = np.zeros(shape, dtype=np.uint8), [0, 1]

    monkeypatch.setattr(torchvision.datasets, source, Source)
    monkeypatch.setenv("XDX_SYSTEM_DATA", "none")
    monkeypatch.setenv("XDX_DOWNLOAD", "1")
    cfg = RunConfig(dataset=name, profile="smoke", data_root=str(tmp_path), val_size=0)
    assert cfg.download is None
    assert len(session.load_data(cfg).train) == 2
    assert asked == [True, True]
    session.load_data(RunConfig(dataset=name, data_root=str(tmp_path), download=False,
                                val_size=0))
    assert asked[2:] == [False, False]


def test_xdx_system_data_moves_or_hides_the_debian_folder(tmp_path, monkeypatch):
    from xdx_lib.data.sources import system_fashion_mnist

    assert system_fashion_mnist() == SYSTEM_FASHION_MNIST
    _write_idx(tmp_path / "datasets" / "fashion-mnist")
    monkeypatch.setenv("XDX_SYSTEM_DATA", str(tmp_path / "datasets"))
    assert len(load_fashion_mnist(tmp_path / "data", download=False).train) == 20
    monkeypatch.setenv("XDX_SYSTEM_DATA", "none")
    assert system_fashion_mnist() is None
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "other", download=False)


def test_a_fashion_mnist_mirror_replaces_torchvision_s(monkeypatch):
    from torchvision.datasets import FashionMNIST

    from xdx_lib.data.sources import _fashion_mnist_class

    assert _fashion_mnist_class() is FashionMNIST
    monkeypatch.setenv("XDX_FASHION_MNIST_MIRROR", "http://127.0.0.1:8000/fashion")
    mirrored = _fashion_mnist_class()
    assert mirrored.__name__ == "FashionMNIST"  # torchvision's folder name
    assert mirrored.mirrors == ["http://127.0.0.1:8000/fashion/"]
    assert [md5 for _, md5 in mirrored.resources] == [None] * 4
    assert FashionMNIST.mirrors != mirrored.mirrors  # torchvision's class is left alone
