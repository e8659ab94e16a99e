"""Explainers against independent references: NumPy formulas on gradients taken outside the
library, the CAM = Grad-CAM identity, nested/functional/subclassed/reloaded models, per-image
targets, a planted signal, mixed precision, and bad input."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import pytest
import reference_maps as ref
import tensorflow as tf
from rounding import output_tolerance
from tiny_models import (
    TinySubclassed,
    cam_model,
    conv_gap_dense,
    functional_with_backbone,
    nested_vgg16,
    random_images,
    subclassed,
    two_conv_model,
)

import cxrexplain as cx
import cxrexplain.explain
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain import InputExplainer, LayerExplainer

METHODS = sorted(name for name, cls in cx.explainers().items() if cls.requires is None)
"""The methods for any CNN (attention rollout, ``requires = "attention"``, is tested on token
models in test_tokens.py)."""
GRADIENT_METHODS = ["gradcam", "gradcampp", "hirescam", "layercam"]


# ---------------------------------------------------------------- independent references
def _reference_pass(model: keras.Model, images: np.ndarray, targets: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activations of 'target' in :func:`two_conv_model`, gradients of the pre-softmax target
    score, by hand."""
    features = keras.Model(model.inputs, model.get_layer("target").output)
    pool, after, gap, head = (model.get_layer(n) for n in ("pool", "after", "gap", "head"))
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        activations = features(x)
        tape.watch(activations)
        hidden = gap(after(pool(activations)))
        logits = tf.matmul(hidden, head.kernel) + head.bias  # before softmax
        if logits.shape[1] == 1:
            score = tf.where(targets == 1, logits[:, 0], -logits[:, 0])
        else:
            score = tf.gather(logits, targets, axis=1, batch_dims=1)
        total = tf.reduce_sum(score)
    gradients = tape.gradient(total, activations)
    return np.asarray(activations), np.asarray(gradients), np.asarray(logits)


def _last_conv(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Activations of :func:`cam_model`'s ``last_conv``, by a Keras sub-model."""
    return np.asarray(keras.Model(model.inputs[0], model.get_layer("last_conv").output)(images))


def _cv2_upsample(a: np.ndarray, size: int) -> np.ndarray:
    """``(h, w, k)`` to ``(size, size, k)``, each channel by cv2 bilinear (half-pixel)."""
    return np.stack([cv2.resize(a[:, :, k], (size, size), interpolation=cv2.INTER_LINEAR)
                     for k in range(a.shape[-1])], axis=-1)


def _normalise_upsampled(raw: np.ndarray, size: int) -> np.ndarray:
    """cv2 bilinear (half-pixel, like the paper's bilinear upsampling) then / max."""
    out = np.stack([cv2.resize(m.astype(np.float32), (size, size),
                               interpolation=cv2.INTER_LINEAR) for m in raw])
    out = np.maximum(out, 0)
    peak = out.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, out / np.where(peak > 0, peak, 1), 0)


