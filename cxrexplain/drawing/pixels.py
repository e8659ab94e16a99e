"""Pixels: colour a heatmap, blend it over an X-ray, draw boxes and masks, save a PNG."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from cxrexplain._checks import check_fraction, check_int, describe
from cxrexplain._files import atomic_write_bytes
from cxrexplain.drawing._common import (
    Color,
    ColormapLike,
    RGBImage,
    _as_rgb,
    _box_border,
    _check_boxes,
    _check_color,
    _check_heatmap,
    _check_levels,
    _check_mask,
    _fit_heatmap,
    _lookup_table,
)
from cxrexplain.errors import (
    InvalidInputError,
)
from cxrexplain.io import ImageSource

__all__ = ["colorize", "draw_box", "draw_mask", "overlay", "save_overlay"]

_MAX_THICKNESS = 32767
"""OpenCV's widest line (``cv2.drawContours`` refuses more)."""

# ============================================================================================
# pixels
# ============================================================================================
def colorize(heatmap: npt.ArrayLike, colormap: ColormapLike = "jet") -> RGBImage:
    """Colour a heatmap with a matplotlib colormap.

    The heatmap is clipped to [0, 1] and quantised to 256 levels: value ``v`` gets
    ``round(cmap(round(v * 255) / 255) * 255)``, so 1.0 gets the colormap's top colour and
    0.0 its bottom colour exactly. An all-zero map is the bottom colour everywhere.

    Args:
        heatmap: An ``(H, W)`` (or ``(H, W, 1)``) array, nominally in [0, 1].
        colormap: A matplotlib colormap name (``"jet"``, ``"inferno"``, ``"viridis_r"``...)
            or a :class:`matplotlib.colors.Colormap`.

    Returns:
        An ``(H, W, 3)`` ``uint8`` RGB image.

    Raises:
        InvalidInputError: The heatmap has NaN/inf, is not numeric or has the wrong rank; or
            the colormap is unknown.

    Example:
        >>> import numpy as np
        >>> from cxrexplain.drawing import colorize
        >>> colorize(np.array([[0.0, 1.0]]), "gray").tolist()
        [[[0, 0, 0], [255, 255, 255]]]
    """
    heat = _check_heatmap(heatmap, "heatmap")
    return _colour_levels(_levels(heat), colormap)


def _levels(heat: np.ndarray) -> np.ndarray:
    """A checked [0, 1] heatmap's 256 quantisation levels, ``round(v * 255)``, as uint8."""
    levels: np.ndarray = np.rint(heat * np.float32(255.0)).astype(np.uint8)
    return levels


def _colour_levels(levels: np.ndarray, colormap: ColormapLike) -> RGBImage:
    table = _lookup_table(colormap)
    return np.ascontiguousarray(np.take(table, levels, axis=0))  # 4x a fancy index


