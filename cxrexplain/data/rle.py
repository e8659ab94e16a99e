"""Run-length codes of masks: COCO's (CheXlocalize) and SIIM-ACR's, decoded with NumPy.

Both codes walk the mask **column by column** (Fortran order: down the first column, then
down the second, ...) and store the lengths of alternating runs, background first.

* **COCO** (``{"size": [h, w], "counts": ...}``, as pycocotools writes it): ``counts`` is
  either a list of run lengths (background, mask, background, ...; the first may be 0) or the
  compressed string of COCO's ``rleToString``: each run length, from the fourth on, is stored
  as its difference to the run length two places before, then written in a LEB128-like code of
  6 bits per character (ASCII 48-111; 5 bits of value, bit 5 "more characters follow", bit 4
  of the last character the sign).
* **SIIM-ACR** (``train-rle.csv``, ``EncodedPixels``): space-separated pairs
  ``gap length``, where ``gap`` counts the background pixels since the end of the previous run
  (since the first pixel for the first pair), on a 1024 x 1024 film; ``-1`` means no mask.
  This is a COCO list of run lengths without its trailing background run.

No pycocotools is needed; a code that does not fit its size raises
:class:`~cxrexplain.errors.InvalidInputError`.

Example:
    >>> mask = np.array([[0, 1, 1],
    ...                  [0, 1, 0]], bool)
    >>> mask_to_runs(mask).tolist()            # down column 0, then 1, then 2
    [2, 3, 1]
    >>> code = mask_to_coco(mask)
    >>> code
    {'size': [2, 3], 'counts': '231'}
    >>> bool((coco_to_mask(code) == mask).all())
    True
    >>> mask_to_siim(mask), siim_to_mask("2 3", shape=(2, 3)).astype(int).tolist()
    ('2 3', [[0, 1, 1], [0, 1, 0]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cxrexplain.errors import InvalidInputError

__all__ = [
    "SIIM_SHAPE",
    "coco_counts",
    "coco_to_mask",
    "mask_to_coco",
    "mask_to_runs",
    "mask_to_siim",
    "runs_box",
    "runs_to_mask",
    "siim_runs",
    "siim_to_mask",
]

SIIM_SHAPE = (1024, 1024)
"""The size ``(height, width)`` of SIIM-ACR's films and masks."""


def runs_to_mask(runs: Sequence[int] | np.ndarray, shape: tuple[int, int], *,
                 name: str = "runs", exact: bool = True) -> np.ndarray:
    """The ``(h, w)`` bool mask of alternating run lengths (background first), column-major.

    Args:
        runs: Run lengths, background first (the first may be 0).
        shape: ``(height, width)``.
        name: What the runs are called in an error message.
        exact: Whether the runs must cover all ``h * w`` pixels (COCO); when False they may
            stop early and the rest is background (SIIM).

    Raises:
        InvalidInputError: A negative run, or runs that do not add up to the size.

    Example:
        >>> runs_to_mask([1, 2, 1], (2, 2)).astype(int).tolist()
        [[0, 1], [1, 0]]
    """
    counts = np.asarray(runs, np.int64).ravel()
    height, width = int(shape[0]), int(shape[1])
    total = height * width
    if counts.size and int(counts.min()) < 0:
        raise InvalidInputError(f"{name}: run lengths must not be negative, got "
                                f"{int(counts.min())}")
    covered = int(counts.sum())
    if covered > total or (exact and covered != total):
        raise InvalidInputError(
            f"{name}: the runs cover {covered} pixels; a {height} x {width} mask has {total}")
    values = (np.arange(counts.size) % 2).astype(bool)
    flat = np.zeros(total, bool)
    flat[:covered] = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")


def mask_to_runs(mask: np.ndarray) -> np.ndarray:
    """Alternating run lengths (background first) of a 2-D mask, column-major.

    Example:
        >>> mask_to_runs(np.ones((2, 2), bool)).tolist()
        [0, 4]
    """
    flat = np.asarray(mask).astype(bool).ravel(order="F")
    if flat.size == 0:
        return np.zeros(1, np.int64)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(edges).astype(np.int64)
    return np.concatenate(([0], runs)) if flat[0] else runs