def test_references_are_numpy_only() -> None:
    """The reference formulas share no code with what they check (nor with TF or Keras)."""
    tree = ast.parse(Path(ref.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in imported} <= {"__future__", "collections", "numpy"}


@pytest.mark.parametrize("method", GRADIENT_METHODS)
@pytest.mark.parametrize(("units", "activation"), [(3, "softmax"), (1, "sigmoid")])
def test_gradient_methods_match_numpy_formula(method: str, units: int, activation: str) -> None:
    model = two_conv_model(units, activation)
    images = random_images(5)
    targets = np.array([0, 1, 1, 0, 1] if units == 1 else [0, 1, 2, 1, 0])
    a, g, _ = _reference_pass(model, images, targets)
    expected_raw = ref.GRADIENT_FORMULAS[method](a, g)
    exp = cx.get_explainer(method)(model, layer="target").explain(images, targets=targets)
    assert exp.layer == "target"
    np.testing.assert_array_equal(exp.targets, targets)
    scale = max(float(np.abs(expected_raw).max()), 1e-12)
    tolerance = output_tolerance(model)  # another float32 computation (rounding.py)
    np.testing.assert_allclose(exp.raw / scale, expected_raw / scale, atol=tolerance)
    np.testing.assert_allclose(exp.heatmaps, _normalise_upsampled(expected_raw, 16),
                               atol=2 * tolerance)


def test_cam_matches_numpy_formula() -> None:
    model = cam_model(3, "softmax")
    images = random_images(4)
    targets = np.array([2, 0, 1, 2])
    expected_raw = ref.cam(_last_conv(model, images), np.asarray(model.layers[-1].kernel),
                           targets)
    exp = cx.CAM(model).explain(images, targets=targets)
    assert exp.layer == "last_conv"
    tolerance = output_tolerance(model)  # another float32 computation (rounding.py)
    np.testing.assert_allclose(exp.raw, expected_raw, rtol=0,
                               atol=tolerance * float(expected_raw.max()))
    np.testing.assert_allclose(exp.heatmaps, _normalise_upsampled(expected_raw, 16),
                               atol=2 * tolerance)


def test_scorecam_matches_numpy_reference() -> None:
    model = cam_model(3, "softmax")
    images = random_images(2)
    targets = np.array([1, 2])
    expected_raw = ref.scorecam(_last_conv(model, images), images, targets,
                                probabilities=lambda batch: np.asarray(model(batch)),
                                upsample=lambda a: _cv2_upsample(a, 16))
    exp = cx.ScoreCAM(model, mask_batch_size=5).explain(images, targets=targets)
    np.testing.assert_allclose(exp.raw, expected_raw, rtol=1e-4, atol=1e-5)


def test_scorecam_top_channels_bound_the_work() -> None:
    model = cam_model(3, "softmax")
    full = cx.ScoreCAM(model).explain(random_images(2))
    top = cx.ScoreCAM(model, max_channels=2).explain(random_images(2))
    assert top.heatmaps.shape == full.heatmaps.shape
    assert not np.allclose(top.raw, full.raw)


def test_cam_equals_gradcam_and_hirescam_on_gap_dense() -> None:
    model = cam_model(3, "softmax")
    images = random_images(6, seed=7)
    cam = cx.CAM(model).explain(images)
    grad = cx.GradCAM(model).explain(images)
    hires = cx.HiResCAM(model).explain(images)
    for i in range(len(images)):
        if cam.heatmaps[i].max() == 0:
            continue
        r = np.corrcoef(cam.heatmaps[i].ravel(), grad.heatmaps[i].ravel())[0, 1]
        assert r >= 0.999
    np.testing.assert_allclose(cam.heatmaps, hires.heatmaps, atol=2 * output_tolerance(model))


def test_scores_and_probabilities_come_from_the_same_pass() -> None:
    model = cam_model(3, "softmax")
    images = random_images(5)
    clf = cx.Classifier(model, ["COVID", "NORMAL", "PNEUMONIA"])
    exp = cx.GradCAM(clf).explain(images)
    probs = clf.predict_proba(images)
    tolerance = output_tolerance(model)  # the explain pass and the predict pass round apart
    np.testing.assert_allclose(exp.probabilities, probs, rtol=0, atol=tolerance)
    np.testing.assert_array_equal(exp.targets, probs.argmax(axis=1))
    np.testing.assert_allclose(exp.scores, probs.max(axis=1), rtol=0, atol=tolerance)
    assert exp.target_names == [clf.class_names[t] for t in exp.targets]


def test_threshold_decides_predicted_target_of_sigmoid_model() -> None:
    model = cam_model(1, "sigmoid")
    images = random_images(8, seed=2)
    p = np.asarray(model(images)).ravel()
    threshold = float(np.median(p))
    clf = cx.Classifier(model, ["NORMAL", "PNEUMONIA"], threshold=threshold)
    exp = cx.GradCAM(clf).explain(images)
    np.testing.assert_array_equal(exp.targets, (p >= threshold).astype(int))
    clf.threshold = None  # the compiled pass reads the threshold at call time
    np.testing.assert_array_equal(cx.GradCAM(clf).explain(images).targets, (p >= 0.5))


def test_sigmoid_target_zero_is_the_negated_logit() -> None:
    model = cam_model(1, "sigmoid")
    images = random_images(3)
    positive = cx.CAM(model).explain(images, targets=1)
    negative = cx.CAM(model).explain(images, targets=0)
    np.testing.assert_allclose(positive.raw - negative.raw,
                               np.einsum("nhwk,k->nhw", _last_conv(model, images),
                                         np.asarray(model.layers[-1].kernel)[:, 0]), atol=1e-5)


def batching_tolerance(explainer: cx.Explainer, exp: cx.Explanation) -> np.ndarray:
    """``(N,)`` how far another batch size may move each heatmap (see ``rounding.py``).

    A heatmap is the raw map over its peak, so a change ``d`` of the raw map moves it by up to
    ``2 d / peak`` (numerator and peak). ``d`` is :func:`output_tolerance` of the magnitude of
    what the map is made of: for an input explainer the target probabilities (at most 1), whose
    small differences are occlusion's map, so that a map far below the probabilities (an
    untrained model's) is only known to about ``eps / peak``; for a layer explainer the channel
    terms ``w_k A_k``, taken as no larger than the map's peak."""
    peak = exp.raw.max(axis=(1, 2)).astype(np.float64)
    magnitude = np.ones_like(peak) if isinstance(explainer, InputExplainer) else peak
    change = output_tolerance(explainer.model) * magnitude
    return np.divide(2 * change, peak, out=np.zeros_like(peak), where=peak > 0)


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_one_at_a_time(method: str) -> None:
    model = cam_model(3, "softmax")
    images = random_images(4, seed=9)
    targets = [2, 0, 1, 1]
    explainer = cx.get_explainer(method)(model)
    batch = explainer.explain(images, targets=targets, batch_size=3)
    tolerance = batching_tolerance(explainer, batch)
    # the tolerance still tells two images' maps apart (a mix-up would fail)
    assert np.abs(batch.heatmaps[0] - batch.heatmaps[1]).max() > 10 * tolerance[:2].max()
    for i in range(4):
        single = explainer.explain(images[i], targets=targets[i])
        np.testing.assert_allclose(single.heatmaps[0], batch.heatmaps[i], rtol=0,
                                   atol=tolerance[i], err_msg=method)


def test_traced_once_for_any_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    explainer = cx.GradCAM(cam_model())
    traces = []
    original = explainer._graph

    def counting(*args: Any) -> Any:
        traces.append(1)
        return original(*args)

    monkeypatch.setattr(explainer, "_graph", counting)
    for n in (1, 3, 5, 2):
        explainer.explain(random_images(n), batch_size=4)
    assert len(traces) == 1


def test_all_zero_map_stays_zero() -> None:
    model = conv_gap_dense(size=16, filters=(2,), padding="same")
    conv = model.layers[0]
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])  # every activation 0
    for method in METHODS:
        exp = cx.get_explainer(method)(model).explain(random_images(2))
        assert np.isfinite(exp.heatmaps).all(), method
        if method == "rise":  # a constant score weights every mask alike: the mean mask
            assert exp.heatmaps.min() > 0.8, method
            continue
        assert exp.heatmaps.max() == 0.0, method


