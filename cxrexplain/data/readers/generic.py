"""A folder of films with a CSV of your own: :func:`read_csv`, the generic reader.

The CSV has a row per film (or, with box columns, a row per box): a path column, label
columns, and optional metadata and box columns. Labels come as

* **one column holding a class name** (``labels="label"``: ``NORMAL``, ``PNEUMONIA``): one
  class per film, one-hot targets; a blank is unknown (NaN);
* **several 0/1 columns** (``labels=["Effusion", "Mass"]``): multi-label; ``1``, ``0``,
  ``true``/``false``, ``yes``/``no``, blank = unknown.

The metadata columns ``patient``, ``view``, ``sex``, ``age`` and ``source`` are taken from
columns of those names when present (any case), or from the columns named by the arguments;
every other column is kept as ``metadata`` (strings), unless ``keep`` lists which to keep.

Example:
    >>> _ = Path("films.csv").write_text(
    ...     "image,label,patient,view,sex,age\\n"
    ...     "a.png,NORMAL,p1,AP,F,61\\n"
    ...     "b.png,PNEUMONIA,p2,PA,M,\\n")
    >>> recs = read_csv("films.csv", labels="label")
    >>> recs.class_names, recs.targets.tolist(), recs.view.tolist(), recs.age.tolist()
    (('NORMAL', 'PNEUMONIA'), [[1.0, 0.0], [0.0, 1.0]], ['AP', 'PA'], [61.0, nan])
    >>> recs.paths[0] == os.path.join(".", "a.png")  # beside the CSV
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from cxrexplain.data._columns import parse_ages
from cxrexplain.data._rows import Table, read_table
from cxrexplain.data.annotations import FilmBoxes
from cxrexplain.data.readers._common import film_paths, parse_binary
from cxrexplain.data.records import Records
from cxrexplain.errors import InvalidInputError

__all__ = ["BOX_FINDING", "read_csv"]

BOX_FINDING = "box"
"""The finding of boxes read without a finding column."""

_BOX_DEFAULT = ("x", "y", "width", "height")


def read_csv(
    csv: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    *,
    path: str = "image",
    labels: str | Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    patient: str | None = None,
    view: str | None = None,
    sex: str | None = None,
    age: str | None = None,
    source: str | None = None,
    boxes: bool | Sequence[str] | None = None,
    finding: str | None = None,
    keep: Sequence[str] | None = None,
    delimiter: str = ",",
) -> Records:
    """Read a CSV of films (a row per film, or per box) into :class:`~cxrexplain.data.Records`.

    Args:
        csv: The CSV file (``.gz`` or ``.zip`` too).
        images: The folder the paths are relative to (default: the CSV's folder; an absolute
            path stays as it is). Files are not opened: ``recs.missing()`` lists absent ones.
        path: The column of the film paths.
        labels: One column of class names, a list of 0/1 columns, or None (no classes).
        classes: With one class-name column: the classes in label order (a value outside
            them is an error); default the values found, sorted.
        patient: The patient column (default: a column named ``patient``, if any).
        view: The view column (default ``view``, if any; normalised: ``"AP Supine"`` ->
            ``"AP"``).
        sex: The sex column (default ``sex``, if any; ``"F"``/``"M"``/``""``).
        age: The age column (default ``age``, if any; years).
        source: The source column (default ``source``, if any).
        boxes: True for the box columns ``x, y, width, height`` (a box per row, in the film's
            own pixels; several rows per film; a row with all four blank has no box), or the
            four column names; None for no boxes.
        finding: With boxes, the column naming each box's finding (default ``finding``, if
            any; else every box is a :data:`BOX_FINDING`).
        keep: The other columns to keep as metadata (default all).
        delimiter: The field separator.

    Returns:
        The table, films in the order of the CSV (of their first row, with boxes).

    Raises:
        InvalidInputError: A missing file or column; a malformed row (a label that is not
            0/1, a class outside ``classes``, a bad number or box, a film listed twice
            without boxes, two rows of a film with different labels): the message names
            the file, the row (its line number) and the column.

    Example:
        >>> _ = Path("boxes.csv").write_text("image,finding,x,y,width,height\\n"
        ...                                  "a.png,Mass,10,20,30,40\\na.png,Mass,1,1,5,5\\n")
        >>> recs = read_csv("boxes.csv", boxes=True)
        >>> len(recs), recs.findings_with_boxes, recs.boxes("Mass")[0].shape
        (1, ('Mass',), (2, 4))
    """
    table = read_table(csv, "csv", delimiter=delimiter)
    path_column = table.require(path)
    names = table.column(path_column)
    empty = next((i for i, name in enumerate(names) if not name), None)
    if empty is not None:
        raise table.error(empty, path_column, "the film's path is blank")
    targets, class_names, label_columns = _labels(table, labels, classes)
    box_columns = _box_columns(table, boxes)
    finding_column = None
    if box_columns:
        finding_column = table.require(finding) if finding else table.find("finding")
    films, first_rows = _films(table, names, path_column, grouped=bool(box_columns))
    _check_same_labels(table, targets, films, first_rows, label_columns)
    used = {path_column, *label_columns, *box_columns}
    if finding_column:
        used.add(finding_column)
    meta: dict[str, str | None] = {}
    for key, given in (("patient", patient), ("view", view), ("sex", sex), ("age", age),
                       ("source", source)):
        meta[key] = table.require(given) if given else table.find(key)
        if meta[key]:
            used.add(str(meta[key]))
    extra = ([c for c in table.header if c and c not in used] if keep is None
             else [table.require(c) for c in keep])

    def column(name: str | None) -> list[str] | None:
        if name is None:
            return None
        values = table.column(name)
        return [values[i] for i in first_rows.tolist()]

    ages = column(meta["age"])
    age_values = None if ages is None else parse_ages(
        ages, on_error=lambda i: table.error(
            int(first_rows[i]), str(meta["age"]), f"expected an age in years, got {ages[i]!r}"))
    return Records(
        film_paths([names[i] for i in first_rows.tolist()], images, table.path.parent),
        class_names, targets[first_rows],
        patient=column(meta["patient"]), view=column(meta["view"]), sex=column(meta["sex"]),
        age=age_values, source=column(meta["source"]),
        metadata={name: column(name) for name in extra},
        boxes=_boxes(table, box_columns, finding_column, films) if box_columns else None,
    )


def _labels(table: Table, labels: str | Sequence[str] | None,
            classes: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...], list[str]]:
    """``(targets (rows, K), class names, label columns)``."""
    if labels is None:
        return np.zeros((len(table), 0), np.float32), (), []
    if isinstance(labels, str):
        name = table.require(labels)
        values = table.column(name)
        found = sorted({v for v in values if v})
        names = tuple(classes) if classes is not None else tuple(found)
        if classes is not None:
            outside = next((i for i, v in enumerate(values) if v and v not in names), None)
            if outside is not None:
                raise table.error(outside, name, f"{values[outside]!r} is not one of the "
                                                 f"classes {', '.join(names)}")
        index = {n: k for k, n in enumerate(names)}
        targets = np.zeros((len(values), len(names)), np.float32)
        rows = np.fromiter((index.get(v, -1) for v in values), np.int64, count=len(values))
        known = rows >= 0
        targets[np.flatnonzero(known), rows[known]] = 1.0
        targets[~known] = np.nan
        return targets, names, [name]
    if not labels:
        raise InvalidInputError("labels: expected a column name or a list of columns, got []")
    columns = [table.require(c) for c in labels]
    targets = np.stack([parse_binary(table, c) for c in columns], axis=1).reshape(
        len(table), len(columns))
    return targets, tuple(columns), columns


def _box_columns(table: Table, boxes: bool | Sequence[str] | None) -> list[str]:
    if boxes is None or boxes is False:
        return []
    wanted = _BOX_DEFAULT if boxes is True else tuple(boxes)
    if len(wanted) != 4 or isinstance(boxes, str):
        raise InvalidInputError(
            f"boxes: expected True or the four columns (x, y, width, height), got {boxes!r}")
    return [table.require(c) for c in wanted]


def _films(table: Table, names: list[str], path_column: str, *,
           grouped: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row's film index (first-seen order) and each film's first row."""
    index: dict[str, int] = {}
    firsts: list[int] = []
    films = np.empty(len(names), np.int64)
    for row, name in enumerate(names):
        film = index.setdefault(name, len(index))
        if film == len(firsts):
            firsts.append(row)
        elif not grouped:
            raise table.error(row, path_column,
                              f"the film {name!r} is listed twice (first on row "
                              f"{table.line(firsts[film])}); one row per film, or pass boxes=")
        films[row] = film
    return films, np.asarray(firsts, np.int64)


