"""Find labelled images on disk: class-per-folder and Kaggle ``chest_xray`` layouts.

Two layouts are understood:

* **class folders**: ``root/<class>/<image>`` (images may sit in sub-folders of a class
  folder); the class names are the folder names, sorted (or the ``classes`` given, in that
  order);
* **Kaggle** ``chest_xray``: ``root/train/<class>/...`` plus ``root/val/...`` and/or
  ``root/test/...``. :func:`detect_layout` tells them apart: a root whose ``train`` folder
  holds class folders is a Kaggle root. The class names come from ``train/``.

Image files are those with a suffix in :data:`cxrexplain.io.IMAGE_SUFFIXES`; hidden files
and folders (``.DS_Store``, ``__MACOSX``) are skipped. Paths are sorted, so the order is
stable across runs and machines. Every sub-folder with images counts as a class unless
``classes=`` names the classes: a folder of masks beside the class folders
(``cxr/lung_masks/``) needs ``classes=["COVID", "NORMAL", "PNEUMONIA"]``.

Example:
    >>> from cxrexplain.data import list_images
    >>> files = list_images("../shared/data/cxr")  # doctest: +SKIP
    >>> files.class_names, files.counts()  # doctest: +SKIP
    (('COVID', 'NORMAL', 'PNEUMONIA'), {'COVID': 99, 'NORMAL': 399, 'PNEUMONIA': 388})
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cxrexplain.errors import InvalidInputError
from cxrexplain.io import IMAGE_SUFFIXES

__all__ = [
    "IMAGE_SUFFIXES",
    "KAGGLE_PARTS",
    "LabeledFiles",
    "detect_layout",
    "list_images",
    "scan_classes",
]


KAGGLE_PARTS = ("train", "val", "test")
"""The part folders of the Kaggle ``chest_xray`` layout."""

Layout = Literal["classes", "kaggle"]


@dataclass(frozen=True)
class LabeledFiles:
    """Image paths with integer labels into ``class_names``.

    Attributes:
        paths: The image files, in a stable order.
        labels: One class index per path.
        class_names: The class names; label ``i`` is ``class_names[i]``.

    Example:
        >>> files = LabeledFiles(("a.png", "b.png"), (0, 1), ("NORMAL", "PNEUMONIA"))
        >>> len(files), files.counts()
        (2, {'NORMAL': 1, 'PNEUMONIA': 1})
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise InvalidInputError(
                f"labels: {len(self.labels)} labels for {len(self.paths)} paths"
            )
        bad = [label for label in self.labels if not 0 <= label < len(self.class_names)]
        if bad:
            raise InvalidInputError(
                f"labels: {bad[0]} is not an index into class_names {list(self.class_names)}"
            )

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def label_array(self) -> np.ndarray:
        """The labels as an int32 array."""
        return np.asarray(self.labels, dtype=np.int32)

    def counts(self) -> dict[str, int]:
        """Images per class name (every class listed, zero included).

        Example:
            >>> LabeledFiles(("a", "b", "c"), (0, 0, 1), ("x", "y", "z")).counts()
            {'x': 2, 'y': 1, 'z': 0}
        """
        found = np.bincount(self.label_array, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, found, strict=True)}

    def subset(self, indices: Iterable[int]) -> LabeledFiles:
        """The files at ``indices`` (same class names).

        Example:
            >>> LabeledFiles(("a", "b"), (0, 1), ("x", "y")).subset([1]).paths
            ('b',)
        """
        picked = [int(i) for i in indices]
        return LabeledFiles(
            tuple(self.paths[i] for i in picked),
            tuple(self.labels[i] for i in picked),
            self.class_names,
        )

    def __add__(self, other: LabeledFiles) -> LabeledFiles:
        if other.class_names != self.class_names:
            raise InvalidInputError(
                f"files: cannot pool classes {list(self.class_names)} and "
                f"{list(other.class_names)}"
            )
        return LabeledFiles(self.paths + other.paths, self.labels + other.labels,
                            self.class_names)


