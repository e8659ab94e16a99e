"""VinDr-CXR: ``train.csv``, a row per box per radiologist, readers merged per film.

The file (Nguyen et al., Scientific Data 2022) has the columns
``image_id, class_name, class_id, rad_id, x_min, y_min, x_max, y_max``: one row per box a
radiologist (``rad_id``) drew, in the film's own pixels (the DICOM's rows and columns), and
one row without a box for a radiologist who saw nothing (``class_name`` ``"No finding"``,
class 14). Each training film was read by three radiologists of seventeen.

**Merging the readers** (``merge``), per film and finding, where a film's readers are the
distinct ``rad_id`` of its rows:

* ``"union"``: the finding is present when any reader marked it; its boxes are every reader's
  boxes of it;
* ``"majority"``: present when more than half of the film's readers marked it (2 of 3); its
  boxes are every reader's boxes of it (those of a reader in the minority too);
* ``"unanimous"``: present when every reader of the film marked it; all their boxes.

``"No finding"`` is then present exactly when no other finding is, so every film has at least
one positive class. Boxes are ``(x, y, width, height)`` = ``(x_min, y_min, x_max - x_min,
y_max - y_min)``; a finding's boxes from several readers overlap (they are not fused).

Classes are the file's ``class_name`` values ordered by ``class_id`` (``"No finding"`` last on
the real file). Films are in the order of their first row. Paths: ``<image_id>`` with the
suffix ``.dicom`` (VinDr's own), ``.dcm``, ``.png``, ``.jpg`` or ``.jpeg``, anywhere under
``images`` (one walk of the folder); a film without a file is reported in the table's missing
films, not raised. The file carries no patient, view, sex or age (they are in the DICOM
headers): ``patient`` is the image id (one film per study), ``view`` ``""``, ``sex`` ``""``,
``age`` NaN, ``source`` ``"VinDr-CXR"``.

Example:
    >>> _ = Path("train.csv").write_text(
    ...     "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\\n"
    ...     "f1,Cardiomegaly,3,R1,10,20,110,70\\n"
    ...     "f1,Cardiomegaly,3,R2,12,22,100,80\\n"
    ...     "f1,Nodule/Mass,8,R3,5,5,15,15\\n"
    ...     "f2,No finding,14,R1,,,,\\n")
    >>> recs = read_vindr("train.csv", merge="majority")
    >>> recs.class_names
    ('Cardiomegaly', 'Nodule/Mass', 'No finding')
    >>> recs.targets.tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    >>> recs.boxes("Cardiomegaly")[0].tolist()
    [[10.0, 20.0, 100.0, 50.0], [12.0, 22.0, 88.0, 58.0]]
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np

from cxrexplain.data._rows import Table, read_table
from cxrexplain.data.annotations import FilmBoxes
from cxrexplain.data.readers._common import films_by_id
from cxrexplain.data.records import Records
from cxrexplain.errors import InvalidInputError

__all__ = ["MERGES", "NO_FINDING", "VINDR_SOURCE", "VINDR_SUFFIXES", "merge_readings",
           "read_vindr", "reader_counts"]

MERGES = ("union", "majority", "unanimous")
"""The ways :func:`read_vindr` merges the radiologists' readings."""

NO_FINDING = "No finding"
"""VinDr's class of a radiologist who marked nothing."""

VINDR_SOURCE = "VinDr-CXR"
"""The ``source`` of the films read here."""

VINDR_SUFFIXES = (".dicom", ".dcm", ".png", ".jpg", ".jpeg")
"""The files a film's ``image_id`` is looked for as, in this order."""

Merge = Literal["union", "majority", "unanimous"]

_BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")


