"""RISE, randomized input sampling for explanation (Petsiuk et al., BMVC 2018).

N random masks: each a binary ``s x s`` grid whose cells are kept with probability p,
upsampled bilinearly to ``(s + 1) * cell`` pixels (``cell = ceil(H / s)``) and cropped at a
random shift of up to one cell, so the mask is smooth and its cells are not aligned with a
fixed grid. The map is the mean of the masks weighted by the model's probability of the
target class on the masked image, ``S = sum_i f(x * M_i) M_i / (N p)`` (the authors'
``generate_masks`` and ``explain``), then ReLU and per-image scaling to [0, 1] as for every
explainer. The upsampling is TensorFlow's bilinear resize (half-pixel centres, edges
clamped), where the authors' skimage ``resize`` reflects at the edges.

A black box (an :class:`~cxrexplain.explain.InputExplainer`): no gradients, no layer. The masks
depend only on the seed and the image size, so every image and every batch sees the same
masks (:meth:`RISE.masks` gives them). It costs one forward pass per mask per image: the masks
are made inside one compiled function, a chunk at a time, and every chunk runs on all the
batch's images at once (``mask_batch_size`` masked images per pass).

Example:
    >>> import cxrexplain as cx
    >>> exp = cx.RISE(clf, samples=200, seed=0).explain(batch)
    >>> exp.method, exp.layer, exp.heatmaps.shape, exp.raw.shape
    ('rise', 'input', (4, 32, 32), (4, 32, 32))
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from cxrexplain import _passes
from cxrexplain._checks import check_int, check_number
from cxrexplain.classifier import Classifier
from cxrexplain.explain.kinds import InputExplainer

__all__ = ["RISE"]


class RISE(InputExplainer):
    """Randomized input sampling: the target probability's mean over random smooth masks.

    Args:
        model: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        samples: The number of masks N (the paper's 4000; fewer is faster and noisier).
        grid: The cells ``s`` per side of each mask's grid.
        probability: The probability p that a cell is kept.
        seed: Seed of the masks (the same seed, the same masks).
        mask_batch_size: Masked images per forward pass (bounds the memory).
        layer: ``None``: the method reads no layer; accepted so that every explainer is built
            alike.

    Raises:
        InvalidInputError: A bad count, grid, probability, seed or batch size, or a layer.

    Example:
        >>> explainer = RISE(clf, samples=100, grid=4, probability=0.5, seed=1)
        >>> explainer.masks((32, 32)).shape
        (100, 32, 32)
    """

    name: ClassVar[str] = "rise"
    needs_gradients: ClassVar[bool] = False

    def __init__(
        self,
        model: Classifier | keras.Model,
        *,
        samples: int = 4000,
        grid: int = 7,
        probability: float = 0.5,
        seed: int = 0,
        mask_batch_size: int = 64,
        layer: str | keras.layers.Layer | None = None,
    ) -> None:
        self.samples = check_int(samples, "samples")
        self.grid = check_int(grid, "grid")
        self.probability = check_number(probability, "probability", low=0.0, high=1.0,
                                        low_open=True)
        self.seed = check_int(seed, "seed", minimum=0)
        self.mask_batch_size = check_int(mask_batch_size, "mask_batch_size")
        self._parameters: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._summed: Any = None
        self._masking: Any = None
        super().__init__(model, layer=layer)

    def _options(self) -> dict[str, Any]:
        return {"samples": self.samples, "grid": self.grid, "probability": self.probability,
                "seed": self.seed, "mask_batch_size": self.mask_batch_size}

    def mask_parameters(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The masks' binary grids and shifts for images of ``size``, from the seed.

        Args:
            size: The model's input ``(height, width)``.

        Returns:
            ``(grids, shifts)``: ``(N, s, s)`` float32 in {0, 1} and ``(N, 2)`` int32 row and
            column shifts, each in ``[0, cell)``.

        Example:
            >>> grids, shifts = RISE(clf, samples=3, grid=4).mask_parameters((32, 32))
            >>> grids.shape, shifts.shape, int(shifts.max()) < 8
            ((3, 4, 4), (3, 2), True)
        """
        key = (int(size[0]), int(size[1]))
        if key not in self._parameters:
            rng = np.random.default_rng(self.seed)
            grids = (rng.random((self.samples, self.grid, self.grid)) < self.probability)
            cells = [-(-side // self.grid) for side in key]
            shifts = rng.integers(0, cells, size=(self.samples, 2))
            self._parameters[key] = (grids.astype(np.float32), shifts.astype(np.int32))
        return self._parameters[key]

    def masks(self, size: tuple[int, int], start: int = 0, stop: int | None = None
              ) -> np.ndarray:
        """The masks ``start:stop`` for images of ``size``, as the method applies them.

        Args:
            size: The model's input ``(height, width)``.
            start: First mask.
            stop: End (exclusive; None: all N).

        Returns:
            ``(stop - start, H, W)`` float32 in [0, 1].

        Example:
            >>> masks = RISE(clf, samples=50, seed=3).masks((32, 32), 0, 10)
            >>> masks.shape, bool(masks.min() >= 0 and masks.max() <= 1)
            ((10, 32, 32), True)
        """
        grids, shifts = self.mask_parameters(size)
        if self._masking is None:
            self._masking = tf.function(_make_masks).get_concrete_function(
                tf.TensorSpec([None, None, None], tf.float32),
                tf.TensorSpec([None, 2], tf.int32), tf.TensorSpec([2], tf.int32))
        part = slice(start, stop)
        return np.asarray(self._masking(tf.constant(grids[part]), tf.constant(shifts[part]),
                                        tf.constant(size, tf.int32)))

    def combine_with_model(self, images: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """``sum_i f(x * M_i) M_i / (N p)``, a chunk of masks at a time on all the images."""
        count, height, width = (int(d) for d in images.shape[:3])
        grids, shifts = self.mask_parameters((height, width))
        per_call = max(1, self.mask_batch_size // count)
        run = self._summed_function()
        total = tf.zeros([count, height, width], tf.float32)
        for start in range(0, self.samples, per_call):
            stop = start + per_call
            total += run(images, tf.cast(targets, tf.int32), tf.constant(grids[start:stop]),
                         tf.constant(shifts[start:stop]))
        return total / (self.samples * self.probability)

    def _summed_function(self) -> Any:
        if self._summed is None:
            clf = self.classifier
            specs = (
                self._image_spec(),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, None, None], tf.float32),
                tf.TensorSpec([None, 2], tf.int32),
            )
            key = ("rise-sum", clf.output_activation, clf.multilabel)
            self._summed = _passes.shared(
                self.model, key,
                lambda: tf.function(self._masked_sum).get_concrete_function(*specs))
        return self._summed

    def _masked_sum(self, images: tf.Tensor, targets: tf.Tensor, grids: tf.Tensor,
                    shifts: tf.Tensor) -> tf.Tensor:
        """``(N, H, W)``: ``sum_i f(x * M_i) M_i`` over one chunk of masks, for every image."""
        shape = tf.shape(images)
        masks = _make_masks(grids, shifts, shape[1:3])  # (m, H, W)
        count, chunk = shape[0], tf.shape(masks)[0]
        masked = images[:, None] * masks[None, :, :, :, None]  # (N, m, H, W, C)
        flat = tf.reshape(masked, tf.concat([[count * chunk], shape[1:]], 0))
        scores = self._target_probabilities(flat, tf.repeat(targets, chunk))
        return tf.einsum("nm,mhw->nhw", tf.reshape(scores, [count, chunk]), masks)


def _make_masks(grids: tf.Tensor, shifts: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """``(m, H, W)`` masks: each grid upsampled bilinearly to ``(s + 1) * cell``, then the
    ``H x W`` window at its shift (rows, columns)."""
    side = tf.shape(grids)[1]
    cells = (size + side - 1) // side
    upsampled = tf.image.resize(grids[..., None], (side + 1) * cells, method="bilinear")[..., 0]
    rows = shifts[:, :1] + tf.range(size[0])[None, :]
    cols = shifts[:, 1:] + tf.range(size[1])[None, :]
    picked = tf.gather(upsampled, rows, axis=1, batch_dims=1)  # (m, H, up_w)
    return tf.gather(picked, cols, axis=2, batch_dims=1)
