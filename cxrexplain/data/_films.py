"""Find a collection's films by name in a folder (private): one walk, missing films listed.

Collections name a film by an id (VinDr's ``image_id``, SIIM's ``ImageId``) and store it as
``<id><suffix>``, flat or in subfolders (SIIM's Kaggle copy:
``dicom-images-train/<study>/<series>/<id>.dcm``). :func:`find_films` walks the folder once
(``os.scandir``, hidden folders skipped) and looks each id up; where an id has several files,
the first suffix in ``suffixes`` wins, then the shortest path, then the first in sorted order.

Example:
    >>> for name in ["a.dicom", "sub/b.png", "sub/deeper/c.dcm"]:
    ...     Path(name).parent.mkdir(parents=True, exist_ok=True); Path(name).touch()
    >>> paths, missing = find_films(".", ["a", "c", "z"], (".dicom", ".dcm"))
    >>> [Path(p).as_posix() if p else p for p in paths], missing
    (['a.dicom', 'sub/deeper/c.dcm', ''], [2])
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from cxrexplain.errors import InvalidInputError

__all__ = ["DICOM_SUFFIXES", "find_films", "walk_files"]

DICOM_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg")
"""Suffixes of a film stored under its id: DICOM first, then converted copies."""


def walk_files(folder: Path) -> Iterator[os.DirEntry[str]]:
    """Every file under ``folder`` (hidden files and folders skipped), depth first."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                stack.append(Path(entry.path))
            elif entry.is_file():
                yield entry


def find_films(images: str | os.PathLike[str], ids: Sequence[str],
               suffixes: Sequence[str], *, what: str = "images") -> tuple[list[str], list[int]]:
    """Each id's file under ``images`` (``""`` where none) and the indices of those missing.

    Raises:
        InvalidInputError: ``images`` is not a folder.
    """
    root = Path(os.fspath(images))
    if not root.is_dir():
        raise InvalidInputError(f"{what}: no such folder '{root}'")
    rank = {suffix.lower(): i for i, suffix in enumerate(suffixes)}
    best: dict[str, tuple[int, int, str]] = {}
    wanted = set(ids)
    for entry in walk_files(root):
        stem, dot, suffix = entry.name.rpartition(".")
        if not dot or stem not in wanted:
            continue
        order = rank.get("." + suffix.lower())
        if order is None:
            continue
        key = (order, len(entry.path), entry.path)
        if stem not in best or key < best[stem]:
            best[stem] = key
    paths = [best[i][2] if i in best else "" for i in ids]
    missing = [n for n, path in enumerate(paths) if not path]
    return paths, missing
