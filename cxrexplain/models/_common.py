"""Shared pieces of the reference builders: argument checks and the classifier head.

The output rule (every builder documents which side it is on):

* a builder that follows a **sigmoid project** (doguilmak's two-block CNN, Maltanno's models,
  CheXNet) gives one sigmoid unit for ``num_classes=2`` (the probability of class 1) and
  ``num_classes`` softmax units otherwise;
* every other builder gives ``num_classes`` softmax units;
* ``head="softmax"`` or ``head="sigmoid"`` overrides the rule; ``head="sigmoid"`` with more than
  two classes gives one independent sigmoid per class (multi-label, CheXNet style).

Example:
    >>> from cxrexplain.models._common import output_units
    >>> output_units(2, head="auto", binary_sigmoid=True)
    (1, 'sigmoid')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import keras

from cxrexplain._checks import check_int, check_number
from cxrexplain.errors import InvalidInputError

__all__ = [
    "HEADS",
    "Head",
    "InputShape",
    "check_input_shape",
    "check_num_classes",
    "check_rate",
    "classifier_output",
    "output_dtype",
    "output_units",
]

Head: TypeAlias = Literal["auto", "softmax", "sigmoid"]
InputShape: TypeAlias = tuple[int, int, int]
HEADS = ("auto", "softmax", "sigmoid")


def check_input_shape(builder: str, input_shape: Sequence[int], *, min_size: int) -> InputShape:
    """Validate ``(height, width, channels)``: whole numbers, 1 or 3 channels, large enough.

    Args:
        builder: The builder's name, for messages.
        input_shape: The shape given by the user.
        min_size: The smallest height and width the builder takes.

    Returns:
        The shape as a tuple of three ints.

    Raises:
        InvalidInputError: The shape is malformed, has another channel count, or is smaller
            than ``min_size``.

    Example:
        >>> check_input_shape("cam_cnn", [64, 64, 1], min_size=8)
        (64, 64, 1)
    """
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in input_shape)
    ):
        raise InvalidInputError(
            f"input_shape: expected (height, width, channels) as three ints, got {input_shape!r}"
        )
    height, width, channels = (int(v) for v in input_shape)
    if channels not in (1, 3):
        raise InvalidInputError(
            f"input_shape: {builder} takes 1-channel (gray) or 3-channel images, got "
            f"{channels} channels"
        )
    if height < min_size or width < min_size:
        raise InvalidInputError(
            f"input_shape: {builder} needs images of at least {min_size}x{min_size} pixels, got "
            f"{height}x{width}"
        )
    return height, width, channels


def check_num_classes(num_classes: int) -> int:
    """Validate the number of classes (a whole number >= 2).

    Example:
        >>> check_num_classes(3)
        3
    """
    return check_int(num_classes, "num_classes", minimum=2)


def check_rate(value: float, name: str) -> float:
    """Validate a dropout rate in [0, 1).

    Example:
        >>> check_rate(0.3, "dropout")
        0.3
    """
    return check_number(value, name, low=0.0, high=1.0, high_open=True)


def output_units(num_classes: int, *, head: Head, binary_sigmoid: bool) -> tuple[int, str]:
    """The number of output units and their activation for ``num_classes`` classes.

    Args:
        num_classes: Number of classes (>= 2).
        head: ``"auto"`` (the project the builder follows decides), ``"softmax"`` or
            ``"sigmoid"``.
        binary_sigmoid: Whether the builder follows a project with one sigmoid output for two
            classes.

    Returns:
        ``(units, activation)``.

    Example:
        >>> output_units(3, head="auto", binary_sigmoid=True)
        (3, 'softmax')
    """
    if head not in HEADS:
        raise InvalidInputError(f"head: expected one of {', '.join(HEADS)}, got {head!r}")
    kind = head if head != "auto" else ("sigmoid" if binary_sigmoid and num_classes == 2 else
                                        "softmax")
    if kind == "sigmoid":
        return (1 if num_classes == 2 else num_classes), "sigmoid"
    return num_classes, "softmax"


def classifier_output(
    features: Any, num_classes: int, *, head: Head, binary_sigmoid: bool,
    name: str = "predictions",
) -> Any:
    """Apply the final ``Dense`` layer (float32 under a mixed-precision policy).

    Args:
        features: The tensor that feeds the output layer.
        num_classes: Number of classes (>= 2).
        head: See :func:`output_units`.
        binary_sigmoid: See :func:`output_units`.
        name: The output layer's name.

    Returns:
        The output tensor.

    Example:
        >>> import keras
        >>> out = classifier_output(keras.Input((8,)), 2, head="auto", binary_sigmoid=False)
        >>> tuple(out.shape)
        (None, 2)
    """
    units, activation = output_units(num_classes, head=head, binary_sigmoid=binary_sigmoid)
    return keras.layers.Dense(units, activation=activation, name=name,
                              dtype=output_dtype())(features)


def output_dtype() -> str | None:
    """``"float32"`` when the global dtype policy computes in 16 bits, else ``None``.

    Example:
        >>> output_dtype() is None
        True
    """
    policy = keras.config.dtype_policy()
    return "float32" if policy.compute_dtype in ("float16", "bfloat16") else None
