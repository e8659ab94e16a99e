"""Clean a thresholded lung mask: keep the two largest connected regions, fill their holes.

A U-Net's raw mask can have specks outside the chest (a marker, a bright shoulder) and holes
where a dense opacity or a pacemaker lies inside a lung. Two lungs are two regions; a hole in a
lung is still lung. Regions smaller than ``min_share`` of the largest one are dropped too, so
a film where only one lung is found (a white-out lung) keeps one region, not one lung and one
speck.

Example:
    >>> import numpy as np
    >>> from cxrexplain.lungs.postprocess import clean_mask
    >>> m = np.zeros((10, 10), bool); m[1:8, 1:4] = True; m[1:8, 5:8] = True; m[4, 2] = False
    >>> m[0, 9] = True  # a speck
    >>> cleaned = clean_mask(m)
    >>> bool(cleaned[4, 2]), bool(cleaned[0, 9]), int(cleaned.sum())
    (True, False, 42)
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["clean_mask"]


def clean_mask(mask: np.ndarray, *, regions: int = 2, min_share: float = 0.1) -> np.ndarray:
    """Keep the ``regions`` largest 8-connected regions of a 2-D bool mask and fill holes.

    Args:
        mask: ``(H, W)`` bool.
        regions: How many regions to keep (2: the two lungs).
        min_share: Drop a kept region smaller than this share of the largest one.

    Returns:
        The cleaned ``(H, W)`` bool mask (all False stays all False).

    Example:
        >>> clean_mask(np.zeros((3, 3), bool)).any()
        np.False_
    """
    binary = np.ascontiguousarray(mask, dtype=np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(areas)[::-1][:regions]
    keep = [int(i) + 1 for i in order if areas[i] >= min_share * areas[order[0]]]
    kept = np.isin(labels, keep)
    return _fill_holes(kept)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the background regions that do not touch the image border."""
    background = np.ascontiguousarray(~mask, dtype=np.uint8)
    count, labels = cv2.connectedComponents(background, connectivity=4)
    if count <= 1:
        return mask
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = ~np.isin(labels, border) & (labels > 0)
    filled: np.ndarray = mask | holes
    return filled
