"""Data in memory: subsets, the carving of a training split into the students', the
teacher's and the validation images, generated shapes, and the datasets by name."""

from __future__ import annotations

import pytest
import torch

from xdx_lib.data import DATASETS, Split, carve_training, load_dataset, make_shapes


def test_subset_keeps_masks_and_order():
    s = make_shapes(50, seed=3)
    sub = s.subset(10, seed=0)
    assert len(sub) == 10 and sub.masks.shape == (10, 1, 28, 28)
    assert s.subset(None) is s and s.subset(100) is s


def _ids(split: Split) -> set[int]:
    """The images of a split carved from :func:`_numbered`, by the number each carries."""
    return set(split.x[:, 0, 0, 0].long().tolist())


def _numbered(n: int) -> Split:
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone()
    return Split(x, torch.arange(n) % 3)


def test_validation_teacher_and_student_images_are_carved_apart():
    train = _numbered(100)
    students, teacher, val = carve_training(train, 20, 60, 10, seed=0)
    assert (len(students), len(teacher), len(val)) == (20, 60, 10)
    assert _ids(students) <= _ids(teacher)  # the students' images are the teacher's too
    assert not _ids(val) & _ids(teacher)  # no model trains on the validation images
    again = carve_training(train, 20, 60, 10, seed=0)
    assert all(torch.equal(a.x, b.x) for a, b in zip((students, teacher, val), again))
    other = carve_training(train, 20, 60, 10, seed=1)[2]
    assert _ids(other) != _ids(val)
    # all the rest for the teacher; the same students as with a smaller teacher subset
    s2, t2, _ = carve_training(train, 20, None, 10, seed=0)
    assert t2 is None and torch.equal(s2.x, students.x)
    everything = carve_training(train, None, 1000, 10, seed=0)[1]
    assert everything is None or len(everything) == 90


def test_carving_without_validation_keeps_the_old_subsets():
    train = _numbered(50)
    students, teacher, val = carve_training(train, 10, None, 0, seed=0)
    assert teacher is None and val is None
    assert torch.equal(students.x, train.subset(10, seed=0).x)
    with pytest.raises(ValueError, match="val_size"):
        carve_training(train, 10, None, 50)


def test_shapes_are_deterministic_and_masks_fit_the_objects():
    a, b = make_shapes(20, seed=5), make_shapes(20, seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, make_shapes(20, seed=6).x)
    assert isinstance(a, Split) and a.masks.dtype == torch.bool
    inside = a.x[a.masks].mean()
    outside = a.x[~a.masks].mean()
    assert inside > 0.5 > outside  # the object is the bright part


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset .imagenet.*fashion_mnist"):
        load_dataset("imagenet")


def test_importing_the_package_registers_every_dataset():
    assert set(DATASETS.names()) == {"cifar10", "fashion_mnist", "imagefolder", "mnist",
                                     "shapes"}  # fmt: skip
    shapes = load_dataset("shapes", n_train=12, n_test=4, train_subset=8)
    assert (len(shapes.train), len(shapes.test), shapes.classes) == (
        8, 4, ["square", "disc", "triangle", "cross"])
