"""Intersection over union of predicted and true masks (CheXlocalize's mIoU).

Example:
    >>> import numpy as np
    >>> from cxrexplain.metrics import iou
    >>> pred = np.zeros((1, 4, 4), bool); pred[0, :2] = True    # the top half
    >>> true = np.zeros((1, 4, 4), bool); true[0, :, :2] = True  # the left half
    >>> iou(pred, true).tolist()  # 4 shared pixels of 12
    [0.3333333333333333]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrexplain.metrics._checks import as_masks

__all__ = ["iou"]


def iou(pred_masks: Any, true_masks: Any) -> np.ndarray:
    """Per-image intersection over union, ``|pred & true| / |pred | true|``.

    When both masks of an image are empty the IoU is undefined: NaN, as in CheXlocalize's
    ``calculate_iou`` (average with ``np.nanmean``). An empty prediction against a non-empty
    truth (or the reverse) scores 0. Masks are bool, 0/1 or 0/255; true masks of another size
    are resized (nearest) to the predicted masks' size, as in
    :func:`~cxrexplain.metrics.energy_in_mask`.

    Args:
        pred_masks: ``(N, H, W)`` predicted masks (e.g. from :func:`binarize`).
        true_masks: ``(N, h, w)`` true masks (e.g. from :func:`boxes_to_masks`).

    Returns:
        ``(N,)`` float64 in [0, 1], NaN where both masks are empty.

    Raises:
        InvalidInputError: Bad shapes, or a different number of masks.

    Example:
        >>> empty = np.zeros((2, 3, 3), bool); full = np.ones((2, 3, 3), bool)
        >>> iou(np.stack([empty[0], full[0]]), empty).tolist()
        [nan, 0.0]
    """
    pred = mask_stack(pred_masks, "pred_masks")
    true = as_masks(true_masks, pred.shape[0], (pred.shape[1], pred.shape[2]), "true_masks")
    return iou_of(pred, true)


def iou_of(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU of two checked ``(N, H, W)`` bool stacks (NaN where both are empty)."""
    inter = np.logical_and(pred, true).sum(axis=(1, 2))
    union = np.logical_or(pred, true).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        scores: np.ndarray = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return scores


def mask_stack(masks: Any, name: str) -> np.ndarray:
    """``(N, H, W)`` bool masks at their own (one) size, by the one mask rule."""
    return as_masks(masks, name=name)
