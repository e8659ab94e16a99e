"""XGrad-CAM (Fu et al., BMVC 2020).

``L = ReLU(sum_k w_k A_k)`` with ``w_k = sum_ij (A_k[i, j] / (sum_ij A_k + eps)) dS/dA_k[i, j]``:
each channel's gradients weighted by the channel's own share of activation at each position,
the weights that make the map satisfy the paper's sensitivity and conservation axioms. S is
the target class score before softmax/sigmoid, as for Grad-CAM; ``eps = 1e-7`` as in
pytorch-grad-cam's ``xgrad_cam.py``, whose formula this is.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.XGradCAM(clf).explain(batch)
    >>> exp.method, exp.heatmaps.shape, exp.raw.shape
    ('xgradcam', (4, 32, 32), (4, 16, 16))
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from cxrexplain.explain.kinds import LayerExplainer

__all__ = ["XGradCAM"]

_EPS = 1e-7


class XGradCAM(LayerExplainer):
    """Axiom-based Grad-CAM: gradients weighted by each channel's normalised activations.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer (name, nested path or object); default the last 4-D layer before
            the global pooling.

    Example:
        >>> exp = XGradCAM(clf, layer="block1_relu").explain(batch)
        >>> exp.layer, exp.raw.shape
        ('block1_relu', (4, 32, 32))
    """

    name: ClassVar[str] = "xgradcam"
    aliases: ClassVar[tuple[str, ...]] = ("xgrad-cam", "xgrad_cam")

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``sum_k (sum_ij A_k dS/dA_k / (sum_ij A_k + eps)) A_k``."""
        assert gradients is not None
        totals = tf.reduce_sum(activations, axis=[1, 2])  # (n, k)
        weights = tf.reduce_sum(activations * gradients, axis=[1, 2]) / (totals + _EPS)
        return tf.einsum("nhwk,nk->nhw", activations, weights)
