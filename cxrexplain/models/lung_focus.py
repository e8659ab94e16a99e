"""Lung focus: a classifier that sees only the lungs, with its segmenter inside the model.

:func:`with_lung_focus` wraps a classifier ``model`` and a lung segmenter into one new Keras
model: image -> :class:`LungFocus` (segment, dilate, fill what lies outside) -> ``model``. It
takes the same film as ``model``, so predictions, explanations, boxes and masks stay in the
film's own pixels, and it saves and reloads as one ``.keras`` file (safe_mode on).

What :class:`LungFocus` does, all inside the graph:

1. The film goes to the segmenter's size (area averaging when shrinking, bilinear when
   growing: OpenCV's resizing, as :func:`cxrexplain.load_images` does, written as two matrix
   products so that XLA compiles it) and channels (gray -> RGB repeats the channel;
   RGB -> gray weighs 0.299, 0.587, 0.114, as OpenCV does).
2. The segmenter runs frozen (``training=False``); its probabilities pass through
   ``keras.ops.stop_gradient``, go back to the film's size (bilinear, as
   :meth:`~cxrexplain.lungs.LungSegmenter.segment` does) and are thresholded at the
   segmenter's threshold. The segmenter's clean-up (two largest regions, holes filled) needs
   connected components and is not repeated in the graph: a stray blob stays visible, which
   shows the classifier more of the film, never less.
3. The mask grows by ``margin`` times the film's larger side with a Euclidean **disc** (a
   convolution of the mask with a disc of ones, exactly the dilation the audit applies before
   it counts a map's lung share, :func:`cxrexplain.auditing.measure.dilate`), so evidence at
   the lung's edge (pleura, costophrenic angles) stays in view.
4. Outside the grown mask each pixel is replaced by the fill (:data:`FILLS`); in the
   ``"inverse"`` mode (:data:`MODES`) it is the other way round: everything inside the grown
   mask is replaced and only what lies outside the lungs stays visible.

Example:
    >>> import keras, numpy as np
    >>> import cxrexplain as cx
    >>> seg = cx.lungs.LungSegmenter(
    ...     cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8)))
    >>> model = keras.Sequential([keras.Input((48, 48, 1)),
    ...     keras.layers.Conv2D(4, 3, activation="relu", name="last_conv"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")],
    ...     name="classifier")
    >>> focused = cx.models.with_lung_focus(model, seg)
    >>> focused.input_shape, focused.output_shape
    ((None, 48, 48, 1), (None, 2))
    >>> cx.GradCAM(focused).explain(np.zeros((2, 48, 48, 1), np.float32)).layer
    'classifier/last_conv'
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import keras
import numpy as np
from keras import ops

from cxrexplain._checks import check_choice, check_number, describe, first_line
from cxrexplain._keras_utils import input_spec
from cxrexplain.errors import InvalidInputError

__all__ = [
    "BLUR_SIGMA",
    "DEFAULT_FILL",
    "DEFAULT_MARGIN",
    "FILLS",
    "MODES",
    "LungFocus",
    "SegmenterLike",
    "dilation_disc",
    "with_lung_focus",
]

DEFAULT_MARGIN = 0.03
"""The lung mask's dilation, a share of the image's larger side (lung focus and audit alike)."""

MAX_MARGIN = 0.5
"""The largest margin: a disc of half the larger side already covers the film."""

FILLS = ("mean", "zero", "blur")
"""What replaces the film outside the grown lung mask.

* ``"mean"`` (the default): the film's own mean, per channel, over the whole film;
* ``"zero"``: black;
* ``"blur"``: the film under a Gaussian blur of :data:`BLUR_SIGMA` times its larger side.
"""

DEFAULT_FILL = "mean"
"""The default fill; see :func:`with_lung_focus` for why."""

MODES = ("mask", "inverse")
"""What stays visible: the lungs or the rest of the film.

* ``"mask"`` (the default): what lies outside the grown lung mask is replaced by the fill,
  only the lungs stay visible (train a classifier that looks at the lungs);
