"""Find labelled images on disk: class-per-folder and Kaggle ``chest_xray`` layouts.

Two layouts are understood:

* **class folders**: ``root/<class>/<image>`` (images may also sit in sub-folders of a class
  folder); the class names are the folder names, sorted (or the ``classes`` given, in that
  order);
* **Kaggle** ``chest_xray``: ``root/train/<class>/...`` plus ``root/val/...`` and/or
  ``root/test/...``. :func:`detect_layout` tells them apart: a root whose ``train`` folder
  holds class folders is a Kaggle root. The class names come from ``train/``.

Image files are found by the walk of :func:`cxrexplain.io.find_images`: a suffix in
:data:`cxrexplain.io.IMAGE_SUFFIXES`, hidden names (``.DS_Store``, ``._x.png``,
``__MACOSX``) skipped, links to folders followed, paths kept as given (not resolved) and
sorted, so the order is stable across runs and machines.

**Which folders are classes** when ``classes=`` is not given: every visible sub-folder of the
root that holds at least one image *directly in it* (its sub-folders' images then count too),
except folders whose name contains ``mask`` (any case: ``masks``, ``lung_masks``,
``LungMask``), which hold segmentation masks, not a class. So a folder with only deeper
folders, like ``cxr/lung_masks/COVID/...`` beside ``cxr/COVID``, is not a class. The folders
left out, and why, are in :attr:`LabeledFiles.skipped` (and ``skipped_folders`` of the
datasets of :mod:`cxrexplain.data.datasets`), logged at INFO level on the ``cxrexplain.data``
logger, and named in the error when no class is found. ``classes=`` takes any folders
named, whatever they hold directly.

Example:
    >>> from cxrexplain.data import list_images
    >>> files = list_images("cxr")
    >>> files.class_names, files.counts()
    (('COVID', 'NORMAL', 'PNEUMONIA'), {'COVID': 5, 'NORMAL': 5, 'PNEUMONIA': 5})
    >>> files.paths[0], files.labels[:6]
    ('cxr/COVID/00.png', (0, 0, 0, 0, 0, 1))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from cxrexplain.errors import InvalidInputError
from cxrexplain.io import IMAGE_SUFFIXES, _is_hidden, _walk_images

T = TypeVar("T")

__all__ = [
    "path_lookup",
    "IMAGE_SUFFIXES",
    "KAGGLE_PARTS",
    "LabeledFiles",
    "detect_layout",
    "list_images",
    "scan_classes",
]


_LOG = logging.getLogger("cxrexplain.data")

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
        skipped: The sub-folders of the root not taken as classes when the classes were
            found automatically, as ``(folder name, reason)`` pairs (see the module docs);
            empty otherwise. Kept by :meth:`subset` and ``+``; not compared.

    Example:
        >>> files = LabeledFiles(("a.png", "b.png"), (0, 1), ("NORMAL", "PNEUMONIA"))
        >>> len(files), files.counts()
        (2, {'NORMAL': 1, 'PNEUMONIA': 1})
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = field(default=(), compare=False)

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
            self.skipped,
        )

    def __add__(self, other: LabeledFiles) -> LabeledFiles:
        if other.class_names != self.class_names:
            raise InvalidInputError(
                f"files: cannot pool classes {list(self.class_names)} and "
                f"{list(other.class_names)}"
            )
        return LabeledFiles(self.paths + other.paths, self.labels + other.labels,
                            self.class_names, self.skipped or other.skipped)


def detect_layout(root: str | os.PathLike[str]) -> Layout:
    """``"kaggle"`` when ``root/train`` holds class folders, else ``"classes"``.

    Raises:
        InvalidInputError: ``root`` is not a folder.

    Example:
        >>> detect_layout("chest_xray"), detect_layout("cxr")
        ('kaggle', 'classes')
    """
    folder = _check_root(root)
    train = folder / "train"
    if train.is_dir() and _class_folders(train)[0]:
        return "kaggle"
    return "classes"


def list_images(
    root: str | os.PathLike[str], *, classes: Sequence[str] | None = None
) -> LabeledFiles:
    """List the images of a class-per-folder root with their labels.

    Args:
        root: A folder with one sub-folder per class (``root/NORMAL/x.png``...). For a Kaggle
            root pass one part (``root / "train"``).
        classes: Class folder names to use, in label order (their images may sit at any
            depth). Default: the sub-folders that hold images directly in them, except mask
            folders (see the module docs), sorted by name; the others are listed in the
            result's ``skipped``.

    Returns:
        The files, sorted by class then path.

    Raises:
        InvalidInputError: ``root`` is missing or empty, holds images but no class folders,
            holds fewer than two classes, or a class in ``classes`` has no folder or no
            images. When the classes were looked for, the message names the folders left
            out and why.

    Example:
        >>> list_images("chest_xray/train").class_names
        ('NORMAL', 'PNEUMONIA')
    """
    folder = _check_root(root)
    if classes is not None:
        return scan_classes(folder, _check_classes(classes), require_all=True)
    names, skipped = _found_classes(folder)
    files = replace(scan_classes(folder, names, require_all=True), skipped=skipped)
    counts = ", ".join(f"{name} ({n})" for name, n in files.counts().items())
    _LOG.info("classes in '%s': %s%s", folder, counts, _skipped_text(skipped))
    return files


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
        >>> scan_classes(Path("chest_xray/test"), ["NORMAL", "PNEUMONIA", "COVID"],
        ...              require_all=False).counts()
        {'NORMAL': 2, 'PNEUMONIA': 2, 'COVID': 0}
    """
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        images = _walk_images(folder / name)
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


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not all(
        isinstance(c, str) and c for c in classes
    ):
        raise InvalidInputError(f"classes: expected a list of folder names, got {classes!r}")
    if len(set(classes)) != len(classes):
        raise InvalidInputError(f"classes: names must be unique, got {list(classes)}")
    if len(classes) < 2:
        raise InvalidInputError(
            f"classes: a classifier needs at least two classes, got {list(classes)}"
        )
    return tuple(classes)


