"""One film of the audit's gallery: the film, its map and its lungs at the map's size.

The audit (:mod:`cxrexplain.auditing.run`) keeps the films with the lowest lung share; the
report (:mod:`cxrexplain.auditing.report`) holds them and the page
(:mod:`cxrexplain.auditing.html`) draws them. Both import this module, never each other's
way back.

Example:
    >>> import numpy as np
    >>> item = GalleryItem(3, np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32),
    ...                    np.ones((8, 8), bool))
    >>> item.index, item.heatmap.shape
    (3, (8, 8))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GalleryItem"]


@dataclass(frozen=True)
class GalleryItem:
    """One film kept for the report's gallery: the film, its map and lungs at the map's size."""

    index: int
    image: np.ndarray
    heatmap: np.ndarray
    lungs: np.ndarray
