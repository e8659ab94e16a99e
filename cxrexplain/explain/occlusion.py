"""Occlusion sensitivity (Zeiler & Fergus, ECCV 2014).

A patch slides over the image; at each position it replaces the pixels by a baseline and the
model runs again. A pixel's value is the mean drop of the target-class probability over all
patch positions that cover it (the averaging of Captum's ``Occlusion``), then ReLU and
per-image scaling to [0, 1] as for every explainer. It needs no gradients and no target layer
and sees the model as a black box (an :class:`~cxrexplain.explain.InputExplainer`: models
without a convolutional layer are explained too). It costs one forward pass per patch position
per image: all positions of all images run in large batches of occluded images
(``mask_batch_size``), built inside one compiled function, with no Python loop over images or
positions.

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.Occlusion(clf, patch=8, stride=4).explain(batch)  # 32 x 32 images: 49 positions
    >>> exp.method, exp.heatmaps.shape, exp.raw.shape, exp.layer
    ('occlusion', (4, 32, 32), (4, 32, 32), 'input')
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain import _passes
from cxrexplain._checks import check_fraction, check_int, describe
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain.kinds import InputExplainer

__all__ = ["Occlusion"]

Pair = tuple[int, int]


class Occlusion(InputExplainer):
    """Occlusion sensitivity: how much the target probability drops when a patch is hidden.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        patch: Patch size in pixels of the model's input, one int or ``(height, width)``.
            Default: an eighth of the shorter side (28 at 224 px).
        stride: Step between patch positions, one int or ``(dy, dx)``. Default: half the
            patch. A last position flush with the bottom and right edges is always added, so
            every pixel is covered.
        baseline: What a hidden patch shows: a value in [0, 1] (default 0.5, the grey square
            of Zeiler & Fergus) or ``"mean"``, each image's mean.
        mask_batch_size: Occluded images per forward pass.
        layer: ``None``: the method reads no layer (:attr:`layer` is ``"input"``); accepted so
            that every explainer is built alike.

    Raises:
        InvalidInputError: A patch or stride that is not a positive int (or pair), a patch
            larger than the image, a bad baseline, or a layer.

    Example:
        >>> exp = Occlusion(clf, patch=4, stride=4, baseline="mean").explain(batch[:1])
        >>> float(exp.heatmaps.max()) in (0.0, 1.0)
        True
    """

    name: ClassVar[str] = "occlusion"
    aliases: ClassVar[tuple[str, ...]] = ("occlusion-sensitivity", "occlusion_sensitivity")
    order: ClassVar[int] = 70
    needs_gradients: ClassVar[bool] = False

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        patch: int | Pair | None = None,
        stride: int | Pair | None = None,
        baseline: float | str = 0.5,
        mask_batch_size: int = 64,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        self.patch = None if patch is None else _pair(patch, "patch")
        self.stride = None if stride is None else _pair(stride, "stride")
        if isinstance(baseline, str):
            if baseline != "mean":
                raise InvalidInputError(
                    f"baseline: expected a value in [0, 1] or 'mean', got {baseline!r}")
        else:
            baseline = check_fraction(baseline, "baseline")
        self.baseline = baseline
        self.mask_batch_size = check_int(mask_batch_size, "mask_batch_size")
        self._scores: Any = None
        super().__init__(model, layer=layer)

    def _options(self) -> dict[str, Any]:
        return {"patch": self.patch, "stride": self.stride, "baseline": self.baseline,
                "mask_batch_size": self.mask_batch_size}

    def windows(self, size: tuple[int, int]) -> tuple[Pair, list[int], list[int]]:
        """The patch size and the patch positions' top rows and left columns for an image.

        Args:
            size: The model's input ``(height, width)``.

        Returns:
            ``(patch, tops, lefts)``; every (top, left) pair is one position.

        Example:
            >>> Occlusion(clf, patch=8, stride=6).windows((32, 32))
            ((8, 8), [0, 6, 12, 18, 24], [0, 6, 12, 18, 24])
        """
        height, width = size
        patch = self.patch or (max(1, round(min(height, width) / 8)),) * 2
        if patch[0] > height or patch[1] > width:
            raise InvalidInputError(
                f"patch: {patch} is larger than the model's input {size}")
        stride = self.stride or (max(1, patch[0] // 2), max(1, patch[1] // 2))
        return patch, _starts(height, patch[0], stride[0]), _starts(width, patch[1], stride[1])

    def combine_with_model(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Mean drop of the target probability over the patches covering each pixel."""
        count, height, width = (int(d) for d in images.shape[:3])
        (ph, pw), tops, lefts = self.windows((height, width))
        grid_tops = np.repeat(np.asarray(tops, np.int32), len(lefts))
        grid_lefts = np.tile(np.asarray(lefts, np.int32), len(tops))
        # position 0 hides nothing: the unoccluded score, from the same function
        starts_y = np.concatenate([[-ph], grid_tops]).astype(np.int32)
        starts_x = np.concatenate([[-pw], grid_lefts]).astype(np.int32)
        positions = len(starts_y)
        pair_image = np.repeat(np.arange(count, dtype=np.int32), positions)
        pair_position = np.tile(np.arange(positions, dtype=np.int32), count)
        fill = (tf.reduce_mean(images, axis=[1, 2, 3]) if self.baseline == "mean"
                else tf.fill([count], tf.constant(float(self.baseline), tf.float32)))
        scores = np.empty(count * positions, np.float32)
        run = self._score_function()
        for start in range(0, len(pair_image), self.mask_batch_size):
            stop = start + self.mask_batch_size
            scores[start:stop] = run(
                images, tf.cast(targets, tf.int32), fill,
                tf.constant(pair_image[start:stop]),
                tf.constant(starts_y[pair_position[start:stop]]),
                tf.constant(starts_x[pair_position[start:stop]]),
                tf.constant([ph, pw], tf.int32),
            ).numpy()
        by_image = scores.reshape(count, positions)
        drops = by_image[:, :1] - by_image[:, 1:]  # (N, P)
        rows = _cover(grid_tops, ph, height)  # (P, H)
        cols = _cover(grid_lefts, pw, width)  # (P, W)
        total = np.einsum("np,ph,pw->nhw", drops, rows, cols, optimize=True)
        covered = np.einsum("ph,pw->hw", rows, cols, optimize=True)
        return tf.constant((total / covered[None]).astype(np.float32))

    def _score_function(self) -> Any:
        if self._scores is None:
            clf = self.classifier
            specs = (
                self._image_spec(),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([2], tf.int32),
            )
            key = ("occlusion-scores", clf.output_activation, clf.multilabel)
            self._scores = _passes.shared(
                self.model, key,
                lambda: tf.function(self._occluded_scores).get_concrete_function(*specs))
        return self._scores

    def _occluded_scores(self, images: tf.Tensor, targets: tf.Tensor, fill: tf.Tensor,
                         pair_image: tf.Tensor, top: tf.Tensor, left: tf.Tensor,
                         patch: tf.Tensor) -> tf.Tensor:
        """Target probability of each (image, position) with that patch hidden."""
        shape = tf.shape(images)
        rows = tf.range(shape[1])[None, :]
        cols = tf.range(shape[2])[None, :]
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + patch[0])
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + patch[1])
        hidden = tf.cast(in_rows[:, :, None] & in_cols[:, None, :], tf.float32)[..., None]
        chosen = tf.gather(images, pair_image)
        value = tf.gather(fill, pair_image)[:, None, None, None]
        occluded = chosen * (1.0 - hidden) + value * hidden
        return self._target_probabilities(occluded, tf.gather(targets, pair_image))


def _pair(value: object, name: str) -> Pair:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (check_int(value[0], name), check_int(value[1], name))
    if isinstance(value, (tuple, list)):
        raise InvalidInputError(f"{name}: expected an int or (height, width), got "
                                f"{describe(value)}")
    size = check_int(value, name)
    return (size, size)


def _starts(size: int, patch: int, stride: int) -> list[int]:
    """Window starts every ``stride`` pixels, plus one flush with the far edge."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def _cover(starts: np.ndarray, patch: int, size: int) -> np.ndarray:
    """``(P, size)`` float32: 1 where position p's window covers the pixel row/column."""
    index = np.arange(size)[None, :]
    return ((index >= starts[:, None]) & (index < starts[:, None] + patch)).astype(np.float32)
