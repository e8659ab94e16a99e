"""``cam_cnn``: a batch-normalised CNN whose last convolution feeds GAP -> Dense, so CAM is exact.

It keeps the idea of Lovi07/Advanced-Classification-using-Machine-Learning-in-HealthCare (a
small CNN on 224x224 gray chest films, COVID vs pneumonia, with a class activation map) and
fixes what kept that model from having an exact CAM: it flattens its last 1x1-conv map into
a 128-unit Dense layer, so its final Dense weights (128 x 3) cannot weight the 64 feature maps.
Here every block is Conv 3x3 (same padding, no bias) ->
BatchNormalization(momentum=0.9) -> ReLU -> MaxPool 2x2, the last block without pooling, then
GlobalAveragePooling2D -> Dropout -> Dense: ``CAM_c = sum_k w[k, c] * A_k`` exactly.

Layer names are stable: ``block{i}_conv``, ``block{i}_bn``, ``block{i}_relu``, ``block{i}_pool``,
``gap``, ``dropout``, ``predictions``; the CAM layer is ``block{n}_relu``.

Output rule: a softmax project (Lovi07's): ``num_classes`` softmax units, also for two classes
(``head="sigmoid"`` gives one sigmoid unit for two classes).

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(224, 224, 1), num_classes=2)
    >>> model.get_layer("gap").input.shape
    (None, 28, 28, 256)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from cxrexplain.errors import InvalidInputError
from cxrexplain.models._common import (
    Head,
    InputShape,
    check_input_shape,
    check_rate,
    classifier_output,
)
from cxrexplain.models.registry import register

__all__ = ["cam_cnn"]

_DEFAULT_FILTERS = (32, 64, 128, 256)


@register(
    "cam_cnn",
    description="4 blocks Conv3x3+BN(0.9)+ReLU(+MaxPool), GAP -> Dropout -> Dense; exact CAM",
    source="Lovi07/Advanced-Classification-using-Machine-Learning-in-HealthCare, "
    "COVID vs pneumonia CNN with CAM",
    head="softmax",
    min_size=8,
)
def cam_cnn(
    input_shape: InputShape,
    num_classes: int,
    *,
    filters: Sequence[int] = _DEFAULT_FILTERS,
    dropout: float = 0.3,
    batchnorm_momentum: float = 0.9,
    head: Head = "auto",
) -> keras.Model:
    """Build the CAM CNN.

    Args:
        input_shape: ``(height, width, channels)``; at least ``2 ** (len(filters) - 1)``
            pixels per side.
        num_classes: Number of classes (softmax units; see the module's output rule).
        filters: Filters of each block; every block but the last halves the resolution.
        dropout: Dropout rate between the global pooling and the output layer.
        batchnorm_momentum: BatchNormalization momentum (0.9 adapts faster than Keras'
            0.99 default, which matters for short trainings on small data sets).
        head: ``"auto"``, ``"softmax"`` or ``"sigmoid"``.

    Returns:
        The functional model ``cam_cnn``.

    Example:
        >>> model = cam_cnn((64, 64, 1), 3, filters=(8, 16))
        >>> [layer.name for layer in model.layers][-3:]
        ['gap', 'dropout', 'predictions']
    """
    widths = _check_filters(filters)
    check_input_shape("cam_cnn", input_shape, min_size=2 ** (len(widths) - 1))
    rate = check_rate(dropout, "dropout")
    momentum = check_rate(batchnorm_momentum, "batchnorm_momentum")
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for index, width in enumerate(widths, start=1):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                                name=f"block{index}_conv")(x)
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"block{index}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{index}_relu")(x)
        if index < len(widths):
            x = keras.layers.MaxPooling2D(2, name=f"block{index}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(rate, name="dropout")(x)
    outputs = classifier_output(x, num_classes, head=head, binary_sigmoid=False)
    return keras.Model(inputs, outputs, name="cam_cnn")


def _check_filters(filters: Sequence[int]) -> tuple[int, ...]:
    if (
        isinstance(filters, (str, bytes))
        or not isinstance(filters, Sequence)
        or not filters
        or not all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in filters)
    ):
        raise InvalidInputError(
            f"filters: expected a non-empty list of positive ints, got {filters!r}"
        )
    return tuple(int(f) for f in filters)
