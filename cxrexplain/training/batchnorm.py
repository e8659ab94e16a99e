"""BatchNormalization statistics that match a model's final weights ("precise BN").

Keras keeps a BatchNormalization layer's inference statistics as an exponential moving average
of the batch statistics seen in training (``momentum`` 0.9: roughly the last ten batches).
Those batches were computed with *earlier* weights, so while the optimiser still moves the
weights quickly (a constant learning rate, a short run) the averages lag behind the network
they serve. Behind global average pooling a small lag is fatal: the pooled features of a
small lesion differ between classes by far less than one pixel-level standard deviation, so a
mean that is off by a fraction of one shifts every image across the decision boundary at once
(the demo's model classified every NORMAL phantom as PNEUMONIA while its training-mode
accuracy was 97 %). :func:`recalibrate_batchnorm` replaces the averages by the population statistics
of the final weights ("precise BN"; Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021):
the mean over the given images of each training-mode batch's mean and variance, exactly the
normalisation the network was trained with.

Example:
    >>> from cxrexplain.training import recalibrate_batchnorm
    >>> recalibrate_batchnorm(model, batch)  # the example model's two BatchNormalization layers
    2
"""

from __future__ import annotations

import keras
import numpy as np

from cxrexplain._checks import check_int
from cxrexplain._keras_utils import leaf_layers
from cxrexplain.errors import InvalidInputError

__all__ = ["recalibrate_batchnorm"]


def recalibrate_batchnorm(model: keras.Model, images: np.ndarray, *, batch_size: int = 32) -> int:
    """Set every trainable BatchNormalization layer's moving statistics from ``images``.

    The images pass through the model in training mode ``batch_size`` at a time (each layer
    normalises by its batch's statistics, as in training); each layer's moving mean and
    variance become the size-weighted average of its batch means and batch variances. Frozen
    layers (``trainable=False``) run in inference mode and keep their statistics. No weight
    other than the moving statistics changes.

    Args:
        model: A Keras model (nested models are walked).
        images: ``(N, H, W, C)`` float32 as the model takes it, usually the training images.
        batch_size: Images per pass; use the training batch size.

    Returns:
        How many layers were recalibrated (0 when the model has no trainable
        BatchNormalization layer; then nothing runs).

    Raises:
        InvalidInputError: ``images`` is empty or ``batch_size`` is not a positive int.

    Example:
        >>> recalibrate_batchnorm(model, batch, batch_size=2)
        2
    """
    size = check_int(batch_size, "batch_size")
    data = np.asarray(images, np.float32)
    if data.ndim < 1 or len(data) == 0:
        raise InvalidInputError(f"images: expected a non-empty batch, got shape {data.shape}")
    layers = [layer for _, layer in leaf_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    try:
        seen = 0
        for start in range(0, len(data), size):
            part = data[start : start + size]
            for layer in layers:  # a running, size-weighted mean of the batch statistics
                layer.momentum = seen / (seen + len(part))
            model(part, training=True)
            seen += len(part)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return len(layers)
