"""``cxrexplain audit --metadata FILE``: the films' metadata CSV as a records table.

A CSV with a row per film: a path column (``image`` by default; paths relative to the CSV's
folder or to any folder above the films: they are matched to the films by their trailing
parts), optional ``label`` (a class name per film: the labels of the subgroup table and the
swap test), and metadata columns (``patient``, ``view``, ``sex``, ``age``, ``source``, any
other).

Example:
    >>> from cxrexplain.cli.audit.metadata import read_metadata
    >>> _ = Path("meta.csv").write_text("image,label,view,sex,age\\n"
    ...                                 "cxr/NORMAL/00.png,NORMAL,AP,F,61\\n")
    >>> recs = read_metadata(Path("meta.csv"))
    >>> recs.class_names, recs.view.tolist(), recs.age.tolist()
    (('NORMAL',), ['AP'], [61.0])
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from cxrexplain.data.records import Records
from cxrexplain.errors import InvalidInputError

__all__ = ["read_metadata"]

_BUILT_IN = ("patient", "view", "sex", "age", "source")


def read_metadata(file: Path, *, path: str = "image", label: str = "label") -> Records:
    """Read a metadata CSV (see the module) into :class:`~cxrexplain.data.Records`.

    Args:
        file: The CSV.
        path: Its column of film paths.
        label: Its column of class names (absent: no labels).

    Raises:
        InvalidInputError: No such file, no path column, an age that is not a number.
    """
    if not file.is_file():
        raise InvalidInputError(f"--metadata: no such file '{file}'")
    with file.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0]) if rows else []
    if path not in header:
        raise InvalidInputError(
            f"--metadata: '{file}' has no column '{path}' of film paths (columns: {header})")
    paths = [str(file.parent / r[path]) for r in rows]
    class_names: list[str] = []
    targets = None
    if label in header:
        class_names = sorted({r[label] for r in rows if r[label]})
        targets = np.full((len(rows), len(class_names)), np.nan, np.float32)
        for i, r in enumerate(rows):
            if r[label]:
                targets[i] = 0.0
                targets[i, class_names.index(r[label])] = 1.0
    built: dict[str, list[Any]] = {name: [r[name] for r in rows] for name in _BUILT_IN
                                   if name in header}
    if "age" in built:
        built["age"] = [_age(v, file, i) for i, v in enumerate(built["age"])]
    others = {c: [r[c] for r in rows] for c in header if c not in (path, label, *_BUILT_IN)}
    return Records(paths, class_names, targets, metadata=others, **built)  # type: ignore[arg-type]


def _age(text: str, file: Path, row: int) -> float:
    if not text.strip():
        return math.nan
    try:
        return float(text)
    except ValueError as err:
        raise InvalidInputError(
            f"--metadata: '{file}' row {row + 2}, column 'age': expected years, got {text!r}"
        ) from err
