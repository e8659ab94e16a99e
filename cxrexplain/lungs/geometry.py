"""The geometry of a lung mask: the margin and its disc, the grown mask, the border band.

One rule each, shared by the lung focus (:mod:`cxrexplain.lungs.focus`, inside the graph) and
by the shares the audit and the training callback measure (:mod:`cxrexplain.lungs.shares`):

* **margin**: a lung mask is grown by :data:`DEFAULT_MARGIN` (3%) of the image's larger side
  with a Euclidean disc (:func:`dilation_disc`, :func:`dilate`), so evidence at the lung's
  edge (pleura, costophrenic angles) counts as lung and stays in view;
* **border band**: the outer :data:`BORDER_FRACTION` (1/8) of the height and width
  (:func:`border_band`), where burnt-in markers, collimation edges and text lie.

Example:
    >>> import numpy as np
    >>> from cxrexplain.lungs.geometry import border_band, dilate
    >>> m = np.zeros((1, 9, 9), bool); m[0, 4, 4] = True
    >>> int(dilate(m, 0.25).sum()), int(border_band((8, 8)).sum())
    (13, 28)
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "BORDER_FRACTION",
    "DEFAULT_MARGIN",
    "MAX_MARGIN",
    "border_band",
    "dilate",
    "dilation_disc",
]

DEFAULT_MARGIN = 0.03
"""The lung mask's dilation, a share of the image's larger side (lung focus and audit alike)."""

MAX_MARGIN = 0.5
"""The largest margin: a disc of half the larger side already covers the film."""

BORDER_FRACTION = 1 / 8
"""The border band's width, as a share of the height (top, bottom) or width (left, right)."""


def dilation_disc(margin: float, shape: tuple[int, ...]) -> np.ndarray:
    """The disc that grows a mask of ``shape`` by ``margin`` times its larger side.

    Its radius is ``round(margin * max(shape))`` pixels; a radius of 0 gives ``[[1]]`` (no
    growth).

    Args:
        margin: A share of the larger side, in [0, 0.5].
        shape: ``(height, width)`` of the mask.

    Returns:
        A ``(2r + 1, 2r + 1)`` uint8 array, 1 inside the disc.

    Example:
        >>> dilation_disc(0.25, (9, 9))
        array([[0, 0, 1, 0, 0],
               [0, 1, 1, 1, 0],
               [1, 1, 1, 1, 1],
               [0, 1, 1, 1, 0],
               [0, 0, 1, 0, 0]], dtype=uint8)
    """
    radius = round(margin * max(shape))
    rows, cols = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return np.asarray(rows * rows + cols * cols <= radius * radius, dtype=np.uint8)


def dilate(masks: np.ndarray, margin: float) -> np.ndarray:
    """Grow ``(N, H, W)`` bool masks by ``margin`` times the larger side (a disc).

    Example:
        >>> m = np.zeros((1, 9, 9), bool); m[0, 4, 4] = True
        >>> int(dilate(m, 0.25).sum())  # a disc of radius 2
        13
    """
    disc = dilation_disc(margin, masks.shape[1:])
    if disc.shape[0] == 1:
        return masks
    return np.stack([cv2.dilate(m.astype(np.uint8), disc) for m in masks]).astype(bool)


def border_band(shape: tuple[int, int], fraction: float = BORDER_FRACTION) -> np.ndarray:
    """The ``(H, W)`` bool band within ``fraction`` of the height/width from each edge.

    Example:
        >>> border_band((8, 8)).sum()  # the outer ring of one pixel
        np.int64(28)
    """
    height, width = shape
    rows = max(1, round(height * fraction))
    cols = max(1, round(width * fraction))
    band = np.zeros((height, width), bool)
    band[:rows] = band[-rows:] = True
    band[:, :cols] = band[:, -cols:] = True
    return band
