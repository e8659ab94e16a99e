"""Run a :class:`~cxrexplain.Classifier` over labelled data: probabilities and true labels.

``data`` is either a ``tf.data.Dataset`` of ``(images, labels)`` batches (what
:func:`cxrexplain.data.image_folder` returns; a third element, sample weights, is ignored) or
a ``(images, labels)`` tuple, where ``images`` is anything
:func:`cxrexplain.load_images` takes (an ``(N, H, W, C)`` array, a list of paths). Labels are
class indices (``(N,)`` or ``(N, 1)``) or one-hot rows ``(N, K)``.

Example:
    >>> probabilities, labels = collect(clf, (images, labels))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError, ModelStructureError

__all__ = ["collect", "labels_of"]


def collect(
    classifier: Classifier, data: Any, *, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities (N, K) float32, labels (N,) int64)`` of a classifier on data.

    Args:
        classifier: A two-class or multi-class (softmax) classifier.
        data: A dataset of ``(images, labels)`` batches or an ``(images, labels)`` tuple.
        batch_size: Images per forward pass for tuple data.

    Raises:
        InvalidInputError: The data is empty or malformed, a label is out of range, or the
            dataset's ``class_names`` differ from the classifier's.
        ModelStructureError: A multi-label classifier (one sigmoid per finding).

    Example:
        >>> probabilities, labels = collect(clf, val)  # doctest: +SKIP
    """
    if not isinstance(classifier, Classifier):
        raise InvalidInputError(
            f"classifier: expected a cxrexplain.Classifier, got {type(classifier).__name__}; "
            "wrap the model: cx.Classifier(model, class_names=...)"
        )
    if classifier.multilabel:
        raise ModelStructureError(
            "classifier: a multi-label model (one sigmoid per finding) has no single true "
            "class per image; evaluate each finding separately"
        )
    _check_class_names(classifier, getattr(data, "class_names", None))
    chunks: list[np.ndarray] = []
    truth: list[np.ndarray] = []
    if isinstance(data, tf.data.Dataset):
        batches: list[np.ndarray] = []
        for element in data:
            if not isinstance(element, (tuple, list)) or len(element) < 2:
                raise InvalidInputError(
                    "data: expected a dataset of (images, labels) batches"
                )
            images = np.asarray(element[0])
            batches.append(images[None] if images.ndim == 3 else images)
            truth.append(labels_of(element[1], classifier.num_classes))
        if batches:  # one predict call: one traced function per model, full batches
            chunks.append(classifier.predict_proba(np.concatenate(batches),
                                                   batch_size=batch_size))
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
        chunks.append(classifier.predict_proba(images, batch_size=batch_size))
        truth.append(labels_of(labels, classifier.num_classes))
    else:
        raise InvalidInputError(
            "data: expected a tf.data.Dataset of (images, labels) batches or an "
            f"(images, labels) tuple, got {type(data).__name__}"
        )
    if not chunks:
        raise InvalidInputError("data: no images")
    probabilities = np.concatenate(chunks)
    labels = np.concatenate(truth)
    if len(probabilities) != len(labels):
        raise InvalidInputError(
            f"data: {len(labels)} labels for {len(probabilities)} images"
        )
    if len(labels) == 0:
        raise InvalidInputError("data: no images")
    return probabilities, labels


def labels_of(values: Any, num_classes: int) -> np.ndarray:
    """Class indices ``(N,)`` from indices ``(N,)``/``(N, 1)`` or one-hot rows ``(N, K)``.

    Example:
        >>> labels_of(np.array([[0, 1], [1, 0]]), 2).tolist()
        [1, 0]
    """
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == num_classes and num_classes > 1:
        array = array.argmax(axis=1)
    elif array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInputError(
            f"labels: expected class indices (N,) or one-hot rows (N, {num_classes}), got "
            f"shape {array.shape}"
        )
    if array.size and not np.all(np.equal(np.mod(array, 1), 0)):
        raise InvalidInputError("labels: expected whole-number class indices")
    labels = array.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise InvalidInputError(
            f"labels: expected class indices in 0..{num_classes - 1}, got "
            f"{labels.min()}..{labels.max()}"
        )
    return labels


def _check_class_names(classifier: Classifier, names: Sequence[str] | None) -> None:
    if names is None:
        return
    defaults = [f"class_{i}" for i in range(classifier.num_classes)]
    if list(classifier.class_names) in (list(names), defaults):
        return
    raise InvalidInputError(
        f"data: its class_names {list(names)} differ from the classifier's "
        f"{list(classifier.class_names)}; labels would be misread. Build the classifier with "
        "class_names=dataset.class_names"
    )
