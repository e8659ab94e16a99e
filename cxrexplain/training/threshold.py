"""``threshold_for_recall``: the highest decision threshold that reaches a recall.

Screening favours sensitivity: Maltanno/Phase4_Project lowered its pneumonia threshold to 0.05
to reach 100% recall. Here the threshold is chosen on data (use validation data, not the test
set): with the positive class's probabilities of the n positive images sorted from high to low,
the threshold is the m-th of them, ``m = ceil(recall * n)``. Any higher threshold misses one
more positive image; a lower one only adds false positives. The Classifier predicts the
positive class when its probability is >= the threshold, so exactly the recall asked for (or
more, with ties) is reached on that data.

Example:
    >>> import cxrexplain as cx
    >>> t = cx.training.threshold_for_recall(clf, val, positive="PNEUMONIA", recall=0.99)
    >>> images, labels = val
    >>> bool(t == clf.predict_proba(images)[labels == 1, 1].min())  # ceil(0.99 * 2) = 2 of 2
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from cxrexplain._checks import check_number
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.training.predictions import collect

__all__ = ["threshold_for_recall"]


def threshold_for_recall(
    classifier: Classifier,
    data: Any,
    *,
    positive: str | int | Sequence[str] | None = None,
    recall: float,
    batch_size: int = 32,
) -> float | dict[str, float]:
    """Find and set the highest threshold at which the positive class reaches ``recall``.

    A two-class classifier gets one threshold, and ``positive`` must be its class 1 (the
    default): a two-class Classifier's threshold applies to the probability of class index 1
    (``class_names[1]``). Naming class 0 raises an error rather than silently thresholding the
    other class: put the positive class second (``classes=["NORMAL", "PNEUMONIA"]``, the
    sorted order of most chest X-ray folders) when building the model.

    A multi-label classifier (one sigmoid per finding) gets one operating point per finding,
    each chosen by the same rule on the images that have that finding: ``positive`` names the
    findings to set (one name, a list, or None for all); the others keep theirs.

    Args:
        classifier: A two-class or multi-label :class:`~cxrexplain.Classifier`; its
            ``threshold`` is set.
        data: Labelled data (a ``tf.data.Dataset`` of ``(images, labels)`` batches or an
            ``(images, labels)`` tuple), ideally a validation set. Multi-label labels are
            ``(N, K)`` 0/1 arrays, one column per finding.
        positive: The positive class, by name or index (must be index 1); for a multi-label
            model, the findings to set.
        recall: The sensitivity to reach, in (0, 1].
        batch_size: Images per forward pass for tuple data.

    Returns:
        The threshold (two-class), or the thresholds set by finding name (multi-label); also
        stored in ``classifier.threshold``.

    Raises:
        InvalidInputError: More than two softmax classes, ``positive`` is class 0 or unknown,
            a recall outside (0, 1], no positive image in the data, or a recall only a
            threshold of 0 could reach (positives with probability exactly 0).

    Example:
        >>> t = threshold_for_recall(clf, val, positive="PNEUMONIA", recall=1.0)
        >>> clf.threshold == t
        True
        >>> images, labels = val
        >>> all(p.label == "PNEUMONIA" for p, y in zip(clf.predict(images), labels) if y == 1)
        True
    """
    if classifier.multilabel:
        return _per_finding(classifier, data, positive, recall, batch_size)
    if classifier.num_classes != 2:
        raise InvalidInputError(
            f"classifier: a threshold needs a two-class or multi-label model; this one has "
            f"{classifier.num_classes} classes {list(classifier.class_names)} (argmax decides)"
        )
    if positive is not None and not isinstance(positive, (str, int, np.integer)):
        raise InvalidInputError(
            f"positive: a two-class model takes one class name or index, got {positive!r}")
    index = _positive_index(classifier, 1 if positive is None else positive)
    check_number(recall, "recall", low=0.0, high=1.0, low_open=True)
    probabilities, labels = collect(classifier, data, batch_size=batch_size)
    threshold = _for_recall(probabilities[labels == index, index], recall,
                            classifier.class_names[index])
    classifier.threshold = threshold
    return threshold


def _for_recall(scores: np.ndarray, recall: float, name: str) -> float:
    """The m-th highest positive score, ``m = ceil(recall * n)`` (see the module)."""
    ranked = np.sort(np.asarray(scores, np.float64))[::-1]
    if ranked.size == 0:
        raise InvalidInputError(f"data: no image of the positive class '{name}'")
    needed = max(1, math.ceil(recall * ranked.size - 1e-9))
    threshold = float(ranked[needed - 1])
    if threshold <= 0.0:
        raise InvalidInputError(
            f"recall: {recall} needs the '{name}' images whose probability is exactly 0; no "
            "threshold in (0, 1) reaches it"
        )
    return min(threshold, float(np.nextafter(1.0, 0.0)))


def _per_finding(classifier: Classifier, data: Any, positive: Any, recall: float,
                 batch_size: int) -> dict[str, float]:
    """One operating point per finding of a multi-label classifier."""
    check_number(recall, "recall", low=0.0, high=1.0, low_open=True)
    names = list(classifier.class_names)
    chosen: list[Any] = names
    if positive is not None:
        given: list[Any] = ([positive] if isinstance(positive, (str, int, np.integer))
                            else list(positive))
        chosen = [names[int(c)] if isinstance(c, (int, np.integer)) and 0 <= c < len(names)
                  else c for c in given]
        unknown = [c for c in chosen if c not in names]
        if unknown or not chosen:
            raise InvalidInputError(
                f"positive: unknown findings {unknown}; the findings are {names}")
    probabilities, labels = _multilabel_predictions(classifier, data, batch_size)
    found = {name: _for_recall(probabilities[labels[:, names.index(name)] > 0.5,
                                             names.index(name)], recall, name)
             for name in chosen}
    current = classifier.threshold
    kept = dict(current) if isinstance(current, dict) else (
        {} if current is None else {name: float(current) for name in names})
    classifier.threshold = {**kept, **found}
    return found


def _multilabel_predictions(classifier: Classifier, data: Any, batch_size: int
                            ) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities (N, K), labels (N, K))`` of a multi-label classifier on data."""
    if isinstance(data, tf.data.Dataset):
        probs, truth = [], []
        for element in data:
            if not isinstance(element, (tuple, list)) or len(element) < 2:
                raise InvalidInputError("data: expected (images, labels) batches")
            probs.append(classifier.predict_proba(np.asarray(element[0]), batch_size=batch_size))
            truth.append(np.asarray(element[1]))
        if not probs:
            raise InvalidInputError("data: the dataset is empty")
        probabilities, labels = np.concatenate(probs), np.concatenate(truth)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        probabilities = classifier.predict_proba(data[0], batch_size=batch_size)
        labels = np.asarray(data[1])
    else:
        raise InvalidInputError(
            "data: expected an (images, labels) tuple or a tf.data.Dataset of such batches")
    labels = labels.reshape(len(labels), -1) if labels.ndim else labels
    if labels.shape != probabilities.shape:
        raise InvalidInputError(
            f"data: a multi-label model needs (N, {classifier.num_classes}) 0/1 labels, one "
            f"column per finding {list(classifier.class_names)}; got shape {labels.shape}")
    return probabilities, labels.astype(np.float64)


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
