"""Radiologists' boxes from a CSV, per film, for the localisation protocol and guided training.

The CSV has one row per box and the columns ``image, x, y, width, height`` (others, such as
``finding``, are ignored): ``image`` a film's path or its trailing part (``PNEUMONIA/a.png``
or ``a.png``; a film matches its longest key, :func:`~cxrexplain.data.files.path_lookup`),
the box in the film's **own** pixels (the file as stored), from the top-left corner. A film
may have several rows; a film without rows has no box.

Example:
    >>> _ = Path("boxes.csv").write_text("image,x,y,width,height\\n"
    ...                                  "PNEUMONIA/a.png,1,2,3,4\\na.png,0,0,1,1\\n")
    >>> table = read_boxes("boxes.csv")
    >>> table["PNEUMONIA/a.png"].tolist()
    [[1.0, 2.0, 3.0, 4.0]]
    >>> [len(b) for b in boxes_for(["/x/PNEUMONIA/a.png", "/x/NORMAL/b.png"], table)]
    [1, 0]
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrexplain._arrays import as_boxes
from cxrexplain.data.files import path_lookup
from cxrexplain.errors import InvalidInputError

__all__ = ["BOX_COLUMNS", "BoxTable", "boxes_for", "read_boxes"]

BOX_COLUMNS = ("image", "x", "y", "width", "height")
"""The columns a box CSV must have."""

BoxTable = dict[str, np.ndarray]
"""A film's path (as written in the CSV) -> its ``(M, 4)`` ``(x, y, width, height)`` boxes."""


def read_boxes(source: str | os.PathLike[str] | Mapping[Any, Any]) -> BoxTable:
    """Read a box CSV (or check a mapping ``path -> boxes``).

    Args:
        source: A CSV file (see the module docs) or a mapping from path to one box
            ``(x, y, w, h)`` or an ``(M, 4)`` array of boxes.

    Returns:
        A :data:`BoxTable`.

    Raises:
        InvalidInputError: A missing file or column, a row whose number is malformed,
            infinite or whose width or height is not positive (the message names the file,
            row and column), or a malformed mapping entry.

    Example:
        >>> read_boxes({"a.png": [1, 2, 3, 4]})["a.png"].shape
        (1, 4)
    """
    if isinstance(source, Mapping):
        return {str(key): as_boxes(value, f"boxes['{key}']") for key, value in source.items()}
    path = Path(os.fspath(source))
    if not path.is_file():
        raise InvalidInputError(f"boxes: no such file '{path}'")
    rows: dict[str, list[list[float]]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in BOX_COLUMNS if c not in fields]
        if missing:
            raise InvalidInputError(
                f"boxes: '{path}' needs the columns {', '.join(BOX_COLUMNS)}; missing "
                f"{', '.join(missing)} (has {', '.join(fields) or 'no header'})"
            )
        reader.fieldnames = fields
        for number, row in enumerate(reader, start=2):
            image = (row.get("image") or "").strip()
            if not image:
                raise InvalidInputError(f"boxes: '{path}' row {number}: column 'image' is empty")
            rows.setdefault(image, []).append(
                [_number(row, column, path, number) for column in BOX_COLUMNS[1:]])
    return {image: np.asarray(boxes, np.float64) for image, boxes in rows.items()}


def boxes_for(paths: Sequence[str | os.PathLike[str]], table: BoxTable) -> list[np.ndarray]:
    """Each film's boxes from ``table`` (a ``(0, 4)`` array where it has none).

    Example:
        >>> boxes_for(["a.png"], {"b.png": np.ones((1, 4))})[0].shape
        (0, 4)
    """
    lookup = path_lookup(table)
    found = [lookup(os.fspath(path)) for path in paths]
    return [np.zeros((0, 4)) if boxes is None else boxes for boxes in found]


def _number(row: Mapping[str, Any], column: str, path: Path, number: int) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise InvalidInputError(
            f"boxes: '{path}' row {number}, column '{column}': expected a number, got "
            f"{text!r}") from None
    if not math.isfinite(value) or (column in ("width", "height") and value <= 0):
        rule = "a positive number" if column in ("width", "height") else "a finite number"
        raise InvalidInputError(
            f"boxes: '{path}' row {number}, column '{column}': expected {rule}, got {text!r}")
    return value