* ``"inverse"``: what lies inside the grown lung mask is replaced, only what lies outside the
  lungs stays visible. A model trained on such films that scores far above chance shows that
  the data set carries a shortcut outside the lungs (a shortcut-strength check). The fill is
  then computed from the visible part alone (see :func:`with_lung_focus`), so nothing from
  inside the lungs reaches the classifier but the outline of the grown mask.
"""

BLUR_SIGMA = 0.05
"""The ``"blur"`` fill's Gaussian sigma, a share of the film's larger side (11 px at 224).

The kernel reaches 3 sigma; near the film's edges it is renormalised over the pixels inside
the film (no dark rim).
"""

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # OpenCV's RGB -> gray, as cxrexplain.io converts


@runtime_checkable
class SegmenterLike(Protocol):
    """What :func:`with_lung_focus` reads of a :class:`cxrexplain.lungs.LungSegmenter`."""

    model: keras.Model
    input_size: tuple[int, int]
    channels: int
    threshold: float


def dilation_disc(margin: float, shape: tuple[int, ...]) -> np.ndarray:
    """The disc that grows a mask of ``shape`` by ``margin`` times its larger side.

    Its radius is ``round(margin * max(shape))`` pixels; a radius of 0 gives ``[[1]]`` (no
    growth).

    Args:
        margin: A share of the larger side, in [0, 0.5].
        shape: ``(height, width)`` of the mask.

    Returns:
        A ``(2r + 1, 2r + 1)`` uint8 array, 1 inside the disc.

    Example:
        >>> dilation_disc(0.25, (9, 9))
        array([[0, 0, 1, 0, 0],
               [0, 1, 1, 1, 0],
               [1, 1, 1, 1, 1],
               [0, 1, 1, 1, 0],
               [0, 0, 1, 0, 0]], dtype=uint8)
    """
    radius = round(margin * max(shape))
    rows, cols = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return np.asarray(rows * rows + cols * cols <= radius * radius, dtype=np.uint8)


def _resize_matrix(size: int, target: int, *, area: bool) -> np.ndarray:
    """``(target, size)`` weights that resize one axis as OpenCV does, in float32.

    ``area``: each output pixel averages the input pixels it covers, by the share of each it
    covers (``cv2.INTER_AREA`` when shrinking). Otherwise bilinear with pixel centres at
    ``+0.5`` and the edges clamped (``cv2.INTER_LINEAR``).
    """
    weights = np.zeros((target, size), np.float64)
    scale = size / target
    for out in range(target):
        if area:
            start, stop = out * scale, (out + 1) * scale
            for pixel in range(math.floor(start), min(size, math.ceil(stop))):
                weights[out, pixel] = min(stop, pixel + 1) - max(start, pixel)
            weights[out] /= weights[out].sum()
        else:
            centre = min(max((out + 0.5) * scale - 0.5, 0.0), size - 1.0)
            low = math.floor(centre)
            high = min(low + 1, size - 1)
            weights[out, low] += 1.0 - (centre - low)
            weights[out, high] += centre - low
    return weights.astype(np.float32)


def _resize(images: Any, size: tuple[int, int], target: tuple[int, int], *, area: bool) -> Any:
    """``(N, *size, C)`` images at ``target``: two matrix products, one per axis.

    Written out rather than ``keras.ops.image.resize`` because TensorFlow's area resizing has
    no XLA kernel (``cxrexplain.training.fit`` compiles with XLA on a GPU), and so that the
    graph resizes exactly as :mod:`cxrexplain.io` and the segmenter do with OpenCV.
    """
    rows = ops.convert_to_tensor(_resize_matrix(size[0], target[0], area=area))
    cols = ops.convert_to_tensor(_resize_matrix(size[1], target[1], area=area))
    images = ops.einsum("oh,nhwc->nowc", rows, images)
    return ops.einsum("pw,nowc->nopc", cols, images)


_MIN_BLUR_WEIGHT = 1e-7
"""Below this blurred keep-mask weight no visible pixel is near: the kept mean is used."""


def _separable_blur(images: Any, taps: np.ndarray, depth: int) -> Any:
    """``(N, H, W, depth)`` images under a separable, zero-padded blur with ``taps``."""
    rows = np.tile(taps[:, None, None, None], (1, 1, depth, 1))
    cols = np.tile(taps[None, :, None, None], (1, 1, depth, 1))
    images = ops.depthwise_conv(images, ops.convert_to_tensor(rows), padding="same")
    return ops.depthwise_conv(images, ops.convert_to_tensor(cols), padding="same")


def _gaussian(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    return np.asarray(kernel / kernel.sum(), dtype=np.float32)


@keras.saving.register_keras_serializable(package="cxrexplain")
class LungFocus(keras.layers.Layer):  # type: ignore[misc]
    """Hide what lies outside the lungs: segment, dilate and fill, inside the model.

    The layer holds the segmenter's Keras model, always frozen: ``trainable`` stays False
    whatever is assigned to it (so ``model.trainable = True`` before fine-tuning leaves the
    segmenter alone), it runs with ``training=False`` and no gradient flows back into it. The
    explainers never choose it as their default target layer (``target_candidate = False``).
    Build one with :func:`with_lung_focus`, which checks its arguments.

    Args:
        segmenter: A mask model ``(batch, h, w, 1 or 3) -> (batch, h, w, 1)`` of
            probabilities, such as a trained ``lung_unet``.
        threshold: Probability above which a pixel is lung.
        margin: Dilation, a share of the input's larger side (:data:`DEFAULT_MARGIN`).
        fill: One of :data:`FILLS`.
        mode: One of :data:`MODES`: ``"mask"`` keeps the lungs, ``"inverse"`` keeps the rest.
        **kwargs: Standard layer arguments (``name``, ``dtype``).

    Raises:
        InvalidInputError: A bad threshold, margin, fill or mode; on first call, an input whose
            channels cannot be converted to the segmenter's.

    Example:
        >>> unet = cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8))
        >>> LungFocus(unet, fill="zero")(np.ones((2, 64, 64, 1), np.float32)).shape
        TensorShape([2, 64, 64, 1])
    """

    target_candidate = False
    """Read by :mod:`cxrexplain.explain.layers`: never the default target layer."""

    def __init__(
        self,
        segmenter: keras.Model,
        *,
        threshold: float = 0.5,
        margin: float = DEFAULT_MARGIN,
        fill: str = DEFAULT_FILL,
        mode: str = "mask",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        kwargs.pop("trainable", None)
        super().__init__(**kwargs)
        if not isinstance(segmenter, keras.Model):
            raise InvalidInputError(
                f"segmenter: expected a keras.Model (a lung mask model), got "
                f"{type(segmenter).__name__}"
            )
        self.segmenter = segmenter
        self.threshold = check_number(threshold, "threshold", low=0.0, high=1.0,
                                      low_open=True, high_open=True)
        self.margin = check_number(margin, "margin", low=0.0, high=MAX_MARGIN)
        self.fill = str(check_choice(fill, "fill", FILLS))
        self.mode = str(check_choice(mode, "mode", MODES))
        self.trainable = False
        height, width, channels = _mask_model_input(segmenter)
        self._segmenter_size = (height, width)
        self._segmenter_channels = channels

    @property
    def trainable(self) -> bool:
        """Always False: the segmenter never trains inside a focused model."""
        return bool(self._trainable)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        keras.layers.Layer.trainable.fset(self, False)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Record the film's size and check its channels against the segmenter's."""
        height, width, channels = (tuple(input_shape) + (None,) * 4)[1:4]
        if len(input_shape) != 4 or height is None or width is None or channels is None:
            raise InvalidInputError(
                f"images: a lung focus needs a fixed-size image input (batch, H, W, C), got "
                f"{tuple(input_shape)}"
            )
        wanted = self._segmenter_channels
        if channels != wanted and not (channels in (1, 3) and wanted in (1, 3)):
            raise InvalidInputError(
                f"segmenter: takes {wanted}-channel images and the classifier's input has "
                f"{channels} channels; only 1 <-> 3 channels can be converted"
            )
        self._image_shape = (int(height), int(width), int(channels))
        self.built = True

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """Same as the input shape."""
        return tuple(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """The films with everything outside (``"inverse"``: inside) the grown lung masks
        replaced by the fill."""
        height, width, channels = self._image_shape
        # the shape is pinned: a trace may see (None, None, None, None) (Score-CAM's pass)
        images = ops.reshape(ops.cast(inputs, "float32"), (-1, height, width, channels))
        probabilities = self.segmenter(self._segmenter_input(images), training=False)
        probabilities = ops.stop_gradient(ops.cast(probabilities, "float32"))
        if (height, width) != self._segmenter_size:
            probabilities = _resize(probabilities, self._segmenter_size, (height, width),
                                    area=False)
        lungs = ops.cast(ops.greater(probabilities, self.threshold), "float32")
        lungs = self._dilate(lungs, (height, width))
        if self.mode == "inverse":
            keep = 1.0 - lungs
            filled = self._fill_from_visible(images, keep)
        else:
            keep = lungs
            filled = self._fill_values(images)
        focused = keep * images + (1.0 - keep) * filled
        return ops.cast(focused, self.compute_dtype)

    def _segmenter_input(self, images: Any) -> Any:
        height, width, channels = self._image_shape
        wanted = self._segmenter_channels
        if channels != wanted:
            if wanted == 3:
                images = ops.repeat(images, 3, axis=-1)
            else:
                weights = ops.convert_to_tensor(_GRAY_WEIGHTS, dtype="float32")
                images = ops.sum(images * weights, axis=-1, keepdims=True)
        if (height, width) != self._segmenter_size:
            shrinking = self._segmenter_size[0] <= height and self._segmenter_size[1] <= width
            images = _resize(images, (height, width), self._segmenter_size, area=shrinking)
        return ops.clip(images, 0.0, 1.0)

    def _dilate(self, lungs: Any, shape: tuple[int, int]) -> Any:
        disc = dilation_disc(self.margin, shape)
        if disc.shape[0] == 1:
            return lungs
        kernel = ops.convert_to_tensor(disc[:, :, None, None], dtype="float32")
        covered = ops.conv(lungs, kernel, padding="same")
        return ops.cast(ops.greater(covered, 0.5), "float32")

    def _fill_from_visible(self, images: Any, keep: Any) -> Any:
        """The fill of the ``"inverse"`` mode, computed from the kept pixels only.

        ``"mean"``: the mean of the kept pixels, per film and channel; ``"blur"``: the
        Gaussian blur of the kept pixels divided by the blur of the keep mask (a normalised
        convolution: each hidden pixel gets a weighted mean of the visible pixels near it),
        the kept mean where no visible pixel lies within the kernel's reach.
        """
        if self.fill == "zero":
            return ops.zeros_like(images)
        kept = images * keep
        count = ops.sum(keep, axis=(1, 2), keepdims=True)
        mean = ops.divide_no_nan(ops.sum(kept, axis=(1, 2), keepdims=True), count)
        if self.fill == "mean":
            return mean
        height, width, channels = self._image_shape
        taps = _gaussian(BLUR_SIGMA * max(height, width))
        weight = _separable_blur(keep, taps, 1)
        blurred = _separable_blur(kept, taps, channels)
        reached = ops.greater(weight, _MIN_BLUR_WEIGHT)
        safe = ops.where(reached, weight, ops.ones_like(weight))
        return ops.where(reached, blurred / safe, mean)

    def _fill_values(self, images: Any) -> Any:
        if self.fill == "zero":
            return ops.zeros_like(images)
        if self.fill == "mean":
            return ops.mean(images, axis=(1, 2), keepdims=True)
        height, width, channels = self._image_shape
        taps = _gaussian(BLUR_SIGMA * max(height, width))
        # Zero-padded, then divided by the blurred ones (a normalised convolution): no dark
        # rim at the film's edges, whatever its size.
        weight = _separable_blur(ops.ones((1, height, width, 1), dtype="float32"), taps, 1)
        return _separable_blur(images, taps, channels) / weight

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, the segmenter serialised with its architecture."""
        config: dict[str, Any] = super().get_config()
        config.pop("trainable", None)
        config.update(
            segmenter=keras.saving.serialize_keras_object(self.segmenter),
            threshold=self.threshold,
            margin=self.margin,
            fill=self.fill,
            mode=self.mode,
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LungFocus:
        """Rebuild the layer and its segmenter (weights are loaded afterwards by Keras).

        A configuration saved before the ``mode`` existed rebuilds in the ``"mask"`` mode.
        """
        settings = dict(config)
        settings["segmenter"] = keras.saving.deserialize_keras_object(settings["segmenter"])
        return cls(**settings)


def check_segmenter(segmenter: Any, name: str) -> SegmenterLike:
    """``segmenter`` itself when it is a lung segmenter; else an error naming ``name``.

    Example:
        >>> check_segmenter("lungs.keras", "--lungs")
        Traceback (most recent call last):
        ...
        cxrexplain.errors.InvalidInputError: --lungs: expected a cx.lungs.LungSegmenter (...
    """
    if not isinstance(segmenter, SegmenterLike) or not isinstance(segmenter.model, keras.Model):
        raise InvalidInputError(
            f"{name}: expected a cx.lungs.LungSegmenter (cx.lungs.train or "
            f"cx.lungs.LungSegmenter.load), got {describe(segmenter)}"
        )
    return segmenter


def with_lung_focus(
    model: keras.Model,
    segmenter: SegmenterLike,
    *,
    mode: str = "mask",
    margin: float = DEFAULT_MARGIN,
    fill: str = DEFAULT_FILL,
) -> keras.Model:
    """A new model that hides what lies outside the lungs before ``model`` sees the film.

    ``film -> LungFocus (segment, dilate, fill) -> model``: the new functional model takes
    the same input as ``model`` and gives the same outputs, so a
    :class:`~cxrexplain.Classifier`, ``predict``, training and every explainer use it
    unchanged. Explanations are in the film's own pixels (boxes and masks apply as they are),
    and the default target layer is ``model``'s last convolutional layer, never one of the
    segmenter's. It shares its weights with ``model`` (training it trains ``model``) and holds
    a frozen copy of the segmenter's Keras model: no gradient reaches it and training leaves
    it unchanged. It saves as one ``.keras`` file with :meth:`cxrexplain.Classifier.save` and
    reloads with safe_mode on.

    Fills: ``"mean"`` (the default) paints the outside with the film's own mean grey (per
    channel). It is flat, so no texture or shape from outside the lungs survives, and it sits
    at the film's own intensity, so the classifier's inputs (and its BatchNorm statistics)
    stay close to whole films. ``"zero"`` hides as much but draws a hard, high-contrast
    outline of the lungs on every film, an edge a network readily learns, and moves the input
    far from the films' intensities. ``"blur"`` keeps the outside's low frequencies: large
    burnt-in labels, collimation edges and body shape survive a blur, and shortcuts with
    them. The mean leaks one number per film from outside the lungs (their share of the
    average), a far weaker signal than either.

    Modes: ``"mask"`` (the default) keeps the lungs and fills the rest as above.
    ``"inverse"`` keeps only what lies outside the grown lungs and fills the lungs, for the
    shortcut-strength check: train the same architecture on the inverse, and a score far
    above chance means the data set carries a shortcut outside the lungs. In this mode the
    fill comes from the visible part alone, so that nothing from inside the lungs leaks in:
    ``"mean"`` is the mean of the visible pixels (per channel), ``"blur"`` a Gaussian blur of
    the visible pixels normalised by the blurred visible mask (the visible mean where none is
    within the kernel's reach), ``"zero"`` black.

    Args:
        model: A Keras classifier with one fixed-size image input ``(H, W, C)``, C = 1 or 3.
        segmenter: A :class:`cxrexplain.lungs.LungSegmenter` (its model, input size, channels
            and threshold are used; its clean-up is not, see the module notes).
        mode: ``"mask"`` (the default): replace what lies outside the grown lung mask;
            ``"inverse"``: replace what lies inside it (see :data:`MODES`).
        margin: Dilation of the lung mask before masking, a share of the film's larger side
            in [0, 0.5], with a disc (:data:`DEFAULT_MARGIN`: 0.03, the audit's margin).
        fill: ``"mean"``, ``"zero"`` or ``"blur"`` (see above and :data:`FILLS`).

    Returns:
        The functional model ``<model.name>_lung_focus``: layers ``image``, ``lung_focus``
        (a :class:`LungFocus`) and ``model``.

    Raises:
        InvalidInputError: ``model`` is not a Keras model or has no fixed-size image input,
            ``segmenter`` is not a lung segmenter or its channels cannot be matched to the
            model's (only 1 <-> 3 convert), an unknown ``mode`` or ``fill``, a ``margin``
            outside [0, 0.5].

    Example:
        >>> seg  # an untrained 32 x 32 lung U-Net
        LungSegmenter(model='lung_unet', input_size=(32, 32), channels=1, threshold=0.5)
        >>> focused = cx.models.with_lung_focus(model, seg, margin=0.05, fill="zero")
        >>> [layer.name for layer in focused.layers]
        ['image', 'lung_focus', 'cam_cnn']
        >>> clf = cx.Classifier(focused, class_names=["NORMAL", "PNEUMONIA"])
        >>> clf.save("focused.keras")
        PosixPath('focused.keras')
        >>> cx.GradCAM(cx.Classifier.load("focused.keras")).explain(batch).layer
        'cam_cnn/block2_relu'
    """
    if not isinstance(model, keras.Model):
        raise InvalidInputError(
            f"model: expected a keras.Model (the classifier), got {describe(model)}"
        )
    check_segmenter(segmenter, "segmenter")
    mode = str(check_choice(mode, "mode", MODES))
    margin = check_number(margin, "margin", low=0.0, high=MAX_MARGIN)
    fill = str(check_choice(fill, "fill", FILLS))
    spec = input_spec(model)
    if spec is None or spec[0] is None or spec[1] is None or spec[2] is None:
        raise InvalidInputError(
            f"model: '{model.name}' needs a fixed-size image input (batch, H, W, C) for a "
            f"lung focus, got {spec}"
        )
    height, width, channels = int(spec[0]), int(spec[1]), int(spec[2])
    wanted = int(segmenter.channels)
    if channels != wanted and not (channels in (1, 3) and wanted in (1, 3)):
        raise InvalidInputError(
            f"segmenter: takes {wanted}-channel images and '{model.name}' takes {channels}; "
            f"only 1 <-> 3 channels can be converted"
        )
    focus = LungFocus(_frozen_copy(segmenter.model), threshold=segmenter.threshold,
                      margin=margin, fill=fill, mode=mode, name="lung_focus")
    inputs = keras.Input((height, width, channels), name="image")
    return keras.Model(inputs, model(focus(inputs)), name=f"{model.name}_lung_focus")


def _mask_model_input(model: keras.Model) -> tuple[int, int, int]:
    """``(h, w, channels)`` of a mask model's one fixed-size input (channels 1 or 3)."""
    inputs = getattr(model, "inputs", None) or []
    shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
    if len(shape) != 4 or None in shape[1:] or shape[3] not in (1, 3):
        given = shape if shape else f"{len(inputs)} inputs"
        raise InvalidInputError(
            f"segmenter: a lung mask model takes one fixed-size image input (batch, h, w, 1 or "
            f"3); '{model.name}' takes {given}"
        )
    return int(shape[1]), int(shape[2]), int(shape[3])


def _frozen_copy(model: keras.Model) -> keras.Model:
    """A copy of the segmenter's model with the same weights (the user's stays trainable)."""
    try:
        twin = keras.models.clone_model(model)
        twin.set_weights(model.get_weights())
    except Exception as err:
        raise InvalidInputError(
            f"segmenter: its model '{model.name}' cannot be copied ({type(err).__name__}: "
            f"{first_line(err)})"
        ) from err
    return twin
