"""DeepLIFT with the rescale rule (Shrikumar et al., ICML 2017).

Each input's contribution to the change of the target score from a reference input ``x0``
(black by default, or given) to the image ``x``: ``C_i = (x_i - x0_i) m_i``, the multipliers
``m`` propagated backward from the score like a gradient, but with each nonlinearity's
derivative replaced by its secant between the two inputs (the rescale rule):

* ReLU: ``m_in = m_out (relu(a) - relu(a0)) / (a - a0)`` (the derivative where
  ``|a - a0| < 1e-10``);
* max pooling (Captum's rule): each window's output change ``y - y0`` goes to the input
  that is the window's maximum for ``x`` when ``y >= y0``, else to the one that is the
  maximum for ``x0``, divided by that input's change (nonzero there unless ``y = y0``), the
  gradient where ``a = a0``;
* the linear layers (Conv2D, Dense, BatchNormalization at inference, average pooling,
  Flatten, Dropout, the builders' gray-to-RGB copies and preprocessing): their Jacobian, which
  is exact for differences.

So the contributions sum to the change of the score, ``sum_i C_i = f(x) - f(x0)``
(summation to delta), biases included. ``f`` is the score before softmax/sigmoid, as for
Grad-CAM. The model is read as a chain of its layers and recomputed in float32 from its own
weights (:mod:`cxrexplain.explain._relevance`: any other layer raises
``ModelStructureError``); ``x`` and ``x0`` run as one batch, and one explicit backward pass
gives every image's multipliers. The map is the contributions summed over the channels, then
ReLU and per-image scaling to [0, 1] as for every explainer.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.DeepLIFT(clf).explain(batch)
    >>> exp.method, exp.layer, exp.heatmaps.shape
    ('deeplift', 'input', (4, 32, 32))
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain._checks import describe
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain._relevance import ChainExplainer, Unit, score_gradient, vjp

__all__ = ["DeepLIFT"]

_TINY = 1e-10


class DeepLIFT(ChainExplainer):
    """DeepLIFT (rescale rule): contributions to the score's change from a reference image.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model`` made of Conv2D, Dense,
            BatchNormalization, ReLU, pooling, Flatten and Dropout layers.
        baseline: The reference ``x0``: a value for every pixel (default 0, black) or an
            array that broadcasts to one image ``(H, W, C)``, in the model's input scale.
        layer: ``None``: the maps are over the input pixels.

    Raises:
        ModelStructureError: A layer without a rule (the first one is named), or a model that
            is not the chain of its layers.
        InvalidInputError: A baseline that is not a finite number or array of at most 3 axes.

    Example:
        >>> contributions = DeepLIFT(clf, baseline=0.0).attribute(batch, targets=1)
        >>> contributions.shape
        (4, 32, 32, 1)
    """

    name: ClassVar[str] = "deeplift"
    aliases: ClassVar[tuple[str, ...]] = ("deep-lift", "deeplift-rescale")
    needs_gradients: ClassVar[bool] = False

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        baseline: float | np.ndarray = 0.0,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        try:
            values = np.asarray(baseline, dtype=np.float32)
        except (TypeError, ValueError):
            values = np.asarray(np.nan, np.float32)
        if values.ndim > 3 or not np.isfinite(values).all():
            raise InvalidInputError(
                "baseline: expected a number or a finite array that broadcasts to one image "
                f"(H, W, C), got {describe(baseline)}"
            )
        self.baseline = values
        super().__init__(model, layer=layer)

    def _options(self) -> dict[str, Any]:
        return {"baseline": self.baseline}

    def _pass_key(self) -> tuple[Any, ...]:
        digest = hashlib.sha1(self.baseline.tobytes()).hexdigest()
        return (*ChainExplainer._pass_key(self), self.baseline.shape, digest)

    def _attributions(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """``(x - x0) * m``, the multipliers ``m`` from the score down, batched."""
        assert self._chain is not None
        images = tf.cast(images, tf.float32)
        reference = tf.broadcast_to(tf.constant(self.baseline), tf.shape(images))
        count = tf.shape(images)[0]
        values = self._chain.forward(tf.concat([images, reference], 0))
        multipliers = score_gradient(values[-1][:count], targets)
        for unit, both in zip(reversed(self._chain.units), reversed(values[:-1]), strict=True):
            multipliers = _multipliers(unit, both[:count], both[count:], multipliers)
        return (images - reference) * multipliers


def _multipliers(unit: Unit, a: tf.Tensor, a0: tf.Tensor, upstream: tf.Tensor) -> tf.Tensor:
    """The multipliers of a unit's input from those of its output (rescale rule)."""
    delta = a - a0
    moved = tf.abs(delta) > _TINY
    if unit.kind == "relu":
        secant = tf.math.divide_no_nan(tf.nn.relu(a) - tf.nn.relu(a0), delta)
        slope = tf.where(moved, tf.clip_by_value(secant, 0.0, 1.0), tf.cast(a > 0, tf.float32))
        return upstream * slope
    if unit.kind == "maxpool":
        output, reference = unit.run(a), unit.run(a0)
        top = tf.maximum(output, reference)
        routed = (vjp(unit.run, a, upstream * (top - reference))
                  + vjp(unit.run, a0, upstream * (output - top)))
        return tf.where(moved, tf.math.divide_no_nan(routed, delta),
                        vjp(unit.run, a, upstream))
    return vjp(unit.run, a, upstream)
