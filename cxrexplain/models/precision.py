"""Mixed precision for a model that was built in float32.

A Keras dtype policy applies when a layer is created, so a float32 model cannot simply be
switched to float16 compute. :func:`with_dtype_policy` rebuilds a Functional or Sequential
model (nested backbones included) with every layer under the policy except the output layer,
which stays float32 (numerically stable softmax/sigmoid and loss), copies the weights, and
leaves Keras' global policy as it was. :func:`cxrexplain.training.fit` uses it for
``mixed_precision=True``; ``build(..., mixed_precision=True)`` builds under the policy directly.

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2)
    >>> mixed = with_dtype_policy(model, "mixed_float16")
    >>> mixed.get_layer("block1_conv").compute_dtype, mixed.get_layer("predictions").compute_dtype
    ('float16', 'float32')
"""

from __future__ import annotations

from typing import Any

import keras

from cxrexplain import _keras_utils
from cxrexplain.errors import ModelStructureError
from cxrexplain.models.registry import dtype_policy_scope

__all__ = ["is_mixed_precision", "with_dtype_policy"]


def is_mixed_precision(model: keras.Model) -> bool:
    """Whether any layer of the model (nested ones included) computes in 16 bits.

    Example:
        >>> is_mixed_precision(model), is_mixed_precision(with_dtype_policy(model))
        (False, True)
    """
    return any(
        getattr(layer, "compute_dtype", "float32") in ("float16", "bfloat16")
        for _, layer in _keras_utils.leaf_layers(model)
    )


def with_dtype_policy(model: keras.Model, policy: str = "mixed_float16") -> keras.Model:
    """A copy of ``model`` whose layers run under ``policy``, the output layer in float32.

    Args:
        model: A Functional or Sequential model (nested models are rebuilt too).
        policy: A Keras dtype policy name (``"mixed_float16"``, ``"mixed_bfloat16"``,
            ``"float32"``).

    Returns:
        A new model with the same weights (variables stay float32 under mixed policies). The
        global dtype policy is unchanged afterwards.

    Raises:
        ModelStructureError: The model is subclassed (it cannot be cloned).

    Example:
        >>> mixed = with_dtype_policy(model)
        >>> mixed.dtype_policy.name, mixed.get_layer("block1_conv").dtype_policy.name
        ('mixed_float16', 'mixed_float16')
    """
    if not isinstance(model, (keras.Sequential, keras.Model)) or not _is_clonable(model):
        raise ModelStructureError(
            f"model: {model.name} is a subclassed model, which cannot be rebuilt under another "
            "dtype policy; build it under the policy (keras.config.set_dtype_policy) instead"
        )
    output = _keras_utils.output_layer(model)

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        config["dtype"] = "float32" if layer is output else policy
        return layer.__class__.from_config(config)

    with dtype_policy_scope(policy):
        copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


def _is_clonable(model: keras.Model) -> bool:
    if isinstance(model, keras.Sequential):
        return True
    return type(model).__name__ == "Functional" or (
        hasattr(model, "_operations") and hasattr(model, "_nodes_by_depth")
    )
