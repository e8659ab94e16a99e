"""A grid of overlays: films x heatmaps as one RGB picture, a captioned tile per film.

What :class:`cxrexplain.training.ExplanationCallback` writes at the end of an epoch (a PNG
and a TensorBoard image), and anything else that wants a batch of explanations at a glance
without matplotlib: the tiles are drawn with OpenCV.

Example:
    >>> import numpy as np
    >>> from cxrexplain.drawing.grid import overlay_grid
    >>> films = np.zeros((3, 32, 32, 1), np.float32)
    >>> maps = np.zeros((3, 32, 32), np.float32); maps[:, 8:16, 8:16] = 1.0
    >>> grid = overlay_grid(films, maps, captions=["a", "b", "c"], header="epoch 1")
    >>> grid.shape, grid.dtype
    ((162, 392, 3), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from cxrexplain._arrays import as_heatmaps, as_masks
from cxrexplain._checks import check_int
from cxrexplain.drawing._common import RGBImage
from cxrexplain.drawing.pixels import draw_box, draw_mask, overlay
from cxrexplain.errors import InvalidInputError

__all__ = ["overlay_grid"]

TILE_MIN, TILE_MAX = 128, 256
"""The tiles are the films scaled so that their larger side lies in this range."""

_CAPTION, _HEADER, _GAP = 14, 16, 2
_BACKGROUND, _TEXT = 32, (235, 235, 235)


def overlay_grid(
    images: np.ndarray,
    heatmaps: Any,
    *,
    captions: Sequence[str] | None = None,
    header: str = "",
    masks: Any = None,
    boxes: Sequence[np.ndarray | None] | None = None,
    columns: int = 4,
    alpha: float = 0.4,
) -> RGBImage:
    """The overlays of a batch as one ``uint8`` RGB picture, a tile per film with a caption.

    Tiles are the films scaled to 128..256 pixels a side with the heatmap blended over them
    (:func:`~cxrexplain.drawing.overlay`; lung masks outlined with
    :func:`~cxrexplain.drawing.draw_mask`, boxes drawn with
    :func:`~cxrexplain.drawing.draw_box`), a caption line under each, in rows of
    ``columns``, under a one-line ``header``.

    Args:
        images: ``(N, H, W, C)`` films in [0, 1] (C = 1 or 3).
        heatmaps: ``(N, H, W)`` maps in [0, 1] at the films' size (or anything with
            ``.heatmaps``).
        captions: One line per film (empty: none).
        header: A line of text above the tiles (empty: no header).
        masks: ``(N, H, W)`` masks to outline (the one mask rule of
            :mod:`cxrexplain._arrays`), or None.
        boxes: Per film, None or ``(M, 4)`` ``(x, y, width, height)`` boxes in the films'
            pixels, or None.
        columns: Tiles per row.
        alpha: The heatmap's weight in the blend.

    Returns:
        ``(height, width, 3)`` uint8.

    Raises:
        InvalidInputError: Maps, masks, boxes or captions that do not match the films.

    Example:
        >>> overlay_grid(np.zeros((1, 300, 200, 1)), np.zeros((1, 300, 200))).shape
        (274, 175, 3)
    """
    films = np.asarray(images, dtype=np.float32)
    if films.ndim != 4 or films.shape[0] == 0:
        raise InvalidInputError(
            f"images: expected an (N, H, W, C) batch of films, got shape {films.shape}"
        )
    count, height, width = films.shape[:3]
    maps = as_heatmaps(heatmaps)
    if maps.shape != (count, height, width):
        raise InvalidInputError(
            f"heatmaps: expected {count} maps of {height}x{width}, got shape {maps.shape}"
        )
    outlines = None if masks is None else as_masks(masks, count=count, size=(height, width))
    for what, given in (("captions", captions), ("boxes", boxes)):
        if given is not None and len(given) != count:
            raise InvalidInputError(f"{what}: expected one per film ({count}), got {len(given)}")
    cols = min(count, check_int(columns, "columns"))
    side = max(height, width)
    scale = TILE_MIN / side if side < TILE_MIN else (TILE_MAX / side if side > TILE_MAX else 1.0)
    tile_h, tile_w = round(height * scale), round(width * scale)
    rows = -(-count // cols)
    top = _HEADER if header else 0
    grid = np.full((top + rows * (tile_h + _CAPTION + _GAP) + _GAP,
                    cols * (tile_w + _GAP) + _GAP, 3), _BACKGROUND, np.uint8)
    for i in range(count):
        film = cv2.resize(films[i], (tile_w, tile_h), interpolation=cv2.INTER_LINEAR)
        panel = overlay(film, maps[i], alpha=alpha)
        if outlines is not None:
            panel = draw_mask(panel, outlines[i], alpha=0.0)
        if boxes is not None and boxes[i] is not None:
            panel = draw_box(panel, np.asarray(boxes[i], np.float64) * scale,
                             thickness=max(1, round(tile_w / 128)))
        y = top + _GAP + (i // cols) * (tile_h + _CAPTION + _GAP)
        x = _GAP + (i % cols) * (tile_w + _GAP)
        grid[y : y + tile_h, x : x + tile_w] = panel
        if captions is not None and captions[i]:
            _text(grid, captions[i], x + 2, y + tile_h + _CAPTION - 4)
    if header:
        _text(grid, header, _GAP + 2, _HEADER - 4)
    return grid


def _text(picture: np.ndarray, text: str, x: int, y: int) -> None:
    cv2.putText(picture, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.35, _TEXT, 1, cv2.LINE_AA)
