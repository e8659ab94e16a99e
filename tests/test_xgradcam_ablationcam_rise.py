"""XGrad-CAM, Ablation-CAM and RISE against NumPy re-derivations of the published formulas
(Fu et al. 2020 and Desai & Ramaswamy 2020 as pytorch-grad-cam computes them; Petsiuk et al.
2018 as the authors' ``explain``), on gradients, ablated passes and masked passes taken outside
the library."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import cam_model, random_images, two_conv_model

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError


def _upper(model: keras.Model, activations: tf.Tensor) -> tf.Tensor:
    """:func:`two_conv_model` above its ``target`` layer, the logits (before softmax)."""
    pool, after, gap, head = (model.get_layer(n) for n in ("pool", "after", "gap", "head"))
    return tf.matmul(gap(after(pool(activations))), head.kernel) + head.bias


def _activations_and_gradients(model: keras.Model, images: np.ndarray, targets: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features = keras.Model(model.inputs, model.get_layer("target").output)
    a = tf.constant(features(images))
    with tf.GradientTape() as tape:
        tape.watch(a)
        logits = _upper(model, a)
        total = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
    return a.numpy(), tape.gradient(total, a).numpy(), logits.numpy()


def _xgradcam_numpy(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's ``XGradCAM.get_cam_weights``, channels last, then the CAM."""
    sums = a.sum(axis=(1, 2))
    weights = (g * a / (sums[:, None, None, :] + 1e-7)).sum(axis=(1, 2))
    return np.maximum(np.einsum("nhwk,nk->nhw", a, weights), 0.0)


def test_xgradcam_matches_the_published_weights() -> None:
    model = two_conv_model(3, "softmax")
    images = random_images(4, seed=3)
    targets = np.array([0, 2, 1, 2])
    a, g, _ = _activations_and_gradients(model, images, targets)
    expected = _xgradcam_numpy(a, g)
    exp = cx.XGradCAM(model, layer="target").explain(images, targets=targets)
    assert expected.max() > 0
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-6 * expected.max())
    gradcam = cx.GradCAM(model, layer="target").explain(images, targets=targets).raw
    assert not np.allclose(gradcam, exp.raw, rtol=0.05)  # another weighting than Grad-CAM's


def _ablation_weights_numpy(model: keras.Model, a: np.ndarray, targets: np.ndarray
                            ) -> np.ndarray:
    """pytorch-grad-cam's ``AblationCAM.get_cam_weights``: one ablated pass per channel."""
    original = _upper(model, tf.constant(a)).numpy()[np.arange(len(a)), targets]
    weights = np.zeros(a.shape[::3], np.float32)
    for k in range(a.shape[-1]):
        ablated = a.copy()
        ablated[..., k] = 0.0
        score = _upper(model, tf.constant(ablated)).numpy()[np.arange(len(a)), targets]
        weights[:, k] = (original - score) / original
    return weights


@pytest.mark.parametrize("ablation_batch_size", [64, 3])
def test_ablationcam_matches_the_published_weights(ablation_batch_size: int) -> None:
    model = two_conv_model(3, "softmax")
    images = random_images(4, seed=4)
    targets = np.array([1, 0, 2, 2])
    a, _, _ = _activations_and_gradients(model, images, targets)
    expected = _ablation_weights_numpy(model, a, targets)
    explainer = cx.AblationCAM(model, layer="target", ablation_batch_size=ablation_batch_size)
    weights = explainer.weights(tf.constant(images), tf.constant(a), tf.constant(targets))
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-5)
    exp = explainer.explain(images, targets=targets)
    reference = np.maximum(np.einsum("nhwk,nk->nhw", a, expected), 0.0)
    assert reference.max() > 0
    np.testing.assert_allclose(exp.raw, reference, rtol=1e-4, atol=1e-5 * reference.max())
    assert explainer._cut is True  # a chain: only the part above the layer ran


def test_ablationcam_top_channels_and_the_whole_model_around_a_skip() -> None:
    keras.utils.set_random_seed(5)
    inputs = keras.Input((12, 12, 1))
    first = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="first")(inputs)
    target = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="target")(first)
    joined = keras.layers.Add(name="skip")([target, first])  # 'first' also feeds the upper part
    pooled = keras.layers.GlobalAveragePooling2D()(joined)
    head = keras.layers.Dense(2, activation="softmax", name="head")
    model = keras.Model(inputs, head(pooled))
    images = random_images(3, size=12, seed=6)
    targets = np.array([0, 1, 1])
    first_out = keras.Model(inputs, first)(images)
    a = np.asarray(keras.Model(inputs, target)(images))

    def upper(acts: np.ndarray) -> np.ndarray:
        pooled = tf.reduce_mean(acts + first_out, axis=[1, 2])
        return (tf.matmul(pooled, head.kernel) + head.bias).numpy()[np.arange(3), targets]

    original = upper(a)
    expected = np.zeros((3, 4), np.float32)
    top = np.argsort(-a.mean(axis=(1, 2)), axis=1, kind="stable")[:, :2]
    for n in range(3):
        for k in top[n]:
            ablated = a.copy()
            ablated[n, ..., k] = 0.0
            expected[n, k] = (original[n] - upper(ablated)[n]) / original[n]
    explainer = cx.AblationCAM(model, layer="target", max_channels=2)
    weights = explainer.weights(tf.constant(images), tf.constant(a), tf.constant(targets))
    assert explainer._cut is False  # the cut pass would lose the skip: the whole model ran
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-5)
    assert (weights != 0).sum(axis=1).max() <= 2


