"""Integrated Gradients (Sundararajan, Taly & Yan, ICML 2017).

``IG(x)_c = (x_c - b_c) * int_0^1 dS/dx_c (b + a (x - b)) da``: the gradient of the target
class score S (before softmax/sigmoid) averaged along the straight path from a baseline ``b``
to the film, times the film's difference from the baseline. Completeness: the attributions of
a film add up to ``S(x) - S(b)`` (up to the quadrature's error; :meth:`attributions` gives
them signed). The map is their sum over the channels, positive part kept (the base's ReLU:
the evidence *for* the class); ``absolute=True`` maps ``sum_c |IG_c|`` (PAIR's ``saliency``
drawing, used by Arun et al. 2021).

The integral is a quadrature over ``steps`` gradient evaluations (``rule``):

* ``"trapezoid"`` (default, as xplique's ``IntegratedGradients``): ``a_k = k / (m - 1)``,
  ``k = 0 .. m - 1``, weights ``1 / (m - 1)`` halved at both ends;
* ``"left"``, ``"right"``, ``"midpoint"`` Riemann sums: ``a_k = k / m``, ``(k + 1) / m``
  (the paper's), ``(k + 1/2) / m``, weights ``1 / m``.

Baselines: ``"black"`` (zeros, the paper's and xplique's default), ``"blurred"`` (the film
under a Gaussian blur of ``blur_sigma`` times its larger side, 11 px at 224; Sturmfels,
Lundberg & Lee, Distill 2020), or an array (one ``(H, W, C)`` image for every film, or
``(N, H, W, C)``, one per film of each ``explain`` call). All ``steps x N`` path points of a
batch run through the model in chunks of ``sample_batch_size``.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.IntegratedGradients(clf, steps=16).explain(batch)
    >>> exp.method, exp.heatmaps.shape
    ('integrated_gradients', (4, 32, 32))
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import keras
import numpy as np
import tensorflow as tf

from cxrexplain._checks import check_int, check_number, describe
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain._gradients import GradientExplainer

__all__ = ["IntegratedGradients"]

Rule = Literal["trapezoid", "left", "right", "midpoint"]
RULES = ("trapezoid", "left", "right", "midpoint")


class IntegratedGradients(GradientExplainer):
    """Integrated Gradients: gradients along the path from a baseline, times the difference.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        steps: Gradient evaluations along the path (``m``; at least 2 for ``"trapezoid"``).
        baseline: ``"black"``, ``"blurred"``, or an array in the model's input shape:
            ``(H, W, C)`` for every film, or ``(N, H, W, C)`` one per film.
        rule: ``"trapezoid"``, ``"left"``, ``"right"`` or ``"midpoint"``.
        blur_sigma: The ``"blurred"`` baseline's Gaussian sigma, a share of the film's
            larger side.
        absolute: ``False`` (default): signed channel sum, positive part kept; ``True``:
            sum of the magnitudes.
        sample_batch_size: Path points per forward and backward pass (bounds memory).
        layer: ``None``: the method reads no layer (:attr:`layer` is ``"input"``).

    Raises:
        InvalidInputError: Bad steps, rule, baseline or sigma; a baseline array whose shape
            does not match the films (raised by ``explain``).

    Example:
        >>> ig = IntegratedGradients(clf, steps=64, rule="midpoint")
        >>> ig.attributions(batch[:1], targets=1).shape  # signed, before the map is made
        (1, 32, 32, 1)
    """

    name: ClassVar[str] = "integrated_gradients"
    aliases: ClassVar[tuple[str, ...]] = ("integrated-gradients", "integratedgradients", "ig")

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        steps: int = 50,
        baseline: str | np.ndarray = "black",
        rule: Rule = "trapezoid",
        blur_sigma: float = 0.05,
        absolute: bool = False,
        sample_batch_size: int = 32,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        if rule not in RULES:
            raise InvalidInputError(f"rule: expected one of {list(RULES)}, got {describe(rule)}")
        self.rule: Rule = rule
        self.steps = check_int(steps, "steps", minimum=2 if rule == "trapezoid" else 1)
        self.baseline = _check_baseline(baseline)
        self.blur_sigma = check_number(blur_sigma, "blur_sigma", low=0.0, low_open=True)
        super().__init__(model, absolute=absolute, sample_batch_size=sample_batch_size,
                         layer=layer)

    def _options(self) -> dict[str, Any]:
        return {"steps": self.steps, "baseline": self.baseline, "rule": self.rule,
                "blur_sigma": self.blur_sigma, **super()._options()}

    def _pass_key(self) -> tuple[Any, ...]:
        # an array baseline is data of the eager step, not of the traced pass
        return (*super()._pass_key()[:1], self.layer, self.classifier.output_activation,
                self.classifier.multilabel, self.classifier.num_classes)

    def quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """The path positions ``a_k`` and weights ``w_k`` of the rule (weights sum to 1).

        Example:
            >>> IntegratedGradients(clf, steps=3).quadrature()
            (array([0. , 0.5, 1. ], dtype=float32), array([0.25, 0.5 , 0.25], dtype=float32))
        """
        return quadrature(self.rule, self.steps)

    def baselines(self, images: np.ndarray) -> np.ndarray:
        """The baseline of each film, ``(N, H, W, C)`` float32.

        Example:
            >>> black = IntegratedGradients(clf).baselines(batch)
            >>> blurred = IntegratedGradients(clf, baseline="blurred").baselines(batch)
            >>> black.shape, float(black.max()), bool(blurred.std() < batch.std())
            ((4, 32, 32, 1), 0.0, True)
        """
        return make_baselines(images, self.baseline, self.blur_sigma)

    def _attribute(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """``(x - b) * sum_k w_k dS/dx (b + a_k (x - b))``."""
        alphas, weights = self.quadrature()
        starts = tf.constant(self.baselines(images.numpy()))
        return self._path_gradients(images, targets, baselines=starts, alphas=alphas,
                                    weights=weights, times_delta=True)


def quadrature(rule: Rule, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Path positions and weights of a quadrature rule on [0, 1] (see the module)."""
    k = np.arange(steps, dtype=np.float64)
    if rule == "trapezoid":
        alphas = k / (steps - 1)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2.0
    else:
        offset = {"left": 0.0, "right": 1.0, "midpoint": 0.5}[rule]
        alphas = (k + offset) / steps
        weights = np.full(steps, 1.0 / steps)
    return alphas.astype(np.float32), weights.astype(np.float32)


