"""Heatmaps to binary masks, as in CheXlocalize (Saporta et al., Nat. Mach. Intell. 2022).

Each map is min-max normalised on its own, then cut either by Otsu's threshold (computed on
the 8-bit map exactly as ``cv2.threshold(u8, 0, 255, THRESH_BINARY + THRESH_OTSU)``) or by a
fixed threshold, optionally tuned on validation maps with :func:`tune_threshold`. Images whose
predicted probability is below a gate get an empty mask (the finding is called absent).

Example:
    >>> import numpy as np
    >>> from cxrexplain.metrics import binarize
    >>> heat = np.zeros((1, 4, 4)); heat[0, 1:3, 1:3] = 1.0
    >>> binarize(heat)[0].astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np

from cxrexplain._arrays import as_heatmaps
from cxrexplain._checks import as_numbers, check_fraction, describe
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics._checks import as_masks
from cxrexplain.metrics.overlap import iou_of

__all__ = ["binarize", "tune_threshold"]

_FLT_EPSILON = float(np.finfo(np.float32).eps)

_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def binarize(
    heatmaps: Any,
    *,
    threshold: float | Literal["otsu"] = "otsu",
    probabilities: Any = None,
    gate: float | None = None,
) -> np.ndarray:
    """Binary masks from heatmaps: min-max normalise each map, then threshold it.

    ``threshold="otsu"`` follows CheXlocalize: the normalised map becomes an 8-bit map
    ``floor(255 * map)`` (NumPy's ``np.uint8(255 * map)``), Otsu's threshold ``t`` is found on
    it exactly as OpenCV finds it, and a pixel is in the mask when its 8-bit value is ``> t``
    (OpenCV's ``THRESH_BINARY``). CheXlocalize then fills the outer contours of that mask;
    this function does not (holes stay holes). A number ``threshold`` in [0, 1] keeps the
    pixels whose normalised value is strictly greater (``map > threshold``, as CheXlocalize's
    ``mask > threshold`` and as Otsu's ``> t``): 0 keeps all but the minimum, 1 keeps nothing.

    A flat map (maximum equal to minimum, e.g. all zero) has no region: an all-False mask.

    Args:
        heatmaps: ``(N, H, W)`` maps or an :class:`~cxrexplain.Explanation`.
        threshold: ``"otsu"``, or a number in [0, 1] on the normalised maps.
        probabilities: ``(N,)`` each image's probability of the explained class; used with
            ``gate``. None with an :class:`~cxrexplain.Explanation` and a gate: its ``scores``.
        gate: Images with ``probability < gate`` get an all-False mask (None: no gate).

    Returns:
        ``(N, H, W)`` bool masks.

    Raises:
        InvalidInputError: Bad shapes, a threshold that is neither ``"otsu"`` nor in [0, 1],
            a gate outside [0, 1], or a gate without probabilities (or the reverse).

    Example:
        >>> heat = np.zeros((2, 3, 3)); heat[:, 0, 0] = [1.0, 1.0]; heat[:, 1, 1] = 0.5
        >>> binarize(heat, threshold=0.4).sum(axis=(1, 2)).tolist()
        [2, 2]
        >>> binarize(heat, threshold=0.4, probabilities=[0.9, 0.2], gate=0.5).any(axis=(1, 2))
        array([ True, False])
    """
    maps = as_heatmaps(heatmaps)
    keep = _gate(heatmaps, maps.shape[0], probabilities, gate)
    if isinstance(threshold, str) and threshold == "otsu":
        masks = otsu_masks(maps)
    else:
        normalised, flat = _normalise(maps)
        masks = (normalised > _check_threshold(threshold)) & ~flat[:, None, None]
    masks &= keep[:, None, None]
    return masks


@overload
def tune_threshold(
    heatmaps: Any,
    masks: Any,
    *,
    grid: Sequence[float] | np.ndarray = ...,
    probabilities: Any = ...,
    gate: float | None = ...,
    labels: None = ...,
) -> float: ...


@overload
def tune_threshold(
    heatmaps: Any,
    masks: Any,
    *,
    grid: Sequence[float] | np.ndarray = ...,
    probabilities: Any = ...,
    gate: float | None = ...,
    labels: Sequence[Any] | np.ndarray,
) -> dict[Any, float]: ...


def tune_threshold(
    heatmaps: Any,
    masks: Any,
    *,
    grid: Sequence[float] | np.ndarray = _GRID,
    probabilities: Any = None,
    gate: float | None = None,
    labels: Sequence[Any] | np.ndarray | None = None,
) -> float | dict[Any, float]:
    """The fixed threshold of ``grid`` with the highest mean IoU on validation maps.

    For each threshold the maps are binarised as :func:`binarize` does (same gate) and the
    IoU with the true masks is averaged over images, ignoring the NaN of images where both
    masks are empty (see :func:`iou`). Ties go to the smallest threshold of ``grid``'s order
    (its first maximum), as in CheXlocalize's ``tune_heatmap_threshold.py``.

    Args:
        heatmaps: ``(N, H, W)`` validation maps or an :class:`~cxrexplain.Explanation`.
        masks: ``(N, h, w)`` true masks (resized, nearest, to the maps' size if they differ).
        grid: Candidate thresholds in [0, 1] (default 0.2, 0.3, ..., 0.8).
        probabilities: ``(N,)`` probabilities for ``gate``, as in :func:`binarize`.
        gate: Probability gate, as in :func:`binarize`.
        labels: ``(N,)`` the class (finding) of each map: one threshold per class.

    Returns:
        A float from ``grid`` without ``labels``; with ``labels``, a dict from each class
        (as a Python value, in sorted order) to its float. NaN where no image has a true or a
        predicted region at any threshold (nothing to tune on).

    Raises:
        InvalidInputError: Bad shapes or counts, an empty grid or a value outside [0, 1].

    Example:
        >>> heat = np.tile(np.linspace(0, 1, 10), (1, 10, 1))   # brighter to the right
        >>> truth = heat > 0.65                                 # the 4 right columns
        >>> tune_threshold(heat, truth)
        0.6
        >>> tune_threshold(np.concatenate([heat, heat]), np.concatenate([truth, heat > 0.25]),
        ...                labels=["Edema", "Effusion"])
        {'Edema': 0.6, 'Effusion': 0.3}
    """
    maps = as_heatmaps(heatmaps)
    count, height, width = maps.shape
    truth = as_masks(masks, count, (height, width), "masks")
    keep = _gate(heatmaps, count, probabilities, gate)
    candidates = _check_grid(grid)
    groups, members = _groups(labels, count)
    normalised, flat = _normalise(maps)
    usable = (~flat & keep)[:, None, None]
    scores = np.stack([iou_of((normalised > t) & usable, truth) for t in candidates])
    valid = np.isfinite(scores)
    chosen: dict[Any, float] = {}
    for group, member in zip(groups, members, strict=True):
        counted = valid[:, member].sum(axis=1)
        totals = np.where(valid[:, member], scores[:, member], 0.0).sum(axis=1)
        if not counted.any():
            chosen[group] = float("nan")
            continue
        means = np.where(counted > 0, totals / np.maximum(counted, 1), -np.inf)
        chosen[group] = float(candidates[int(np.argmax(means))])
    return chosen if labels is not None else chosen[None]


def otsu_masks(maps: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` bool: each map cut at its Otsu threshold on the 8-bit normalised map."""
    normalised, flat = _normalise(maps)
    eight_bit = np.floor(normalised * 255.0).clip(0, 255).astype(np.uint8)
    thresholds = otsu_thresholds(eight_bit)
    masks: np.ndarray = (eight_bit > thresholds[:, None, None]) & ~flat[:, None, None]
    return masks


def otsu_thresholds(eight_bit: np.ndarray) -> np.ndarray:
    """Otsu's threshold of each ``(N, H, W)`` uint8 map, as ``cv2.threshold`` computes it.

    OpenCV's ``getThreshVal_Otsu_8u`` replayed operation for operation (double precision,
    the ``FLT_EPSILON`` guards, the first strictly largest between-class variance), bin by
    bin for all images at once, so near-ties resolve as they do in OpenCV.
    """
    count = eight_bit.shape[0]
    pixels = eight_bit.reshape(count, -1).astype(np.int64)
    offsets = (np.arange(count, dtype=np.int64) * 256)[:, None]
    hist = np.bincount((pixels + offsets).ravel(), minlength=256 * count).reshape(count, 256)
    scale = 1.0 / pixels.shape[1]
    mu = (hist * np.arange(256)).sum(axis=1).astype(np.float64) * scale  # exact integer sum
    mu1 = np.zeros(count)
    q1 = np.zeros(count)
    max_sigma = np.zeros(count)
    max_val = np.zeros(count, np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(256):
            p_i = hist[:, i] * scale
            mu1 = mu1 * q1
            q1 = q1 + p_i
            q2 = 1.0 - q1
            skip = (np.minimum(q1, q2) < _FLT_EPSILON) | (np.maximum(q1, q2) > 1.0 - _FLT_EPSILON)
            mu1 = np.where(skip, mu1, (mu1 + i * p_i) / q1)
            mu2 = (mu - q1 * mu1) / q2
            sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2)
            better = ~skip & (sigma > max_sigma)
            max_sigma = np.where(better, sigma, max_sigma)
            max_val = np.where(better, i, max_val)
    thresholds: np.ndarray = max_val
    return thresholds


def _normalise(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image min-max normalised float64 maps (flat maps all zero) and the flat flags."""
    values = maps.astype(np.float64)
    low = values.min(axis=(1, 2), keepdims=True)
    span = values.max(axis=(1, 2), keepdims=True) - low
    flat = span[:, 0, 0] <= 0
    normalised = (values - low) / np.where(span > 0, span, 1.0)
    return normalised, flat


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, str):
        raise InvalidInputError(
            f"threshold: expected 'otsu' or a number in [0, 1], got {threshold!r}"
        )
    try:
        return check_fraction(threshold, "threshold")
    except InvalidInputError as err:
        raise InvalidInputError(
            f"threshold: expected 'otsu' or a number in [0, 1], got {describe(threshold)}"
        ) from err


def _gate(heatmaps: Any, count: int, probabilities: Any, gate: float | None) -> np.ndarray:
    """``(N,)`` bool: the images whose probability passes the gate (all without a gate)."""
    if gate is None:
        if probabilities is not None:
            raise InvalidInputError(
                "gate: probabilities were given without a gate; pass gate=<probability> "
                "(e.g. 0.5) or leave probabilities out"
            )
        return np.ones(count, bool)
    level = check_fraction(gate, "gate")
    if probabilities is None:
        probabilities = getattr(heatmaps, "scores", None) if hasattr(heatmaps, "heatmaps") \
            else None
        if probabilities is None:
            raise InvalidInputError(
                "probabilities: a gate needs each image's probability of the explained class, "
                "(N,) numbers in [0, 1]"
            )
    values = as_numbers(probabilities, "probabilities").astype(np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != count:
        raise InvalidInputError(
            f"probabilities: expected {count} numbers (one per map), got shape {values.shape}"
        )
    keep: np.ndarray = values >= level
    return keep


def _check_grid(grid: object) -> np.ndarray:
    if isinstance(grid, (str, bytes)):
        raise InvalidInputError(f"grid: expected thresholds in [0, 1], got {grid!r}")
    values = as_numbers(grid, "grid").astype(np.float64)
    if values.ndim != 1 or (values < 0).any() or (values > 1).any():
        raise InvalidInputError(
            f"grid: expected a sequence of thresholds in [0, 1], got {describe(grid)}"
        )
    return values


def _groups(labels: Any, count: int) -> tuple[list[Any], list[np.ndarray]]:
    """The distinct classes (sorted, as Python values) and each one's ``(N,)`` membership."""
    if labels is None:
        return [None], [np.ones(count, bool)]
    try:
        array = np.asarray(labels)
        classes, inverse = np.unique(array, return_inverse=True)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(
            f"labels: expected one class per map (numbers or names), got {describe(labels)}"
        ) from err
    if array.ndim != 1 or array.shape[0] != count:
        raise InvalidInputError(
            f"labels: expected {count} classes (one per map), got shape {array.shape}"
        )
    inverse = inverse.ravel()
    return classes.tolist(), [inverse == k for k in range(len(classes))]
