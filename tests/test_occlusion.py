"""Occlusion sensitivity against a brute-force NumPy loop and a model that reads one region."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
from tiny_models import conv_gap_dense, random_images

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError


@keras.saving.register_keras_serializable(package="cxrexplain_tests")
class KeepRegion(keras.layers.Layer):
    """Zero everything outside rows/cols [4, 8) of a 16 x 16 map."""

    def call(self, x):  # type: ignore[no-untyped-def]
        mask = np.zeros((1, 16, 16, 1), np.float32)
        mask[:, 4:8, 4:8] = 1.0
        return x * mask


def region_model() -> keras.Model:
    """Class 1's logit grows with the brightness of the 4 x 4 region at rows/cols 4-7."""
    inputs = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(1, 1, use_bias=False, name="conv",
                               kernel_initializer="ones")(inputs)
    kept = KeepRegion()(conv)
    pooled = keras.layers.GlobalAveragePooling2D()(kept)
    dense = keras.layers.Dense(2, activation="softmax")
    outputs = dense(pooled)
    model = keras.Model(inputs, outputs)
    dense.set_weights([np.array([[-20.0, 20.0]], np.float32), np.zeros(2, np.float32)])
    return model


def brute_force(model: Callable[..., Any], images: np.ndarray, target: int, patch: int,
                stride: int, fill: float) -> np.ndarray:
    """The definition, one occluded image at a time: mean drop over covering windows."""
    n, h, w, _ = images.shape
    base = np.asarray(model(images, training=False))[:, target]
    tops = list(range(0, h - patch + 1, stride))
    if tops[-1] + patch < h:
        tops.append(h - patch)
    total = np.zeros((n, h, w))
    count = np.zeros((h, w))
    for top in tops:
        for left in tops:
            hidden = images.copy()
            hidden[:, top:top + patch, left:left + patch] = fill
            drop = base - np.asarray(model(hidden, training=False))[:, target]
            total[:, top:top + patch, left:left + patch] += drop[:, None, None]
            count[top:top + patch, left:left + patch] += 1
    return total / count


@pytest.mark.parametrize(("patch", "stride"), [(4, 2), (5, 3), (3, 3)])
def test_occlusion_matches_the_definition(patch: int, stride: int) -> None:
    model = conv_gap_dense(2, "softmax", size=16, filters=(3,))
    images = random_images(3, 16)
    exp = cx.Occlusion(model, patch=patch, stride=stride, baseline=0.25,
                       mask_batch_size=7).explain(images, targets=1)
    expected = brute_force(model, images, 1, patch, stride, 0.25)
    np.testing.assert_allclose(exp.raw, np.maximum(expected, 0), atol=1e-6)
    peak = np.maximum(expected, 0).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(exp.heatmaps, np.maximum(expected, 0) / np.where(peak, peak, 1),
                               atol=2e-4)


def test_occlusion_finds_the_one_region_the_model_reads() -> None:
    model = region_model()
    images = np.full((2, 16, 16, 1), 0.8, np.float32)
    exp = cx.Occlusion(model, patch=2, stride=2, baseline=0.0).explain(images, targets=1)
    inside = np.zeros((16, 16), bool)
    inside[4:8, 4:8] = True
    assert exp.heatmaps[:, inside].min() > 0.5
    assert exp.heatmaps[:, ~inside].max() == 0.0
    assert exp.layer == "input" and exp.method == "occlusion"


def test_mean_baseline_and_windows_cover_every_pixel() -> None:
    model = conv_gap_dense(2, "softmax", size=16, filters=(3,))
    occ = cx.Occlusion(model, patch=(5, 3), stride=(4, 6))
    patch, tops, lefts = occ.windows((16, 16))
    assert patch == (5, 3) and tops == [0, 4, 8, 11] and lefts == [0, 6, 12, 13]
    images = random_images(2, 16)
    mean = cx.Occlusion(model, patch=4, stride=4, baseline="mean").explain(images, targets=0)
    means = images.mean(axis=(1, 2, 3))
    expected = np.stack([brute_force(model, images[i:i + 1], 0, 4, 4, float(means[i]))[0]
                         for i in range(2)])
    np.testing.assert_allclose(mean.raw, np.maximum(expected, 0), atol=1e-6)


def test_a_model_without_conv_layers() -> None:
    """An input explainer reads no layer: the library's dense baseline (Flatten -> Dense, one
    sigmoid unit), where every class activation map raises, is explained like any model."""
    model = cx.models.build("dense_baseline", input_shape=(16, 16, 1), num_classes=2,
                            hidden=(8,))
    with pytest.raises(cx.ModelStructureError, match="convolutional"):
        cx.GradCAM(model)
    images = random_images(2, 16)
    exp = cx.Occlusion(model, patch=4, stride=4, baseline=0.0).explain(images, targets=[1, 0])
    assert exp.layer == "input" and exp.raw.shape == (2, 16, 16)

    def two_columns(x: np.ndarray, training: bool = False) -> np.ndarray:
        p = np.asarray(model(x, training=training))  # (n, 1): class 1
        return np.concatenate([1.0 - p, p], axis=1)

    expected = np.stack([brute_force(two_columns, images[i:i + 1], t, 4, 4, 0.0)[0]
                         for i, t in enumerate((1, 0))])
    np.testing.assert_allclose(exp.raw, np.maximum(expected, 0), atol=1e-6)
    assert exp.raw.max() > 0


def test_registered_and_default_patch() -> None:
    assert cx.get_explainer("occlusion-sensitivity") is cx.Occlusion
    assert "occlusion" in cx.explainers()
    occ = cx.Occlusion(conv_gap_dense(2, size=24))
    patch, tops, _ = occ.windows((224, 224))
    assert patch == (28, 28) and tops[1] == 14 and tops[-1] == 196


@pytest.mark.parametrize("kwargs", [{"patch": 0}, {"patch": (2, 3, 4)}, {"stride": -1},
                                    {"baseline": 2.0}, {"baseline": "median"},
                                    {"patch": 40}])
def test_bad_settings(kwargs: dict[str, object]) -> None:
    model = conv_gap_dense(2, size=16)
    with pytest.raises(InvalidInputError):
        cx.Occlusion(model, **kwargs).explain(random_images(1, 16))