def test_ablationcam_leaves_the_model_as_it_was() -> None:
    model = cam_model(3, "softmax")
    images = random_images(2, seed=1)
    before = model.predict(images, verbose=0)
    cx.AblationCAM(model).explain(images)
    assert all("call" not in vars(layer) for layer in model.layers)
    np.testing.assert_array_equal(model.predict(images, verbose=0), before)


# ----------------------------------------------------------------------------- RISE
def test_rise_matches_a_numpy_loop_over_its_masks() -> None:
    model = cam_model(3, "softmax")
    images = random_images(3, seed=8)
    targets = np.array([2, 0, 1])
    explainer = cx.RISE(model, samples=40, grid=4, probability=0.4, seed=7, mask_batch_size=7)
    masks = explainer.masks((16, 16))
    assert masks.shape == (40, 16, 16)
    saliency = np.zeros((3, 16, 16))
    for mask in masks:  # the authors' explain(): one masked forward pass per mask
        probabilities = np.asarray(model(images * mask[None, :, :, None]))
        saliency += probabilities[np.arange(3), targets][:, None, None] * mask[None]
    saliency /= 40 * 0.4
    exp = explainer.explain(images, targets=targets)
    np.testing.assert_allclose(exp.raw, saliency, rtol=1e-4, atol=1e-6)
    expected = saliency / saliency.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(exp.heatmaps, expected, rtol=1e-4, atol=1e-5)


def test_rise_masks_are_the_papers_upsampled_shifted_grids() -> None:
    explainer = cx.RISE(cam_model(), samples=300, grid=5, probability=0.3, seed=2)
    grids, shifts = explainer.mask_parameters((16, 16))
    cell = 4  # ceil(16 / 5)
    assert set(np.unique(grids)) == {0.0, 1.0}
    assert abs(grids.mean() - 0.3) < 0.03
    assert shifts.min() == 0 and shifts.max() == cell - 1
    masks = explainer.masks((16, 16), 10, 20)
    for i, mask in zip(range(10, 20), masks, strict=True):
        up = cv2.resize(grids[i], (6 * cell, 6 * cell), interpolation=cv2.INTER_LINEAR)
        dy, dx = shifts[i]
        np.testing.assert_allclose(mask, up[dy:dy + 16, dx:dx + 16], atol=1e-5)
    again = cx.RISE(cam_model(), samples=300, grid=5, probability=0.3, seed=2)
    np.testing.assert_array_equal(again.masks((16, 16), 10, 20), masks)
    other = cx.RISE(cam_model(), samples=300, grid=5, probability=0.3, seed=3)
    assert not np.array_equal(other.masks((16, 16), 10, 20), masks)


def test_rise_points_at_the_patch_the_model_reads() -> None:
    from tiny_models import PLANTED_CENTER, patch_model, planted

    films, labels, _ = planted(4)
    model = patch_model(*PLANTED_CENTER)
    exp = cx.RISE(model, samples=500, grid=8, seed=0).explain(films[labels == 1], targets=1)
    inside = exp.heatmaps[:, PLANTED_CENTER[0], PLANTED_CENTER[1]].mean()
    assert inside > np.quantile(exp.heatmaps, 0.95), (inside, np.quantile(exp.heatmaps, 0.95))


@pytest.mark.parametrize("bad", [{"samples": 0}, {"grid": 0}, {"probability": 0.0},
                                 {"probability": 1.5}, {"seed": -1}, {"mask_batch_size": 0}])
def test_rise_rejects_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        cx.RISE(cam_model(), **bad)  # type: ignore[arg-type]


def test_registered_with_aliases() -> None:
    assert cx.get_explainer("XGrad-CAM") is cx.XGradCAM
    assert cx.get_explainer("ablation-cam") is cx.AblationCAM
    assert cx.get_explainer("rise") is cx.RISE
    assert {"xgradcam", "ablationcam", "rise"} <= set(cx.explainers())
