"""Argument checks and error text shared by every module (private).

Each rule is written here once: what a whole number, a fraction or a size is, how an
argument's problem is worded (``"name: expected ..., got ..."``), and how a foreign exception
is quoted inside a cxrexplain error (its first line, at most :data:`MESSAGE_LIMIT` characters).

Example:
    >>> check_int(3, "batch_size")
    3
    >>> check_int(0, "batch_size")
    Traceback (most recent call last):
    ...
    cxrexplain.errors.InvalidInputError: batch_size: expected a whole number >= 1, got 0
    >>> check_size(64, "size")
    (64, 64)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, TypeGuard

import numpy as np

from cxrexplain.errors import InvalidInputError

__all__ = [
    "MESSAGE_LIMIT",
    "as_labels",
    "as_numbers",
    "check_channels",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_number",
    "check_size",
    "describe",
    "first_line",
    "is_number",
    "is_whole",
    "safe_ndim",
]

MESSAGE_LIMIT = 300
"""The most characters of a foreign error message quoted in a cxrexplain error."""

MAX_SIDE = 16384
"""The largest height or width a size argument may ask for (a film is about 4,000 pixels)."""


def one_line(message: str) -> str:
    """A message on one line (a CSV or Parquet error cell holds one line).

    Example:
        >>> one_line("images[3]: cannot decode\\nPNG header")
        'images[3]: cannot decode PNG header'
    """
    return " ".join(message.splitlines())


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (cut to :data:`MESSAGE_LIMIT`), or its type.

    Example:
        >>> first_line(ValueError("bad shape\\nlong traceback ..."))
        'bad shape'
        >>> first_line(KeyError())
        'KeyError'
    """
    lines = str(err).strip().splitlines()
    return lines[0][:MESSAGE_LIMIT] if lines else type(err).__name__


def describe(value: object) -> str:
    """A short description of a value for an error message (its repr, or its type if long).

    Example:
        >>> describe(None), describe([1, 2]), describe(object())[:8]
        ('None', '[1, 2]', '<object>')
    """
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    text = repr(value)
    if len(text) > 80 or text.startswith("<"):
        return f"<{type(value).__name__}>"
    return text


def is_whole(value: object) -> TypeGuard[int | np.integer[Any]]:
    """True for a Python or NumPy integer that is not a bool.

    Example:
        >>> is_whole(3), is_whole(np.int64(3)), is_whole(True), is_whole(3.0)
        (True, True, False, False)
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: object) -> bool:
    """True for a real, finite Python or NumPy number that is not a bool.

    Example:
        >>> is_number(0.5), is_number(float("nan")), is_number("0.5")
        (True, False, False)
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        return False
    return bool(np.isfinite(float(value)))


def safe_ndim(value: object) -> int | None:
    """``np.ndim(value)``, or None for a ragged nesting that is no array.

    Example:
        >>> safe_ndim(3), safe_ndim([[1, 2]]), safe_ndim([[], [1]])
        (0, 2, None)
    """
    try:
        return int(np.ndim(value))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None


def check_int(value: object, name: str, *, minimum: int = 1,
              maximum: int | None = None) -> int:
    """``value`` as an int if it is a whole number in ``[minimum, maximum]``.

    Raises:
        InvalidInputError: Not a whole number, or out of range; the message names ``name``.

    Example:
        >>> check_int(np.int32(2), "steps", minimum=2)
        2
    """
    if not is_whole(value):
        raise InvalidInputError(
            f"{name}: expected a whole number >= {minimum}, got {describe(value)}"
        )
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"in {minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise InvalidInputError(f"{name}: expected a whole number {bound}, got {number}")
    return number


