"""Feature maps: one layer's activations for one image, as a grid."""

from __future__ import annotations

import math

import keras
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from cxrexplain._checks import check_int, first_line
from cxrexplain.classifier import Classifier
from cxrexplain.drawing._common import (
    ColormapLike,
    _resolve_colormap,
)
from cxrexplain.errors import CxrExplainError, InvalidInputError
from cxrexplain.explain.layers import layer_activations
from cxrexplain.io import ImageSource

__all__ = ["plot_feature_maps"]


def plot_feature_maps(
    model: keras.Model | Classifier,
    image: ImageSource,
    layer: str | keras.layers.Layer | None = None,
    *,
    max_maps: int = 32,
    colormap: ColormapLike = "viridis",
) -> Figure:
    """Show one layer's activations (feature maps) for one image as a grid.

    The model runs as it is and the layer's output is captured on the way, so layers inside
    nested backbones and subclassed models work too. The first ``max_maps`` channels are
    shown, each scaled to its own min..max.

    Args:
        model: A ``keras.Model`` or a :class:`cxrexplain.Classifier`.
        image: One image (path, bytes or array); resized and converted to the model's input
            size and channels.
        layer: A layer name, a path into nested models such as ``"vgg16/block5_conv3"``, a
            layer object, or None for the last 4-D layer before the global pooling.
        max_maps: The most channels to show (>= 1).
        colormap: Colormap of the panels.

    Returns:
        A figure with ``min(max_maps, channels)`` image axes.

    Raises:
        ModelStructureError: The layer is unknown (the message lists the layers with 4-D
            outputs) or its output is not ``(batch, h, w, channels)``.
        InvalidInputError: A bad image, ``max_maps`` or colormap.

    Example:
        >>> fig = plot_feature_maps(model, "xray.png", "block2_conv", max_maps=16)
        >>> len(fig.axes)  # the layer has 8 channels
        8
    """
    limit = check_int(max_maps, "max_maps")
    cmap = _resolve_colormap(colormap)
    classifier = model if isinstance(model, Classifier) else Classifier(model)
    batch = classifier.prepare(image)
    if batch.shape[0] != 1:
        raise InvalidInputError(f"image: expected one image, got a batch of {batch.shape[0]}")
    try:
        label, activations = layer_activations(classifier.model, batch, layer)
    except CxrExplainError:
        raise
    except Exception as err:  # Keras raises many types for a shape mismatch
        raise InvalidInputError(
            f"image: the model cannot run on it ({type(err).__name__}: {first_line(err)})"
        ) from err
    maps = activations[0]
    shown = min(limit, maps.shape[-1])
    columns = math.ceil(math.sqrt(shown))
    rows = math.ceil(shown / columns)
    figure = Figure(figsize=(1.4 * columns, 1.4 * rows + 0.5), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for k, axes in enumerate(grid.ravel()):
        if k >= shown:
            figure.delaxes(axes)
            continue
        axes.imshow(_unit_scale(maps[:, :, k]), cmap=cmap, vmin=0.0, vmax=1.0)
        axes.set_title(str(k), fontsize=7)
        axes.set_axis_off()
    figure.suptitle(
        f"{label}: {shown} of {maps.shape[-1]} channels, {maps.shape[0]}x{maps.shape[1]}",
        fontsize=9,
    )
    return figure


def _unit_scale(values: np.ndarray) -> npt.NDArray[np.float32]:
    low, high = float(values.min()), float(values.max())
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return np.zeros(values.shape, np.float32)
    return ((values - low) / (high - low)).astype(np.float32)