# ---------------------------------------------------------------- model shapes users have
@pytest.mark.parametrize(
    ("build", "shape", "layer"),
    [
        (nested_vgg16, (32, 32, 3), "vgg16/block5_pool"),
        (functional_with_backbone, (16, 16, 1), "backbone/b_conv2"),
        (subclassed, (16, 16, 1), "conv2"),
        (lambda: cam_model(1, "sigmoid", channels=3), (16, 16, 3), "last_conv"),
    ],
    ids=["nested-vgg16", "functional-backbone", "subclassed", "sigmoid-rgb"],
)
@pytest.mark.parametrize("method", METHODS)
def test_every_explainer_on_models_users_have(
    build: Any, shape: tuple[int, int, int], layer: str, method: str
) -> None:
    keras.utils.set_random_seed(0)
    model = build()
    kwargs: dict[str, Any] = {"max_channels": 16} if method == "scorecam" else {}
    if method == "occlusion":
        kwargs = {"patch": shape[0] // 2}  # 3 x 3 positions
    if method == "rise":
        kwargs = {"samples": 64}  # the paper's 4000 masks cost 4000 passes per image
    if isinstance(model, TinySubclassed):
        clf = cx.Classifier(model, input_size=shape[:2], channels=shape[2])
    else:
        clf = cx.Classifier(model)
    explainer = cx.get_explainer(method)(clf, **kwargs)
    if isinstance(model, TinySubclassed):
        layer = getattr(model, layer).name  # subclassed layers get numbered names
    assert explainer.layer == ("input" if isinstance(explainer, InputExplainer) else layer)
    exp = explainer.explain(random_images(3, shape[0], shape[2]))
    assert exp.heatmaps.shape == (3, *shape[:2])
    assert exp.heatmaps.dtype == np.float32
    assert np.isfinite(exp.heatmaps).all()
    assert exp.heatmaps.min() >= 0.0
    assert exp.heatmaps.max() <= 1.0


def test_nested_layer_by_path_name_and_object() -> None:
    model = nested_vgg16()
    inner = model.layers[0].get_layer("block5_conv3")
    by_path = cx.GradCAM(model, layer="vgg16/block5_conv3")
    by_name = cx.GradCAM(model, layer="block5_conv3")
    by_object = cx.GradCAM(model, layer=inner)
    assert by_path.layer == by_name.layer == by_object.layer == "vgg16/block5_conv3"
    images = random_images(2, 32, 3)
    np.testing.assert_allclose(by_path.explain(images).heatmaps,
                               by_object.explain(images).heatmaps, atol=1e-6)


def test_reloaded_keras_file(tmp_path: Path) -> None:
    clf = cx.Classifier(cam_model(3, "softmax"), ["COVID", "NORMAL", "PNEUMONIA"])
    images = random_images(3)
    before = cx.GradCAM(clf).explain(images, targets="PNEUMONIA")
    loaded = cx.Classifier.load(clf.save(tmp_path / "m.keras"))
    for method in METHODS:
        after = cx.get_explainer(method)(loaded).explain(images, targets="PNEUMONIA")
        assert after.heatmaps.shape == (3, 16, 16)
        assert (after.targets == 2).all()
    np.testing.assert_allclose(cx.GradCAM(loaded).explain(images, targets="PNEUMONIA").heatmaps,
                               before.heatmaps, atol=1e-6)


def test_separate_softmax_layer_uses_its_input_as_logits() -> None:
    model = cam_model(3, None)
    with_softmax = keras.Sequential([keras.Input((16, 16, 1)), *model.layers,
                                     keras.layers.Softmax()])
    images = random_images(3)
    logits_exp = cx.GradCAM(model).explain(images, targets=[0, 1, 2])
    softmax_exp = cx.GradCAM(with_softmax).explain(images, targets=[0, 1, 2])
    np.testing.assert_allclose(softmax_exp.raw, logits_exp.raw, rtol=0,
                               atol=output_tolerance(model, float(logits_exp.raw.max())))


def test_softmax_hidden_in_a_lambda_warns_and_uses_log_probabilities() -> None:
    """No layer exposes the logits: the log-probability is differentiated, and the user told."""
    logits_model = cam_model(3, None)
    hidden = keras.Sequential([keras.Input((16, 16, 1)), *logits_model.layers,
                               keras.layers.Lambda(keras.ops.softmax)])
    clf = cx.Classifier(hidden, output_activation="softmax")
    images, targets = random_images(3), np.array([0, 1, 2])
    with pytest.warns(UserWarning, match="log-probability"):
        raw = cx.GradCAM(clf, layer="last_conv").explain(images, targets=targets).raw
    # reference: Grad-CAM of log softmax, by a GradientTape outside the library
    conv = logits_model.get_layer("last_conv")
    features = keras.Model(logits_model.inputs, conv.output)
    head = logits_model.layers[logits_model.layers.index(conv) + 1:]
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        a = features(x, training=False)
        tape.watch(a)
        z = a
        for layer in head:
            z = layer(z, training=False)
        score = tf.gather(tf.nn.log_softmax(z), targets, axis=1, batch_dims=1)
    grads = tape.gradient(score, a).numpy()
    expected = ref.gradcam(a.numpy(), grads)
    np.testing.assert_allclose(raw, expected, rtol=1e-4, atol=1e-6)


def test_mixed_float16_maps_in_float32() -> None:
    images = random_images(3)
    reference = cam_model(3, "softmax")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = cam_model(3, "softmax", head_dtype="float32")
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(reference.get_weights())
    assert mixed.layers[0].compute_dtype == "float16"
    for method in METHODS:
        exp = cx.get_explainer(method)(mixed).explain(images)
        ref = cx.get_explainer(method)(reference).explain(images)
        assert exp.heatmaps.dtype == np.float32
        assert np.isfinite(exp.heatmaps).all(), method
        r = np.corrcoef(exp.heatmaps.ravel(), ref.heatmaps.ravel())[0, 1]
        assert r > 0.99, (method, r)


def test_real_xray_paths_and_progress(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = sorted((data_dir / "cxr" / "PNEUMONIA").glob("*.png"))[:5]
    clf = cx.Classifier(cam_model(2, "softmax", size=64), ["NORMAL", "PNEUMONIA"])
    exp = cx.GradCAM(clf).explain(paths, batch_size=2, progress=True)
    assert exp.heatmaps.shape == (5, 64, 64)
    assert "5/5" in capsys.readouterr().out


# ---------------------------------------------------------------- planted signal
def _planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images; class 1 has a bright 6x6 patch at a random place (its box returned)."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.4, 0.08, (n, 32, 32, 1)).clip(0, 1).astype(np.float32)
    labels = np.arange(n) % 2
    boxes = np.zeros((n, 2), int)
    for i in np.flatnonzero(labels):
        y, x = rng.integers(2, 24, 2)
        images[i, y : y + 6, x : x + 6, 0] = 0.95
        boxes[i] = (y, x)
    return images, labels, boxes


def test_planted_patch_is_where_cam_and_gradcam_point() -> None:
    images, labels, _ = _planted(256, seed=0)
    model = conv_gap_dense(size=32, filters=(8, 16), padding="same", pool=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=30, batch_size=32, verbose=0)
    test, test_labels, boxes = _planted(40, seed=1)
    positives = np.flatnonzero(test_labels)
    accuracy = (np.asarray(model(test)).argmax(1) == test_labels).mean()
    assert accuracy >= 0.9
    for method in ("cam", "gradcam"):
        exp = cx.get_explainer(method)(model).explain(test[positives], targets=1)
        hits = 0
        for heat, (y, x) in zip(exp.heatmaps, boxes[positives], strict=True):
            py, px = np.unravel_index(np.argmax(heat), heat.shape)
            hits += int(y - 2 <= py < y + 8 and x - 2 <= px < x + 8)
        assert hits / len(positives) >= 0.8, (method, hits)


# ---------------------------------------------------------------- bad input
def test_unknown_layer_lists_candidates() -> None:
    with pytest.raises(ModelStructureError, match=r"no layer 'nope'.*last_conv"):
        cx.GradCAM(cam_model(), layer="nope")


def test_layer_with_2d_output_is_rejected() -> None:
    model = cam_model()
    gap = next(la for la in model.layers if isinstance(la, keras.layers.GlobalAveragePooling2D))
    with pytest.raises(ModelStructureError, match="2-D output"):
        cx.GradCAM(model, layer=gap)
    with pytest.raises(ModelStructureError, match="2-D output"):
        cx.GradCAM(model, layer=gap.name)


def test_bad_layer_type() -> None:
    with pytest.raises(InvalidInputError, match="layer"):
        cx.GradCAM(cam_model(), layer=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("targets", [3, -1, [0, 5], "COVID", 1.5, [0]],
                         ids=["too-big", "negative", "one-bad", "unknown-name", "float", "count"])
def test_bad_targets(targets: Any) -> None:
    clf = cx.Classifier(cam_model(3, "softmax"), ["A", "B", "C"])
    with pytest.raises(InvalidInputError, match="targets"):
        cx.GradCAM(clf).explain(random_images(2), targets=targets)


def test_empty_batch() -> None:
    for empty in ([], np.zeros((0, 16, 16, 1), np.float32)):
        with pytest.raises(InvalidInputError, match="empty"):
            cx.GradCAM(cam_model()).explain(empty)


def test_image_size_model_cannot_take() -> None:
    inputs = keras.Input((None, None, 1))
    x = inputs
    for _ in range(4):
        x = keras.layers.Conv2D(4, 3, activation="relu")(x)  # valid padding shrinks
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    explainer = cx.GradCAM(model)
    assert explainer.explain(random_images(1, 64)).heatmaps.shape == (1, 64, 64)
    with pytest.raises(cx.CxrExplainError, match="cannot"):
        cx.GradCAM(model).explain(random_images(1, 16))


def test_cam_needs_gap_dense_head() -> None:
    def conv_then(pooling: keras.layers.Layer) -> keras.Sequential:
        """Conv -> ``pooling`` -> Dense 8 -> Dense 2: not the GAP -> Dense head CAM needs."""
        return keras.Sequential([
            keras.Input((16, 16, 1)), keras.layers.Conv2D(4, 3, activation="relu"), pooling,
            keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2, activation="softmax"),
        ])

    keras.utils.set_random_seed(0)
    flatten = conv_then(keras.layers.Flatten())
    with pytest.raises(ModelStructureError, match="GradCAM"):
        cx.CAM(flatten)
    two_dense = conv_then(keras.layers.GlobalAveragePooling2D())
    with pytest.raises(ModelStructureError, match="GlobalAveragePooling2D"):
        cx.CAM(two_dense)
    assert cx.GradCAM(flatten).explain(random_images(1)).heatmaps.shape == (1, 16, 16)


def test_model_without_conv_layer() -> None:
    dense = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ModelStructureError, match="4-D"):
        cx.GradCAM(dense)


def test_registry_and_aliases() -> None:
    registry = cx.explainers()
    first = {"cam": cx.CAM, "gradcam": cx.GradCAM, "gradcampp": cx.GradCAMPlusPlus,
             "hirescam": cx.HiResCAM, "layercam": cx.LayerCAM, "scorecam": cx.ScoreCAM,
             "occlusion": cx.Occlusion}
    assert list(registry.items())[: len(first)] == list(first.items())  # in this order
    assert registry["eigencam"] is cx.EigenCAM
    assert list(cx.explainers()) == list(registry)  # the same order on every call
    for spelling, cls in [("Grad-CAM++", cx.GradCAMPlusPlus), (" gradcam_pp ", cx.GradCAMPlusPlus),
                          ("SCORE-CAM", cx.ScoreCAM), ("occlusion-sensitivity", cx.Occlusion),
                          ("Eigen-CAM", cx.EigenCAM), ("grad-cam", cx.GradCAM)]:
        assert cx.get_explainer(spelling) is cls, spelling
    with pytest.raises(InvalidInputError, match="known"):
        cx.get_explainer("no-such-method")
    with pytest.raises(InvalidInputError, match="method"):
        cx.get_explainer(3)  # type: ignore[arg-type]


def test_every_method_is_a_kind_exported_with_a_summary() -> None:
    """What the CLI, the docs and the facade read of each registered class."""
    for name, cls in cx.explainers().items():
        assert cls.name == name and issubclass(cls, (LayerExplainer, InputExplainer)), name
        assert getattr(cx, cls.__name__) is cls and cls.__name__ in cx.__all__, name
        assert getattr(cxrexplain.explain, cls.__name__) is cls, name
        summary = (cls.__doc__ or "").splitlines()[0]
        assert summary.endswith(".") and 20 <= len(summary) <= 100, (name, summary)
        assert cls.aliases == tuple(a.lower() for a in cls.aliases), name


def test_each_public_module_of_the_package_is_discovered() -> None:
    """Adding a method is adding a file: every public module of ``cxrexplain/explain`` is
    imported by the package, and each class with a name in it is registered."""
    folder = Path(cxrexplain.explain.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    for module in modules:
        assert f"cxrexplain.explain.{module}" in sys.modules, module
    defined = {cls.__module__.rpartition(".")[2] for cls in cx.explainers().values()}
    assert defined <= modules
    assert len(defined) == len(cx.explainers())  # one method per module


def test_static_view_lists_every_method() -> None:
    """Type checkers and the API reference cannot follow the discovery at run time: they see
    each method through one star import of its module in the ``if TYPE_CHECKING:`` block of
    ``cxrexplain/explain/__init__.py`` (and the facade star-imports the package)."""
    tree = ast.parse(Path(cxrexplain.explain.__file__).read_text())
    static = {
        statement.module
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for statement in node.body if isinstance(statement, ast.ImportFrom)
        if [alias.name for alias in statement.names] == ["*"]
    }
    modules = {cls.__module__ for cls in cx.explainers().values()}
    assert modules - static == set(), (
        "add 'from <module> import *  # noqa: F403' to the TYPE_CHECKING block of "
        f"cxrexplain/explain/__init__.py for {sorted(modules - static)}")
    for module in static:
        assert sys.modules[module].__all__ == [
            cls.__name__ for cls in cx.explainers().values() if cls.__module__ == module]


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Classes a test defines register into a copy of the registry, gone after the test."""
    from cxrexplain.explain import _registry

    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))


@pytest.mark.usefixtures("scratch_registry")
def test_a_subclass_with_a_name_registers_itself() -> None:
    class Activations(LayerExplainer):
        """Channel sum of the activations (a test method)."""

        name = "activations"
        aliases = ("channel-sum",)
        needs_gradients = False
        class_specific = False

        def combine(self, activations: tf.Tensor, gradients: tf.Tensor | None,
                    targets: tf.Tensor) -> tf.Tensor:
            return tf.reduce_sum(activations, axis=-1)

    class Renamed(cx.GradCAM):  # inherits a name, sets none: not registered again
        pass

    assert cx.explainers()["activations"] is Activations
    names = list(cx.explainers())  # order 100: after the first seven, then by name
    assert names.index("activations") > names.index("occlusion") and names[7:] == sorted(names[7:])
    assert cx.get_explainer("Channel-Sum") is Activations
    assert cx.get_explainer("gradcam") is cx.GradCAM and Renamed.name == "gradcam"
    model = cam_model(3, "softmax")
    images = random_images(2)
    expected = _last_conv(model, images).sum(axis=-1)
    np.testing.assert_allclose(Activations(model).explain(images).raw, expected, rtol=1e-5)


@pytest.mark.usefixtures("scratch_registry")
def test_names_are_checked_when_a_class_registers() -> None:
    with pytest.raises(InvalidInputError, match=r"\['gradcam'\] already names .*GradCAM"):
        type("Clash", (LayerExplainer,), {"name": "gradcam"})
    with pytest.raises(InvalidInputError, match="already names"):
        type("AliasClash", (LayerExplainer,), {"name": "mine", "aliases": ("score-cam",)})
    with pytest.raises(InvalidInputError, match="lower-case"):
        type("Upper", (LayerExplainer,), {"name": "Mine"})
    with pytest.raises(InvalidInputError, match="LayerExplainer .* or InputExplainer"):
        type("NoKind", (cx.Explainer,), {"name": "nokind"})
    assert "mine" not in cx.explainers() and "nokind" not in cx.explainers()


def test_input_explainers_read_no_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """No probe pass, no capture: an input explainer works where no layer could be found."""
    from cxrexplain.explain import kinds

    def no_probe(*args: object) -> None:
        raise AssertionError("an input explainer probed the model's layers")

    monkeypatch.setattr(kinds, "find_layers", no_probe)
    explainer = cx.Occlusion(cam_model(3, "softmax"), patch=8)
    exp = explainer.explain(random_images(2))
    assert exp.layer == explainer.layer == "input" and exp.raw.shape == (2, 16, 16)
    assert explainer._captured.activations is None
    assert explainer.for_model(cam_model(3, "softmax")).layer == "input"
    with pytest.raises(InvalidInputError, match="reads no layer"):
        cx.Occlusion(cam_model(), layer="last_conv")


@pytest.mark.parametrize("method", METHODS)
def test_maps_follow_the_class_unless_the_method_is_class_agnostic(method: str) -> None:
    model = cam_model(3, "softmax")
    images = random_images(3, seed=5)
    explainer = cx.get_explainer(method)(model)
    first = explainer.explain(images, targets=0)
    second = explainer.explain(images, targets=2)
    assert (first.targets == 0).all() and (second.targets == 2).all()
    np.testing.assert_allclose(second.scores, np.asarray(model(images))[:, 2], rtol=0,
                               atol=output_tolerance(model))
    if type(explainer).class_specific:
        assert not np.allclose(first.heatmaps, second.heatmaps, atol=1e-3)
    else:
        np.testing.assert_array_equal(first.raw, second.raw)


@pytest.mark.parametrize(("build", "layer"), [(cam_model, "last_conv"),
                                              (two_conv_model, "target")])
def test_eigencam_matches_numpy_svd(build: Any, layer: str) -> None:
    """The projection on the first principal component, up to the SVD's choice of sign."""
    model = build()
    images = random_images(5, seed=3)
    activations = np.asarray(keras.Model(model.inputs[0], model.get_layer(layer).output)(images))
    projection = ref.eigencam_projection(activations)
    exp = cx.EigenCAM(model, layer=layer).explain(images)
    assert exp.layer == layer
    for i in range(len(images)):
        scale = np.abs(projection[i]).max()
        sides = [np.maximum(sign * projection[i], 0.0) for sign in (1.0, -1.0)]
        errors = sorted(np.abs(exp.raw[i] - side).max() / scale for side in sides)
        assert errors[0] < 1e-4 and errors[1] > 0.1, (i, errors)  # one side, not the other
        chosen = min(sides, key=lambda side: np.abs(exp.raw[i] - side).max())
        np.testing.assert_allclose(exp.heatmaps[i], _normalise_upsampled(chosen[None], 16)[0],
                                   atol=1e-4)


@pytest.mark.parametrize(("build", "layer"), [(cam_model, "last_conv"),
                                              (two_conv_model, "target")])
def test_eigencam_keeps_the_side_pytorch_grad_cam_keeps(build: Any, layer: str) -> None:
    """The sign too: pytorch-grad-cam's ``get_2d_projection`` as it runs (float32 activations,
    NumPy's SVD with ``full_matrices=True``), written out here, keeps the same side."""
    model = build()
    images = random_images(5, seed=4)
    activations = np.asarray(keras.Model(model.inputs[0], model.get_layer(layer).output)(images),
                             np.float32).transpose(0, 3, 1, 2)  # (n, k, h, w) as torch has it
    expected = []
    for act in activations:
        rows = act.reshape(act.shape[0], -1).transpose()
        rows = rows - rows.mean(axis=0)
        _, _, vt = np.linalg.svd(rows, full_matrices=True)
        expected.append(np.maximum((rows @ vt[0, :]).reshape(act.shape[1:]), 0.0))
    raw = cx.EigenCAM(model, layer=layer).explain(images).raw
    for i, side in enumerate(expected):
        np.testing.assert_allclose(raw[i], side, atol=1e-4 * np.abs(side).max() + 1e-7)


def test_eigencam_sign_on_many_activations() -> None:
    """On 40 random activation stacks (TensorFlow's SVD picks the other sign on about 40 % of
    such matrices), the method's projection has pytorch-grad-cam's sign on every one."""
    rng = np.random.default_rng(0)
    acts = (rng.normal(size=(40, 6, 5, 12)) + rng.uniform(0, 2, size=(40, 1, 1, 12))).astype(
        np.float32)
    maps = np.asarray(cx.EigenCAM(cam_model()).combine_with_model(None, tf.constant(acts), None))
    for act, got in zip(acts, maps, strict=True):
        rows = act.reshape(-1, act.shape[-1])
        rows = rows - rows.mean(axis=0)
        want = (rows @ np.linalg.svd(rows, full_matrices=True)[2][0]).reshape(act.shape[:2])
        np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())


def test_extra_passes_trace_a_model_that_needs_a_known_size() -> None:
    """``five_block_cnn``'s dilated pooling refuses an unknown height and width: the extra
    compiled passes (occlusion, Score-CAM, Ablation-CAM, RISE) trace at the model's input size
    (before, each failed: "pool2 needs a known height and width")."""
    keras.utils.set_random_seed(0)
    model = cx.models.build("five_block_cnn", input_shape=(64, 64, 1), num_classes=3)
    clf = cx.Classifier(model)
    films = np.random.default_rng(0).random((2, 64, 64, 1)).astype(np.float32)
    for explainer in (cx.Occlusion(clf, patch=16, stride=16), cx.ScoreCAM(clf, max_channels=8),
                      cx.AblationCAM(clf, max_channels=8), cx.RISE(clf, samples=16)):
        exp = explainer.explain(films, targets=[0, 1])
        assert exp.heatmaps.shape == (2, 64, 64)
        assert np.isfinite(exp.heatmaps).all() and exp.heatmaps.max() > 0