def check_number(value: object, name: str, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> float:
    """``value`` as a float if it is a finite number within the given bounds.

    Raises:
        InvalidInputError: Not a finite number, or outside the bounds.

    Example:
        >>> check_number(2, "dpi", low=0, low_open=True)
        2.0
        >>> check_number(1.5, "alpha", low=0, high=1)
        Traceback (most recent call last):
        ...
        cxrexplain.errors.InvalidInputError: alpha: expected a number in [0, 1], got 1.5
    """
    bounds = _bounds_text(low, high, low_open, high_open)
    if not is_number(value):
        raise InvalidInputError(f"{name}: expected a number{bounds}, got {describe(value)}")
    number = float(value)  # type: ignore[arg-type]
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        raise InvalidInputError(f"{name}: expected a number{bounds}, got {value!r}")
    return number


def check_fraction(value: object, name: str, *, open_interval: bool = False) -> float:
    """A number in [0, 1] (or in (0, 1) with ``open_interval``).

    Example:
        >>> check_fraction(0.2, "validation_split", open_interval=True)
        0.2
    """
    return check_number(value, name, low=0.0, high=1.0, low_open=open_interval,
                        high_open=open_interval)


def check_size(size: object, name: str, *, minimum: int = 1,
               maximum: int = MAX_SIDE) -> tuple[int, int]:
    """An int (square) or a ``(height, width)`` pair of whole numbers in ``minimum..maximum``.

    Example:
        >>> check_size((32, 48), "input_size")
        (32, 48)
        >>> check_size((32,), "size")
        Traceback (most recent call last):
        ...
        cxrexplain.errors.InvalidInputError: size: expected an int or (height, width) of whole numbers in 1..16384, got (32,)
    """  # noqa: E501
    pair: Sequence[Any]
    if is_whole(size):
        pair = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        pair = size
    else:
        pair = ()
    values = [int(v) for v in pair if is_whole(v)]
    if len(values) != 2 or min(values) < minimum or max(values) > maximum:
        raise InvalidInputError(
            f"{name}: expected an int or (height, width) of whole numbers in "
            f"{minimum}..{maximum}, got {describe(size)}"
        )
    return values[0], values[1]


def check_channels(value: object, name: str = "channels") -> int:
    """1 (gray) or 3 (RGB).

    Example:
        >>> check_channels(3)
        3
    """
    if not is_whole(value) or int(value) not in (1, 3):
        raise InvalidInputError(f"{name}: expected 1 or 3, got {describe(value)}")
    return int(value)


def check_choice(value: object, name: str, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    Example:
        >>> check_choice("otsu", "threshold", ("otsu", "fixed"))
        'otsu'
    """
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise InvalidInputError(f"{name}: expected one of {listed}, got {describe(value)}")
    return value


def as_numbers(values: object, name: str) -> np.ndarray:
    """A non-empty array of finite real numbers (bool becomes float32).

    Raises:
        InvalidInputError: Not numbers (objects, strings, None, ragged lists), complex, empty,
            or with NaN/inf.

    Example:
        >>> as_numbers([[0, 1], [1, 0]], "mask").shape
        (2, 2)
    """
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise InvalidInputError(
            f"{name}: expected an array of numbers, got {describe(values)}"
        ) from err
    if array.dtype == bool:  # empty or not: the size rule below is for every dtype
        array = array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.number):
        raise InvalidInputError(
            f"{name}: expected an array of numbers, got {describe(values)}"
            if array.dtype == object else f"{name}: expected numbers, got dtype {array.dtype}"
        )
    if np.issubdtype(array.dtype, np.complexfloating):
        raise InvalidInputError(f"{name}: expected real numbers, got complex values")
    if array.size == 0:
        raise InvalidInputError(f"{name}: the array is empty (shape {array.shape})")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{name}: contains NaN or infinite values")
    return array


MAX_CLASSES = 65536
"""The most classes a label array may index (a larger label is a mistake, not a class)."""


def as_labels(values: object, name: str, *, num_classes: int | None = None) -> np.ndarray:
    """A non-empty 1-D int64 array of class indices in ``0..num_classes - 1``.

    Floats with whole values (``1.0``) are accepted; ``(N, 1)`` columns are flattened.

    Example:
        >>> as_labels([0, 2.0, 1], "labels").tolist()
        [0, 2, 1]
    """
    array = as_numbers(values, name)
    if array.ndim == 0:
        array = array[None]
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    limit = MAX_CLASSES if num_classes is None else num_classes
    if array.ndim != 1 or not np.all(array == np.round(array)) or array.min() < 0 \
            or array.max() >= limit:
        raise InvalidInputError(
            f"{name}: expected a 1-D sequence of class indices in 0..{limit - 1}, got "
            f"{describe(values)}"
        )
    return array.astype(np.int64)


def _bounds_text(low: float | None, high: float | None, low_open: bool,
                 high_open: bool) -> str:
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f" in {left}{_fmt(low)}, {_fmt(high)}{right}"
    if low is not None:
        return f" {'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {_fmt(high)}"
    return ""


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)
