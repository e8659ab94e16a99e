"""Hit rate: does each heatmap's peak fall inside the true mask (CheXlocalize's hit/miss)?

Example:
    >>> import numpy as np
    >>> from cxrexplain.metrics import hit_rate
    >>> heat = np.zeros((2, 8, 8)); heat[0, 1, 1] = 1; heat[1, 6, 6] = 1
    >>> truth = np.zeros((2, 8, 8), bool); truth[:, :4, :4] = True
    >>> hit_rate(heat, truth).tolist()
    [1.0, 0.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrexplain._arrays import as_heatmaps
from cxrexplain.metrics._checks import as_masks

__all__ = ["hit_rate"]


def hit_rate(heatmaps: Any, true_masks: Any) -> np.ndarray:
    """Per image, 1.0 when the heatmap's maximum pixel lies inside the true mask, else 0.0.

    The pointing game on segmentation masks (Saporta et al. 2022). When several pixels share
    the maximum, the first in row-major order counts (``np.argmax``, as CheXlocalize's
    ``get_hitrates`` and :func:`~cxrexplain.metrics.pointing_game` do): a map that ties does
    not get several tries. A flat map (all values equal) points nowhere: a miss. An image
    whose true mask is empty has nothing to hit: NaN, as in CheXlocalize, so that
    ``np.nanmean`` of the result is the hit rate over images with a finding.

    Args:
        heatmaps: ``(N, H, W)`` maps or an :class:`~cxrexplain.Explanation`.
        true_masks: ``(N, h, w)`` true masks (bool, 0/1 or 0/255), resized (nearest) to the
            maps' size if they differ.

    Returns:
        ``(N,)`` float64: 1.0 hit, 0.0 miss, NaN for an empty true mask.

    Raises:
        InvalidInputError: Bad shapes, or a different number of masks.

    Example:
        >>> heat = np.zeros((3, 4, 4)); heat[0, 0, 0] = heat[0, 3, 3] = 1  # a tie: (0, 0) counts
        >>> truth = np.zeros((3, 4, 4), bool); truth[:2, 0, 0] = True
        >>> hit_rate(heat, truth).tolist()  # image 1 is flat, image 2 has no finding
        [1.0, 0.0, nan]
    """
    maps = as_heatmaps(heatmaps)
    count = maps.shape[0]
    truth = as_masks(true_masks, count, (maps.shape[1], maps.shape[2]), "true_masks")
    flat_maps = maps.reshape(count, -1)
    peak = flat_maps.argmax(axis=1)
    is_flat = flat_maps.max(axis=1) == flat_maps.min(axis=1)
    inside = truth.reshape(count, -1)[np.arange(count), peak] & ~is_flat
    hits: np.ndarray = np.where(truth.any(axis=(1, 2)), inside.astype(np.float64), np.nan)
    return hits
