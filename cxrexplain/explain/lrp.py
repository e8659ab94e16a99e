"""Layer-wise relevance propagation (Bach et al., PLoS ONE 2015; Montavon et al. 2019).

The target class score before softmax/sigmoid (the logit ``z_c``, as Grad-CAM) is the relevance
of the output, and one explicit backward pass hands each layer's relevance down to its inputs,
layer by layer, over the model read as a chain of its layers
(:mod:`cxrexplain.explain._relevance`: Conv2D, Dense, BatchNormalization, ReLU, pooling,
Flatten, Dropout, nested models of them; any other layer raises ``ModelStructureError``).
Each rule is applied by the "gradient x input" step of Montavon et al. (2019, sec. 10.2):
``z = layer(a)``, ``s = R / (z + eps sign z)``, ``c = J^T s`` (one vector-Jacobian product),
``R_a = a * c``, batched over the images and computed in float32 from the layer's weights:

* a **kernel** (Conv2D or Dense, with the BatchNormalization layers right after it fused in,
  the usual canonisation): the epsilon rule
  ``R_i = sum_j a_i w_ij / (z_j + eps sign z_j) R_j``, ``z_j`` with the bias;
  with ``rule="alpha_beta"``, every Conv2D takes the alpha-beta rule instead,
  ``R_i = sum_j (alpha (a_i w_ij)^+ / z_j^+ - beta (a_i w_ij)^- / z_j^-) R_j``, ``z_j^{+/-}``
  the sums of the positive / negative contributions without the bias (the fused weights
  ``w`` include the batch norm's scale), and Dense layers keep the epsilon rule;
  ``alpha=1, beta=0`` (the default) is the z+ rule;
* **ReLU**: the relevance passes unchanged (a neuron's relevance is its activation's);
* **max pooling**: winner takes all (each window's relevance goes to its maximum);
* **average and global average pooling**: in proportion to the inputs, ``R_i = a_i / z_j R_j``
  (LRP-0: a pooling layer has no bias and absorbs nothing);
* the layers that move, copy or rescale values (Flatten, Dropout, padding, the builders'
  gray-to-RGB copies and ImageNet preprocessing): each output's relevance goes back to the
  value it came from (LRP-0 on the bias-free part, ``z = f(a) - f(0)``), so an input's
  relevance is that of its preprocessed value.

``eps`` enters only the kernels' rule.

Relevance is conserved, ``sum_i R_i = z_c``, up to what the biases absorb and ``eps``: on a
network without biases it sums to the score as ``eps -> 0``. The map is the relevance summed
over the channels, then ReLU and per-image scaling to [0, 1] as for every explainer.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.LRP(clf).explain(batch)
    >>> exp.method, exp.layer, exp.heatmaps.shape
    ('lrp', 'input', (4, 32, 32))
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import tensorflow as tf

from cxrexplain._checks import check_choice, check_number
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain._relevance import (
    ChainExplainer,
    Unit,
    score_gradient,
    stabilised,
    vjp,
)

__all__ = ["LRP"]

RULES = ("epsilon", "alpha_beta")


class LRP(ChainExplainer):
    """Layer-wise relevance propagation: the epsilon rule, or alpha-beta on convolutions.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model`` made of Conv2D, Dense,
            BatchNormalization, ReLU, pooling, Flatten and Dropout layers.
        rule: ``"epsilon"`` (every layer) or ``"alpha_beta"`` (Conv2D layers; the others keep
            the epsilon rule).
        epsilon: The stabiliser ``eps`` of the epsilon rule (> 0); larger values absorb the
            relevance of weak, contradictory contributions and give sparser maps.
        alpha: The weight of the positive contributions (alpha-beta).
        beta: The weight of the negative contributions (alpha-beta); ``alpha - beta = 1``.
        layer: ``None``: the maps are over the input pixels.

    Raises:
        ModelStructureError: A layer without a rule (the first one is named), or a model that
            is not the chain of its layers.
        InvalidInputError: A bad rule, epsilon, alpha or beta.

    Example:
        >>> relevance = LRP(clf, epsilon=1e-9).attribute(batch, targets=1)  # (N, H, W, C)
        >>> relevance.shape
        (4, 32, 32, 1)
    """

    name: ClassVar[str] = "lrp"
    aliases: ClassVar[tuple[str, ...]] = ("layer-wise-relevance-propagation",)
    needs_gradients: ClassVar[bool] = False

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        rule: str = "epsilon",
        epsilon: float = 1e-6,
        alpha: float = 1.0,
        beta: float = 0.0,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        self.rule = str(check_choice(rule, "rule", RULES))
        self.epsilon = check_number(epsilon, "epsilon", low=0.0, low_open=True)
        self.alpha = check_number(alpha, "alpha", low=1.0)
        self.beta = check_number(beta, "beta", low=0.0)
        if abs(self.alpha - self.beta - 1.0) > 1e-9:
            raise InvalidInputError(
                f"alpha, beta: the alpha-beta rule needs alpha - beta = 1 (conservation), got "
                f"alpha={alpha!r}, beta={beta!r}"
            )
        super().__init__(model, layer=layer)

    def _options(self) -> dict[str, Any]:
        return {"rule": self.rule, "epsilon": self.epsilon, "alpha": self.alpha,
                "beta": self.beta}

    def _attributions(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """The relevance of every input value: the rules applied from the score down."""
        assert self._chain is not None
        values = self._chain.forward(images)
        logits = values[-1]
        relevance = score_gradient(logits, targets) * logits
        for unit, inputs in zip(reversed(self._chain.units), reversed(values[:-1]),
                                strict=True):
            relevance = self._rule(unit, inputs, relevance)
        return relevance

    def _rule(self, unit: Unit, a: tf.Tensor, relevance: tf.Tensor) -> tf.Tensor:
        if unit.kind == "relu":
            return relevance
        if unit.kind == "maxpool":  # winner takes all: the gradient routes R to the maximum
            return vjp(unit.run, a, relevance)
        if unit.kind != "kernel":
            return _proportional(unit, a, relevance, bias_free=unit.kind == "affine")
        if self.rule == "alpha_beta" and isinstance(unit.steps[0].layer, keras.layers.Conv2D):
            return self._alpha_beta(unit, a, relevance)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(a)
            z = unit.run(a)
        scaled = relevance / stabilised(z, self.epsilon)
        return a * tape.gradient(z, a, output_gradients=scaled)

    def _alpha_beta(self, unit: Unit, a: tf.Tensor, relevance: tf.Tensor) -> tf.Tensor:
        conv = unit.steps[0].layer
        kernel = tf.cast(conv.kernel, tf.float32) * unit.scale()
        positive, negative = tf.nn.relu(kernel), tf.minimum(kernel, 0.0)
        a_pos, a_neg = tf.nn.relu(a), tf.minimum(a, 0.0)
        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch([a_pos, a_neg])
            pos_pos = conv.convolution_op(a_pos, positive)  # contributions > 0
            neg_neg = conv.convolution_op(a_neg, negative)
            pos_neg = conv.convolution_op(a_pos, negative)  # contributions < 0
            neg_pos = conv.convolution_op(a_neg, positive)
        s_plus = tf.math.divide_no_nan(relevance, pos_pos + neg_neg)
        result = self.alpha * (a_pos * tape.gradient(pos_pos, a_pos, output_gradients=s_plus)
                               + a_neg * tape.gradient(neg_neg, a_neg, output_gradients=s_plus))
        if self.beta:
            s_minus = tf.math.divide_no_nan(relevance, pos_neg + neg_pos)
            result -= self.beta * (
                a_pos * tape.gradient(pos_neg, a_pos, output_gradients=s_minus)
                + a_neg * tape.gradient(neg_pos, a_neg, output_gradients=s_minus))
        del tape
        return result


def _proportional(unit: Unit, a: tf.Tensor, relevance: tf.Tensor, *, bias_free: bool
                  ) -> tf.Tensor:
    """LRP-0, ``a * J^T (R / z)`` (0 where z = 0); ``bias_free``: ``z = f(a) - f(0)``."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(a)
        z = unit.run(a)
    denominator = z - unit.run(tf.zeros_like(a)) if bias_free else z
    scaled = tf.math.divide_no_nan(relevance, denominator)
    return a * tape.gradient(z, a, output_gradients=scaled)
