"""Pixel-level average precision of a heatmap against a true mask.

The heatmap is scored as a pixel classifier of the mask, without any threshold: the area
under its precision-recall curve, as scikit-learn's ``average_precision_score`` computes it.

Example:
    >>> import numpy as np
    >>> from cxrexplain.metrics import pixel_auprc
    >>> heat = np.array([[[0.9, 0.8], [0.1, 0.4]]]); truth = np.array([[[1, 0], [0, 1]]])
    >>> pixel_auprc(heat, truth).round(4).tolist()  # (1/2)(1/1) + (1/2)(2/3)
    [0.8333]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrexplain._arrays import as_heatmaps
from cxrexplain.metrics._checks import as_masks

__all__ = ["pixel_auprc"]


def pixel_auprc(heatmaps: Any, true_masks: Any) -> np.ndarray:
    """Per-image average precision of the heatmap's pixels as scores of the true mask.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct heatmap values ``n`` from the
    highest down, where ``P_n`` and ``R_n`` are the precision and recall of the pixels
    scoring ``>= n`` (scikit-learn's ``average_precision_score``, no interpolation). Pixels
    with equal scores enter together, at one step, so tied scores are not ordered
    arbitrarily. Chance level is the mask's area fraction. An image with an empty true
    mask has no recall: NaN (average with ``np.nanmean``). Being rank-based, the score does
    not depend on the maps' scale.

    Args:
        heatmaps: ``(N, H, W)`` maps or an :class:`~cxrexplain.Explanation`.
        true_masks: ``(N, h, w)`` true masks (bool, 0/1 or 0/255), resized (nearest) to the
            maps' size if they differ.

    Returns:
        ``(N,)`` float64 in (0, 1], NaN for an empty true mask.

    Raises:
        InvalidInputError: Bad shapes, or a different number of masks.

    Example:
        >>> heat = np.array([[[1.0, 1.0], [0.0, 0.0]]] * 2); truth = np.zeros((2, 2, 2), bool)
        >>> truth[0, 0, 0] = True  # a tie of one hit and one miss at the top: P = 1/2
        >>> pixel_auprc(heat, truth).tolist()
        [0.5, nan]
    """
    maps = as_heatmaps(heatmaps)
    count = maps.shape[0]
    truth = as_masks(true_masks, count, (maps.shape[1], maps.shape[2]), "true_masks")
    scores = maps.reshape(count, -1)
    pixels = scores.shape[1]
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=1)
    labels = np.take_along_axis(truth.reshape(count, -1), order, axis=1)
    true_positives = np.cumsum(labels, axis=1)
    positions = np.arange(pixels)
    # the last position of each run of equal scores closes a step of the curve
    closes = np.ones_like(labels)
    closes[:, :-1] = ranked[:, 1:] != ranked[:, :-1]
    ends = np.where(closes, positions, pixels - 1)
    ends = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]  # the step each pixel is in
    precision = np.take_along_axis(true_positives, ends, axis=1) / (ends + 1.0)
    positives = true_positives[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        ap: np.ndarray = np.where(
            positives > 0, (labels * precision).sum(axis=1) / np.maximum(positives, 1), np.nan
        )
    return ap
