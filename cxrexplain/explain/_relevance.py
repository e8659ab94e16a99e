"""A model as a chain of the layers relevance methods know, and its backward passes (private).

DeepLIFT and LRP (:mod:`cxrexplain.explain.deeplift`, :mod:`cxrexplain.explain.lrp`) replace
the gradient's chain rule by a rule per layer, so they need to know each layer. Here a model
(Sequential, Functional, nested, subclassed) is read as the chain of its leaf layers in the
order the probe pass calls them (:func:`~cxrexplain.explain.layers.find_layers`), each one
turned into a :class:`Step` that recomputes it in float32 from its own weights (the user's
model is never changed or rebuilt, and a ``mixed_float16`` model is explained in float32):

* ``kernel``: ``Conv2D`` and ``Dense``, their pre-activation ``W a + b``; a ReLU activation
  becomes a ``relu`` step after it; the softmax/sigmoid of the model's last layer is dropped
  (the methods explain the score before it, as Grad-CAM);
* ``batchnorm``: ``BatchNormalization`` (inference: a per-channel affine map); right after a
  kernel it is part of the kernel's :class:`Unit` (the canonical fusion of LRP practice);
* ``relu``: ``ReLU``, ``Activation("relu")``;
* ``maxpool``: ``MaxPooling2D``, ``GlobalMaxPooling2D`` and cxrexplain's
  ``DilatedMaxPooling2D``;
* ``pool``: ``AveragePooling2D``, ``GlobalAveragePooling2D``;
* ``affine``: what moves, copies or rescales values without mixing them: ``Flatten``,
  ``Reshape``, the dropout and noise layers (identity at inference), ``ZeroPadding2D``,
  ``Cropping2D``, ``Rescaling``, cxrexplain's ``ImagenetPreprocessing``, a ``Concatenate`` of
  copies of one tensor (the builders' gray-to-RGB), ``Activation("linear")``, and a
  ``BatchNormalization`` that follows no kernel.

Any other layer raises :class:`~cxrexplain.errors.ModelStructureError` naming the first one.
The chain is checked once against the model itself on a fixed random probe batch: a model
that does more than its layers in a row (a branch, an operation between layers of a
subclassed model) raises the same error rather than giving wrong maps.

Example:
    >>> from cxrexplain.explain._relevance import chain_of
    >>> chain = chain_of(model, (32, 32, 1), "LRP")
    >>> [unit.kind for unit in chain.units][:4]
    ['kernel', 'relu', 'maxpool', 'kernel']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cxrexplain import _keras_utils, _passes
from cxrexplain.classifier import Classifier
from cxrexplain.errors import ModelStructureError
from cxrexplain.explain.kinds import InputExplainer
from cxrexplain.explain.layers import LayerCall, find_layers
from cxrexplain.explain.targets import target_scores
from cxrexplain.models.layers import DilatedMaxPooling2D, ImagenetPreprocessing

__all__ = ["Chain", "ChainExplainer", "Step", "Unit", "chain_of", "score_gradient",
           "stabilised", "vjp"]

Fn = Callable[[tf.Tensor], tf.Tensor]

_MAX_POOLS = (keras.layers.MaxPooling2D, keras.layers.GlobalMaxPooling2D, DilatedMaxPooling2D)
_AVERAGE_POOLS = (keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D)
_AFFINE = (keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout,
           keras.layers.SpatialDropout2D, keras.layers.GaussianDropout,
           keras.layers.GaussianNoise, keras.layers.AlphaDropout, keras.layers.ZeroPadding2D,
           keras.layers.Cropping2D, keras.layers.Rescaling, ImagenetPreprocessing)
_HEADS = ("softmax", "sigmoid")
_SUPPORTED = ("Conv2D, Dense, BatchNormalization, ReLU, max/average pooling, global pooling, "
              "Flatten, Dropout")


@dataclass(frozen=True)
class Step:
    """One layer's share of the chain: a kind and its float32 forward function."""

    kind: str
    path: str
    layer: keras.layers.Layer
    run: Fn


