"""Percentile-bootstrap confidence intervals over images (as CheXlocalize reports mIoU).

Example:
    >>> import numpy as np
    >>> from cxrexplain.metrics import bootstrap_ci
    >>> mean, low, high = bootstrap_ci(np.linspace(0.2, 0.6, 50), seed=1)
    >>> round(mean, 2), low < mean < high
    (0.4, True)
"""

# no ``from __future__ import annotations`` here: Interval's fields keep real types, so its
# signature reads ``(mean: float, low: float, high: float)`` on every Python version
from typing import Any, NamedTuple

import numpy as np

from cxrexplain._checks import check_int, check_number, describe
from cxrexplain.errors import InvalidInputError

__all__ = ["Interval", "bootstrap_ci", "paired_bootstrap_ci"]


class Interval(NamedTuple):
    """A mean and its confidence interval; unpacks as ``mean, low, high``.

    Attributes:
        mean: The mean of the (non-NaN) values themselves.
        low: The lower percentile of the resampled means.
        high: The upper percentile of the resampled means.
    """

    mean: float
    low: float
    high: float


def bootstrap_ci(
    values: Any,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The mean of per-image values with a percentile-bootstrap confidence interval.

    Images are resampled with replacement ``n_resamples`` times (one draw,
    ``numpy.random.default_rng(seed).integers(0, n, (n_resamples, n))``); the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means (NumPy's
    default linear interpolation). NaN values (an IoU with both masks empty, a hit rate or
    AP without a finding) are dropped first, as ``np.nanmean`` would; if every value is NaN
    the result is ``Interval(nan, nan, nan)``.

    Args:
        values: ``(N,)`` per-image values (bool or numbers; NaN allowed).
        n_resamples: Number of bootstrap resamples (>= 1).
        level: Confidence level in (0, 1).
        seed: Seed of the resampling (>= 0); the same seed gives the same interval.

    Returns:
        :class:`Interval` ``(mean, low, high)``.

    Raises:
        InvalidInputError: Empty or non-1-D values, infinite values, a bad level, resample
            count or seed.

    Example:
        >>> bootstrap_ci([1.0, 1.0, float("nan"), 1.0])
        Interval(mean=1.0, low=1.0, high=1.0)
    """
    array = _values(values, "values")
    return _bootstrap(array[~np.isnan(array)], n_resamples, level, seed)


def paired_bootstrap_ci(
    a: Any,
    b: Any,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The mean difference ``a - b`` of two methods on the same images, with its interval.

    The images are resampled in pairs (both methods keep the same images in each resample),
    which is what makes the comparison paired: the interval is that of ``mean(a - b)`` over
    resampled images, computed as :func:`bootstrap_ci` of the differences. Pairs where
    either value is NaN are dropped. An interval excluding 0 says the methods differ.

    Args:
        a: ``(N,)`` per-image values of the first method.
        b: ``(N,)`` values of the second method on the same images, in the same order.
        n_resamples: Number of bootstrap resamples (>= 1).
        level: Confidence level in (0, 1).
        seed: Seed of the resampling (>= 0).

    Returns:
        :class:`Interval` of ``mean(a - b)``.

    Raises:
        InvalidInputError: As :func:`bootstrap_ci`, or ``a`` and ``b`` of different lengths.

    Example:
        >>> paired_bootstrap_ci([0.5, 0.6, 0.7], [0.4, 0.5, 0.6]).mean
        0.1
    """
    first, second = _values(a, "a"), _values(b, "b")
    if first.shape != second.shape:
        raise InvalidInputError(
            f"a, b: expected values for the same images, got {first.shape[0]} and "
            f"{second.shape[0]} values"
        )
    both = ~(np.isnan(first) | np.isnan(second))
    return _bootstrap(first[both] - second[both], n_resamples, level, seed)


def _bootstrap(values: np.ndarray, n_resamples: int, level: float, seed: int) -> Interval:
    n_resamples = check_int(n_resamples, "n_resamples")
    level = check_number(level, "level", low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_int(seed, "seed", minimum=0)
    count = values.shape[0]
    if count == 0:
        nan = float("nan")
        return Interval(nan, nan, nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, count, size=(n_resamples, count))
    means = values[picks].mean(axis=1)
    low, high = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(float(values.mean()), float(low), float(high))


def _values(values: Any, name: str) -> np.ndarray:
    expected = f"{name}: expected (N,) per-image numbers (NaN allowed), got {describe(values)}"
    try:
        raw = np.asarray(values)
    except (TypeError, ValueError) as err:  # ragged nesting
        raise InvalidInputError(expected) from err
    numeric = raw.dtype == bool or (
        np.issubdtype(raw.dtype, np.number) and not np.issubdtype(raw.dtype, np.complexfloating)
    )
    if not numeric or raw.ndim != 1 or raw.size == 0:
        raise InvalidInputError(expected)
    array = raw.astype(np.float64)
    if np.isinf(array).any():
        raise InvalidInputError(f"{name}: contains infinite values (NaN is allowed: dropped)")
    return array
