"""BatchNormalization statistics recomputed for the final weights (`recalibrate_batchnorm`).

The reference is written out in NumPy: each layer's input is recomputed batch by batch with
the previous layer normalised by its own batch's mean and variance (training mode), and the
expected statistics are the size-weighted means of the batch means and batch variances.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cxrexplain.errors import InvalidInputError
from cxrexplain.training import recalibrate_batchnorm as recalibrate


def _model(frozen_first: bool = False) -> keras.Model:
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    bn1 = model.get_layer("bn1")  # statistics far from any data, as after a lagging average
    bn1.gamma.assign(np.array([1.5, 0.5, 2.0], np.float32))
    bn1.beta.assign(np.array([0.1, -0.2, 0.3], np.float32))
    bn1.trainable = not frozen_first
    return model


def _conv(layer: keras.layers.Layer, x: np.ndarray) -> np.ndarray:
    return np.asarray(layer(x))


def _reference(model: keras.Model, images: np.ndarray, batch: int, *, frozen_first: bool
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    bn1 = model.get_layer("bn1")
    gamma, beta = bn1.gamma.numpy(), bn1.beta.numpy()
    fixed = (bn1.moving_mean.numpy(), bn1.moving_variance.numpy())
    stats: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {"bn1": [], "bn2": []}
    for start in range(0, len(images), batch):
        part = images[start : start + batch]
        a = _conv(model.get_layer("conv1"), part).astype(np.float64)
        stats["bn1"].append((len(part), a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2))))
        mean, var = fixed if frozen_first else (a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2)))
        h = np.maximum((a - mean) / np.sqrt(var + bn1.epsilon) * gamma + beta, 0.0)
        b = _conv(model.get_layer("conv2"), h.astype(np.float32)).astype(np.float64)
        stats["bn2"].append((len(part), b.mean(axis=(0, 1, 2)), b.var(axis=(0, 1, 2))))
    result = {}
    for name, rows in stats.items():
        weights = np.array([n for n, _, _ in rows], float) / len(images)
        result[name] = (sum(w * m for w, (_, m, _) in zip(weights, rows, strict=True)),
                        sum(w * v for w, (_, _, v) in zip(weights, rows, strict=True)))
    return result


@pytest.mark.parametrize("batch", [4, 7, 64])
def test_statistics_are_the_population_of_training_mode_batches(batch: int) -> None:
    images = np.random.default_rng(0).uniform(size=(18, 8, 8, 1)).astype(np.float32)
    model = _model()
    expected = _reference(model, images, batch, frozen_first=False)
    kept = [w.numpy().copy() for w in model.trainable_weights]
    assert recalibrate(model, images, batch_size=batch) == 2
    for name in ("bn1", "bn2"):
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean.numpy(), expected[name][0],
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), expected[name][1],
                                   rtol=1e-4, atol=1e-5)
        assert layer.momentum == 0.9  # put back
    for before, after in zip(kept, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())


def test_one_batch_makes_inference_equal_training_mode() -> None:
    images = np.random.default_rng(1).uniform(size=(10, 8, 8, 1)).astype(np.float32)
    model = _model()
    training = np.asarray(model(images, training=True))
    assert not np.allclose(np.asarray(model(images, training=False)), training, atol=1e-3)
    recalibrate(model, images, batch_size=10)
    np.testing.assert_allclose(np.asarray(model(images, training=False)), training,
                               rtol=1e-4, atol=1e-5)


def test_frozen_layers_keep_their_statistics() -> None:
    images = np.random.default_rng(2).uniform(size=(12, 8, 8, 1)).astype(np.float32)
    model = _model(frozen_first=True)
    bn1 = model.get_layer("bn1")
    before = bn1.moving_mean.numpy().copy(), bn1.moving_variance.numpy().copy()
    expected = _reference(model, images, 5, frozen_first=True)
    assert recalibrate(model, images, batch_size=5) == 1
    np.testing.assert_array_equal(bn1.moving_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn1.moving_variance.numpy(), before[1])
    np.testing.assert_allclose(model.get_layer("bn2").moving_mean.numpy(), expected["bn2"][0],
                               rtol=1e-4, atol=1e-5)


def test_nested_models_and_no_batchnorm() -> None:
    images = np.random.default_rng(3).uniform(size=(6, 8, 8, 1)).astype(np.float32)
    inner = _model()
    outer = keras.Sequential([keras.Input((8, 8, 1)), inner])
    assert recalibrate(outer, images) == 2
    plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    assert recalibrate(plain, images) == 0


@pytest.mark.parametrize(("images", "batch_size"), [(np.zeros((0, 8, 8, 1)), 4),
                                                    (np.zeros((2, 8, 8, 1)), 0)])
def test_bad_arguments(images: np.ndarray, batch_size: int) -> None:
    with pytest.raises(InvalidInputError):
        recalibrate(_model(), images, batch_size=batch_size)