def overlay(
    image: ImageSource,
    heatmap: npt.ArrayLike,
    *,
    colormap: ColormapLike = "jet",
    alpha: float = 0.4,
    threshold: float | None = None,
    contours: float | Sequence[float] | None = None,
    contour_color: Color = (255, 255, 255),
    contour_thickness: int = 1,
) -> RGBImage:
    """Blend a coloured heatmap over an X-ray.

    Each pixel is ``round((1 - alpha) * image + alpha * colorize(heatmap))``; pixels whose
    heatmap value is below ``threshold`` keep the image's value. ``alpha=0`` returns the image
    (as ``uint8`` RGB) and ``alpha=1`` returns exactly :func:`colorize` of the heatmap.

    Args:
        image: A path, bytes or array: gray ``(H, W)``/``(H, W, 1)`` or RGB ``(H, W, 3)``,
            ``float`` in [0, 1] or ``uint8``. Gray is repeated to three channels.
        heatmap: An ``(h, w)`` array in [0, 1]; resized to ``(H, W)`` with bilinear
            interpolation (``cv2.INTER_LINEAR``) when the sizes differ.
        colormap: A matplotlib colormap name or object.
        alpha: Weight of the heatmap colour, in [0, 1].
        threshold: If given (in [0, 1]), pixels with heatmap value below it are left as the
            image.
        contours: Level(s) in (0, 1): the outline of ``heatmap >= level`` is drawn for each
            (``cv2.findContours``), after blending.
        contour_color: RGB colour of the contour lines.
        contour_thickness: Width of the contour lines in pixels (>= 1; a width beyond
            twice the image's height + width draws the same pixels and is capped there).

    Returns:
        An ``(H, W, 3)`` ``uint8`` RGB image.

    Raises:
        InvalidInputError: Bad image or heatmap (NaN/inf, wrong rank), unknown colormap,
            ``alpha`` or ``threshold`` outside [0, 1], contour levels outside (0, 1).

    Example:
        >>> import numpy as np
        >>> from cxrexplain.drawing import overlay
        >>> xray = np.full((32, 32), 0.5, np.float32)
        >>> heat = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
        >>> overlay(xray, heat, alpha=0.0)[0, 0].tolist()
        [128, 128, 128]
    """
    base = _as_rgb(image, "image")
    heat = _check_heatmap(heatmap, "heatmap")
    check_fraction(alpha, "alpha")
    if threshold is not None:
        check_fraction(threshold, "threshold")
    levels = _check_levels(contours)
    line_color = _check_color(contour_color, "contour_color")
    line_width = check_int(contour_thickness, "contour_thickness")
    heat = _fit_heatmap(heat, base.shape[:2])
    colour = _colour_levels(_levels(heat), colormap)
    # the blend of two uint8 values takes one of 65,536 results: look them up (exactly the
    # float64 formula, computed once per call on the table instead of on every pixel)
    out = np.take(_blend_table(float(alpha)), (base.astype(np.uint16) << 8) | colour)
    if threshold is not None:
        out = np.where((heat >= float(threshold))[:, :, None], out, base)
    out = np.ascontiguousarray(out)
    # a line wider than twice the image's height + width draws the same pixels; capping it
    # keeps it within what OpenCV accepts (at most 32767)
    line_width = min(line_width, 2 * (out.shape[0] + out.shape[1]) + 1, _MAX_THICKNESS)
    for level in levels:
        region = (heat >= level).astype(np.uint8)
        found, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, found, -1, line_color, line_width)
    return out


def _blend_table(alpha: float) -> np.ndarray:
    """``round((1 - alpha) * b + alpha * c)`` for every uint8 pair, at index ``b * 256 + c``."""
    values = np.arange(256, dtype=np.float64)
    table = np.rint((1.0 - alpha) * values[:, None] + alpha * values[None, :])
    return np.clip(table, 0, 255).astype(np.uint8).ravel()


def draw_box(
    image: ImageSource,
    box: npt.ArrayLike,
    *,
    color: Color = (0, 255, 0),
    thickness: int = 2,
) -> RGBImage:
    """Draw one or several boxes ``(x, y, w, h)`` (pixels, top-left origin) on an image.

    Exactly these pixels change: with ``x0 = round(x)``, ``y0 = round(y)``,
    ``x1 = round(x + w) - 1`` and ``y1 = round(y + h) - 1`` (so an integer box covers columns
    ``x .. x+w-1`` and rows ``y .. y+h-1``), every pixel of the rectangle ``x0..x1`` by
    ``y0..y1`` that lies within ``thickness`` pixels of its edge, i.e. not in the inner
    rectangle ``x0+thickness .. x1-thickness`` by ``y0+thickness .. y1-thickness``. The line
    grows inward, never outside the box; a box thinner than ``2 * thickness`` is filled.
    Parts outside the image are clipped. Rounding is half up.

    Args:
        image: A path, bytes or array (gray or RGB, float in [0, 1] or uint8).
        box: ``(x, y, w, h)``, or an ``(M, 4)`` array of boxes; ``w`` and ``h`` must be > 0.
        color: RGB colour, three ints in 0..255.
        thickness: Line width in pixels (>= 1), measured inward from the box's outer edge.

    Returns:
        A new ``(H, W, 3)`` ``uint8`` RGB image.

    Raises:
        InvalidInputError: The box is not ``(4,)``/``(M, 4)``, has NaN/inf or a non-positive
            size; the colour or thickness is invalid.

    Example:
        >>> import numpy as np
        >>> from cxrexplain.drawing import draw_box
        >>> out = draw_box(np.zeros((16, 16), np.uint8), (2, 3, 5, 4), thickness=1)
        >>> int((out[:, :, 1] == 255).sum())  # 5 + 5 + 2 + 2 border pixels
        14
    """
    out: RGBImage = np.array(_as_rgb(image, "image"), dtype=np.uint8, copy=True)
    boxes = _check_boxes(box, "box")
    rgb = _check_color(color, "color")
    width = check_int(thickness, "thickness")
    border = np.zeros(out.shape[:2], np.uint8)
    for row in boxes:
        _box_border(border, row, width)
    out[border.astype(bool)] = rgb
    return out


