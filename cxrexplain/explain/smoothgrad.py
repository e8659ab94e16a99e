"""SmoothGrad (Smilkov, Thorat, Kim, Viégas & Wattenberg, 2017).

``M(x) = max_c |1/n sum_s dS/dx_c (x + e_s)|``, ``e_s ~ N(0, sigma^2)``,
``sigma = noise * (max(x) - min(x))``: the gradient of the target class score (before
softmax/sigmoid) averaged over ``n`` noisy copies of the film, then reduced over the channels
as :class:`~cxrexplain.Saliency` (largest magnitude; ``absolute=False``: signed sum, positive
part kept). The noise level is a share of each film's own range, as in the paper and in PAIR's
``saliency`` library (``stdev_spread``); the defaults, 0.15 and 50 samples, are the paper's
recommended 10-20 % and its 50 samples (PAIR uses 0.15 and 25). xplique's ``SmoothGrad`` takes
an absolute standard deviation (default 0.2 on its inputs' scale) and averages the channels
without the magnitude: on one-channel films in [0, 1] with ``noise=0.2`` and a film range of
1 the two agree up to the sign.

The noise is seeded: draw ``s`` comes from ``numpy.random.default_rng(seed)`` (an ``(n, H, W,
C)`` standard normal array, scaled by each film's sigma) and is the same for every film, so a
film's map does not depend on the batch it is explained in. All ``n x N`` noisy copies of a
batch run through the model in chunks of ``sample_batch_size``.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.SmoothGrad(clf, samples=8, seed=0).explain(batch)
    >>> exp.method, exp.heatmaps.shape
    ('smoothgrad', (4, 32, 32))
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain.classifier import Classifier
from cxrexplain.explain._gradients import GradientExplainer, NoisySamples, Reduction

__all__ = ["SmoothGrad"]


class SmoothGrad(NoisySamples, GradientExplainer):
    """SmoothGrad: the class score's input gradient averaged over noisy copies of the film.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        samples: Noisy copies per film (``n``).
        noise: The noise's standard deviation as a share of each film's range
            ``max - min`` (0 gives the plain gradient).
        seed: Seed of the noise.
        absolute: ``True`` (default): largest magnitude over the channels; ``False``: the
            signed channel sum, positive part kept.
        sample_batch_size: Noisy copies per forward and backward pass (bounds memory).
        layer: ``None``: the method reads no layer (:attr:`layer` is ``"input"``).

    Raises:
        InvalidInputError: A non-positive number of samples or a negative noise level.

    Example:
        >>> plain = cx.Saliency(clf).explain(batch[:1]).heatmaps
        >>> same = SmoothGrad(clf, samples=1, noise=0.0).explain(batch[:1]).heatmaps
        >>> bool(np.allclose(plain, same, atol=1e-5))
        True
    """

    name: ClassVar[str] = "smoothgrad"
    aliases: ClassVar[tuple[str, ...]] = ("smooth-grad", "smooth_grad")
    reduction: ClassVar[Reduction] = "gradient"

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        samples: int = 50,
        noise: float = 0.15,
        seed: int = 0,
        absolute: bool = True,
        sample_batch_size: int = 32,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        self._set_noise(samples, noise, seed)
        super().__init__(model, absolute=absolute, sample_batch_size=sample_batch_size,
                         layer=layer)

    def _options(self) -> dict[str, Any]:
        return {**self._noise_options(), **super()._options()}

    def _attribute(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """``1/n sum_s dS/dx (x + sigma e_s)``."""
        return self._path_gradients(images, targets, **self._noise(images),
                                    weights=np.full(1, 1.0 / self.samples, np.float32))
