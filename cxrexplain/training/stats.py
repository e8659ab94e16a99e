"""Classification statistics computed from first principles (no scikit-learn).

* :func:`confusion_matrix`: rows are true classes, columns predicted classes;
* :func:`roc_auc`: the area under the ROC curve as the Mann-Whitney statistic, ``P(score of a
  positive > score of a negative) + 0.5 * P(tie)``, with average ranks for ties (the same value
  as the trapezoidal area under the full ROC curve);
* :func:`roc_curve`: false- and true-positive rates at every distinct threshold;
* :func:`per_class_rates`: sensitivity, specificity, precision and F1 of each class, one
  class against the rest;
* :func:`wilson_interval`: the Wilson score interval of a proportion (an accuracy).

Example:
    >>> import numpy as np
    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from cxrexplain._checks import as_labels, as_numbers, check_int
from cxrexplain._stats import average_ranks
from cxrexplain.errors import InvalidInputError

__all__ = ["confusion_matrix", "per_class_rates", "roc_auc", "roc_curve", "wilson_interval"]


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of images of true class i predicted as class j.

    Example:
        >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
        array([[1, 0],
               [1, 1]])
    """
    check_int(num_classes, "num_classes")
    truth = as_labels(labels, "labels", num_classes=num_classes)
    guess = as_labels(predictions, "predictions", num_classes=num_classes)
    if truth.shape != guess.shape:
        raise InvalidInputError(
            f"predictions: {guess.size} predictions for {truth.size} labels"
        )
    for name, values in (("labels", truth), ("predictions", guess)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise InvalidInputError(
                f"{name}: expected class indices in 0..{num_classes - 1}, got "
                f"{values.min()}..{values.max()}"
            )
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, guess), 1)
    return matrix


def roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the binary truth ``is_positive``.

    Returns NaN when there are no positives or no negatives (the area is undefined).

    Example:
        >>> roc_auc(np.array([1, 0]), np.array([0.9, 0.1]))
        1.0
    """
    truth, values = _binary_scores(is_positive, scores)
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = average_ranks(values)
    statistic = ranks[truth].sum() - positives * (positives + 1) / 2.0
    return float(statistic / (positives * negatives))


def _binary_scores(is_positive: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` bool truth and ``(N,)`` float64 scores of one length."""
    truth = as_numbers(is_positive, "is_positive").ravel() != 0
    values = as_numbers(scores, "scores").astype(np.float64).ravel()
    if truth.shape != values.shape:
        raise InvalidInputError(
            f"scores: expected one score per label ({truth.size}), got {values.size}"
        )
    return truth, values


def roc_curve(is_positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(false_positive_rate, true_positive_rate)`` from (0, 0) to (1, 1).

    One point per distinct score (thresholds from high to low); NaN arrays when a class is
    absent.

    Example:
        >>> fpr, tpr = roc_curve(np.array([0, 1]), np.array([0.2, 0.7]))
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    """
    truth, values = _binary_scores(is_positive, scores)
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return np.array([np.nan]), np.array([np.nan])
    order = np.argsort(-values, kind="stable")
    sorted_values = values[order]
    true_hits = np.cumsum(truth[order])
    false_hits = np.cumsum(~truth[order])
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_values)), truth.size - 1]
    tpr = np.r_[0.0, true_hits[last_of_run] / positives]
    fpr = np.r_[0.0, false_hits[last_of_run] / negatives]
    return fpr, tpr


def per_class_rates(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, precision and F1 of each class (one against the rest).

    ``sensitivity = TP / (TP + FN)``, ``specificity = TN / (TN + FP)``,
    ``precision = TP / (TP + FP)``, ``f1 = 2 P R / (P + R)``; NaN where a denominator is 0.

    Example:
        >>> rates = per_class_rates(np.array([[3, 1], [2, 4]]))
        >>> rates["sensitivity"].tolist(), rates["precision"].tolist()
        ([0.75, 0.6666666666666666], [0.6, 0.8])
    """
    counts = np.asarray(matrix, dtype=np.float64)
    total = counts.sum()
    tp = np.diag(counts)
    fn = counts.sum(axis=1) - tp
    fp = counts.sum(axis=0) - tp
    tn = total - tp - fn - fp
    sensitivity = _ratio(tp, tp + fn)
    precision = _ratio(tp, tp + fp)
    return {
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp),
        "precision": precision,
        "f1": _ratio(2 * precision * sensitivity, precision + sensitivity),
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1),
                        np.nan)


def wilson_interval(successes: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``successes / n`` (Wilson 1927).

    Unlike the normal approximation it stays inside [0, 1] and is sound for proportions near 0
    or 1 and for few images; it needs only the counts, so a report rebuilt from its confusion
    matrix has it too.

    Args:
        successes: Images counted (correct predictions).
        n: All images.
        level: Confidence level in (0, 1).

    Returns:
        ``(low, high)``; ``(nan, nan)`` for ``n == 0``.

    Example:
        >>> [round(v, 4) for v in wilson_interval(7, 10)]
        [0.3968, 0.8922]
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))