def read_vindr(csv: str | os.PathLike[str], images: str | os.PathLike[str] | None = None,
               merge: Literal["union", "majority", "unanimous"] = "union") -> Records:
    """Read VinDr-CXR's ``train.csv``: findings and boxes per film, the readers merged.

    Args:
        csv: ``train.csv`` (``.gz``, ``.zip`` too), a row per box per radiologist.
        images: The folder of the films (``<image_id>.dicom``, flat or below; module docs);
            default the CSV's folder.
        merge: How the radiologists' readings are merged: ``"union"``, ``"majority"`` or
            ``"unanimous"`` (module docs).

    Returns:
        :class:`~cxrexplain.data.Records`: one film per ``image_id``, the file's classes
        (every target known, 0 or 1), boxes per present finding, ``source`` ``"VinDr-CXR"``,
        ``patient`` the image id, and the metadata column ``readers`` (how many radiologists
        read the film, float).

    Raises:
        InvalidInputError: A missing file or column, an unknown ``merge``, or a malformed
            row (a blank id, class or reader, a class id that is not a whole number or names
            two classes, a box partly blank, not a number, or with ``x_max <= x_min``): the
            message names the file, row and column.

    Example:
        >>> _ = Path("train.csv").write_text(
        ...     "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\\n"
        ...     "f1,Nodule/Mass,8,R3,5,5,15,15\\nf1,No finding,14,R1,,,,\\n")
        >>> recs = read_vindr("train.csv")                     # union: R3's nodule counts
        >>> recs.class_names, recs.targets.tolist(), recs.boxes("Nodule/Mass")[0].tolist()
        (('Nodule/Mass', 'No finding'), [[1.0, 0.0]], [[5.0, 5.0, 10.0, 10.0]])
        >>> read_vindr("train.csv", merge="majority").targets.tolist()  # 1 of 2 readers
        [[0.0, 1.0]]
    """
    if merge not in MERGES:
        raise InvalidInputError(f"merge: expected one of {', '.join(map(repr, MERGES))}, got "
                                f"{merge!r}")
    table = read_table(csv, "csv")
    columns = {name: table.require(name)
               for name in ("image_id", "class_name", "class_id", "rad_id", *_BOX_COLUMNS)}
    ids = table.column(columns["image_id"])
    names = table.column(columns["class_name"])
    readers = table.column(columns["rad_id"])
    for column, values in (("image_id", ids), ("class_name", names), ("rad_id", readers)):
        if "" in values:
            raise table.error(values.index(""), columns[column], "expected a value, got a blank")
    film_ids, film = _first_order(ids)
    class_names, finding = _classes(table, names, columns)
    reader = _first_order(readers)[1]
    no_finding = class_names.index(NO_FINDING) if NO_FINDING in class_names else None
    present = merge_readings(film, finding, reader, len(film_ids), len(class_names), merge,
                             no_finding)
    boxes, boxed = _boxes(table, columns)
    keep = boxed & present[film, finding]
    found = {name: FilmBoxes(film[keep & (finding == k)], boxes[keep & (finding == k)])
             for k, name in enumerate(class_names) if (keep & (finding == k)).any()}
    return Records(
        films_by_id(film_ids, images, table.path.parent, VINDR_SUFFIXES),
        class_names, present.astype(np.float32),
        patient=film_ids, source=VINDR_SOURCE,
        metadata={"readers": reader_counts(film, reader, len(film_ids)).astype(np.float64)},
        boxes=found,
    )


