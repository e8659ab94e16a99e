"""The films' metadata for the audit: which columns to split by, their values, age bands.

The audit's ``by=`` names metadata columns (``"view"``, ``"sex"``, ``"age"``, ``"source"``);
their values come from a records table (:class:`cxrexplain.data.Records`, or anything with
``paths`` and a ``column(name)`` method) or from a mapping of column name to one value per
film. A column whose values are all numbers (the age) is cut into bands (:func:`band_labels`,
default ``<40``, ``40-60``, ``60-80``, ``>=80``). A missing value (None, NaN or an empty
string) leaves the film out of that column's subgroups and probe.

Example:
    >>> from cxrexplain.auditing.attributes import film_attributes
    >>> film_attributes({"sex": ["F", "M", ""], "age": [35, 61.5, None]}, ["sex", "age"], 3)
    {'sex': ['F', 'M', None], 'age': ['<40', '60-80', None]}
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cxrexplain._checks import describe
from cxrexplain.data.files import path_lookup
from cxrexplain.errors import InvalidInputError

__all__ = ["DEFAULT_BANDS", "RecordsLike", "band_labels", "film_attributes", "is_records",
           "parse_by", "patient_column", "records_labels", "sorted_values"]

DEFAULT_BANDS: tuple[float, ...] = (40.0, 60.0, 80.0)
"""The age bands' edges: ``<40``, ``40-60``, ``60-80``, ``>=80`` (each band holds its lower
edge)."""

Attributes = dict[str, list[str | None]]
"""Each ``by`` column's value per film (banded; None where missing)."""


@runtime_checkable
class RecordsLike(Protocol):
    """What the audit reads of a records table (:class:`cxrexplain.data.Records`)."""

    @property
    def paths(self) -> Sequence[Any]: ...

    def column(self, name: str) -> Sequence[Any]: ...


def is_records(value: object) -> bool:
    """Whether ``value`` is a records table (has ``paths`` and ``column``), not a mapping."""
    return (not isinstance(value, (Mapping, str, os.PathLike, np.ndarray))
            and hasattr(value, "paths") and callable(getattr(value, "column", None)))


def parse_by(by: str | Sequence[str] | None) -> tuple[str, ...]:
    """The column names of ``by``: None, ``"view,sex"`` or ``["view", "sex"]``.

    Example:
        >>> parse_by("view, sex"), parse_by(["age"]), parse_by(None)
        (('view', 'sex'), ('age',), ())
    """
    if by is None:
        return ()
    names = by.split(",") if isinstance(by, str) else by
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise InvalidInputError(
            f"by: expected column names ('view,sex' or ['view', 'sex']), got {describe(by)}")
    out = tuple(n.strip() for n in names if n.strip())
    if len(set(out)) != len(out):
        raise InvalidInputError(f"by: a column is named twice in {list(out)}")
    return out


def band_labels(values: Sequence[Any], edges: Sequence[float] = DEFAULT_BANDS
                ) -> list[str | None]:
    """Each number's band between ``edges``: ``<e0``, ``e0-e1``, ..., ``>=e_last``.

    A band holds its lower edge (61 and 60 are ``60-80``); None, NaN and empty strings stay
    None.

    Raises:
        InvalidInputError: Edges not increasing, or a value that is not a number.

    Example:
        >>> band_labels([12, 40, 59.9, 80, None], (40, 60, 80))
        ['<40', '40-60', '40-60', '>=80', None]
    """
    cuts = [float(e) for e in edges]
    if not cuts or any(b <= a for a, b in itertools.pairwise(cuts)):
        raise InvalidInputError(f"bands: expected increasing band edges, got {list(edges)}")
    names = ([f"<{cuts[0]:g}"] + [f"{a:g}-{b:g}" for a, b in itertools.pairwise(cuts)]
             + [f">={cuts[-1]:g}"])
    out: list[str | None] = []
    for value in values:
        number = _number(value)
        if number is None:
            if not _missing(value):
                raise InvalidInputError(f"bands: '{value}' is not a number")
            out.append(None)
        else:
            out.append(names[int(np.searchsorted(cuts, number, side="right"))])
    return out


def film_attributes(metadata: Any, by: Sequence[str], count: int, *,
                    paths: Sequence[str] | None = None,
                    bands: Sequence[float] = DEFAULT_BANDS) -> Attributes:
    """Each ``by`` column's value for each of ``count`` films (numbers cut into bands).

    Args:
        metadata: A mapping of column name to one value per film (in the films' order), or
            a records table (matched to the films by path when both have paths, else by
            position).
        by: The column names.
        count: The number of films.
        paths: The films' paths, when known.
        bands: The edges that cut a numeric column (the age).

    Returns:
        ``{column: [value or None per film]}``, values as strings.

    Raises:
        InvalidInputError: No metadata, an unknown column, a column of the wrong length, or
            a records table none of whose films matches.
    """
    if not by:
        return {}
    if metadata is None:
        raise InvalidInputError(
            f"by: {list(by)} needs the films' metadata (give a records table as the images, "
            "or metadata=)")
    out: Attributes = {}
    for name in by:
        raw = column_values(metadata, name, count, paths=paths)
        numeric = [v for v in raw if not _missing(v)]
        if numeric and all(_number(v) is not None for v in numeric):
            out[name] = band_labels(raw, bands)
        else:
            out[name] = [None if _missing(v) else str(v).strip() for v in raw]
    return out


