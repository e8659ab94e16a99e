"""The counterfactual composite: a film's lungs on another film's surroundings.

:func:`swap_surroundings` keeps each film's lungs (its mask grown by the margin of
:mod:`cxrexplain.lungs.geometry`, as the audit grows it) and takes every pixel outside them
from a donor film at the same place. It is the one home of that composite: the swap test
(:func:`cxrexplain.metrics.swap_test`) asks whether a classifier's decision survives it.
:class:`BackgroundSwap` makes the same composite in the graph, within a training batch: the
background-swap augmentation (``cx.data.Augmentation(background_swap=seg)``) and the swap of
:class:`cxrexplain.training.Guide` both call it.

Example:
    >>> import numpy as np
    >>> from cxrexplain.lungs.swap import swap_surroundings
    >>> films = np.ones((1, 4, 4, 1), np.float32); donors = np.zeros_like(films)
    >>> lungs = np.zeros((1, 4, 4), bool); lungs[0, 1:3, 1:3] = True
    >>> swap_surroundings(films, lungs, donors, margin=0)[0, ..., 0].astype(int).tolist()
    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cxrexplain._arrays import as_masks
from cxrexplain._checks import as_numbers, check_number
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs.geometry import DEFAULT_MARGIN, MAX_MARGIN, dilate

__all__ = ["BackgroundSwap", "swap_surroundings"]


def swap_surroundings(
    films: Any, masks: Any, donors: Any, *, margin: float = DEFAULT_MARGIN
) -> np.ndarray:
    """Each film's lungs on its donor's surroundings: ``where(grown mask, film, donor)``.

    The masks go through the one mask rule (:mod:`cxrexplain._arrays`) and grow by ``margin``
    times the films' larger side with a disc (:func:`cxrexplain.lungs.geometry.dilate`), so
    the lungs' edge stays the film's own; every pixel outside comes from the donor at the
    same place, in every channel.

    Args:
        films: ``(N, H, W, C)`` films (numbers, typically float32 in [0, 1]).
        masks: ``(N, H, W)`` or ``(N, H, W, 1)`` lung masks of the films' size (bool, 0/1,
            0/255, probabilities).
        donors: ``(N, H, W, C)`` films of the same shape: ``donors[i]`` gives film ``i`` its
            surroundings.
        margin: The lungs' dilation, a share of the larger side in [0, 0.5] (0: none).

    Returns:
        ``(N, H, W, C)`` float32 composites.

    Raises:
        InvalidInputError: Films that are not an ``(N, H, W, C)`` stack, donors of another
            shape, masks not one per film at the films' size, or a bad margin.

    Example:
        >>> films = np.ones((2, 8, 8, 1), np.float32); donors = np.zeros_like(films)
        >>> lungs = np.zeros((2, 8, 8), np.uint8); lungs[:, 3:5, 3:5] = 255
        >>> swap_surroundings(films, lungs, donors, margin=0.125).sum(axis=(1, 2, 3)).tolist()
        [12.0, 12.0]
    """
    check_number(margin, "margin", low=0.0, high=MAX_MARGIN)
    images = as_numbers(films, "films")
    if images.ndim != 4:
        raise InvalidInputError(
            f"films: expected an (N, H, W, C) stack of films, got shape {images.shape}"
        )
    others = as_numbers(donors, "donors")
    if others.shape != images.shape:
        raise InvalidInputError(
            f"donors: expected one donor per film of the films' shape {images.shape}, got "
            f"shape {others.shape}"
        )
    count, height, width = images.shape[:3]
    lungs = as_masks(masks, count=count, name="masks")
    if lungs.shape[1:] != (height, width):
        raise InvalidInputError(
            f"masks: the masks are {lungs.shape[1]}x{lungs.shape[2]} but the films are "
            f"{height}x{width}; give masks of the films' size"
        )
    grown = dilate(lungs, margin)
    composite: np.ndarray = np.where(grown[..., None], images, others).astype(np.float32)
    return composite


class BackgroundSwap(keras.layers.Layer):  # type: ignore[misc]
    """In the graph: each chosen film's lungs on the surroundings of another film of the batch.

    The donors are a random derangement of the batch (no film is its own donor), drawn anew at
    every call; each film is swapped with probability ``probability``. A batch of one film is
    returned as it is. The masks must already be grown (``grow_masks``): the composite is
    ``lungs * film + (1 - lungs) * donor``, as :func:`swap_surroundings` makes it.

    Args:
        probability: The chance that a film is swapped, in [0, 1].
        seed: Seed of the random choices (None: random).
        **kwargs: Keras layer arguments.

    Example:
        >>> films = np.stack([np.full((4, 4, 1), v, np.float32) for v in (0.0, 1.0)])
        >>> lungs = np.zeros((2, 4, 4, 1), np.float32); lungs[:, 1:3, 1:3] = 1
        >>> out = BackgroundSwap(1.0, seed=0)(films, lungs).numpy()
        >>> out[0, ..., 0].tolist()[0], out[0, 1:3, 1:3, 0].tolist()
        ([1.0, 1.0, 1.0, 1.0], [[0.0, 0.0], [0.0, 0.0]])
    """

    def __init__(self, probability: float = 1.0, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probability = check_number(probability, "probability", low=0.0, high=1.0)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def call(self, images: Any, lungs: Any) -> Any:
        """``(N, H, W, C)`` films and their grown ``(N, H, W, 1)`` 0/1 lungs -> composites."""
        count = tf.shape(images)[0]
        order = tf.argsort(keras.random.uniform((count,), seed=self._generator))
        donors = tf.scatter_nd(order[:, None], tf.roll(order, shift=-1, axis=0), (count,))
        chosen = keras.random.uniform((count, 1, 1, 1), seed=self._generator) < self.probability
        chosen = tf.logical_and(chosen, count > 1)
        images = tf.cast(images, tf.float32)
        lungs = tf.cast(lungs, tf.float32)
        swapped = lungs * images + (1.0 - lungs) * tf.gather(images, donors)
        return tf.where(chosen, swapped, images)

    def get_config(self) -> dict[str, Any]:
        """The layer's arguments."""
        config: dict[str, Any] = super().get_config()
        config.update(probability=self.probability, seed=self.seed)
        return config