def detect_layout(root: str | os.PathLike[str]) -> Layout:
    """``"kaggle"`` when ``root/train`` holds class folders, else ``"classes"``.

    Raises:
        InvalidInputError: ``root`` is not a folder.

    Example:
        >>> detect_layout("chest_xray")  # doctest: +SKIP
        'kaggle'
    """
    folder = _check_root(root)
    train = folder / "train"
    if train.is_dir() and any(_has_images(sub) for sub in _subfolders(train)):
        return "kaggle"
    return "classes"


def list_images(
    root: str | os.PathLike[str], *, classes: Sequence[str] | None = None
) -> LabeledFiles:
    """List the images of a class-per-folder root with their labels.

    Args:
        root: A folder with one sub-folder per class (``root/NORMAL/x.png``...). For a Kaggle
            root pass one part (``root / "train"``).
        classes: Class folder names to use, in label order. Default: every sub-folder that
            holds images, sorted by name.

    Returns:
        The files, sorted by class then path.

    Raises:
        InvalidInputError: ``root`` is missing or empty, holds images but no class folders,
            holds fewer than two classes, or a class in ``classes`` has no folder or no images.

    Example:
        >>> list_images("chest_xray/train").class_names  # doctest: +SKIP
        ('NORMAL', 'PNEUMONIA')
    """
    folder = _check_root(root)
    names = _class_names(folder, classes)
    return scan_classes(folder, names, require_all=True)


def scan_classes(
    folder: Path, class_names: Sequence[str], *, require_all: bool
) -> LabeledFiles:
    """List ``folder/<class>/...`` images for the given class names (labels by position).

    Args:
        folder: The folder holding the class folders.
        class_names: The classes, in label order.
        require_all: Raise when a class has no folder or no images (for a Kaggle ``val`` or
            ``test`` part, pass False: a class may be missing there).

    Raises:
        InvalidInputError: A class folder is missing or empty while ``require_all``.

    Example:
        >>> scan_classes(Path("chest_xray/test"), ["NORMAL", "PNEUMONIA"], require_all=False)
        ... # doctest: +SKIP
    """
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        images = _images_in(folder / name)
        if require_all and not images:
            raise InvalidInputError(
                f"classes: class '{name}' has no images: the folder '{folder / name}' is missing "
                f"or holds no {', '.join(sorted(IMAGE_SUFFIXES))} files"
            )
        paths.extend(str(p) for p in images)
        labels.extend([label] * len(images))
    return LabeledFiles(tuple(paths), tuple(labels), tuple(class_names))


def _check_root(root: str | os.PathLike[str]) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise InvalidInputError(f"root: expected a folder path, got {type(root).__name__}")
    folder = Path(os.fspath(root))
    if not folder.exists():
        raise InvalidInputError(f"root: no such folder '{folder}'")
    if not folder.is_dir():
        raise InvalidInputError(f"root: '{folder}' is a file, expected a folder of class folders")
    return folder


def _class_names(folder: Path, classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is not None:
        if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
            raise InvalidInputError(f"classes: expected a list of folder names, got {classes!r}")
        if len(set(classes)) != len(classes):
            raise InvalidInputError(f"classes: names must be unique, got {list(classes)}")
        if len(classes) < 2:
            raise InvalidInputError(
                f"classes: a classifier needs at least two classes, got {list(classes)}"
            )
        return tuple(classes)
    found = [sub.name for sub in _subfolders(folder) if _has_images(sub)]
    if not found:
        loose = _images_in(folder, recursive=False)
        if loose:
            raise InvalidInputError(
                f"root: '{folder}' holds {len(loose)} images but no class folders; expected "
                f"'{folder}/<class>/<image>' (one folder per class)"
            )
        raise InvalidInputError(
            f"root: '{folder}' has no images; expected one folder per class, each with images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    if len(found) < 2:
        raise InvalidInputError(
            f"root: '{folder}' has one class folder with images ('{found[0]}'); a classifier "
            "needs at least two classes"
        )
    return tuple(sorted(found))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name)),
        key=lambda p: p.name,
    )


def _hidden(name: str) -> bool:
    return name.startswith((".", "__"))


def _has_images(folder: Path) -> bool:
    return bool(_images_in(folder, limit=1))


def _images_in(folder: Path, *, recursive: bool = True, limit: int | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not _hidden(d))
        for name in sorted(names):
            if not _hidden(name) and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(directory) / name)
                if limit is not None and len(found) >= limit:
                    return found
        if not recursive:
            break
    return sorted(found)
