"""The input-gradient explainers against independent references: gradients taken by hand
with ``tf.GradientTape`` on a copy of the model whose head has no softmax, NumPy
re-derivations (a linear model, a tanh network, a two-layer ReLU network by the guided rule),
Integrated Gradients' completeness, the user's model unchanged by Guided Backprop, Guided
Grad-CAM = Guided Backprop x Grad-CAM, and the registry and command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import cam_model, nested_vgg16, random_images

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError, ModelStructureError

NEW = ["saliency", "gradient_input", "smoothgrad", "integrated_gradients", "smooth_ig",
       "guided_backprop", "guided_gradcam"]


# ---------------------------------------------------------------- references
def _logit_twin(model: keras.Model) -> keras.Model:
    """The same network and weights with a linear head: its outputs are the scores."""
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    twin.layers[-1].activation = keras.activations.linear
    return twin


def _hand_gradients(twin: keras.Model, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = tf.gather(twin(x, training=False), targets, axis=1, batch_dims=1)
        total = tf.reduce_sum(scores)
    return np.asarray(tape.gradient(total, x))


def _scores(twin: keras.Model, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    logits = np.asarray(twin(images, training=False), np.float64)
    return logits[np.arange(len(images)), targets]


RGB = {"channels": 3, "size": 16}


# ---------------------------------------------------------------- Saliency, Gradient x Input
def test_saliency_is_the_max_magnitude_over_channels_of_the_hand_gradient() -> None:
    model = cam_model(3, "softmax", **RGB)
    images = random_images(3, 16, 3, seed=1)
    targets = np.array([0, 2, 1])
    hand = _hand_gradients(_logit_twin(model), images, targets)
    exp = cx.Saliency(model).explain(images, targets=targets)
    np.testing.assert_allclose(exp.raw, np.abs(hand).max(axis=-1), rtol=1e-4, atol=1e-7)
    peak = np.abs(hand).max(axis=(1, 2, 3))[:, None, None]
    np.testing.assert_allclose(exp.heatmaps, np.abs(hand).max(axis=-1) / peak, atol=1e-5)
    signed = cx.Saliency(model, absolute=False)
    np.testing.assert_allclose(signed.attributions(images, targets), hand, rtol=1e-4,
                               atol=1e-7)
    np.testing.assert_allclose(signed.explain(images, targets).raw,
                               np.maximum(hand.sum(axis=-1), 0), rtol=1e-4, atol=1e-7)


def test_gradient_input_is_the_hand_gradient_times_the_film() -> None:
    model = cam_model(3, "softmax", **RGB)
    images = random_images(3, 16, 3, seed=2)
    targets = np.array([1, 1, 0])
    hand = _hand_gradients(_logit_twin(model), images, targets) * images
    explainer = cx.GradientInput(model)
    np.testing.assert_allclose(explainer.attributions(images, targets), hand, rtol=1e-4,
                               atol=1e-7)
    np.testing.assert_allclose(explainer.explain(images, targets).raw,
                               np.maximum(hand.sum(axis=-1), 0), rtol=1e-4, atol=1e-7)
    absolute = cx.GradientInput(model, absolute=True).explain(images, targets).raw
    np.testing.assert_allclose(absolute, np.abs(hand).sum(axis=-1), rtol=1e-4, atol=1e-7)


def test_sigmoid_target_zero_differentiates_the_negated_logit() -> None:
    model = cam_model(1, "sigmoid")
    images = random_images(2, seed=3)
    one = cx.Saliency(model, absolute=False).attributions(images, targets=1)
    zero = cx.Saliency(model, absolute=False).attributions(images, targets=0)
    np.testing.assert_allclose(zero, -one, atol=1e-7)
    np.testing.assert_allclose(one, _hand_gradients(_logit_twin(model), images,
                                                    np.zeros(2, np.int64)), rtol=1e-4,
                               atol=1e-7)


# ---------------------------------------------------------------- SmoothGrad
def test_smoothgrad_is_the_mean_hand_gradient_over_the_seeded_noise() -> None:
    model = cam_model(3, "softmax", **RGB)
    images = random_images(2, 16, 3, seed=4)
    images[1] *= 0.5  # another range, another sigma
    targets = np.array([2, 0])
    samples, noise, seed = 5, 0.2, 7
    draws = np.random.default_rng(seed).standard_normal((samples, 16, 16, 3), dtype=np.float32)
    sigma = noise * (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))
    twin = _logit_twin(model)
    hand = np.mean([_hand_gradients(twin, images + sigma[:, None, None, None] * draws[s],
                                    targets) for s in range(samples)], axis=0)
    explainer = cx.SmoothGrad(model, samples=samples, noise=noise, seed=seed,
                              sample_batch_size=3)  # chunks cut across films
    np.testing.assert_allclose(explainer.attributions(images, targets), hand, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(explainer.explain(images, targets).raw,
                               np.abs(hand).max(axis=-1), rtol=1e-4, atol=1e-6)
    other = cx.SmoothGrad(model, samples=samples, noise=noise, seed=seed + 1)
    assert not np.allclose(other.attributions(images, targets), hand, atol=1e-4)


# ---------------------------------------------------------------- Integrated Gradients
def _tanh_network(size: int = 6, seed: int = 0) -> tuple[keras.Model, list[np.ndarray]]:
    """Flatten -> Dense(5, tanh) -> Dense(2, softmax), weights returned for NumPy."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((size, size, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(2, activation="softmax")])
    return model, [np.asarray(w, np.float64) for w in model.get_weights()]


