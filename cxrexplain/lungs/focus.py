"""The lung focus layer: segment, dilate and fill, inside a Keras model.

:class:`LungFocus` is the layer that :func:`cxrexplain.models.with_lung_focus` puts before a
classifier: image -> :class:`LungFocus` -> classifier, so that the classifier sees only the
lungs (in the ``"inverse"`` mode, only what lies outside them; in the ``"crop"`` mode, the
box around the lungs stretched to the whole frame). It keeps the film's size, so predictions,
explanations, boxes and masks stay in the film's own pixels (a crop's explanations are mapped
back to the film by the explainers, :meth:`LungFocus.to_film`), and it saves and
reloads inside the model's ``.keras`` file (safe_mode on; its registered Keras name is
``cxrexplain>LungFocus``, whatever module defines it).

The layer holds its own copy of the segmenter's inference graph (:func:`inference_copy`): the
architecture and the weights, never the segmenter's compiled state (its loss, its Dice metric,
its optimizer), so a segmenter trained in the same process focuses a classifier that trains.

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
   convolution of the mask with :func:`~cxrexplain.lungs.geometry.dilation_disc`, exactly the
   dilation the audit applies before it counts a map's lung share,
   :func:`cxrexplain.lungs.geometry.dilate`), so evidence at the lung's edge (pleura,
   costophrenic angles) stays in view.
4. Outside the grown mask each pixel is replaced by the fill (:data:`FILLS`); in the
   ``"inverse"`` mode (:data:`MODES`) it is the other way round: everything inside the grown
   mask is replaced and only what lies outside the lungs stays visible. In the ``"crop"``
   mode nothing is filled: the grown mask's bounding box (:meth:`LungFocus.crop_boxes`; the
   whole frame for a film without lungs) is resized to the film's size, bilinear, as
   ``tf.image.crop_and_resize`` samples (written as two batched matrix products, for XLA), so
   the lungs reach the classifier at a fixed position and size.

Example:
    >>> import numpy as np
    >>> import cxrexplain as cx
    >>> unet = cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8))
    >>> focus = LungFocus(unet, mode="inverse")  # keeps only what lies outside the lungs
    >>> focus(np.zeros((2, 48, 48, 1), np.float32)).shape
    TensorShape([2, 48, 48, 1])
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from cxrexplain._checks import check_choice, check_number, first_line
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs.geometry import DEFAULT_MARGIN, MAX_MARGIN, dilation_disc

__all__ = [
    "BLUR_SIGMA",
    "DEFAULT_FILL",
    "FILLS",
    "MODES",
    "LungFocus",
    "grow_masks",
    "inference_copy",
]

FILLS = ("mean", "zero", "blur")
"""What replaces the film outside the grown lung mask.

* ``"mean"`` (the default): the film's own mean, per channel, over the whole film;
* ``"zero"``: black;
* ``"blur"``: the film under a Gaussian blur of :data:`BLUR_SIGMA` times its larger side.
"""

DEFAULT_FILL = "mean"
"""The default fill; see :func:`cxrexplain.models.with_lung_focus` for why."""

MODES = ("mask", "inverse", "crop")
"""What stays visible: the lungs, the rest of the film, or the lungs in a fixed frame.

* ``"mask"`` (the default): what lies outside the grown lung mask is replaced by the fill,
  only the lungs stay visible (train a classifier that looks at the lungs);
* ``"inverse"``: what lies inside the grown lung mask is replaced, only what lies outside the
  lungs stays visible. A model trained on such films that scores far above chance shows that
  the data set carries a shortcut outside the lungs (a shortcut-strength check). The fill is
  then computed from the visible part alone (see :func:`cxrexplain.models.with_lung_focus`),
  so nothing from inside the lungs reaches the classifier but the outline of the grown mask.
* ``"crop"``: the bounding box of the grown lung mask is resized to the whole frame (the fill
  is not used), so the lungs' position and size on the film carry nothing. The explainers
  map their maps back to the film (:meth:`LungFocus.to_film`).
