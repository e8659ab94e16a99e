"""Reference builders against independent references: the source projects' published parameter
counts and layer shapes, PyTorch's dilated max pooling written in NumPy, Keras Applications' own
``preprocess_input``, hand-computed CAMs, and save/reload round trips."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest

import cxrexplain as cx
from cxrexplain import models
from cxrexplain.errors import InvalidInputError, ModelLoadError
from cxrexplain.models.layers import DilatedMaxPooling2D, ImagenetPreprocessing

REQUIRED = [
    "cam_cnn", "two_block_cnn", "four_block_cnn", "five_block_cnn", "dense_baseline",
    "vgg16", "vgg19", "resnet50", "mobilenet_v2", "densenet121", "vgg19_finetune",
]
SIGMOID_PROJECTS = {"two_block_cnn", "dense_baseline", "densenet121", "vgg19_finetune"}
FORMER = {"seed_binary_cnn": "two_block_cnn", "seed_softmax_cnn": "four_block_cnn",
          "seed_proposed_cnn": "five_block_cnn"}
SEGMENTERS = {"lung_unet"}  # a mask head: one sigmoid per pixel, no classes
TRANSFER = {"vgg16", "vgg19", "resnet50", "mobilenet_v2", "densenet121", "vgg19_finetune"}
HEAVY = {"resnet50", "densenet121"}  # hundreds of layers: reloading takes seconds


def _images(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, size, size, channels)).astype(np.float32)


def _build(name: str, size: int, channels: int = 1, num_classes: int = 2,
           **options: object) -> keras.Model:
    keras.utils.set_random_seed(0)
    return models.build(name, input_shape=(size, size, channels), num_classes=num_classes,
                        **options)


# ------------------------------------------------------------------------------ registry
def test_available_lists_every_builder_with_description_and_source() -> None:
    infos = models.available()
    assert set(REQUIRED) | SEGMENTERS <= set(infos)
    for name, info in infos.items():
        assert info.name == name
        assert info.description and info.source
        assert "\n" not in str(info) and str(info).startswith(f"{name}: ")
        expected = ("mask" if name in SEGMENTERS
                    else "sigmoid" if name in SIGMOID_PROJECTS else "softmax")
        assert info.head == expected
        assert info.transfer == (name in TRANSFER)


def test_unknown_name_lists_the_names() -> None:
    with pytest.raises(InvalidInputError) as err:
        models.build("vgg17", input_shape=(64, 64, 1), num_classes=2)
    for name in REQUIRED:
        assert name in str(err.value)


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "densenet121"])
def test_too_small_image_for_backbone(name: str) -> None:
    with pytest.raises(InvalidInputError, match=r"at least 32x32.*16x16"):
        models.build(name, input_shape=(16, 16, 1), num_classes=2)


@pytest.mark.parametrize("name", sorted(set(REQUIRED) - TRANSFER | {"vgg16"}))
def test_minimum_size_builds_and_one_less_fails(name: str) -> None:
    minimum = models.available()[name].min_size
    model = _build(name, minimum)
    assert model(_images(1, minimum, 1), training=False).shape[0] == 1
    with pytest.raises(InvalidInputError, match="at least"):
        _build(name, minimum - 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_shape": (64, 64, 2)}, "1-channel"),
        ({"input_shape": (64, 64)}, "three ints"),
        ({"num_classes": 1}, "num_classes"),
        ({"foo": 1}, "no option 'foo'"),
        ({"weights": "imagenet"}, "trained from scratch"),
        ({"dropout": 1.5}, "dropout"),
        ({"filters": []}, "filters"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"input_shape": (64, 64, 1), "num_classes": 2, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        models.build("cam_cnn", **args)  # type: ignore[arg-type]


# ------------------------------------------------------------------ every builder, 224 px
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", REQUIRED)
def test_builds_at_224_with_the_output_rule(name: str, channels: int) -> None:
    model = _build(name, 224, channels)
    units = 1 if name in SIGMOID_PROJECTS else 2
    assert model.input_shape == (None, 224, 224, channels)
    assert model.output_shape == (None, units)
    out = np.asarray(model(_images(2, 224, channels), training=False))
    assert out.shape == (2, units)
    assert np.all((out >= 0) & (out <= 1))
    if units == 2:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert not model.compiled


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in REQUIRED])
def test_save_and_reload_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    size = models.available()[name].min_size if name in TRANSFER else 48
    model = _build(name, size, 1, num_classes=3)
    images = _images(3, size, 1, seed=1)
    expected = np.asarray(model(images, training=False))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)  # safe_mode stays on
    np.testing.assert_array_equal(np.asarray(reloaded(images, training=False)), expected)


@pytest.mark.parametrize("name", ["cam_cnn", "five_block_cnn"])
def test_classifier_save_and_load_of_built_models(name: str, tmp_path: Path) -> None:
    model = _build(name, 48, 1)
    images = _images(2, 48, 1, seed=2)
    clf = cx.Classifier(model, class_names=["NORMAL", "PNEUMONIA"], threshold=0.3)
    expected = clf.predict_proba(images)
    clf.save(tmp_path / "clf.keras")
    loaded = cx.Classifier.load(tmp_path / "clf.keras")
    assert loaded.class_names == ["NORMAL", "PNEUMONIA"] and loaded.threshold == 0.3
    np.testing.assert_array_equal(loaded.predict_proba(images), expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", REQUIRED)
def test_save_and_reload_at_224(name: str, tmp_path: Path) -> None:
    model = _build(name, 224, 3)
    images = _images(2, 224, 3)
    expected = np.asarray(model(images, training=False))
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(reloaded(images, training=False)), expected)


# --------------------------------------------------------------------- output rule
@pytest.mark.parametrize(
    ("name", "classes", "head", "units", "activation"),
    [
        ("two_block_cnn", 2, "auto", 1, "sigmoid"),
        ("two_block_cnn", 3, "auto", 3, "softmax"),
        ("cam_cnn", 2, "auto", 2, "softmax"),
        ("cam_cnn", 2, "sigmoid", 1, "sigmoid"),
        ("cam_cnn", 4, "sigmoid", 4, "sigmoid"),
        ("dense_baseline", 2, "softmax", 2, "softmax"),
        ("vgg19_finetune", 2, "auto", 1, "sigmoid"),
        ("mobilenet_v2", 2, "auto", 2, "softmax"),
    ],
)
def test_output_rule(name: str, classes: int, head: str, units: int, activation: str) -> None:
    model = _build(name, 32 if name in TRANSFER else 48, num_classes=classes, head=head)
    last = model.get_layer("predictions")
    assert last.units == units
    assert last.activation.__name__ == activation


# -------------------------------------------------------- the projects' published numbers
def test_two_block_cnn_matches_doguilmaks_summary() -> None:
    # doguilmak's logged summary: 813,217 parameters at 64x64x3, Flatten of 6,272 values
    model = _build("two_block_cnn", 64, 3)
    assert model.count_params() == 813_217
    assert model.get_layer("flatten").output.shape == (None, 6272)


def test_four_block_cnn_matches_shafayet98s_summary() -> None:
    # shafayet98: 931,130 parameters at 80x80x3, last conv block 3x3x128 (1,152 values)
    model = _build("four_block_cnn", 80, 3)
    assert model.count_params() == 931_130
    assert model.get_layer("flatten").output.shape == (None, 1152)


def test_five_block_cnn_matches_elwatanys_shapes() -> None:
    # SaraElwatany's proposed CNN: 150x150x3 -> 5x5x256 before Flatten (6,400 values).
    # Parameters by hand from its layer list: convs 896 + 18,496 + 36,928 + 73,856 + 295,168,
    # Linear 819,328 + 258.
    model = _build("five_block_cnn", 150, 3)
    assert model.get_layer("pool5").output.shape == (None, 5, 5, 256)
    assert model.get_layer("flatten").output.shape == (None, 6400)
    assert model.count_params() == 896 + 18_496 + 36_928 + 73_856 + 295_168 + 819_328 + 258
    # PyTorch MaxPool2d(2, 2, padding=1, dilation=2): 75 -> 38 and 19 -> 10
    assert model.get_layer("pool2").output.shape[1:3] == (38, 38)
    assert model.get_layer("pool4").output.shape[1:3] == (10, 10)


def test_five_block_cnn_can_restore_the_projects_relu() -> None:
    model = _build("five_block_cnn", 48, 3, relu_before_softmax=True)
    assert [layer.name for layer in model.layers][-3:] == ["logits", "logits_relu", "predictions"]
    assert cx.Classifier(model).output_activation == "softmax"


def _torch_dilated_maxpool(x: np.ndarray, k: int, s: int, p: int, d: int) -> np.ndarray:
    """nn.MaxPool2d(k, s, p, d) semantics, written independently with explicit loops."""
    n, h, w, c = x.shape
    out_h = (h + 2 * p - d * (k - 1) - 1) // s + 1
    out_w = (w + 2 * p - d * (k - 1) - 1) // s + 1
    out = np.full((n, out_h, out_w, c), -np.inf, np.float32)
    for i in range(out_h):
        for j in range(out_w):
            for a in range(k):
                for b in range(k):
                    r, q = i * s - p + a * d, j * s - p + b * d
                    if 0 <= r < h and 0 <= q < w:
                        out[:, i, j] = np.maximum(out[:, i, j], x[:, r, q])
    return out


@pytest.mark.parametrize(("size", "k", "s", "p", "d"),
                         [(75, 2, 2, 1, 2), (19, 2, 2, 1, 2), (12, 2, 2, 1, 2), (10, 3, 1, 1, 1),
                          (11, 3, 2, 2, 2)])
def test_dilated_max_pooling_equals_pytorch_semantics(size: int, k: int, s: int, p: int,
                                                      d: int) -> None:
    x = np.random.default_rng(size).normal(size=(2, size, size + 1, 3)).astype(np.float32)
    layer = DilatedMaxPooling2D(k, strides=s, padding=p, dilation=d)
    np.testing.assert_array_equal(np.asarray(layer(x)), _torch_dilated_maxpool(x, k, s, p, d))
    clone = DilatedMaxPooling2D.from_config(layer.get_config())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))


def test_dilated_max_pooling_rejects_too_much_padding() -> None:
    with pytest.raises(InvalidInputError, match="padding"):
        DilatedMaxPooling2D(2, strides=2, padding=2, dilation=1)


# ------------------------------------------------------------------- transfer builders
@pytest.mark.parametrize(
    ("mode", "reference"),
    [
        ("caffe", keras.applications.vgg16.preprocess_input),
        ("caffe", keras.applications.resnet50.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
        ("tf", keras.applications.mobilenet_v2.preprocess_input),
    ],
)
def test_preprocessing_equals_keras_preprocess_input(mode: str, reference: object) -> None:
    images = _images(2, 8, 3)
    expected = reference(images * 255.0)  # type: ignore[operator]
    got = np.asarray(ImagenetPreprocessing(mode)(images))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["vgg16", "mobilenet_v2"])
def test_transfer_model_does_its_backbone_preprocessing(name: str) -> None:
    model = _build(name, 32, 1)
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["image", "gray_to_rgb", "preprocess"]
    assert names[-3:] == ["gap", "dropout", "predictions"]
    assert isinstance(model.get_layer(name), keras.Model)
    images = _images(2, 32, 1)
    backbone_input = keras.Model(model.input, model.get_layer("preprocess").output)
    mode = {"vgg16": "caffe", "mobilenet_v2": "tf", "densenet121": "torch"}[name]
    reference = {"caffe": keras.applications.vgg16.preprocess_input,
                 "tf": keras.applications.mobilenet_v2.preprocess_input,
                 "torch": keras.applications.densenet.preprocess_input}[mode]
    np.testing.assert_allclose(np.asarray(backbone_input(images)),
                               reference(np.repeat(images, 3, axis=-1) * 255.0),
                               rtol=1e-5, atol=1e-4)


def test_gray_input_equals_the_gray_image_repeated_to_rgb() -> None:
    gray = _build("vgg16", 32, 1)
    rgb = _build("vgg16", 32, 3)
    rgb.set_weights(gray.get_weights())
    images = _images(2, 32, 1)
    np.testing.assert_allclose(np.asarray(gray(images, training=False)),
                               np.asarray(rgb(np.repeat(images, 3, axis=-1), training=False)),
                               rtol=1e-5, atol=1e-6)


def test_freeze_trains_only_the_head() -> None:
    model = _build("vgg16", 32, 1, freeze=True)
    assert [w.path for w in model.trainable_weights] == [
        "predictions/kernel", "predictions/bias"]


def test_vgg19_finetune_trains_block5_and_the_head() -> None:
    model = _build("vgg19_finetune", 32, 3)
    backbone = model.get_layer("vgg19")
    trainable = {layer.name for layer in backbone.layers
                 if layer.trainable and layer.weights}
    assert trainable == {"block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4"}
    assert len(model.trainable_weights) == 2 * 4 + 2
    assert not backbone.get_layer("block4_conv4").trainable


def test_trainable_from_by_index_and_errors() -> None:
    model = _build("mobilenet_v2", 32, 3, trainable_from=-10)
    layers = model.get_layer("mobilenet_v2").layers
    assert all(not layer.trainable for layer in layers[:-10])
    assert all(layer.trainable for layer in layers[-10:])
    with pytest.raises(InvalidInputError, match="no layer 'nope'"):
        _build("vgg16", 32, 3, trainable_from="nope")
    with pytest.raises(InvalidInputError, match="freeze"):
        _build("vgg16", 32, 3, trainable_from="block5_conv1", freeze=True)


def test_weights_from_a_whole_model_file_or_a_backbone_file(tmp_path: Path) -> None:
    source = _build("vgg16", 32, 1)
    keras.utils.set_random_seed(99)
    source.get_layer("predictions").set_weights(
        [np.full((512, 2), 0.01, np.float32), np.array([0.5, -0.5], np.float32)])
    source.save_weights(tmp_path / "all.weights.h5")
    source.get_layer("vgg16").save_weights(tmp_path / "backbone.weights.h5")
    keras.utils.set_random_seed(7)
    whole = models.build("vgg16", input_shape=(32, 32, 1), num_classes=2,
                         weights=tmp_path / "all.weights.h5")
    for a, b in zip(whole.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(7)
    part = models.build("vgg16", input_shape=(32, 32, 1), num_classes=2,
                        weights=str(tmp_path / "backbone.weights.h5"))
    for a, b in zip(part.get_layer("vgg16").get_weights(),
                    source.get_layer("vgg16").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(part.get_layer("predictions").get_weights()[0],
                              source.get_layer("predictions").get_weights()[0])
    with pytest.raises(ModelLoadError, match="fits neither"):
        models.build("vgg19", input_shape=(32, 32, 1), num_classes=2,
                     weights=tmp_path / "backbone.weights.h5")
    with pytest.raises(ModelLoadError, match="no such file"):
        models.build("vgg16", input_shape=(32, 32, 1), num_classes=2,
                     weights=tmp_path / "missing.weights.h5")


def test_weights_file_for_a_scratch_builder(tmp_path: Path) -> None:
    source = _build("cam_cnn", 32, 1)
    source.save_weights(tmp_path / "cam.weights.h5")
    loaded = models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=2,
                          weights=tmp_path / "cam.weights.h5")
    for a, b in zip(loaded.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelLoadError, match="does not fit"):
        models.build("cam_cnn", input_shape=(32, 32, 1), num_classes=3,
                     weights=tmp_path / "cam.weights.h5")


# -------------------------------------------------------------------------------- CAM
def test_cam_on_cam_cnn_equals_the_hand_computed_map() -> None:
    model = _build("cam_cnn", 32, 1, num_classes=3, filters=(8, 16, 16))
    images = _images(2, 32, 1, seed=3)
    exp = cx.CAM(model).explain(images, targets=[0, 2])
    assert exp.layer == "block3_relu"
    features = np.asarray(keras.Model(model.input, model.get_layer("block3_relu").output)(
        images, training=False))
    kernel = model.get_layer("predictions").get_weights()[0]
    expected = np.maximum(np.stack([features[0] @ kernel[:, 0], features[1] @ kernel[:, 2]]), 0)
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-5)
    assert exp.heatmaps.shape == (2, 32, 32)


def test_cam_on_a_transfer_model() -> None:
    model = _build("vgg16", 64, 1)
    exp = cx.CAM(cx.Classifier(model, class_names=["NORMAL", "PNEUMONIA"])).explain(
        _images(2, 64, 1))
    assert exp.layer == "vgg16/block5_pool"
    assert exp.heatmaps.shape == (2, 64, 64)
    assert np.all((exp.heatmaps >= 0) & (exp.heatmaps <= 1))


# ---------------------------------------------------------------------------- compiling
def test_compile_for_gives_each_project_its_settings() -> None:
    softmax = models.compile_for(_build("four_block_cnn", 48, 3), "four_block_cnn")
    assert type(softmax.optimizer).__name__ == "RMSprop"
    assert math.isclose(float(softmax.optimizer.learning_rate), 1e-3, rel_tol=1e-6)
    assert type(softmax.loss).__name__ == "SparseCategoricalCrossentropy"
    binary = models.compile_for(_build("two_block_cnn", 32), "two_block_cnn")
    assert type(binary.optimizer).__name__ == "Adam"
    assert type(binary.loss).__name__ == "BinaryCrossentropy"
    dense = models.compile_for(_build("dense_baseline", 32), "dense_baseline")
    assert type(dense.optimizer).__name__ == "SGD"
    proposed = models.compile_for(_build("five_block_cnn", 48), "five_block_cnn")
    assert math.isclose(float(proposed.optimizer.learning_rate), 1e-6, rel_tol=1e-6)


def test_compile_for_lovi07_quirk_only_on_request() -> None:
    sensible = models.compile_for(_build("cam_cnn", 32, num_classes=3), "cam_cnn")
    assert sensible.loss.get_config()["from_logits"] is False
    assert math.isclose(float(sensible.optimizer.learning_rate), 1e-3, rel_tol=1e-6)
    faithful = models.compile_for(_build("cam_cnn", 32, num_classes=3), "cam_cnn",
                                  reproduce_quirks=True)
    assert faithful.loss.get_config()["from_logits"] is True
    assert math.isclose(float(faithful.optimizer.learning_rate), 1e-6, rel_tol=1e-6)
    with pytest.raises(InvalidInputError, match="known tasks"):
        models.compile_for(sensible, "seed_9")
    with pytest.raises(InvalidInputError, match="known tasks"):
        models.compile_for(sensible, "old_name_of_nothing")


def test_compiled_models_train_with_their_metrics() -> None:
    model = models.compile_for(_build("dense_baseline", 16), "dense_baseline")
    x, y = _images(8, 16, 1), np.array([0, 1] * 4)
    logs = model.fit(x, y, epochs=1, verbose=0).history
    assert {"loss", "accuracy", "precision", "recall"} <= set(logs)


def test_compile_recommended_uses_adamw_cosine_and_label_smoothing() -> None:
    model = models.compile_recommended(_build("cam_cnn", 32, num_classes=3), decay_steps=10,
                                       label_smoothing=0.05)
    assert type(model.optimizer).__name__ == "AdamW"
    assert isinstance(model.optimizer._learning_rate,
                      keras.optimizers.schedules.CosineDecay)
    assert model.loss.get_config()["label_smoothing"] == 0.05


def test_smoothed_sparse_loss_equals_categorical_with_one_hot_labels() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    labels = np.array([0, 2])
    ours = models.SmoothedSparseCategoricalCrossentropy(label_smoothing=0.1)(labels, probs)
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(
        np.eye(3)[labels], probs)
    np.testing.assert_allclose(float(ours), float(reference), rtol=1e-6)


# ------------------------------------------------------------------------ mixed precision
def test_build_with_mixed_precision_restores_the_global_policy() -> None:
    model = _build("mobilenet_v2", 32, 1, mixed_precision=True)
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("mobilenet_v2").get_layer("Conv1").compute_dtype == "float16"
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert models.is_mixed_precision(model)


def test_with_dtype_policy_keeps_weights_and_outputs() -> None:
    model = _build("vgg16", 32, 1)
    mixed = models.with_dtype_policy(model)
    assert keras.config.dtype_policy().name == "float32"
    assert not models.is_mixed_precision(model) and models.is_mixed_precision(mixed)
    images = _images(2, 32, 1)
    np.testing.assert_allclose(np.asarray(mixed(images, training=False)),
                               np.asarray(model(images, training=False)), atol=2e-3)


def test_model_info_seed_is_a_deprecated_alias_of_source() -> None:
    info = cx.models.available()["cam_cnn"]
    assert info.source.startswith("Lovi07/")
    with pytest.warns(DeprecationWarning, match="source"):
        assert info.seed == info.source
    with pytest.warns(DeprecationWarning, match="source="):
        cx.models.registry.register("old_style_builder_name", description="x", seed="paper",
                                    head="softmax", min_size=8)(lambda shape, classes: None)
    assert cx.models.available()["old_style_builder_name"].source == "paper"
    cx.models.registry._REGISTRY.pop("old_style_builder_name")


# ------------------------------------------------------------- former ("seed_...") names
@pytest.mark.parametrize(("old", "new"), sorted(FORMER.items()))
def test_former_names_warn_and_build_the_renamed_builder(old: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated; use '{new}'"):
        model = _build(old, 150 if new == "five_block_cnn" else 80, 3)
    reference = _build(new, 150 if new == "five_block_cnn" else 80, 3)
    assert model.name == new
    assert [w.shape for w in model.weights] == [w.shape for w in reference.weights]
    assert old not in models.available() and new in models.available()
    assert old not in models.RECIPES and new in models.RECIPES
    with pytest.warns(DeprecationWarning, match=old):
        assert models.recipe_for(old) is models.RECIPES[new]
    with pytest.warns(DeprecationWarning, match=old):
        assert models.registry.get_info(old) is models.available()[new]
    with pytest.warns(DeprecationWarning, match=old):
        compiled = models.compile_for(reference, old)
    assert type(compiled.optimizer).__name__.lower() == models.RECIPES[new].optimizer


def test_former_module_paths_warn_and_give_the_same_builders() -> None:
    import importlib

    from cxrexplain.models import dense_baseline as dense_module
    from cxrexplain.models import small_cnns

    for module, attributes in (("seed_cnns", {"seed_binary_cnn": small_cnns.two_block_cnn,
                                              "seed_softmax_cnn": small_cnns.four_block_cnn,
                                              "seed_proposed_cnn": small_cnns.five_block_cnn}),
                               ("seed_dense", {"dense_baseline": dense_module.dense_baseline})):
        old = importlib.import_module(f"cxrexplain.models.{module}")
        for name, builder in attributes.items():
            with pytest.warns(DeprecationWarning,
                              match=f"cxrexplain.models.{module}.* is deprecated"):
                assert getattr(old, name) is builder
        with pytest.raises(AttributeError):
            old.nothing_here  # noqa: B018


def test_transfer_model_sigmoid_seed_is_a_deprecated_alias() -> None:
    from cxrexplain.models.transfer import transfer_model

    with pytest.warns(DeprecationWarning, match="binary_sigmoid"):
        model = transfer_model("mobilenet_v2", (32, 32, 1), 2, sigmoid_seed=True)
    assert model.get_layer("predictions").units == 1
