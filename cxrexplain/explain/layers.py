"""Find the layer to explain, in any Keras model, and intercept its output during a forward pass.

Keras Grad-CAM code usually builds ``keras.Model(model.inputs, [layer.output, model.output])``,
which fails with "Graph disconnected" when the layer lives inside a nested backbone (a Keras
Applications model inside a Sequential) and cannot work on subclassed models at all. Here the
model is run as it is, and the chosen layer's ``call`` is intercepted for the duration of the
trace: the same mechanism serves Sequential, Functional, nested, subclassed and reloaded models.

A probe pass on one blank image records every leaf layer's output shape in execution order;
the default target is the last layer with a 4-D output before the global pooling. A layer
whose class sets ``target_candidate = False`` is never the default (it can still be named):
the :class:`~cxrexplain.models.LungFocus` of a lung-focused model, whose output is the masked
film and which holds the segmenter out of the probe's sight.

Example:
    >>> import keras
    >>> from cxrexplain.explain.layers import find_layers
    >>> backbone = keras.applications.VGG16(weights=None, include_top=False,
    ...                                     input_shape=(64, 64, 3))
    >>> model = keras.Sequential([keras.Input((64, 64, 3)), backbone,
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> find_layers(model, (64, 64, 3)).default_target().path
    'vgg16/block5_pool'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from cxrexplain._checks import first_line
from cxrexplain._keras_utils import leaf_layers
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain._tokens import is_attention

__all__ = ["LayerCall", "ModelLayers", "find_layers", "gap_dense_head", "intercept",
           "layer_activations", "probe_layers"]

_GLOBAL_POOLING = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


@dataclass(frozen=True)
class LayerCall:
    """One leaf layer's call during the probe pass.

    Attributes:
        path: The layer's name, prefixed by the names of the nested models that hold it
            (``"vgg16/block5_conv3"``).
        layer: The layer object.
        output_shape: Its output shape for one image, batch axis included.
    """

    path: str
    layer: keras.layers.Layer
    output_shape: tuple[int, ...]

    @property
    def is_spatial(self) -> bool:
        """True for a 4-D ``(batch, h, w, channels)`` output."""
        return len(self.output_shape) == 4

    @property
    def is_tokens(self) -> bool:
        """True for a 3-D ``(batch, tokens, dim)`` output (a transformer's tokens)."""
        return len(self.output_shape) == 3


@dataclass(frozen=True)
class ModelLayers:
    """The leaf layers of a model in the order a forward pass calls them."""

    calls: tuple[LayerCall, ...]
    paths: dict[int, str]

    def spatial_paths(self) -> list[str]:
        """Paths of the layers with 4-D outputs: the candidates for a target layer."""
        return [c.path for c in self.calls if c.is_spatial]

    def default_target(self, *, tokens: bool = False) -> LayerCall:
        """The last 4-D-output layer before the last global pooling (else the last 4-D one).

        Layers whose class sets ``target_candidate = False`` are passed over. With ``tokens``,
        a model with attention layers (a vision transformer) gets the last layer with a 3-D
        token output called before its last attention layer: the input of the last block's
        attention (pytorch-grad-cam's ``blocks[-1].norm1``). The last block's own output is
        no target: only its class token reaches the head, so its patch tokens' gradients are 0.
        """
        if tokens:
            attention = [i for i, c in enumerate(self.calls) if is_attention(c.layer)]
            if attention:
                before = [c for c in self.calls[: attention[-1]] if c.is_tokens
                          and getattr(c.layer, "target_candidate", True) is not False]
                if before:
                    return before[-1]
        pooled = [i for i, c in enumerate(self.calls) if isinstance(c.layer, _GLOBAL_POOLING)]
        end = pooled[-1] if pooled else len(self.calls)
        spatial = [c for c in self.calls[:end]
                   if c.is_spatial and getattr(c.layer, "target_candidate", True) is not False]
        if not spatial:
            raise ModelStructureError(
                "model: no layer with a 4-D (batch, height, width, channels) output before the "
                "classifier head; class activation maps need a convolutional layer"
            )
        return spatial[-1]

    def after(self, call: LayerCall) -> list[LayerCall]:
        """The calls that follow ``call`` (its last occurrence) in the forward pass."""
        index = max(i for i, c in enumerate(self.calls) if c.layer is call.layer)
        return list(self.calls[index + 1 :])

    def resolve(self, layer: str | keras.layers.Layer | None, *, tokens: bool = False
                ) -> LayerCall:
        """The call of a layer given by path, bare name or object (None: the default).

        With ``tokens``, a layer with a 3-D ``(batch, tokens, dim)`` output is a target too
        (the explainer folds its tokens into a grid).
        """
        if layer is None:
            return self.default_target(tokens=tokens)
        if isinstance(layer, str):
            matches = [c for c in self.calls if c.path == layer]
            if not matches:
                matches = [c for c in self.calls if c.path.rsplit("/", 1)[-1] == layer]
                if len({id(c.layer) for c in matches}) > 1:
                    raise ModelStructureError(
                        f"layer: the name '{layer}' is ambiguous; use one of "
                        f"{sorted({c.path for c in matches})}"
                    )
        elif isinstance(layer, keras.layers.Layer):
            matches = [c for c in self.calls if c.layer is layer]
        else:
            raise InvalidInputError(
                f"layer: expected a layer name, a nested path or a keras layer, got "
                f"{type(layer).__name__}"
            )
        if not matches:
            shown = layer if isinstance(layer, str) else getattr(layer, "name", layer)
            raise ModelStructureError(
                f"layer: no layer '{shown}' in the model's forward pass; layers with 4-D "
                f"outputs: {self.spatial_paths()}"
            )
        chosen = matches[-1]
        if not (chosen.is_spatial or (tokens and chosen.is_tokens)):
            raise ModelStructureError(
                f"layer: '{chosen.path}' has a {len(chosen.output_shape)}-D output "
                f"{chosen.output_shape}; a target layer needs a 4-D (batch, h, w, channels) "
                f"output; candidates: {self.spatial_paths()}"
            )
        return chosen


def find_layers(model: keras.Model, input_shape: tuple[int, int, int]) -> ModelLayers:
    """Run one blank image through ``model`` and record each leaf layer's call in order.

    Args:
        model: Any Keras model (Sequential, Functional, nested or subclassed).
        input_shape: ``(height, width, channels)`` of one image.

    Returns:
        The calls, in execution order.

    Raises:
        ModelStructureError: The model cannot run on an image of that shape.
    """
    leaves = probe_layers(model)
    paths = {id(layer): path for path, layer in leaves}
    layers = {id(layer): layer for _, layer in leaves}
    calls: list[LayerCall] = []

    def recorder(layer: Any) -> Callable[..., Any]:
        def record(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            if hasattr(output, "shape") and not isinstance(output, (list, tuple, dict)):
                calls.append(LayerCall(paths[id(layer)], layer, tuple(int(d) for d in
                                                                      output.shape)))
            return output

        return record

    probe = np.zeros((1, *input_shape), np.float32)
    with contextlib.ExitStack() as stack:
        for layer in layers.values():
            stack.enter_context(intercept(layer, recorder(layer)))
        try:
            model(probe, training=False)
        except Exception as err:
            raise ModelStructureError(
                f"model: cannot run it on a {input_shape} image ({type(err).__name__}: "
                f"{first_line(err)})"
            ) from err
    return ModelLayers(tuple(calls), paths)


def probe_layers(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """``(path, layer)`` of the layers the probe records: the leaf layers of the model and its
    nested models, a layer that holds attention layers opened into its sublayers.

    Keras-hub's ViT keeps its transformer blocks inside one ``ViTEncoder`` layer (not a
    model); opening it (``vit_encoder/transformer_block_2/ln_1``) lets the probe see the
    attention layers and their inputs. Layers without attention inside stay whole, so a CNN's
    leaves are :func:`~cxrexplain._keras_utils.leaf_layers`'.

    Args:
        model: Any Keras model.

    Returns:
        The paths and layers, in the models' layer order.

    Example:
        >>> [path for path, _ in probe_layers(model)][:3]  # a CNN: its leaf layers
        ['image', 'block1_conv', 'block1_bn']
    """
    found: list[tuple[str, keras.layers.Layer]] = []
    for path, layer in leaf_layers(model):
        found.extend(_opened(path, layer))
    return found


def _opened(path: str, layer: Any) -> list[tuple[str, Any]]:
    if is_attention(layer) or not _holds_attention(layer):
        return [(path, layer)]
    return [item for child in _sublayers(layer)
            for item in _opened(f"{path}/{child.name}", child)]


def _sublayers(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:  # pragma: no cover - every Keras 3 layer has it
        return []
    return list(flatten(include_self=False, recursive=False))


def _holds_attention(layer: Any) -> bool:
    return any(is_attention(child) or _holds_attention(child) for child in _sublayers(layer))


def layer_activations(
    model: keras.Model, batch: np.ndarray, layer: str | keras.layers.Layer | None = None
) -> tuple[str, np.ndarray]:
    """One layer's output for a batch, from the model run as it is (nested models too).

    Args:
        model: Any Keras model.
        batch: ``(N, H, W, C)`` images the model takes.
        layer: Name, nested path (``"vgg16/block5_conv3"``), layer object, or None for the
            default target layer (the last 4-D layer before the global pooling).

    Returns:
        The layer's path and its ``(N, h, w, k)`` float32 activations.

    Raises:
        ModelStructureError: Unknown layer (the message lists the 4-D layers) or a layer
            without a 4-D output.

    Example:
        >>> path, maps = layer_activations(model, batch, "block1_relu")
        >>> path, maps.shape
        ('block1_relu', (4, 32, 32, 4))
    """
    call = find_layers(model, tuple(batch.shape[1:])).resolve(layer)
    captured: list[Any] = []

    def capture(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        output = original(*args, **kwargs)
        captured.append(output)
        return output

    with intercept(call.layer, capture):
        model(batch, training=False)
    return call.path, np.asarray(keras.ops.convert_to_numpy(captured[-1]), dtype=np.float32)


@contextlib.contextmanager
def intercept(
    layer: keras.layers.Layer, hook: Callable[..., Any]
) -> Iterator[None]:
    """Route ``layer.call(*args)`` through ``hook(original_call, *args)`` within the block.

    The layer is restored on exit, even on error. Inside a ``tf.function`` the hook runs only
    while tracing; the traced graph keeps its effect.

    Args:
        layer: The layer to intercept.
        hook: Called as ``hook(original_call, *args, **kwargs)``; returns the layer output.
    """
    had_own = "call" in vars(layer)
    original = layer.call

    def call(*args: Any, **kwargs: Any) -> Any:
        return hook(original, *args, **kwargs)

    object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        if had_own:
            object.__setattr__(layer, "call", original)
        else:
            object.__delattr__(layer, "call")


_PASS_THROUGH = (keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.GaussianDropout,
                 keras.layers.GaussianNoise, keras.layers.AlphaDropout)


def gap_dense_head(structure: ModelLayers, target: LayerCall, who: str = "CAM") -> Any:
    """The Dense layer of a ``target -> GlobalAveragePooling2D -> (Dropout) -> Dense`` head.

    The one check of a CAM head, shared by :class:`CAM` and the explanation guide
    (:class:`cxrexplain.training.Guide`), which both need ``w[k, c]``.

    Args:
        structure: The model's layer calls (:func:`~cxrexplain.explain.layers.find_layers`).
        target: The layer whose output feeds the pooling.
        who: Who asks, for the error message.

    Returns:
        The head's ``keras.layers.Dense``.

    Raises:
        ModelStructureError: The model has another head; the message names what follows the
            target layer and suggests Grad-CAM.

    Example:
        >>> layers = find_layers(model, model.input_shape[1:])
        >>> type(gap_dense_head(layers, layers.default_target())).__name__
        'Dense'
    """
    head = [c for c in structure.after(target) if not isinstance(c.layer, _PASS_THROUGH)]
    kinds = [type(c.layer).__name__ for c in head]
    ok = (
        len(head) >= 2
        and isinstance(head[0].layer, keras.layers.GlobalAveragePooling2D)
        and not getattr(head[0].layer, "keepdims", False)
        and isinstance(head[1].layer, keras.layers.Dense)
        and all(_is_final_activation(c.layer) for c in head[2:])
    )
    if not ok:
        raise ModelStructureError(
            f"model: {who} needs the layer '{target.path}' to feed GlobalAveragePooling2D -> "
            f"(Dropout) -> Dense as the model's head; after it the model runs {kinds}. "
            "Use GradCAM (or HiResCAM) for this model, or pass the layer that feeds the "
            "global average pooling"
        )
    return head[1].layer


def _is_final_activation(layer: keras.layers.Layer) -> bool:
    """A layer after the Dense that only applies softmax/sigmoid/identity."""
    if isinstance(layer, keras.layers.Softmax):
        return True
    if isinstance(layer, keras.layers.Activation):
        name = getattr(layer.activation, "__name__", "")
        return name in ("softmax", "sigmoid", "linear")
    return False
