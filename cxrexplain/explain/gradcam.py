"""Grad-CAM (Selvaraju et al., ICCV 2017).

``L = ReLU(sum_k alpha_k A_k)`` with ``alpha_k = mean_ij dS/dA_k[i, j]``, S the target class
score before softmax/sigmoid and A the target layer's activations.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.GradCAM(clf).explain("xray.png")
    >>> exp.method, exp.heatmaps.shape
    ('gradcam', (1, 32, 32))
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from cxrexplain.explain.kinds import LayerExplainer

__all__ = ["GradCAM"]


class GradCAM(LayerExplainer):
    """Gradient-weighted class activation map: channel weights are spatially averaged gradients.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer (name, nested path or object); default the last 4-D layer before
            the global pooling.

    Example:
        >>> exp = GradCAM(clf, layer="block1_relu").explain(batch)
        >>> exp.layer, exp.raw.shape, exp.heatmaps.shape
        ('block1_relu', (4, 32, 32), (4, 32, 32))
    """

    name: ClassVar[str] = "gradcam"
    aliases: ClassVar[tuple[str, ...]] = ("grad-cam",)
    order: ClassVar[int] = 20

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``sum_k mean_ij(dS/dA_k) * A_k``."""
        assert gradients is not None
        weights = tf.reduce_mean(gradients, axis=[1, 2])
        return tf.einsum("nhwk,nk->nhw", activations, weights)
