"""Stratified, seeded splits: a train/validation split and k folds for cross-validation.

Both keep each class's share in every part (stratified), are reproducible from ``seed`` and
give disjoint parts that together hold every file exactly once.

With ``groups`` (a mapping from each file's path to its group, e.g. the patient, or a
callable ``path -> group``) they are also *grouped*: all films of one group land in the same
part, so no patient is on both sides. Whole groups are then dealt greedily (the idea of
scikit-learn's ``StratifiedGroupKFold``): the groups are shuffled with ``seed``, ordered by
the spread of their class counts (the largest, most one-sided first), and each goes to the
part where the classes' shares stay most even, so each part's class balance is as close to
the whole as grouping allows. A mapping's keys may be the paths as listed, absolute paths,
or paths relative to any folder above the files (``"COVID/film.png"``, ``"film.png"``); the
longest that matches a file wins.

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
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from cxrexplain._checks import check_fraction, check_int, describe
from cxrexplain.data.files import (
    KAGGLE_PARTS,
    LabeledFiles,
    detect_layout,
    list_images,
    path_lookup,
)
from cxrexplain.data.files import scan_classes as _scan
from cxrexplain.errors import InvalidInputError

if TYPE_CHECKING:
    from cxrexplain.data.records import Records

__all__ = ["Fold", "Groups", "group_labels", "k_folds", "resolve_files", "stratified_split"]

Groups: TypeAlias = Mapping[Any, Hashable] | Callable[[str], Hashable]
"""Each file's group: a mapping from its path to the group, or a callable ``path -> group``."""


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
    files: LabeledFiles, fraction: float, *, seed: int = 0, groups: Groups | None = None
) -> tuple[LabeledFiles, LabeledFiles]:
    """Split files into (train, validation), each class in proportion.

    Each class gives ``round(n * fraction)`` files to validation, at least one when it has two
    or more files and never all of them. With ``groups``, whole groups go to one side (see the
    module): each class's validation share is then as close to ``fraction`` as the groups
    allow, and each side holds at least one group.

    Args:
        files: The files to split.
        fraction: The validation share, in (0, 1).
        seed: Seed of the shuffle; the same seed gives the same split.
        groups: Each file's group (e.g. its patient): a mapping from path to group or a
            callable ``path -> group``; None splits files one by one.

    Returns:
        ``(train, validation)``, disjoint, each in the original (sorted) order.

    Raises:
        InvalidInputError: ``fraction`` is outside (0, 1); with ``groups``, a file has no
            group (the message names it) or there are fewer than two groups.

    Example:
        >>> from cxrexplain.data import list_images
        >>> train, val = stratified_split(list_images("cxr"), 0.2, seed=1)
        >>> train.counts(), val.counts()
        ({'COVID': 4, 'NORMAL': 4, 'PNEUMONIA': 4}, {'COVID': 1, 'NORMAL': 1, 'PNEUMONIA': 1})
        >>> films = LabeledFiles(("p1a.png", "p1b.png", "p2.png", "p3.png", "p4.png"),
        ...                      (0, 0, 0, 1, 1), ("NORMAL", "PNEUMONIA"))
        >>> train, val = stratified_split(films, 0.4, seed=0,
        ...                               groups=lambda path: path[:2])  # "p1", "p2", ...
        >>> sorted({p[:2] for p in train.paths} & {p[:2] for p in val.paths})
        []
    """
    check_fraction(fraction, "validation_split", open_interval=True)
    rng = np.random.default_rng(_check_seed(seed))
    if groups is not None:
        part = _grouped_parts(files, groups, np.array([1.0 - fraction, fraction]), rng,
                              what="the validation split")
        return files.subset(np.flatnonzero(part == 0)), files.subset(np.flatnonzero(part == 1))
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
    root: str | os.PathLike[str] | LabeledFiles | Records,
    k: int = 5,
    seed: int = 0,
    *,
    classes: Sequence[str] | None = None,
    groups: Groups | None = None,
) -> list[Fold]:
    """Stratified (and, with ``groups``, grouped) k-fold cross-validation folds.

    The files of each class are shuffled with ``seed`` and dealt to the folds in turn
    (continuing the turn from one class to the next, so fold sizes differ by at most one).
    With ``groups`` whole groups are dealt instead (see the module): no group spans two
    folds, and each fold's class balance is as close to the whole as the groups allow.
    Every file is in exactly one test part; fold i trains on the other k - 1 parts.

    Args:
        root: A class-folder root, a Kaggle root (its ``train/`` and ``val/`` are pooled;
            ``test/`` stays out, for a final check), a :class:`LabeledFiles`, or a
            :class:`~cxrexplain.data.Records` (its single-label files,
            :meth:`~cxrexplain.data.Records.files`; ``groups`` then defaults to its
            ``patient`` column when every film has one).
        k: Number of folds, >= 2 and at most the size of the smallest class (and, with
            ``groups``, at most the number of groups).
        seed: Seed of the shuffle.
        classes: Class folder names (see :func:`~cxrexplain.data.list_images`).
        groups: Each file's group, e.g. its patient: a mapping from path to group (keys as
            the module describes) or a callable ``path -> group``; None deals files one by
            one.

    Returns:
        ``k`` :class:`Fold` objects.

    Raises:
        InvalidInputError: ``k`` < 2, a class has fewer than ``k`` images; with ``groups``, a
            file has no group (the message names it) or there are fewer than ``k`` groups.

    Example:
        >>> folds = k_folds("cxr", k=4, seed=0)
        >>> [len(f.test) for f in folds]
        [4, 4, 4, 3]
        >>> def patient(path):  # cxr/COVID/00.png and cxr/COVID/03.png: patient COVID-0
        ...     return f"{Path(path).parent.name}-{int(Path(path).stem) // 6}"
        >>> folds = k_folds("cxr", k=3, seed=0, groups=patient)
        >>> [sorted({patient(p) for p in f.test.paths}) for f in folds]  # one fold each
        [['COVID-2', 'NORMAL-1', 'PNEUMONIA-1'], ['COVID-0', 'NORMAL-2', 'PNEUMONIA-0'],
         ['COVID-1', 'NORMAL-0', 'PNEUMONIA-2']]
        >>> [len(f.test) for f in folds]
        [5, 5, 5]
    """
    check_int(k, "k", minimum=2)
    from cxrexplain.data.records import Records  # (records imports this module's users)

    if isinstance(root, Records):
        files = root.files(classes)
        if groups is None and len(root) and (root.patient != "").all():
            groups = root.groups("patient")
    else:
        files = root if isinstance(root, LabeledFiles) else resolve_files(root, classes=classes)
    counts = files.counts()
    small = {name: n for name, n in counts.items() if n < k}
    if small:
        name, n = next(iter(small.items()))
        raise InvalidInputError(
            f"k: class '{name}' has {n} images, fewer than k={k} folds; lower k"
        )
    rng = np.random.default_rng(_check_seed(seed))
    if groups is not None:
        fold_of = _grouped_parts(files, groups, np.full(k, 1.0 / k), rng, what=f"k={k} folds")
    else:
        fold_of = _stratified_folds(files, k, rng)
    folds = []
    for index in range(k):
        test = np.flatnonzero(fold_of == index)
        train = np.flatnonzero(fold_of != index)
        folds.append(Fold(index, files.subset(train.tolist()), files.subset(test.tolist())))
    return folds


