"""``dense_baseline``: Maltanno/Phase4_Project's fully connected baseline on flattened pixels.

Maltanno/Phase4_Project reports a dense baseline (recall 95%, accuracy 96%) whose
architecture was not published; its scratch notebook flattens 128x128x3 pixels scaled by
1/255. This builder is our reading of it: Flatten -> Dense(hidden[0], ReLU) -> Dropout ->
Dense(hidden[1], ReLU) -> ... -> output. It has no convolution, so no class activation map of
any kind can be computed from it; it exists as a baseline to compare the CNNs against.

Output rule: a sigmoid project (it predicts pneumonia with one probability): ``num_classes=2``
gives one sigmoid unit; more give softmax units. (The module was ``seed_dense`` before; that
import path still works, with a ``DeprecationWarning``.)

Example:
    >>> import cxrexplain as cx
    >>> cx.models.build("dense_baseline", input_shape=(32, 32, 1), num_classes=2).output_shape
    (None, 1)
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

__all__ = ["dense_baseline"]


@register(
    "dense_baseline",
    description="Flatten -> Dense 128 -> Dropout -> Dense 64 -> sigmoid (no convolution)",
    source="Maltanno/Phase4_Project, dense baseline",
    head="sigmoid",
    min_size=8,
)
def dense_baseline(
    input_shape: InputShape,
    num_classes: int,
    *,
    hidden: Sequence[int] = (128, 64),
    dropout: float = 0.3,
    head: Head = "auto",
) -> keras.Model:
    """Build the dense baseline.

    Args:
        input_shape: ``(height, width, channels)`` (the project used 128x128x3).
        num_classes: 2 gives one sigmoid unit; more give softmax units.
        hidden: Units of each hidden Dense layer.
        dropout: Dropout after each hidden layer.
        head: ``"auto"``, ``"softmax"`` or ``"sigmoid"``.

    Returns:
        The model ``dense_baseline``.

    Example:
        >>> dense_baseline((32, 32, 1), 3, hidden=(16,)).count_params()
        16451
    """
    check_input_shape("dense_baseline", input_shape, min_size=8)
    rate = check_rate(dropout, "dropout")
    if (
        isinstance(hidden, (str, bytes))
        or not isinstance(hidden, Sequence)
        or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)
    ):
        raise InvalidInputError(f"hidden: expected a list of positive ints, got {hidden!r}")
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for index, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(int(units), activation="relu", name=f"fc{index}")(x)
        x = keras.layers.Dropout(rate, name=f"dropout{index}")(x)
    outputs = classifier_output(x, num_classes, head=head, binary_sigmoid=True)
    return keras.Model(inputs, outputs, name="dense_baseline")