@dataclass(frozen=True)
class Unit:
    """The steps one rule treats as one layer: a kernel with the batch norms right after it
    (its ``scale``: the product of their per-channel factors), or a single other step."""

    kind: str
    steps: tuple[Step, ...]

    @property
    def path(self) -> str:
        """The first layer's path."""
        return self.steps[0].path

    def run(self, x: tf.Tensor) -> tf.Tensor:
        """The unit's forward function."""
        for step in self.steps:
            x = step.run(x)
        return x

    def scale(self) -> tf.Tensor:
        """``(k,)`` the per-channel factor of the batch norms fused into a kernel unit."""
        factor = tf.constant(1.0, tf.float32)
        for step in self.steps[1:]:
            factor = factor * _bn_scale(step.layer)
        return factor


@dataclass(frozen=True)
class Chain:
    """A model as units in a row; the last one ends in the scores before softmax/sigmoid."""

    units: tuple[Unit, ...]

    def forward(self, x: tf.Tensor) -> list[tf.Tensor]:
        """Every unit's input, then the last unit's output (the logits): ``len(units) + 1``."""
        values = [tf.cast(x, tf.float32)]
        for unit in self.units:
            values.append(unit.run(values[-1]))
        return values


def chain_of(model: keras.Model, input_shape: tuple[int, int, int], owner: str) -> Chain:
    """The model's :class:`Chain` for images of ``input_shape``, shared per model and shape.

    Args:
        model: A Keras model.
        input_shape: ``(height, width, channels)``.
        owner: The method's name, for the error messages.

    Raises:
        ModelStructureError: A layer the methods have no rule for (the first one is named), or
            a model that is not the chain of its layers.
    """
    height, width, channels = (int(d) for d in input_shape)
    shape = (height, width, channels)
    structure = _passes.shared(model, ("layers", shape), lambda: find_layers(model, shape))
    return _passes.shared(model, ("relevance-chain", shape),
                          lambda: _build(model, structure.calls, shape, owner))


def vjp(function: Fn, x: tf.Tensor, cotangent: tf.Tensor) -> tf.Tensor:
    """``J^T cotangent``, J the Jacobian of ``function`` at ``x``."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        y = function(x)
    result = tape.gradient(y, x, output_gradients=cotangent)
    return tf.zeros_like(x) if result is None else result


def stabilised(z: tf.Tensor, epsilon: float) -> tf.Tensor:
    """``z + epsilon * sign(z)``, with sign(0) = 1: a denominator that is never 0 for eps > 0."""
    return z + tf.where(z >= 0, epsilon, -epsilon)


def score_gradient(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """``(N, units)`` the derivative of each image's target score by the logits: the one-hot
    of the target (negated for target 0 of a one-unit sigmoid head)."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(logits)
        total = tf.reduce_sum(target_scores(logits, targets))
    return tape.gradient(total, logits)


