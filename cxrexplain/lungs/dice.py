"""The Dice coefficient of predicted and true masks.

Example:
    >>> import numpy as np
    >>> from cxrexplain.lungs import dice
    >>> a = np.zeros((1, 4, 4), bool); a[0, :2] = True
    >>> b = np.zeros((1, 4, 4), bool); b[0, :, :2] = True
    >>> dice(a, b).tolist()
    [0.5]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs.masks import binary_masks

__all__ = ["dice"]


def dice(pred: Any, true: Any) -> np.ndarray:
    """Dice ``2 |P & T| / (|P| + |T|)`` per mask.

    Both inputs go through the one mask rule (above half of each mask's largest value is
    inside), so bool, 0/1 and 0/255 masks all work. Two empty masks agree perfectly: 1.0.

    Args:
        pred: ``(N, H, W)`` predicted masks (or one ``(H, W)`` mask).
        true: ``(N, H, W)`` true masks of the same shape.

    Returns:
        ``(N,)`` float64 in [0, 1].

    Raises:
        InvalidInputError: Shapes that differ, or inputs that are not masks.

    Example:
        >>> m = np.ones((2, 3, 3), bool)
        >>> dice(m, m).tolist()
        [1.0, 1.0]
    """
    p = binary_masks(pred, name="pred")
    t = binary_masks(true, name="true")
    if p.shape != t.shape:
        raise InvalidInputError(
            f"pred, true: expected masks of the same shape, got {p.shape} and {t.shape}"
        )
    overlap = np.logical_and(p, t).sum(axis=(1, 2), dtype=np.float64)
    total = p.sum(axis=(1, 2), dtype=np.float64) + t.sum(axis=(1, 2), dtype=np.float64)
    score: np.ndarray = np.where(total > 0, 2.0 * overlap / np.where(total > 0, total, 1.0), 1.0)
    return score
