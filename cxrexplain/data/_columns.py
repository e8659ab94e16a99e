"""The metadata columns of a records table, normalised alike whatever the collection (private).

* **view**: ``"PA"``, ``"AP"`` (also AP supine, AP semi-erect, AP erect), ``"LATERAL"``
  (``L``, ``LAT``, lateral), ``"LL"`` / ``"RL"`` (left / right lateral decubitus, as written),
  ``"FRONTAL"`` (frontal, AP or PA unknown); other values upper-cased as written (``"AXIAL"``);
  ``""`` unknown;
* **sex**: ``"F"`` or ``"M"`` (female, woman, f, ...), ``""`` unknown (blank, other, unknown);
* **age**: years as float (``"058Y"``, ``"6M"`` months, ``"10D"`` days, ``"61.5"``), NaN unknown.

Each distinct value is normalised once (a column holds few distinct values), so a 100,000-row
column takes milliseconds.

Example:
    >>> normalise_view(["PA", "AP Supine", "L", ""]).tolist()
    ['PA', 'AP', 'LATERAL', '']
    >>> normalise_sex(["Female", "m", "Unknown"]).tolist()
    ['F', 'M', '']
    >>> parse_ages(["058Y", "6M", ""]).tolist()
    [58.0, 0.5, nan]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from cxrexplain.errors import InvalidInputError

__all__ = ["as_strings", "normalise_sex", "normalise_view", "parse_ages", "parse_age"]

_VIEWS = {
    "PA": "PA", "POSTEROANTERIOR": "PA",
    "AP": "AP", "ANTEROPOSTERIOR": "AP", "APSUPINE": "AP", "APSEMIERECT": "AP",
    "APERECT": "AP", "APSEMI": "AP", "APS": "AP", "APUPRIGHT": "AP",
    "L": "LATERAL", "LAT": "LATERAL", "LATERAL": "LATERAL",
    "LL": "LL", "RL": "RL",
    "FRONTAL": "FRONTAL",
}
_SEXES = {"F": "F", "FEMALE": "F", "W": "F", "WOMAN": "F",
          "M": "M", "MALE": "M", "MAN": "M"}
_AGE_UNITS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def as_strings(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """A NumPy unicode array of the values (an empty column stays ``<U1``).

    Example:
        >>> as_strings(["a", "bc"]).dtype
        dtype('<U2')
    """
    array = np.asarray(values, dtype=np.str_)
    return array if array.size else np.zeros(len(values), "<U1")


def _by_distinct(values: Sequence[str] | np.ndarray,
                 rule: Callable[[str], str]) -> np.ndarray:
    strings = as_strings(values)
    distinct, inverse = np.unique(strings, return_inverse=True)
    mapped = as_strings([rule(str(v)) for v in distinct])
    return mapped[inverse.reshape(-1)] if len(strings) else as_strings([])


def _view(text: str) -> str:
    key = "".join(c for c in text.upper() if c.isalnum())
    return _VIEWS.get(key, text.strip().upper())


def _sex(text: str) -> str:
    return _SEXES.get(text.strip().upper(), "")


def normalise_view(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """Views written any way -> the vocabulary of the module docs.

    Example:
        >>> normalise_view(["ap", "Lateral", "Axial"]).tolist()
        ['AP', 'LATERAL', 'AXIAL']
    """
    return _by_distinct(values, _view)


def normalise_sex(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """Sexes written any way -> ``"F"``, ``"M"`` or ``""``.

    Example:
        >>> normalise_sex(["F", "MALE", ""]).tolist()
        ['F', 'M', '']
    """
    return _by_distinct(values, _sex)


def parse_age(text: str) -> float:
    """One age in years (see the module docs); NaN for a blank.

    Raises:
        ValueError: Not an age.

    Example:
        >>> parse_age("012D") * 365.25
        12.0
    """
    value = text.strip().upper()
    if not value:
        return math.nan
    unit = _AGE_UNITS.get(value[-1])
    number = float(value[:-1] if unit is not None else value) * (unit or 1.0)
    if not math.isfinite(number) or number < 0:
        raise ValueError(text)
    return number


def parse_ages(values: Sequence[str], *, on_error: Callable[[int], Exception] | None = None
               ) -> np.ndarray:
    """Ages in years (float64, NaN unknown), each distinct text parsed once.

    Args:
        values: The ages as written.
        on_error: Builds the error for the row index of a value that is not an age (the
            readers name file, row and column); default: an ``InvalidInputError``.

    Raises:
        InvalidInputError: A value that is not an age (negative, text).

    Example:
        >>> parse_ages(["61", "61", "2Y"]).tolist()
        [61.0, 61.0, 2.0]
    """
    parsed: dict[str, float] = {}
    out = np.empty(len(values), np.float64)
    for i, text in enumerate(values):
        age = parsed.get(text)
        if age is None:
            try:
                age = parse_age(text)
            except ValueError:
                if on_error is not None:
                    raise on_error(i) from None
                raise InvalidInputError(
                    f"age: expected years (61, '058Y', '6M'), got {text!r}") from None
            parsed[text] = age
        out[i] = age
    return out