"""

BLUR_SIGMA = 0.05
"""The ``"blur"`` fill's Gaussian sigma, a share of the film's larger side (11 px at 224).

The kernel reaches 3 sigma; near the film's edges it is renormalised over the pixels inside
the film (no dark rim).
"""

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # OpenCV's RGB -> gray, as cxrexplain.io converts


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


_EDGE_SLACK = 1e-3
"""How far (in pixels) outside the film a sample may fall and still count as on its edge."""


def _sampling_matrix(starts: Any, stops: Any, size: Any, target: Any) -> Any:
    """``(N, target, size)`` bilinear weights of ``tf.image.crop_and_resize`` along one axis.

    Output pixel ``i`` of film ``n`` samples the input at ``start * (size - 1) + i * (stop -
    start) * (size - 1) / (target - 1)`` (the box's centre for ``target == 1``): the two
    nearest pixels weighted by their distance (a tent), and nothing (extrapolation value 0)
    where the sample lies outside ``[0, size - 1]`` by more than :data:`_EDGE_SLACK` pixel (so
    that a box's edge on a pixel centre, rounded by float32 to just outside, keeps its
    pixel). ``size`` and ``target`` may be ints or scalar tensors (a shape unknown until the
    graph runs).
    """
    starts = ops.reshape(ops.cast(starts, "float32"), (-1, 1))
    stops = ops.reshape(ops.cast(stops, "float32"), (-1, 1))
    last = ops.cast(size, "float32") - 1.0
    outputs = ops.cast(target, "float32")
    steps = ops.reshape(ops.cast(ops.arange(target), "float32"), (1, -1))
    several = ops.greater(outputs, 1.0)
    scale = ops.where(several, (stops - starts) * last / ops.maximum(outputs - 1.0, 1.0), 0.0)
    offset = ops.where(several, starts * last, 0.5 * (starts + stops) * last)
    source = offset + steps * scale
    inside = ops.cast(ops.logical_and(ops.greater_equal(source, -_EDGE_SLACK),
                                      ops.less_equal(source, last + _EDGE_SLACK)), "float32")
    pixels = ops.reshape(ops.cast(ops.arange(size), "float32"), (1, 1, -1))
    tent = ops.relu(1.0 - ops.abs(source[:, :, None] - pixels))
    return tent * inside[:, :, None]


def _crop_and_resize(images: Any, boxes: Any, size: tuple[int, int]) -> Any:
    """Each film's box resized to ``size``: ``tf.image.crop_and_resize`` with a box per film.

    Boxes are normalised ``(y0, x0, y1, x1)`` (``0`` the first pixel's centre, ``1`` the
    last's) and may reach outside ``[0, 1]``: samples beyond the film are 0. Written as two
    batched matrix products (:func:`_sampling_matrix`), so that XLA compiles it and gradients
    reach the films.

    Args:
        images: ``(N, H, W, C)`` float32.
        boxes: ``(N, 4)`` normalised boxes, one per film.
        size: ``(height, width)`` of the output (ints, or scalar tensors).

    Returns:
        ``(N, *size, C)`` float32.

    Example:
        >>> film = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
        >>> box = np.array([[0, 0, 1 / 3, 1 / 3]], np.float32)  # the top-left 2 x 2 pixels
        >>> _crop_and_resize(film, box, (3, 3)).numpy()[0, :, :, 0].tolist()
        [[0.0, 0.5, 1.0], [2.0, 2.5, 3.0], [4.0, 4.5, 5.0]]
    """
    images = ops.cast(images, "float32")
    boxes = ops.cast(boxes, "float32")
    height, width = ops.shape(images)[1], ops.shape(images)[2]
    rows = _sampling_matrix(boxes[:, 0], boxes[:, 2], height, size[0])
    cols = _sampling_matrix(boxes[:, 1], boxes[:, 3], width, size[1])
    images = ops.einsum("noh,nhwc->nowc", rows, images)
    return ops.einsum("npw,nowc->nopc", cols, images)


def _inverse_boxes(boxes: Any) -> Any:
    """The boxes that undo a crop: where the film lies in the crop's normalised frame.

    For a crop box ``(y0, x0, y1, x1)`` the film spans ``((0 - y0) / (y1 - y0), (0 - x0) /
    (x1 - x0), (1 - y0) / (y1 - y0), (1 - x0) / (x1 - x0))`` of the crop: cropping a map in
    the crop's frame with that box (the output at the film's size, 0 outside the crop) puts
    it back on the film.

    Example:
        >>> _inverse_boxes(np.array([[0.25, 0.0, 0.75, 0.5]], np.float32)).numpy().tolist()
        [[-0.5, 0.0, 1.5, 2.0]]
    """
    boxes = ops.cast(boxes, "float32")
    y0, x0, y1, x1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return ops.stack([-y0 / (y1 - y0), -x0 / (x1 - x0),
                      (1.0 - y0) / (y1 - y0), (1.0 - x0) / (x1 - x0)], axis=1)


def _extent(present: Any, size: int) -> tuple[Any, Any]:
    """First and last index where ``present`` ``(N, size)`` holds, at least one pixel apart;
    ``(0, size - 1)`` where it holds nowhere."""
    index = ops.reshape(ops.arange(size, dtype="int32"), (1, size))
    first = ops.min(ops.where(present, index, size), axis=1)
    last = ops.max(ops.where(present, index, -1), axis=1)
    empty = ops.less(last, 0)
    first = ops.where(empty, 0, first)
    last = ops.where(empty, size - 1, last)
    last = ops.minimum(ops.maximum(last, first + 1), size - 1)  # one row: a box two rows high
    first = ops.minimum(first, last - 1)
    return first, last


def _mask_boxes(masks: Any) -> Any:
    """``(N, 4)`` normalised bounding boxes ``(y0, x0, y1, x1)`` of ``(N, H, W, 1)`` masks.

    The first and last rows and columns where a mask has a pixel above 0.5, as pixel centres
    over ``size - 1`` (the box convention of ``tf.image.crop_and_resize``); an empty mask
    gives the whole frame ``(0, 0, 1, 1)``, and a box one pixel thin is widened to two.

    Example:
        >>> mask = np.zeros((1, 5, 9, 1), np.float32)
        >>> mask[0, 1:4, 2:7] = 1
        >>> _mask_boxes(mask).numpy().tolist()
        [[0.25, 0.25, 0.75, 0.75]]
    """
    masks = ops.cast(masks, "float32")
    height, width = int(masks.shape[1]), int(masks.shape[2])
    rows = ops.greater(ops.max(masks, axis=(2, 3)), 0.5)
    cols = ops.greater(ops.max(masks, axis=(1, 3)), 0.5)
    y0, y1 = _extent(rows, height)
    x0, x1 = _extent(cols, width)
    return ops.stack([ops.cast(y0, "float32") / (height - 1),
                      ops.cast(x0, "float32") / (width - 1),
                      ops.cast(y1, "float32") / (height - 1),
                      ops.cast(x1, "float32") / (width - 1)], axis=1)


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

    The layer holds a copy of the segmenter's Keras model (:func:`inference_copy`: its
    graph and weights, not its compiled state), always frozen: ``trainable`` stays False
    whatever is assigned to it (so ``model.trainable = True`` before fine-tuning leaves the
    segmenter alone), it runs with ``training=False`` and no gradient flows back into it. The
    explainers never choose it as their default target layer (``target_candidate = False``).
    Build one with :func:`cxrexplain.models.with_lung_focus`, which checks its arguments.

    Args:
        segmenter: A mask model ``(batch, h, w, 1 or 3) -> (batch, h, w, 1)`` of
            probabilities, such as a trained ``lung_unet``.
        threshold: Probability above which a pixel is lung.
        margin: Dilation, a share of the input's larger side
            (:data:`~cxrexplain.lungs.geometry.DEFAULT_MARGIN`).
        fill: One of :data:`FILLS` (not used in the ``"crop"`` mode).
        mode: One of :data:`MODES`: ``"mask"`` keeps the lungs, ``"inverse"`` keeps the rest,
            ``"crop"`` resizes the lungs' bounding box to the whole frame.
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
        self.segmenter = inference_copy(segmenter)
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
        replaced by the fill; in the ``"crop"`` mode, their lung boxes at the film's size."""
        height, width, channels = self._image_shape
        # the shape is pinned: a trace may see (None, None, None, None) (Score-CAM's pass)
        images = ops.reshape(ops.cast(inputs, "float32"), (-1, height, width, channels))
        lungs = self.lung_masks(images)
        if self.mode == "crop":
            cropped = _crop_and_resize(images, _mask_boxes(lungs), (height, width))
            return ops.cast(cropped, self.compute_dtype)
        if self.mode == "inverse":
            keep = 1.0 - lungs
            filled = self._fill_from_visible(images, keep)
        else:
            keep = lungs
            filled = self._fill_values(images)
        focused = keep * images + (1.0 - keep) * filled
        return ops.cast(focused, self.compute_dtype)

    def lung_masks(self, images: Any) -> Any:
        """The grown lung masks of ``images``, as the layer computes them before it fills.

        Steps 1 to 3 of the module docs: segment (frozen, no gradient), back to the film's
        size, threshold, grow by the margin. The explanation guide
        (:class:`cxrexplain.training.Guide`) reads its masks here, so a guided model and a
        focused one see the same lungs.

        Args:
            images: Films ``(batch, H, W, C)`` of the layer's input size (built on first use).

        Returns:
            float32 masks ``(batch, H, W, 1)`` of 0 and 1.

        Example:
            >>> unet = cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8))
            >>> LungFocus(unet).lung_masks(np.zeros((2, 48, 48, 1), np.float32)).shape
            TensorShape([2, 48, 48, 1])
        """
        if not self.built:
            self.build(tuple(ops.shape(images)))
        height, width, channels = self._image_shape
        images = ops.reshape(ops.cast(images, "float32"), (-1, height, width, channels))
        probabilities = self.segmenter(self._segmenter_input(images), training=False)
        probabilities = ops.stop_gradient(ops.cast(probabilities, "float32"))
        if (height, width) != self._segmenter_size:
            probabilities = _resize(probabilities, self._segmenter_size, (height, width),
                                    area=False)
        lungs = ops.cast(ops.greater(probabilities, self.threshold), "float32")
        return self._dilate(lungs, (height, width))

    @property
    def reframes(self) -> bool:
        """Whether the layer moves the film's pixels (the ``"crop"`` mode): the explainers
        then map the maps of the layers after it back with :meth:`to_film`."""
        return self.mode == "crop"

    def crop_boxes(self, images: Any) -> Any:
        """The box of each film that the ``"crop"`` mode resizes to the whole frame.

        The bounding box of the grown lung mask (:meth:`lung_masks`): its first and last rows
        and columns with a lung pixel, normalised as ``tf.image.crop_and_resize`` takes boxes
        (``0`` the first pixel's centre, ``1`` the last's); ``(0, 0, 1, 1)``, the whole frame,
        for a film without lungs. The same in every mode (only the ``"crop"`` mode uses it).

        Args:
            images: Films ``(batch, H, W, C)`` of the layer's input size.

        Returns:
            float32 ``(batch, 4)``: ``(y0, x0, y1, x1)`` per film.

        Example:
            >>> unet = cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8))
            >>> LungFocus(unet, mode="crop").crop_boxes(np.zeros((2, 48, 48, 1), np.float32)).shape
            TensorShape([2, 4])
        """
        return _mask_boxes(self.lung_masks(images))

    @staticmethod
    def to_film(maps: Any, boxes: Any) -> Any:
        """Maps in the crop's frame put back on the film: the inverse of the ``"crop"`` mode.

        A map over the classifier's input (the cropped frame) is resampled, bilinear, to the
        film's pixels: each film pixel inside the box takes the crop map's value where the
        crop sampled it, each pixel outside the box is 0. It is a crop-and-resize of the map
        with the box ``((0 - y0) / (y1 - y0), (0 - x0) / (x1 - x0), (1 - y0) / (y1 - y0),
        (1 - x0) / (x1 - x0))``; boxes are normalised, so maps of any resolution (a layer's
        grid, the film's) come back at their own resolution. It reads no weights (a static
        method: the explainers call ``LungFocus.to_film``).

        Args:
            maps: ``(batch, h, w)`` or ``(batch, h, w, C)`` maps in the crop's frame.
            boxes: ``(batch, 4)`` the films' crop boxes (:meth:`crop_boxes`).

        Returns:
            float32 maps of the same shape, in the film's frame.

        Example:
            >>> right_half = np.array([[0.0, 0.5, 1.0, 1.0]], np.float32)
            >>> LungFocus.to_film(np.ones((1, 3, 5), np.float32), right_half).numpy()[0].tolist()
            [[0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0, 1.0]]
        """
        maps = ops.cast(maps, "float32")
        flat = len(maps.shape) == 3
        if flat:
            maps = maps[..., None]
        size = (ops.shape(maps)[1], ops.shape(maps)[2])
        film = _crop_and_resize(maps, _inverse_boxes(boxes), size)
        return film[..., 0] if flat else film

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
        return grow_masks(lungs, self.margin)

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
        segmenter = dict(settings["segmenter"])
        segmenter.pop("compile_config", None)  # a file written before the copy was clean
        settings["segmenter"] = keras.saving.deserialize_keras_object(segmenter)
        return cls(**settings)


def grow_masks(masks: Any, margin: float = DEFAULT_MARGIN) -> Any:
    """Grow ``(batch, H, W, 1)`` 0/1 masks by ``margin`` times the larger side, in the graph.

    A convolution with :func:`~cxrexplain.lungs.geometry.dilation_disc` (the Euclidean disc
    of :func:`cxrexplain.lungs.geometry.dilate`, the audit's NumPy dilation), thresholded.

    Args:
        masks: float 0/1 masks ``(batch, H, W, 1)`` of a fixed size.
        margin: A share of the larger side, in ``[0, MAX_MARGIN]``.

    Returns:
        float32 0/1 masks of the same shape.

    Example:
        >>> masks = np.zeros((1, 40, 40, 1), np.float32); masks[0, 20, 20] = 1
        >>> int(grow_masks(masks, 0.05).numpy().sum())  # a disc of radius 2
        13
    """
    height, width = int(masks.shape[1]), int(masks.shape[2])
    masks = ops.cast(masks, "float32")
    disc = dilation_disc(margin, (height, width))
    if disc.shape[0] == 1:
        return masks
    kernel = ops.convert_to_tensor(disc[:, :, None, None], dtype="float32")
    covered = ops.conv(masks, kernel, padding="same")
    return ops.cast(ops.greater(covered, 0.5), "float32")


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


def inference_copy(model: keras.Model) -> keras.Model:
    """A copy of a mask model's inference graph with the same weights, and nothing more.

    The copy is rebuilt from the model's architecture (Keras' serialized form, safe_mode on)
    without its compile configuration, so it carries no loss, metrics or optimizer: a
    segmenter just trained (compiled, its Dice metric built) no longer drags its training
    state into the model it is put in. The user's model is not touched (it stays trainable).

    Raises:
        InvalidInputError: The model cannot be rebuilt from its configuration (a subclassed
            model without ``get_config``, a ``Lambda`` layer).

    Example:
        >>> unet = cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8))
        >>> unet.compile("adam", "binary_crossentropy", metrics=["accuracy"])
        >>> twin = inference_copy(unet)
        >>> twin.compiled, twin is unet, len(twin.weights) == len(unet.weights)
        (False, False, True)
    """
    try:
        config = keras.saving.serialize_keras_object(model)
        config.pop("compile_config", None)
        twin = keras.saving.deserialize_keras_object(config)
        twin.set_weights(model.get_weights())
    except Exception as err:
        raise InvalidInputError(
            f"segmenter: its model '{model.name}' cannot be copied ({type(err).__name__}: "
            f"{first_line(err)})"
        ) from err
    if not isinstance(twin, keras.Model):
        raise InvalidInputError(f"segmenter: its model '{model.name}' cannot be copied")
    return twin
