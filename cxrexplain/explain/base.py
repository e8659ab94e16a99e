"""The :class:`Explainer` base class, the pipeline every explainer shares, and its result.

Explainers come in two kinds, one pipeline under both (the white-box / black-box split of
xplique):

* a :class:`~cxrexplain.explain.kinds.LayerExplainer` turns one target layer's activations
  into a map (the CAM family: CAM, Grad-CAM, Score-CAM, ...);
* an :class:`~cxrexplain.explain.kinds.InputExplainer` works on the input pixels and reads no
  layer (perturbation and input-gradient methods: occlusion); its ``layer`` is ``"input"``.

The pipeline is this module: the images of a batch go through one compiled pass in which the
model runs once, the class scores *before* the final softmax/sigmoid are captured (without
rebuilding the model; :mod:`cxrexplain.explain.targets`) and, for gradient methods, one
backward pass differentiates them with respect to what the kind explains (the layer's
activations, or the images). The targets (each image's predicted class unless given), the
probabilities and the scores come from the same pass. A method then turns the pass into a map
by one of its kind's two hooks, ``combine`` (a formula traced into the pass) or
``combine_with_model`` (eager, once per batch, for methods that run the model again on
altered images), and the base applies ReLU, bilinear upsampling to the input size and
per-image normalisation to [0, 1] (an all-zero map stays zero).

Maps stay in the film's pixels. When a layer ahead of the target layer moves the pixels (a
:class:`~cxrexplain.lungs.focus.LungFocus` in the ``"crop"`` mode, which stretches each film's
lung box to the whole frame), the target layer's maps are in the crop's frame: the pass also
returns each film's crop box, and the finishing step (:func:`_finish_maps`, the one place, for
traced and eager methods alike) maps the upsampled map and the raw map back to the film
(:meth:`~cxrexplain.lungs.focus.LungFocus.to_film`; 0 outside the box) before it normalises.
Input explainers work on the film's pixels already and map nothing.

The pass is traced once per model, method, settings and input signature and shared through
:mod:`cxrexplain._passes`: a second ``cx.GradCAM(clf)`` (the one-line pattern
``cx.GradCAM(clf).explain(batch)`` builds one per call) finds it traced, and so do the layer
probe and :meth:`Explainer.for_model`'s twin on the same model. Methods without gradients
record no gradient tape, so CAM costs one forward pass, as a predict does.

Every concrete subclass that sets its own ``name`` registers itself
(:mod:`cxrexplain.explain._registry`): a new method is one module in ``cxrexplain/explain/``.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.GradCAM(clf).explain(batch)  # four 32 x 32 images
    >>> exp.heatmaps.shape, exp.raw.shape, exp.layer
    ((4, 32, 32), (4, 16, 16), 'block2_relu')
    >>> exp.targets.shape, exp.probabilities.shape, exp.scores.shape
    ((4,), (4, 2), (4,))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain import _keras_utils, _passes
from cxrexplain._checks import check_int, first_line
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain._registry import register
from cxrexplain.explain._tokens import is_attention
from cxrexplain.explain.layers import intercept, probe_layers
from cxrexplain.explain.targets import Captured, logit_hook, logits_from_outputs, target_scores
from cxrexplain.io import ImageSource, count_chunk, iter_chunks
from cxrexplain.lungs.focus import LungFocus

__all__ = ["Explainer", "Explanation", "Targets"]

Targets = int | str | Sequence[int | str] | np.ndarray | None
"""``None`` (each image's predicted class), one class for all, or one per image."""

_PREDICTED = -1


@dataclass(frozen=True)
class Explanation:
    """The result of :meth:`Explainer.explain` for a batch of N images.

    Attributes:
        heatmaps: ``(N, H, W)`` float32 in [0, 1] at the model's input resolution, in the
            film's pixels (for a crop-focused model too).
        raw: ``(N, h, w)`` float32, the map at the target layer's resolution after ReLU and
            before upsampling and normalisation (behind a lung crop, resampled from the
            crop's frame to the film's at that resolution).
        targets: ``(N,)`` int, the class each map explains.
        method: The explainer's registry name (``"gradcam"``, ...).
        layer: The target layer's path (``"vgg16/block5_conv3"`` for nested models).
        probabilities: ``(N, K)`` float32 class probabilities from the same forward pass.
        scores: ``(N,)`` float32, each image's probability of its target class.
        class_names: The classifier's class names.

    Example:
        >>> exp = cx.GradCAM(clf).explain(batch[:2], targets=["PNEUMONIA", "NORMAL"])
        >>> exp.target_names, exp.targets.tolist()
        (['PNEUMONIA', 'NORMAL'], [1, 0])
    """

    heatmaps: np.ndarray
    raw: np.ndarray
    targets: np.ndarray
    method: str
    layer: str
    probabilities: np.ndarray
    scores: np.ndarray
    class_names: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.heatmaps.shape[0])

    @property
    def target_names(self) -> list[str]:
        """The class name of each image's target."""
        return [self.class_names[int(t)] for t in self.targets]


