"""Train a lung segmenter: :func:`train_segmenter`, its Dice + cross-entropy loss, paired
augmentation.

``cx.lungs.train`` is this :func:`train_segmenter` (resolved on first use, so that
:mod:`cxrexplain.lungs` imports nothing from training).

The recipe: the ``lung_unet`` builder (:data:`FILTERS` wide, working inside at about 128 px,
:func:`default_downsample`, so that the default 256 px run fits 15 minutes on 2 CPU cores),
Adam (1e-3), the sum of the soft Dice loss and the
per-pixel binary cross-entropy (Dice fights the class imbalance of a mask that covers a third
of the film; cross-entropy gives smooth gradients early on), batches of 8, the learning rate
halved after 4 epochs without progress on the validation loss, early stopping after 10, and the
best epoch's weights kept. :func:`cxrexplain.training.fit` runs it (checkpoints, ``resume``,
``log.csv``).

Augmentation suits anatomy: the same random rotation (up to 8 degrees), zoom (10%) and shift
(5%) move the film and its mask together; brightness, contrast and gamma change the film only,
as exposure and processing differ between machines. No flip: the two lungs differ (the heart's
notch is on the left), and a mirrored film is one no test set holds; it would only teach the
network a chest it never sees.

Example:
    >>> import cxrexplain as cx
    >>> data = cx.synthetic.generate(24, size=32, seed=0)
    >>> tiny = cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4, 8))
    >>> seg = cx.training.train_segmenter(data.images, data.lung_masks, image_size=32,
    ...                                   epochs=1, model=tiny, verbose=0)
    >>> seg.segment(data.images[:2]).shape
    (2, 32, 32)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cxrexplain._checks import check_fraction, check_int, check_size
from cxrexplain.data.augment import Augmentation
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import find_images, load_images
from cxrexplain.lungs.masks import match_masks, read_masks
from cxrexplain.lungs.segmenter import LungSegmenter
from cxrexplain.models.registry import build
from cxrexplain.training.fit import fit

__all__ = [
    "DiceBCELoss",
    "default_downsample",
    "default_epochs",
    "dice_coefficient",
    "train_segmenter",
]

SAMPLE_BUDGET = 5000
"""Training films shown in a default run (epochs = this / training films, 8 to 100)."""

BATCH_SIZE = 8
FILTERS = (8, 16, 32, 64, 128)
"""The default U-Net's widths: half the builder's default, so a default run takes four times
the optimizer steps in the same time (what counts with a few dozen films)."""
GEOMETRY = Augmentation(rotation=8.0, zoom=0.1, shift=0.05, brightness=0.0, contrast=0.0)
EXPOSURE = Augmentation(rotation=0.0, zoom=0.0, shift=0.0, brightness=0.1, contrast=0.2)
GAMMA = 0.3
"""Largest change of log-gamma either way (gamma in exp(-0.3)..exp(0.3), 0.74..1.35)."""


@keras.saving.register_keras_serializable(package="cxrexplain")
class DiceBCELoss(keras.losses.Loss):  # type: ignore[misc]
    """Soft Dice loss plus binary cross-entropy, per image, for ``(N, H, W, 1)`` masks.

    ``1 - (2 sum(y p) + 1) / (sum(y) + sum(p) + 1) + mean(BCE(y, p))``; the ``+1`` keeps an
    empty mask finite.

    Example:
        >>> y = np.ones((1, 4, 4, 1), np.float32)
        >>> round(float(DiceBCELoss()(y, y * 0.999)), 3)
        0.001
    """

    def __init__(self, name: str = "dice_bce", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        axes = tuple(range(1, len(y_pred.shape)))
        overlap = keras.ops.sum(y_true * y_pred, axis=axes)
        total = keras.ops.sum(y_true, axis=axes) + keras.ops.sum(y_pred, axis=axes)
        soft_dice = 1.0 - (2.0 * overlap + 1.0) / (total + 1.0)
        bce = keras.ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=axes[:-1])
        return soft_dice + bce


@keras.saving.register_keras_serializable(package="cxrexplain")  # type: ignore[untyped-decorator]
def dice_coefficient(y_true: Any, y_pred: Any) -> Any:
    """Dice of the masks thresholded at 0.5, per image (a training metric).

    Example:
        >>> y = np.ones((1, 4, 4, 1), np.float32)
        >>> float(dice_coefficient(y, y * 0.9)[0])
        1.0
    """
    truth = keras.ops.cast(y_true > 0.5, "float32")
    pred = keras.ops.cast(y_pred > 0.5, "float32")
    axes = tuple(range(1, len(y_pred.shape)))
    overlap = keras.ops.sum(truth * pred, axis=axes)
    total = keras.ops.sum(truth, axis=axes) + keras.ops.sum(pred, axis=axes)
    return keras.ops.where(total > 0, 2.0 * overlap / keras.ops.maximum(total, 1.0), 1.0)


def default_downsample(image_size: int) -> int:
    """How much the default U-Net downsamples inside: to about 128 px (1, 2 or 4).

    Example:
        >>> default_downsample(256), default_downsample(128), default_downsample(512)
        (2, 1, 4)
    """
    for factor in (4, 2):
        if image_size >= 128 * factor and image_size % (16 * factor) == 0:
            return factor
    return 1


def default_epochs(train_count: int) -> int:
    """Epochs of a default run: about :data:`SAMPLE_BUDGET` films shown, 8 to 100 epochs.

    Example:
        >>> default_epochs(63), default_epochs(2000)
        (80, 8)
    """
    return int(min(100, max(8, math.ceil(SAMPLE_BUDGET / max(train_count, 1)))))


def train_segmenter(
    images: Any,
    masks: Any,
    *,
    image_size: int = 256,
    epochs: int | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    batch_size: int = BATCH_SIZE,
    channels: int = 1,
    model: keras.Model | None = None,
    verbose: int | str = "auto",
) -> LungSegmenter:
    """Train a lung U-Net on films and their lung masks.

    Args:
        images: Films: a folder, a list of paths or arrays, or an ``(N, H, W, C)`` array (any
            sizes; resized to ``image_size``).
        masks: One binary mask per film (255 or 1 = lung; files or arrays, any size: resized
            with nearest neighbour), in the same order; or a folder of masks matched to the
            film files by relative path or name (:func:`~cxrexplain.lungs.match_masks`).
        image_size: The side of the square the network takes and the masks are scored at
            during training (a multiple of 16; the default U-Net works inside at about 128
            px, :func:`default_downsample`).
        epochs: None: :func:`default_epochs` of the training films (about 5,000 films shown;
            early stopping may end sooner).
        validation_split: Share of the films held out to pick the best epoch (0: none; then
            the training loss is watched).
        seed: Seeds the split, the shuffling, the augmentation and the initial weights.
        checkpoint_dir: Where :func:`cxrexplain.training.fit` writes its checkpoint and log.
        resume: Continue from the checkpoint in ``checkpoint_dir``.
        batch_size: Films per step.
        channels: 1 (gray) or 3: the network's input channels.
        model: Your own mask model (one sigmoid output channel); default ``lung_unet``.
        verbose: Keras' verbosity.

    Returns:
        The trained :class:`LungSegmenter`.

    Raises:
        InvalidInputError: Counts that differ, an empty mask (its position named), a bad
            size, split or epoch count.
        ImageLoadError: A file cannot be read.

    Example:
        >>> seg = cx.training.train_segmenter("films/", "masks/")  # doctest: +SKIP
        >>> seg = cx.lungs.train("films/", "masks/")  # the same function  # doctest: +SKIP
    """
    if not isinstance(image_size, int) or isinstance(image_size, bool):
        raise InvalidInputError(f"image_size: expected one int (a square), got {image_size!r}")
    size = check_size(image_size, "image_size", minimum=16)[0]
    split = check_fraction(validation_split, "validation_split")
    if split >= 1.0:
        raise InvalidInputError("validation_split: expected a share below 1")
    check_int(seed, "seed", minimum=0)
    check_int(batch_size, "batch_size")
    images, masks = _folders(images, masks)
    films = load_images(images, size=size, channels=channels)
    truth = read_masks(masks, size=(size, size))
    assert isinstance(truth, np.ndarray)  # a size was given
    if len(truth) != len(films):
        raise InvalidInputError(
            f"masks: expected one mask per image, got {len(truth)} masks for {len(films)} "
            "images"
        )
    empty = np.flatnonzero(~truth.reshape(len(truth), -1).any(axis=1))
    if len(empty):
        raise InvalidInputError(
            f"masks: {len(empty)} mask(s) are empty (no lung pixel), at positions "
            f"{', '.join(map(str, empty[:10].tolist()))}"
        )
    order = np.random.default_rng(seed).permutation(len(films))
    held = round(split * len(films)) if split > 0 else 0
    held = min(max(held, 1 if split > 0 else 0), len(films) - 1)
    val_index, train_index = order[:held], order[held:]
    if epochs is None:
        epochs = default_epochs(len(train_index))
    check_int(epochs, "epochs")
    keras.utils.set_random_seed(seed)
    if model is None:
        model = build("lung_unet", input_shape=(size, size, channels), filters=FILTERS,
                      downsample=default_downsample(size))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=DiceBCELoss(),
                  metrics=[dice_coefficient])
    labels = truth[..., None].astype(np.float32)
    train_data = _pipeline(films[train_index], labels[train_index], batch_size, seed)
    val_data = None if not held else tf.data.Dataset.from_tensor_slices(
        (films[val_index], labels[val_index])).batch(batch_size)
    fit(model, train_data, val_data, epochs=epochs, class_weight=None,
        checkpoint_dir=checkpoint_dir, resume=resume, early_stopping_patience=10,
        reduce_lr_patience=4, reduce_lr_factor=0.5, min_learning_rate=1e-5, seed=seed,
        verbose=verbose)
    return LungSegmenter(model)


def _folders(images: Any, masks: Any) -> tuple[Any, Any]:
    """Folders as file lists; a folder of masks matched to the films by name."""
    def is_folder(value: Any) -> bool:
        return isinstance(value, (str, os.PathLike)) and Path(os.fspath(value)).is_dir()

    root = Path(os.fspath(images)) if is_folder(images) else None
    if root is not None:
        images = find_images(root)
    if is_folder(masks):
        if not isinstance(images, list) or not all(isinstance(i, (str, os.PathLike))
                                                   for i in images):
            raise InvalidInputError(
                "masks: a folder of masks is matched to the films by name, so the films must "
                "be files or a folder too"
            )
        masks = match_masks([Path(os.fspath(i)) for i in images], masks, image_root=root)
    return images, masks


def _pipeline(films: np.ndarray, masks: np.ndarray, batch_size: int, seed: int
              ) -> tf.data.Dataset:
    """Shuffled batches with the paired augmentation."""
    geometry = GEOMETRY.layers(seed=seed)
    exposure = EXPOSURE.layers(seed=seed + 1)
    channels = films.shape[-1]

    def augment(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        moved = geometry(tf.concat([x, y], axis=-1), training=True)
        x, y = moved[..., :channels], tf.cast(moved[..., channels:] > 0.5, tf.float32)
        x = exposure(x, training=True)
        log_gamma = tf.random.uniform([tf.shape(x)[0], 1, 1, 1], -GAMMA, GAMMA, seed=seed + 2)
        x = tf.clip_by_value(x, 1e-6, 1.0) ** tf.exp(log_gamma)
        return tf.clip_by_value(x, 0.0, 1.0), y

    dataset = tf.data.Dataset.from_tensor_slices((films, masks))
    dataset = dataset.shuffle(len(films), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(augment).prefetch(2)
