"""Guided Backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller, ICLR workshop 2015).

The gradient of the target class score (before softmax/sigmoid) with respect to the pixels,
back-propagated through every ReLU by the guided rule: ``R_in = 1[x > 0] * ReLU(R_out)``
(only positive gradients, only where the unit was active). The map is the largest magnitude
over the channels, as :class:`~cxrexplain.Saliency` (``absolute=False``: the signed channel
sum, positive part kept). xplique's ``GuidedBackprop`` averages the channels without the
magnitude, and gates a ReLU6 by ``x > 0`` only (here ``0 < x < 6``, the ReLU6's own
derivative).

The rule is a gradient override that exists only while the compiled pass is traced: every
ReLU of the model (``ReLU`` layers, ``Activation("relu")`` layers and ``activation="relu"``
inside ``Conv2D``, ``Dense`` and other layers, in nested models too) has its call routed
through a ``tf.custom_gradient`` by the same interception that captures the logits
(:func:`~cxrexplain.explain.layers.intercept`). The user's model is never changed or cloned;
its own gradients stay what they were. A model without a visible ReLU is refused with a
:class:`~cxrexplain.ModelStructureError` (a ReLU inside a ``Lambda`` or a custom layer's
``call`` cannot be guided). One forward and one backward pass per batch.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.GuidedBackprop(clf).explain(batch)
    >>> exp.method, exp.layer, exp.heatmaps.shape
    ('guided_backprop', 'input', (4, 32, 32))
"""

from __future__ import annotations

from typing import ClassVar

from cxrexplain.explain.saliency import Saliency

__all__ = ["GuidedBackprop"]


class GuidedBackprop(Saliency):
    """Guided backpropagation: the input gradient with only positive signals through ReLUs.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model`` with ReLU activations.
        absolute: ``True`` (default): largest magnitude over the channels; ``False``: the
            signed channel sum, positive part kept.
        sample_batch_size: Films per pass of :meth:`attributions`.
        layer: ``None``: the method reads no layer (:attr:`layer` is ``"input"``).

    Raises:
        ModelStructureError: The model has no ReLU the method can guide.

    Example:
        >>> before = cx.Saliency(clf, absolute=False).attributions(batch)
        >>> guided = GuidedBackprop(clf).attributions(batch)
        >>> after = cx.Saliency(clf, absolute=False).attributions(batch)  # model unchanged
        >>> bool(np.array_equal(before, after)), bool(np.allclose(before, guided))
        (True, False)
    """

    name: ClassVar[str] = "guided_backprop"
    aliases: ClassVar[tuple[str, ...]] = ("guided-backprop", "guidedbackprop",
                                          "guided_backpropagation", "guided-backpropagation")
    guided: ClassVar[bool] = True  # Saliency's pass, traced with the guided ReLU rule
