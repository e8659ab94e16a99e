"""Grad-CAM++ (Chattopadhay et al., WACV 2018).

With ``g = dS/dA`` (S the target score before softmax/sigmoid, using the paper's exponential
score so that higher derivatives reduce to powers of g):

``alpha_k[i, j] = g^2 / (2 g^2 + sum_ab A_k[a, b] * g^3)`` (0 where g = 0),
``w_k = sum_ij alpha_k[i, j] * ReLU(g[i, j])``, ``L = ReLU(sum_k w_k A_k)``.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.GradCAMPlusPlus(clf).explain(batch)
    >>> exp.method, exp.heatmaps.shape
    ('gradcampp', (4, 32, 32))
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from cxrexplain.explain.kinds import LayerExplainer

__all__ = ["GradCAMPlusPlus"]


class GradCAMPlusPlus(LayerExplainer):
    """Grad-CAM++: channel weights from positive gradients weighted by higher-order terms.

    Better than Grad-CAM when a class appears at several places in the image.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer; default the last 4-D layer before the global pooling.

    Example:
        >>> exp = GradCAMPlusPlus(clf).explain(batch, targets="PNEUMONIA")
        >>> exp.target_names
        ['PNEUMONIA', 'PNEUMONIA', 'PNEUMONIA', 'PNEUMONIA']
    """

    name: ClassVar[str] = "gradcampp"
    aliases: ClassVar[tuple[str, ...]] = ("gradcam++", "grad-cam++", "gradcam_pp",
                                          "gradcamplusplus")
    order: ClassVar[int] = 30

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``sum_k w_k A_k`` with the Grad-CAM++ weights."""
        assert gradients is not None
        squared = tf.square(gradients)
        cubed = squared * gradients
        total = tf.reduce_sum(activations, axis=[1, 2], keepdims=True)
        denominator = 2.0 * squared + total * cubed
        alpha = tf.where(
            (gradients != 0.0) & (denominator != 0.0),
            squared / tf.where(denominator != 0.0, denominator, tf.ones_like(denominator)),
            tf.zeros_like(squared),
        )
        weights = tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=[1, 2])
        return tf.einsum("nhwk,nk->nhw", activations, weights)
