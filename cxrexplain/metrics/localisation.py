"""Localisation metrics: does the explanation point at the finding and stay in the lungs?

Example:
    >>> import numpy as np
    >>> from cxrexplain.metrics import energy_in_mask, pointing_game
    >>> heat = np.zeros((1, 64, 64), np.float32); heat[0, 20, 30] = 1.0
    >>> pointing_game(heat, [[25, 15, 10, 10]], tolerance=0).hit_rate
    1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrexplain._arrays import as_boxes, as_heatmaps, mass_share
from cxrexplain._checks import check_number, describe, safe_ndim
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics._checks import as_masks

__all__ = ["PointingResult", "energy_in_mask", "pointing_game"]


@dataclass(frozen=True)
class PointingResult:
    """The pointing game's outcome.

    Attributes:
        hits: ``(N,)`` bool, True where the map's maximum falls in a (grown) box.
        hit_rate: The share of hits (NaN for no images).
        points: ``(N, 2)`` int, the (x, y) pixel of each map's maximum (-1 for a flat map).
    """

    hits: np.ndarray
    hit_rate: float
    points: np.ndarray


def pointing_game(
    heatmaps: Any,
    boxes: Any,
    *,
    tolerance: float = 15,
) -> PointingResult:
    """The pointing game (Zhang et al., ECCV 2016): is each map's maximum inside a box?

    A hit when the pixel of the heatmap's maximum falls inside the box grown by
    ``tolerance`` pixels on every side. When several pixels share the maximum, the first in
    row-major order counts. A flat map (all values equal, e.g. all zero) points nowhere and is a
    miss.

    Args:
        heatmaps: ``(N, H, W)`` maps or an :class:`~cxrexplain.Explanation`.
        boxes: One box per image as an ``(N, 4)`` array of ``x, y, width, height`` in heatmap
            pixels (top-left origin), or a sequence of N ``(M_i, 4)`` arrays for several boxes
            per image (a hit in any box counts).
        tolerance: Pixels added on each side of every box (Zhang et al. use 15).

    Returns:
        A :class:`PointingResult`.

    Raises:
        InvalidInputError: Bad shapes, a box count that does not match, negative tolerance.

    Example:
        >>> heat = np.zeros((2, 32, 32)); heat[0, 5, 5] = 1; heat[1, 30, 30] = 1
        >>> pointing_game(heat, [[0, 0, 10, 10], [0, 0, 10, 10]], tolerance=2).hits.tolist()
        [True, False]
    """
    maps = as_heatmaps(heatmaps)
    count = maps.shape[0]
    tolerance = check_number(tolerance, "tolerance", low=0.0)
    per_image = _boxes_per_image(boxes, count)
    flat = maps.reshape(count, -1)
    peak = flat.argmax(axis=1)
    ys, xs = np.divmod(peak, maps.shape[2])
    is_flat = flat.max(axis=1) == flat.min(axis=1)
    hits = np.zeros(count, bool)
    for i, image_boxes in enumerate(per_image):
        if is_flat[i]:
            continue
        x0 = image_boxes[:, 0] - tolerance
        y0 = image_boxes[:, 1] - tolerance
        x1 = image_boxes[:, 0] + image_boxes[:, 2] + tolerance
        y1 = image_boxes[:, 1] + image_boxes[:, 3] + tolerance
        # pixel (x, y) covers [x, x + 1); its centre x + 0.5 must lie in the grown box
        cx, cy = xs[i] + 0.5, ys[i] + 0.5
        hits[i] = bool(np.any((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)))
    points = np.stack([xs, ys], axis=1).astype(np.int64)
    points[is_flat] = -1
    rate = float(hits.mean()) if count else float("nan")
    return PointingResult(hits=hits, hit_rate=rate, points=points)


def _boxes_per_image(boxes: Any, count: int) -> list[np.ndarray]:
    if isinstance(boxes, np.ndarray) and boxes.ndim == 2:
        groups: Sequence[Any] = [row[None] for row in boxes]
    elif isinstance(boxes, np.ndarray) and boxes.ndim == 1 and boxes.shape[0] == 4:
        groups = [boxes[None]]
    elif (isinstance(boxes, (str, bytes)) or not isinstance(boxes, Iterable)
          or (isinstance(boxes, np.ndarray) and boxes.ndim == 0)):
        raise InvalidInputError(
            f"boxes: expected (x, y, width, height) boxes, one or more per image, got "
            f"{describe(boxes)}"
        )
    else:
        groups = list(boxes)
        if groups and safe_ndim(groups[0]) == 1:
            groups = [[g] for g in groups]
    if len(groups) != count:
        raise InvalidInputError(
            f"boxes: expected boxes for {count} images, got {len(groups)}"
        )
    return [as_boxes(group, f"boxes[{i}]", positive=False) for i, group in enumerate(groups)]


def energy_in_mask(heatmaps: Any, masks: Any) -> np.ndarray:
    """Share of each heatmap's mass inside a binary mask (e.g. the lungs).

    ``sum(heatmap * mask) / sum(heatmap)`` per image: 1.0 means the whole explanation lies in
    the mask; a uniform heatmap scores the mask's area fraction. A map with no mass (all
    zero) has no share: NaN (use ``np.nanmean`` to average). Masks of another size are resized
    with nearest-neighbour interpolation. Masks are read by the one mask rule
    (:mod:`cxrexplain._arrays`): bool as is, floats inside at >= 0.5, integers inside above
    half of the mask's largest value (0/1 and 0/255 agree); mask files at their stored type.

    Args:
        heatmaps: ``(N, H, W)`` non-negative maps or an :class:`~cxrexplain.Explanation`.
        masks: ``(N, h, w)`` masks (bool, 0/1, 0/255, probabilities), or a list of mask
            arrays or files.

    Returns:
        ``(N,)`` float64 in [0, 1] (NaN for all-zero maps).

    Raises:
        InvalidInputError: Bad shapes, counts, or negative heatmap values.

    Example:
        >>> heat = np.ones((1, 4, 4)); mask = np.zeros((1, 4, 4), bool); mask[0, :, :2] = True
        >>> energy_in_mask(heat, mask).tolist()
        [0.5]
    """
    maps = as_heatmaps(heatmaps).astype(np.float64)
    if (maps < 0).any():
        raise InvalidInputError("heatmaps: expected non-negative maps (mass cannot be negative)")
    inside = as_masks(masks, maps.shape[0], (maps.shape[1], maps.shape[2]))
    return mass_share(maps, inside)
