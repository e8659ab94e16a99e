"""Heatmaps as fixed-size columns: a low-resolution float array and an 8-bit PNG.

A data-set table holds every film's map in one of two forms, both of one shape for all films
so that a batch is one array and the table writes straight to Parquet:

* ``heatmap``: the map resized to ``size x size`` (area interpolation when shrinking, bilinear
  when enlarging), float32 in [0, 1], for analysis;
* ``heatmap_png``: the map at the model's input resolution as an 8-bit gray PNG (a few
  kilobytes), for pictures (:func:`heatmap_from_png` reads it back).

Example:
    >>> import numpy as np
    >>> from cxrexplain.distributed import heatmap_from_png, resize_heatmaps
    >>> maps = np.linspace(0, 1, 2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32)
    >>> resize_heatmaps(maps, 8).shape
    (2, 8, 8)
    >>> from cxrexplain.distributed.maps import heatmap_png
    >>> back = heatmap_from_png(heatmap_png(maps[0]))
    >>> back.shape, float(np.abs(back - maps[0]).max()) <= 0.5 / 255 + 1e-7
    ((32, 32), True)
"""

from __future__ import annotations

import cv2
import numpy as np

from cxrexplain._checks import check_size, describe
from cxrexplain.errors import ImageLoadError, InvalidInputError

__all__ = ["heatmap_from_png", "heatmap_png", "resize_heatmaps"]


def resize_heatmaps(heatmaps: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize ``(N, H, W)`` maps to ``size``: area interpolation when shrinking, else bilinear.

    This is the resize of the ``heatmap`` column of :class:`~cxrexplain.distributed.Explain`:
    apply it to ``cx.GradCAM(clf).explain(...).heatmaps`` to compare with a data-set run.

    Args:
        heatmaps: ``(N, H, W)`` maps (any real type).
        size: ``(height, width)`` or one side for a square.

    Returns:
        ``(N, height, width)`` float32 (maps in [0, 1] stay in it: both interpolations
        average).

    Raises:
        InvalidInputError: Not a stack of 2-D maps, or a bad size.

    Example:
        >>> resize_heatmaps(np.ones((3, 16, 16)), (4, 8)).shape
        (3, 4, 8)
    """
    height, width = check_size(size, "heatmap_size")
    maps = np.asarray(heatmaps)
    if maps.ndim != 3 or not np.issubdtype(maps.dtype, np.number):
        raise InvalidInputError(
            f"heatmaps: expected an (N, H, W) array of numbers, got {describe(heatmaps)}"
        )
    maps = maps.astype(np.float32, copy=False)
    count, old_h, old_w = maps.shape
    if (old_h, old_w) == (height, width):
        same: np.ndarray = maps.copy()
        return same
    if count == 0:
        return np.empty((0, height, width), np.float32)
    shrinking = height <= old_h and width <= old_w
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = np.empty((count, height, width), np.float32)
    # one map at a time: OpenCV's several-channel paths round differently, and a map must not
    # depend on the batch it came in
    for k in range(count):
        out[k] = cv2.resize(maps[k], (width, height), interpolation=method)
    return out


def heatmap_png(heatmap: np.ndarray) -> bytes:
    """One ``(H, W)`` map in [0, 1] as the bytes of an 8-bit gray PNG (value x 255, rounded).

    Example:
        >>> heatmap_png(np.zeros((4, 4), np.float32))[:4]
        b'\\x89PNG'
    """
    values = np.asarray(heatmap, np.float32)
    if values.ndim != 2:
        raise InvalidInputError(f"heatmap: expected one (H, W) map, got {describe(heatmap)}")
    pixels = np.round(np.clip(np.nan_to_num(values), 0.0, 1.0) * 255.0).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 gray
        raise InvalidInputError("heatmap: cannot encode a PNG")
    return encoded.tobytes()


def heatmap_from_png(data: bytes) -> np.ndarray:
    """The ``(H, W)`` float32 map in [0, 1] of a ``heatmap_png`` cell.

    Raises:
        ImageLoadError: The bytes are empty (an error row) or not a PNG.

    Example:
        >>> from cxrexplain.distributed.maps import heatmap_png
        >>> heatmap_from_png(heatmap_png(np.ones((2, 3)))).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
        raise ImageLoadError(
            "heatmap_png: empty or not bytes (an error row has no map)"
        )
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.ndim != 2:
        raise ImageLoadError("heatmap_png: not an 8-bit gray PNG")
    return pixels.astype(np.float32) / 255.0
