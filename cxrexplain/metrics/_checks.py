"""Argument checks shared by the metrics (private)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from cxrexplain._checks import as_numbers
from cxrexplain.errors import InvalidInputError

__all__ = ["as_heatmaps", "as_masks", "resize_maps"]


def as_heatmaps(heatmaps: Any, name: str = "heatmaps") -> np.ndarray:
    """``(N, H, W)`` float32 from an array or an :class:`~cxrexplain.Explanation`."""
    values = getattr(heatmaps, "heatmaps", heatmaps)
    array = as_numbers(values, name)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InvalidInputError(
            f"{name}: expected (N, H, W) maps, got shape {array.shape}"
        )
    return array.astype(np.float32)


def as_masks(masks: Any, count: int, size: tuple[int, int], name: str = "masks") -> np.ndarray:
    """``(N, H, W)`` bool masks, resized (nearest) to ``size`` when they differ."""
    array = as_numbers(masks, name)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3 or array.shape[0] != count:
        raise InvalidInputError(
            f"{name}: expected {count} masks of shape (H, W), got shape {array.shape}"
        )
    binary = array > (127 if array.dtype == np.uint8 and array.max() > 1 else 0)
    if binary.shape[1:] != size:
        binary = resize_maps(binary.astype(np.uint8), size, nearest=True) > 0
    return binary


def resize_maps(maps: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize ``(N, h, w)`` maps to ``size`` (bilinear, or nearest for masks)."""
    if maps.shape[1:] == size:
        return maps
    method = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return np.stack([cv2.resize(m, (size[1], size[0]), interpolation=method) for m in maps])
