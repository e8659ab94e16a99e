"""Stratified, seeded splits: a train/validation split and k folds for cross-validation.

Both keep each class's share in every part (stratified), are reproducible from ``seed`` and
give disjoint parts that together hold every file exactly once.

Example:
    >>> from cxrexplain.data import LabeledFiles, stratified_split
    >>> files = LabeledFiles(tuple(f"{i}.png" for i in range(10)), (0,) * 5 + (1,) * 5,
    ...                      ("NORMAL", "PNEUMONIA"))
    >>> train, val = stratified_split(files, 0.2, seed=0)
    >>> train.counts(), val.counts()
    ({'NORMAL': 4, 'PNEUMONIA': 4}, {'NORMAL': 1, 'PNEUMONIA': 1})
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrexplain._checks import check_fraction, check_int
from cxrexplain.data.files import KAGGLE_PARTS, LabeledFiles, detect_layout, list_images
from cxrexplain.data.files import scan_classes as _scan
from cxrexplain.errors import InvalidInputError

__all__ = ["Fold", "k_folds", "resolve_files", "stratified_split"]


@dataclass(frozen=True)
class Fold:
    """One fold of a k-fold cross-validation.

    Attributes:
        index: The fold's number, from 0.
        train: The files to train on (the other k - 1 folds).
        test: The held-out files of this fold.

    Example:
        >>> fold = k_folds("cxr", k=5)[0]
        >>> fold.index, len(fold.train), len(fold.test)
        (0, 12, 3)
    """

    index: int
    train: LabeledFiles
    test: LabeledFiles


def stratified_split(
    files: LabeledFiles, fraction: float, *, seed: int = 0
) -> tuple[LabeledFiles, LabeledFiles]:
    """Split files into (train, validation), each class in proportion.

    Each class gives ``round(n * fraction)`` files to validation, at least one when it has two
    or more files and never all of them.

    Args:
        files: The files to split.
        fraction: The validation share, in (0, 1).
        seed: Seed of the shuffle; the same seed gives the same split.

    Returns:
        ``(train, validation)``, disjoint, each in the original (sorted) order.

    Raises:
        InvalidInputError: ``fraction`` is outside (0, 1).

    Example:
        >>> from cxrexplain.data import list_images
        >>> train, val = stratified_split(list_images("cxr"), 0.2, seed=1)
        >>> train.counts(), val.counts()
        ({'COVID': 4, 'NORMAL': 4, 'PNEUMONIA': 4}, {'COVID': 1, 'NORMAL': 1, 'PNEUMONIA': 1})
    """
    check_fraction(fraction, "validation_split", open_interval=True)
    rng = np.random.default_rng(_check_seed(seed))
    labels = files.label_array
    held: list[int] = []
    for label in range(len(files.class_names)):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        count = min(max(1, round(len(members) * fraction)), len(members) - 1)
        held.extend(rng.permutation(members)[:count].tolist())
    held_set = set(held)
    train = [i for i in range(len(files)) if i not in held_set]
    return files.subset(train), files.subset(sorted(held_set))


def k_folds(
    root: str | os.PathLike[str] | LabeledFiles,
    k: int = 5,
    seed: int = 0,
    *,
    classes: Sequence[str] | None = None,
) -> list[Fold]:
    """Stratified k-fold cross-validation folds.

    The files of each class are shuffled with ``seed`` and dealt to the folds in turn
    (continuing the turn from one class to the next, so fold sizes differ by at most one).
    Every file is in exactly one test part; fold i trains on the other k - 1 parts.

    Args:
        root: A class-folder root, a Kaggle root (its ``train/`` and ``val/`` are pooled;
            ``test/`` stays out, for a final check), or a :class:`LabeledFiles`.
        k: Number of folds, >= 2 and at most the size of the smallest class.
        seed: Seed of the shuffle.
        classes: Class folder names (see :func:`~cxrexplain.data.list_images`).

    Returns:
        ``k`` :class:`Fold` objects.

    Raises:
        InvalidInputError: ``k`` < 2, or a class has fewer than ``k`` images.

    Example:
        >>> folds = k_folds("cxr", k=4, seed=0)
        >>> [len(f.test) for f in folds]
        [4, 4, 4, 3]
    """
    check_int(k, "k", minimum=2)
    files = root if isinstance(root, LabeledFiles) else resolve_files(root, classes=classes)
    counts = files.counts()
    small = {name: n for name, n in counts.items() if n < k}
    if small:
        name, n = next(iter(small.items()))
        raise InvalidInputError(
            f"k: class '{name}' has {n} images, fewer than k={k} folds; lower k"
        )
    rng = np.random.default_rng(_check_seed(seed))
    labels = files.label_array
    fold_of = np.empty(len(files), dtype=np.int64)
    turn = 0
    for label in range(len(files.class_names)):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (np.arange(len(members)) + turn) % k
        turn = (turn + len(members)) % k
    folds = []
    for index in range(k):
        test = np.flatnonzero(fold_of == index)
        train = np.flatnonzero(fold_of != index)
        folds.append(Fold(index, files.subset(train.tolist()), files.subset(test.tolist())))
    return folds


def resolve_files(
    root: str | os.PathLike[str], *, classes: Sequence[str] | None = None
) -> LabeledFiles:
    """All training files of a root: a class-folder root, or a Kaggle root's train + val.

    Example:
        >>> resolve_files("chest_xray").counts()  # train/ and val/ pooled
        {'NORMAL': 6, 'PNEUMONIA': 6}
    """
    if detect_layout(root) == "classes":
        return list_images(root, classes=classes)
    folder = Path(os.fspath(root))
    train = list_images(folder / KAGGLE_PARTS[0], classes=classes)
    val = _scan(folder / KAGGLE_PARTS[1], train.class_names, require_all=False)
    return train + val


def _check_seed(seed: int) -> int:
    return check_int(seed, "seed", minimum=0)
