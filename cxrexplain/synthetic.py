"""Procedural chest X-ray phantoms with planted opacities of known mask.

Ground truth for localisation tests and the demo, generated on the fly (the package ships no
patient data). Each phantom has a bright body, two dark lung fields, ribs, a mediastinum and
heart shadow, a diaphragm, film noise and a little blur. Classes other than ``"NORMAL"`` get a
planted opacity inside a lung whose mask is returned:

* ``"PNEUMONIA"``: one dense, roughly round consolidation in one lung;
* ``"COVID"``: bilateral, peripheral, fainter ground-glass patches (one per lung);
* any other name: one opacity like ``"PNEUMONIA"``.

Example:
    >>> import cxrexplain as cx
    >>> images, labels, masks = cx.synthetic.phantoms(8, size=64, seed=0)
    >>> images.shape, labels.tolist()[:4], masks.shape
    ((8, 64, 64, 1), [0, 1, 0, 1], (8, 64, 64))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from cxrexplain._checks import check_channels, check_int
from cxrexplain.errors import InvalidInputError

__all__ = ["PhantomSet", "generate", "phantoms"]


@dataclass(frozen=True)
class PhantomSet:
    """Phantoms with their ground truth.

    Attributes:
        images: ``(n, size, size, channels)`` float32 in [0, 1].
        labels: ``(n,)`` int64 indices into ``class_names``.
        masks: ``(n, size, size)`` bool, True on the planted lesion.
        lung_masks: ``(n, size, size)`` bool, True inside either lung field.
        class_names: The class names, in label order.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    lung_masks: np.ndarray
    class_names: tuple[str, ...]


def generate(
    n: int,
    *,
    size: int = 128,
    classes: Sequence[str] = ("NORMAL", "PNEUMONIA"),
    seed: int = 0,
    channels: int = 1,
) -> PhantomSet:
    """Generate ``n`` chest-X-ray-like phantoms with lesion and lung masks.

    Args:
        n: Number of images (>= 1). Labels cycle through ``classes`` (0, 1, 2, 0, ...).
        size: Height and width in pixels (>= 32).
        classes: Class names; ``"NORMAL"`` has no lesion.
        seed: Random seed; the same seed gives the same images.
        channels: 1 (gray) or 3 (the gray image repeated).

    Returns:
        A :class:`PhantomSet`.

    Raises:
        InvalidInputError: ``n`` < 1, ``size`` < 32, no classes, or ``channels`` not 1 or 3.

    Example:
        >>> data = generate(4, size=64, classes=("NORMAL", "PNEUMONIA"))
        >>> bool(data.masks[1].any()), bool(data.masks[0].any()), data.lung_masks.shape
        (True, False, (4, 64, 64))
    """
    _check(n, size, classes, channels)
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size), np.float32)
    masks = np.zeros((n, size, size), bool)
    lung_fields = np.zeros((n, size, size), bool)
    labels = np.arange(n, dtype=np.int64) % len(classes)
    for i in range(n):
        anatomy, lungs = _anatomy(size, rng)
        lesion = _lesion(str(classes[labels[i]]).upper(), lungs, rng)
        image = anatomy + lesion
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=size / 256.0 + 0.3)
        image += rng.normal(0.0, 0.025, image.shape).astype(np.float32)
        images[i] = np.clip(image, 0.0, 1.0)
        masks[i] = lesion > 0.02
        lung_fields[i] = lungs.any(axis=0)
    stacked = np.repeat(images[..., None], 3, axis=3) if channels == 3 else images[..., None]
    return PhantomSet(stacked, labels, masks, lung_fields, tuple(str(c) for c in classes))


