"""HiResCAM (Draelos & Carin, 2020).

``L = ReLU(sum_k dS/dA_k * A_k)``: the element-wise product of gradients and activations,
summed over channels. On a GAP -> Dense head it equals CAM exactly; elsewhere it is faithful
to the model where Grad-CAM's spatial averaging is not.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.HiResCAM(clf).explain(batch)
    >>> exp.method, exp.heatmaps.shape
    ('hirescam', (4, 32, 32))
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from cxrexplain.explain.kinds import LayerExplainer

__all__ = ["HiResCAM"]


class HiResCAM(LayerExplainer):
    """High-resolution CAM: gradient times activation, summed over channels.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer; default the last 4-D layer before the global pooling.

    Example:
        >>> exp = HiResCAM(clf).explain(batch)
        >>> float(exp.heatmaps.min()) >= 0.0, float(exp.heatmaps.max()) <= 1.0
        (True, True)
    """

    name: ClassVar[str] = "hirescam"
    aliases: ClassVar[tuple[str, ...]] = ("hires-cam",)
    order: ClassVar[int] = 40

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``sum_k (dS/dA_k * A_k)``."""
        assert gradients is not None
        return tf.reduce_sum(gradients * activations, axis=-1)
