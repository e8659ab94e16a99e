"""Explanation-guided training: a loss on the model's own class activation map.

"Right for the right reasons" (Ross et al., IJCAI 2017), GAIN (Li et al., CVPR 2018) and ISNet
(Bassi et al., Nature Communications 2024) penalise evidence where it should not be. Here the
evidence is the class activation map of the film's **true** class at the layer that feeds the
global average pooling (``CAM_c = ReLU(sum_k w[k, c] * A_k)``, exact for the
``GAP -> (Dropout) -> Dense`` head every builder has; other heads are refused with a
:class:`~cxrexplain.ModelStructureError`), resized bilinearly to the film's size, and a
:class:`Guide` adds to the classification loss:

* a **lung term** (weight ``lungs``): the share of the map's mass outside the lungs, grown by
  ``margin`` (the share :func:`cxrexplain.audit` measures). The masks come from the frozen
  segmenter **inside the graph, on the whole unmasked film** (:meth:`LungFocus.lung_masks
  <cxrexplain.lungs.LungFocus.lung_masks>`), so the mask's outline is never an input feature;
* a **box term** (weight ``boxes``): for films that carry radiologists' boxes (datasets from
  :func:`cxrexplain.data.image_folder` with ``boxes=``, whose elements are
  ``({"images": ..., "boxes": ...}, labels)``), the share of the map's mass outside the boxes;
  films without boxes contribute nothing;
* a **background swap** (probability ``swap``): a data-side augmentation, not a loss. Each
  chosen film keeps its grown lungs and takes everything outside them from another film of the
  batch, whatever its class, so that nothing outside the lungs predicts the label (a
  deep cell's receptive field spans most of the film: a loss alone can keep the *map* on the
  lungs while the *features* still read markers and borders).

What a guided run logs beside the loss: ``lung_outside`` and ``box_outside`` (the unweighted
shares, ``val_`` ones on the validation data, never swapped). The logged ``loss`` is the
classification loss alone, so early stopping and model selection watch the same quantity as
an unguided run. The guide lives only in training: :func:`cxrexplain.training.fit` trains
a :class:`GuidedModel` around the classifier and writes the weights back into the plain
classifier, whose saved ``.keras`` file and predictions carry no trace of the guide.

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2,
    ...                         filters=(4, 8))
    >>> guide = cx.training.Guide(seg, lungs=1.0, swap=0.5)
    >>> history = cx.training.fit(model, train, val, epochs=1, guide=guide, verbose=0)
    >>> sorted(k for k in history.history if "outside" in k)
    ['lung_outside', 'val_lung_outside']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from cxrexplain._checks import check_number
from cxrexplain._keras_utils import leaf_layers
from cxrexplain.data.datasets import BOXES, IMAGES, LUNGS
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain.layers import find_layers, gap_dense_head, intercept
from cxrexplain.lungs.focus import LungFocus, grow_masks
from cxrexplain.lungs.geometry import DEFAULT_MARGIN, MAX_MARGIN
from cxrexplain.lungs.segmenter import LungSegmenter, check_segmenter
from cxrexplain.lungs.swap import BackgroundSwap
from cxrexplain.models.losses import head_of

__all__ = ["GUIDE_TERMS", "RECOMMENDED_WEIGHT", "Guidance", "Guide", "GuidedModel",
           "outside_share"]

GUIDE_TERMS = ("lungs", "boxes")
"""The loss terms a guide can weigh (``cxrexplain train --guide lungs,boxes``)."""

_EPSILON = 1e-6

RECOMMENDED_WEIGHT = 0.2
"""The lung and box terms' weight in :meth:`Guide.recommended` (1.0 cost 19 points of
three-class accuracy on the first fold of ``benchmarks/guided_real.py``)."""


@dataclass(frozen=True)
class Guide:
    """What explanation-guided training adds to the classification loss.

    Attributes:
        segmenter: The lung segmenter whose masks the lung term and the swap need (frozen),
            or None (then only the box term can be used).
        lungs: Weight of the lung term (0: off).
        boxes: Weight of the box term (0: off); needs data with boxes.
        swap: Probability that a training film's surroundings are swapped for another
            film's (0: off); needs a segmenter.
        margin: Growth of the lung masks, a share of the film's larger side (as the audit's).
        seed: Seed of the swap's random choices.
        consistency: Weight of the *swap consistency* (0: off): every training film enters
            twice, as it is and as its twin (surroundings swapped with probability ``swap``),
            and the loss adds the symmetric Kullback-Leibler divergence between the two
            predictions (logged as ``swap_divergence``): the swap test made a loss. Needs a
            segmenter and ``swap`` > 0; doubles the batch.

    Raises:
        InvalidInputError: A negative weight, a probability outside [0, 1], nothing switched
            on, or a lung term or swap without a segmenter.

    Example:
        >>> Guide(seg, lungs=1.0).terms
        ('lungs',)
        >>> Guide(None, boxes=0.5).terms
        ('boxes',)
    """

    segmenter: LungSegmenter | None = None
    lungs: float = 0.0
    boxes: float = 0.0
    swap: float = 0.0
    margin: float = DEFAULT_MARGIN
    seed: int = 0
    consistency: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lungs", "boxes", "consistency"):
            object.__setattr__(self, name, check_number(getattr(self, name), name, low=0.0))
        object.__setattr__(self, "swap", check_number(self.swap, "swap", low=0.0, high=1.0))
        object.__setattr__(self, "margin",
                           check_number(self.margin, "margin", low=0.0, high=MAX_MARGIN))
        if self.segmenter is not None:
            check_segmenter(self.segmenter, "segmenter")
        if not (self.lungs or self.boxes or self.swap):
            raise InvalidInputError(
                "guide: nothing to do; give a weight to lungs= or boxes=, or a swap= "
                "probability"
            )
        if self.consistency and not self.swap:
            raise InvalidInputError("guide: consistency= compares films with their swapped "
                                    "twins; give swap= a probability above 0")
        if (self.lungs or self.swap) and self.segmenter is None:
            raise InvalidInputError(
                "guide: the lung term and the background swap need a lung segmenter "
                "(Guide(segmenter, ...); cx.lungs.LungSegmenter.load or cx.lungs.train)"
            )

    @classmethod
    def recommended(cls, segmenter: LungSegmenter, *, boxes: bool = False) -> Guide:
        """The recipe the shared X-rays' benchmark chose: a light guide, the swap, twins.

        Lung term 0.2 (and box term 0.2 with ``boxes=True``: the data carry boxes), every
        training film swapped (``swap=1.0``) and the swap consistency 1.0. On the patient
        folds of ``benchmarks/guided_real.py`` it gave the most of both goals: accuracy near
        plain training, the COVID lung share and the hit rate far above it, and the fewest
        decisions flipped by the swap test (the figures are in the lung-focus guide). It is
        what ``cxrexplain train --lungs`` trains when no other recipe is asked for.

        Example:
            >>> guide = Guide.recommended(seg)
            >>> guide.terms, guide.swap, guide.consistency
            (('lungs',), 1.0, 1.0)
        """
        return cls(segmenter, lungs=RECOMMENDED_WEIGHT,
                   boxes=RECOMMENDED_WEIGHT if boxes else 0.0, swap=1.0, consistency=1.0)

    @property
    def terms(self) -> tuple[str, ...]:
        """The loss terms with a weight, in :data:`GUIDE_TERMS` order."""
        return tuple(name for name in GUIDE_TERMS if getattr(self, name))


def Guidance(  # noqa: N802  (DESIGN.md's name: it reads as the thing it makes)
    lungs: LungSegmenter | None = None,
    *,
    lung_weight: float | None = None,
    box_weight: float = 0.0,
    swap: float = 0.0,
    consistency: float = 0.0,
    margin: float = DEFAULT_MARGIN,
    seed: int = 0,
) -> Guide:
    """A :class:`Guide` under the design's keyword names (``lungs`` is the segmenter here).

    ``cx.training.Guidance(lungs=seg, lung_weight=1.0, box_weight=1.0)`` is
    ``cx.training.Guide(seg, lungs=1.0, boxes=1.0)``. For the recipe the shared X-rays'
    benchmark recommends (a light lung term, the background swap and the swap consistency)
    use :meth:`Guide.recommended`.

    Args:
        lungs: The lung segmenter (None: only the box term can be used).
        lung_weight: Weight of the lung term; default :data:`RECOMMENDED_WEIGHT` with a
            segmenter, else 0.
        box_weight: Weight of the box term (needs data with boxes; 0: off).
        swap: Probability of the background swap (needs a segmenter; 0: off).
        consistency: Weight of the swap consistency (needs ``swap`` > 0; 0: off).
        margin: Growth of the lung masks, a share of the film's larger side.
        seed: Seed of the swap's random choices.

    Returns:
        The guide, for ``cx.training.fit(..., guidance=guide)`` (or ``guide=``).

    Raises:
        InvalidInputError: As :class:`Guide` does.

    Example:
        >>> Guidance(lungs=seg, lung_weight=1.0, box_weight=1.0) == Guide(seg, lungs=1.0,
        ...                                                                boxes=1.0)
        True
        >>> Guidance(lungs=seg).lungs == RECOMMENDED_WEIGHT
        True
    """
    if lung_weight is None:
        lung_weight = RECOMMENDED_WEIGHT if lungs is not None else 0.0
    return Guide(lungs, lungs=lung_weight, boxes=box_weight, swap=swap, margin=margin, seed=seed,
                 consistency=consistency)


def outside_share(maps: Any, masks: Any) -> Any:
    """Per film, the share of a map's positive mass that does not lie where ``masks`` is 1.

    The loss form of :func:`cxrexplain.lungs.shares.measure`'s lung share, ``1 - share``
    inside, where a map **without positive mass counts as all outside** (1.0): otherwise a
    model could satisfy the guide by switching a class's map off everywhere (on the shared
    films a first version of the loss did exactly that to COVID: its lung share rose to 0.91
    while its sensitivity fell to 0.05).

    Args:
        maps: ``(batch, H, W)`` maps (negative values count as 0).
        masks: ``(batch, H, W)`` 0/1 masks.

    Returns:
        float32 ``(batch,)`` in [0, 1].

    Example:
        >>> maps = np.array([[[1.0, 3.0]], [[-1.0, 0.0]]], np.float32)
        >>> outside_share(maps, np.array([[[1, 0]], [[1, 0]]], np.float32)).numpy()
        array([0.75, 1.  ], dtype=float32)
    """
    positive = tf.nn.relu(tf.cast(maps, tf.float32))
    total = tf.reduce_sum(positive, axis=(1, 2))
    inside = tf.reduce_sum(positive * tf.cast(masks, tf.float32), axis=(1, 2))
    return 1.0 - tf.math.divide_no_nan(inside, total)


class GuidedModel(keras.Model):  # type: ignore[misc]
    """A classifier trained under a :class:`Guide` (built by :func:`~cxrexplain.training.fit`).

    It predicts as the classifier does; its ``train_step`` adds the guide's terms and its
    ``test_step`` logs them. The classifier's own layers are trained (it is shared, not
    copied).

    Args:
        classifier: A single-input softmax (or one-unit sigmoid) classifier whose layer
            feeding the global average pooling is followed by ``(Dropout) -> Dense``.
        guide: The guide.

    Raises:
        ModelStructureError: Another head, or a multi-label head.

    Example:
        >>> guided = GuidedModel(model, Guide(seg, lungs=1.0))
        >>> guided(batch).shape == model(batch).shape
        True
    """

    def __init__(self, classifier: keras.Model, guide: Guide, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", f"{classifier.name}_guided"), **kwargs)
        if not isinstance(guide, Guide):
            raise InvalidInputError(f"guide: expected a Guide, got {type(guide).__name__}")
        units, activation = head_of(classifier)
        if activation == "sigmoid" and units > 1:
            raise ModelStructureError(
                "model: explanation-guided training needs one true class per film (a softmax "
                "head or one sigmoid unit); this model is multi-label"
            )
        if any(getattr(layer, "reframes", False) for _, layer in leaf_layers(classifier)):
            raise ModelStructureError(
                "model: a crop lung focus moves the film's pixels before the classifier, so "
                "its CAM is not in the film's frame; guide a plain or mask-focused model"
            )
        shape = tuple(int(d) for d in classifier.input_shape[1:])
        structure = find_layers(classifier, shape)  # type: ignore[arg-type]
        target = structure.default_target()
        self.classifier = classifier
        self.guide = guide
        self._target = target.layer
        self._dense = gap_dense_head(structure, target, "explanation-guided training")
        self._size = (shape[0], shape[1])
        self._masker = None if guide.segmenter is None else LungFocus(
            guide.segmenter.model, threshold=guide.segmenter.threshold, margin=guide.margin)
        self._swapper = BackgroundSwap(guide.swap, seed=guide.seed, name="background_swap")
        self.lung_tracker = keras.metrics.Mean(name="lung_outside")
        self.box_tracker = keras.metrics.Mean(name="box_outside")
        self.consistency_tracker = keras.metrics.Mean(name="swap_divergence")
        self.built = True  # its weights are the (built) classifier's and the segmenter's

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """The classifier's output for the films (``inputs`` or ``inputs["images"]``)."""
        images = _split(inputs)[0]
        return self.classifier(images, training=training)

    # ---------------------------------------------------------------- the training step
    def train_step(self, data: Any) -> dict[str, Any]:
        """One step: classification loss plus the weighted guide terms."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images, boxes, carried = _split(x)
        lungs = self._lungs(images, carried)
        twins = bool(self.guide.consistency) and lungs is not None
        if twins:  # each film and its twin (swapped with probability swap), side by side
            images = tf.concat([tf.cast(images, tf.float32), self._swap(images, lungs)], 0)
            y, lungs = _twice(y), _twice(lungs)
            boxes = None if boxes is None else _twice(boxes)
            sample_weight = None if sample_weight is None else _twice(sample_weight)
        elif self.guide.swap and lungs is not None:
            images = self._swap(images, lungs)
        with tf.GradientTape() as tape:
            features, y_pred = self._forward(images, training=True)
            loss = self.compute_loss(x=images, y=y, y_pred=y_pred,
                                     sample_weight=sample_weight, training=True)
            terms = self._terms(features, y, lungs, boxes)
            if twins:
                terms["consistency"] = _symmetric_kl(*tf.split(y_pred, 2, axis=0))
            total = loss
            for name, value in terms.items():
                weight = getattr(self.guide, name)
                if weight:
                    total = total + weight * _per_replica(value)
            scaled = self.optimizer.scale_loss(total)
        variables = self.trainable_weights
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return self._logs(images, y, y_pred, sample_weight, loss, terms)

    def test_step(self, data: Any) -> dict[str, Any]:
        """The classification loss and metrics, and the guide's shares (never swapped)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images, boxes, carried = _split(x)
        features, y_pred = self._forward(images, training=False)
        loss = self.compute_loss(x=images, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=False)
        terms = self._terms(features, y, self._lungs(images, carried), boxes)
        return self._logs(x, y, y_pred, sample_weight, loss, terms)

    # ---------------------------------------------------------------------------- parts
    def _forward(self, images: Any, *, training: bool) -> tuple[Any, Any]:
        captured: list[Any] = []

        def capture(original: Any, *args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            captured.append(output)
            return output

        with intercept(self._target, capture):
            y_pred = self.classifier(images, training=training)
        return captured[-1], y_pred

    def _lungs(self, images: Any, carried: Any) -> Any:
        """Grown lung masks: the data's own (``lungs=`` datasets) or the segmenter's."""
        if self._masker is None or not (self.guide.lungs or self.guide.swap):
            return None
        if carried is not None:
            return grow_masks(carried, self.guide.margin)
        return self._masker.lung_masks(images)

    def _swap(self, images: Any, lungs: Any) -> Any:
        """Each chosen film's lungs on another film's surroundings (a derangement)."""
        return self._swapper(images, lungs)

    def _terms(self, features: Any, y: Any, lungs: Any, boxes: Any) -> dict[str, Any]:
        terms: dict[str, Any] = {}
        if not (self.guide.lungs or self.guide.boxes):
            return terms
        maps = self._class_maps(features, y)
        if self.guide.lungs and lungs is not None:
            terms["lungs"] = tf.reduce_mean(outside_share(maps, lungs[..., 0]))
        if self.guide.boxes:
            if boxes is None:
                raise InvalidInputError(
                    "guide: the box term needs data with boxes (elements "
                    "({'images': ..., 'boxes': ...}, labels); cx.data.image_folder(..., "
                    "boxes='boxes.csv'))"
                )
            masks = tf.cast(boxes[..., 0] > 0.5, tf.float32)
            boxed = tf.cast(tf.reduce_any(masks > 0, axis=(1, 2)), tf.float32)
            shares = outside_share(maps, masks) * boxed
            terms["boxes"] = tf.math.divide_no_nan(tf.reduce_sum(shares), tf.reduce_sum(boxed))
        return terms

    def _class_maps(self, features: Any, y: Any) -> Any:
        """The true class's CAM, ReLU'd, at the film's size: ``(batch, H, W)``."""
        kernel = tf.cast(self._dense.kernel, tf.float32)
        labels = tf.convert_to_tensor(y)
        if labels.shape.rank == 2 and labels.shape[-1] != 1:
            labels = tf.argmax(labels, axis=-1)
        labels = tf.reshape(tf.cast(labels, tf.int32), (-1,))
        if kernel.shape[-1] == 1:  # one sigmoid unit: class 0 uses the negated column
            sign = tf.where(labels == 1, 1.0, -1.0)
            weights = sign[:, None] * kernel[:, 0][None, :]
        else:
            weights = tf.gather(tf.transpose(kernel), labels)
        maps = tf.einsum("nhwk,nk->nhw", tf.cast(features, tf.float32), weights)
        maps = tf.nn.relu(maps)[..., None]
        return tf.image.resize(maps, self._size, method="bilinear")[..., 0]

    def _logs(self, x: Any, y: Any, y_pred: Any, sample_weight: Any, loss: Any,
              terms: dict[str, Any]) -> dict[str, Any]:
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * _replicas())
        if "lungs" in terms:
            self.lung_tracker.update_state(terms["lungs"])
        if "boxes" in terms:
            self.box_tracker.update_state(terms["boxes"])
        if "consistency" in terms:
            self.consistency_tracker.update_state(terms["consistency"])
        logs: dict[str, Any] = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if not self.guide.lungs:
            logs.pop("lung_outside", None)
        if not self.guide.boxes:
            logs.pop("box_outside", None)
        if "consistency" not in terms:
            logs.pop("swap_divergence", None)
        return logs


