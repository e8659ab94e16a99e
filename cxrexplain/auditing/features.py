"""What the encoding probe reads: the model's penultimate features, an untrained copy's, pixels.

* :func:`penultimate_layer`: the model's last Dense layer, whose input is the pooled feature
  vector before the head (found in the forward pass, nested models too, with
  :func:`cxrexplain.explain.layers.find_layers`);
* :func:`penultimate_features`: that input for a batch, intercepted while the model runs as
  it is (:func:`cxrexplain.explain.layers.intercept`);
* :func:`untrained_copy`: the same architecture with fresh weights
  (``keras.models.clone_model``, each initializer seeded, so the copy is the same for a
  seed and no global random state is touched): what the architecture alone encodes;
* :func:`pixel_statistics`: 25 numbers per film (mean, standard deviation, 7 percentiles and
  a 16-bin histogram of its pixels, as the model takes them): what the film's brightness and
  contrast alone give away (exposure differs between AP and PA films).

Example:
    >>> from cxrexplain.auditing.features import FeatureSets
    >>> sets = FeatureSets.of(clf, seed=0)
    >>> {name: f.shape for name, f in sets.compute(batch).items()}
    {'model': (4, 8), 'untrained': (4, 8), 'pixels': (4, 25)}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from cxrexplain._checks import first_line
from cxrexplain.classifier import Classifier
from cxrexplain.errors import ModelStructureError
from cxrexplain.explain.layers import find_layers, intercept

__all__ = ["FEATURE_SETS", "PERCENTILES", "FeatureSets", "collect_features",
           "penultimate_features",
           "penultimate_layer", "pixel_statistics", "untrained_copy"]

FEATURE_SETS = ("model", "untrained", "pixels")
"""The probe's feature sets, in the report's order."""

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
"""The percentiles of :func:`pixel_statistics`."""

HISTOGRAM_BINS = 16
"""The histogram bins of :func:`pixel_statistics`, over [0, 1]."""


def penultimate_layer(model: keras.Model, input_shape: tuple[int, int, int]
                      ) -> keras.layers.Layer:
    """The last Dense layer of the forward pass (its input: the pooled features).

    Raises:
        ModelStructureError: The model calls no Dense layer, or its input is not a vector.

    Example:
        >>> penultimate_layer(model, (32, 32, 1)).name
        'predictions'
    """
    calls = find_layers(model, input_shape).calls
    dense = [c for c in calls if isinstance(c.layer, keras.layers.Dense)]
    if not dense:
        raise ModelStructureError(
            "model: the encoding probe reads the input of the model's last Dense layer (the "
            "pooled features before the head); this model calls no Dense layer")
    return dense[-1].layer


def penultimate_features(model: keras.Model, layer: keras.layers.Layer, batch: np.ndarray
                         ) -> np.ndarray:
    """``(N, D)`` float32: the input of ``layer`` (:func:`penultimate_layer`) for ``batch``.

    Example:
        >>> penultimate_features(model, model.get_layer("predictions"), batch).shape
        (4, 8)
    """
    captured: list[Any] = []

    def capture(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        captured.append(args[0] if args else next(iter(kwargs.values())))
        return original(*args, **kwargs)

    with intercept(layer, capture):
        model(batch, training=False)
    features = np.asarray(keras.ops.convert_to_numpy(captured[-1]), dtype=np.float32)
    if features.ndim != 2:
        raise ModelStructureError(
            f"model: the input of its last Dense layer '{layer.name}' has shape "
            f"{features.shape}; the encoding probe needs a pooled (N, D) feature vector")
    return features


def untrained_copy(model: keras.Model, seed: int = 0) -> keras.Model:
    """The same architecture with fresh weights, each initializer seeded (``seed``, ``+1``...).

    Raises:
        ModelStructureError: Keras cannot clone the model (a subclassed model).

    Example:
        >>> fresh = untrained_copy(model, seed=0)
        >>> bool(np.allclose(fresh.get_weights()[0], model.get_weights()[0]))
        False
    """
    counter = iter(range(seed, seed + 1_000_000))

    def fresh(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        for key, value in list(config.items()):
            if key.endswith("_initializer") and isinstance(value, dict):
                inner = dict(value.get("config") or {})
                if "seed" in inner or value.get("class_name") in _SEEDED:
                    inner["seed"] = next(counter)
                config[key] = {**value, "config": inner}
        return type(layer).from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=fresh, recursive=True)
    except Exception as err:
        raise ModelStructureError(
            f"model: cannot make an untrained copy with keras.models.clone_model "
            f"({type(err).__name__}: {first_line(err)})") from err
    return copy


_SEEDED = {"GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform",
           "LecunNormal", "RandomUniform", "RandomNormal", "TruncatedNormal", "Orthogonal",
           "VarianceScaling"}


def pixel_statistics(batch: np.ndarray) -> np.ndarray:
    """``(N, 25)`` per film: mean, std, :data:`PERCENTILES`, a 16-bin histogram (shares).

    The films as the model takes them (``(N, H, W, C)`` in [0, 1], channels averaged).

    Example:
        >>> stats = pixel_statistics(np.full((2, 4, 4, 1), 0.5, np.float32))
        >>> stats.shape, stats[0, :3].round(2).tolist()
        ((2, 25), [0.5, 0.0, 0.5])
    """
    gray = np.asarray(batch, np.float64).mean(axis=-1).reshape(len(batch), -1)
    percentiles = np.percentile(gray, PERCENTILES, axis=1).T
    bins = np.clip((gray * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
    offsets = (np.arange(len(gray)) * HISTOGRAM_BINS)[:, None]
    histogram = np.bincount((bins + offsets).ravel(), minlength=len(gray) * HISTOGRAM_BINS)
    shares = histogram.reshape(len(gray), HISTOGRAM_BINS) / gray.shape[1]
    out: np.ndarray = np.concatenate(
        [gray.mean(axis=1, keepdims=True), gray.std(axis=1, keepdims=True), percentiles,
         shares], axis=1).astype(np.float32)
    return out


@dataclass(frozen=True)
class FeatureSets:
    """The probe's three feature extractors for one classifier.

    Attributes:
        model: The classifier's Keras model.
        layer: Its last Dense layer (:func:`penultimate_layer`).
        untrained: The untrained copy, or None when it could not be made.
        untrained_layer: The copy's last Dense layer.
    """

    model: keras.Model
    layer: keras.layers.Layer
    untrained: keras.Model | None
    untrained_layer: keras.layers.Layer | None

    @classmethod
    def of(cls, classifier: Classifier, seed: int = 0) -> FeatureSets:
        """The extractors of ``classifier`` (the copy's weights seeded by ``seed``).

        Raises:
            ModelStructureError: No Dense head, or no fixed input size (the copy failing
                only drops it).
        """
        if classifier.input_size is None:
            raise ModelStructureError(
                "model: the encoding probe needs a model with a fixed input size")
        height, width = classifier.input_size
        shape = (int(height), int(width), classifier.channels or 1)
        layer = penultimate_layer(classifier.model, shape)
        try:
            copy = untrained_copy(classifier.model, seed)
            copy_layer = penultimate_layer(copy, shape)
        except ModelStructureError:
            copy, copy_layer = None, None
        return cls(classifier.model, layer, copy, copy_layer)

    def compute(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """``{"model", "untrained", "pixels"}`` features of a prepared batch."""
        out = {"model": penultimate_features(self.model, self.layer, batch)}
        if self.untrained is not None and self.untrained_layer is not None:
            out["untrained"] = penultimate_features(self.untrained, self.untrained_layer,
                                                    batch)
        out["pixels"] = pixel_statistics(batch)
        return out


def collect_features(sets: FeatureSets, classifier: Classifier, films: Sequence[Any],
                     batch_size: int = 32) -> dict[str, np.ndarray]:
    """The feature sets of ``films`` (files or arrays), loaded and prepared batch by batch.

    Example:
        >>> sets = FeatureSets.of(clf, seed=0)
        >>> collect_features(sets, clf, ["a.png", "b.png"], batch_size=1)["model"].shape
        (2, 8)
    """
    parts = [sets.compute(classifier.prepare(list(films[start : start + batch_size])))
             for start in range(0, len(films), batch_size)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
