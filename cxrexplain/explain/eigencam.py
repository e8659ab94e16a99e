"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020).

The map is the target layer's activations projected on their first principal component, as
pytorch-grad-cam computes it (``get_2d_projection``): one image's activations reshaped to
``(h*w, k)`` (one row per location), minus their mean over the locations; ``v`` the first
right-singular vector of that matrix; the map ``(A - mean) v`` reshaped to ``(h, w)``, then
ReLU and normalisation as for every explainer. It needs no gradients and no target: the map is
the same for every class (``class_specific = False``), while the targets, probabilities and
scores are reported as for every explainer. The SVD runs batched inside the compiled pass.

A singular vector's sign is arbitrary. Like pytorch-grad-cam, the method keeps the sign the
SVD returns (no sign rule), so the ReLU may keep the side of the component that the other
implementation drops.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.EigenCAM(clf).explain(batch)
    >>> exp.method, exp.heatmaps.shape, exp.raw.shape
    ('eigencam', (4, 32, 32), (4, 16, 16))
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from cxrexplain.explain.kinds import LayerExplainer

__all__ = ["EigenCAM"]


class EigenCAM(LayerExplainer):
    """Eigen-CAM: the layer's activations projected on their first principal component.

    Class-agnostic: every target gives the same map.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: Target layer; default the last 4-D layer before the global pooling.

    Example:
        >>> maps = [EigenCAM(clf).explain(batch, targets=t).heatmaps for t in (0, 1)]
        >>> bool(np.array_equal(maps[0], maps[1])), EigenCAM.class_specific
        (True, False)
    """

    name: ClassVar[str] = "eigencam"
    aliases: ClassVar[tuple[str, ...]] = ("eigen-cam",)
    needs_gradients: ClassVar[bool] = False
    class_specific: ClassVar[bool] = False

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``(A - mean_ij A) v``, ``v`` the first right-singular vector, per image."""
        finite = tf.where(tf.math.is_nan(activations), tf.zeros_like(activations), activations)
        shape = tf.shape(finite)
        rows = tf.reshape(finite, [shape[0], shape[1] * shape[2], shape[3]])  # (n, hw, k)
        centred = rows - tf.reduce_mean(rows, axis=1, keepdims=True)
        _, _, right = tf.linalg.svd(centred, full_matrices=False)  # (n, k, min(hw, k))
        projection = tf.linalg.matvec(centred, right[:, :, 0])  # (n, hw)
        return tf.reshape(projection, shape[:3])
