"""Bounding boxes to masks, so box annotations score like segmentations.

Example:
    >>> from cxrexplain.metrics import boxes_to_masks
    >>> boxes_to_masks([[1, 0, 2, 3]], (3, 4))[0].astype(int)  # x, y, width, height
    array([[0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0]])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from cxrexplain._arrays import box_mask
from cxrexplain._checks import check_size, safe_ndim
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics.localisation import _boxes_per_image

__all__ = ["boxes_to_masks"]


def boxes_to_masks(boxes: Any, shape: int | tuple[int, int]) -> np.ndarray:
    """Fill each image's boxes into an ``(H, W)`` mask (the union of its boxes).

    Boxes are given as for :func:`~cxrexplain.metrics.pointing_game`: ``x, y, width,
    height`` in pixels from the top-left corner. Pixel ``(col, row)`` covers
    ``[col, col + 1) x [row, row + 1)`` and is inside a box when its centre
    ``(col + 0.5, row + 0.5)`` lies in the closed box ``[x, x + width] x [y, y + height]``
    (the pointing game's rule with no tolerance): a box of whole numbers covers exactly
    ``width x height`` pixels; parts outside the image are dropped.

    Args:
        boxes: One box per image as an ``(N, 4)`` array, or a sequence of N ``(M_i, 4)``
            arrays for several boxes per image; an empty entry (``[]`` or a ``(0, 4)``
            array) gives an empty mask (an image without a finding).
        shape: ``(height, width)`` of the masks, or an int for a square.

    Returns:
        ``(N, H, W)`` bool masks.

    Raises:
        InvalidInputError: Malformed boxes, a negative width or height, or a bad shape.

    Example:
        >>> masks = boxes_to_masks([np.array([[0, 0, 1, 1], [3, 3, 1, 1]]), []], 4)
        >>> masks.shape, masks.sum(axis=(1, 2)).tolist()
        ((2, 4, 4), [2, 0])
    """
    height, width = check_size(shape, "shape")
    groups, empty = _without_empty(boxes)
    per_image = _boxes_per_image(groups, len(groups))
    masks = np.zeros((len(per_image), height, width), bool)
    for i, image_boxes in enumerate(per_image):
        if i not in empty:
            masks[i] = box_mask(image_boxes, (height, width))
    return masks


def _without_empty(boxes: Any) -> tuple[Any, set[int]]:
    """Replace empty per-image entries by a placeholder box; their indices (masks stay empty)."""
    if isinstance(boxes, np.ndarray) and boxes.ndim == 3:
        boxes = list(boxes)
    if isinstance(boxes, (np.ndarray, str, bytes)) or not isinstance(boxes, Iterable):
        return boxes, set()  # one box per image, or not boxes (the parser says which)
    groups = list(boxes)
    if not groups:
        raise InvalidInputError("boxes: expected boxes for at least one image, got none")
    empty = {i for i, g in enumerate(groups) if safe_ndim(g) is not None and np.size(g) == 0}
    return [np.zeros((1, 4)) if i in empty else g for i, g in enumerate(groups)], empty
