"""Wrap a Keras model as a chest X-ray :class:`Classifier` with class names and a threshold.

Three kinds of heads are understood (see ARCHITECTURE.md, "Rules of the math"):

* **two-class, one sigmoid unit** (``Dense(1, "sigmoid")``): the unit is the probability of
  class 1; the classifier reports ``[1 - p, p]``;
* **multi-class softmax** (``Dense(K, "softmax")``, K >= 2);
* **multi-label sigmoid** (``Dense(K, "sigmoid")``, K >= 2, CheXNet style): one independent
  probability per finding; :attr:`Prediction.findings` lists those at or above the threshold.

A head without an activation (logits) is treated as softmax (K >= 2) or sigmoid (K = 1).

Example:
    >>> import keras, numpy as np
    >>> import cxrexplain as cx
    >>> model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")])
    >>> clf = cx.Classifier(model, class_names=["NORMAL", "PNEUMONIA"], threshold=0.05)
    >>> clf.predict_proba(np.zeros((2, 32, 32, 1), np.float32)).shape
    (2, 2)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import keras
import numpy as np

from cxrexplain import _keras_utils, _passes
from cxrexplain._checks import (
    as_numbers,
    check_channels,
    check_fraction,
    check_int,
    check_size,
    describe,
    first_line,
)
from cxrexplain._model_file import METADATA_FORMAT, read_model_file, write_model_file
from cxrexplain._version import __version__
from cxrexplain.errors import (
    CxrExplainError,
    InvalidInputError,
    ModelLoadError,
    ModelStructureError,
)
from cxrexplain.io import ImageSource, load_images

__all__ = ["Classifier", "Prediction"]

Activation = Literal["softmax", "sigmoid", "linear"]


@dataclass(frozen=True)
class Prediction:
    """One image's prediction.

    Attributes:
        label: The predicted class name.
        index: The predicted class index (into ``Classifier.class_names``).
        probabilities: Each class name's probability.
        findings: For multi-label models, the findings at or above the threshold (else
            empty).

    Example:
        >>> p = Prediction("PNEUMONIA", 1, {"NORMAL": 0.2, "PNEUMONIA": 0.8})
        >>> p.probability
        0.8
    """

    label: str
    index: int
    probabilities: dict[str, float]
    findings: tuple[str, ...] = field(default=())

    @property
    def probability(self) -> float:
        """The probability of the predicted class."""
        return self.probabilities[self.label]


class Classifier:
    """A Keras image classifier with class names, input size and a decision threshold.

    Args:
        model: A ``keras.Model`` with one image input ``(batch, H, W, C)`` and one output
            ``(batch, K)``: one sigmoid unit (two classes), K softmax units, K sigmoid units
            (multi-label) or K logits.
        class_names: One name per class (two names for a one-unit sigmoid model). Defaults to
            ``class_0``, ``class_1``, ...
        input_size: ``(height, width)`` the model expects; read from the model when omitted.
            Images of another size are resized.
        channels: 1 or 3, the channels the model expects; read from the model when omitted.
            Gray images are repeated to RGB and RGB is converted to gray as needed.
        threshold: Decision threshold on the probability of the positive class (index 1) of a
            two-class model: class 1 is predicted when its probability is at least this. For a
            multi-label model, one threshold for every finding (default 0.5), or one per
            finding as a dict by class name (``{"Effusion": 0.3, "Edema": 0.6}``; findings not
            named keep 0.5), the operating points torchxrayvision calls ``op_threshs``.
            ``None`` means argmax (two-class) or 0.5 (multi-label).
        output_activation: Override the detected head: ``"softmax"``, ``"sigmoid"`` or
            ``"linear"`` (logits). Needed only for subclassed models whose head cannot be read.

    Raises:
        InvalidInputError: ``class_names`` does not match the number of outputs, or the
            threshold is outside (0, 1) or given for a model with more than two classes.
        ModelStructureError: The model has several inputs or outputs, or a non-image input.

    Example:
        >>> import keras
        >>> import cxrexplain as cx
        >>> model = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(),
        ...     keras.layers.Dense(3, activation="softmax")])
        >>> clf = cx.Classifier(model, class_names=["COVID", "NORMAL", "PNEUMONIA"])
        >>> clf.input_size, clf.channels, clf.num_classes
        ((64, 64), 1, 3)
    """

    def __init__(
        self,
        model: keras.Model,
        class_names: Sequence[str] | None = None,
        *,
        input_size: int | tuple[int, int] | None = None,
        channels: int | None = None,
        threshold: float | Mapping[str, float] | None = None,
        output_activation: Activation | None = None,
    ) -> None:
        if not isinstance(model, keras.Model):
            raise InvalidInputError(
                f"model: expected a keras.Model, got {type(model).__name__}"
            )
        self.model = model
        spec = _keras_utils.input_spec(model)
        self.input_size = _resolve_size(input_size, spec)
        self.channels = _resolve_channels(channels, spec)
        units = _keras_utils.output_units(model)
        if units is None:
            units = self._probe_output_units()
        self.output_units = units
        self.output_activation: Activation = _resolve_activation(output_activation, model, units)
        self.multilabel = self.output_activation == "sigmoid" and units > 1
        self.num_classes = 2 if units == 1 else units
        self.class_names = _resolve_class_names(class_names, self.num_classes, units)
        self.threshold = threshold

    # ---------------------------------------------------------------- properties
    @property
    def threshold(self) -> float | dict[str, float] | None:
        """Decision threshold of the positive class (two-class), of every finding, or one per
        finding by name (multi-label); a copy, so change it by assignment."""
        value = self._threshold
        return dict(value) if isinstance(value, dict) else value

    @threshold.setter
    def threshold(self, value: float | Mapping[str, float] | None) -> None:
        if isinstance(value, Mapping):
            if not self.multilabel:
                raise InvalidInputError(
                    "threshold: one threshold per class needs a multi-label model (one sigmoid "
                    f"per finding); this model has {self.num_classes} "
                    f"{'softmax classes' if self.num_classes > 2 else 'classes'}: give one "
                    "number"
                )
            unknown = sorted(str(k) for k in value if k not in self.class_names)
            if unknown:
                raise InvalidInputError(
                    f"threshold: unknown findings {unknown}; the classes are {self.class_names}"
                )
            self._threshold: float | dict[str, float] | None = {
                name: check_fraction(value[name], f"threshold[{name!r}]", open_interval=True)
                for name in self.class_names if name in value
            }
            return
        if value is not None:
            number = check_fraction(value, "threshold", open_interval=True)
            if self.num_classes > 2 and not self.multilabel:
                raise InvalidInputError(
                    f"threshold: only two-class and multi-label models take a threshold; this "
                    f"model has {self.num_classes} softmax classes (argmax decides)"
                )
            value = number
        self._threshold = value

    @property
    def thresholds(self) -> np.ndarray:
        """``(K,)`` float32, the threshold each class's probability is held to: the
        per-finding operating points of a multi-label model (0.5 where none is set), or for
        a two-class model ``[nan, t]`` (NaN everywhere when argmax decides).

        Example:
            >>> four = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
            ...     keras.layers.Dense(4, activation="sigmoid")])
            >>> multi = cx.Classifier(four, ["Atelectasis", "Edema", "Effusion", "Nodule"],
            ...                       threshold={"Effusion": 0.3})
            >>> multi.thresholds.round(2).tolist(), multi.threshold
            ([0.5, 0.5, 0.3, 0.5], {'Effusion': 0.3})
        """
        value = self._threshold
        if self.multilabel:
            if isinstance(value, dict):
                return np.array([value.get(name, 0.5) for name in self.class_names],
                                np.float32)
            return np.full(self.num_classes, 0.5 if value is None else value, np.float32)
        limits = np.full(self.num_classes, np.nan, np.float32)
        if value is not None and self.num_classes == 2 and not isinstance(value, dict):
            limits[1] = value
        return limits

    # ---------------------------------------------------------------- inference
    def prepare(self, images: ImageSource | Iterable[ImageSource]) -> np.ndarray:
        """Load and convert images to the batch the model takes: ``(N, H, W, C)`` float32.

        Args:
            images: Anything :func:`cxrexplain.load_images` accepts.

        Returns:
            The batch, resized to :attr:`input_size` and converted to :attr:`channels`.

        Example:
            >>> clf.prepare("xray.png").shape, clf.input_size  # a 64 x 64 file
            ((1, 32, 32, 1), (32, 32))
        """
        return load_images(images, size=self.input_size, channels=self.channels or 1)

    def probabilities_from_outputs(self, outputs: np.ndarray) -> np.ndarray:
        """Turn raw model outputs ``(N, units)`` into class probabilities ``(N, K)``.

        Args:
            outputs: What the model returned for a batch.

        Returns:
            float32 probabilities, one column per entry of :attr:`class_names`.
        """
        raw = np.asarray(outputs, dtype=np.float32).reshape(len(outputs), -1)
        probabilities = _keras_utils.to_probabilities(
            raw, activation=self.output_activation, multilabel=self.multilabel
        )
        return np.asarray(probabilities, dtype=np.float32)

    def predict_proba(
        self, images: ImageSource | Iterable[ImageSource], *, batch_size: int = 32
    ) -> np.ndarray:
        """Class probabilities for images, ``(N, K)`` float32, columns in class-name order.

        Args:
            images: A path, bytes, array, list of those, or an ``(N, H, W, C)`` batch.
            batch_size: Images per forward pass.

        Returns:
            An ``(N, K)`` float32 array. For a one-unit sigmoid model the columns are
            ``1 - p`` and ``p``.

        Example:
            >>> probabilities = clf.predict_proba(["a.png", "b.png"])
            >>> probabilities.shape, probabilities.dtype, probabilities.sum(axis=1).round(4)
            ((2, 2), dtype('float32'), array([1., 1.], dtype=float32))
        """
        check_int(batch_size, "batch_size")
        return self._probabilities(self.prepare(images), batch_size=batch_size)

    def _probabilities(self, batch: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Class probabilities ``(N, K)`` of a batch already as the model takes it.

        The forward pass is compiled once per model, head and input signature and shared by
        every classifier, explainer and metric built on the same model, so a new
        ``Classifier(model)`` does not trace again; it runs ``batch_size`` images at a time
        into one preallocated result.

        Args:
            batch: ``(N, H, W, C)`` float32, as :meth:`prepare` returns it.
            batch_size: Images per forward pass.

        Returns:
            ``(N, K)`` float32, columns in class-name order.

        Raises:
            InvalidInputError: The model cannot take images of that shape.

        Example:
            >>> batch = clf.prepare(["a.png", "b.png"])
            >>> bool(np.allclose(clf._probabilities(batch), clf.predict_proba(batch)))
            True
        """
        import tensorflow as tf

        check_int(batch_size, "batch_size")
        images = np.asarray(batch, np.float32)
        if images.ndim != 4 or len(images) == 0:
            raise InvalidInputError(
                f"images: expected a non-empty (N, H, W, C) batch, got shape {images.shape}"
            )
        model, activation, multilabel = self.model, self.output_activation, self.multilabel
        spec = tf.TensorSpec([None, *images.shape[1:]], tf.float32)

        def build() -> Any:
            def forward(x: tf.Tensor) -> tf.Tensor:
                outputs = model(x, training=False)
                if len(outputs.shape) == 1:
                    outputs = outputs[:, None]
                return _keras_utils.to_probabilities(outputs, activation=activation,
                                                     multilabel=multilabel)

            return tf.function(forward).get_concrete_function(spec)

        key = ("predict", activation, multilabel, tuple(spec.shape.as_list()))
        try:
            run = _passes.shared(model, key, build)
            result = np.empty((len(images), self.num_classes), np.float32)
            for start in range(0, len(images), batch_size):
                part = images[start : start + batch_size]
                result[start : start + len(part)] = run(tf.constant(part)).numpy()
        except (tf.errors.InvalidArgumentError, ValueError) as err:
            raise InvalidInputError(
                f"images: the model cannot take images of shape {images.shape[1:]} "
                f"({type(err).__name__}: {first_line(err)})"
            ) from err
        return result

    def decide(self, probabilities: np.ndarray) -> list[Prediction]:
        """Apply the decision rule (argmax or threshold) to ``(N, K)`` probabilities.

        Args:
            probabilities: The output of :meth:`predict_proba`.

        Returns:
            One :class:`Prediction` per row.
        """
        probs = as_numbers(probabilities, "probabilities").astype(np.float32)
        if probs.ndim != 2 or probs.shape[1] != self.num_classes or len(probs) == 0:
            raise InvalidInputError(
                f"probabilities: expected shape (N, {self.num_classes}), got {probs.shape}"
            )
        indices = np.asarray(self._decision(probs))
        present = probs >= self.thresholds[None, :] if self.multilabel else None
        predictions = []
        for i, (row, index) in enumerate(zip(probs, indices, strict=True)):
            by_name = {name: float(p) for name, p in zip(self.class_names, row, strict=True)}
            findings: tuple[str, ...] = ()
            if present is not None:
                findings = tuple(n for n, hit in zip(self.class_names, present[i], strict=True)
                                 if hit)
            predictions.append(
                Prediction(self.class_names[int(index)], int(index), by_name, findings)
            )
        return predictions

    def _decision(self, probabilities: Any, threshold: Any = None) -> Any:
        """The predicted class index of each row of ``(N, K)`` probabilities.

        The one home of the decision rule, in ``keras.ops`` so that it runs on NumPy arrays
        and inside compiled explain passes alike: argmax, except for a two-class model with a
        threshold, which predicts class 1 when its probability is at least the threshold.

        Args:
            probabilities: ``(N, K)`` probabilities (array or tensor).
            threshold: Overrides :attr:`threshold` (a tensor inside a compiled pass; a
                negative value means argmax).

        Returns:
            ``(N,)`` int32 indices (a backend tensor).
        """
        probs = keras.ops.cast(keras.ops.convert_to_tensor(probabilities), "float32")
        predicted = keras.ops.cast(keras.ops.argmax(probs, axis=1), "int32")
        if self.num_classes != 2 or self.multilabel:
            return predicted
        limit = self.threshold if threshold is None else threshold
        if limit is None or isinstance(limit, dict):
            return predicted
        by_threshold = keras.ops.cast(probs[:, 1] >= limit, "int32")
        return keras.ops.where(keras.ops.convert_to_tensor(limit) >= 0.0, by_threshold,
                               predicted)

    def with_model(self, model: keras.Model) -> Classifier:
        """A classifier with these class names, input size, channels, threshold and head
        for another model (a copy with re-initialised weights, a lung-focused wrapper).

        Example:
            >>> twin = clf.with_model(keras.models.clone_model(clf.model))
            >>> twin.class_names == clf.class_names, twin.model is clf.model
            (True, False)
        """
        return type(self)(model, **self._settings())

    def _settings(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "input_size": self.input_size,
            "channels": self.channels,
            "threshold": self.threshold,
            "output_activation": self.output_activation,
        }

    def target_indices(self, targets: Any, count: int) -> np.ndarray:
        """Class indices for ``count`` images from one class or one per image.

        Args:
            targets: A class index or name for every image, or a sequence of them (one per
                image).
            count: The number of images.

        Returns:
            ``(count,)`` int32 indices into :attr:`class_names`.

        Raises:
            InvalidInputError: An unknown name, an index out of range, or a wrong count.

        Example:
            >>> clf.target_indices("PNEUMONIA", 2).tolist(), clf.target_indices([0, 1], 2).tolist()
            ([1, 1], [0, 1])
        """
        names = self.class_names
        values: list[Any]
        if isinstance(targets, (Sequence, np.ndarray)) and not isinstance(targets, str):
            values = list(np.ravel(targets)) if isinstance(targets, np.ndarray) else list(targets)
        else:
            values = [targets] * count
        if len(values) != count:
            raise InvalidInputError(
                f"targets: expected one target per image ({count}), got {len(values)}"
            )
        resolved = np.empty(count, np.int32)
        for i, value in enumerate(values):
            if isinstance(value, str):
                if value not in names:
                    raise InvalidInputError(
                        f"targets: unknown class name {value!r}; classes are {names}"
                    )
                resolved[i] = names.index(value)
            elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                if not 0 <= int(value) < self.num_classes:
                    raise InvalidInputError(
                        f"targets: class index {int(value)} is out of range for a model with "
                        f"{self.num_classes} classes (0..{self.num_classes - 1})"
                    )
                resolved[i] = int(value)
            else:
                raise InvalidInputError(
                    f"targets: expected None, a class index or a class name, got {value!r}"
                )
        return resolved

    @overload
    def predict(
        self, images: str | os.PathLike[str] | bytes, *, batch_size: int = 32
    ) -> Prediction: ...

    @overload
    def predict(
        self, images: list[ImageSource] | tuple[ImageSource, ...], *, batch_size: int = 32
    ) -> list[Prediction]: ...

    @overload
    def predict(
        self, images: np.ndarray, *, batch_size: int = 32
    ) -> Prediction | list[Prediction]: ...

    def predict(
        self, images: ImageSource | Iterable[ImageSource], *, batch_size: int = 32
    ) -> Prediction | list[Prediction]:
        """Predict the class of one image or of a batch.

        Args:
            images: One image (a path, bytes, or an ``(H, W[, C])`` array) or several (a list,
                or an ``(N, H, W, C)`` array).
            batch_size: Images per forward pass.

        Returns:
            A :class:`Prediction` for one image, a list of them for several.

        Example:
            >>> clf.predict("xray.png")
            Prediction(label='...', index=...,
                       probabilities={'NORMAL': ..., 'PNEUMONIA': ...}, findings=())
            >>> len(clf.predict(["a.png", "b.png"]))
            2
        """
        predictions = self.decide(self.predict_proba(images, batch_size=batch_size))
        if _is_single(images):
            return predictions[0]
        return predictions

    # ---------------------------------------------------------------- persistence
    def metadata(self) -> dict[str, Any]:
        """What :meth:`save` stores beside the model, as a JSON-ready dict."""
        settings = self._settings()
        size = settings["input_size"]
        settings["input_size"] = list(size) if size else None
        return {"format": METADATA_FORMAT, "cxrexplain_version": __version__, **settings}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the model and this classifier's metadata in one ``.keras`` file.

        The file is a normal Keras archive (``keras.models.load_model`` reads it) with one
        extra entry, ``cxrexplain.json``, holding class names, input size, channels and
        threshold.

        Args:
            path: Where to write; must end in ``.keras``.

        Returns:
            The path written.

        Example:
            >>> clf.save("pneumonia.keras")
            PosixPath('pneumonia.keras')
        """
        return write_model_file(path, self.model, self.metadata())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        custom_objects: Mapping[str, Any] | None = None,
    ) -> Classifier:
        """Load a classifier saved with :meth:`save` (or any ``.keras`` model file).

        Keras ``safe_mode`` stays on: loading never runs code stored in the file. A plain
        Keras file without cxrexplain metadata loads with default class names.

        Args:
            path: A ``.keras`` file.
            custom_objects: Custom layers or functions the model needs, by name.

        Returns:
            The classifier, with the class names, input size, channels and threshold it was
            saved with.

        Raises:
            ModelLoadError: The file is missing or not a Keras model.

        Example:
            >>> clf = Classifier.load("pneumonia.keras")
            >>> clf.class_names, clf.input_size
            (['NORMAL', 'PNEUMONIA'], (32, 32))
        """
        model, meta = read_model_file(path, custom_objects=custom_objects)
        source = Path(os.fspath(path))
        size = meta.get("input_size")
        try:
            return cls(
                model,
                class_names=meta.get("class_names"),
                input_size=(int(size[0]), int(size[1])) if size else None,
                channels=meta.get("channels"),
                threshold=meta.get("threshold"),
                output_activation=meta.get("output_activation"),
            )
        except CxrExplainError as err:
            raise ModelLoadError(f"model file '{source}': {err}") from err

    # ---------------------------------------------------------------- helpers
    def _probe_output_units(self) -> int:
        if self.input_size is None or self.channels is None:
            raise ModelStructureError(
                "model: its input shape is unknown (a subclassed model that was never "
                "called); pass input_size= and channels="
            )
        probe = np.zeros((1, *self.input_size, self.channels), np.float32)
        try:
            outputs = np.asarray(self.model(probe, training=False))
        except Exception as err:
            raise ModelStructureError(
                f"model: cannot run it on a {self.input_size} x {self.channels}-channel image "
                f"({type(err).__name__}: {first_line(err)})"
            ) from err
        if outputs.ndim != 2:
            raise ModelStructureError(
                f"model: expected an output of shape (batch, classes), got {outputs.shape}"
            )
        return int(outputs.shape[1])

    def __repr__(self) -> str:
        return (
            f"Classifier(model={self.model.name!r}, class_names={list(self.class_names)!r}, "
            f"input_size={self.input_size}, channels={self.channels}, "
            f"threshold={self.threshold}, output_activation={self.output_activation!r})"
        )


# -------------------------------------------------------------------------------- helpers
def _is_single(images: object) -> bool:
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)):
        return True
    return isinstance(images, np.ndarray) and images.ndim in (2, 3)


def _resolve_size(
    size: int | tuple[int, int] | None,
    spec: tuple[int | None, int | None, int | None] | None,
) -> tuple[int, int] | None:
    if size is not None:
        pair = check_size(size, "input_size")
        if spec is not None and None not in spec[:2] and (spec[0], spec[1]) != pair:
            raise InvalidInputError(
                f"input_size: the model takes {spec[0]}x{spec[1]} images, got {pair}"
            )
        return pair
    if spec is None or spec[0] is None or spec[1] is None:
        return None
    return int(spec[0]), int(spec[1])


def _resolve_channels(
    channels: int | None, spec: tuple[int | None, int | None, int | None] | None
) -> int | None:
    model_channels = None if spec is None else spec[2]
    if channels is None:
        if model_channels is not None and model_channels not in (1, 3):
            raise ModelStructureError(
                f"model: expected an input with 1 or 3 channels, got {model_channels}"
            )
        return model_channels
    channels = check_channels(channels)
    if model_channels is not None and model_channels != channels:
        raise InvalidInputError(
            f"channels: the model takes {model_channels}-channel images, got {channels}"
        )
    return int(channels)


def _resolve_activation(given: str | None, model: keras.Model, units: int) -> Activation:
    if given is not None:
        if given not in ("softmax", "sigmoid", "linear"):
            raise InvalidInputError(
                f"output_activation: expected 'softmax', 'sigmoid' or 'linear', got {given!r}"
            )
        found: str | None = given
    else:
        found = _keras_utils.head_activation(model)
        if found is None:
            found = "sigmoid" if units == 1 else "softmax"
    if found == "softmax" and units == 1:
        raise ModelStructureError(
            "model: its output is a softmax over one unit, which is always 1.0; use "
            "Dense(1, activation='sigmoid') for two classes or Dense(2, activation='softmax')"
        )
    return found  # type: ignore[return-value]


def _resolve_class_names(given: object, num_classes: int, units: int) -> list[str]:
    if given is None:
        return [f"class_{i}" for i in range(num_classes)]
    names: Any = given.tolist() if isinstance(given, np.ndarray) and given.ndim == 1 else given
    if isinstance(names, (str, np.ndarray)) or not isinstance(names, Iterable) or not all(
        isinstance(n, str) for n in names
    ):
        raise InvalidInputError(f"class_names: expected a list of strings, got {describe(names)}")
    listed: list[str] = list(names)
    if len(listed) != num_classes:
        detail = " (one sigmoid unit is a two-class model)" if units == 1 else ""
        raise InvalidInputError(
            f"class_names: the model has {num_classes} classes{detail}, got {len(listed)} "
            f"names {listed}"
        )
    if len(set(listed)) != len(listed):
        raise InvalidInputError(f"class_names: names must be unique, got {listed}")
    return listed
