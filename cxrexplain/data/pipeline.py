"""The one decoding pipeline of chest films for ``tf.data``, and its augmentation map.

:func:`cxrexplain.data.from_files` and :meth:`cxrexplain.data.Records.dataset` both build their
datasets here: decode in parallel -> cache -> shuffle -> batch -> augment (geometry moves the
films' box and lung masks with them; a background swap pastes each film's lungs on another
film's surroundings) -> prefetch. Elements are ``(images, labels)``, or ``({"images": ...,
"boxes": ..., "lungs": ...}, labels)`` when masks travel with the films.

Example:
    >>> ds = pipeline(["cxr/COVID/" + name for name in sorted(os.listdir("cxr/COVID"))],
    ...               np.zeros(5, np.int32), size=(32, 32), channels=1, batch_size=4,
    ...               shuffle=False, transform=None, cache=False, seed=0)
    >>> [tuple(images.shape) for images, _ in ds]
    [(4, 32, 32, 1), (1, 32, 32, 1)]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf

from cxrexplain._arrays import box_mask
from cxrexplain._checks import check_size
from cxrexplain.data.augment import Augmentation
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import MIN_IMAGE_SIZE, load_image
from cxrexplain.lungs.focus import grow_masks
from cxrexplain.lungs.segmenter import LungSegmenter
from cxrexplain.lungs.swap import BackgroundSwap

__all__ = ["BOXES", "IMAGES", "LUNGS", "augmentation_of", "check_image_size", "pipeline",
           "segment_films"]

IMAGES = "images"
"""The key of the films in an element of a dataset with boxes."""

BOXES = "boxes"
"""The key of the box masks in an element of a dataset with boxes."""

LUNGS = "lungs"
"""The key of the lung masks in an element of a dataset made with ``lungs=``."""


def pipeline(
    paths: list[str],
    labels: np.ndarray,
    *,
    size: tuple[int, int],
    channels: int,
    batch_size: int,
    shuffle: bool,
    transform: Augmentation | None,
    cache: bool | str | os.PathLike[str],
    seed: int,
    film_boxes: list[np.ndarray] | None = None,
    boxes_at_size: bool = False,
    lung_masks: np.ndarray | None = None,
) -> tf.data.Dataset:
    """The one decoding pipeline of the module docs, for any label array.

    Args:
        paths: The films.
        labels: One label per film: int32 ``(N,)`` class indices, or float32 ``(N, K)``
            multi-label targets (:meth:`cxrexplain.data.Records.dataset`).
        size: ``(height, width)`` of the output.
        channels: 1 or 3.
        batch_size: Films per batch.
        shuffle: Reshuffle every epoch.
        transform: The augmentation of the batches, or None.
        cache: See :func:`from_files`.
        seed: Seed of the shuffle and the augmentation.
        film_boxes: Each film's ``(M, 4)`` boxes, or None for no box masks.
        boxes_at_size: The boxes are already in pixels of ``size`` (else in each file's own
            pixels, rescaled from the decoded file's size).
        lung_masks: ``(N, H, W, 1)`` float32 lung masks at ``size`` carried in the elements
            under ``"lungs"``, or None. A ``transform`` with a ``background_swap`` uses them,
            or segments the films once with its own segmenter (those masks serve the swap
            and stay out of the elements).

    Returns:
        The batched, prefetched dataset (without the attributes :func:`from_files` adds).
    """
    def decode(path: Any) -> np.ndarray:
        text = path.decode("utf-8") if isinstance(path, bytes) else str(path)
        return load_image(text, size=size, channels=channels)

    def decode_boxed(path: Any, index: Any) -> tuple[np.ndarray, np.ndarray]:
        text = path.decode("utf-8") if isinstance(path, bytes) else str(path)
        if film_boxes is None:
            return decode(path), np.zeros((*size, 1), np.float32)
        if boxes_at_size:
            mask = box_mask(film_boxes[int(index)], size).astype(np.float32)
            return decode(path), mask[..., None]
        native = load_image(text, channels=channels)
        scale = np.array([size[1] / native.shape[1], size[0] / native.shape[0]] * 2)
        mask = box_mask(film_boxes[int(index)] * scale, size).astype(np.float32)
        return load_image(native, size=size, channels=channels), mask[..., None]

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.numpy_function(decode, [path], tf.float32, stateful=False)
        image.set_shape((size[0], size[1], channels))
        return image, label

    def load_extras(path: tf.Tensor, label: tf.Tensor, index: tf.Tensor,
                    lung: tf.Tensor) -> tuple[Any, Any]:
        image, mask = tf.numpy_function(decode_boxed, [path, index], (tf.float32, tf.float32),
                                        stateful=False)
        image.set_shape((size[0], size[1], channels))
        inputs = {IMAGES: image}
        if film_boxes is not None:
            mask.set_shape((size[0], size[1], 1))
            inputs[BOXES] = mask
        if lung_masks is not None:
            inputs[LUNGS] = lung
        return inputs, label

    keep_lungs = lung_masks is not None
    swap = None if transform is None else transform.background_swap
    if lung_masks is None and swap is not None:  # once, for the background swap
        lung_masks = segment_films(swap, paths, size)
    count = len(paths)
    extras = film_boxes is not None or lung_masks is not None
    columns: tuple[Any, ...] = (tf.constant(paths), tf.constant(labels))
    if extras:
        lung_column = lung_masks if lung_masks is not None else np.zeros((count,), np.float32)
        columns = (*columns, tf.range(count), tf.constant(lung_column))
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle and cache is False:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(load_extras if extras else load,
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache is not False:
        dataset = dataset.cache("" if cache is True else os.fspath(cache))
        if shuffle:
            dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if transform is not None:
        dataset = dataset.map(_augmenter(transform, seed, keep_lungs=keep_lungs),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def segment_films(segmenter: LungSegmenter, paths: list[str], size: tuple[int, int]) -> np.ndarray:
    """Each film's lung mask at ``size``, float32 ``(N, H, W, 1)`` (one batched pass)."""
    return np.asarray(segmenter.segment(paths, size=size), np.float32)[..., None]


def _augmenter(transform: Augmentation, seed: int, *, keep_lungs: bool = True) -> Any:
    """The batch map that augments films (and moves their box and lung masks with them).

    With ``transform.background_swap`` the films carry their lung masks: after the geometric
    transforms each film's grown lungs go onto another film's surroundings
    (:class:`~cxrexplain.lungs.swap.BackgroundSwap`); the masks leave the element unless
    ``keep_lungs`` (the dataset was made with ``lungs=``).
    """
    everything = transform.layers(seed=seed)
    geometry = transform.layers(seed=seed, part="geometry")
    intensity = transform.layers(seed=seed, part="intensity")
    swapper = None if transform.background_swap is None else BackgroundSwap(
        transform.swap_probability, seed=seed, name="background_swap")

    def clip(images: Any) -> tf.Tensor:
        return tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)

    def run(steps: Any, images: Any) -> Any:  # an empty Sequential cannot be called
        return steps(images, training=True) if steps.layers else images

    def apply(inputs: Any, labels: tf.Tensor) -> tuple[Any, tf.Tensor]:
        if not isinstance(inputs, dict):
            return clip(run(everything, inputs)), labels
        images = inputs[IMAGES]
        carried = [key for key in (BOXES, LUNGS) if key in inputs]
        channels = images.shape[-1]
        moved = run(geometry, tf.concat([images] + [inputs[key] for key in carried], axis=-1))
        planes = {key: tf.cast(moved[..., channels + k:channels + k + 1] > 0.5, tf.float32)
                  for k, key in enumerate(carried)}
        films = moved[..., :channels]
        if swapper is not None:
            films = swapper(films, grow_masks(planes[LUNGS]))
            if not keep_lungs:
                del planes[LUNGS]
        films = clip(run(intensity, films))
        if not planes:
            return films, labels
        return {IMAGES: films, **planes}, labels

    return apply


def augmentation_of(augment: bool | Augmentation, flip: bool) -> Augmentation | None:
    if not isinstance(flip, bool):
        raise InvalidInputError(f"flip: expected True or False, got {flip!r}")
    if isinstance(augment, Augmentation):
        return augment
    if augment is True:
        return Augmentation(flip=flip)
    if augment is False:
        return None
    raise InvalidInputError(
        f"augment: expected True, False or an Augmentation, got {augment!r}"
    )


def check_image_size(size: int | tuple[int, int]) -> tuple[int, int]:
    return check_size(size, "image_size", minimum=MIN_IMAGE_SIZE)
