"""Run a :class:`~cxrexplain.Classifier` over labelled data: probabilities and true labels.

``data`` is either a ``tf.data.Dataset`` of ``(images, labels)`` batches (what
:func:`cxrexplain.data.image_folder` returns; a third element, sample weights, is ignored) or
a ``(images, labels)`` tuple, where ``images`` is anything
:func:`cxrexplain.load_images` takes (an ``(N, H, W, C)`` array, a list of paths). Labels are
class indices (``(N,)`` or ``(N, 1)``) or one-hot rows ``(N, K)``.

Example:
    >>> probabilities, labels = collect(clf, (images, labels))  # (N, H, W, C) and (N,) arrays
    >>> probabilities.shape, labels.tolist()
    ((4, 2), [0, 1, 0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from cxrexplain.classifier import Classifier
from cxrexplain.data.datasets import IMAGES
from cxrexplain.errors import InvalidInputError, ModelStructureError

__all__ = ["check_class_count", "collect", "labels_of"]


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
        >>> import cxrexplain as cx
        >>> ds = cx.data.image_folder("chest_xray", image_size=32, subset="test")
        >>> probabilities, labels = collect(clf, ds)
        >>> probabilities.shape, probabilities.dtype, labels.tolist()
        ((4, 2), dtype('float32'), [0, 0, 1, 1])
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
    check_class_count(data, "data", classifier.num_classes,
                      model=f"the classifier ({_listed(classifier.class_names)})")
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
            inputs = element[0]
            images = np.asarray(inputs[IMAGES] if isinstance(inputs, dict) else inputs)
            batches.append(images[None] if images.ndim == 3 else images)
            truth.append(labels_of(element[1], classifier.num_classes))
        if batches:  # one predict call: one traced function per model, full batches
            chunks.append(classifier.predict_proba(np.concatenate(batches),
                                                   batch_size=batch_size))
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = data
        truth.append(labels_of(labels, classifier.num_classes))  # before the forward pass
        chunks.append(classifier.predict_proba(images, batch_size=batch_size))
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


def check_class_count(data: Any, name: str, num_classes: int, *, model: str,
                      multilabel: bool = False) -> None:
    """Refuse data whose classes do not fit a model with ``num_classes`` classes.

    Read without decoding an image: the data set's ``class_names`` (what
    :func:`cxrexplain.data.image_folder` attaches), else its ``labels`` attribute or the
    labels of an ``(images, labels)`` tuple (a class index >= ``num_classes``, or one-hot rows
    of another width), else the width of a dataset's one-hot labels (its ``element_spec``).
    Data that tells none of these passes. A one-unit sigmoid model has two classes.

    Args:
        data: A ``tf.data.Dataset`` or an ``(images, labels)`` tuple (anything else passes;
            the caller checks its form).
        name: The argument's name, for the message (``"train"``, ``"data"``).
        num_classes: The model's number of classes.
        model: What has ``num_classes`` classes, for the message (``"the model (2 softmax
            outputs)"``).
        multilabel: A multi-label head (one sigmoid per finding): class indices are not
            checked, only the number of class names and the width of the label rows.

    Raises:
        InvalidInputError: The counts differ; the message gives both and the class names.

    Example:
        >>> check_class_count((np.zeros((2, 8, 8, 1)), [0, 2]), "train", 2,
        ...                   model="the model (2 softmax outputs)")
        Traceback (most recent call last):
        ...
        cxrexplain.errors.InvalidInputError: train: its labels go up to class index 2 (at least 3 classes) but the model (2 softmax outputs) has 2 classes; build the model with num_classes=3, or give labels in 0..1
    """  # noqa: E501
    fix = f"build the model with num_classes={{count}}, or give data of {num_classes} classes"
    names = getattr(data, "class_names", None)
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        if len(names) != num_classes:
            raise InvalidInputError(
                f"{name}: the data set has {len(names)} classes ({_listed(names)}) but "
                f"{model} has {num_classes} classes; " + fix.format(count=len(names))
            )
        return
    labels: Any = getattr(data, "labels", None)
    if labels is None and isinstance(data, (tuple, list)) and len(data) == 2:
        labels = data[1]
    if labels is not None and not isinstance(labels, tf.data.Dataset):
        _check_label_values(labels, name, num_classes, model, multilabel=multilabel)
        return
    spec = getattr(data, "element_spec", None)
    if isinstance(spec, (tuple, list)) and len(spec) >= 2:
        shape = getattr(spec[1], "shape", None)
        width = None if shape is None or shape.rank != 2 else shape[-1]
        if width is not None and width > 1 and width != num_classes:
            raise InvalidInputError(
                f"{name}: its labels are one-hot rows of {width} classes but {model} has "
                f"{num_classes} classes; " + fix.format(count=width)
            )


def _check_label_values(labels: Any, name: str, num_classes: int, model: str, *,
                        multilabel: bool) -> None:
    try:
        values = np.asarray(labels)
    except (ValueError, TypeError):
        return  # ragged: the caller's own checks word it
    if values.size == 0 or not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        return
    if values.ndim == 2 and values.shape[1] > 1:
        if values.shape[1] != num_classes:
            raise InvalidInputError(
                f"{name}: its labels are rows of {values.shape[1]} classes (shape "
                f"{values.shape}) but {model} has {num_classes} classes; build the model "
                f"with num_classes={values.shape[1]}, or give data of {num_classes} classes"
            )
        return
    if multilabel or not np.isfinite(values).all():
        return
    top = int(np.max(values))
    if top >= num_classes:
        raise InvalidInputError(
            f"{name}: its labels go up to class index {top} (at least {top + 1} classes) but "
            f"{model} has {num_classes} classes; build the model with num_classes={top + 1}, "
            f"or give labels in 0..{num_classes - 1}"
        )


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(str(n) for n in list(names)[:10])
    return shown + (f", ... {len(names) - 10} more" if len(names) > 10 else "")


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
