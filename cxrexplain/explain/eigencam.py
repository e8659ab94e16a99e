"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020).

The map is the target layer's activations projected on their first principal component, as
pytorch-grad-cam computes it (``get_2d_projection``): one image's activations reshaped to
``(h*w, k)`` (one row per location), minus their mean over the locations; ``v`` the first
right-singular vector of that matrix; the map ``(A - mean) v`` reshaped to ``(h, w)``, then
ReLU and normalisation as for every explainer. It needs no gradients and no target: the map is
the same for every class (``class_specific = False``), while the targets, probabilities and
scores are reported as for every explainer.

A singular vector's sign is arbitrary, and the ReLU keeps one side of the component. Like
pytorch-grad-cam, the method keeps the sign the SVD returns (no sign rule); so that the side
is the one pytorch-grad-cam keeps, the SVD is NumPy's (LAPACK's ``gesdd``, in float32 as
pytorch-grad-cam runs it), once per batch on all its images at once, after the one compiled
forward pass that gives the activations. (TensorFlow's SVD chooses other signs.)

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.EigenCAM(clf).explain(batch)
    >>> exp.method, exp.heatmaps.shape, exp.raw.shape
    ('eigencam', (4, 32, 32), (4, 16, 16))
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
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

    def combine_with_model(self, images: tf.Tensor, activations: tf.Tensor,
                           targets: tf.Tensor) -> tf.Tensor:
        """``(A - mean_ij A) v``, ``v`` the first right-singular vector, per image (batched)."""
        values = np.asarray(activations, dtype=np.float32)  # (n, h, w, k)
        values = np.where(np.isnan(values), np.float32(0.0), values)
        n, h, w, k = values.shape
        rows = values.reshape(n, h * w, k)
        centred = rows - rows.mean(axis=1, keepdims=True)
        _, _, right = np.linalg.svd(centred, full_matrices=False)  # (n, min(hw, k), k)
        projection = np.einsum("nij,nj->ni", centred, right[:, 0, :])
        return tf.convert_to_tensor(projection.reshape(n, h, w))
