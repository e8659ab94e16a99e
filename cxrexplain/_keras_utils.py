"""Small helpers that read a Keras model's structure (private; shared by several modules)."""

from __future__ import annotations

from typing import Any

import keras

from cxrexplain.errors import ModelStructureError

__all__ = [
    "activation_name",
    "head_activation",
    "input_spec",
    "leaf_layers",
    "output_layer",
    "output_units",
    "to_probabilities",
]


def activation_name(function: Any) -> str:
    """The name of a Keras activation function ('softmax', 'sigmoid', 'linear', ...)."""
    if function is None:
        return "linear"
    name = getattr(function, "__name__", None) or type(function).__name__
    return str(name).lower()


def leaf_layers(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(path, layer)`` for every layer that is not itself a model, nested models walked.

    Paths join the names with ``/`` (``"vgg16/block5_conv3"``), in the models' layer order.
    """
    found: list[tuple[str, Any]] = []
    for layer in getattr(model, "layers", None) or []:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            found.extend(leaf_layers(layer, f"{path}/"))
        else:
            found.append((path, layer))
    return found


def output_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The layer that produces the model's (single) output, descending into nested models."""
    layer: Any = None
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if outputs:
        history = getattr(outputs[0], "_keras_history", None)
        layer = getattr(history, "operation", None) if history is not None else None
    if layer is None:
        layers = getattr(model, "layers", None) or []
        layer = layers[-1] if layers else None
    if isinstance(layer, keras.Model) and layer is not model:
        inner = output_layer(layer)
        return inner if inner is not None else layer
    return layer


def head_activation(model: keras.Model) -> str | None:
    """'softmax', 'sigmoid' or 'linear' for the model's final activation; None if unknown."""
    layer = output_layer(model)
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if hasattr(layer, "activation"):
        name = activation_name(layer.activation)
        if name in ("softmax", "sigmoid", "linear"):
            return name
        if name in ("log_softmax",):
            return None
        return "linear"
    return "linear"


def input_spec(model: keras.Model) -> tuple[int | None, int | None, int | None] | None:
    """(height, width, channels) of the model's single image input, or None if not built."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        shape = getattr(model, "_build_shapes_dict", None)
        return None if not shape else _shape_from_dict(shape)
    if len(inputs) != 1:
        raise ModelStructureError(
            f"model: expected one image input, got {len(inputs)} inputs"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4:
        raise ModelStructureError(
            f"model: expected an image input of shape (batch, H, W, C), got {shape}"
        )
    return shape[1], shape[2], shape[3]


def _shape_from_dict(shapes: dict[str, Any]) -> tuple[int | None, int | None, int | None] | None:
    values = list(shapes.values())
    if len(values) != 1 or values[0] is None or len(values[0]) != 4:
        return None
    shape = tuple(values[0])
    return shape[1], shape[2], shape[3]


def output_units(model: keras.Model) -> int | None:
    """Number of units of the model's single output, or None when it cannot be read."""
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        return None
    if len(outputs) != 1:
        raise ModelStructureError(f"model: expected one output, got {len(outputs)} outputs")
    shape = tuple(outputs[0].shape)
    if len(shape) != 2 or shape[1] is None:
        raise ModelStructureError(
            f"model: expected an output of shape (batch, classes), got {shape}"
        )
    return int(shape[1])


def to_probabilities(outputs: Any, *, activation: str, multilabel: bool) -> Any:
    """Class probabilities ``(N, K)`` from raw model outputs ``(N, units)``.

    Works on NumPy arrays and on backend tensors inside a compiled function (keras.ops).
    One sigmoid unit becomes two columns ``[1 - p, p]``; a linear head gets a softmax (or a
    sigmoid for one unit or a multi-label head).
    """
    raw = keras.ops.cast(outputs, "float32")
    units = raw.shape[-1]
    if activation == "linear":
        raw = keras.ops.sigmoid(raw) if units == 1 or multilabel else keras.ops.softmax(raw)
    if units == 1:
        raw = keras.ops.concatenate([1.0 - raw, raw], axis=-1)
    return raw
