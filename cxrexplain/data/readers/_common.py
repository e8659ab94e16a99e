"""What the readers share (private): where the films are, label values, metadata columns.

**Where the films are.** A reader joins each name of its file to ``images`` (default: a folder
the reader names, usually the CSV's own). Files are not checked, with one exception: when the
first film is not where the name says, and the name is a bare file name, the folder's
sub-folders are searched once for the names (NIH ships its films in ``images_001/images/``,
``images_002/images/`` ...; RSNA in ``stage_2_train_images/``); names not found keep the
joined path, so :meth:`~cxrexplain.data.Records.missing` reports them.

Example:
    >>> for name in ("images_001/images/f1.png", "images_002/images/f2.png"):
    ...     Path(name).parent.mkdir(parents=True, exist_ok=True)
    ...     _ = Path(name).write_bytes(b"")
    >>> film_paths(["f1.png", "f2.png", "f3.png"], ".", Path("unused"))
    ('images_001/images/f1.png', 'images_002/images/f2.png', './f3.png')
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxrexplain.data._rows import Table, codes
from cxrexplain.io import _walk_images

__all__ = ["film_paths", "films_by_id", "parse_binary"]

_LOG = logging.getLogger("cxrexplain.data")

_ONES = {"1", "1.0", "true", "yes", "y", "t", "positive"}
_ZEROS = {"0", "0.0", "false", "no", "n", "f", "negative"}


def film_paths(names: Sequence[str], images: str | os.PathLike[str] | None,
               default: Path) -> tuple[str, ...]:
    """Each film's path: ``images`` (or ``default``) joined with its name (module docs)."""
    folder = os.fspath(default if images is None else images)
    prefix = folder if not folder or folder.endswith(("/", os.sep)) else folder + os.sep
    paths = [prefix + name if not _absolute(name) else name for name in names]
    if not paths or os.path.exists(paths[0]) or not os.path.isdir(folder):
        return tuple(paths)
    first = names[0]
    if os.path.basename(first) != first:
        return tuple(paths)
    found = {p.name: str(p) for p in _walk_images(Path(folder))}
    if first not in found:
        return tuple(paths)
    _LOG.info("images: films found in the sub-folders of '%s'", folder)
    return tuple(found.get(name, path) for name, path in zip(names, paths, strict=True))


def _absolute(name: str) -> bool:
    """``os.path.isabs`` for the cheap cases first (a reader joins 100,000 names)."""
    return name[:1] in ("/", "\\") or (name[1:2] == ":" and os.path.isabs(name))


def films_by_id(ids: Sequence[str], images: str | os.PathLike[str] | None, default: Path,
                suffixes: Sequence[str]) -> tuple[str, ...]:
    """Each film's path from its id and the first of ``suffixes`` its file has.

    The suffix is the first of ``suffixes`` under which the first film lies directly in the
    folder (``images``, default ``default``); then every id is joined with it and not checked
    (as :func:`film_paths`). When no suffix fits, the folder is walked once (the package's one
    walk) and each id takes its file anywhere below it (the first of ``suffixes`` where an id
    has several); ids not found keep ``<folder>/<id><first suffix>`` for
    :meth:`~cxrexplain.data.Records.missing`.

    Example:
        >>> Path("dicom/1.2/3.4").mkdir(parents=True)
        >>> _ = Path("dicom/1.2/3.4/abc.dcm").write_bytes(b"")
        >>> films_by_id(["abc", "xyz"], "dicom", Path("unused"), (".dcm", ".png"))
        ('dicom/1.2/3.4/abc.dcm', 'dicom/xyz.dcm')
    """
    folder = os.fspath(default if images is None else images)
    if not ids or not os.path.isdir(folder):
        return tuple(os.path.join(folder, i + suffixes[0]) for i in ids)
    for suffix in suffixes:
        if os.path.isfile(os.path.join(folder, ids[0] + suffix)):
            return tuple(os.path.join(folder, i + suffix) for i in ids)
    rank = {suffix.lower(): k for k, suffix in enumerate(suffixes)}
    found: dict[str, tuple[int, str]] = {}
    for path in _walk_images(Path(folder)):
        order = rank.get(path.suffix.lower())
        if order is not None and (path.stem not in found or order < found[path.stem][0]):
            found[path.stem] = (order, str(path))
    if found:
        _LOG.info("images: films found in the sub-folders of '%s'", folder)
    return tuple(found[i][1] if i in found else os.path.join(folder, i + suffixes[0])
                 for i in ids)


def parse_binary(table: Table, column: str, *, extra: dict[str, float] | None = None
                 ) -> np.ndarray:
    """A 0/1 label column as float32: 1, 0, NaN for a blank (``extra``: more value -> label).

    Raises:
        InvalidInputError: Another value; the message names file, row and column.

    Example:
        >>> _ = Path("t.csv").write_text("image,Mass\\na,1\\nb,0.0\\nc,\\nd,True\\n")
        >>> from cxrexplain.data._rows import read_table
        >>> parse_binary(read_table("t.csv"), "Mass").tolist()
        [1.0, 0.0, nan, 1.0]
    """
    values = table.column(column)
    distinct, inverse = codes(values)
    mapped = np.empty(len(distinct), np.float32)
    for k, value in enumerate(distinct):
        key = value.lower()
        if extra is not None and value in extra:
            mapped[k] = extra[value]
        elif key in _ONES:
            mapped[k] = 1.0
        elif key in _ZEROS:
            mapped[k] = 0.0
        elif not key:
            mapped[k] = np.nan
        else:
            raise table.error(values.index(value), column,
                              f"expected 1, 0 or a blank, got {value!r}")
    out: np.ndarray = mapped[inverse] if len(values) else np.zeros(0, np.float32)
    return out