def reader_counts(film: np.ndarray, reader: np.ndarray, num_films: int) -> np.ndarray:
    """How many distinct readers each film has (rows: ``film`` and ``reader`` indices).

    Example:
        >>> reader_counts(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), 3).tolist()
        [2, 1, 0]
    """
    num_readers = int(reader.max()) + 1 if reader.size else 1
    pairs = np.unique(film.astype(np.int64) * num_readers + reader)
    counts: np.ndarray = np.bincount(pairs // num_readers, minlength=num_films)
    return counts


def merge_readings(film: np.ndarray, finding: np.ndarray, reader: np.ndarray,
                   num_films: int, num_classes: int, merge: Merge,
                   no_finding: int | None) -> np.ndarray:
    """``(num_films, num_classes)`` bool: the findings present after merging the readers.

    Args:
        film: Each row's film index.
        finding: Each row's class index.
        reader: Each row's reader index.
        num_films: How many films.
        num_classes: How many classes.
        merge: ``"union"``, ``"majority"`` or ``"unanimous"`` (module docs).
        no_finding: The class index of "No finding" (set where no other class is), or None.

    Example:
        >>> rows = np.array([[0, 1, 0], [0, 1, 1], [0, 0, 2], [1, 2, 0]])  # film, class, reader
        >>> merge_readings(*rows.T, 2, 3, "majority", no_finding=2).astype(int).tolist()
        [[0, 1, 0], [0, 0, 1]]
        >>> merge_readings(*rows.T, 2, 3, "union", no_finding=2).astype(int).tolist()
        [[1, 1, 0], [0, 0, 1]]
    """
    if merge not in MERGES:
        raise InvalidInputError(f"merge: expected one of {', '.join(map(repr, MERGES))}, got "
                                f"{merge!r}")
    num_readers = int(reader.max()) + 1 if reader.size else 1
    readers = reader_counts(film, reader, num_films)
    # each (film, class, reader) once: how many readers marked a class on a film
    key = (film.astype(np.int64) * num_classes + finding) * num_readers + reader
    marked = np.bincount(np.unique(key) // num_readers, minlength=num_films * num_classes)
    votes = marked.reshape(num_films, num_classes)
    if merge == "union":
        present = votes > 0
    elif merge == "majority":
        present = 2 * votes > readers[:, None]
    else:
        present = (votes > 0) & (votes == readers[:, None])
    if no_finding is not None:
        others = np.delete(present, no_finding, axis=1)
        present[:, no_finding] = ~others.any(axis=1)
    return present


def _first_order(values: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct values in the order of their first row, and each row's index into them."""
    index: dict[str, int] = {}
    rows = np.fromiter((index.setdefault(v, len(index)) for v in values), np.int64,
                       count=len(values))
    return list(index), rows


def _classes(table: Table, names: list[str], columns: dict[str, str]
             ) -> tuple[tuple[str, ...], np.ndarray]:
    """The class names ordered by class id, and each row's class index."""
    column = columns["class_id"]
    numbers = table.numbers(column, blank=False)
    whole = numbers == np.round(numbers)
    if not whole.all():
        row = int(np.flatnonzero(~whole)[0])
        raise table.error(row, column, f"expected a whole number, got {numbers[row]:g}")
    number = numbers.astype(np.int64)
    distinct_list, inverse = _first_order(names)
    distinct = np.asarray(distinct_list, dtype=np.str_)
    first = np.full(len(distinct), len(names), np.int64)  # each name's first row
    np.minimum.at(first, inverse, np.arange(len(names)))
    ids = number[first]
    clash = np.flatnonzero(number != ids[inverse])
    if clash.size:
        row = int(clash[0])
        raise table.error(row, column, f"class {names[row]!r} has class_id {number[row]} here "
                                       f"and {ids[inverse[row]]} on row "
                                       f"{table.line(int(first[inverse[row]]))}")
    order = np.lexsort((distinct, ids))
    shared = np.flatnonzero(np.diff(ids[order]) == 0)
    if shared.size:
        a, b = order[shared[0]], order[shared[0] + 1]
        row = int(max(first[a], first[b]))
        raise table.error(row, column, f"class_id {ids[a]} names both {str(distinct[a])!r} and "
                                       f"{str(distinct[b])!r}")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return tuple(str(v) for v in distinct[order]), rank[inverse]


def _boxes(table: Table, columns: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """``(R, 4)`` ``(x, y, width, height)`` per row (NaN without a box) and which rows have one."""
    corners = np.stack([table.numbers(columns[c]) for c in _BOX_COLUMNS], axis=1)
    corners = corners.reshape(len(table), 4)
    blank = np.isnan(corners)
    partial = np.flatnonzero(blank.any(axis=1) & ~blank.all(axis=1))
    if partial.size:
        row = int(partial[0])
        column = _BOX_COLUMNS[int(np.flatnonzero(blank[row])[0])]
        raise table.error(row, columns[column], "expected a number (a box has all four "
                                                "corners, a row without a box none), got a blank")
    boxed = ~blank[:, 0]
    for low, high in ((0, 2), (1, 3)):
        flat = np.flatnonzero(boxed & ~(corners[:, high] > corners[:, low]))
        if flat.size:
            row = int(flat[0])
            raise table.error(row, columns[_BOX_COLUMNS[high]],
                              f"expected {_BOX_COLUMNS[high]} > {_BOX_COLUMNS[low]} "
                              f"({corners[row, low]:g}), got {corners[row, high]:g}")
    sides = corners[:, 2:] - corners[:, :2]
    return np.concatenate([corners[:, :2], sides], axis=1), boxed