def column_values(metadata: Any, name: str, count: int, *,
                  paths: Sequence[str] | None = None) -> list[Any]:
    """One column of ``metadata`` for each film (see :func:`film_attributes`)."""
    if is_records(metadata):
        try:
            values = list(metadata.column(name))
        except (KeyError, ValueError, AttributeError, InvalidInputError) as err:
            raise InvalidInputError(f"by: the records have no column '{name}' ({err})"
                                    ) from err
        own = [str(p) for p in metadata.paths]
        if paths is not None and own != [str(p) for p in paths]:
            where = _match(own, paths)
            if all(w is None for w in where):
                raise InvalidInputError(
                    "metadata: none of the films is in the records (matched by path)")
            return [None if w is None else values[w] for w in where]
    elif isinstance(metadata, Mapping):
        if name not in metadata:
            raise InvalidInputError(
                f"by: no column '{name}' in the metadata (columns: {sorted(map(str, metadata))})")
        values = list(metadata[name])
    else:
        raise InvalidInputError(
            f"metadata: expected a records table or a mapping of column name to one value "
            f"per film, got {describe(metadata)}")
    if len(values) != count:
        raise InvalidInputError(
            f"metadata: column '{name}' has {len(values)} values for {count} films")
    return values


def patient_column(metadata: Any, count: int, paths: Sequence[str] | None = None
                   ) -> list[str | None] | None:
    """Each film's patient (column ``patient``), or None when the metadata has none."""
    if metadata is None:
        return None
    try:
        raw = column_values(metadata, "patient", count, paths=paths)
    except InvalidInputError:
        return None
    values = [None if _missing(v) else str(v) for v in raw]
    return values if any(v is not None for v in values) else None


def records_labels(records: Any, class_names: Sequence[str], *,
                   paths: Sequence[str] | None = None) -> list[str] | None:
    """The records' single labels as class names, one per film, or None.

    None when the records have no targets, when a film has not exactly one class (multi-
    label or unlabelled), when one of their classes is not among ``class_names`` (the
    classifier's), or when a film (``paths``, matched as :func:`film_attributes` does) is
    not in the records.

    Example:
        >>> from cxrexplain.data import Records
        >>> recs = Records(["a.png", "b.png"], ["NORMAL", "PNEUMONIA"], [[0, 1], [1, 0]])
        >>> records_labels(recs, ("NORMAL", "PNEUMONIA"), paths=["/x/b.png", "/x/a.png"])
        ['NORMAL', 'PNEUMONIA']
    """
    targets = getattr(records, "targets", None)
    names = getattr(records, "class_names", None)
    if targets is None or names is None:
        return None
    array = np.asarray(targets, dtype=np.float64)
    if array.ndim != 2 or not len(array) or array.shape[1] != len(names):
        return None
    hot = np.nan_to_num(array) > 0.5
    if not (hot.sum(axis=1) == 1).all() or not set(map(str, names)) <= set(class_names):
        return None
    labels = [str(names[i]) for i in np.argmax(hot, axis=1)]
    own = [str(p) for p in records.paths]
    if paths is None or own == [str(p) for p in paths]:
        return labels
    where = _match(own, paths)
    if any(w is None for w in where):
        return None
    return [labels[w] for w in where if w is not None]


def _match(own: Sequence[str], paths: Sequence[str]) -> list[int | None]:
    """Each film's row among the records' paths: the same file, or a trailing part of it."""
    table = {p: i for i, p in enumerate(own)}
    table.update({os.path.abspath(p): i for i, p in enumerate(own)})
    find = path_lookup(table)
    return [find(os.path.abspath(str(p))) for p in paths]


_BAND = re.compile(r"^(<|>=)?(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?$")


def sorted_values(values: Any) -> list[str]:
    """The distinct values (None left out), bands in order of age, then the rest sorted.

    Example:
        >>> sorted_values([">=80", "40-60", None, "<40", "60-80", "40-60"])
        ['<40', '40-60', '60-80', '>=80']
        >>> sorted_values(["PA", "AP", "AP Supine"])
        ['AP', 'AP Supine', 'PA']
    """
    def key(value: str) -> tuple[int, float, str]:
        match = _BAND.match(value)
        if match is None:
            return (1, 0.0, value)
        return (0, -math.inf if match.group(1) == "<" else float(match.group(2)), value)

    return sorted({str(v) for v in values if v is not None}, key=key)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _number(value: Any) -> float | None:
    if _missing(value) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