def _found_classes(folder: Path) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The class folders of a root by the module's rule, sorted, and the folders left out."""
    taken, skipped = _class_folders(folder)
    if len(taken) >= 2:
        return tuple(taken), tuple(skipped)
    left_out = _skipped_text(skipped)
    hint = (
        "; name the classes with classes=[...] to use folders whose images are deeper"
        if any(reason == _DEEPER for _, reason in skipped) else ""
    )
    if taken:
        raise InvalidInputError(
            f"root: '{folder}' has one class folder with images ('{taken[0]}'); a classifier "
            f"needs at least two classes{left_out}{hint}"
        )
    loose = _walk_images(folder, recursive=False)
    if loose:
        raise InvalidInputError(
            f"root: '{folder}' holds {len(loose)} images but no class folders; expected "
            f"'{folder}/<class>/<image>' (one folder per class){left_out}{hint}"
        )
    found = "has no class folders" if _walk_images(folder, limit=1) else "has no images"
    raise InvalidInputError(
        f"root: '{folder}' {found}; expected one folder per class, each with images "
        f"directly in it ({', '.join(sorted(IMAGE_SUFFIXES))}){left_out}{hint}"
    )


_MASKS = "a mask folder: its name contains 'mask'"
_DEEPER = "no images directly in it, only in its sub-folders"
_EMPTY = "no images"


def _class_folders(folder: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Names of the sub-folders that are classes, and ``(name, reason)`` of the others."""
    taken: list[str] = []
    skipped: list[tuple[str, str]] = []
    for sub in _subfolders(folder):
        if "mask" in sub.name.lower():
            skipped.append((sub.name, _MASKS))
        elif _walk_images(sub, recursive=False, limit=1):
            taken.append(sub.name)
        elif _walk_images(sub, limit=1):
            skipped.append((sub.name, _DEEPER))
        else:
            skipped.append((sub.name, _EMPTY))
    return taken, skipped


def _skipped_text(skipped: Iterable[tuple[str, str]]) -> str:
    listed = ", ".join(f"'{name}' ({reason})" for name, reason in skipped)
    return f"; not classes: {listed}" if listed else ""


def _subfolders(folder: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        raise InvalidInputError(
            f"root: cannot list '{folder}' ({err.strerror or err})"
        ) from err
    return sorted(
        (p for p in entries if not _is_hidden(p.name) and p.is_dir()),
        key=lambda p: p.name,
    )


def path_lookup(table: Mapping[Any, T]) -> Callable[[str], T | None]:
    """Look a film up in a table keyed by path: the whole path or its trailing parts.

    Keys may be absolute or relative paths (``"PNEUMONIA/a.png"``, ``"a.png"``); a film's
    path matches the longest key among its own suffixes. Keys that are not paths are
    ignored.

    Args:
        table: A mapping from path to value (a pandas Series: ``.to_dict()``).

    Returns:
        A function ``path -> value`` (None when no key matches).

    Example:
        >>> find = path_lookup({"COVID/a.png": 1, "b.png": 2})
        >>> find("/data/cxr/COVID/a.png"), find("NORMAL/b.png"), find("c.png")
        (1, 2, None)
    """
    normal: dict[str, T] = {}
    for key, value in table.items():
        if isinstance(key, (str, os.PathLike)):
            normal[_normal(key)] = value

    def lookup(path: str) -> T | None:
        for candidate in (_normal(path), *_suffixes(os.path.abspath(path))):
            if candidate in normal:
                return normal[candidate]
        return None

    return lookup


def _normal(path: str | os.PathLike[str]) -> str:
    return os.path.normpath(os.fspath(path)).replace(os.sep, "/")


def _suffixes(path: str) -> list[str]:
    """``"/a/b/c.png"``, ``"a/b/c.png"``, ``"b/c.png"``, ``"c.png"``: the longest first."""
    parts = _normal(path).split("/")
    return ["/".join(parts[i:]) for i in range(len(parts)) if parts[i:] != [""]]
