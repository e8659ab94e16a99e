"""What is differentiated: the class score before the final softmax/sigmoid (private).

The explainers never rebuild the user's model. While the compiled pass is traced, a hook on
the model's head records the input of its final activation (the logits); when that cannot be
done (a softmax inside a ``Lambda``), the score is recovered from the outputs. This module
owns those rules (see ARCHITECTURE.md, "Rules of the math"):

* one sigmoid unit is a two-class model: target 1 is the logit, target 0 its negative;
* K > 1 sigmoid units are multi-label: target k is logit k;
* softmax is multi-class: target c is logit c.

Example:
    >>> import tensorflow as tf
    >>> target_scores(tf.constant([[2.0], [3.0]]), tf.constant([1, 0])).numpy().tolist()
    [2.0, -3.0]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf

from cxrexplain import _keras_utils

__all__ = ["Captured", "logit_hook", "logits_from_outputs", "target_scores"]

_EPS = 1e-7


@dataclass
class Captured:
    """What the interception hooks record while the forward pass is traced."""

    activations: Any = None
    logits: Any = None
    inputs: dict[int, Any] = field(default_factory=dict)
    """The inputs of intercepted layers, by ``id(layer)`` (a lung crop's films)."""


def logit_hook(head: keras.layers.Layer, captured: Captured) -> Any:
    """A hook for :func:`~cxrexplain.explain.layers.intercept` that records the logits.

    Args:
        head: The layer that produces the model's output.
        captured: Where the logits are recorded.

    Returns:
        The hook, or None for a head without a final softmax/sigmoid (its output is the
        score already).
    """
    if isinstance(head, keras.layers.Softmax) or (
        isinstance(head, keras.layers.Activation)
        and _keras_utils.activation_name(head.activation) in ("softmax", "sigmoid")
    ):
        def record_input(original: Any, *args: Any, **kwargs: Any) -> Any:
            captured.logits = args[0] if args else next(iter(kwargs.values()))
            return original(*args, **kwargs)

        return record_input
    activation = getattr(head, "activation", None)
    if activation is None or _keras_utils.activation_name(activation) not in (
        "softmax", "sigmoid"
    ):
        return None

    def swap_activation(original: Any, *args: Any, **kwargs: Any) -> Any:
        saved = head.activation
        object.__setattr__(head, "activation", keras.activations.linear)
        try:
            logits = original(*args, **kwargs)
        finally:
            object.__setattr__(head, "activation", saved)
        captured.logits = logits
        return saved(logits)

    return swap_activation


def logits_from_outputs(outputs: tf.Tensor, captured: tf.Tensor | None, *, activation: str,
                        owner: str) -> tf.Tensor:
    """The scores before the final activation: the captured logits, else recovered.

    A sigmoid output is inverted exactly. A softmax whose input could not be captured gives
    ``log p``, which differs from the logit by ``logsumexp(z)`` (it depends on the image), so
    its gradient is not Grad-CAM's: a ``UserWarning`` says so, once per trace.

    Args:
        outputs: The model's outputs ``(N, units)``.
        captured: The logits recorded by :func:`logit_hook`, or None.
        activation: The classifier's head: ``"softmax"``, ``"sigmoid"`` or ``"linear"``.
        owner: The explainer's name, for the warning.

    Returns:
        ``(N, units)`` float32.
    """
    if captured is not None:
        return tf.cast(captured, tf.float32)
    outputs = tf.cast(outputs, tf.float32)
    if activation == "linear":
        return outputs
    clipped = tf.clip_by_value(outputs, _EPS, 1.0 - _EPS)
    if activation == "sigmoid":
        return tf.math.log(clipped) - tf.math.log1p(-clipped)  # exact inverse of sigmoid
    warnings.warn(
        f"{owner}: the scores before the model's softmax could not be "
        "captured (its last layer does not expose them, e.g. a Lambda head), so the "
        "log-probability is differentiated instead; maps can differ from Grad-CAM on the "
        "logits. Put the softmax in a Dense(activation='softmax'), Activation or Softmax "
        "layer to get the logit scores.",
        UserWarning,
        stacklevel=2,
    )
    return tf.math.log(clipped)


def target_scores(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """Each image's score of its target class before softmax/sigmoid.

    One sigmoid unit is a two-class model: target 1 is the logit, target 0 its negative.

    Args:
        logits: ``(N, units)`` pre-activation outputs.
        targets: ``(N,)`` int target classes.

    Returns:
        ``(N,)`` float32.
    """
    logits = tf.cast(logits, tf.float32)
    if logits.shape[-1] == 1:
        return tf.where(targets == 1, logits[:, 0], -logits[:, 0])
    return tf.gather(logits, targets, axis=1, batch_dims=1)
