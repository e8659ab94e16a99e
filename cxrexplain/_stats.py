"""Rank statistics shared by the metrics, the training report and the audit (private).

* :func:`average_ranks`: ranks from 1, ties sharing their average rank;
* :func:`bootstrap_weights`: how often each item is drawn in each bootstrap resample, from
  the same draw as :func:`cxrexplain.metrics.bootstrap_ci` (so a weighted mean over these
  weights is that function's resampled mean);
* :func:`weighted_auc`: the ROC AUC (the Mann-Whitney statistic) of many weighted resamples at
  once, ``O(resamples x items)``, without forming the pairs.

Example:
    >>> average_ranks(np.array([10.0, 20.0, 20.0, 5.0])).tolist()
    [2.0, 3.5, 3.5, 1.0]
    >>> weighted_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]),
    ...              np.ones((1, 4))).tolist()
    [0.75]
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_ranks", "bootstrap_weights", "weighted_auc"]


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1 of a 1-D array, ties sharing their average rank (as SciPy's rankdata)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    average = starts + (counts + 1) / 2.0
    return np.asarray(average[inverse.ravel()], dtype=np.float64)


def bootstrap_weights(count: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, count)`` times each of ``count`` items is drawn in each resample.

    The draw is :func:`cxrexplain.metrics.bootstrap_ci`'s,
    ``default_rng(seed).integers(0, count, (n_resamples, count))``.

    Example:
        >>> bootstrap_weights(3, 2, seed=0).sum(axis=1).tolist()
        [3, 3]
    """
    picks = np.random.default_rng(seed).integers(0, count, size=(n_resamples, count))
    offsets = (np.arange(n_resamples) * count)[:, None]
    drawn = np.bincount((picks + offsets).ravel(), minlength=n_resamples * count)
    return drawn.reshape(n_resamples, count)


def weighted_auc(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The ROC AUC of ``scores`` for ``truth`` with each row of ``weights`` as item counts.

    ``AUC = sum_{i pos, j neg} w_i w_j ([s_i > s_j] + [s_i = s_j] / 2) / (W_pos W_neg)``:
    with all weights 1 it is :func:`cxrexplain.training.roc_auc`, with bootstrap counts the
    AUC of each resample. NaN where a row has no positive or no negative weight.

    Args:
        truth: ``(N,)`` bool (or 0/1) truth.
        scores: ``(N,)`` scores.
        weights: ``(B, N)`` non-negative weights (counts).

    Returns:
        ``(B,)`` float64 AUCs.
    """
    positive = np.asarray(truth).astype(bool)
    values = np.asarray(scores, np.float64)
    weight = np.asarray(weights, np.float64).reshape(-1, values.size)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    w_sorted = weight[:, order]
    pos = np.add.reduceat(w_sorted * positive[order], starts, axis=1)  # (B, unique scores)
    neg = np.add.reduceat(w_sorted * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc: np.ndarray = np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)
    return auc
