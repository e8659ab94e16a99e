"""What :func:`~cxrexplain.training.fit` sets up before training: the device flags, the
dataset, the model to train (the user's, or a copy under a dtype policy or a distribution
strategy), its default compile settings and the class weights; and
:func:`apply_lung_focus`, the one place where the training helpers
(:func:`~cxrexplain.training.cross_validate`, ``cxrexplain train``) wrap a freshly built model
in a lung focus.

Example:
    >>> balanced_class_weight([0, 0, 1])
    {0: 0.75, 1: 1.5}
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cxrexplain._checks import as_labels, check_choice, check_int
from cxrexplain.data.datasets import IMAGES
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs.focus import MODES
from cxrexplain.lungs.segmenter import LungSegmenter, check_segmenter
from cxrexplain.models.compile import metrics_for
from cxrexplain.models.losses import head_of, loss_for
from cxrexplain.models.lung_focus import with_lung_focus
from cxrexplain.models.precision import is_mixed_precision, with_dtype_policy

__all__ = [
    "apply_lung_focus",
    "as_dataset",
    "balanced_class_weight",
    "compile_default",
    "films_only",
    "has_gpu",
    "check_lung_focus",
    "has_schedule",
    "lung_focus_record",
    "resolve_class_weight",
    "working_model",
]


def check_lung_focus(lungs: LungSegmenter | None, mode: str = "mask", *,
                     names: tuple[str, str] = ("lungs", "lung_mode")) -> str:
    """Check a training helper's ``lungs`` and ``lung_mode`` before any work starts.

    Args:
        lungs: A lung segmenter (:class:`cxrexplain.lungs.LungSegmenter`) or None (no focus).
        mode: One of :data:`cxrexplain.lungs.focus.MODES`.
        names: How the two arguments are named in error messages (``--lungs`` and
            ``--lung-mode`` for the command).

    Returns:
        The mode.

    Raises:
        InvalidInputError: ``lungs`` is not a segmenter, an unknown mode, or a mode other
            than ``"mask"`` without a segmenter.

    Example:
        >>> check_lung_focus(None)
        'mask'
    """
    mode = str(check_choice(mode, names[1], MODES))
    if lungs is None:
        if mode != "mask":
            raise InvalidInputError(
                f"{names[1]}: '{mode}' needs a lung segmenter ({names[0]}), none was given"
            )
        return mode
    check_segmenter(lungs, names[0])
    return mode


def apply_lung_focus(model: keras.Model, lungs: LungSegmenter | None, mode: str = "mask", *,
                     names: tuple[str, str] = ("lungs", "lung_mode")) -> keras.Model:
    """``model`` itself, or, with a segmenter, ``with_lung_focus(model, lungs, mode=mode)``.

    The training helpers build a model, pass it through here and train what comes back; the
    saved classifier is then the focused model, its segmenter frozen inside (one ``.keras``
    file).

    Args:
        model: A freshly built classifier.
        lungs: A lung segmenter, or None for no focus.
        mode: ``"mask"`` (only the lungs visible), ``"inverse"`` (only what lies outside)
            or ``"crop"`` (the lungs' box stretched to the frame); see
            :data:`cxrexplain.lungs.focus.MODES`.
        names: How ``lungs`` and ``mode`` are named in error messages.

    Returns:
        The model to train.

    Raises:
        InvalidInputError: As :func:`check_lung_focus`, or the model and the segmenter do not
            fit together (see :func:`cxrexplain.models.with_lung_focus`).

    Example:
        >>> apply_lung_focus(model, None) is model
        True
    """
    mode = check_lung_focus(lungs, mode, names=names)
    if lungs is None:
        return model
    return with_lung_focus(model, lungs, mode=mode)


def lung_focus_record(lungs: LungSegmenter | None, mode: str = "mask") -> dict[str, Any] | None:
    """What identifies a lung focus in a saved set-up: mode, threshold and a weights digest.

    Example:
        >>> lung_focus_record(None) is None
        True
    """
    if lungs is None:
        return None
    digest = hashlib.sha1()
    for weights in lungs.model.get_weights():
        array = np.ascontiguousarray(weights)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return {"mode": mode, "threshold": float(lungs.threshold),
            "input_size": list(lungs.input_size), "weights": digest.hexdigest()}


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU.

    Example:
        >>> isinstance(has_gpu(), bool)
        True
    """
    return bool(tf.config.list_physical_devices("GPU"))


def balanced_class_weight(labels: Sequence[int] | np.ndarray,
                          num_classes: int | None = None) -> dict[int, float]:
    """Class weights ``n / (K * n_c)``: every class weighs as much in total.

    Classes absent from ``labels`` get weight 1.

    Args:
        labels: Integer class labels.
        num_classes: K (default: the largest label + 1).

    Returns:
        A dict ``class index -> weight`` for ``model.fit(class_weight=...)``.

    Example:
        >>> balanced_class_weight([0, 0, 0, 1])
        {0: 0.6666666666666666, 1: 2.0}
    """
    if num_classes is not None:
        check_int(num_classes, "num_classes")
    values = as_labels(labels, "labels", num_classes=num_classes)
    classes = int(values.max()) + 1 if num_classes is None else int(num_classes)
    counts = np.bincount(values, minlength=classes)
    present = int((counts > 0).sum())
    return {c: (float(values.size / (present * counts[c])) if counts[c] else 1.0)
            for c in range(classes)}


def compile_default(model: keras.Model) -> keras.Model:
    """Compile with Adam (1e-3), the cross-entropy that fits the head, and accuracy.

    Example:
        >>> import cxrexplain as cx
        >>> m = compile_default(cx.models.build("cam_cnn", input_shape=(32, 32, 1),
        ...                                     num_classes=2))
        >>> type(m.optimizer).__name__
        'Adam'
    """
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_for(model),
                  metrics=metrics_for(model, ("accuracy",)))
    return model