def _check_baseline(baseline: object) -> str | np.ndarray:
    if isinstance(baseline, str):
        if baseline not in ("black", "blurred"):
            raise InvalidInputError(
                f"baseline: expected 'black', 'blurred' or an array, got {baseline!r}")
        return baseline
    if isinstance(baseline, np.ndarray) or hasattr(baseline, "__array__"):
        array = np.asarray(baseline, np.float32)
        if array.ndim not in (3, 4) or not np.isfinite(array).all():
            raise InvalidInputError(
                "baseline: expected an (H, W, C) or (N, H, W, C) array of finite values, got "
                f"shape {array.shape}")
        array.setflags(write=False)
        return array
    raise InvalidInputError(
        f"baseline: expected 'black', 'blurred' or an array, got {describe(baseline)}")


def make_baselines(images: np.ndarray, baseline: str | np.ndarray, blur_sigma: float
                   ) -> np.ndarray:
    """``(N, H, W, C)`` baselines of a batch: zeros, blurred films, or the given array."""
    if isinstance(baseline, np.ndarray):
        if baseline.shape == images.shape[1:]:
            return np.broadcast_to(baseline, images.shape).astype(np.float32)
        if baseline.shape == images.shape:
            return baseline.astype(np.float32)
        raise InvalidInputError(
            f"baseline: shape {baseline.shape} matches neither a film {images.shape[1:]} nor "
            f"the batch {images.shape}")
    if baseline == "black":
        return np.zeros_like(images, np.float32)
    return blur(images, blur_sigma * max(images.shape[1:3]))


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """``(N, H, W, C)`` films under a Gaussian blur (cv2, reflected edges), all at once.

    The films and channels are stacked as the channels of one image, at most 512 at a time
    (OpenCV's limit), so there is no loop over films.
    """
    count, height, width, channels = images.shape
    stacked = np.ascontiguousarray(images.transpose(1, 2, 0, 3).reshape(height, width, -1),
                                   np.float32)
    parts = [cv2.GaussianBlur(stacked[:, :, start:start + 512], (0, 0), sigmaX=sigma,
                              borderType=cv2.BORDER_REFLECT_101).reshape(height, width, -1)
             for start in range(0, stacked.shape[2], 512)]
    joined = np.concatenate(parts, axis=2)
    return np.ascontiguousarray(
        joined.reshape(height, width, count, channels).transpose(2, 0, 1, 3), np.float32)
