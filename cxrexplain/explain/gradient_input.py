"""Gradient x Input (Shrikumar et al. 2016; Ancona et al., ICLR 2018).

``A(x)_c = x_c * dS/dx_c``, S the target class score before softmax/sigmoid; the map sums
``A`` over the channels (as Integrated Gradients with a black baseline, of which it is the
one-step case) and the base keeps its positive part, the evidence *for* the class (ReLU, as
Grad-CAM). ``absolute=True`` maps ``sum_c |A_c|`` instead (how PAIR's ``saliency`` library
draws attributions). xplique's ``GradientInput`` averages the channels (the same map up to a
constant factor). One forward and one backward pass per batch.

On a film in [0, 1] black pixels get no attribution whatever the gradient: the method
measures a pixel's contribution relative to black.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.GradientInput(clf).explain(batch)
    >>> exp.method, exp.heatmaps.shape
    ('gradient_input', (4, 32, 32))
"""

from __future__ import annotations

from typing import ClassVar

import tensorflow as tf

from cxrexplain.explain._gradients import GradientExplainer, reduce_channels

__all__ = ["GradientInput"]


class GradientInput(GradientExplainer):
    """Gradient times input: each pixel's value times the class score's gradient there.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        absolute: ``False`` (default): the signed channel sum, positive part kept;
            ``True``: the sum of the magnitudes.
        sample_batch_size: Films per pass of :meth:`attributions`.
        layer: ``None``: the method reads no layer (:attr:`layer` is ``"input"``).

    Example:
        >>> values = GradientInput(clf).attributions(batch[:1])
        >>> gradients = cx.Saliency(clf, absolute=False).attributions(batch[:1])
        >>> bool(np.allclose(values, gradients * batch[:1], atol=1e-6))
        True
    """

    name: ClassVar[str] = "gradient_input"
    aliases: ClassVar[tuple[str, ...]] = ("gradient-input", "gradient_x_input",
                                          "gradient-x-input", "gradientinput", "input_x_gradient")

    def combine(self, images: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """``sum_c x_c * dS/dx_c`` (or ``sum_c |x_c * dS/dx_c|``)."""
        assert gradients is not None
        return reduce_channels(gradients * images, absolute=self.absolute, kind=self.reduction)

    def _attribute(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        return self._path_gradients(images, targets, times_delta=True)