def coco_counts(counts: str | bytes) -> np.ndarray:
    """The run lengths of a compressed COCO ``counts`` string (COCO's ``rleFrString``).

    Raises:
        InvalidInputError: A character outside ASCII 48-111 or a code cut off mid-number.

    Example:
        >>> coco_counts("231").tolist(), coco_counts("PVWX6").tolist()
        ([2, 3, 1], [6560960])
    """
    text = counts.encode("ascii", "replace") if isinstance(counts, str) else bytes(counts)
    codes = np.frombuffer(text, np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return np.zeros(0, np.int64)
    bad = np.flatnonzero((codes < 0) | (codes > 63))
    if bad.size:
        at = int(bad[0])
        raise InvalidInputError(f"COCO counts: character {at} ({text[at:at + 1]!r}) is outside "
                                "the code's range '0'..'o'")
    more = (codes & 0x20) != 0
    if more[-1]:
        raise InvalidInputError("COCO counts: the string ends in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    group = np.repeat(np.arange(ends.size), ends - starts + 1)
    shift = 5 * (np.arange(codes.size) - starts[group])
    if int(shift.max()) > 55:
        raise InvalidInputError("COCO counts: a number is longer than 12 characters")
    values = np.add.reduceat((codes & 0x1F) << shift, starts)
    negative = (codes[ends] & 0x10) != 0
    values = values - np.where(negative, np.left_shift(1, shift[ends] + 5), 0)
    runs: np.ndarray = values.copy()
    # From the fourth run on, each is stored as the difference to the run two places before.
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def coco_to_mask(rle: Mapping[str, Any], *, name: str = "rle") -> np.ndarray:
    """The ``(h, w)`` bool mask of a COCO run-length code (compressed string or list counts).

    Args:
        rle: ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        name: What the code is called in an error message (a file and key, say).

    Raises:
        InvalidInputError: A malformed size or counts, or counts that do not fill the size.

    Example:
        >>> coco_to_mask({"size": [2, 2], "counts": [1, 2, 1]}).astype(int).tolist()
        [[0, 1], [1, 0]]
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise InvalidInputError(f"{name}: expected a mapping with 'size' and 'counts', got "
                                f"{type(rle).__name__}")
    size = rle["size"]
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(v, int) and v >= 0 for v in size)):
        raise InvalidInputError(f"{name}: 'size' must be [height, width], got {size!r}")
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        try:
            runs = coco_counts(counts)
        except InvalidInputError as err:
            raise InvalidInputError(f"{name}: {err}") from None
    elif isinstance(counts, Sequence) and all(isinstance(v, int) for v in counts):
        runs = np.asarray(counts, np.int64)
    else:
        raise InvalidInputError(f"{name}: 'counts' must be a string or a list of integers")
    return runs_to_mask(runs, (size[0], size[1]), name=name)


def mask_to_coco(mask: np.ndarray, *, compressed: bool = True) -> dict[str, Any]:
    """The COCO run-length code of a 2-D mask (what pycocotools' ``encode`` gives, decoded).

    Args:
        mask: A 2-D array; nonzero is inside.
        compressed: A compressed ``counts`` string (COCO's ``rleToString``), else a list.

    Example:
        >>> mask_to_coco(np.eye(2, dtype=bool), compressed=False)
        {'size': [2, 2], 'counts': [0, 1, 2, 1]}
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InvalidInputError(f"mask: expected a 2-D mask, got shape {array.shape}")
    runs = mask_to_runs(array)
    size = [int(array.shape[0]), int(array.shape[1])]
    if not compressed:
        return {"size": size, "counts": [int(v) for v in runs]}
    return {"size": size, "counts": _coco_string(runs)}


def siim_to_mask(code: str, shape: tuple[int, int] = SIIM_SHAPE, *,
                 name: str = "EncodedPixels") -> np.ndarray:
    """The bool mask of a SIIM-ACR ``EncodedPixels`` code (``-1`` or empty: no mask).

    Raises:
        InvalidInputError: A code that is not whole numbers in pairs, or that runs past the
            film.

    Example:
        >>> siim_to_mask("1 2", shape=(2, 2)).astype(int).tolist()
        [[0, 1], [1, 0]]
        >>> bool(siim_to_mask("-1").any())
        False
    """
    return runs_to_mask(siim_runs(code, name=name), shape, name=name, exact=False)


def siim_runs(code: str, *, name: str = "EncodedPixels") -> np.ndarray:
    """The run lengths ``gap, length, gap, length, ...`` of a SIIM-ACR code (empty for ``-1``)."""
    text = code.strip()
    if text in ("", "-1"):
        return np.zeros(0, np.int64)
    try:
        runs = np.array(text.split(), np.int64)
    except ValueError:
        raise InvalidInputError(f"{name}: expected whole numbers (or -1), got "
                                f"{_clip(text)!r}") from None
    if runs.size % 2:
        raise InvalidInputError(f"{name}: expected pairs 'gap length', got {runs.size} numbers")
    if int(runs.min()) < 0:
        raise InvalidInputError(f"{name}: gaps and lengths must not be negative")
    return runs


def mask_to_siim(mask: np.ndarray) -> str:
    """The SIIM-ACR code of a 2-D mask (``"-1"`` when it is empty).

    Example:
        >>> mask_to_siim(np.zeros((4, 4), bool)), mask_to_siim(np.eye(2, dtype=bool))
        ('-1', '0 1 2 1')
    """
    runs = mask_to_runs(np.asarray(mask))
    if runs.size % 2:  # drop the trailing background run
        runs = runs[:-1]
    if runs.size == 0:
        return "-1"
    return " ".join(str(int(v)) for v in runs)


def runs_box(runs: Sequence[int] | np.ndarray, height: int) -> np.ndarray:
    """The bounding box ``(x, y, width, height)`` of column-major runs, without decoding.

    Whole pixels (a box of width 1 is one column); ``(0, 4)`` when the runs mark nothing.

    Args:
        runs: Alternating run lengths, background first.
        height: The mask's height (the length of a column).

    Example:
        >>> mask = np.zeros((4, 5), bool); mask[1:3, 2] = True; mask[2, 3] = True
        >>> runs_box(mask_to_runs(mask), 4).tolist()
        [[2.0, 1.0, 2.0, 2.0]]
    """
    counts = np.asarray(runs, np.int64).ravel()
    ends = np.cumsum(counts)
    first = (ends - counts)[1::2]
    last = ends[1::2] - 1
    keep = last >= first
    first, last = first[keep], last[keep]
    if first.size == 0:
        return np.zeros((0, 4), np.float64)
    col0, col1 = first // height, last // height
    spans = col0 != col1
    row0 = np.where(spans, 0, first % height)
    row1 = np.where(spans, height - 1, last % height)
    x0, y0 = int(col0.min()), int(row0.min())
    return np.array([[x0, y0, int(col1.max()) - x0 + 1, int(row1.max()) - y0 + 1]],
                    np.float64)


def _coco_string(runs: np.ndarray) -> str:
    """COCO's ``rleToString``: differences two places back from the fourth run, 6-bit LEB128."""
    values = runs.astype(np.int64).copy()
    values[3:] = runs[3:] - runs[1:-2]
    chars: list[str] = []
    for value in values.tolist():
        x = int(value)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