def _stratified_folds(files: LabeledFiles, k: int, rng: np.random.Generator) -> np.ndarray:
    labels = files.label_array
    fold_of = np.empty(len(files), dtype=np.int64)
    turn = 0
    for label in range(len(files.class_names)):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (np.arange(len(members)) + turn) % k
        turn = (turn + len(members)) % k
    return fold_of


def _grouped_parts(files: LabeledFiles, groups: Groups, shares: np.ndarray,
                   rng: np.random.Generator, *, what: str) -> np.ndarray:
    """The part (0 .. len(shares) - 1) of each file; whole groups, stratified greedily.

    Each group in turn (shuffled, then the largest spread of class counts first) goes to the
    part that keeps the classes' fill ratios (count / (class total * part share)) most even
    across the parts: the smallest mean over classes of their standard deviation; ties go to
    the part with the fewest files for its share.
    """
    group_of = group_labels(files, groups)
    names, inverse = _unique(group_of)
    if len(names) < len(shares):
        raise InvalidInputError(
            f"groups: {len(names)} groups, too few for {what}; each part needs a whole group"
        )
    classes = len(files.class_names)
    by_group = np.zeros((len(names), classes), np.int64)
    np.add.at(by_group, (inverse, files.label_array), 1)
    order = rng.permutation(len(names))
    order = order[np.argsort(-by_group[order].std(axis=1), kind="stable")]
    totals = by_group.sum(axis=0).astype(np.float64)
    present = totals > 0
    scale = 1.0 / (totals[present][None, :] * shares[:, None])  # (parts, classes present)
    counts = np.zeros((len(shares), classes), np.float64)
    part_of_group = np.empty(len(names), np.int64)
    trials = np.eye(len(shares))[:, :, None]  # trial p adds the group to part p
    for g in order:
        tried = (counts[None] + trials * by_group[g][None, None, :])[:, :, present]
        spread = (tried * scale[None]).std(axis=1).mean(axis=1)  # (parts,)
        best = np.flatnonzero(np.isclose(spread, spread.min(), rtol=1e-9, atol=1e-12))
        load = counts.sum(axis=1)[best] / shares[best]
        choice = int(best[np.argmin(load)])
        part_of_group[g] = choice
        counts[choice] += by_group[g]
    part: np.ndarray = part_of_group[inverse]
    empty = [p for p in range(len(shares)) if not (part == p).any()]
    if empty:  # pragma: no cover - needs groups far larger than the rest
        raise InvalidInputError(
            f"groups: part {empty[0]} of {what} received no group; the groups are too uneven"
        )
    return part


