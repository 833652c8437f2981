"""Data in memory: subsets, the carving of a training split into the students', the
teacher's and the validation images, generated shapes, and the datasets by name."""

from __future__ import annotations

import pytest
import torch

from xdx_lib.core.config import ConfigError
from xdx_lib.data.datasets import (
    DATASETS,
    Split,
    SplitSizeError,
    carve_training,
    check_carving,
    load_dataset,
    make_shapes,
)


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


#: Every way a training split of 17 images cannot be carved: ``(train_subset,
#: teacher_subset, val_size)`` and what the one line must say (the sizes, the images there
#: are, the field and flag to change).
UNCARVABLE = [
    ((1024, None, 256), ["17 images", "val_size 256", "train_subset 1024", "below 17"]),
    ((None, None, 17), ["17 images", "val_size 17", "train_subset all, teacher_subset the "
                        "students'", "below 17"]),  # fmt: skip
    ((5, 5, 18), ["17 images", "val_size 18", "teacher_subset 5", "--val-size"]),
    ((None, 10, 40), ["17 images", "val_size 40", "teacher_subset 10", "below 17"]),
    ((20, 30, 1000), ["17 images", "val_size 1000", "train_subset 20", "teacher_subset 30"]),
    ((None, None, -1), ["val_size=-1", "must be >= 0", "--val-size"]),
    ((5, 10, -3), ["val_size=-3", "must be >= 0"]),
    ((0, None, 0), ["train_subset=0", "at least 1", "--train-subset"]),
    ((-3, None, 5), ["train_subset=-3", "at least 1"]),
    ((0, 10, 5), ["train_subset=0", "at least 1"]),
    ((None, 0, 0), ["teacher_subset=0", "at least 1", "--teacher-subset"]),
    ((5, -1, 5), ["teacher_subset=-1", "at least 1"]),
    ((-1, -1, -1), ["train_subset=-1"]),  # the first bad size is named
]


@pytest.mark.parametrize("sizes, words", UNCARVABLE, ids=lambda v: str(v))
def test_an_uncarvable_split_says_the_sizes_and_the_remedy(sizes, words):
    with pytest.raises(SplitSizeError) as caught:
        carve_training(_numbered(17), *sizes)
    message = str(caught.value)
    assert all(w in message for w in words), message
    assert "\n" not in message  # one line
    assert isinstance(caught.value, ConfigError)  # the command line's one-line errors


def test_an_empty_training_split_cannot_be_carved():
    with pytest.raises(SplitSizeError, match="has no images"):
        carve_training(_numbered(0), None, None, 0)


def _expected(n, student, teacher, val):
    """The sizes :func:`carve_training` promises, or None where it must refuse."""
    if any(v is not None and v < 1 for v in (student, teacher)) or val < 0 or val >= n:
        return None
    rest = n - val
    s = rest if student is None else min(student, rest)
    t = None if teacher is None or teacher == student else min(teacher, rest)
    return s, t, (val or None)


SIZES = [None, -1, 0, 1, 11, 16, 17, 1024]


@pytest.mark.parametrize("val", [-1, 0, 1, 5, 16, 17, 256])
def test_every_combination_carves_or_refuses_as_promised(val):
    """The whole grid of subsets and validation sizes over 17 images: the validation split
    is exact, the subsets at most what is left; anything else is one SplitSizeError."""
    train = _numbered(17)
    for student in SIZES:
        for teacher in SIZES:
            want = _expected(17, student, teacher, val)
            if want is None:
                with pytest.raises(SplitSizeError):
                    carve_training(train, student, teacher, val)
                with pytest.raises(SplitSizeError):
                    check_carving(17, student, teacher, val)
                continue
            check_carving(17, student, teacher, val)
            s, t, v = carve_training(train, student, teacher, val)
            got = (len(s), None if t is None else len(t), None if v is None else len(v))
            assert got == want, (student, teacher, val)
            used = _ids(s) | (_ids(t) if t is not None else set())
            assert v is None or not used & _ids(v)


def test_subsets_larger_than_what_is_left_take_all_the_rest():
    """The book profile's 55,000 teacher images on a split of 50,000 with 5,000 held out
    (CIFAR-10): the teacher takes the 45,000 left, the students their 5,000 of them."""
    students, teacher, val = carve_training(_numbered(100), 10, 110, 10, seed=0)
    assert (len(students), len(teacher), len(val)) == (10, 90, 10)
    assert _ids(students) <= _ids(teacher)


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
