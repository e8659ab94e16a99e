"""Saliency: the vanilla gradient (Simonyan, Vedaldi & Zisserman, ICLR workshop 2014).

``M(x) = max_c |dS/dx_c|``: the magnitude of the gradient of the target class score S
(before softmax/sigmoid, the score Grad-CAM differentiates) with respect to each pixel, the
largest over the channels, as in the paper and xplique's ``Saliency``. With
``absolute=False`` the signed gradient summed over the channels, whose positive part (the
pixels that would raise the score if brighter) the base keeps. One forward and one backward
pass per batch.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.Saliency(clf).explain(batch)
    >>> exp.method, exp.layer, exp.heatmaps.shape, exp.raw.shape
    ('saliency', 'input', (4, 32, 32), (4, 32, 32))
"""

from __future__ import annotations

from typing import ClassVar

import keras
import tensorflow as tf

from cxrexplain.classifier import Classifier
from cxrexplain.explain._gradients import GradientExplainer, Reduction, reduce_channels

__all__ = ["Saliency"]


class Saliency(GradientExplainer):
    """Vanilla gradient saliency: the magnitude of the class score's gradient at each pixel.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        absolute: ``True`` (default): ``max_c |dS/dx_c|``; ``False``: ``sum_c dS/dx_c``,
            of which the map keeps the positive part.
        sample_batch_size: Films per pass of :meth:`attributions`.
        layer: ``None``: the method reads no layer (:attr:`layer` is ``"input"``).

    Example:
        >>> signed = Saliency(clf, absolute=False).attributions(batch[:1])
        >>> bool((signed < 0).any()), signed.shape
        (True, (1, 32, 32, 1))
    """

    name: ClassVar[str] = "saliency"
    aliases: ClassVar[tuple[str, ...]] = ("vanilla-gradient", "vanilla_gradient", "gradients")
    reduction: ClassVar[Reduction] = "gradient"

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        absolute: bool = True,
        sample_batch_size: int = 32,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        super().__init__(model, absolute=absolute, sample_batch_size=sample_batch_size,
                         layer=layer)

    def combine(self, images: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``max_c |dS/dx_c|`` (or ``sum_c dS/dx_c``)."""
        assert gradients is not None
        return reduce_channels(gradients, absolute=self.absolute, kind=self.reduction)

    def _attribute(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        return self._path_gradients(images, targets)