def group_labels(files: LabeledFiles, groups: Groups) -> list[Hashable]:
    """Each file's group, looked up as the module describes.

    Raises:
        InvalidInputError: ``groups`` is neither a mapping nor a callable, or a file has no
            group (the message names it) or an unhashable one.

    Example:
        >>> films = LabeledFiles(("/data/cxr/COVID/a.png", "/data/cxr/NORMAL/b.png"), (0, 1),
        ...                      ("COVID", "NORMAL"))
        >>> group_labels(films, {"COVID/a.png": "p1", "b.png": "p2"})
        ['p1', 'p2']
    """
    if isinstance(groups, Mapping):
        lookup = path_lookup(groups)
    elif callable(groups):
        lookup = groups
    else:
        raise InvalidInputError(
            f"groups: expected a mapping from path to group (a pandas Series: .to_dict()) or a "
            f"callable path -> group, got {describe(groups)}"
        )
    found: list[Hashable] = []
    for path in files.paths:
        try:
            group = lookup(path)
        except LookupError:
            group = None
        if group is None:
            raise InvalidInputError(f"groups: no group for '{path}'")
        if not isinstance(group, Hashable):
            raise InvalidInputError(
                f"groups: the group of '{path}' is not hashable ({type(group).__name__})"
            )
        found.append(group)
    return found


def _unique(values: list[Hashable]) -> tuple[list[Hashable], np.ndarray]:
    """The distinct values in first-seen order and each value's index among them."""
    index: dict[Hashable, int] = {}
    inverse = np.array([index.setdefault(v, len(index)) for v in values], np.int64)
    return list(index), inverse


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
