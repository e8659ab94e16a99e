"""Classifier: heads, thresholds, input conversion, save/load round trips, bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from rounding import output_tolerance
from tiny_models import conv_gap_dense, random_images

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError, ModelLoadError, ModelStructureError


def test_sigmoid_model_is_two_class_with_complementary_columns() -> None:
    model = conv_gap_dense(1, "sigmoid")
    clf = cx.Classifier(model, class_names=["NORMAL", "PNEUMONIA"])
    batch = random_images(6, 24)
    probs = clf.predict_proba(batch)
    p = np.asarray(model(batch)).ravel()
    assert probs.shape == (6, 2)
    # the classifier's compiled pass and an eager call round apart (rounding.py)
    np.testing.assert_allclose(probs[:, 1], p, rtol=0, atol=output_tolerance(model))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert clf.num_classes == 2 and not clf.multilabel


def test_softmax_model_probabilities_are_the_outputs() -> None:
    model = conv_gap_dense(3, "softmax")
    clf = cx.Classifier(model, class_names=["COVID", "NORMAL", "PNEUMONIA"])
    batch = random_images(6, 24)
    tolerance = output_tolerance(model)  # a compiled pass against an eager call
    np.testing.assert_allclose(clf.predict_proba(batch), np.asarray(model(batch)), rtol=0,
                               atol=tolerance)
    predictions = clf.predict(batch)
    assert isinstance(predictions, list) and len(predictions) == 6
    for pred, row in zip(predictions, np.asarray(model(batch)), strict=True):
        assert pred.index == int(row.argmax())
        assert pred.label == clf.class_names[pred.index]
        assert pred.probability == pytest.approx(float(row.max()), abs=tolerance)
        assert list(pred.probabilities) == ["COVID", "NORMAL", "PNEUMONIA"]


def test_logit_heads_get_softmax_or_sigmoid() -> None:
    batch = random_images(6, 24)
    multi = conv_gap_dense(3, None)
    logits = np.asarray(multi(batch))
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(cx.Classifier(multi).predict_proba(batch), expected, rtol=0,
                               atol=output_tolerance(multi))
    single = conv_gap_dense(1, None)
    z = np.asarray(single(batch)).ravel()
    probs = cx.Classifier(single).predict_proba(batch)
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-z)), rtol=0,
                               atol=output_tolerance(single))


def test_separate_softmax_layer_is_detected() -> None:
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(3),
         keras.layers.Softmax()]
    )
    clf = cx.Classifier(model)
    assert clf.output_activation == "softmax"
    np.testing.assert_allclose(
        clf.predict_proba(random_images(6, 16)), np.asarray(model(random_images(6, 16))),
        atol=1e-6,
    )


def test_threshold_decides_the_positive_class() -> None:
    model = conv_gap_dense(1, "sigmoid")
    batch = random_images(20, 24)
    p = np.asarray(model(batch)).ravel()
    threshold = float(np.median(p))
    clf = cx.Classifier(model, ["NORMAL", "PNEUMONIA"], threshold=threshold)
    predictions = clf.predict(batch)
    assert [pr.index for pr in predictions] == [int(v >= threshold) for v in p]
    clf.threshold = None
    assert [pr.index for pr in clf.predict(batch)] == [int(v >= 0.5) for v in p]


def test_multilabel_reports_findings_above_threshold() -> None:
    model = conv_gap_dense(4, "sigmoid")
    names = ["Atelectasis", "Effusion", "Pneumonia", "Nodule"]
    batch = random_images(5, 24)
    p = np.asarray(model(batch))
    clf = cx.Classifier(model, names, threshold=float(np.median(p)))
    assert clf.multilabel and clf.num_classes == 4
    np.testing.assert_allclose(clf.predict_proba(batch), p, rtol=0, atol=output_tolerance(model))
    for pred, row in zip(clf.predict(batch), p, strict=True):
        assert pred.findings == tuple(n for n, v in zip(names, row, strict=True)
                                      if v >= clf.threshold)


def test_single_inputs_return_one_prediction(tmp_path: Path) -> None:
    clf = cx.Classifier(conv_gap_dense(3, "softmax"), ["A", "B", "C"])
    image = (np.random.default_rng(2).random((40, 50)) * 255).astype(np.uint8)
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), image)
    assert isinstance(clf.predict(path), cx.Prediction)
    assert isinstance(clf.predict(str(path)), cx.Prediction)
    assert isinstance(clf.predict(path.read_bytes()), cx.Prediction)
    assert isinstance(clf.predict(image), cx.Prediction)
    assert isinstance(clf.predict([path, image]), list)


def test_inputs_are_resized_and_channel_converted(tmp_path: Path) -> None:
    model = conv_gap_dense(2, "softmax", channels=3)
    clf = cx.Classifier(model)
    assert clf.input_size == (24, 24) and clf.channels == 3
    gray = np.random.default_rng(3).random((48, 48)).astype(np.float32)
    expected_input = cv2.resize(gray, (24, 24), interpolation=cv2.INTER_AREA)
    expected_input = np.repeat(expected_input[None, :, :, None], 3, axis=3)
    np.testing.assert_allclose(  # a compiled pass against an eager call (rounding.py)
        clf.predict_proba(gray), np.asarray(model(expected_input)), rtol=0,
        atol=output_tolerance(model)
    )


def test_real_xray_batch_predicts(data_dir: Path) -> None:
    paths = sorted((data_dir / "cxr" / "COVID").glob("*.png"))[:4]
    clf = cx.Classifier(conv_gap_dense(3, "softmax", size=64), ["COVID", "NORMAL", "PNEUMONIA"])
    probs = clf.predict_proba(paths, batch_size=3)
    assert probs.shape == (4, 3)
    assert np.isfinite(probs).all()


def test_subclassed_model_needs_and_uses_given_input_spec() -> None:
    class Tiny(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.head = keras.layers.Dense(2, activation="softmax")

        def call(self, x: object) -> object:
            return self.head(self.pool(x))

    with pytest.raises(ModelStructureError, match="input_size"):
        cx.Classifier(Tiny())
    clf = cx.Classifier(Tiny(), input_size=16, channels=1)
    assert clf.num_classes == 2
    assert clf.predict_proba(random_images(2, 16)).shape == (2, 2)


# ------------------------------------------------------------------ save / load
@pytest.mark.parametrize(
    ("units", "activation", "names", "threshold"),
    [(1, "sigmoid", ["NORMAL", "PNEUMONIA"], 0.05),
     (3, "softmax", ["COVID", "NORMAL", "PNEUMONIA"], None)],
    ids=["sigmoid", "softmax"],
)
def test_save_load_round_trip(
    tmp_path: Path, units: int, activation: str, names: list[str], threshold: float | None
) -> None:
    clf = cx.Classifier(conv_gap_dense(units, activation), names, threshold=threshold)
    batch = random_images(8, 24)
    before = clf.predict_proba(batch)
    path = clf.save(tmp_path / "sub" / "model.keras")
    assert path.is_file()
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["model.keras"]
    loaded = cx.Classifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(batch), before, atol=1e-6)
    assert loaded.class_names == names
    assert loaded.threshold == threshold
    assert loaded.input_size == (24, 24) and loaded.channels == 1
    assert [p.label for p in loaded.predict(batch)] == [p.label for p in clf.predict(batch)]
    # still a normal Keras archive
    plain = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(plain(batch)), np.asarray(clf.model(batch)), atol=1e-6)
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("cxrexplain.json"))
    assert meta["class_names"] == names


def test_plain_keras_file_loads_with_default_names(tmp_path: Path) -> None:
    model = conv_gap_dense(2, "softmax")
    model.save(tmp_path / "plain.keras")
    loaded = cx.Classifier.load(tmp_path / "plain.keras")
    assert loaded.class_names == ["class_0", "class_1"]


def test_load_keeps_safe_mode_on(tmp_path: Path) -> None:
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Lambda(lambda x: x * 2.0),
         keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    model.save(tmp_path / "lambda.keras")  # saving a Lambda is allowed; loading it runs code
    with pytest.raises(ModelLoadError, match="lambda.keras"):
        cx.Classifier.load(tmp_path / "lambda.keras")


def test_save_needs_keras_suffix(tmp_path: Path) -> None:
    clf = cx.Classifier(conv_gap_dense(2, "softmax"))
    with pytest.raises(InvalidInputError, match=r"\.keras"):
        clf.save(tmp_path / "model.h5")


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "not a zip archive"), (b"this is not a model", "not a zip archive"),
    (b"PK\x03\x04broken zip", "not a"),
], ids=["empty", "text", "bad-zip"])
def test_load_not_a_model(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "fake.keras"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=f"fake.keras.*{reason}"):
        cx.Classifier.load(path)


def test_load_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such file"):
        cx.Classifier.load(tmp_path / "nothing.keras")
    with pytest.raises(ModelLoadError, match="folder"):
        cx.Classifier.load(tmp_path)


# ------------------------------------------------------------------ bad input
def test_class_names_length_must_match_outputs() -> None:
    with pytest.raises(InvalidInputError, match="class_names.*3 classes.*2 names"):
        cx.Classifier(conv_gap_dense(3, "softmax"), ["A", "B"])
    with pytest.raises(InvalidInputError, match="one sigmoid unit is a two-class model"):
        cx.Classifier(conv_gap_dense(1, "sigmoid"), ["PNEUMONIA"])
    with pytest.raises(InvalidInputError, match="unique"):
        cx.Classifier(conv_gap_dense(2, "softmax"), ["A", "A"])
    with pytest.raises(InvalidInputError, match="list of strings"):
        cx.Classifier(conv_gap_dense(2, "softmax"), "AB")


def test_bad_threshold_and_model_arguments() -> None:
    with pytest.raises(InvalidInputError, match="threshold"):
        cx.Classifier(conv_gap_dense(1, "sigmoid"), threshold=1.5)
    with pytest.raises(InvalidInputError, match="threshold.*3 softmax classes"):
        cx.Classifier(conv_gap_dense(3, "softmax"), threshold=0.3)
    with pytest.raises(InvalidInputError, match="model"):
        cx.Classifier("model.keras")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="input_size.*24x24"):
        cx.Classifier(conv_gap_dense(2, "softmax"), input_size=32)
    with pytest.raises(InvalidInputError, match="channels.*1-channel"):
        cx.Classifier(conv_gap_dense(2, "softmax"), channels=3)
    clf = cx.Classifier(conv_gap_dense(2, "softmax"))
    with pytest.raises(InvalidInputError, match="batch_size"):
        clf.predict_proba(random_images(6, 24), batch_size=0)


def test_one_unit_softmax_is_a_structure_error() -> None:
    with pytest.raises(ModelStructureError, match="softmax over one unit"):
        cx.Classifier(conv_gap_dense(1, "softmax"))


def test_multi_output_model_is_rejected() -> None:
    inputs = keras.Input((16, 16, 1))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(flat), keras.layers.Dense(3)(flat)])
    with pytest.raises(ModelStructureError, match="one output"):
        cx.Classifier(model)


def test_bad_image_in_predict_is_a_clear_error(tmp_path: Path) -> None:
    clf = cx.Classifier(conv_gap_dense(2, "softmax"))
    with pytest.raises(cx.ImageLoadError, match="missing.png"):
        clf.predict([tmp_path / "missing.png"])
