"""LayerCAM (Jiang et al., IEEE TIP 2021).

``L = ReLU(sum_k ReLU(dS/dA_k) * A_k)``: positive gradients weight each location separately,
which keeps fine detail and works on shallow layers too.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.LayerCAM(clf).explain(batch)
    >>> exp.method, exp.heatmaps.shape
    ('layercam', (4, 32, 32))
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from cxrexplain.explain.kinds import LayerExplainer

__all__ = ["LayerCAM"]


class LayerCAM(LayerExplainer):
    """Layer-wise CAM: location-wise positive gradients times activations.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer; default the last 4-D layer before the global pooling.

    Example:
        >>> exp = LayerCAM(clf, layer="block1_relu").explain(batch)  # an early layer
        >>> exp.layer, exp.raw.shape
        ('block1_relu', (4, 32, 32))
    """

    name: ClassVar[str] = "layercam"
    aliases: ClassVar[tuple[str, ...]] = ("layer-cam",)
    order: ClassVar[int] = 50

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``sum_k ReLU(dS/dA_k) * A_k``."""
        assert gradients is not None
        return tf.reduce_sum(tf.nn.relu(gradients) * activations, axis=-1)
