"""Argument checks, conversions and types shared by the overlay modules (private)."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable
from typing import Any, Protocol, TypeAlias

import cv2
import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.colors import Colormap

from cxrexplain._arrays import as_boxes
from cxrexplain._checks import as_numbers, check_fraction, describe, safe_ndim
from cxrexplain.errors import (
    ImageLoadError,
    InvalidInputError,
)
from cxrexplain.io import ImageSource, load_image, load_mask

RGBImage: TypeAlias = npt.NDArray[np.uint8]
"""An ``(H, W, 3)`` ``uint8`` RGB image."""

ColormapLike: TypeAlias = str | Colormap
Color: TypeAlias = tuple[int, int, int]


class _ExplanationLike(Protocol):
    """What :func:`plot_explanations` reads from an explanation (duck-typed).

    ``method`` (str), ``targets`` ((N,) int) and ``probabilities`` ((N, K) float) are read
    when present.
    """

    @property
    def heatmaps(self) -> np.ndarray: ...



# ============================================================================================
# argument checks and conversions
# ============================================================================================
def _as_rgb(image: ImageSource, name: str) -> RGBImage:
    """Any image source as ``(H, W, 3)`` uint8 RGB; uint8 arrays keep their exact values."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.size:
        if image.ndim == 3 and image.shape[2] == 3:
            return np.ascontiguousarray(image)
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            return np.ascontiguousarray(np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2))
    try:
        unit = load_image(image, channels=3)
    except (InvalidInputError, ImageLoadError) as err:
        message = str(err)
        if not message.startswith(name):
            message = f"{name}: {message}"
        raise type(err)(message) from err
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def _one_map(values: object, name: str, what: str) -> np.ndarray:
    """One ``(H, W)`` array of numbers (an ``(H, W, 1)`` one is squeezed)."""
    array = as_numbers(values, name)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise InvalidInputError(
            f"{name}: expected one {what} of shape (H, W), got shape {array.shape}"
        )
    return array


def _check_heatmap(heatmap: npt.ArrayLike, name: str) -> npt.NDArray[np.float32]:
    values = _one_map(heatmap, name, "heatmap")
    # clipped before the cast: a float64 beyond float32's range would overflow to inf
    clipped: npt.NDArray[np.float32] = np.clip(values, 0.0, 1.0).astype(np.float32)
    return clipped


def _fit_heatmap(heat: np.ndarray, size: tuple[int, ...]) -> npt.NDArray[np.float32]:
    height, width = int(size[0]), int(size[1])
    if heat.shape == (height, width):
        return np.asarray(heat, np.float32)
    resized = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0).astype(np.float32)


def _resolve_colormap(colormap: ColormapLike) -> Colormap:
    if isinstance(colormap, Colormap):
        return colormap
    if not isinstance(colormap, str):
        raise InvalidInputError(
            f"colormap: expected a matplotlib colormap name or Colormap, got "
            f"{type(colormap).__name__}"
        )
    try:
        return mpl.colormaps[colormap]
    except KeyError:
        raise InvalidInputError(
            f"colormap: unknown colormap {colormap!r}; use a matplotlib name such as 'jet', "
            "'inferno', 'viridis' or 'gray'"
        ) from None


def _lookup_table(colormap: ColormapLike) -> RGBImage:
    """The colormap's 256 uint8 RGB colours; a colormap given by name is computed once."""
    if isinstance(colormap, str):
        return _named_table(colormap)
    return _table_of(_resolve_colormap(colormap))


@functools.lru_cache(maxsize=32)
def _named_table(name: str) -> RGBImage:
    table = _table_of(_resolve_colormap(name))  # an unknown name raises, and is not cached
    table.flags.writeable = False  # shared between calls
    return table


def _table_of(cmap: Colormap) -> RGBImage:
    rgba = np.asarray(cmap(np.linspace(0.0, 1.0, 256)), dtype=np.float64)
    return np.clip(np.rint(rgba[:, :3] * 255.0), 0, 255).astype(np.uint8)


def _check_levels(levels: object) -> list[float]:
    if levels is None:
        return []
    if safe_ndim(levels) == 0:
        items: list[Any] = [levels]
    elif isinstance(levels, Iterable) and not isinstance(levels, (str, bytes)):
        items = list(levels)
    else:
        raise InvalidInputError(f"contours: expected levels in (0, 1), got {describe(levels)}")
    checked = []
    for level in items:
        checked.append(check_fraction(level, "contours", open_interval=True))
    return checked


def _check_color(color: object, name: str) -> Color:
    if (
        not isinstance(color, (tuple, list, np.ndarray))
        or safe_ndim(color) != 1
        or len(color) != 3
        or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 255
            for c in color
        )
    ):
        raise InvalidInputError(f"{name}: expected an RGB triple of ints in 0..255, got {color!r}")
    return int(color[0]), int(color[1]), int(color[2])


def _check_boxes(box: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """``(M, 4)`` boxes with positive width and height (:func:`cxrexplain._arrays.as_boxes`)."""
    return as_boxes(box, name)


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _box_border(border: np.ndarray, box: np.ndarray, thickness: int) -> None:
    """Set the border pixels of one (x, y, w, h) box to 1 in ``border`` (see draw_box)."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = _half_up(x), _half_up(y)
    x1, y1 = max(x0, _half_up(x + w) - 1), max(y0, _half_up(y + h) - 1)
    height, width = border.shape
    inner = (x0 + thickness, y0 + thickness, x1 - thickness, y1 - thickness)

    def clamp(left: int, top: int, right: int, bottom: int) -> tuple[int, int, int, int]:
        # coordinates just outside the image draw the same pixels; this keeps far-away boxes
        # within OpenCV's int range
        def fit(v: int, size: int) -> int:
            return min(max(v, -1), size)

        return fit(left, width), fit(top, height), fit(right, width), fit(bottom, height)

    outer = clamp(x0, y0, x1, y1)
    cv2.rectangle(border, outer[:2], outer[2:], 1, cv2.FILLED)
    if inner[0] <= inner[2] and inner[1] <= inner[3]:
        hole = clamp(*inner)
        cv2.rectangle(border, hole[:2], hole[2:], 0, cv2.FILLED)


def _check_mask(mask: Any, name: str, size: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """One mask (array, file or bytes) by the one mask rule of :mod:`cxrexplain._arrays`,
    resized (nearest) to ``size``."""
    if not isinstance(mask, (str, os.PathLike, bytes, bytearray, memoryview)):
        plain = (isinstance(mask, np.ndarray) and mask.dtype == bool and mask.ndim == 2
                 and mask.size > 0)  # an empty one goes through the checks, which word it
        mask = mask if plain else _one_map(mask, name, "mask")
    region = load_mask(mask, size=(int(size[0]), int(size[1])), name=name)
    return np.asarray(region, dtype=bool)