class ChainExplainer(InputExplainer):
    """Base of the explainers that run their own backward pass over the model's :class:`Chain`.

    A method overrides :meth:`_attributions`; the map is its sum over the channels. The chain
    is read when the explainer is built (models of known input size: an unsupported layer
    raises at once) or before the first batch.
    """

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        super().__init__(model, layer=layer)
        self._chain: Chain | None = None
        self._attribute: Any = None
        clf = self.classifier
        if clf.input_size is not None and clf.channels is not None:
            self._prepare((*clf.input_size, clf.channels))

    def _prepare(self, image_shape: tuple[int, ...]) -> None:
        height, width, channels = image_shape
        self._chain = chain_of(self.model, (height, width, channels), type(self).__name__)

    def _attributions(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Traced: ``(N, H, W, C)`` signed attributions of the target scores."""
        raise NotImplementedError

    def combine(self, images: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """The attributions summed over the channels."""
        return tf.reduce_sum(self._attributions(images, targets), axis=-1)

    def attribute(self, images: Any, targets: Any) -> np.ndarray:
        """The signed attributions of each pixel and channel, before any ReLU or scaling.

        Args:
            images: Anything :func:`cxrexplain.load_images` accepts.
            targets: One class (index or name) for all images, or one per image.

        Returns:
            ``(N, H, W, C)`` float32.
        """
        batch = self.classifier.prepare(images)
        wanted = self.classifier.target_indices(targets, len(batch))
        self._prepare(tuple(batch.shape[1:]))
        if self._attribute is None:
            self._attribute = tf.function(self._attributions)
        return np.asarray(self._attribute(tf.constant(batch), tf.constant(wanted, tf.int32)))


# ---------------------------------------------------------------------------- building
def _build(model: keras.Model, calls: tuple[LayerCall, ...], input_shape: tuple[int, ...],
           owner: str) -> Chain:
    steps: list[Step] = []
    previous = (1, *input_shape)
    for index, call in enumerate(calls):
        last = index == len(calls) - 1
        steps.extend(_steps(call, previous, last, owner))
        previous = call.output_shape
    chain = Chain(_units(steps))
    _check(model, chain, input_shape, owner)
    return chain


def _unsupported(call: LayerCall, owner: str, what: str = "") -> ModelStructureError:
    kind = what or type(call.layer).__name__
    return ModelStructureError(
        f"model: {owner} has a rule for networks of {_SUPPORTED} layers (and nested models "
        f"of them); layer '{call.path}' is {kind}. Explain this model with a gradient or CAM "
        "method (GradCAM, ...) or a black-box one (Occlusion, RISE)"
    )


def _activation_steps(call: LayerCall, activation: Any, last: bool, owner: str) -> list[Step]:
    name = _keras_utils.activation_name(activation)
    if name == "linear":
        return []
    if name == "relu":
        return [Step("relu", call.path, call.layer, tf.nn.relu)]
    if name in _HEADS and last:
        return []  # the score before the model's final softmax/sigmoid
    raise _unsupported(call, owner, f"{type(call.layer).__name__} with a {name} activation")


def _steps(call: LayerCall, previous: tuple[int, ...], last: bool, owner: str) -> list[Step]:
    layer = call.layer
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and type(layer) in (
            keras.layers.Conv2D, keras.layers.Dense):
        kernel_step = Step("kernel", call.path, layer, _kernel_function(layer))
        return [kernel_step, *_activation_steps(call, layer.activation, last, owner)]
    if isinstance(layer, keras.layers.BatchNormalization):
        if layer.axis not in (-1, len(call.output_shape) - 1):
            raise _unsupported(call, owner, "a BatchNormalization over another axis than "
                                            "the channels")
        return [Step("batchnorm", call.path, layer, _batchnorm_function(layer))]
    if isinstance(layer, keras.layers.ReLU):
        plain = (layer.max_value is None and float(layer.negative_slope) == 0.0
                 and float(layer.threshold) == 0.0)
        if not plain:
            raise _unsupported(call, owner, "a ReLU with a cap, slope or threshold")
        return [Step("relu", call.path, layer, tf.nn.relu)]
    if isinstance(layer, keras.layers.Softmax):
        if last:
            return []
        raise _unsupported(call, owner, "a Softmax inside the network")
    if isinstance(layer, keras.layers.Activation):
        return _activation_steps(call, layer.activation, last, owner)
    if isinstance(layer, _MAX_POOLS):
        return [Step("maxpool", call.path, layer, _call_function(layer))]
    if isinstance(layer, _AVERAGE_POOLS):
        return [Step("pool", call.path, layer, _call_function(layer))]
    if isinstance(layer, _AFFINE):
        return [Step("affine", call.path, layer, _call_function(layer))]
    if isinstance(layer, keras.layers.Concatenate):
        copies = _copies(call, previous)
        if copies is None:
            raise _unsupported(call, owner, "a Concatenate of different tensors (a branch)")
        axis = layer.axis

        def concatenate(x: tf.Tensor) -> tf.Tensor:
            return tf.concat([x] * copies, axis=axis)

        return [Step("affine", call.path, layer, concatenate)]
    raise _unsupported(call, owner)


def _copies(call: LayerCall, previous: tuple[int, ...]) -> int | None:
    """How many copies of one tensor a Concatenate joins (None: different tensors)."""
    nodes = getattr(call.layer, "_inbound_nodes", None) or []
    for node in nodes:
        tensors = list(getattr(node, "input_tensors", []) or [])
        if tensors and any(t is not tensors[0] for t in tensors):
            return None
    axis = call.layer.axis
    joined, single = call.output_shape[axis], previous[axis]
    if not single or joined % single:
        return None
    return int(joined // single)


def _kernel_function(layer: keras.layers.Layer) -> Fn:
    def kernel(x: tf.Tensor) -> tf.Tensor:
        weights = tf.cast(layer.kernel, tf.float32)
        if isinstance(layer, keras.layers.Conv2D):
            z = layer.convolution_op(x, weights)
        else:
            z = keras.ops.matmul(x, weights)
        if layer.use_bias:
            z = z + tf.cast(layer.bias, tf.float32)
        return tf.cast(z, tf.float32)

    return kernel


def _bn_scale(layer: keras.layers.Layer) -> tf.Tensor:
    scale = tf.math.rsqrt(tf.cast(layer.moving_variance, tf.float32) + layer.epsilon)
    if layer.scale:
        scale = scale * tf.cast(layer.gamma, tf.float32)
    return scale


def _batchnorm_function(layer: keras.layers.Layer) -> Fn:
    def batchnorm(x: tf.Tensor) -> tf.Tensor:
        y = (x - tf.cast(layer.moving_mean, tf.float32)) * _bn_scale(layer)
        if layer.center:
            y = y + tf.cast(layer.beta, tf.float32)
        return y

    return batchnorm


def _call_function(layer: keras.layers.Layer) -> Fn:
    def call(x: tf.Tensor) -> tf.Tensor:
        return tf.cast(layer.call(x), tf.float32)

    return call


def _units(steps: list[Step]) -> tuple[Unit, ...]:
    units: list[Unit] = []
    for step in steps:
        if step.kind == "batchnorm" and units and units[-1].kind == "kernel":
            units[-1] = Unit("kernel", (*units[-1].steps, step))
        elif step.kind == "batchnorm":
            units.append(Unit("affine", (step,)))
        else:
            units.append(Unit(step.kind, (step,)))
    return tuple(units)


def _check(model: keras.Model, chain: Chain, input_shape: tuple[int, ...], owner: str) -> None:
    """The chain's outputs against the model's on a fixed random probe batch."""
    probe = np.random.default_rng(0).random((2, *input_shape)).astype(np.float32)
    outputs = np.asarray(keras.ops.convert_to_numpy(model(probe, training=False)), np.float64)
    logits = np.asarray(chain.forward(tf.constant(probe))[-1], np.float64)
    if logits.shape != outputs.shape:
        raise ModelStructureError(
            f"model: {owner} read the model as a chain of its layers, which gives outputs of "
            f"shape {logits.shape}, not the model's {outputs.shape}; the model has branches "
            "or operations between its layers"
        )
    head = _keras_utils.head_activation(model)
    if head == "softmax":
        shifted = logits - logits.max(axis=-1, keepdims=True)
        mine = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    elif head == "sigmoid":
        mine = 1.0 / (1.0 + np.exp(-logits))
    else:
        mine = logits
    half = any(getattr(layer, "compute_dtype", "float32") in ("float16", "bfloat16")
               for _, layer in _keras_utils.leaf_layers(model))
    tolerance = (2e-2 if half else 1e-3) * (1.0 + float(np.abs(outputs).max()))
    gap = float(np.abs(mine - outputs).max())
    if not gap <= tolerance:
        raise ModelStructureError(
            f"model: {owner} read the model as a chain of its layers, whose outputs differ "
            f"from the model's by {gap:.3g}; the model has branches or operations between its "
            "layers, which relevance methods cannot follow"
        )