def _numpy_ig(weights: list[np.ndarray], image: np.ndarray, baseline: np.ndarray, target: int,
              alphas: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """IG of the tanh network, its gradient derived by hand: (w2_t * (1 - h^2)) @ W1^T."""
    w1, b1, w2, _ = weights
    x, b = image.ravel().astype(np.float64), baseline.ravel().astype(np.float64)
    total = np.zeros_like(x)
    for alpha, weight in zip(alphas, quad, strict=True):
        hidden = np.tanh((b + alpha * (x - b)) @ w1 + b1)
        total += weight * (w1 @ (w2[:, target] * (1.0 - hidden**2)))
    return ((x - b) * total).reshape(image.shape)


@pytest.mark.parametrize("rule", ["trapezoid", "left", "right", "midpoint"])
def test_integrated_gradients_match_a_numpy_rederivation(rule: str) -> None:
    model, weights = _tanh_network()
    images = random_images(3, 6, seed=5)
    given = np.full((6, 6, 1), 0.3, np.float32)
    for baseline in ("black", given):
        explainer = cx.IntegratedGradients(model, steps=7, rule=rule, baseline=baseline,
                                           sample_batch_size=5)
        alphas, quad = explainer.quadrature()
        assert np.isclose(quad.sum(), 1.0)
        start = np.zeros((6, 6, 1)) if isinstance(baseline, str) else given
        got = explainer.attributions(images, targets=[0, 1, 1])
        for i, target in enumerate([0, 1, 1]):
            np.testing.assert_allclose(got[i], _numpy_ig(weights, images[i], start, target,
                                                         alphas, quad), rtol=1e-4, atol=1e-6)


def test_quadrature_rules() -> None:
    from cxrexplain.explain.integrated_gradients import quadrature

    np.testing.assert_allclose(quadrature("right", 4)[0], [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(quadrature("left", 4)[0], [0.0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(quadrature("midpoint", 2)[0], [0.25, 0.75])
    np.testing.assert_allclose(quadrature("trapezoid", 5)[1], [0.125, 0.25, 0.25, 0.25, 0.125])


def test_integrated_gradients_are_exact_on_a_linear_model() -> None:
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5, 5, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    kernel = np.asarray(model.layers[-1].kernel, np.float64)
    images = random_images(2, 5, 3, seed=6)
    got = cx.IntegratedGradients(model, steps=2, rule="left").attributions(images, [2, 0])
    expected = images.reshape(2, -1) * kernel[:, [2, 0]].T  # (x - 0) * w_t
    np.testing.assert_allclose(got.reshape(2, -1), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rule", ["trapezoid", "midpoint"])
@pytest.mark.parametrize("baseline", ["black", "blurred"])
def test_integrated_gradients_completeness_on_a_small_cnn(rule: str, baseline: str) -> None:
    keras.utils.set_random_seed(2)
    model = keras.Sequential([  # Flatten, not pooling: the blur's change is not averaged away
        keras.Input((16, 16, 1)), keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    head = model.layers[-1]
    head.set_weights([head.get_weights()[0] * 20, head.get_weights()[1]])  # logits of ~1
    images = random_images(4, 16, seed=7) * 0.3
    images[:, 2:8, 3:10] += 0.7  # a bright patch: far from black and from its blur
    explainer = cx.IntegratedGradients(model, steps=64, rule=rule, baseline=baseline)
    twin = _logit_twin(model)
    start = explainer.baselines(images)
    targets = np.argmax(np.abs(np.asarray(twin(images)) - np.asarray(twin(start))), axis=1)
    values = explainer.attributions(images, targets).astype(np.float64)
    gap = _scores(twin, images, targets) - _scores(twin, start, targets)
    assert (np.abs(gap) > 0.2).all(), gap
    # a ReLU network's score has kinks along the path, which the quadrature smooths over: the
    # black path meets them at 1 %; the shorter blurred one's gaps are smaller, so relatively
    # larger (1.4 % on one film at 64 steps), and the error shrinks with the steps
    np.testing.assert_allclose(values.sum(axis=(1, 2, 3)), gap,
                               rtol=0.01 if baseline == "black" else 0.02)
    if baseline == "blurred":
        finer = cx.IntegratedGradients(model, steps=256, rule=rule, baseline=baseline)
        error = np.abs(finer.attributions(images, targets).sum(axis=(1, 2, 3)) - gap)
        assert (error <= 0.005 * np.abs(gap)).all(), error / np.abs(gap)


def test_blurred_baseline_is_a_gaussian_blur_of_each_film() -> None:
    images = random_images(3, 16, 3, seed=8)
    explainer = cx.IntegratedGradients(cam_model(3, "softmax", **RGB), baseline="blurred",
                                       blur_sigma=0.1)
    expected = np.stack([cv2.GaussianBlur(image, (0, 0), sigmaX=1.6,
                                          borderType=cv2.BORDER_REFLECT_101)
                         for image in images])
    np.testing.assert_allclose(explainer.baselines(images), expected, atol=1e-6)


def test_smooth_ig_is_the_mean_ig_of_the_noisy_films() -> None:
    model, weights = _tanh_network(seed=3)
    images = random_images(2, 6, seed=9)
    samples, noise, seed = 3, 0.1, 4
    explainer = cx.SmoothIG(model, samples=samples, noise=noise, seed=seed, steps=5)
    alphas, quad = explainer.quadrature()
    draws = np.random.default_rng(seed).standard_normal((samples, 6, 6, 1), dtype=np.float32)
    sigma = noise * (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))
    got = explainer.attributions(images, targets=1)
    for i in range(2):
        expected = np.mean([_numpy_ig(weights, images[i] + sigma[i] * draws[s],
                                      np.zeros((6, 6, 1)), 1, alphas, quad)
                            for s in range(samples)], axis=0)
        np.testing.assert_allclose(got[i], expected, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- Guided Backprop
def _two_layer(form: str) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """(2, 2, 1) -> Flatten -> Dense(3) -> ReLU in ``form`` -> Dense(2, softmax), fixed weights."""
    w1 = np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -1.0], [-1.0, 0.5, 1.0], [1.0, 1.0, 1.0]],
                  np.float32)
    w2 = np.array([[2.0, -1.0], [-3.0, 1.0], [1.0, 2.0]], np.float32)
    inputs = keras.Input((2, 2, 1))
    x = keras.layers.Flatten()(inputs)
    hidden = keras.layers.Dense(3, activation="relu" if form == "inside" else None)
    x = hidden(x)
    if form == "activation":
        x = keras.layers.Activation("relu")(x)
    elif form == "layer":
        x = keras.layers.ReLU()(x)
    head = keras.layers.Dense(2, activation="softmax")
    model = keras.Model(inputs, head(x))
    hidden.set_weights([w1, np.array([0.1, -0.2, 0.0], np.float32)])
    head.set_weights([w2, np.zeros(2, np.float32)])
    return model, w1, w2


@pytest.mark.parametrize("form", ["inside", "activation", "layer"])
def test_guided_backprop_on_a_hand_computed_two_layer_net(form: str) -> None:
    model, w1, w2 = _two_layer(form)
    image = np.array([[[0.9], [0.3]], [[0.4], [0.7]]], np.float32)
    z = image.ravel() @ w1 + np.array([0.1, -0.2, 0.0])  # [1.45, 0.1, 1.25]: all active
    image2 = np.array([[[0.1], [0.9]], [[0.8], [0.1]]], np.float32)
    z2 = image2.ravel() @ w1 + np.array([0.1, -0.2, 0.0])  # unit 0 inactive
    assert (z > 0).all() and z2[0] < 0 < z2[1]
    got = cx.GuidedBackprop(model, absolute=False).attributions(np.stack([image, image2]),
                                                                targets=0)
    for i, pre in enumerate((z, z2)):
        guided = (pre > 0) * np.maximum(w2[:, 0], 0)  # ReLU'(z) * ReLU(upstream)
        np.testing.assert_allclose(got[i].ravel(), w1 @ guided, atol=1e-6)
        plain = w1 @ ((pre > 0) * w2[:, 0])
        assert not np.allclose(got[i].ravel(), plain)  # the rule changed something


def _layer_state(model: keras.Model) -> list[tuple[str, Any, bool]]:
    from cxrexplain._keras_utils import leaf_layers

    return [(path, getattr(layer, "activation", None), "call" in vars(layer))
            for path, layer in leaf_layers(model)]


@pytest.mark.parametrize("method", ["guided_backprop", "guided_gradcam"])
def test_guided_methods_leave_the_model_unchanged(method: str) -> None:
    model = cam_model(3, "softmax")
    images = random_images(3, seed=10)
    state = _layer_state(model)
    twin = _logit_twin(model)
    before = cx.Saliency(model, absolute=False).attributions(images, targets=1)
    tape_before = _hand_gradients(model, images, np.ones(3, np.int64))
    cx.get_explainer(method)(model).explain(images, targets=1)
    assert _layer_state(model) == state
    np.testing.assert_array_equal(cx.Saliency(model, absolute=False).attributions(images, 1),
                                  before)
    np.testing.assert_array_equal(_hand_gradients(model, images, np.ones(3, np.int64)),
                                  tape_before)
    np.testing.assert_allclose(before, _hand_gradients(twin, images, np.ones(3, np.int64)),
                               rtol=1e-4, atol=1e-7)


def test_guided_backprop_finds_every_relu_of_a_nested_backbone() -> None:
    from cxrexplain.explain._gradients import guided_relu_hooks

    keras.utils.set_random_seed(0)
    model = nested_vgg16()
    hooks = guided_relu_hooks(model, "GuidedBackprop")
    assert len(hooks) == 13  # VGG16's 13 convolutions, activation="relu" inside each
    images = random_images(2, 32, 3, seed=11)
    exp = cx.GuidedBackprop(model).explain(images)
    assert np.isfinite(exp.heatmaps).all() and exp.heatmaps.max() == 1.0
    assert all("call" not in vars(layer) for layer, _ in hooks)


def test_model_without_relu_is_refused_clearly() -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(2, 3, activation="tanh"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ModelStructureError, match="ReLU"):
        cx.GuidedBackprop(model)
    with pytest.raises(ModelStructureError, match="ReLU"):
        cx.GuidedGradCAM(model)
    cx.Saliency(model).explain(random_images(1, 8))  # the others still work


def test_guided_gradcam_is_guided_backprop_times_upsampled_gradcam() -> None:
    model = cam_model(3, "softmax", **RGB)
    images = random_images(3, 16, 3, seed=12)
    targets = np.array([0, 1, 2])
    gradcam = cx.GradCAM(model).explain(images, targets)
    assert gradcam.raw.shape == (3, 8, 8)  # upsampled 2x
    up = np.stack([cv2.resize(m, (16, 16), interpolation=cv2.INTER_LINEAR) for m in gradcam.raw])
    up = up / up.max(axis=(1, 2), keepdims=True)
    guided = cx.GuidedBackprop(model, absolute=False).attributions(images, targets)
    exp = cx.GuidedGradCAM(model).explain(images, targets)
    assert exp.layer == gradcam.layer == "last_conv" and exp.method == "guided_gradcam"
    expected = np.abs(guided * up[..., None]).max(axis=-1)
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-6)
    first = model.layers[0]
    inner = cx.GuidedGradCAM(model, layer=first).explain(images, targets)
    assert inner.layer == first.name and not np.allclose(inner.raw, exp.raw)


# ---------------------------------------------------------------- pipeline, registry, CLI
@pytest.mark.parametrize("method", NEW)
def test_registered_exported_and_in_the_command(method: str, capsys: pytest.CaptureFixture[str]
                                                ) -> None:
    from cxrexplain.cli import main

    cls = cx.explainers()[method]
    assert getattr(cx, cls.__name__) is cls
    assert main(["methods", "--json"]) == 0
    assert method in json.loads(capsys.readouterr().out)


def test_the_command_explains_and_evaluates_with_them(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from cxrexplain.cli import main

    model = cam_model(2, "softmax", size=16)
    saved = cx.Classifier(model, ["NORMAL", "PNEUMONIA"]).save(tmp_path / "m.keras")
    films = tmp_path / "films"
    films.mkdir()
    for i, image in enumerate(random_images(3, 16, seed=15)):
        cv2.imwrite(str(films / f"f{i}.png"), np.round(image[..., 0] * 255).astype(np.uint8))
    out = tmp_path / "out"
    assert main(["explain", str(saved), str(films), "--out", str(out), "--method",
                 "Integrated-Gradients", "--no-progress"]) == 0
    assert len(list((out / "overlays").glob("*.png"))) == 3
    capsys.readouterr()
    assert main(["evaluate", str(saved), str(films), "--methods", "saliency,smoothgrad,"
                 "guided_gradcam", "--steps", "4", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {"saliency", "smoothgrad", "guided_gradcam"} <= {row["method"] for row in rows}


def test_names_of_the_design() -> None:
    assert {cx.Saliency, cx.GradientInput, cx.SmoothGrad, cx.IntegratedGradients, cx.SmoothIG,
            cx.GuidedBackprop, cx.GuidedGradCAM} == {cx.get_explainer(n) for n in NEW}
    assert cx.get_explainer("IG") is cx.IntegratedGradients
    assert cx.get_explainer("Guided-Grad-CAM") is cx.GuidedGradCAM


def test_mixed_float16_attributions_are_float32_and_match() -> None:
    images = random_images(2, seed=13)
    reference = cam_model(3, "softmax")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = cam_model(3, "softmax", head_dtype="float32")
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(reference.get_weights())
    for cls in (cx.IntegratedGradients, cx.GuidedBackprop):
        got = cls(mixed).attributions(images, targets=1)
        want = cls(reference).attributions(images, targets=1)
        assert got.dtype == np.float32 and np.isfinite(got).all()
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


def test_samples_of_many_films_run_in_chunks_not_per_film(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    explainer = cx.IntegratedGradients(cam_model(3, "softmax"), steps=10, sample_batch_size=25)
    run = explainer._path_function(True, (16, 16, 1))
    calls: list[int] = []

    def counting(*args: Any) -> Any:
        calls.append(int(args[5].shape[0]))
        return run(*args)

    monkeypatch.setattr(explainer, "_path_function", lambda times_delta, shape: counting)
    explainer.explain(random_images(5, seed=14), batch_size=5)
    assert calls == [25, 25]  # 5 films x 10 steps in two passes


def test_for_model_keeps_the_settings() -> None:
    explainer = cx.SmoothGrad(cam_model(3, "softmax"), samples=3, noise=0.1, seed=2)
    twin = explainer.for_model(cam_model(3, "softmax"))
    assert (twin.samples, twin.noise, twin.seed) == (3, 0.1, 2)
    ig = cx.IntegratedGradients(cam_model(3, "softmax"), steps=9, rule="left",
                                baseline="blurred")
    assert ig.for_model(cam_model(3, "softmax"))._options() == ig._options()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda m: cx.IntegratedGradients(m, rule="simpson"), "rule"),
        (lambda m: cx.IntegratedGradients(m, steps=1), "steps"),
        (lambda m: cx.IntegratedGradients(m, baseline="white"), "baseline"),
        (lambda m: cx.IntegratedGradients(m, baseline=np.zeros((4,))), "baseline"),
        (lambda m: cx.SmoothGrad(m, samples=0), "samples"),
        (lambda m: cx.SmoothGrad(m, noise=-0.1), "noise"),
        (lambda m: cx.Saliency(m, absolute="yes"), "absolute"),
        (lambda m: cx.Saliency(m, layer="last_conv"), "reads no layer"),
        (lambda m: cx.SmoothIG(m, sample_batch_size=0), "sample_batch_size"),
    ],
)
def test_bad_settings(build: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        build(cam_model(3, "softmax"))


def test_baseline_array_of_the_wrong_shape() -> None:
    explainer = cx.IntegratedGradients(cam_model(3, "softmax"), baseline=np.zeros((8, 8, 1)))
    with pytest.raises(InvalidInputError, match="baseline"):
        explainer.explain(random_images(2))


def test_the_sample_pass_is_shared_and_keeps_no_model_alive() -> None:
    import gc
    import weakref

    from cxrexplain import _passes

    model = cam_model(3, "softmax")
    alive = weakref.ref(model)
    images = random_images(2, seed=16)
    cx.IntegratedGradients(model, steps=4).explain(images)
    traced = _passes.traced(model)
    cx.SmoothGrad(model, samples=3).explain(images)  # the same sample function, another rule
    cx.IntegratedGradients(model, steps=8, rule="left").explain(images)
    assert _passes.traced(model) == traced + 2  # SmoothGrad's forward pass and its gradients
    cx.GuidedGradCAM(model).explain(images)
    del model
    gc.collect()
    assert alive() is None