def _split(inputs: Any) -> tuple[Any, Any, Any]:
    """``(images, boxes, lungs)`` (None where absent) from a batch of films or a dict."""
    if isinstance(inputs, dict):
        if IMAGES not in inputs:
            raise InvalidInputError(
                f"data: a dict of inputs needs the films under '{IMAGES}', got keys "
                f"{sorted(inputs)}"
            )
        return inputs[IMAGES], inputs.get(BOXES), inputs.get(LUNGS)
    return inputs, None, None


def _twice(values: Any) -> Any:
    return tf.concat([values, values], axis=0)


def _symmetric_kl(first: Any, second: Any) -> Any:
    """The batch mean of ``(KL(p || q) + KL(q || p)) / 2`` between two predictions."""
    first, second = tf.cast(first, tf.float32), tf.cast(second, tf.float32)
    if first.shape[-1] == 1:  # one sigmoid unit: the two-class distribution
        first = tf.concat([1.0 - first, first], axis=-1)
        second = tf.concat([1.0 - second, second], axis=-1)
    p = tf.clip_by_value(first, _EPSILON, 1.0)
    q = tf.clip_by_value(second, _EPSILON, 1.0)
    divergence = tf.reduce_sum((p - q) * (tf.math.log(p) - tf.math.log(q)), axis=-1) / 2.0
    return tf.reduce_mean(divergence)


def _replicas() -> int:
    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def _per_replica(value: Any) -> Any:
    """A batch mean as Keras scales its losses under a strategy (each replica's share)."""
    replicas = _replicas()
    return value / replicas if replicas > 1 else value
