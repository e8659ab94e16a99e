"""The shared part of the input-gradient explainers (private).

Saliency, Gradient x Input, SmoothGrad, Integrated Gradients, Smooth IG, Guided Backprop and
Guided Grad-CAM all differentiate the target class score *before* the softmax/sigmoid (the
score Grad-CAM differentiates, :mod:`cxrexplain.explain.targets`) with respect to input
pixels: the film itself, noisy copies of it, or points on a path from a baseline to it.
:class:`GradientExplainer` gives them

* one compiled function, :meth:`GradientExplainer._path_gradients`, that takes a batch of
  films and a list of *samples* ``(image i, noise draw s, path position alpha, weight w)``
  and returns, for every film, ``sum_samples w * dS/dz(z)`` (times ``z - baseline`` for the
  attribution methods), ``z = b_i + alpha * (x_i + sigma_i * noise_s - b_i)``. The samples
  of all films are made inside the graph and run through the model in chunks of
  ``sample_batch_size`` (bounding memory), never one film at a time; the function is traced
  once per model, head and rule and shared by every explainer on the model
  (:mod:`cxrexplain._passes`);
* :meth:`GradientExplainer.attributions`: the signed per-pixel, per-channel attributions
  (what the maps are made of, before the channel reduction, ReLU and normalisation);
* the channel reduction (:func:`reduce_channels`) and, for Guided Backprop, the guided ReLU
  hooks (:func:`guided_relu_hooks`), which only exist while a pass is traced: the user's
  model is never changed.

Under ``mixed_float16`` the model's layers compute (and back-propagate) in float16 as they
were built; the scores are cast to float32 before they are differentiated and the gradients
arrive at the float32 input in float32.

Example:
    >>> from cxrexplain.explain._gradients import reduce_channels
    >>> import tensorflow as tf
    >>> values = tf.constant([[[[1.0, -3.0]]]])  # one 1 x 1 image, two channels
    >>> [float(reduce_channels(values, absolute=a, kind=k)[0, 0, 0])
    ...  for a, k in [(True, "gradient"), (False, "gradient"), (True, "attribution")]]
    [3.0, -2.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import keras
import numpy as np
import tensorflow as tf

from cxrexplain import _keras_utils, _passes
from cxrexplain._checks import check_int, check_number, describe
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain.base import Targets
from cxrexplain.explain.kinds import InputExplainer
from cxrexplain.explain.targets import logits_from_outputs, target_scores
from cxrexplain.io import ImageSource, count_chunk, iter_chunks

__all__ = ["GradientExplainer", "NoisySamples", "gaussian_noise", "guided_relu_hooks",
           "image_ranges", "reduce_channels"]

Reduction = Literal["gradient", "attribution"]


def reduce_channels(values: tf.Tensor, *, absolute: bool, kind: Reduction) -> tf.Tensor:
    """``(N, H, W, C)`` per-channel values to ``(N, H, W)``.

    ``kind="gradient"`` (Saliency, SmoothGrad, Guided Backprop): the largest magnitude over
    the channels (Simonyan et al.) when ``absolute``, else the signed sum. ``kind=
    "attribution"`` (Gradient x Input, Integrated Gradients, Smooth IG): the sum of the
    magnitudes when ``absolute`` (PAIR's ``saliency`` library), else the signed sum, which
    keeps IG's completeness. One-channel films: ``|v|`` or ``v`` either way.
    """
    if not absolute:
        return tf.reduce_sum(values, axis=-1)
    if kind == "gradient":
        return tf.reduce_max(tf.abs(values), axis=-1)
    return tf.reduce_sum(tf.abs(values), axis=-1)


def _guided(function: Any) -> Any:
    """``function`` (an element-wise activation) with the guided backward rule.

    Forward: ``y = f(x)`` unchanged. Backward: ``f'(x) * ReLU(dy)``: only positive gradients
    flow, and only where the activation lets them (``x > 0`` for a ReLU; ``0 < x < 6`` for a
    ReLU6), as in Springenberg et al. 2015.
    """

    @tf.custom_gradient  # type: ignore[untyped-decorator]
    def guided(x: tf.Tensor) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)

        def backward(dy: tf.Tensor) -> tf.Tensor:
            return tape.gradient(y, x, output_gradients=tf.nn.relu(dy))

        return y, backward

    return guided


def _is_relu(activation: Any) -> bool:
    return _keras_utils.activation_name(activation) in ("relu", "relu6")


def guided_relu_hooks(model: keras.Model, owner: str) -> list[tuple[keras.layers.Layer, Any]]:
    """Hooks (for :func:`~cxrexplain.explain.layers.intercept`) that make every ReLU guided.

    The three ways a Keras model holds a ReLU are found in nested models too: ``ReLU``
    layers (any ``max_value`` or ``threshold``), ``Activation("relu")`` layers, and
    ``activation="relu"`` inside a layer (``Conv2D``, ``Dense``, ...), whose activation is
    swapped for ``linear`` while the layer runs and then applied, guided, to its output. The
    model's output layer is left alone (its pre-activation is the score).

    Raises:
        ModelStructureError: The model holds no ReLU in any of these forms (a ReLU inside a
            ``Lambda`` or a custom layer's ``call`` cannot be seen).
    """
    head = _keras_utils.output_layer(model)
    hooks: list[tuple[keras.layers.Layer, Any]] = []
    for _, layer in _keras_utils.leaf_layers(model):
        if layer is head:
            continue
        if isinstance(layer, keras.layers.ReLU) or (
                isinstance(layer, keras.layers.Activation) and _is_relu(layer.activation)):
            hooks.append((layer, _guided_call))
        elif _is_relu(getattr(layer, "activation", None)):
            hooks.append((layer, _guided_inner_activation(layer)))
    if not hooks:
        raise ModelStructureError(
            f"model: {owner} needs ReLU activations (ReLU or Activation('relu') layers, or "
            "activation='relu' in a layer) and found none; a ReLU inside a Lambda or a custom "
            "layer cannot be guided. Use Saliency or Integrated Gradients for this model"
        )
    return hooks


def _guided_call(original: Any, *args: Any, **kwargs: Any) -> Any:
    """A ReLU (or Activation('relu')) layer's call, guided."""
    inputs, rest = (args[0], args[1:]) if args else (kwargs.pop("inputs"), ())
    return _guided(lambda x: original(x, *rest, **kwargs))(inputs)


def _guided_inner_activation(layer: keras.layers.Layer) -> Any:
    """A layer with ``activation='relu'``: linear part as it is, then the guided ReLU."""

    def call(original: Any, *args: Any, **kwargs: Any) -> Any:
        saved = layer.activation
        object.__setattr__(layer, "activation", keras.activations.linear)
        try:
            linear = original(*args, **kwargs)
        finally:
            object.__setattr__(layer, "activation", saved)
        return _guided(saved)(linear)

    return call


class GradientExplainer(InputExplainer):
    """Base of the input-gradient explainers: per-channel attributions from compiled passes.

    A method sets ``name`` and either overrides ``combine`` (one gradient at the film, in the
    base's one pass: Saliency, Gradient x Input, Guided Backprop) and :meth:`_attribute`, or
    overrides :meth:`_attribute` only (many samples per film: SmoothGrad, IG, Smooth IG), in
    which case the map is its channel reduction, made once per batch after the pass that
    chose the targets.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        absolute: How the channels are reduced (:func:`reduce_channels`).
        sample_batch_size: Samples (film copies) per forward and backward pass.
        layer: ``None``; accepted so that every explainer is built alike.
    """

    guided: ClassVar[bool] = False
    """Whether the model's ReLUs are guided in this method's passes (Guided Backprop)."""
    reduction: ClassVar[Reduction] = "attribution"

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        absolute: bool = False,
        sample_batch_size: int = 32,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        if not isinstance(absolute, bool):
            raise InvalidInputError(f"absolute: expected True or False, got {describe(absolute)}")
        self.absolute = absolute
        self.sample_batch_size = check_int(sample_batch_size, "sample_batch_size")
        self._path_functions: dict[tuple[bool, tuple[int, ...]], Any] = {}
        super().__init__(model, layer=layer)
        if self.guided:
            guided_relu_hooks(self.model, type(self).__name__)  # refuse early

    def _options(self) -> dict[str, Any]:
        return {"absolute": self.absolute, "sample_batch_size": self.sample_batch_size}

    def _pass_key(self) -> tuple[Any, ...]:
        # the sample batch size changes no graph: passes that differ by it are shared
        options = {k: v for k, v in self._options().items() if k != "sample_batch_size"}
        clf = self.classifier
        return (type(self), repr(sorted(options.items())), self.layer, clf.output_activation,
                clf.multilabel, clf.num_classes)

    # ------------------------------------------------------------------ public
    def attributions(
        self,
        images: ImageSource | Iterable[ImageSource],
        targets: Targets = None,
        *,
        batch_size: int = 32,
    ) -> np.ndarray:
        """The signed attribution of every pixel and channel, before the maps are made of it.

        What :meth:`explain` reduces over the channels, clips at zero and scales to [0, 1]:
        the (smoothed, guided) gradient for the gradient methods, gradient x (input -
        baseline) averaged along the path for the attribution methods, for which the values
        of one film add up to ``S(x) - S(baseline)`` (Integrated Gradients' completeness).

        Args:
            images: Anything :func:`cxrexplain.load_images` accepts.
            targets: ``None`` (each film's predicted class), one class, or one per film.
            batch_size: Films per chunk.

        Returns:
            ``(N, H, W, C)`` float32, in the model's input pixels.

        Example:
            >>> values = cx.GradientInput(clf).attributions(batch, targets="PNEUMONIA")
            >>> values.shape, values.dtype
            ((4, 32, 32, 1), dtype('float32'))
        """
        check_int(batch_size, "batch_size")
        chunks = list(iter_chunks(images, batch_size))
        total = sum(count_chunk(chunk) for chunk in chunks)
        wanted = self._resolve_targets(targets, total)
        parts = []
        done = 0
        for chunk in chunks:
            batch = self.classifier.prepare(chunk)
            chosen = self._chosen_targets(batch, wanted[done : done + len(batch)])
            parts.append(self._attribute(tf.constant(batch), tf.constant(chosen)).numpy())
            done += len(batch)
        return np.concatenate(parts).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ the method's part
    def _attribute(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Eager: ``(N, H, W, C)`` float32 signed attributions of a batch for its targets."""
        raise NotImplementedError

    def combine_with_model(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """The channel reduction of :meth:`_attribute` (methods of many samples per film)."""
        return reduce_channels(self._attribute(images, targets), absolute=self.absolute,
                               kind=self.reduction)

    def _combines_in_graph(self) -> bool:
        return type(self).combine is not InputExplainer.combine

    # ------------------------------------------------------------------ the shared passes
    def _hooks(self) -> list[tuple[keras.layers.Layer, Any]]:
        hooks = super()._hooks()
        if self.guided:
            hooks = [*hooks, *guided_relu_hooks(self.model, type(self).__name__)]
        return hooks

    def _chosen_targets(self, batch: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Each film's target: the one asked for, else the predicted class (as explain)."""
        if (wanted >= 0).all():
            return wanted.astype(np.int32)
        probabilities = self.classifier._probabilities(batch)
        threshold = self.classifier.threshold
        limit = threshold if isinstance(threshold, float) else -1.0
        predicted = np.asarray(self.classifier._decision(probabilities, limit), np.int32)
        return np.where(wanted < 0, predicted, wanted).astype(np.int32)

    def _path_gradients(
        self,
        images: tf.Tensor,
        targets: tf.Tensor,
        *,
        baselines: tf.Tensor | None = None,
        alphas: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        noise: np.ndarray | None = None,
        sigma: tf.Tensor | None = None,
        times_delta: bool = False,
    ) -> tf.Tensor:
        """``(N, H, W, C)``: for each film i, ``sum_{s, k} w_k * g(z_isk) [* (x_is - b_i)]``.

        ``x_is = x_i + sigma_i * noise_s`` (noise ``(S, H, W, C)``, one draw per sample
        index, the same for every film, so that a film's result does not depend on the batch
        it is in), ``z_isk = b_i + alpha_k * (x_is - b_i)``, ``g`` the gradient of the target
        score. Defaults: no noise, baseline 0, one point alpha = 1 of weight 1 (the plain
        gradient). Runs ``N * S * K`` samples in chunks of ``sample_batch_size``.
        """
        count = int(images.shape[0])
        shape = tuple(int(d) for d in images.shape[1:])
        baselines = tf.zeros_like(images) if baselines is None else baselines
        alphas = np.ones(1, np.float32) if alphas is None else alphas
        weights = np.ones(1, np.float32) if weights is None else weights
        noise = np.zeros((1, *shape), np.float32) if noise is None else noise
        sigma = tf.zeros([count], tf.float32) if sigma is None else sigma
        draws, steps = len(noise), len(alphas)
        per_image = draws * steps
        pair_image = np.repeat(np.arange(count, dtype=np.int32), per_image)
        pair_draw = np.tile(np.repeat(np.arange(draws, dtype=np.int32), steps), count)
        pair_alpha = np.tile(np.asarray(alphas, np.float32), count * draws)
        pair_weight = np.tile(np.asarray(weights, np.float32), count * draws)
        run = self._path_function(times_delta, shape)
        noise_table = tf.constant(noise, tf.float32)
        total = tf.zeros_like(images)
        for start in range(0, len(pair_image), self.sample_batch_size):
            part = slice(start, start + self.sample_batch_size)
            total += run(images, baselines, tf.cast(targets, tf.int32), noise_table,
                         tf.cast(sigma, tf.float32), tf.constant(pair_image[part]),
                         tf.constant(pair_draw[part]), tf.constant(pair_alpha[part]),
                         tf.constant(pair_weight[part]))
        return total

    def _path_function(self, times_delta: bool, shape: tuple[int, ...]) -> Any:
        """The compiled sample function, traced once per model, head, rule, guidance and film
        shape (known shapes let the convolutions pick their fastest kernels)."""
        if (times_delta, shape) not in self._path_functions:
            clf = self.classifier
            image = [None, *shape]
            specs = (
                tf.TensorSpec(image, tf.float32), tf.TensorSpec(image, tf.float32),
                tf.TensorSpec([None], tf.int32), tf.TensorSpec(image, tf.float32),
                tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([None], tf.float32),
            )
            key = ("input-gradients", self.guided, times_delta, shape, clf.output_activation,
                   clf.multilabel, clf.num_classes)

            def trace() -> Any:
                with self._interception():
                    function = self._delta_sums if times_delta else self._gradient_sums
                    return tf.function(function).get_concrete_function(*specs)

            self._path_functions[times_delta, shape] = _passes.shared(self.model, key, trace)
        return self._path_functions[times_delta, shape]

    def _gradient_sums(self, *args: tf.Tensor) -> tf.Tensor:
        return self._sums(*args, times_delta=False)

    def _delta_sums(self, *args: tf.Tensor) -> tf.Tensor:
        return self._sums(*args, times_delta=True)

    def _sums(self, images: tf.Tensor, baselines: tf.Tensor, targets: tf.Tensor,
              noise: tf.Tensor, sigma: tf.Tensor, pair_image: tf.Tensor, pair_draw: tf.Tensor,
              alpha: tf.Tensor, weight: tf.Tensor, *, times_delta: bool) -> tf.Tensor:
        """Traced: the samples of one chunk, their gradients, summed per film."""
        start = tf.gather(baselines, pair_image)
        noisy = (tf.gather(images, pair_image)
                 + tf.gather(sigma, pair_image)[:, None, None, None]
                 * tf.gather(noise, pair_draw))
        delta = noisy - start
        samples = start + alpha[:, None, None, None] * delta
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(samples)
            scores = self._sample_scores(samples, tf.gather(targets, pair_image))
            total = tf.reduce_sum(scores)
        gradients = tape.gradient(total, samples)
        if gradients is None:  # pragma: no cover - a Keras model's output depends on its input
            raise ModelStructureError("model: the class score does not depend on the input")
        terms = gradients * weight[:, None, None, None]
        if times_delta:
            terms = terms * delta
        return tf.math.unsorted_segment_sum(terms, pair_image, tf.shape(images)[0])

    def _sample_scores(self, samples: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Traced, under the interception: ``(B,)`` target scores before softmax/sigmoid."""
        captured = self._captured
        captured.logits = None
        clf = self.classifier
        outputs = self.model(samples, training=False)
        logits = logits_from_outputs(outputs, captured.logits, activation=clf.output_activation,
                                     owner=type(self).__name__)
        return target_scores(logits, targets)


class NoisySamples:
    """The noise of SmoothGrad and Smooth IG, written once: ``n`` seeded draws per film,
    scaled by a share of each film's range (:func:`gaussian_noise`, :func:`image_ranges`).

    A mixin: the explainer calls :meth:`_set_noise` in its constructor, adds
    :meth:`_noise_options` to its options and passes :meth:`_noise` to its path gradients.
    """

    samples: int
    noise: float
    seed: int

    def _set_noise(self, samples: int, noise: float, seed: int) -> None:
        self.samples = check_int(samples, "samples")
        self.noise = check_number(noise, "noise", low=0.0)
        self.seed = check_int(seed, "seed", minimum=0)

    def _noise_options(self) -> dict[str, Any]:
        return {"samples": self.samples, "noise": self.noise, "seed": self.seed}

    def _noise(self, images: tf.Tensor) -> dict[str, Any]:
        """``noise=`` and ``sigma=`` of :meth:`GradientExplainer._path_gradients`."""
        draws = gaussian_noise(self.seed, self.samples, tuple(int(d) for d in images.shape[1:]))
        return {"noise": draws, "sigma": self.noise * image_ranges(images)}


def image_ranges(images: tf.Tensor) -> tf.Tensor:
    """``(N,)`` each film's ``max - min`` over its pixels and channels."""
    return (tf.reduce_max(images, axis=[1, 2, 3]) - tf.reduce_min(images, axis=[1, 2, 3]))


def gaussian_noise(seed: int, draws: int, shape: tuple[int, ...]) -> np.ndarray:
    """``(draws, *shape)`` float32 standard normal noise from ``numpy.random.default_rng(seed)``.

    The one noise of SmoothGrad and Smooth IG: draw ``s`` is the same for every film.

    Example:
        >>> gaussian_noise(0, 2, (3, 3, 1)).shape
        (2, 3, 3, 1)
    """
    return np.random.default_rng(seed).standard_normal((draws, *shape), dtype=np.float32)