def as_dataset(data: Any, name: str, *, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """A dataset as it is, or ``(images, labels)`` arrays as a batched (shuffled) dataset.

    Args:
        data: A ``tf.data.Dataset`` or an ``(images (N, H, W, C), labels (N,))`` tuple.
        name: The argument's name, for messages.
        shuffle_seed: Shuffle array data every epoch with this seed (None: keep the order).

    Example:
        >>> import numpy as np
        >>> ds = as_dataset((np.zeros((3, 8, 8, 1)), np.array([0, 1, 0])), "train")
        >>> [int(len(y)) for _, y in ds]
        [3]
    """
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = (np.asarray(data[0], dtype=np.float32), np.asarray(data[1]))
        if images.ndim != 4 or len(images) != len(labels) or len(images) == 0:
            raise InvalidInputError(
                f"{name}: expected (images (N, H, W, C), labels (N,)), got shapes "
                f"{images.shape} and {labels.shape}"
            )
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        if shuffle_seed is not None:
            dataset = dataset.shuffle(len(images), seed=shuffle_seed)
        return dataset.batch(32)
    raise InvalidInputError(
        f"{name}: expected a tf.data.Dataset of (images, labels) batches or an "
        f"(images, labels) tuple, got {type(data).__name__}"
    )


def films_only(data: tf.data.Dataset | None) -> tf.data.Dataset | None:
    """A dataset whose inputs are a ``{"images", "boxes"}`` dict, reduced to the films.

    Data that carry boxes for an explanation guide (:func:`cxrexplain.data.image_folder`
    with ``boxes=``) train a plain model too; other data pass unchanged.

    Example:
        >>> ds = tf.data.Dataset.from_tensors(({"images": np.zeros((2, 8, 8, 1)),
        ...                                     "boxes": np.zeros((2, 8, 8, 1))}, [0, 1]))
        >>> next(iter(films_only(ds)))[0].shape
        TensorShape([2, 8, 8, 1])
    """
    if data is None or not isinstance(data.element_spec, tuple) \
            or not isinstance(data.element_spec[0], dict):
        return data
    reduced = data.map(lambda x, *rest: (x[IMAGES], *rest))
    for name in ("class_names", "file_paths", "labels", "skipped_folders"):
        if hasattr(data, name):
            setattr(reduced, name, getattr(data, name))
    return reduced


def working_model(model: keras.Model, *, mixed: bool,
                  strategy: tf.distribute.Strategy | None) -> keras.Model:
    """The model itself, or a copy built under the dtype policy and/or the strategy.

    The copy has the model's weights and compile settings (a fresh optimizer); an
    uncompiled model (or copy) is compiled with :func:`compile_default`.

    Example:
        >>> import cxrexplain as cx
        >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2)
        >>> working_model(model, mixed=False, strategy=None) is model
        True
        >>> copy = working_model(model, mixed=True, strategy=None)  # a mixed-precision copy
        >>> copy is model, copy.get_layer("block1_conv").compute_dtype
        (False, 'float16')
    """
    needs_mixed = mixed and not is_mixed_precision(model)
    needs_scope = strategy is not None and getattr(model, "_distribute_strategy", None) \
        is not strategy
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    if not needs_mixed and not needs_scope:
        if not model.compiled:
            with scope:
                compile_default(model)
        return model
    with scope:
        if needs_mixed:
            working = with_dtype_policy(model, "mixed_float16")
        else:
            working = keras.models.clone_model(model)
            working.set_weights(model.get_weights())
        if model.compiled:
            try:
                working.compile_from_config(model.get_compile_config())
            except (TypeError, ValueError) as err:
                raise InvalidInputError(
                    "model: its compile settings cannot be copied to the mixed-precision or "
                    f"distributed copy ({err}); pass an uncompiled model, or build and compile "
                    "it under the dtype policy / strategy scope yourself"
                ) from err
        else:
            compile_default(working)
    return working


def has_schedule(model: keras.Model) -> bool:
    """Whether the model's optimizer follows a learning-rate schedule (it cannot be reduced).

    Example:
        >>> import cxrexplain as cx
        >>> model = cx.models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2)
        >>> has_schedule(compile_default(model))
        False
        >>> has_schedule(cx.models.compile_recommended(model, decay_steps=100))  # cosine decay
        True
    """
    optimizer = getattr(model, "optimizer", None)
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = getattr(inner, "_learning_rate", None)
    return isinstance(rate, keras.optimizers.schedules.LearningRateSchedule)


def resolve_class_weight(
    class_weight: str | Mapping[int, float] | None, train: tf.data.Dataset, model: keras.Model
) -> dict[int, float] | None:
    """The class weights for ``model.fit``: ``"balanced"`` computed from the training labels
    (the dataset's ``labels`` attribute, else one pass over it), a checked dict, or None.

    Example:
        >>> ds = as_dataset((np.zeros((4, 8, 8, 1)), np.array([0, 0, 0, 1])), "train")
        >>> resolve_class_weight("balanced", ds, model)
        {0: 0.6666666666666666, 1: 2.0}
    """
    if class_weight is None:
        return None
    units, activation = head_of(model)
    classes = 2 if units == 1 else units
    if isinstance(class_weight, Mapping):
        weights = {int(k): float(v) for k, v in class_weight.items()}
        missing = sorted(set(range(classes)) - set(weights))
        if missing:
            raise InvalidInputError(
                f"class_weight: no weight for class(es) {missing}; give one per class "
                f"0..{classes - 1}"
            )
        return weights
    if class_weight != "balanced":
        raise InvalidInputError(
            f"class_weight: expected 'balanced', a dict or None, got {class_weight!r}"
        )
    if activation == "sigmoid" and units > 1:
        return None  # multi-label: one label per finding, no single class to weigh
    labels = getattr(train, "labels", None)
    if labels is None:
        labels = np.concatenate([_label_indices(element, classes) for element in train])
    return balanced_class_weight(np.asarray(labels), classes)


def _label_indices(element: Any, classes: int) -> np.ndarray:
    labels = np.asarray(element[1])
    if labels.ndim == 2 and labels.shape[1] == classes and classes > 1:
        return np.asarray(labels.argmax(axis=1))
    return labels.reshape(-1).astype(np.int64)
