"""Where a heatmap's mass lies: inside the lungs, in the border band, and where its peak is.

These are the per-film numbers of the audit (:func:`cxrexplain.audit`) and of the training
callback (:class:`cxrexplain.training.ExplanationCallback`), computed for a whole batch at
once; the geometry (margin, band) is :mod:`cxrexplain.lungs.geometry`'s:

* **lung share**: the map's mass inside the lung mask dilated by a margin, over its total
  mass (the share :func:`cxrexplain.metrics.energy_in_mask` gives for the dilated mask). The
  margin (3% of the image side by default: 3 pixels at 96 px, 8 at 256) is there because a
  class-activation map from a coarse layer is blurred by its upsampling: evidence at the
  lung's edge (pleura, costophrenic angle) spills a few pixels over the mask's line, and should
  still count as lung. A map that looks everywhere scores about the lungs' area share (a third
  to a half of a film); an all-zero map has no mass and scores NaN.
* **border share**: the mass in the outer band, one eighth of the height or width from each
  edge: where burnt-in markers ("PORTABLE", L/R letters), collimation edges and text lie.
* **peak in lungs**: whether the map's largest value lies inside the (dilated) lung mask.

Example:
    >>> import numpy as np
    >>> from cxrexplain.lungs.shares import measure
    >>> heat = np.zeros((1, 16, 16)); heat[0, 0, 0] = 1.0  # all mass in a corner
    >>> lungs = np.zeros((1, 16, 16), bool); lungs[0, 4:12, 4:12] = True
    >>> m = measure(heat, lungs, margin=0.0)
    >>> float(m.lung_share[0]), float(m.border_share[0]), bool(m.peak_in_lungs[0])
    (0.0, 1.0, False)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrexplain._arrays import as_masks, mass_share
from cxrexplain._checks import check_number
from cxrexplain.lungs.geometry import DEFAULT_MARGIN, MAX_MARGIN, border_band, dilate

__all__ = ["Measures", "measure"]


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


def measure(heatmaps: np.ndarray, lungs: np.ndarray, *, margin: float = DEFAULT_MARGIN
            ) -> Measures:
    """Lung share, border share and peak of ``(N, H, W)`` maps against ``(N, H, W)`` lungs.

    Args:
        heatmaps: Non-negative maps.
        lungs: Lung masks, one per map (bool, or numbers read by the mask rule of
            :mod:`cxrexplain._arrays`), resized with nearest neighbour to the maps' size.
        margin: Dilation of the lung masks (a share of the larger side; 0: none).

    Returns:
        The :class:`Measures`.

    Example:
        >>> heat = np.ones((1, 8, 8)); lungs = np.ones((1, 8, 8), bool)
        >>> float(measure(heat, lungs).lung_share[0])
        1.0
    """
    check_number(margin, "lung_margin", low=0.0, high=MAX_MARGIN)
    maps = np.asarray(heatmaps, dtype=np.float64)
    count, height, width = maps.shape
    grown = dilate(as_masks(lungs, count=count, size=(height, width), name="lungs"), margin)
    lung_share = mass_share(maps, grown)
    border_share = mass_share(maps, border_band((height, width)))
    flat = maps.reshape(count, -1)
    index = flat.argmax(axis=1)
    rows, cols = np.unravel_index(index, (height, width))
    has_mass = flat.max(axis=1) > 0
    peak_in = grown[np.arange(count), rows, cols] & has_mass
    peak = np.stack([(rows + 0.5) / height, (cols + 0.5) / width], axis=1)
    return Measures(lung_share, border_share, peak_in, peak)
