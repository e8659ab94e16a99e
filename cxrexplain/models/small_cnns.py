"""Faithful Keras ports of three published small CNNs with a Flatten -> Dense head.

They keep each project's layers, padding and head (Flatten -> Dense), so Grad-CAM works on
them but CAM does not (use ``cam_cnn`` for that). Their training settings come from
:func:`cxrexplain.models.compile_for`. Their former names, ``seed_binary_cnn``,
``seed_softmax_cnn`` and ``seed_proposed_cnn``, still build them, with a
``DeprecationWarning``.

* ``two_block_cnn`` (doguilmak/Classify-X-Ray-Images-with-Convolutional-Neural-Network,
  64x64x3 there): two Conv 3x3 / MaxPool blocks, Flatten -> Dense 128. A sigmoid project, so
  ``num_classes=2`` gives one sigmoid unit (binary cross-entropy); more classes give softmax
  units. 813,217 parameters at 64x64x3, as the project's logged summary.
* ``four_block_cnn`` (shafayet98/ML-Pneumonia-Classification, 80x80x3): four Conv 3x3 /
  MaxPool blocks, Flatten -> Dropout -> Dense 512 -> Dense 264; ``num_classes`` softmax units
  (RMSprop). 931,130 parameters at 80x80x3.
* ``five_block_cnn`` (SaraElwatany/Pneumonia-Detection-using-Deep-learning-Approach...'s
  "proposed CNN", 150x150x3): five Conv 3x3 blocks, Flatten -> Dense 128; ``num_classes``
  softmax units. Its PyTorch ``MaxPool2d(kernel 2, stride 2, padding 1, dilation 2)`` is
  :class:`~cxrexplain.models.layers.DilatedMaxPooling2D`, which computes it exactly (same
  windows, ``-inf`` padding); 150x150 gives the project's 5x5x256 map and 6,400 flattened
  values. The project's ``Linear -> ReLU -> Softmax`` output (a ReLU on the logits, a bug: a
  class whose logit is negative gets no gradient) is off by default; ``relu_before_softmax=
  True`` restores it. The project normalised inputs with ImageNet mean/std; this port takes
  [0, 1] inputs as every cxrexplain model (it trains from scratch, so only the scale changes).

Example:
    >>> import cxrexplain as cx
    >>> cx.models.build("two_block_cnn", input_shape=(64, 64, 3), num_classes=2).count_params()
    813217
"""

from __future__ import annotations

import keras

from cxrexplain.errors import InvalidInputError
from cxrexplain.models._common import (
    Head,
    InputShape,
    check_input_shape,
    check_rate,
    classifier_output,
    output_dtype,
    output_units,
)
from cxrexplain.models.layers import DilatedMaxPooling2D
from cxrexplain.models.registry import register

__all__ = ["five_block_cnn", "four_block_cnn", "two_block_cnn"]


