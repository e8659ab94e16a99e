"""CAM, the class activation map (Zhou et al., CVPR 2016).

``L_c = ReLU(sum_k w[k, c] * A_k)``, upsampled bilinearly to the input size, where A are the
feature maps that feed the global average pooling and ``w[:, c]`` is the final Dense kernel's
column for class c. It is exact, needs no gradients (one forward pass), and exists only for a
``GAP -> (Dropout) -> Dense`` head; for any other head use :class:`~cxrexplain.GradCAM`.
A single sigmoid unit is a two-class model: class 0 uses the negated column.

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(224, 224, 1), num_classes=2)
    >>> exp = cx.CAM(model).explain(batch)  # resized to 224 x 224
    >>> exp.heatmaps.shape, exp.layer
    ((4, 224, 224), 'block4_relu')
"""

from __future__ import annotations

from typing import Any, ClassVar

import tensorflow as tf

from cxrexplain.explain.kinds import LayerExplainer
from cxrexplain.explain.layers import LayerCall, ModelLayers, gap_dense_head

__all__ = ["CAM"]



class CAM(LayerExplainer):
    """Class activation map: final Dense weights times the features before global pooling.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model`` whose head is
            ``GlobalAveragePooling2D -> (Dropout) -> Dense``.
        layer: Must be the layer feeding the global average pooling (the default).

    Raises:
        ModelStructureError: The model has another head (Flatten, extra Dense layers, max
            pooling, ...); the message suggests GradCAM.

    Example:
        >>> exp = CAM(clf).explain(batch)
        >>> grad = cx.GradCAM(clf).explain(batch)  # GAP -> Dense: the same maps
        >>> bool(np.corrcoef(exp.heatmaps.ravel(), grad.heatmaps.ravel())[0, 1] > 0.999)
        True
    """

    name: ClassVar[str] = "cam"
    order: ClassVar[int] = 10
    needs_gradients: ClassVar[bool] = False

    def _check_structure(self, structure: ModelLayers, target: LayerCall) -> None:
        self._dense: Any = gap_dense_head(structure, target, "CAM")

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``sum_k w[k, c] * A_k`` with c each image's target."""
        kernel = tf.cast(self._dense.kernel, tf.float32)  # (k, units)
        if kernel.shape[-1] == 1:
            sign = tf.where(targets == 1, 1.0, -1.0)
            weights = sign[:, None] * kernel[:, 0][None, :]
        else:
            weights = tf.gather(tf.transpose(kernel), targets)
        return tf.einsum("nhwk,nk->nhw", activations, weights)
