"""``lung_unet``: a small U-Net that outputs a lung mask (one sigmoid per pixel).

The classic U-Net of Ronneberger et al. (MICCAI 2015), narrowed for chest films and small data:
every block is two Conv 3x3 (same padding, no bias) -> BatchNormalization(momentum=0.9) ->
ReLU; the encoder halves the resolution with MaxPool 2x2 after each block, the decoder doubles
it with bilinear upsampling and concatenates the encoder block of the same size (the skip
connection). A 1x1 convolution with a sigmoid gives the probability that a pixel is lung; it
computes in float32 even under a mixed-precision policy.

BatchNorm momentum 0.9 (not Keras' 0.99) because the lung-mask sets users train on are small
(a few hundred films, a few dozen steps an epoch): the moving statistics must settle within
the run. Height and width must be multiples of ``2 ** len(filters[:-1])`` (16 by default) so
that the skips line up.

Layer names are stable: ``down{i}_conv{j}``/``_bn{j}``/``_relu{j}``, ``down{i}_pool``,
``bottom_*``, ``up{i}_resize``, ``up{i}_concat``, ``up{i}_conv{j}``..., ``mask`` (with
``downsample``: ``downsample`` first, then ``mask_logits``, ``upsample``, ``mask``).

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("lung_unet", input_shape=(64, 64, 1))
    >>> model.output_shape
    (None, 64, 64, 1)
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from cxrexplain.errors import InvalidInputError
from cxrexplain.models._common import InputShape, check_input_shape, check_rate
from cxrexplain.models.registry import register

__all__ = ["lung_unet"]

_DEFAULT_FILTERS = (16, 32, 64, 128, 256)


@register(
    "lung_unet",
    description="U-Net (4 down, 4 up, Conv3x3+BN(0.9)+ReLU x2 per block), sigmoid lung mask",
    source="Ronneberger et al. 2015 (U-Net), narrowed for chest-film lung masks",
    head="mask",
    min_size=16,
)
def lung_unet(
    input_shape: InputShape,
    num_classes: int = 1,
    *,
    filters: Sequence[int] = _DEFAULT_FILTERS,
    batchnorm_momentum: float = 0.9,
    dropout: float = 0.0,
    downsample: int = 1,
) -> keras.Model:
    """Build the lung U-Net.

    Args:
        input_shape: ``(height, width, channels)``; height and width multiples of
            ``2 ** (len(filters) - 1)``.
        num_classes: Number of mask channels (1: lung or not).
        filters: Filters of each level, from the full-resolution level down to the bottom
            (at least two levels).
        batchnorm_momentum: BatchNormalization momentum.
        dropout: Spatial dropout rate at the bottom of the U (0: none).
        downsample: Run the U at ``1 / downsample`` of the input size (1, 2 or 4): the input
            is average-pooled first and the mask's logits are upsampled bilinearly to the
            input size before the sigmoid. Lung borders are smooth, so a U at 128 px under a
            256 px input loses little and costs a quarter.

    Returns:
        The functional model ``lung_unet``; its output ``(batch, H, W, num_classes)`` holds
        probabilities in [0, 1].

    Raises:
        InvalidInputError: Bad filters, a size that is not a multiple of the pooling factor.

    Example:
        >>> model = lung_unet((32, 32, 1), filters=(4, 8))
        >>> model.get_layer("up1_concat").output.shape
        (None, 32, 32, 12)
    """
    widths = _check_filters(filters)
    if downsample not in (1, 2, 4) or isinstance(downsample, bool):
        raise InvalidInputError(f"downsample: expected 1, 2 or 4, got {downsample!r}")
    factor = 2 ** (len(widths) - 1) * downsample
    shape = check_input_shape("lung_unet", input_shape, min_size=factor)
    if shape[0] % factor or shape[1] % factor:
        raise InvalidInputError(
            f"input_shape: lung_unet with {len(widths)} levels needs a height and width that "
            f"are multiples of {factor}, got {shape[0]}x{shape[1]}"
        )
    momentum = check_rate(batchnorm_momentum, "batchnorm_momentum")
    rate = check_rate(dropout, "dropout")
    inputs = keras.Input(shape, name="image")
    x = inputs
    if downsample > 1:
        x = keras.layers.AveragePooling2D(downsample, name="downsample")(x)
    skips = []
    for level, width in enumerate(widths[:-1], start=1):
        x = _block(x, width, f"down{level}", momentum)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = _block(x, widths[-1], "bottom", momentum)
    if rate:
        x = keras.layers.SpatialDropout2D(rate, name="bottom_dropout")(x)
    for level in range(len(widths) - 1, 0, -1):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}_resize")(x)
        x = keras.layers.Concatenate(name=f"up{level}_concat")([x, skips[level - 1]])
        x = _block(x, widths[level - 1], f"up{level}", momentum)
    if downsample > 1:
        x = keras.layers.Conv2D(num_classes, 1, dtype="float32", name="mask_logits")(x)
        x = keras.layers.UpSampling2D(downsample, interpolation="bilinear", dtype="float32",
                                      name="upsample")(x)
        outputs = keras.layers.Activation("sigmoid", dtype="float32", name="mask")(x)
    else:
        outputs = keras.layers.Conv2D(num_classes, 1, activation="sigmoid", dtype="float32",
                                      name="mask")(x)
    return keras.Model(inputs, outputs, name="lung_unet")


def _block(x: keras.KerasTensor, width: int, name: str, momentum: float) -> keras.KerasTensor:
    for index in (1, 2):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False,
                                name=f"{name}_conv{index}")(x)
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{index}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{index}")(x)
    return x


def _check_filters(filters: Sequence[int]) -> tuple[int, ...]:
    if (
        isinstance(filters, (str, bytes))
        or not isinstance(filters, Sequence)
        or len(filters) < 2
        or not all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in filters)
    ):
        raise InvalidInputError(
            f"filters: expected a list of at least two positive ints, got {filters!r}"
        )
    return tuple(int(f) for f in filters)
