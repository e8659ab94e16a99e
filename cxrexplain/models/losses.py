"""Losses the reference recipes need beyond Keras' own, and the loss that fits a model's head.

Keras 3's ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; integer labels (what
:func:`cxrexplain.data.image_folder` yields) with label smoothing use
:class:`SmoothedSparseCategoricalCrossentropy`, registered for ``.keras`` files.

Example:
    >>> import keras
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=3)
    >>> type(loss_for(model)).__name__
    'SparseCategoricalCrossentropy'
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from cxrexplain import _keras_utils
from cxrexplain.errors import InvalidInputError, ModelStructureError

__all__ = ["SmoothedSparseCategoricalCrossentropy", "head_of", "loss_for"]


@keras.saving.register_keras_serializable(package="cxrexplain")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):  # type: ignore[misc]
    """Categorical cross-entropy of integer labels, with optional label smoothing.

    With ``label_smoothing=e`` and K classes the target of the true class is ``1 - e + e / K``
    and of every other class ``e / K`` (as ``keras.losses.CategoricalCrossentropy``).

    Args:
        from_logits: Whether predictions are logits rather than probabilities.
        label_smoothing: Smoothing in [0, 1).
        name: The loss's name.
        **kwargs: ``reduction`` and ``dtype``, as for any Keras loss.

    Example:
        >>> import numpy as np
        >>> loss = SmoothedSparseCategoricalCrossentropy(label_smoothing=0.0)
        >>> round(float(loss(np.array([1]), np.array([[0.5, 0.5]]))), 4)
        0.6931
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        name: str = "smoothed_sparse_categorical_crossentropy",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise InvalidInputError(
                f"label_smoothing: expected a value in [0, 1), got {label_smoothing!r}"
            )
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-sample loss for integer labels ``(N,)`` or ``(N, 1)``."""
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments."""
        config: dict[str, Any] = super().get_config()
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing)
        return config


def head_of(model: keras.Model) -> tuple[int, str]:
    """``(units, activation)`` of a model's output, activation in softmax/sigmoid/linear.

    Raises:
        ModelStructureError: The output is not ``(batch, units)`` or cannot be read.

    Example:
        >>> head_of(cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=3))
        (3, 'softmax')
        >>> head_of(cx.models.build("two_block_cnn", input_shape=(32, 32, 1), num_classes=2))
        (1, 'sigmoid')
    """
    units = _keras_utils.output_units(model)
    if units is None:
        raise ModelStructureError(
            f"model: cannot read the output shape of {model.name}; build or call it first"
        )
    activation = _keras_utils.head_activation(model) or "linear"
    return units, activation


def loss_for(
    model: keras.Model, *, label_smoothing: float = 0.0, from_logits: bool | None = None
) -> keras.losses.Loss:
    """The cross-entropy that fits a model's head, for integer class labels.

    * one unit: binary cross-entropy (sigmoid, or logits for a linear unit);
    * K units with sigmoid: binary cross-entropy per finding (multi-hot labels);
    * K units with softmax or linear: sparse categorical cross-entropy.

    Args:
        model: A model with one ``(batch, units)`` output.
        label_smoothing: Label smoothing in [0, 1).
        from_logits: Override whether the loss treats outputs as logits (default: only a
            linear head gives logits).

    Returns:
        A Keras loss object.

    Example:
        >>> import cxrexplain as cx
        >>> m = cx.models.build("two_block_cnn", input_shape=(32, 32, 1), num_classes=2)
        >>> type(loss_for(m)).__name__
        'BinaryCrossentropy'
    """
    units, activation = head_of(model)
    logits = activation == "linear" if from_logits is None else bool(from_logits)
    if units == 1 or activation == "sigmoid":
        return keras.losses.BinaryCrossentropy(from_logits=logits,
                                               label_smoothing=label_smoothing)
    if label_smoothing:
        return SmoothedSparseCategoricalCrossentropy(
            from_logits=logits, label_smoothing=label_smoothing
        )
    return keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
