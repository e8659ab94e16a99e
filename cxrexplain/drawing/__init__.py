"""Draw heatmaps, boxes and masks over chest X-rays, and lay explanations out as figures.

Pixels are drawn with OpenCV and returned as ``(H, W, 3)`` ``uint8`` RGB arrays; figures are
built on :class:`matplotlib.figure.Figure` directly, so nothing touches pyplot's global state
(and no window opens) unless ``show=True`` is asked for. :func:`overlay_grid` lays a batch
out as one RGB picture (films x maps, a captioned tile each) without matplotlib.

Every function that takes an image also takes what :func:`cxrexplain.load_image` accepts: a
path, encoded bytes, or an array (gray or RGB, ``float`` in [0, 1] or ``uint8``). Heatmaps are
``(H, W)`` arrays in [0, 1] (values outside are clipped); they are resized bilinearly to the
image when their size differs.

Example:
    >>> import numpy as np
    >>> from cxrexplain.drawing import overlay
    >>> image = np.zeros((64, 64), np.float32)
    >>> heat = np.zeros((8, 8), np.float32); heat[2:5, 2:5] = 1.0
    >>> rgb = overlay(image, heat, alpha=0.5, threshold=0.2)
    >>> rgb.shape, rgb.dtype
    ((64, 64, 3), dtype('uint8'))
"""

from __future__ import annotations

from cxrexplain.drawing.feature_maps import plot_feature_maps
from cxrexplain.drawing.figures import plot_explanations, save_figure
from cxrexplain.drawing.grid import overlay_grid
from cxrexplain.drawing.pixels import colorize, draw_box, draw_mask, overlay, save_overlay

__all__ = [
    "colorize",
    "draw_box",
    "draw_mask",
    "overlay",
    "overlay_grid",
    "plot_explanations",
    "plot_feature_maps",
    "save_figure",
    "save_overlay",
]
