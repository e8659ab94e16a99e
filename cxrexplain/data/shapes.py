"""Outlines and masks as pixels and boxes (private): polygons filled, boxes of shapes.

Pixel ``(col, row)`` covers ``[col, col + 1) x [row, row + 1)`` of the film, so a point
``(x, y)`` lies in pixel ``(floor(x), floor(y))``, and a box ``(x, y, width, height)`` of whole
pixels covers columns ``x .. x + width - 1`` (the centre rule of
:func:`cxrexplain._arrays.box_mask` gives back those pixels).

* :func:`polygon_mask` fills polygons as CheXlocalize's ``annotation_to_segmentation.py`` does
  with Pillow (each polygon filled with its outline, several polygons united), with OpenCV:
  vertices to their pixels (``floor``), each polygon filled on its own (overlapping polygons
  stay filled). On the CheXlocalize sample it agrees with their masks to IoU >= 0.989
  (OpenCV's edges take a few pixels more than Pillow's along the outline).
* :func:`polygon_boxes`: one box per polygon, the pixels its vertices fall in.
* :func:`component_boxes`: one box per 8-connected part of a mask.

Example:
    >>> square = [[[1.2, 1.5], [3.9, 1.5], [3.9, 2.7], [1.2, 2.7]]]
    >>> polygon_mask(square, (4, 5)).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    >>> polygon_boxes(square).tolist()
    [[1.0, 1.0, 3.0, 2.0]]
    >>> component_boxes(polygon_mask(square, (4, 5))).tolist()
    [[1.0, 1.0, 3.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from cxrexplain.errors import InvalidInputError

__all__ = ["as_polygon", "component_boxes", "polygon_boxes", "polygon_mask"]


def as_polygon(points: Any, name: str = "polygon") -> np.ndarray:
    """An ``(P, 2)`` float64 array of ``(x, y)`` vertices (at least one, all finite).

    Raises:
        InvalidInputError: Not an ``(P, 2)`` array of finite numbers.

    Example:
        >>> as_polygon([[0, 1], [2, 3]]).shape
        (2, 2)
    """
    try:
        array = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: expected a list of [x, y] points") from None
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1:
        raise InvalidInputError(f"{name}: expected a list of [x, y] points, got shape "
                                f"{array.shape}")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{name}: the points must be finite numbers")
    return array


def polygon_mask(polygons: Sequence[Any], shape: tuple[int, int]) -> np.ndarray:
    """The ``(h, w)`` bool union of filled polygons (outline included; see the module docs).

    Args:
        polygons: Polygons, each a list of ``(x, y)`` points in the film's pixels.
        shape: ``(height, width)`` of the film.

    Example:
        >>> polygon_mask([], (2, 2)).any()
        np.False_
    """
    canvas = np.zeros((int(shape[0]), int(shape[1])), np.uint8)
    for number, points in enumerate(polygons):
        pixels = np.floor(as_polygon(points, f"polygon {number}")).astype(np.int32)
        cv2.fillPoly(canvas, [pixels], 1)
        cv2.polylines(canvas, [pixels], True, 1)
    return canvas.astype(bool)


def polygon_boxes(polygons: Sequence[Any]) -> np.ndarray:
    """``(M, 4)`` ``(x, y, width, height)``: per polygon, the whole pixels its vertices lie in.

    Example:
        >>> polygon_boxes([[[0.5, 0.5]], [[2, 3], [4.5, 3.2]]]).tolist()
        [[0.0, 0.0, 1.0, 1.0], [2.0, 3.0, 3.0, 1.0]]
    """
    rows = []
    for number, points in enumerate(polygons):
        pixels = np.floor(as_polygon(points, f"polygon {number}"))
        low, high = pixels.min(axis=0), pixels.max(axis=0) + 1
        rows.append([low[0], low[1], high[0] - low[0], high[1] - low[1]])
    return np.asarray(rows, np.float64).reshape(-1, 4)


def component_boxes(mask: np.ndarray) -> np.ndarray:
    """``(M, 4)`` ``(x, y, width, height)`` boxes of a 2-D mask's 8-connected parts.

    Ordered as OpenCV labels the parts (by their first pixel in row-major order).

    Example:
        >>> component_boxes(np.eye(3, dtype=bool)).tolist()  # diagonal neighbours connect
        [[0.0, 0.0, 3.0, 3.0]]
    """
    binary = np.ascontiguousarray(np.asarray(mask).astype(np.uint8))
    if binary.ndim != 2:
        raise InvalidInputError(f"mask: expected a 2-D mask, got shape {binary.shape}")
    if not binary.any():
        return np.zeros((0, 4), np.float64)
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return stats[1:, :4].astype(np.float64)
