"""Smooth IG: Integrated Gradients averaged over noisy copies of the film (Smilkov et al. 2017).

``SIG(x) = 1/n sum_s IG(x + e_s)``, ``e_s ~ N(0, sigma^2)``, ``sigma = noise * (max(x) -
min(x))``: SmoothGrad's smoothing applied to :class:`~cxrexplain.IntegratedGradients` (the
"Smooth IG" of Arun et al., Radiology: AI 2021, who used PAIR's ``saliency`` library, whose
``GetSmoothedMask`` on its IG does this: the noisy copy is the path's end, the baseline stays
the film's). Defaults as PAIR's: 25 noisy copies, 25 path steps, noise 0.15 of the film's
range; the quadrature and the baselines are IG's (trapezoid rule, black). The map is the
signed channel sum, positive part kept (``absolute=True``: sum of magnitudes). The seeded
noise is SmoothGrad's (draw ``s`` the same for every film). It costs ``samples x steps``
gradient evaluations per film, all of a batch run in chunks of ``sample_batch_size``.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.SmoothIG(clf, samples=4, steps=8).explain(batch)
    >>> exp.method, exp.heatmaps.shape
    ('smooth_ig', (4, 32, 32))
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain.classifier import Classifier
from cxrexplain.explain._gradients import NoisySamples
from cxrexplain.explain.integrated_gradients import IntegratedGradients, Rule

__all__ = ["SmoothIG"]


class SmoothIG(NoisySamples, IntegratedGradients):
    """Smooth IG: Integrated Gradients averaged over noisy copies of the film.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        samples: Noisy copies per film (``n``).
        noise: The noise's standard deviation as a share of each film's range.
        seed: Seed of the noise.
        steps: Gradient evaluations along each path.
        baseline: As :class:`~cxrexplain.IntegratedGradients` (``"black"``, ``"blurred"``
            of the clean film, or an array).
        rule: As :class:`~cxrexplain.IntegratedGradients`.
        blur_sigma: As :class:`~cxrexplain.IntegratedGradients`.
        absolute: ``False`` (default): signed channel sum, positive part kept; ``True``:
            sum of the magnitudes.
        sample_batch_size: Path points per forward and backward pass (bounds memory).
        layer: ``None``: the method reads no layer (:attr:`layer` is ``"input"``).

    Example:
        >>> plain = cx.IntegratedGradients(clf, steps=8).attributions(batch[:1])
        >>> same = SmoothIG(clf, samples=1, noise=0.0, steps=8).attributions(batch[:1])
        >>> bool(np.allclose(plain, same, atol=1e-6))
        True
    """

    name: ClassVar[str] = "smooth_ig"
    aliases: ClassVar[tuple[str, ...]] = ("smooth-ig", "smoothig", "smooth_integrated_gradients")

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        samples: int = 25,
        noise: float = 0.15,
        seed: int = 0,
        steps: int = 25,
        baseline: str | np.ndarray = "black",
        rule: Rule = "trapezoid",
        blur_sigma: float = 0.05,
        absolute: bool = False,
        sample_batch_size: int = 32,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        self._set_noise(samples, noise, seed)
        super().__init__(model, steps=steps, baseline=baseline, rule=rule,
                         blur_sigma=blur_sigma, absolute=absolute,
                         sample_batch_size=sample_batch_size, layer=layer)

    def _options(self) -> dict[str, Any]:
        return {**self._noise_options(), **super()._options()}

    def _attribute(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """``1/n sum_s (x_s - b) * sum_k w_k dS/dx (b + a_k (x_s - b))``, ``x_s = x + e_s``."""
        alphas, weights = self.quadrature()
        starts = tf.constant(self.baselines(images.numpy()))
        return self._path_gradients(images, targets, baselines=starts, alphas=alphas,
                                    weights=weights / np.float32(self.samples),
                                    times_delta=True, **self._noise(images))
