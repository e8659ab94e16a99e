"""Figures: a comparison grid of explanations, and saving figures."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from cxrexplain._checks import as_numbers, check_fraction, check_number, describe
from cxrexplain._files import atomic_path
from cxrexplain.drawing._common import (
    ColormapLike,
    RGBImage,
    _as_rgb,
    _check_boxes,
    _check_mask,
    _ExplanationLike,
    _resolve_colormap,
)
from cxrexplain.drawing.pixels import draw_box, draw_mask, overlay
from cxrexplain.errors import (
    InvalidInputError,
)
from cxrexplain.io import ImageSource

__all__ = ["plot_explanations", "save_figure"]

# ============================================================================================
# figures
# ============================================================================================
def plot_explanations(
    images: ImageSource | Iterable[ImageSource],
    explanations: Sequence[np.ndarray | _ExplanationLike] | np.ndarray | _ExplanationLike,
    *,
    class_names: Sequence[str] | None = None,
    probabilities: npt.ArrayLike | None = None,
    boxes: npt.ArrayLike | Sequence[npt.ArrayLike | None] | None = None,
    masks: npt.ArrayLike | Sequence[ImageSource | None] | None = None,
    colormap: ColormapLike = "jet",
    alpha: float = 0.4,
    titles: Sequence[str] | None = None,
    colorbar: bool = True,
    show: bool = False,
) -> Figure:
    """Lay out X-rays and their explanations as a grid: one row per image.

    The first column shows the X-ray, titled with the class explained and its probability
    when they are known; then one column per explanation, titled with the method's name. An
    optional colour bar (0 to 1) shows the heatmap colours. Boxes are drawn on every panel;
    masks are tinted on the X-ray and outlined on the explanation panels.

    The first column's title is the file name (when paths were given) and
    ``"<class> (p=0.93)"``: the class is the first explanation object's ``targets`` (the
    predicted class unless other targets were asked for), else the argmax of
    ``probabilities``; the probability is that class's.

    Args:
        images: ``N`` images: an ``(N, H, W, C)`` array, a list of paths or arrays (sizes may
            differ), or one image.
        explanations: A list with one entry per method, each an ``(N, H, W)`` array in
            [0, 1] or an explanation object (anything with ``heatmaps``; ``method``,
            ``targets`` and ``probabilities`` are read when present, e.g.
            :class:`cxrexplain.Explanation`). One array or object alone is one method.
        class_names: Names of the classes, to title the first column.
        probabilities: ``(N, K)`` class probabilities; defaults to the first explanation
            object's ``probabilities``.
        boxes: Per image, a box ``(x, y, w, h)``, several ``(M, 4)``, or ``None``; or an
            ``(N, 4)`` array (one box per image).
        masks: Per image, a binary mask (array or path) or ``None``; or an ``(N, H, W)``
            array.
        colormap: Heatmap colormap (name or object).
        alpha: Heatmap opacity in [0, 1].
        titles: Column titles for the explanations (one per explanation), replacing the
            method names.
        colorbar: Whether to add the colour bar.
        show: Create the figure with pyplot and call ``pyplot.show()``. Otherwise (the
            default) a standalone :class:`~matplotlib.figure.Figure` is returned and pyplot
            is never touched.

    Returns:
        The figure. Its image axes are ``fig.axes[:N * (1 + len(explanations))]`` in row
        order; the colour bar's axes comes last.

    Raises:
        InvalidInputError: Heatmaps with NaN/inf or the wrong rank, a number of heatmaps,
            boxes, masks, probabilities or titles that does not match the images, targets
            that are not class indices, class names that are not a list of strings, an
            unknown colormap, or ``alpha`` outside [0, 1].

    Example:
        >>> import cxrexplain as cx
        >>> xrays = batch[:2]
        >>> gradcam_exp, cam_exp = cx.GradCAM(clf).explain(xrays), cx.CAM(clf).explain(xrays)
        >>> fig = cx.plot_explanations(xrays, [gradcam_exp, cam_exp],
        ...                            class_names=clf.class_names)
        >>> len(fig.axes)  # 2 rows of X-ray, Grad-CAM and CAM panels, and the colour bar
        7
        >>> [ax.get_title() for ax in fig.axes[:3]]  # "<class explained> (p=<its probability>)"
        ['... (p=0...)', 'gradcam', 'cam']
        >>> cx.save_figure(fig, "explanations.png")
        PosixPath('explanations.png')
    """
    pictures = _image_list(images)
    count = len(pictures)
    entries = _explanation_list(explanations)
    check_fraction(alpha, "alpha")
    cmap = _resolve_colormap(colormap)
    maps = [_explanation_heatmaps(e, j, count) for j, e in enumerate(entries)]
    names = _column_titles(entries, titles)
    row_titles = _row_titles(images, pictures, entries, class_names, probabilities)
    box_rows = [
        None if b is None else _check_boxes(b, f"boxes[{i}]")
        for i, b in enumerate(_per_image(boxes, count, "boxes"))
    ]
    mask_rows = [
        None if m is None else _check_mask(m, f"masks[{i}]", pictures[i].shape[:2])
        for i, m in enumerate(_per_image(masks, count, "masks"))
    ]

    columns = 1 + len(entries)
    width = 2.4 * columns + (0.6 if colorbar and entries else 0.0)
    figure = _new_figure((width, 2.5 * count), show)
    grid = figure.subplots(count, columns, squeeze=False)
    for i, base in enumerate(pictures):
        mask, box = mask_rows[i], box_rows[i]
        panels = [base] + [overlay(base, heat[i], colormap=cmap, alpha=alpha) for heat in maps]
        for j, panel in enumerate(panels):
            if mask is not None:
                panel = draw_mask(panel, mask, alpha=0.3 if j == 0 else 0.0)
            if box is not None:
                panel = draw_box(panel, box, thickness=max(1, round(min(panel.shape[:2]) / 128)))
            axes = grid[i, j]
            axes.imshow(panel)
            axes.set_title(row_titles[i] if j == 0 else names[j - 1], fontsize=9)
            axes.set_axis_off()
    if colorbar and entries:
        bar = figure.colorbar(
            ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap),
            ax=list(grid.ravel()),
            shrink=min(0.9, 0.35 + 0.15 * count),
            fraction=0.04,
        )
        bar.set_label("relevance", fontsize=9)
        bar.ax.tick_params(labelsize=8)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return figure



def save_figure(figure: Figure, path: str | os.PathLike[str], *, dpi: int = 150) -> Path:
    """Save a figure (format from the suffix: ``.png``, ``.pdf``, ``.svg``...).

    Args:
        figure: A matplotlib figure, e.g. from :func:`plot_explanations`.
        path: Output file; missing parent folders are created.
        dpi: Resolution in dots per inch (> 0).

    Returns:
        The path written.

    Raises:
        InvalidInputError: ``figure`` is not a figure, ``path`` is not a path, ``dpi`` is
            not positive, or the format is unknown.

    Example:
        >>> fig = plot_explanations(batch[:1], exp.heatmaps[:1])
        >>> save_figure(fig, "figures/gradcam_grid.png", dpi=100)
        PosixPath('figures/gradcam_grid.png')
    """
    if not isinstance(figure, Figure):
        raise InvalidInputError(
            f"figure: expected a matplotlib Figure, got {type(figure).__name__}"
        )
    check_number(dpi, "dpi", low=0.0, low_open=True)
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"path: expected a file path, got {describe(path)}")
    target = Path(os.fspath(path))
    try:
        with atomic_path(target) as partial:
            figure.savefig(partial, dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    except ValueError as err:
        raise InvalidInputError(f"path: cannot save '{target}' ({err})") from err
    return target



# ============================================================================================
# plot_explanations helpers
# ============================================================================================
def _new_figure(size: tuple[float, float], show: bool) -> Figure:
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=size, layout="constrained")
    return Figure(figsize=size, layout="constrained")


def _image_list(images: ImageSource | Iterable[ImageSource]) -> list[RGBImage]:
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            items: list[Any] = list(images)
        elif images.ndim in (2, 3):
            items = [images]
        else:
            raise InvalidInputError(
                f"images: expected (N, H, W, C), (H, W, C) or (H, W), got shape {images.shape}"
            )
    elif isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)):
        items = [images]
    else:
        items = list(images)
    if not items:
        raise InvalidInputError("images: give at least one image")
    return [_as_rgb(item, f"images[{i}]") for i, item in enumerate(items)]


def _explanation_list(explanations: Any) -> list[Any]:
    if isinstance(explanations, np.ndarray) or hasattr(explanations, "heatmaps"):
        return [explanations]
    if isinstance(explanations, (str, bytes)) or not isinstance(explanations, Iterable):
        raise InvalidInputError(
            f"explanations: expected a list of heatmap arrays or explanation objects, got "
            f"{type(explanations).__name__}"
        )
    return list(explanations)


def _explanation_heatmaps(entry: Any, index: int, count: int) -> npt.NDArray[np.float32]:
    name = f"explanations[{index}]"
    source = entry.heatmaps if hasattr(entry, "heatmaps") else entry
    values = as_numbers(source, f"{name}.heatmaps" if hasattr(entry, "heatmaps") else name)
    if values.ndim == 2 and count == 1:
        values = values[None]
    if values.ndim == 4 and values.shape[3] == 1:
        values = values[:, :, :, 0]
    if values.ndim != 3:
        raise InvalidInputError(
            f"{name}: expected heatmaps of shape (N, H, W), got shape {values.shape}"
        )
    if values.shape[0] != count:
        raise InvalidInputError(
            f"{name}: {values.shape[0]} heatmaps for {count} images; give one per image"
        )
    clipped: npt.NDArray[np.float32] = np.clip(values, 0.0, 1.0).astype(np.float32)
    return clipped  # clipped before the cast: a float64 beyond float32's range overflows


def _column_titles(entries: list[Any], titles: Sequence[str] | None) -> list[str]:
    if titles is not None:
        if isinstance(titles, str) or not all(isinstance(t, str) for t in titles):
            raise InvalidInputError(f"titles: expected a list of strings, got {titles!r}")
        if len(titles) != len(entries):
            raise InvalidInputError(
                f"titles: {len(titles)} titles for {len(entries)} explanations; give one each"
            )
        return list(titles)
    return [str(getattr(e, "method", None) or f"method {j + 1}") for j, e in enumerate(entries)]


def _row_titles(
    sources: Any,
    pictures: list[RGBImage],
    entries: list[Any],
    class_names: Sequence[str] | None,
    probabilities: npt.ArrayLike | None,
) -> list[str]:
    count = len(pictures)
    first = next((e for e in entries if hasattr(e, "heatmaps")), None)
    probs = None
    if probabilities is not None:
        probs = as_numbers(probabilities, "probabilities").astype(np.float64)
    elif first is not None and getattr(first, "probabilities", None) is not None:
        probs = as_numbers(first.probabilities, "explanations[0].probabilities").astype(np.float64)
    if probs is not None and (probs.ndim != 2 or probs.shape[0] != count):
        raise InvalidInputError(
            f"probabilities: expected shape (N={count}, K), got {probs.shape}"
        )
    targets = None
    if first is not None and getattr(first, "targets", None) is not None:
        values = as_numbers(first.targets, "explanations[0].targets").reshape(-1)
        if not np.all(np.mod(values, 1) == 0):
            raise InvalidInputError(
                f"explanations[0].targets: expected class indices (whole numbers), got "
                f"{describe(first.targets)}"
            )
        targets = values.astype(np.int64)
        if targets.shape[0] != count:
            raise InvalidInputError(
                f"explanations[0].targets: {targets.shape[0]} targets for {count} images"
            )
    elif probs is not None:
        targets = probs.argmax(axis=1)
    if class_names is not None:
        if isinstance(class_names, str) or not isinstance(class_names, Sequence) or not all(
            isinstance(n, str) for n in class_names
        ):
            raise InvalidInputError(f"class_names: expected a list of strings, got {class_names!r}")
        if probs is not None and len(class_names) != probs.shape[1]:
            raise InvalidInputError(
                f"class_names: {len(class_names)} names for {probs.shape[1]} classes"
            )
    names = _source_names(sources, count)
    titles = []
    for i in range(count):
        parts = [names[i]] if names[i] else []
        if targets is not None:
            t = int(targets[i])
            known = class_names is not None and 0 <= t < len(class_names)
            label = class_names[t] if class_names is not None and known else f"class {t}"
            if probs is not None and 0 <= t < probs.shape[1]:
                label += f" (p={probs[i, t]:.2f})"
            parts.append(label)
        titles.append("\n".join(parts) or f"image {i + 1}")
    return titles


def _source_names(sources: Any, count: int) -> list[str]:
    """File names when the images were given as paths, else empty strings."""
    if isinstance(sources, (str, os.PathLike)):
        return [Path(os.fspath(sources)).name]
    if isinstance(sources, (list, tuple)) and len(sources) == count:
        return [
            Path(os.fspath(s)).name if isinstance(s, (str, os.PathLike)) else "" for s in sources
        ]
    return [""] * count


def _per_image(values: Any, count: int, name: str) -> list[Any]:
    if values is None:
        return [None] * count
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            raise InvalidInputError(f"{name}: expected one entry per image, got {describe(values)}")
        if values.shape[0] != count:
            raise InvalidInputError(
                f"{name}: {values.shape[0]} entries for {count} images; give one per image"
            )
        return list(values)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{name}: expected one entry per image, got {values!r}")
    if len(values) != count:
        raise InvalidInputError(
            f"{name}: {len(values)} entries for {count} images; give one per image (or None)"
        )
    return list(values)


