"""``threshold_for_recall``: the highest decision threshold that reaches a recall.

Screening favours sensitivity: seed 5 lowered its pneumonia threshold to 0.05 to reach 100%
recall. Here the threshold is chosen on data (use validation data, not the test set): with
the positive class's probabilities of the n positive images sorted from high to low, the
threshold is the m-th of them, ``m = ceil(recall * n)``. Any higher threshold misses one more
positive image; a lower one only adds false positives. The Classifier predicts the positive
class when its probability is >= the threshold, so exactly the recall asked for (or more, with
ties) is reached on that data.

Example:
    >>> import cxrexplain as cx
    >>> t = cx.training.threshold_for_recall(clf, val, positive="PNEUMONIA", recall=0.99)
    >>> images, labels = val
    >>> bool(t == clf.predict_proba(images)[labels == 1, 1].min())  # ceil(0.99 * 2) = 2 of 2
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cxrexplain._checks import check_number
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.training.predictions import collect

__all__ = ["threshold_for_recall"]


def threshold_for_recall(
    classifier: Classifier,
    data: Any,
    *,
    positive: str | int,
    recall: float,
    batch_size: int = 32,
) -> float:
    """Find and set the highest threshold at which the positive class reaches ``recall``.

    The classifier must have two classes, and ``positive`` must be its class 1: a Classifier's
    threshold always applies to the probability of class index 1 (``class_names[1]``).
    Naming class 0 raises an error rather than silently thresholding the other class: put the
    positive class second (``classes=["NORMAL", "PNEUMONIA"]``, the sorted order of most
    chest X-ray folders) when building the model.

    Args:
        classifier: A two-class :class:`~cxrexplain.Classifier`; its ``threshold`` is set.
        data: Labelled data (a ``tf.data.Dataset`` of ``(images, labels)`` batches or an
            ``(images, labels)`` tuple), ideally a validation set.
        positive: The positive class, by name or index (must be index 1).
        recall: The sensitivity to reach, in (0, 1].
        batch_size: Images per forward pass for tuple data.

    Returns:
        The threshold, also stored as ``classifier.threshold``.

    Raises:
        InvalidInputError: More than two classes, ``positive`` is class 0 or unknown, a recall
            outside (0, 1], no positive image in the data, or a recall only a threshold of 0
            could reach (positives with probability exactly 0).

    Example:
        >>> t = threshold_for_recall(clf, val, positive="PNEUMONIA", recall=1.0)
        >>> clf.threshold == t
        True
        >>> images, labels = val
        >>> all(p.label == "PNEUMONIA" for p, y in zip(clf.predict(images), labels) if y == 1)
        True
    """
    if classifier.num_classes != 2 or classifier.multilabel:
        raise InvalidInputError(
            f"classifier: a threshold needs a two-class model; this one has "
            f"{classifier.num_classes} classes {list(classifier.class_names)} (argmax decides)"
        )
    index = _positive_index(classifier, positive)
    check_number(recall, "recall", low=0.0, high=1.0, low_open=True)
    probabilities, labels = collect(classifier, data, batch_size=batch_size)
    scores = np.sort(probabilities[labels == index, index].astype(np.float64))[::-1]
    if scores.size == 0:
        raise InvalidInputError(
            f"data: no image of the positive class '{classifier.class_names[index]}'"
        )
    needed = max(1, math.ceil(recall * scores.size - 1e-9))
    threshold = float(scores[needed - 1])
    if threshold <= 0.0:
        raise InvalidInputError(
            f"recall: {recall} needs the positive images whose probability is exactly 0; no "
            "threshold in (0, 1) reaches it"
        )
    threshold = min(threshold, float(np.nextafter(1.0, 0.0)))
    classifier.threshold = threshold
    return threshold


def _positive_index(classifier: Classifier, positive: str | int) -> int:
    names = list(classifier.class_names)
    if isinstance(positive, str):
        if positive not in names:
            raise InvalidInputError(f"positive: unknown class {positive!r}; classes: {names}")
        index = names.index(positive)
    elif isinstance(positive, (int, np.integer)) and not isinstance(positive, bool):
        if positive not in (0, 1):
            raise InvalidInputError(f"positive: expected 0 or 1 or a class name, got {positive}")
        index = int(positive)
    else:
        raise InvalidInputError(f"positive: expected a class name or index, got {positive!r}")
    if index != 1:
        raise InvalidInputError(
            f"positive: '{names[index]}' is class 0, but a Classifier's threshold applies to "
            f"class 1 ('{names[1]}'); order the classes so the positive one is second (e.g. "
            f"classes=['{names[1]}', '{names[0]}']) and retrain, or pick positive='{names[1]}'"
        )
    return index
