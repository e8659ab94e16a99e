"""Augmentation tuned for chest films: small rotation, zoom, shift, brightness and contrast.

No horizontal flip by default: a mirrored chest film puts the heart on the right
(dextrocardia), a cue no real test image has, and a flip lets a model learn side-specific
shortcuts in reverse. ``Augmentation(flip=True)`` adds it for those who want it.

``Augmentation(background_swap=seg)`` adds the **background swap**: each training film keeps
its lungs (the segmenter's masks, computed once when the dataset is made, grown by the audit's
margin) and takes everything outside them from another film of its batch, whatever its class,
so that nothing outside the lungs predicts the label (``swap_probability`` of the films, all
by default). The swap runs after the geometric transforms, before brightness and contrast.

The transform runs inside the ``tf.data`` pipeline with Keras' random preprocessing layers
(per-image random parameters), filling uncovered pixels with black (the border of a film) and
clipping the result to [0, 1].

Example:
    >>> import numpy as np
    >>> from cxrexplain.data import Augmentation
    >>> augment = Augmentation(rotation=5.0).layers(seed=0)
    >>> augment(np.zeros((2, 32, 32, 1), np.float32), training=True).shape
    TensorShape([2, 32, 32, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import keras

from cxrexplain._checks import check_number
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs.segmenter import LungSegmenter, check_segmenter

__all__ = ["PARTS", "Augmentation"]

PARTS = ("all", "geometry", "intensity")
"""What :meth:`Augmentation.layers` can return."""


@dataclass(frozen=True)
class Augmentation:
    """Random transforms for training chest X-rays (images in [0, 1]).

    Attributes:
        rotation: Largest rotation, in degrees either way (5).
        zoom: Largest zoom in or out, as a fraction of the size (0.1).
        shift: Largest shift, as a fraction of height and width (0.05).
        brightness: Largest brightness change, as a fraction of the [0, 1] range (0.1).
        contrast: Largest contrast change factor (0.1: contrast times 0.9 to 1.1).
        flip: Also flip left-right at random (False: see the module docs).
        background_swap: A lung segmenter: swap each film's surroundings for another film's
            (see the module docs); None: no swap. Datasets of
            :func:`~cxrexplain.data.from_files` / :func:`~cxrexplain.data.image_folder`
            segment their films once with it.
        swap_probability: With ``background_swap``, the share of films swapped (1.0).

    Example:
        >>> Augmentation().flip
        False
        >>> Augmentation(background_swap=seg).swap_probability
        1.0
    """

    rotation: float = 5.0
    zoom: float = 0.1
    shift: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1
    flip: bool = False
    background_swap: LungSegmenter | None = None
    swap_probability: float = 1.0

    def __post_init__(self) -> None:
        limits = {"rotation": 180.0, "zoom": 0.9, "shift": 0.9, "brightness": 1.0,
                  "contrast": 0.9, "swap_probability": 1.0}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "flip":
                if not isinstance(value, bool):
                    raise InvalidInputError(f"flip: expected True or False, got {value!r}")
                continue
            if field.name == "background_swap":
                if value is not None:
                    check_segmenter(value, "background_swap")
                continue
            limit = limits[field.name]
            check_number(value, field.name, low=0.0, high=limit)

    def layers(self, seed: int | None = None, part: str = "all") -> keras.Sequential:
        """The transform as a ``keras.Sequential`` of random preprocessing layers.

        Args:
            seed: Seed of the random layers (``None``: random).
            part: ``"all"``, ``"geometry"`` (rotation, zoom, shift, flip: what must move a
                film's box masks with it) or ``"intensity"`` (brightness, contrast).

        Returns:
            A model to call with ``training=True`` on ``(N, H, W, C)`` batches.

        Example:
            >>> [layer.name for layer in Augmentation(zoom=0.0).layers().layers]
            ['rotation', 'shift', 'brightness', 'contrast']
        """
        if part not in PARTS:
            raise InvalidInputError(f"part: expected one of {', '.join(PARTS)}, got {part!r}")
        steps: list[keras.layers.Layer] = []
        fill = {"fill_mode": "constant", "fill_value": 0.0}
        if self.rotation:
            steps.append(keras.layers.RandomRotation(self.rotation / 360.0, seed=seed,
                                                     name="rotation", **fill))
        if self.zoom:
            steps.append(keras.layers.RandomZoom((-self.zoom, self.zoom), seed=seed,
                                                 name="zoom", **fill))
        if self.shift:
            steps.append(keras.layers.RandomTranslation(
                (-self.shift, self.shift), (-self.shift, self.shift), seed=seed, name="shift",
                **fill))
        if self.brightness:
            steps.append(keras.layers.RandomBrightness(self.brightness, value_range=(0.0, 1.0),
                                                       seed=seed, name="brightness"))
        if self.contrast:
            steps.append(keras.layers.RandomContrast(self.contrast, value_range=(0.0, 1.0),
                                                     seed=seed, name="contrast"))
        if self.flip:
            steps.append(keras.layers.RandomFlip("horizontal", seed=seed, name="flip"))
        intensity = ("brightness", "contrast")
        if part == "geometry":
            steps = [step for step in steps if step.name not in intensity]
        elif part == "intensity":
            steps = [step for step in steps if step.name in intensity]
        return keras.Sequential(steps, name="augmentation")
