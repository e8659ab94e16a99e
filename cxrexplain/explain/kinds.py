"""The two kinds of explainer: from a layer's activations, or over the input pixels.

A method subclasses one of them, sets ``name`` and overrides one of two hooks; the pipeline
(batching, targets, the score before the activation, normalisation, the compiled passes) is
:class:`~cxrexplain.explain.base.Explainer`'s.

* :class:`LayerExplainer` (white box, the CAM family): the model's target layer is found by a
  probe pass (:mod:`cxrexplain.explain.layers`) and its output captured in the pass. Hooks:
  ``combine(activations, gradients, targets)``, a formula traced into the pass, gradients of
  the scores with respect to the activations; or ``combine_with_model(images, activations,
  targets)``, eager, for methods that run the model again (Score-CAM). Maps are at the layer's
  resolution. Behind a crop-mode lung focus (:class:`~cxrexplain.lungs.focus.LungFocus`) the
  layer sees the crop, not the film: the focus's input is captured too, and the base maps the
  finished maps back to the film through each film's crop box.
* :class:`InputExplainer` (black box, or gradients at the input): no layer is probed or
  captured, ``layer`` is ``"input"``, and the maps are at the input's resolution. Hooks:
  ``combine(images, gradients, targets)``, traced, gradients of the scores with respect to the
  images; or ``combine_with_model(images, targets)``, eager (occlusion). It works on models
  without a convolutional layer.

Example:
    >>> import cxrexplain as cx
    >>> from cxrexplain.explain import InputExplainer, LayerExplainer
    >>> issubclass(cx.GradCAM, LayerExplainer), issubclass(cx.Occlusion, InputExplainer)
    (True, True)
    >>> cx.Occlusion(clf, patch=8).layer, cx.GradCAM(clf).layer
    ('input', 'block2_relu')
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from cxrexplain import _passes
from cxrexplain._checks import describe
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain._tokens import check_token_args, from_grid, to_grid, token_layout
from cxrexplain.explain.base import Explainer
from cxrexplain.explain.layers import LayerCall, ModelLayers, find_layers
from cxrexplain.lungs.focus import LungFocus

__all__ = ["InputExplainer", "LayerExplainer"]


class LayerExplainer(Explainer):
    """Base of the explainers that read one target layer (the CAM family).

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: The layer to explain: a name, a nested path (``"vgg16/block5_conv3"``) or a
            layer object. Default: the last layer with a 4-D output before the global pooling;
            in a model with attention layers (a vision transformer), the last layer with a
            3-D token output before its last attention layer (the last block's ``norm1``).
        token_grid: For a layer with ``(N, T, D)`` token outputs: ``(rows, columns)`` of its
            patch tokens, when T does not say it. By default one leading class token is
            dropped if ``T - 1`` is a perfect square, none if T is, and the ``n`` patch tokens
            fold row-major into a ``sqrt(n) x sqrt(n)`` grid.
        prefix_tokens: For a token layer: the number of leading (class/extra) tokens.

    Raises:
        ModelStructureError: The layer is unknown or has no 4-D (or 3-D token) output, the
            model has no convolutional layer, or a token layer's tokens fold into no grid
            (the message says how many there are).
        InvalidInputError: A malformed ``token_grid`` or ``prefix_tokens``.

    Example:
        >>> explainer = cx.HiResCAM(clf, layer="block1_relu")
        >>> explainer.layer, explainer.explain(batch).raw.shape
        ('block1_relu', (4, 32, 32))
    """

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
        token_grid: tuple[int, int] | None = None,
        prefix_tokens: int | None = None,
    ) -> None:
        super().__init__(model)
        self._layer_arg = layer
        self._token_args: dict[str, Any] = {
            key: value for key, value in (("token_grid", token_grid),
                                          ("prefix_tokens", prefix_tokens))
            if value is not None}
        check_token_args(token_grid, prefix_tokens)
        self._structure: ModelLayers | None = None
        self._target: LayerCall | None = None
        self._layout: tuple[int, int, int] | None = None
        if self.classifier.input_size is not None and self.classifier.channels is not None:
            self._inspect((*self.classifier.input_size, self.classifier.channels))

    @property
    def layer(self) -> str:
        """Path of the target layer (resolved on first use for models of unknown input size)."""
        if self._target is None:
            raise ModelStructureError(
                "layer: not resolved yet; the model's input size is unknown until the first "
                "explain() call"
            )
        return self._target.path

    def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """Hook 1: the method's map at the layer's resolution, before ReLU: ``(N, h, w)``.

        Traced into the compiled pass. Methods that are a formula over activations and
        gradients override this one.

        Args:
            activations: ``(N, h, w, k)`` float32 target-layer activations.
            gradients: ``(N, h, w, k)`` float32 gradients of the target scores (before
                softmax/sigmoid), or None when :attr:`needs_gradients` is False.
            targets: ``(N,)`` int32 target classes.

        Returns:
            ``(N, h, w)`` float32.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override combine() or combine_with_model()"
        )

    def combine_with_model(self, images: tf.Tensor, activations: tf.Tensor,
                           targets: tf.Tensor) -> tf.Tensor:
        """Hook 2: the map at the layer's resolution, before ReLU, from further model passes.

        Methods that run the model again on (altered) images override this one instead of
        :meth:`combine` (Score-CAM). It is called eagerly, once per batch, after the compiled
        forward pass; the base then applies ReLU, upsampling and normalisation.

        Args:
            images: ``(N, H, W, C)`` float32, the batch as the model takes it.
            activations: ``(N, h, w, k)`` float32 target-layer activations.
            targets: ``(N,)`` int32 target classes.

        Returns:
            ``(N, h, w)`` float32.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ the kind's part
    def _twin_options(self) -> dict[str, Any]:
        layer = self._target.path if self._target is not None else self._layer_arg
        return {"layer": layer, **self._token_args, **self._options()}

    def _pass_key(self) -> tuple[Any, ...]:
        return (*super()._pass_key(), self._layout)

    def _inspect(self, input_shape: tuple[int, int, int]) -> None:
        model = self.model
        self._structure = _passes.shared(model, ("layers", tuple(input_shape)),
                                         lambda: find_layers(model, input_shape))
        target = self._structure.resolve(self._layer_arg, tokens=True)
        if target.is_tokens:
            self._layout = token_layout(target.output_shape[1], where=f"layer '{target.path}'",
                                        **self._token_args)
        self._target = target
        self._check_structure(self._structure, self._target)

    def _check_structure(self, structure: ModelLayers, target: LayerCall) -> None:
        """Hook for methods with structural needs (CAM): raise ModelStructureError."""

    def _prepare(self, image_shape: tuple[int, ...]) -> None:
        if self._target is None:
            height, width, channels = image_shape
            self._inspect((height, width, channels))

    def _features(self, images: tf.Tensor) -> tf.Tensor:
        activations = self._captured.activations
        if activations is None:  # pragma: no cover - the hook always fires on a traced call
            raise ModelStructureError(f"layer: '{self.layer}' was not called by the model")
        return activations

    def _combines_in_graph(self) -> bool:
        return type(self).combine_with_model is LayerExplainer.combine_with_model

    def _combine_traced(self, images: tf.Tensor, features: tf.Tensor,
                        gradients: tf.Tensor | None, targets: tf.Tensor) -> tf.Tensor:
        return self.combine(features, gradients, targets)

    def _combine_eagerly(self, images: tf.Tensor, features: tf.Tensor | None,
                         targets: tf.Tensor) -> tf.Tensor:
        assert features is not None
        return self.combine_with_model(images, features, targets)

    def _returns_features(self) -> bool:
        return True

    def _reframing(self) -> list[Any]:
        """The crop-mode lung foci called before the target layer (or the target itself)."""
        if self._structure is None or self._target is None:
            return []
        calls = self._structure.calls
        end = max(i for i, call in enumerate(calls) if call.layer is self._target.layer)
        found: list[LungFocus] = []
        for call in calls[: end + 1]:
            layer = call.layer
            if isinstance(layer, LungFocus) and layer.reframes and all(
                    layer is not other for other in found):
                found.append(layer)
        return found

    def _crop_boxes(self) -> tf.Tensor:
        foci = self._reframing()
        if not foci:  # not super(): autograph resolves it from the callers' frames' locals,
            return Explainer._crop_boxes(self)  # and keeps them (and the model) alive
        boxes = []
        for focus in foci:
            films = self._captured.inputs.get(id(focus))
            if films is None:  # pragma: no cover - the hook always fires on a traced call
                raise ModelStructureError(f"layer: '{focus.name}' was not called by the model")
            boxes.append(focus.crop_boxes(films))
        return tf.stack(boxes)

    def _hooks(self) -> list[tuple[keras.layers.Layer, Any]]:
        """The target layer's output captured (as float32), then the head's logits; the input
        of each lung crop ahead of it first."""
        assert self._target is not None
        captured = self._captured

        def capture_films(layer: keras.layers.Layer) -> Any:
            def capture(original: Any, *args: Any, **kwargs: Any) -> Any:
                films = args[0] if args else kwargs["inputs"]
                captured.inputs[id(layer)] = films
                return original(*args, **kwargs)

            return capture

        crops = [(layer, capture_films(layer)) for layer in self._reframing()]

        layout = self._layout

        def capture_activations(original: Any, *args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            as_float = tf.cast(output, tf.float32)
            if layout is None:
                captured.activations = as_float
                return tf.cast(as_float, output.dtype)
            # tokens: the patch tokens folded into a grid, which the model then reads (so
            # that the gradients reach it); the leading (class) tokens pass unchanged
            grid = to_grid(as_float, layout)
            captured.activations = grid
            return tf.cast(from_grid(as_float, grid, layout), output.dtype)

        target = self._target.layer
        head = [(layer, hook) for layer, hook in super()._hooks() if layer is not target]
        return [*crops, (target, capture_activations), *head]


class InputExplainer(Explainer):
    """Base of the explainers that work on the input pixels and read no layer.

    Perturbation methods (occlusion) and input-gradient methods: no probe pass, nothing
    captured inside the model, so they explain any model the classifier takes, convolutional
    or not. :attr:`layer` is ``"input"`` and ``Explanation.raw`` is at the input's resolution.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        layer: ``None`` (or ``"input"``); accepted so that every explainer is built alike.

    Raises:
        InvalidInputError: Any other layer.

    Example:
        >>> dense = cx.models.build("dense_baseline", input_shape=(32, 32, 1), num_classes=2)
        >>> exp = cx.Occlusion(dense, patch=8).explain(batch)  # no conv layer: still works
        >>> exp.layer, exp.raw.shape
        ('input', (4, 32, 32))
    """

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        if layer is not None and layer != "input":
            raise InvalidInputError(
                f"layer: {type(self).__name__} works on the input pixels and reads no layer; "
                f"expected None, got {describe(layer)}"
            )
        super().__init__(model)

    @property
    def layer(self) -> str:
        """``"input"``: the maps are over the input pixels, not a layer."""
        return "input"

    def combine(self, images: tf.Tensor, gradients: tf.Tensor | None,
                targets: tf.Tensor) -> tf.Tensor:
        """Hook 1: the map at the input's resolution, before ReLU: ``(N, H, W)``.

        Traced into the compiled pass (input-gradient methods).

        Args:
            images: ``(N, H, W, C)`` float32, the batch as the model takes it.
            gradients: ``(N, H, W, C)`` float32 gradients of the target scores (before
                softmax/sigmoid) with respect to the images, or None when
                :attr:`needs_gradients` is False.
            targets: ``(N,)`` int32 target classes.

        Returns:
            ``(N, H, W)`` float32.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override combine() or combine_with_model()"
        )

    def combine_with_model(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Hook 2: the map at the input's resolution, before ReLU, from further model passes.

        Perturbation methods override this one: it is called eagerly, once per batch, after
        the compiled forward pass has chosen the targets; the base then applies ReLU and
        normalisation.

        Args:
            images: ``(N, H, W, C)`` float32, the batch as the model takes it.
            targets: ``(N,)`` int32 target classes.

        Returns:
            ``(N, H, W)`` float32.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ the kind's part
    def _features(self, images: tf.Tensor) -> tf.Tensor:
        return images

    def _combines_in_graph(self) -> bool:
        return type(self).combine_with_model is InputExplainer.combine_with_model

    def _combine_traced(self, images: tf.Tensor, features: tf.Tensor,
                        gradients: tf.Tensor | None, targets: tf.Tensor) -> tf.Tensor:
        return self.combine(images, gradients, targets)

    def _combine_eagerly(self, images: tf.Tensor, features: tf.Tensor | None,
                         targets: tf.Tensor) -> tf.Tensor:
        return self.combine_with_model(images, targets)
