"""Where a heatmap's mass lies: inside the lungs, in the border band, and where its peak is.

These are the per-film numbers of the audit, computed for a whole batch at once:

* **lung share**: the map's mass inside the lung mask dilated by a margin, over its total
  mass (:func:`cxrexplain.metrics.energy_in_mask` of the dilated mask). The margin (3% of the
  image side by default: 3 pixels at 96 px, 8 at 256) is there because a class-activation map
  from a coarse layer is blurred by its upsampling: evidence on a finding at the lung's edge
  (pleura, costophrenic angle) spills a few pixels over the mask's line, and should still count
  as lung. A map that looks everywhere scores about the lungs' area share (a third to a half
  of a film); an all-zero map has no mass and scores NaN.
* **border share**: the mass in the outer band, one eighth of the height or width from each
  edge: where burnt-in markers ("PORTABLE", L/R letters), collimation edges and text lie.
* **peak in lungs**: whether the map's largest value lies inside the (dilated) lung mask.

Example:
    >>> import numpy as np
    >>> from cxrexplain.auditing.measure import measure
    >>> heat = np.zeros((1, 16, 16)); heat[0, 0, 0] = 1.0  # all mass in a corner
    >>> lungs = np.zeros((1, 16, 16), bool); lungs[0, 4:12, 4:12] = True
    >>> m = measure(heat, lungs, margin=0.0)
    >>> float(m.lung_share[0]), float(m.border_share[0]), bool(m.peak_in_lungs[0])
    (0.0, 1.0, False)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cxrexplain._checks import check_number
from cxrexplain.metrics.localisation import energy_in_mask
from cxrexplain.models.lung_focus import DEFAULT_MARGIN, dilation_disc

__all__ = ["BORDER_FRACTION", "DEFAULT_MARGIN", "Measures", "border_band", "dilate", "measure"]

BORDER_FRACTION = 1 / 8
"""The border band's width, as a share of the height (top, bottom) or width (left, right)."""


@dataclass(frozen=True)
class Measures:
    """Per-film numbers of one batch (see the module docs).

    Attributes:
        lung_share: ``(N,)`` float64 in [0, 1], NaN for an all-zero map.
        border_share: ``(N,)`` float64 in [0, 1], NaN for an all-zero map.
        peak_in_lungs: ``(N,)`` bool (False for an all-zero map).
        peak: ``(N, 2)`` float64, the peak's (row, column) as a share of the height and width.
    """

    lung_share: np.ndarray
    border_share: np.ndarray
    peak_in_lungs: np.ndarray
    peak: np.ndarray


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


def measure(heatmaps: np.ndarray, lungs: np.ndarray, *, margin: float = DEFAULT_MARGIN
            ) -> Measures:
    """Lung share, border share and peak of ``(N, H, W)`` maps against ``(N, H, W)`` lungs.

    Args:
        heatmaps: Non-negative maps.
        lungs: Bool lung masks of the maps' size.
        margin: Dilation of the lung masks (a share of the larger side; 0: none).

    Returns:
        The :class:`Measures`.

    Example:
        >>> heat = np.ones((1, 8, 8)); lungs = np.ones((1, 8, 8), bool)
        >>> float(measure(heat, lungs).lung_share[0])
        1.0
    """
    check_number(margin, "lung_margin", low=0.0, high=0.5)
    maps = np.asarray(heatmaps, dtype=np.float64)
    grown = dilate(np.asarray(lungs, bool), margin)
    count, height, width = maps.shape
    lung_share = energy_in_mask(maps, grown)
    band = np.broadcast_to(border_band((height, width)), maps.shape)
    border_share = energy_in_mask(maps, band)
    flat = maps.reshape(count, -1)
    index = flat.argmax(axis=1)
    rows, cols = np.unravel_index(index, (height, width))
    has_mass = flat.max(axis=1) > 0
    peak_in = grown[np.arange(count), rows, cols] & has_mass
    peak = np.stack([(rows + 0.5) / height, (cols + 0.5) / width], axis=1)
    return Measures(lung_share, border_share, peak_in, peak)