@register(
    "two_block_cnn",
    description="2x (Conv3x3 valid + MaxPool), Flatten -> Dense 128 -> sigmoid",
    source="doguilmak/Classify-X-Ray-Images-with-Convolutional-Neural-Network",
    head="sigmoid",
    min_size=10,
    former=("seed_binary_cnn",),
)
def two_block_cnn(
    input_shape: InputShape, num_classes: int, *, head: Head = "auto"
) -> keras.Model:
    """Build doguilmak's two-block CNN.

    Args:
        input_shape: ``(height, width, channels)``, at least 10x10 (the project used
            64x64x3).
        num_classes: 2 gives one sigmoid unit; more give softmax units.
        head: ``"auto"``, ``"softmax"`` or ``"sigmoid"``.

    Returns:
        The model ``two_block_cnn``.

    Example:
        >>> two_block_cnn((64, 64, 3), 2).output_shape
        (None, 1)
    """
    check_input_shape("two_block_cnn", input_shape, min_size=10)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for index in (1, 2):
        x = keras.layers.Conv2D(32, 3, activation="relu", name=f"conv{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    outputs = classifier_output(x, num_classes, head=head, binary_sigmoid=True)
    return keras.Model(inputs, outputs, name="two_block_cnn")


@register(
    "four_block_cnn",
    description="4x (Conv3x3 valid + MaxPool), Flatten -> Dropout -> Dense 512 -> 264 -> softmax",
    source="shafayet98/ML-Pneumonia-Classification",
    head="softmax",
    min_size=46,
    former=("seed_softmax_cnn",),
)
def four_block_cnn(
    input_shape: InputShape, num_classes: int, *, dropout: float = 0.2, head: Head = "auto"
) -> keras.Model:
    """Build shafayet98's four-block CNN.

    Args:
        input_shape: ``(height, width, channels)``, at least 46x46 (the project used
            80x80x3).
        num_classes: Number of softmax units.
        dropout: Dropout after the flattening (the project's 0.2).
        head: ``"auto"``, ``"softmax"`` or ``"sigmoid"``.

    Returns:
        The model ``four_block_cnn``.

    Example:
        >>> four_block_cnn((80, 80, 3), 2).count_params()
        931130
    """
    check_input_shape("four_block_cnn", input_shape, min_size=46)
    rate = check_rate(dropout, "dropout")
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for index, filters in enumerate((64, 32, 128, 128), start=1):
        x = keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv{index}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(rate, name="dropout")(x)
    x = keras.layers.Dense(512, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(264, activation="relu", name="fc2")(x)
    outputs = classifier_output(x, num_classes, head=head, binary_sigmoid=False)
    return keras.Model(inputs, outputs, name="four_block_cnn")


@register(
    "five_block_cnn",
    description="5x Conv3x3 (same) with MaxPool and exact dilated MaxPool, Flatten -> Dense 128 "
    "-> softmax",
    source="SaraElwatany/Pneumonia-Detection-using-Deep-learning-Approach-and-using-Grad-CAM-"
    "for-Visualization, proposed CNN",
    head="softmax",
    min_size=22,
    former=("seed_proposed_cnn",),
)
def five_block_cnn(
    input_shape: InputShape,
    num_classes: int,
    *,
    relu_before_softmax: bool = False,
    head: Head = "auto",
) -> keras.Model:
    """Build SaraElwatany's proposed five-block CNN.

    Args:
        input_shape: ``(height, width, channels)``, at least 22x22 (the project used
            150x150x3).
        num_classes: Number of softmax units.
        relu_before_softmax: Reproduce the project's ``Linear -> ReLU -> Softmax`` output
            (off: the ReLU stops the gradient of every class whose logit is negative).
        head: ``"auto"``, ``"softmax"`` or ``"sigmoid"``.

    Returns:
        The model ``five_block_cnn``.

    Example:
        >>> five_block_cnn((150, 150, 3), 2).get_layer("flatten").output.shape
        (None, 6400)
    """
    check_input_shape("five_block_cnn", input_shape, min_size=22)
    if not isinstance(relu_before_softmax, bool):
        raise InvalidInputError(
            f"relu_before_softmax: expected True or False, got {relu_before_softmax!r}"
        )
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    plan = (  # filters, dropout after the conv, pooling
        (32, None, "max"),
        (64, 0.1, "dilated"),
        (64, None, "max"),
        (128, 0.2, "dilated"),
        (256, 0.2, "max"),
    )
    for index, (filters, rate, pool) in enumerate(plan, start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"conv{index}")(x)
        if rate is not None:
            x = keras.layers.Dropout(rate, name=f"dropout{index}")(x)
        if pool == "max":
            x = keras.layers.MaxPooling2D(2, name=f"pool{index}")(x)
        else:
            x = DilatedMaxPooling2D(2, strides=2, padding=1, dilation=2, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.2, name="dropout_fc")(x)
    if not relu_before_softmax:
        outputs = classifier_output(x, num_classes, head=head, binary_sigmoid=False)
    else:
        units, activation = output_units(num_classes, head=head, binary_sigmoid=False)
        if activation != "softmax":
            raise InvalidInputError(
                "relu_before_softmax: the project's ReLU sits before a softmax; it cannot be "
                f"combined with head={head!r}"
            )
        x = keras.layers.Dense(units, name="logits")(x)
        x = keras.layers.Activation("relu", name="logits_relu")(x)
        outputs = keras.layers.Activation("softmax", name="predictions", dtype=output_dtype())(x)
    return keras.Model(inputs, outputs, name="five_block_cnn")
