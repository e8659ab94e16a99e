"""Deletion and insertion (Petsiuk et al., BMVC 2018): does the model follow the map?

Pixels are removed (deletion) or revealed (insertion) from most to least important according
to the heatmap, and the target-class probability is recorded after each step. A faithful map
makes the probability fall fast on deletion (low AUC) and rise fast on insertion (high AUC).
All steps of many images go through the model in large batches.

Example:
    >>> import cxrexplain as cx
    >>> cx.metrics.deletion_auc(clf, batch, exp.heatmaps, targets=exp.targets)  # lower: better
    array([0..., 0..., 0..., 0...])
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import keras
import numpy as np

from cxrexplain._arrays import as_heatmaps, resize_heatmaps
from cxrexplain._checks import check_fraction, check_int
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import ImageSource

__all__ = ["PerturbationCurves", "deletion_auc", "insertion_auc", "perturbation_curves"]

Baseline = Literal["zero", "blur", "mean"] | float


@dataclass(frozen=True)
class PerturbationCurves:
    """Target-class probability as pixels are removed or revealed.

    Attributes:
        mode: ``"deletion"`` or ``"insertion"``.
        fractions: ``(S + 1,)`` share of pixels changed at each step, 0 to 1.
        probabilities: ``(N, S + 1)`` target-class probability at each step.
        auc: ``(N,)`` area under each curve (trapezoid rule over the fractions).
        targets: ``(N,)`` the classes whose probability was followed.
    """

    mode: str
    fractions: np.ndarray
    probabilities: np.ndarray
    auc: np.ndarray
    targets: np.ndarray


def perturbation_curves(
    classifier: Classifier | keras.Model,
    images: ImageSource | Iterable[ImageSource],
    heatmaps: Any,
    *,
    mode: Literal["deletion", "insertion"] = "deletion",
    targets: Any = None,
    steps: int = 50,
    baseline: Baseline | None = None,
    batch_size: int = 64,
) -> PerturbationCurves:
    """Deletion or insertion curves of the target-class probability.

    Args:
        classifier: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        images: The explained images (anything :func:`cxrexplain.load_images` accepts).
        heatmaps: ``(N, h, w)`` maps or an :class:`~cxrexplain.Explanation`; resized
            bilinearly to the model's input size when they differ.
        mode: ``"deletion"`` replaces the most important pixels with the baseline first;
            ``"insertion"`` starts from the baseline and puts the most important pixels back
            first.
        targets: ``None`` (each image's predicted class), one class index or name, or one per
            image (an explanation's ``targets``).
        steps: Number of steps from 0 to all pixels (>= 1).
        baseline: What removed pixels become: ``"zero"`` (black; the deletion default),
            ``"blur"`` (a Gaussian blur of the image, sigma 5 px at 224 px; the insertion
            default, as in RISE), ``"mean"`` (the image's mean) or a number in [0, 1].
        batch_size: Perturbed images per forward pass.

    Returns:
        :class:`PerturbationCurves`.

    Raises:
        InvalidInputError: Mismatched counts, bad steps/baseline/targets.

    Example:
        >>> curves = perturbation_curves(clf, batch, exp, mode="insertion")
        >>> curves.fractions.shape, curves.probabilities.shape, curves.auc.shape
        ((51,), (4, 51), (4,))
        >>> curves.fractions[0], curves.fractions[-1]
        (np.float64(0.0), np.float64(1.0))
    """
    clf = classifier if isinstance(classifier, Classifier) else Classifier(classifier)
    if mode not in ("deletion", "insertion"):
        raise InvalidInputError(f"mode: expected 'deletion' or 'insertion', got {mode!r}")
    check_int(steps, "steps", maximum=10_000)
    check_int(batch_size, "batch_size")
    if targets is None and hasattr(heatmaps, "targets"):
        targets = heatmaps.targets
    batch = clf.prepare(images)
    count, height, width = batch.shape[:3]
    maps = as_heatmaps(heatmaps)
    if maps.shape[0] != count:
        raise InvalidInputError(
            f"heatmaps: {maps.shape[0]} maps for {count} images; give one map per image"
        )
    maps = resize_heatmaps(maps, (height, width))
    chosen = _targets(clf, batch, targets, count, batch_size)
    canvas = _baseline(batch, baseline if baseline is not None else (
        "zero" if mode == "deletion" else "blur"))
    pixels = height * width
    order = np.argsort(-maps.reshape(count, -1), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(pixels)[None, :], axis=1)
    rank = rank.reshape(count, height, width, 1)
    changed = np.round(np.linspace(0, pixels, steps + 1)).astype(np.int64)
    fractions = changed / pixels
    probabilities = np.empty((count, steps + 1), np.float32)
    per_chunk = max(1, batch_size // (steps + 1))
    for start in range(0, count, per_chunk):
        stop = min(count, start + per_chunk)
        step_mask = rank[start:stop, None] < changed[None, :, None, None, None]
        if mode == "deletion":
            variants = np.where(step_mask, canvas[start:stop, None], batch[start:stop, None])
        else:
            variants = np.where(step_mask, batch[start:stop, None], canvas[start:stop, None])
        flat = variants.reshape(-1, height, width, batch.shape[3]).astype(np.float32)
        probs = clf._probabilities(flat, batch_size=batch_size).reshape(stop - start, steps + 1,
                                                                         -1)
        probabilities[start:stop] = np.take_along_axis(
            probs, chosen[start:stop, None, None].repeat(steps + 1, axis=1), axis=2
        )[..., 0]
    widths = np.diff(fractions)
    auc = ((probabilities[:, 1:] + probabilities[:, :-1]) * 0.5 * widths[None]).sum(axis=1)
    return PerturbationCurves(mode, fractions, probabilities, auc.astype(np.float64), chosen)


def deletion_auc(
    classifier: Classifier | keras.Model,
    images: ImageSource | Iterable[ImageSource],
    heatmaps: Any,
    *,
    targets: Any = None,
    steps: int = 50,
    baseline: Baseline = "zero",
    batch_size: int = 64,
) -> np.ndarray:
    """Area under the deletion curve per image (lower: the map found what the model uses).

    See :func:`perturbation_curves` for the arguments.

    Returns:
        ``(N,)`` float64 in [0, 1].

    Example:
        >>> deletion_auc(clf, batch, exp.heatmaps, targets=exp.targets).shape
        (4,)
    """
    return perturbation_curves(classifier, images, heatmaps, mode="deletion", targets=targets,
                               steps=steps, baseline=baseline, batch_size=batch_size).auc


def insertion_auc(
    classifier: Classifier | keras.Model,
    images: ImageSource | Iterable[ImageSource],
    heatmaps: Any,
    *,
    targets: Any = None,
    steps: int = 50,
    baseline: Baseline = "blur",
    batch_size: int = 64,
) -> np.ndarray:
    """Area under the insertion curve per image (higher: the map found what the model uses).

    See :func:`perturbation_curves` for the arguments.

    Returns:
        ``(N,)`` float64 in [0, 1].

    Example:
        >>> auc = insertion_auc(clf, batch, exp.heatmaps, targets=exp.targets, steps=10)
        >>> auc.shape, bool(((auc >= 0) & (auc <= 1)).all())
        ((4,), True)
    """
    return perturbation_curves(classifier, images, heatmaps, mode="insertion", targets=targets,
                               steps=steps, baseline=baseline, batch_size=batch_size).auc


def _targets(clf: Classifier, batch: np.ndarray, targets: Any, count: int,
             batch_size: int) -> np.ndarray:
    if targets is None:
        probs = clf.predict_proba(batch, batch_size=batch_size)
        return np.array([p.index for p in clf.decide(probs)], np.int64)
    return clf.target_indices(targets, count).astype(np.int64)


def _baseline(batch: np.ndarray, baseline: Baseline) -> np.ndarray:
    if isinstance(baseline, (int, float, np.integer, np.floating)) and not isinstance(
        baseline, bool
    ):
        return np.full_like(batch, check_fraction(baseline, "baseline"))
    if baseline == "zero":
        return np.zeros_like(batch)
    if baseline == "mean":
        means = batch.mean(axis=(1, 2, 3), keepdims=True)
        return np.broadcast_to(means, batch.shape).astype(np.float32)
    if baseline == "blur":
        sigma = 5.0 * batch.shape[1] / 224.0
        blurred = np.stack([cv2.GaussianBlur(image, (0, 0), sigmaX=sigma) for image in batch])
        result: np.ndarray = blurred.reshape(batch.shape).astype(np.float32)
        return result
    raise InvalidInputError(
        f"baseline: expected 'zero', 'blur', 'mean' or a number, got {baseline!r}"
    )