def _check_same_labels(table: Table, targets: np.ndarray, films: np.ndarray,
                       first_rows: np.ndarray, label_columns: list[str]) -> None:
    if not label_columns or len(first_rows) == len(films):
        return
    reference = targets[first_rows[films]]
    differ = ~((targets == reference) | (np.isnan(targets) & np.isnan(reference)))
    if differ.any():
        row, k = (int(v) for v in np.argwhere(differ)[0])
        column = label_columns[min(k, len(label_columns) - 1)]
        raise table.error(row, column, "the film's label differs from its first row's "
                                       f"(row {table.line(int(first_rows[films[row]]))})")


def _boxes(table: Table, columns: list[str], finding_column: str | None,
           films: np.ndarray) -> dict[str, FilmBoxes]:
    values = [table.column(c) for c in columns]
    blank = np.array([not any(parts) for parts in zip(*values, strict=True)], bool)
    rows = np.flatnonzero(~blank)
    numbers = np.stack([
        table.parse_numbers([values[k][r] for r in rows.tolist()], columns[k],
                            positive=k >= 2, blank=False, rows=rows.tolist())
        for k in range(4)], axis=1).reshape(len(rows), 4)
    findings = (table.column(finding_column) if finding_column
                else [BOX_FINDING] * len(table))
    names = [findings[r] or BOX_FINDING for r in rows.tolist()]
    out: dict[str, FilmBoxes] = {}
    for name in dict.fromkeys(names):
        mine = np.array([n == name for n in names], bool)
        out[name] = FilmBoxes(films[rows[mine]], numbers[mine])
    return out
