"""Heatmaps, masks and boxes as arrays (private): shapes, dtypes, the mask rule, resizing.

One home for what every module that takes maps, masks or boxes needs, so that the audit, the
metrics, the drawing and the training callback read them alike.

**The mask rule.** A mask is whatever says, pixel by pixel, inside or outside:

* ``bool``: as it is;
* floating point: probabilities; a pixel is inside when its value is **>= 0.5** (a soft mask
  of 0.3 everywhere is empty);
* integers: a label image; a pixel is inside when it is **above half of the largest value
  present** in its mask (0/1 and 0/255 masks agree, and so do 16-bit masks and JPEG-compressed
  ones whose background is not exactly 0); a mask whose largest value is 0 (or below) is
  empty.

Mask *files* are read at their stored integer type (:func:`cxrexplain.io.load_mask`), not
scaled to [0, 1] as films are, so they take the integer rule: a PNG of 0/1 values is a mask,
not a black picture.

**Resizing.** Heatmaps resize bilinearly (:func:`resize_heatmaps`), masks with the nearest
neighbour (:func:`resize_masks`), so a mask stays a mask.

Example:
    >>> import numpy as np
    >>> from cxrexplain._arrays import binary
    >>> binary(np.array([[0.3, 0.5]])).tolist(), binary(np.array([[0, 1]], np.uint8)).tolist()
    ([[False, True]], [[False, True]])
    >>> binary(np.array([[0, 255]], np.uint8)).tolist(), binary(np.zeros((1, 2), int)).tolist()
    ([[False, True]], [[False, False]])
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from cxrexplain._checks import as_numbers
from cxrexplain.errors import InvalidInputError

__all__ = [
    "PROBABILITY_THRESHOLD",
    "as_boxes",
    "box_mask",
    "as_heatmaps",
    "as_masks",
    "binary",
    "mass_share",
    "resize_heatmaps",
    "resize_masks",
]

PROBABILITY_THRESHOLD = 0.5
"""A floating-point mask value at or above this is inside (see the module docs)."""


def binary(values: np.ndarray) -> np.ndarray:
    """The mask rule (module docs) on an array whose last two axes are one mask each.

    Args:
        values: A ``(..., H, W)`` array of bools, floats or integers (at least 2-D).

    Returns:
        A bool array of the same shape.

    Example:
        >>> binary(np.array([[[0, 2], [1, 2]], [[0, 0], [0, 0]]])).tolist()  # two label masks
        [[[False, True], [False, True]], [[False, False], [False, False]]]
    """
    array = np.asarray(values)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.floating):
        inside: np.ndarray = array >= PROBABILITY_THRESHOLD
        return inside
    peak = array.max(axis=(-2, -1), keepdims=True)
    labelled: np.ndarray = (array > peak / 2) & (peak > 0)
    return labelled


def as_masks(
    values: Any,
    *,
    count: int | None = None,
    size: tuple[int, int] | None = None,
    name: str = "masks",
) -> np.ndarray:
    """``(N, H, W)`` bool masks from an array, through the mask rule, resized to ``size``.

    Args:
        values: ``(N, H, W)`` or ``(N, H, W, 1)`` numbers, or one ``(H, W)`` mask.
        count: The number of masks expected (None: any).
        size: ``(height, width)`` to resize to (nearest neighbour), or None.
        name: The argument's name, for messages.

    Returns:
        A bool ``(N, H, W)`` array (``(N, *size)`` with ``size``).

    Raises:
        InvalidInputError: Not numbers, a shape that is not a stack of 2-D masks, or a count
            that differs from ``count``.

    Example:
        >>> as_masks(np.array([[0, 1], [1, 1]], np.uint8), size=(4, 4)).sum()
        np.int64(12)
    """
    array = values if isinstance(values, np.ndarray) and values.dtype == bool and values.size else (
        as_numbers(values, name))  # (as_numbers also words the empty case)
    shape = array.shape
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if count is not None and (array.ndim != 3 or array.shape[0] != count):
        raise InvalidInputError(
            f"{name}: expected {count} masks of shape (H, W), got shape {shape}"
        )
    if array.ndim != 3 or 0 in array.shape:
        raise InvalidInputError(
            f"{name}: expected masks of shape (N, H, W) or (N, H, W, 1), got shape {shape}"
        )
    masks = binary(array)
    return masks if size is None else resize_masks(masks, size)


def as_heatmaps(values: Any, name: str = "heatmaps") -> np.ndarray:
    """``(N, H, W)`` float32 maps from an array or anything with ``.heatmaps``.

    Example:
        >>> as_heatmaps(np.ones((4, 4))).shape
        (1, 4, 4)
    """
    array = as_numbers(getattr(values, "heatmaps", values), name)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InvalidInputError(f"{name}: expected (N, H, W) maps, got shape {array.shape}")
    return array.astype(np.float32)


def resize_heatmaps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, h, w)`` maps at ``size`` (bilinear, OpenCV's pixel centres); same size: as is.

    Example:
        >>> resize_heatmaps(np.ones((2, 4, 4), np.float32), (8, 6)).shape
        (2, 8, 6)
    """
    if maps.shape[1:] == tuple(size):
        return maps
    return np.stack([cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                     for m in maps])


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, h, w)`` bool masks at ``size`` (nearest neighbour); same size: as is.

    Example:
        >>> resize_masks(np.eye(2, dtype=bool)[None], (4, 4)).sum()
        np.int64(8)
    """
    if masks.shape[1:] == tuple(size):
        return masks
    return np.stack([
        cv2.resize(m.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        for m in masks
    ]).astype(bool)


def mass_share(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The share of each map's mass inside its mask: ``sum(map * mask) / sum(map)``.

    Args:
        maps: ``(N, H, W)`` non-negative maps.
        masks: ``(N, H, W)`` bool masks (or one ``(H, W)`` mask broadcast to all maps).

    Returns:
        ``(N,)`` float64 in [0, 1]; NaN for a map without mass (all zero).

    Raises:
        InvalidInputError: A negative value in a map.

    Example:
        >>> mass_share(np.ones((1, 2, 2)), np.array([[[True, False], [False, False]]]))
        array([0.25])
    """
    values = np.asarray(maps, dtype=np.float64)
    if (values < 0).any():
        raise InvalidInputError("heatmaps: expected non-negative maps (mass cannot be negative)")
    total = values.sum(axis=(1, 2))
    within = (values * masks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        share: np.ndarray = np.where(total > 0, within / np.where(total > 0, total, 1), np.nan)
    return share


def as_boxes(values: Any, name: str = "boxes", *, positive: bool = True) -> np.ndarray:
    """``(M, 4)`` float64 ``(x, y, width, height)`` rows from one box or several.

    Args:
        values: One box ``(x, y, w, h)`` or an ``(M, 4)`` array (or nested list) of boxes.
        name: The argument's name, for messages.
        positive: Require width and height > 0 (else >= 0).

    Raises:
        InvalidInputError: Not numbers, not a multiple of four values, or a width or height
            below the bound.

    Example:
        >>> as_boxes([1, 2, 3, 4]).tolist()
        [[1.0, 2.0, 3.0, 4.0]]
    """
    array = as_numbers(values, name).astype(np.float64)
    if array.shape != (4,) and (array.ndim != 2 or array.shape[1] != 4):
        raise InvalidInputError(
            f"{name}: expected (x, y, width, height) or an (M, 4) array of boxes, got shape "
            f"{array.shape}"
        )
    rows = array.reshape(-1, 4)
    sides = rows[:, 2:]
    if (sides <= 0).any() if positive else (sides < 0).any():
        bound = "> 0" if positive else ">= 0"
        raise InvalidInputError(
            f"{name}: expected (x, y, width, height) rows with width, height {bound}, got "
            f"{rows.tolist()}"
        )
    return rows


def box_mask(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The union of one film's ``(M, 4)`` ``(x, y, width, height)`` boxes as an ``(H, W)`` mask.

    A pixel ``(col, row)`` is inside when its centre ``(col + 0.5, row + 0.5)`` lies in the
    closed box (the rule of :func:`cxrexplain.metrics.boxes_to_masks`, which calls this);
    parts outside the film are dropped; no boxes give an empty mask.

    Example:
        >>> box_mask(np.array([[1.0, 0.0, 2.0, 1.0]]), (2, 4)).astype(int)
        array([[0, 1, 1, 0],
               [0, 0, 0, 0]])
    """
    height, width = shape
    rows_of = np.asarray(boxes, np.float64).reshape(-1, 4)
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    x0, y0 = rows_of[:, 0, None], rows_of[:, 1, None]
    x1, y1 = x0 + rows_of[:, 2, None], y0 + rows_of[:, 3, None]
    in_cols = (cols >= x0) & (cols <= x1)  # (M, W)
    in_rows = (rows >= y0) & (rows <= y1)  # (M, H)
    return np.asarray((in_rows[:, :, None] & in_cols[:, None, :]).any(axis=0), dtype=bool)
