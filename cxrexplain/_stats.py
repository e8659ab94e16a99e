"""Rank statistics shared by the metrics and the training report (private).

Example:
    >>> average_ranks(np.array([10.0, 20.0, 20.0, 5.0])).tolist()
    [2.0, 3.5, 3.5, 1.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_ranks"]


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1 of a 1-D array, ties sharing their average rank (as SciPy's rankdata)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    average = starts + (counts + 1) / 2.0
    return np.asarray(average[inverse.ravel()], dtype=np.float64)