class Explainer:
    """Base class of every explainer: one model, batched compiled passes, one result type.

    A method subclasses one of the two kinds, :class:`~cxrexplain.explain.LayerExplainer`
    (a map from a target layer) or :class:`~cxrexplain.explain.InputExplainer` (a map over
    the input pixels), sets ``name`` and overrides one of its kind's hooks. Setting ``name``
    registers the class (``cx.explainers()``, ``cx.get_explainer``); the first line of its
    docstring is its one-line summary.

    Args:
        model: A :class:`~cxrexplain.Classifier` (class names, threshold and input size are
            taken from it) or a bare ``keras.Model``.
        layer: The layer to explain, for a layer explainer: a name, a nested path
            (``"vgg16/block5_conv3"``) or a layer object. Default: the last layer with a 4-D
            output before the global pooling. An input explainer takes ``None`` only.

    Raises:
        ModelStructureError: The layer is unknown or has no 4-D output, or the model has no
            convolutional layer (layer explainers).
        InvalidInputError: A layer given to an input explainer.

    Attributes:
        name: The registry name (``"gradcam"``); a class without its own is not registered.
        aliases: Other spellings :func:`~cxrexplain.explain.get_explainer` accepts.
        order: Where the method comes in ``explainers()`` (then by name).
        needs_gradients: Whether the compiled pass records a gradient tape.
        class_specific: False for a method whose map is the same for every target class
            (Eigen-CAM); the targets, probabilities and scores are still reported.
        requires: What a model needs beyond its kind's needs for the method to apply:
            ``None``, or ``"attention"`` (attention layers: a vision transformer; attention
            rollout). :meth:`applies_to` reads it, so that callers running every registered
            method (the demo) skip those that do not apply.

    Example:
        >>> import cxrexplain as cx
        >>> explainer = cx.GradCAM(clf, layer="block1_relu")
        >>> explainer.explain(["a.png", "b.png"], targets="PNEUMONIA").heatmaps.shape
        (2, 32, 32)
        >>> isinstance(explainer, cx.Explainer), cx.GradCAM.order < cx.Occlusion.order
        (True, True)
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[int] = 100
    needs_gradients: ClassVar[bool] = True
    class_specific: ClassVar[bool] = True
    requires: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            if cls._features is Explainer._features:
                raise InvalidInputError(
                    f"{cls.__qualname__}: an explainer subclasses LayerExplainer (a map from a "
                    "layer's activations) or InputExplainer (a map over the input pixels)"
                )
            register(cls)

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        self.classifier = model if isinstance(model, Classifier) else Classifier(model)
        self.model: keras.Model = self.classifier.model
        self._compiled: Any = None
        self._captured = Captured()
        self._finish: Any = None
        self._batch_crop_boxes: tf.Tensor = tf.zeros([0, 0, 4], tf.float32)

    # ------------------------------------------------------------------ public
    @classmethod
    def applies_to(cls, model: Classifier | keras.Model) -> bool:
        """Whether the method applies to ``model`` by :attr:`requires` (a cheap check of its
        layers; building the explainer may still find the model unfit).

        Example:
            >>> cx.GradCAM.applies_to(clf), cx.AttentionRollout.applies_to(clf)
            (True, False)
        """
        if cls.requires is None:
            return True
        keras_model = model.model if isinstance(model, Classifier) else model
        if cls.requires == "attention":
            return any(is_attention(layer) for _, layer in probe_layers(keras_model))
        return False

    @property
    def layer(self) -> str:
        """What the maps explain: the target layer's path, or ``"input"``."""
        raise NotImplementedError

    def for_model(self, model: Classifier | keras.Model) -> Explainer:
        """A new explainer of the same method, settings and layer path for another model.

        Used by the randomization check, which explains a re-initialised copy of the model.

        Args:
            model: The other model (same architecture, so the layer path exists in it).

        Returns:
            The new explainer.

        Example:
            >>> copy = keras.models.clone_model(clf.model)  # same layers, new weights
            >>> twin = cx.GradCAM(clf, layer="block1_relu").for_model(copy)
            >>> twin.layer, twin.classifier.model is copy
            ('block1_relu', True)
        """
        if not isinstance(model, Classifier):
            model = self.classifier.with_model(model)
        return type(self)(model, **self._twin_options())

    def _options(self) -> dict[str, Any]:
        """Constructor keywords of a method beyond ``layer`` (for :meth:`for_model`)."""
        return {}

    def _twin_options(self) -> dict[str, Any]:
        """Every constructor keyword :meth:`for_model` passes on (the kind adds ``layer``)."""
        return self._options()

    def explain(
        self,
        images: ImageSource | Iterable[ImageSource],
        targets: Targets = None,
        *,
        batch_size: int = 32,
        progress: bool = False,
    ) -> Explanation:
        """Explain the model's decision for each image.

        Args:
            images: Anything :func:`cxrexplain.load_images` accepts; resized and converted to
                what the model takes.
            targets: ``None`` for each image's predicted class, one class (index or name) for
                all, or one per image.
            batch_size: Images per compiled pass; large inputs are processed in chunks so
                memory does not grow with their number.
            progress: Show a progress bar.

        Returns:
            An :class:`Explanation`.

        Raises:
            InvalidInputError: Empty input, a target out of range or unknown, a bad batch size,
                or images the model cannot take.

        Example:
            >>> exp = cx.CAM(clf).explain(batch, targets=None)  # the predicted classes
            >>> exp.targets.tolist() == clf.predict_proba(batch).argmax(axis=1).tolist()
            True
        """
        check_int(batch_size, "batch_size")
        chunks = list(iter_chunks(images, batch_size))
        total = sum(count_chunk(chunk) for chunk in chunks)
        wanted = self._resolve_targets(targets, total)
        bar = keras.utils.Progbar(total, unit_name="image") if progress else None
        # the outputs are allocated once, after the first batch, and each batch is written into
        # its slice: no list of parts joined at the end (which holds every result twice)
        merged: dict[str, np.ndarray] = {}
        done = 0
        for chunk in chunks:
            batch = self.classifier.prepare(chunk)
            count = len(batch)
            part = self._explain_batch(batch, wanted[done : done + count])
            if not merged:
                merged = {key: np.empty((total, *value.shape[1:]), value.dtype)
                          for key, value in part.items()}
            for key, value in part.items():
                merged[key][done : done + count] = value
            done += count
            if bar is not None:
                bar.update(done)
        return Explanation(
            heatmaps=merged["heatmaps"],
            raw=merged["raw"],
            targets=merged["targets"].astype(np.int64),
            method=self.name,
            layer=self.layer,
            probabilities=merged["probabilities"],
            scores=merged["scores"],
            class_names=tuple(self.classifier.class_names),
        )

    # ------------------------------------------------------------------ what a kind provides
    def _prepare(self, image_shape: tuple[int, ...]) -> None:
        """Called before each batch's pass with ``(H, W, C)`` (a layer explainer finds its
        layer here when the model's input size was unknown)."""

    def _features(self, images: tf.Tensor) -> tf.Tensor:
        """Traced: the tensor the maps are made of and gradients are taken for."""
        raise NotImplementedError

    def _combines_in_graph(self) -> bool:
        """Whether the method's map is traced into the pass (its ``combine``)."""
        raise NotImplementedError

    def _combine_traced(self, images: tf.Tensor, features: tf.Tensor,
                        gradients: tf.Tensor | None, targets: tf.Tensor) -> tf.Tensor:
        """Traced: the kind's ``combine`` hook, ``(N, h, w)`` before ReLU."""
        raise NotImplementedError

    def _combine_eagerly(self, images: tf.Tensor, features: tf.Tensor | None,
                         targets: tf.Tensor) -> tf.Tensor:
        """Eager: the kind's ``combine_with_model`` hook, ``(N, h, w)`` before ReLU."""
        raise NotImplementedError

    def _returns_features(self) -> bool:
        """Whether an eager hook needs the features back from the compiled pass."""
        return False

    def _reframing(self) -> list[Any]:
        """The layers ahead of what the maps explain that move the film's pixels (crop-mode
        lung foci), in call order: the maps are mapped back through each. None here."""
        return []

    def _crop_boxes(self) -> tf.Tensor:
        """Traced, after the forward pass: ``(k, N, 4)`` the crop boxes of the
        :meth:`_reframing` layers (k = 0: none)."""
        return tf.zeros([0, 0, 4], tf.float32)

    def _hooks(self) -> list[tuple[keras.layers.Layer, Any]]:
        """The layers intercepted while the pass is traced, each with its hook: here the
        model's head, whose pre-activation (the logits) is captured."""
        head = _keras_utils.output_layer(self.model)
        hook = logit_hook(head, self._captured) if head is not None else None
        return [(head, hook)] if hook is not None else []

    @contextlib.contextmanager
    def _interception(self) -> Iterator[None]:
        """Every hook of :meth:`_hooks` in place (while the pass is traced)."""
        with contextlib.ExitStack() as stack:
            for layer, hook in self._hooks():
                stack.enter_context(intercept(layer, hook))
            yield

    # ------------------------------------------------------------------ targets
    def _resolve_targets(self, targets: Targets, count: int) -> np.ndarray:
        if targets is None:
            return np.full(count, _PREDICTED, np.int32)
        return self.classifier.target_indices(targets, count)

    # ------------------------------------------------------------------ the compiled pass
    def _explain_batch(self, batch: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
        """Run the compiled pass on one batch (and the eager hook, if used); NumPy results."""
        self._prepare(tuple(batch.shape[1:]))
        threshold = self.classifier.threshold
        # only a two-class model's one threshold changes the predicted class (multi-label
        # models predict their most probable finding whatever the operating points)
        limit = threshold if isinstance(threshold, float) else -1.0
        try:
            result = self._compiled_function(batch.shape[1:])(
                tf.constant(batch), tf.constant(targets, tf.int32),
                tf.constant(limit, tf.float32),
            )
        except (tf.errors.InvalidArgumentError, ValueError) as err:
            raise InvalidInputError(
                f"images: the model cannot take images of shape {batch.shape[1:]} "
                f"({type(err).__name__}: {first_line(err)})"
            ) from err
        boxes = result.pop("crop_boxes")
        if not self._combines_in_graph():
            self._batch_crop_boxes = boxes  # for an eager hook that masks the film (Score-CAM)
            images = tf.constant(batch)
            raw = self._combine_eagerly(images, result.pop("features", None), result["targets"])
            result.update(self._finishing()(tf.cast(raw, tf.float32), tf.shape(images)[1:3],
                                            boxes))
        return {key: value.numpy() for key, value in result.items()}

    def _pass_key(self) -> tuple[Any, ...]:
        """Everything the compiled pass's graph depends on besides the model itself.

        Two explainers with equal keys on one model share one traced pass (see
        :mod:`cxrexplain._passes`). A subclass whose graph reads more than its
        :meth:`_options` extends this key.
        """
        clf = self.classifier
        return (type(self), repr(sorted(self._options().items())), self.layer,
                clf.output_activation, clf.multilabel, clf.num_classes)

    def _image_spec(self) -> tf.TensorSpec:
        """A batch of films at the model's input size and channels (None where the model takes
        any): the spec of every extra compiled pass, so that a model whose layers need a known
        height and width (``five_block_cnn``'s dilated pooling) traces."""
        size = self.classifier.input_size
        height, width = size if size else (None, None)
        return tf.TensorSpec([None, height, width, self.classifier.channels], tf.float32)

    def _compiled_function(self, image_shape: tuple[int, ...]) -> Any:
        """The pass as a concrete function, traced once per model, method and layer."""
        if self._compiled is None:
            size = self.classifier.input_size
            height, width = size if size else (None, None)
            specs = (
                tf.TensorSpec([None, height, width, image_shape[-1]], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([], tf.float32),
            )
            key = ("explain", *self._pass_key(), tuple(specs[0].shape.as_list()))
            self._compiled = _passes.shared(self.model, key, lambda: self._trace(specs))
        return self._compiled

    def _trace(self, specs: tuple[tf.TensorSpec, ...]) -> Any:
        """Trace :meth:`_graph` with the kind's interceptions in place."""
        with self._interception():
            return tf.function(self._graph).get_concrete_function(*specs)

    def _finishing(self) -> Any:
        """ReLU, upsampling and normalisation of eager maps, compiled once per model."""
        if self._finish is None:
            count = len(self._reframing())
            self._finish = _passes.shared(self.model, ("finish", count),
                                          lambda: _trace_finish(count))
        return self._finish

    def _graph(self, images: tf.Tensor, targets: tf.Tensor, threshold: tf.Tensor
               ) -> dict[str, tf.Tensor]:
        in_graph = self._combines_in_graph()
        forward = self._forward(images, targets, threshold,
                                gradients=self.needs_gradients and in_graph)
        boxes = self._crop_boxes()
        result = {
            "targets": forward["targets"],
            "probabilities": forward["probabilities"],
            "scores": forward["scores"],
            "crop_boxes": boxes,
        }
        if not in_graph:
            extra = {"features": forward["features"]} if self._returns_features() else {}
            return {**result, **extra}
        raw = self._combine_traced(images, forward["features"], forward["gradients"],
                                   forward["targets"])
        return {**result, **_finish_maps(raw, tf.shape(images)[1:3], boxes,
                                         len(self._reframing()))}

    def _forward(self, images: tf.Tensor, targets: tf.Tensor, threshold: tf.Tensor, *,
                 gradients: bool) -> dict[str, Any]:
        """Forward (and backward) pass; call inside a tf.function under ``_interception``."""
        captured = self._captured
        captured.activations = captured.logits = None
        captured.inputs.clear()
        # a pass without gradients (CAM, Score-CAM) records no tape: it costs one predict
        tape = tf.GradientTape(watch_accessed_variables=False) if gradients else None
        with tape if tape is not None else contextlib.nullcontext():
            if tape is not None:
                tape.watch(images)
            outputs = self.model(images, training=False)
            probabilities = _keras_utils.to_probabilities(
                outputs, activation=self.classifier.output_activation,
                multilabel=self.classifier.multilabel,
            )
            chosen = self._choose_targets(probabilities, targets, threshold)
            logits = logits_from_outputs(
                outputs, captured.logits, activation=self.classifier.output_activation,
                owner=type(self).__name__,
            )
            scores = target_scores(logits, chosen)
            total = tf.reduce_sum(scores)
        features = self._features(images)
        grads = tape.gradient(total, features) if tape is not None else None
        if gradients and grads is None:
            raise ModelStructureError(
                f"layer: the class score does not depend on '{self.layer}' (no gradient path)"
            )
        return {
            "features": features,
            "gradients": grads,
            "probabilities": probabilities,
            "targets": chosen,
            "scores": tf.gather(probabilities, chosen, axis=1, batch_dims=1),
            "logits": logits,
        }

    def _target_probabilities(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """``(B,)`` each image's probability of its target class, from one model call.

        The scoring step of the methods that run the model again on altered images (Score-CAM's
        masked inputs, occlusion's hidden patches), traced into their own compiled passes.
        """
        outputs = self.model(images, training=False)
        probabilities = _keras_utils.to_probabilities(
            outputs, activation=self.classifier.output_activation,
            multilabel=self.classifier.multilabel,
        )
        return tf.gather(probabilities, targets, axis=1, batch_dims=1)

    def _choose_targets(self, probabilities: tf.Tensor, targets: tf.Tensor,
                        threshold: tf.Tensor) -> tf.Tensor:
        predicted = self.classifier._decision(probabilities, threshold)
        return tf.where(targets < 0, predicted, targets)


def upsample_and_normalise(maps: tf.Tensor, size: Any) -> tf.Tensor:
    """Bilinear upsampling of ``(N, h, w)`` maps to ``size`` and per-image scaling to [0, 1].

    An all-zero map stays zero (no division by zero, no NaN).
    """
    resized = tf.image.resize(maps[..., None], size, method="bilinear")[..., 0]
    resized = tf.nn.relu(resized)
    peak = tf.reduce_max(resized, axis=[1, 2], keepdims=True)
    return tf.math.divide_no_nan(resized, peak)


def _trace_finish(count: int) -> Any:
    def finish(maps: tf.Tensor, size: tf.Tensor, boxes: tf.Tensor) -> dict[str, tf.Tensor]:
        return _finish_maps(maps, size, boxes, count)

    return tf.function(finish).get_concrete_function(
        tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([2], tf.int32),
        tf.TensorSpec([count, None, 4], tf.float32),
    )


def _finish_maps(maps: tf.Tensor, size: Any, boxes: tf.Tensor, count: int
                 ) -> dict[str, tf.Tensor]:
    """ReLU, upsampling to ``size``, back to the film through ``count`` crops, normalisation.

    ``boxes`` ``(count, N, 4)``: each reframing layer's crop boxes, in call order; the maps
    go back through the last crop first. The upsampled map is mapped at the input's size (the
    crop's full resolution), the raw map at its own.
    """
    raw = tf.nn.relu(maps)
    if count == 0:
        return {"heatmaps": upsample_and_normalise(raw, size), "raw": raw}
    heat = tf.nn.relu(tf.image.resize(raw[..., None], size, method="bilinear")[..., 0])
    for index in reversed(range(count)):
        heat = LungFocus.to_film(heat, boxes[index])
        raw = LungFocus.to_film(raw, boxes[index])
    peak = tf.reduce_max(heat, axis=[1, 2], keepdims=True)
    return {"heatmaps": tf.math.divide_no_nan(heat, peak), "raw": raw}
