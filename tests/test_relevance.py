"""DeepLIFT (rescale) and LRP (epsilon, alpha-beta) against their defining properties and
hand-computed NumPy networks: conservation (LRP on bias-free networks, DeepLIFT's summation to
the score's change), a two-layer dense network and a convolution with a fused batch norm
computed by hand, the structures the rules cover (nested VGG16, gray-to-RGB copies,
preprocessing, mixed precision) and the ones they refuse."""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from tiny_models import cam_model, conv_gap_dense, random_images, small_cam_cnn

import cxrexplain as cx
from cxrexplain.cli import main
from cxrexplain.errors import InvalidInputError, ModelStructureError

NEW = ["xgradcam", "ablationcam", "rise", "deeplift", "lrp"]


def _logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The scores before the final softmax, through a copy of the model with a linear head."""
    head = model.layers[-1]
    inner = keras.Model(model.inputs, head.input)
    return np.asarray(inner(images)) @ np.asarray(head.kernel) + (
        np.asarray(head.bias) if head.use_bias else 0.0)


def _bias_free() -> keras.Sequential:
    keras.utils.set_random_seed(11)
    return keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(6, 3, padding="same", use_bias=False, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(8, 3, use_bias=False),
        keras.layers.ReLU(),
        keras.layers.AveragePooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(3, use_bias=False, activation="softmax"),
    ])


# ------------------------------------------------------------------------ conservation
@pytest.mark.parametrize("options", [{"epsilon": 1e-9},
                                     {"rule": "alpha_beta", "epsilon": 1e-9}])
def test_lrp_conserves_the_score_on_a_bias_free_net(options: dict[str, object]) -> None:
    model = _bias_free()
    images = random_images(4, size=12, seed=2)
    targets = np.array([0, 1, 2, 1])
    relevance = cx.LRP(model, **options).attribute(images, targets)  # type: ignore[arg-type]
    scores = _logits(model, images)[np.arange(4), targets]
    assert np.abs(scores).min() > 1e-2
    np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), scores, rtol=1e-3, atol=1e-5)
    assert (relevance < 0).any() if options.get("rule") != "alpha_beta" else True


def test_lrp_epsilon_absorbs_relevance() -> None:
    model = _bias_free()
    images = random_images(2, size=12, seed=2)
    small = cx.LRP(model, epsilon=1e-9).attribute(images, 0).sum(axis=(1, 2, 3))
    large = cx.LRP(model, epsilon=10.0).attribute(images, 0).sum(axis=(1, 2, 3))
    assert np.all(np.abs(large) < 0.5 * np.abs(small))


@pytest.mark.parametrize("baseline", ["black", "given"])
def test_deeplift_sums_to_the_change_of_the_score(baseline: str) -> None:
    model = small_cam_cnn(3)  # Conv (no bias) -> BN -> ReLU -> MaxPool ..., biases in BN
    rng = np.random.default_rng(0)
    for layer in model.layers:  # batch norms with statistics of their own
        if isinstance(layer, keras.layers.BatchNormalization):
            k = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, k), rng.normal(0, 0.3, k),
                               rng.normal(0, 0.2, k), rng.uniform(0.5, 2, k)])
    head = model.get_layer("predictions")
    head.set_weights([head.get_weights()[0] * 20, np.array([0.3, -0.2, 0.1], np.float32)])
    images = random_images(3, size=24, seed=4)
    reference = (np.zeros((24, 24, 1), np.float32) if baseline == "black"
                 else random_images(1, size=24, seed=9)[0] * 0.5)
    explainer = cx.DeepLIFT(model, baseline=0.0 if baseline == "black" else reference)
    targets = np.array([2, 0, 1])
    contributions = explainer.attribute(images, targets)
    change = (_logits(model, images) - _logits(model, reference[None]))[np.arange(3), targets]
    assert np.abs(change).min() > 1e-2
    np.testing.assert_allclose(contributions.sum(axis=(1, 2, 3)), change, rtol=1e-3,
                               atol=1e-5)
    gradient_x_input = cx.LRP(model, epsilon=1e-9).attribute(images, targets)
    assert not np.allclose(contributions, gradient_x_input, atol=1e-3)  # the rescale rule


# ------------------------------------------------------------------- hand-computed nets
def _dense_net() -> keras.Sequential:
    model = keras.Sequential([
        keras.Input((2, 2, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="relu", name="hidden"),
        keras.layers.Dense(2, activation="softmax", name="out"),
    ])
    model.get_layer("hidden").set_weights([
        np.array([[1.0, -0.5, 0.3], [0.4, 0.8, -1.0], [-0.6, 0.2, 0.9], [0.7, -0.3, 0.5]],
                 np.float32), np.array([0.1, -0.2, 0.05], np.float32)])
    model.get_layer("out").set_weights([
        np.array([[0.8, -0.4], [-0.6, 1.1], [0.5, 0.3]], np.float32),
        np.array([0.2, -0.1], np.float32)])
    return model


def _sign(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0, 1.0, -1.0)


def test_lrp_epsilon_on_a_two_layer_net_by_hand() -> None:
    model = _dense_net()
    w1, b1 = (np.asarray(v, np.float64) for v in model.get_layer("hidden").get_weights())
    w2, b2 = (np.asarray(v, np.float64) for v in model.get_layer("out").get_weights())
    images = np.array([[0.9, 0.1, 0.6, 0.3], [0.2, 0.8, 0.5, 0.7]], np.float32)
    eps = 0.5
    for target in (0, 1):
        expected = []
        for x in images.astype(np.float64):
            z1 = x @ w1 + b1
            h = np.maximum(z1, 0)
            z2 = h @ w2 + b2
            r_h = h * w2[:, target] * z2[target] / (z2[target] + eps * _sign(z2[target]))
            r_x = np.array([sum(x[i] * w1[i, j] * r_h[j] / (z1[j] + eps * _sign(z1[j]))
                                for j in range(3)) for i in range(4)])
            expected.append(r_x)
        relevance = cx.LRP(model, epsilon=eps).attribute(images.reshape(2, 2, 2, 1), target)
        np.testing.assert_allclose(relevance.reshape(2, 4), np.array(expected), rtol=1e-5,
                                   atol=1e-6)


def test_deeplift_on_a_two_layer_net_by_hand() -> None:
    model = _dense_net()
    w1, b1 = (np.asarray(v, np.float64) for v in model.get_layer("hidden").get_weights())
    w2, _ = (np.asarray(v, np.float64) for v in model.get_layer("out").get_weights())
    images = np.array([[0.9, 0.1, 0.6, 0.3], [0.2, 0.8, 0.5, 0.7]], np.float32)
    x0 = np.array([0.5, 0.4, 0.3, 0.6])
    z0 = x0 @ w1 + b1
    expected = []
    for x in images.astype(np.float64):
        z1 = x @ w1 + b1
        slope = (np.maximum(z1, 0) - np.maximum(z0, 0)) / (z1 - z0)  # the rescale rule
        expected.append((x - x0) * (w1 @ (slope * w2[:, 1])))
    explainer = cx.DeepLIFT(model, baseline=x0.reshape(2, 2, 1))
    contributions = explainer.attribute(images.reshape(2, 2, 2, 1), 1)
    np.testing.assert_allclose(contributions.reshape(2, 4), np.array(expected), rtol=1e-5,
                               atol=1e-6)
    gradients = [w1 @ ((x @ w1 + b1 > 0) * w2[:, 1]) for x in images.astype(np.float64)]
    assert not np.allclose(np.array(expected), (images - x0) * np.array(gradients), atol=1e-3)


def _alpha_beta_conv(a: np.ndarray, kernel: np.ndarray, relevance: np.ndarray, alpha: float,
                     beta: float) -> np.ndarray:
    """The alpha-beta rule of a valid, stride-1 convolution, contribution by contribution."""
    kh, kw, _, channels = kernel.shape
    out = np.zeros_like(a)
    for n in range(a.shape[0]):
        for y in range(relevance.shape[1]):
            for x in range(relevance.shape[2]):
                for k in range(channels):
                    contributions = a[n, y:y + kh, x:x + kw, :] * kernel[..., k]
                    positive = np.maximum(contributions, 0)
                    negative = np.minimum(contributions, 0)
                    share = np.zeros_like(contributions)
                    if positive.sum() > 0:
                        share += alpha * positive / positive.sum()
                    if negative.sum() < 0:
                        share -= beta * negative / negative.sum()
                    out[n, y:y + kh, x:x + kw, :] += share * relevance[n, y, x, k]
    return out


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (2.0, 1.0)])
def test_lrp_alpha_beta_on_a_convolution_by_hand(alpha: float, beta: float) -> None:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((5, 5, 1)),
        keras.layers.Conv2D(2, 1, name="pre"),  # linear: the next layer sees both signs
        keras.layers.Conv2D(3, 2, name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2, activation="softmax", name="out"),
    ])
    model.get_layer("pre").set_weights([np.array([[[[1.0, -1.0]]]], np.float32),
                                        np.array([-0.5, 0.5], np.float32)])
    bn = model.get_layer("bn")
    bn.set_weights([np.array([1.5, -0.7, 1.0], np.float32), np.array([0.1, 0.2, -0.1]),
                    np.array([0.05, -0.1, 0.0]), np.array([0.5, 2.0, 1.0])])
    images = random_images(2, size=5, seed=1)
    eps = 1e-3
    f64 = np.float64
    pre_w, pre_b = (np.asarray(v, f64) for v in model.get_layer("pre").get_weights())
    conv_w, conv_b = (np.asarray(v, f64) for v in model.get_layer("conv").get_weights())
    gamma, beta_bn, mean, var = (np.asarray(v, f64) for v in bn.get_weights())
    out_w, out_b = (np.asarray(v, f64) for v in model.get_layer("out").get_weights())
    x = images.astype(f64)
    p = x @ pre_w[0, 0] + pre_b  # (n, 5, 5, 2)
    assert (p < 0).any() and (p > 0).any()
    scale = gamma / np.sqrt(var + bn.epsilon)
    z = np.stack([np.stack([np.einsum("ijc,ijck->k", p[n, r:r + 2, c:c + 2], conv_w)
                            for c in range(4)]) for n in range(2) for r in range(4)])
    z = (z.reshape(2, 4, 4, 3) + conv_b - mean) * scale + beta_bn
    h = np.maximum(z, 0)
    g = h.mean(axis=(1, 2))
    logits = g @ out_w + out_b
    target = 1
    r_g = g * out_w[:, target] * (logits[:, target] / (logits[:, target] + eps * _sign(
        logits[:, target])))[:, None]
    r_h = h / 16 * (r_g / g)[:, None, None, :]  # pooling: in proportion, no epsilon
    r_p = _alpha_beta_conv(p, conv_w * scale, r_h, alpha, beta)
    r_x = _alpha_beta_conv(x, pre_w, r_p, alpha, beta)
    relevance = cx.LRP(model, rule="alpha_beta", alpha=alpha, beta=beta,
                       epsilon=eps).attribute(images, target)
    assert np.abs(r_x).max() > 1e-3
    np.testing.assert_allclose(relevance, r_x, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ structures and errors
def _lambda_model() -> keras.Model:
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="twice")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def _lstm_model() -> keras.Model:
    return keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Reshape((16, 16)),
                             keras.layers.LSTM(4, name="memory"),
                             keras.layers.Dense(2, activation="softmax")])


def _branching_model() -> keras.Model:
    inputs = keras.Input((16, 16, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(a)
    x = keras.layers.Add(name="residual")([a, b])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def _tanh_model() -> keras.Model:
    return keras.Sequential([keras.Input((16, 16, 1)),
                             keras.layers.Conv2D(4, 3, activation="tanh", name="squash"),
                             keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(2, activation="softmax")])


@pytest.mark.parametrize(("build", "named"), [
    (_lambda_model, "layer 'twice' is Lambda"), (_lstm_model, "layer 'memory' is LSTM"),
    (_branching_model, "layer 'residual' is Add"),
    (_tanh_model, "layer 'squash' is Conv2D with a tanh activation")])
@pytest.mark.parametrize("method", ["deeplift", "lrp"])
def test_unsupported_layers_are_named(build: object, named: str, method: str) -> None:
    with pytest.raises(ModelStructureError, match=named):
        cx.get_explainer(method)(build())  # type: ignore[operator]


def test_a_subclassed_model_doing_more_than_its_layers_is_refused() -> None:
    class Doubling(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, activation="relu")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.head = keras.layers.Dense(2, activation="softmax")

        def call(self, x: object) -> object:
            return self.head(self.pool(self.conv(x) * 3.0))  # an operation between layers

    model = Doubling()
    model(np.zeros((1, 16, 16, 1), np.float32))
    clf = cx.Classifier(model, input_size=(16, 16), channels=1)
    with pytest.raises(ModelStructureError, match="differ from the model's"):
        cx.LRP(clf)


def test_bad_settings() -> None:
    model = cam_model()
    with pytest.raises(InvalidInputError, match="rule"):
        cx.LRP(model, rule="gamma")
    with pytest.raises(InvalidInputError, match="alpha - beta = 1"):
        cx.LRP(model, rule="alpha_beta", alpha=2.0, beta=0.0)
    with pytest.raises(InvalidInputError, match="epsilon"):
        cx.LRP(model, epsilon=0.0)
    with pytest.raises(InvalidInputError, match="baseline"):
        cx.DeepLIFT(model, baseline=np.zeros((1, 2, 3, 4)))
    with pytest.raises(InvalidInputError, match="reads no layer"):
        cx.DeepLIFT(model, layer="last_conv")


@pytest.mark.parametrize("method", ["deeplift", "lrp"])
def test_the_users_model_is_left_unchanged(method: str) -> None:
    model = small_cam_cnn(3)
    images = random_images(2, size=24, seed=3)
    before = [w.copy() for w in model.get_weights()]
    outputs = model.predict(images, verbose=0)
    cx.get_explainer(method)(model).explain(images)
    assert all("call" not in vars(layer) for layer in model.layers)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(model.predict(images, verbose=0), outputs)
    assert model.get_layer("predictions").activation is keras.activations.softmax


@pytest.mark.parametrize("channels", [1, 3])
def test_nested_vgg16_builder_conserves(channels: int) -> None:
    keras.utils.set_random_seed(0)  # untrained: zero biases; gray-to-RGB and preprocessing
    model = cx.models.build("vgg16", weights=None, input_shape=(32, 32, channels),
                            num_classes=2)
    images = random_images(2, size=32, channels=channels, seed=5)
    change = _logits(model, images)[:, 1] - _logits(model, np.zeros_like(images[:1]))[:, 1]
    contributions = cx.DeepLIFT(model).attribute(images, 1)
    np.testing.assert_allclose(contributions.sum(axis=(1, 2, 3)), change, rtol=2e-3,
                               atol=1e-5)
    relevance = cx.LRP(model, epsilon=1e-9).attribute(images, 1)
    np.testing.assert_allclose(relevance.sum(axis=(1, 2, 3)), _logits(model, images)[:, 1],
                               rtol=2e-3, atol=1e-5)


def test_the_cam_variants_and_rise_on_the_vgg16_builder() -> None:
    keras.utils.set_random_seed(0)  # DeepLIFT and LRP: test_nested_vgg16_builder_conserves
    model = cx.models.build("vgg16", weights=None, input_shape=(32, 32, 3), num_classes=2)
    clf = cx.Classifier(model, ["NORMAL", "PNEUMONIA"])
    images = random_images(2, size=32, channels=3, seed=6)
    for method in ("xgradcam", "ablationcam", "rise"):
        options = {"samples": 32} if method == "rise" else {}
        exp = cx.get_explainer(method)(clf, **options).explain(images, targets="PNEUMONIA")
        assert exp.heatmaps.shape == (2, 32, 32) and np.isfinite(exp.heatmaps).all(), method
        assert exp.method == method and (exp.targets == 1).all()
    assert cx.AblationCAM(clf).layer == "vgg16/block5_pool"


def test_mixed_float16_is_explained_in_float32() -> None:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = cam_model(3, "softmax", head_dtype="float32")
    finally:
        keras.config.set_dtype_policy(previous)
    reference = cam_model(3, "softmax")
    mixed.set_weights(reference.get_weights())
    images = random_images(2, seed=3)
    for method in ("deeplift", "lrp"):
        got = cx.get_explainer(method)(mixed).attribute(images, 2)
        want = cx.get_explainer(method)(reference).attribute(images, 2)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------- the library's faces
def test_registered_evaluated_and_on_the_command_line(tmp_path: Path) -> None:
    assert set(NEW) <= set(cx.explainers())
    assert cx.get_explainer("Deep-LIFT") is cx.DeepLIFT and cx.get_explainer("LRP") is cx.LRP
    model = conv_gap_dense(2, "softmax", size=16, padding="same")
    clf = cx.Classifier(model, ["NORMAL", "PNEUMONIA"])
    images = random_images(4, size=16, seed=1)
    masks = np.zeros((4, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    methods = [cx.XGradCAM(clf), cx.AblationCAM(clf), cx.RISE(clf, samples=64),
               cx.DeepLIFT(clf), cx.LRP(clf, rule="alpha_beta")]
    table = cx.evaluate_explainers(clf, methods, images, masks=masks, steps=4,
                                   randomization_layers=1, n_resamples=50)
    rows = {row["method"]: row for row in table.to_dict()["rows"]}
    assert set(NEW) <= set(rows)
    saved = clf.save(tmp_path / "m.keras")
    folder = tmp_path / "xrays"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"img{i}.png"),
                    np.random.default_rng(i).integers(0, 256, (20, 20), np.uint8))
    for method in NEW:
        out = tmp_path / method
        assert main(["explain", str(saved), str(folder), "--out", str(out), "--method",
                     method, "--no-progress"]) == 0
        assert len(list((out / "overlays").glob("*.png"))) == 2, method