def phantoms(
    n: int,
    *,
    size: int = 128,
    classes: Sequence[str] = ("NORMAL", "PNEUMONIA"),
    seed: int = 0,
    channels: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate ``n`` phantoms; ``(images, labels, masks)`` of :func:`generate`.

    Args:
        n: Number of images (>= 1). Labels cycle through ``classes``.
        size: Height and width in pixels (>= 32).
        classes: Class names; ``"NORMAL"`` has no lesion.
        seed: Random seed.
        channels: 1 (gray) or 3.

    Returns:
        ``images`` ``(n, size, size, channels)`` float32 in [0, 1], ``labels`` ``(n,)`` int64,
        ``masks`` ``(n, size, size)`` bool (True on the planted lesion).

    Example:
        >>> images, labels, masks = phantoms(4, size=64)
        >>> images.shape, labels.tolist()
        ((4, 64, 64, 1), [0, 1, 0, 1])
    """
    data = generate(n, size=size, classes=classes, seed=seed, channels=channels)
    return data.images, data.labels, data.masks


def _check(n: int, size: int, classes: Sequence[str], channels: int) -> None:
    check_int(n, "n")
    check_int(size, "size", minimum=32)
    if isinstance(classes, str) or len(classes) < 1:
        raise InvalidInputError(f"classes: expected a sequence of class names, got {classes!r}")
    check_channels(channels)


def _ellipse(size: int, center: tuple[float, float], axes: tuple[float, float],
             angle: float = 0.0) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    cv2.ellipse(canvas, (round(center[0]), round(center[1])),
                (max(1, round(axes[0])), max(1, round(axes[1]))), angle, 0, 360, 255, -1)
    inside: np.ndarray = canvas > 0
    return inside


def _anatomy(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The normal chest; returns the image and the two lung masks ``(2, size, size)``."""
    s = float(size)

    def jitter(scale: float) -> float:
        return float(rng.normal(0.0, scale * s))

    image = np.full((size, size), 0.12, np.float32)
    body = _ellipse(size, (0.5 * s + jitter(0.01), 0.55 * s), (0.46 * s, 0.52 * s))
    image[body] = 0.62
    lungs = np.stack([
        _ellipse(size, (0.32 * s + jitter(0.01), 0.45 * s + jitter(0.01)),
                 (0.14 * s, 0.27 * s), angle=8 + jitter(0.01) * 20 / s),
        _ellipse(size, (0.68 * s + jitter(0.01), 0.45 * s + jitter(0.01)),
                 (0.14 * s, 0.27 * s), angle=-8 + jitter(0.01) * 20 / s),
    ])
    either = lungs.any(axis=0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / s
    image[either] = 0.22 + 0.08 * (y[either] - 0.2)  # lungs darker at the apex
    for k in range(7):  # ribs: bright arcs across both lungs
        level = 0.2 + 0.075 * k + float(rng.normal(0.0, 0.004))
        band = np.abs(y - level - 0.5 * (x - 0.5) ** 2) < 0.011
        image[band & either] += 0.12
    heart = _ellipse(size, (0.55 * s + jitter(0.01), 0.6 * s), (0.12 * s, 0.13 * s))
    mediastinum = (np.abs(x - 0.5) < 0.07) & (y > 0.1) & (y < 0.75)
    image[heart | mediastinum] = 0.7
    diaphragm = y > 0.74 + 0.05 * np.cos((x - 0.5) * 6)
    image[diaphragm & body] = 0.68
    lungs &= ~(heart | mediastinum | diaphragm)[None]
    return image, lungs


def _lesion(name: str, lungs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = lungs.shape[-1]
    lesion = np.zeros((size, size), np.float32)
    if name == "NORMAL":
        return lesion
    if name == "COVID":
        for side in range(2):
            lesion += _blob(lungs[side], size, rng, radius=0.09, strength=0.22, periphery=True)
        return lesion
    side = int(rng.integers(0, 2))
    return _blob(lungs[side], size, rng, radius=0.1, strength=0.4, periphery=False)


def _blob(lung: np.ndarray, size: int, rng: np.random.Generator, *, radius: float,
          strength: float, periphery: bool) -> np.ndarray:
    """A soft opacity centred at a random point of the lung, clipped to the lung."""
    ys, xs = np.nonzero(lung)
    if periphery:  # towards the lung's outer edge
        centre_x = xs.mean()
        far = np.abs(xs - centre_x) > 0.5 * np.abs(xs - centre_x).max()
        ys, xs = ys[far], xs[far]
    pick = int(rng.integers(0, len(ys)))
    cy, cx = float(ys[pick]), float(xs[pick])
    r = radius * size * float(rng.uniform(0.8, 1.25))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    distance = np.sqrt(((y - cy) / (1.2 * r)) ** 2 + ((x - cx) / r) ** 2)
    blob = np.clip(1.0 - distance, 0.0, 1.0) ** 0.6 * strength
    clipped: np.ndarray = (blob * lung).astype(np.float32)
    return clipped