def draw_mask(
    image: ImageSource,
    mask: ImageSource,
    *,
    color: Color = (0, 255, 255),
    alpha: float = 0.3,
    outline: bool = True,
) -> RGBImage:
    """Tint a binary mask (a lesion or the lungs) over an image, with its outline.

    Inside the mask each pixel becomes ``round((1 - alpha) * image + alpha * color)``; with
    ``outline`` the mask's contours are then drawn one pixel wide in ``color``.

    Args:
        image: A path, bytes or array (gray or RGB, float in [0, 1] or uint8).
        mask: An ``(h, w)`` array (``bool``; integers: nonzero is inside; floats: >= 0.5 is
            inside) or a path to a mask image (>= 50 % grey is inside). Resized to the image
            with nearest-neighbour interpolation when the sizes differ.
        color: RGB colour, three ints in 0..255.
        alpha: Fill opacity in [0, 1]; 0 draws the outline only.
        outline: Whether to draw the mask's contours.

    Returns:
        A new ``(H, W, 3)`` ``uint8`` RGB image.

    Raises:
        InvalidInputError: The mask has NaN/inf or the wrong rank; colour or alpha invalid.

    Example:
        >>> import numpy as np
        >>> from cxrexplain.drawing import draw_mask
        >>> mask = np.zeros((16, 16), bool); mask[4:8, 4:8] = True
        >>> draw_mask(np.zeros((16, 16)), mask, alpha=1.0)[5, 5].tolist()
        [0, 255, 255]
    """
    out: RGBImage = np.array(_as_rgb(image, "image"), dtype=np.uint8, copy=True)
    region = _check_mask(mask, "mask", out.shape[:2])
    rgb = _check_color(color, "color")
    check_fraction(alpha, "alpha")
    if float(alpha) > 0.0:
        tint = (1.0 - float(alpha)) * out[region].astype(np.float64) + float(alpha) * np.array(
            rgb, np.float64
        )
        out[region] = np.clip(np.rint(tint), 0, 255).astype(np.uint8)
    if outline:
        found, _ = cv2.findContours(
            region.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
        )
        cv2.drawContours(out, found, -1, rgb, 1)
    return out


_OVERLAY_OPTIONS = frozenset(inspect.signature(overlay).parameters) - {"image", "heatmap"}
"""The keyword options :func:`save_overlay` passes on to :func:`overlay`."""


def save_overlay(
    path: str | os.PathLike[str], image: ImageSource, heatmap: npt.ArrayLike, **overlay_kwargs: Any
) -> Path:
    """Render :func:`overlay` and write it as an image file (PNG unless the suffix says else).

    Args:
        path: Output file; ``.png`` (recommended), ``.jpg``, ``.bmp`` or ``.tif``. Missing
            parent folders are created.
        image: The X-ray (anything :func:`overlay` takes).
        heatmap: The heatmap (anything :func:`overlay` takes).
        **overlay_kwargs: ``colormap``, ``alpha``, ``threshold``, ``contours``... passed to
            :func:`overlay`.

    Returns:
        The path written.

    Raises:
        InvalidInputError: ``path`` is not a path, an option :func:`overlay` does not take,
            bad overlay arguments, or a suffix OpenCV cannot encode.
        OSError: The file cannot be written.

    Example:
        >>> save_overlay("gradcam.png", "xray.png", exp.heatmaps[0], alpha=0.5)
        PosixPath('gradcam.png')
        >>> cx.load_image("gradcam.png", channels=3).shape  # at the X-ray's own 64 x 64
        (64, 64, 3)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"path: expected a file path, got {describe(path)}")
    unknown = sorted(set(overlay_kwargs) - _OVERLAY_OPTIONS)
    if unknown:
        raise InvalidInputError(
            f"overlay_kwargs: unknown option(s) {', '.join(unknown)}; overlay() takes "
            f"{', '.join(sorted(_OVERLAY_OPTIONS))}"
        )
    target = Path(os.fspath(path))
    suffix = target.suffix.lower() or ".png"
    if not target.suffix:
        target = target.with_suffix(".png")
    rgb = overlay(image, heatmap, **overlay_kwargs)
    try:
        ok, encoded = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error as err:
        raise InvalidInputError(
            f"path: cannot write images of type '{suffix}' ('{target}'); use .png"
        ) from err
    if not ok:
        raise InvalidInputError(f"path: OpenCV failed to encode '{target}' as '{suffix}'")
    return atomic_write_bytes(target, encoded.tobytes())


