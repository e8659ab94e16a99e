"""Structural similarity (SSIM, Wang et al. 2004) of two stacks of maps.

Example:
    >>> import numpy as np
    >>> from cxrexplain.metrics import ssim
    >>> a = np.random.default_rng(0).random((1, 16, 16))
    >>> ssim(a, a).tolist(), bool(ssim(a, 1 - a)[0] < 0)
    ([1.0], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrexplain._checks import as_numbers, check_number
from cxrexplain.errors import InvalidInputError

__all__ = ["ssim"]

_WINDOW = 7
_K1, _K2 = 0.01, 0.03


def ssim(a: Any, b: Any, *, data_range: float = 1.0) -> np.ndarray:
    """Row-wise mean structural similarity of ``(N, H, W)`` maps.

    Computed as ``skimage.metrics.structural_similarity`` does by default: a uniform 7 x 7
    window, sample (co)variances (``N / (N - 1)``), ``K1 = 0.01``, ``K2 = 0.03``, and the mean
    over the windows that lie wholly inside the map (the 3-pixel border is left out, so no
    padding rule enters). 1.0 for identical maps, near 0 for unrelated ones, negative for
    anti-correlated structure. Heatmaps are in [0, 1], hence ``data_range=1``.

    Args:
        a: ``(N, H, W)`` maps (a single ``(H, W)`` map is one row), H and W >= 7.
        b: Maps of the same shape.
        data_range: The span of possible values (``max - min``), > 0.

    Returns:
        ``(N,)`` float64 in [-1, 1].

    Raises:
        InvalidInputError: Different shapes, maps smaller than 7 x 7, NaN, a bad range.

    Example:
        >>> ramp = np.tile(np.linspace(0, 1, 8), (1, 8, 1))
        >>> ssim(ramp, ramp * 0.5).round(3).tolist()
        [0.641]
    """
    x, y = (as_numbers(v, n).astype(np.float64) for v, n in ((a, "a"), (b, "b")))
    x, y = (v[None] if v.ndim == 2 else v for v in (x, y))
    if x.ndim != 3 or x.shape != y.shape:
        raise InvalidInputError(
            f"a, b: expected two (N, H, W) stacks of one shape, got {x.shape} and {y.shape}"
        )
    if min(x.shape[1:]) < _WINDOW:
        raise InvalidInputError(
            f"a, b: SSIM needs maps of at least {_WINDOW} x {_WINDOW} pixels, got "
            f"{x.shape[1]} x {x.shape[2]}"
        )
    span = check_number(data_range, "data_range", low=0.0, low_open=True)
    c1, c2 = (_K1 * span) ** 2, (_K2 * span) ** 2
    ux, uy = _window_means(x), _window_means(y)
    uxx, uyy, uxy = _window_means(x * x), _window_means(y * y), _window_means(x * y)
    cov_norm = _WINDOW**2 / (_WINDOW**2 - 1.0)
    vx, vy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux**2 + uy**2 + c1) * (vx + vy + c2)
    scores: np.ndarray = (numerator / denominator).mean(axis=(1, 2))
    return scores


def _window_means(values: np.ndarray) -> np.ndarray:
    """Means of every whole 7 x 7 window of ``(N, H, W)``: ``(N, H - 6, W - 6)``."""
    sums = np.cumsum(values, axis=1)
    sums = np.concatenate([sums[:, _WINDOW - 1: _WINDOW], sums[:, _WINDOW:] - sums[:, :-_WINDOW]],
                          axis=1)
    sums = np.cumsum(sums, axis=2)
    sums = np.concatenate([sums[:, :, _WINDOW - 1: _WINDOW],
                           sums[:, :, _WINDOW:] - sums[:, :, :-_WINDOW]], axis=2)
    means: np.ndarray = sums / float(_WINDOW * _WINDOW)
    return means
