"""Training and evaluation against independent references: hand-made confusion matrices and
AUCs from models whose outputs are known in closed form, a resumed run equal to an
uninterrupted one, mixed precision and a two-replica MirroredStrategy on CPU, and resumable
cross-validation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cv2
import keras
import matplotlib
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.figure import Figure
from tiny_models import TWO_LOGICAL_CPUS, conv_gap_dense, small_cam_cnn

import cxrexplain as cx
from cxrexplain import data as cxdata
from cxrexplain import models, training
from cxrexplain.errors import InvalidInputError

SIZE = 24


# ------------------------------------------------------------------------------ helpers
def _planted(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 has a bright block on the left, class 1 on the right (easy to learn)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.random((n, SIZE, SIZE, 1)).astype(np.float32) * 0.3
    images[labels == 0, 6:18, 2:10] += 0.6
    images[labels == 1, 6:18, 14:22] += 0.6
    return np.clip(images, 0, 1), labels


def _scored(scores: list[float]) -> tuple[cx.Classifier, np.ndarray]:
    """A classifier whose class-1 probability of image i is exactly ``scores[i]``.

    Image i is the constant ``scores[i]``; the model is GAP -> Dense(1) with kernel 1 and bias
    0, declared a sigmoid head (``output_activation``), so p = the pixel value.
    """
    inputs = keras.Input((8, 8, 1))
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    out = keras.layers.Dense(1, activation="linear", name="p")(mean)
    model = keras.Model(inputs, out)
    model.get_layer("p").set_weights([np.ones((1, 1), np.float32), np.zeros(1, np.float32)])
    clf = cx.Classifier(model, class_names=["NORMAL", "PNEUMONIA"], output_activation="sigmoid")
    images = np.stack([np.full((8, 8, 1), s, np.float32) for s in scores])
    return clf, images


# --------------------------------------------------------------------------------- stats
def test_auc_and_confusion_by_hand() -> None:
    clf, images = _scored([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.4])
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    report = training.evaluate(clf, (images, labels))
    # AUC by counting pairs: 0.9 and 0.8 beat all four negatives; 0.4 beats 0.3 and 0.2 and
    # ties 0.4 -> (4 + 4 + 2 + 0.5) / (3 * 4)
    assert report.roc_auc["PNEUMONIA"] == pytest.approx(10.5 / 12)
    assert report.roc_auc["NORMAL"] == pytest.approx(10.5 / 12)
    # argmax (p >= 0.5 wins class 1): positives 0.9, 0.8 right, 0.4 missed; negative 0.7 wrong
    np.testing.assert_array_equal(report.confusion, [[3, 1], [1, 2]])
    assert report.accuracy == pytest.approx(5 / 7)
    assert report.sensitivity["PNEUMONIA"] == pytest.approx(2 / 3)
    assert report.specificity["PNEUMONIA"] == pytest.approx(3 / 4)
    assert report.precision["PNEUMONIA"] == pytest.approx(2 / 3)
    assert report.sensitivity["NORMAL"] == pytest.approx(3 / 4)
    # with the classifier's threshold 0.35 the 0.4 positive and the 0.4 negative flip
    clf.threshold = 0.35
    report = training.evaluate(clf, (images, labels))
    np.testing.assert_array_equal(report.confusion, [[2, 2], [0, 3]])
    assert report.threshold == 0.35


def test_three_class_report_by_hand() -> None:
    # GAP over RGB -> Dense(3, softmax) with kernel 10*I: argmax is the brightest channel
    inputs = keras.Input((8, 8, 3))
    out = keras.layers.Dense(3, activation="softmax", name="d")(
        keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, out)
    model.get_layer("d").set_weights([10 * np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    clf = cx.Classifier(model, class_names=["COVID", "NORMAL", "PNEUMONIA"])
    truth = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    predicted = [0, 0, 1, 1, 1, 1, 2, 2, 0, 2]
    images = np.stack([np.full((8, 8, 3), 0.1, np.float32) for _ in truth])
    for image, p in zip(images, predicted, strict=True):
        image[..., p] = 0.9
    report = training.evaluate(clf, (images, np.array(truth)))
    expected = np.array([[2, 1, 0], [0, 3, 1], [1, 0, 2]])
    np.testing.assert_array_equal(report.confusion, expected)
    assert report.accuracy == pytest.approx(7 / 10)
    # NORMAL: TP 3, FN 1, FP 1, TN 5
    assert report.sensitivity["NORMAL"] == pytest.approx(3 / 4)
    assert report.specificity["NORMAL"] == pytest.approx(5 / 6)
    assert report.precision["NORMAL"] == pytest.approx(3 / 4)
    assert report.f1["NORMAL"] == pytest.approx(3 / 4)
    # COVID: TP 2, FN 1, FP 1, TN 6
    assert report.specificity["COVID"] == pytest.approx(6 / 7)
    # every image's own class has the top score only where predicted right; AUC of COVID by
    # pairs: COVID scores are high for images 0, 1, 8 (two positives, one negative)
    covid = report.probabilities[:, 0]
    positives, negatives = covid[:3], covid[3:]
    pairs = (positives[:, None] > negatives[None]).sum() + 0.5 * (
        positives[:, None] == negatives[None]).sum()
    assert report.roc_auc["COVID"] == pytest.approx(pairs / 21)


def test_roc_curve_area_equals_roc_auc() -> None:
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) + 0.3 * truth, 1)  # many ties
    fpr, tpr = training.roc_curve(truth, scores)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert training.roc_auc(truth, scores) == pytest.approx(area)
    assert training.roc_auc(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3])) == 1.0
    assert training.roc_auc(np.array([0, 0, 1]), np.array([0.3, 0.2, 0.1])) == 0.0
    assert training.roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert np.isnan(training.roc_auc(np.array([1, 1]), np.array([0.5, 0.6])))


def test_balanced_class_weight_by_hand() -> None:
    # 6 images, 3 classes with 3, 2, 1 images: n / (K n_c) = 6/9, 6/6, 6/3
    weights = training.balanced_class_weight([0, 0, 0, 1, 1, 2])
    assert weights == pytest.approx({0: 2 / 3, 1: 1.0, 2: 2.0})


# ----------------------------------------------------------------------------- rendering
def test_report_renders_as_text_markdown_json_and_figure() -> None:
    import matplotlib.pyplot as plt

    clf, images = _scored([0.9, 0.8, 0.4, 0.7, 0.3, 0.2])
    report = training.evaluate(clf, (images, np.array([1, 1, 1, 0, 0, 0])))
    text = report.to_text()
    assert "PNEUMONIA" in text and "0.6667" in text and "confusion" in text
    markdown = report.to_markdown()
    assert "| PNEUMONIA |" in markdown and "|---|" in markdown
    decoded = json.loads(report.to_json())
    assert decoded["confusion"] == [[2, 1], [1, 2]]
    assert decoded["metrics"]["accuracy"] == pytest.approx(4 / 6)
    again = training.EvaluationReport.from_dict(report.to_dict(include_predictions=True))
    assert again.metrics() == pytest.approx(report.metrics())
    before = plt.get_fignums()
    fig = report.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert plt.get_fignums() == before
    assert matplotlib.get_backend()  # a figure needs no interactive backend


def test_evaluate_refuses_mismatched_class_names(tmp_path: Path) -> None:
    clf, images = _scored([0.2, 0.8])
    dataset = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1]))).batch(2)
    dataset.class_names = ["PNEUMONIA", "NORMAL"]
    with pytest.raises(InvalidInputError, match="class_names"):
        training.evaluate(clf, dataset)
    with pytest.raises(InvalidInputError, match="labels"):
        training.evaluate(clf, (images, np.array([0, 2])))


# ----------------------------------------------------------------------------- threshold
def test_threshold_for_recall_is_the_highest_that_reaches_it() -> None:
    scores = [0.95, 0.6, 0.3, 0.07, 0.5, 0.2, 0.1, 0.05]
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    clf, images = _scored(scores)
    threshold = training.threshold_for_recall(clf, (images, labels), positive="PNEUMONIA",
                                              recall=0.75)
    assert threshold == pytest.approx(0.3)  # the 3rd highest of 4 positive scores
    assert clf.threshold == threshold
    report = training.evaluate(clf, (images, labels))
    assert report.sensitivity["PNEUMONIA"] >= 0.75
    clf.threshold = float(np.nextafter(np.float32(threshold), np.float32(1)))
    assert training.evaluate(clf, (images, labels)).sensitivity["PNEUMONIA"] < 0.75
    # 100% recall needs the lowest positive score (Maltanno/Phase4_Project chose 0.05 for this)
    full = training.threshold_for_recall(clf, (images, labels), positive=1, recall=1.0)
    assert full == pytest.approx(0.07)
    assert training.evaluate(clf, (images, labels)).sensitivity["PNEUMONIA"] == 1.0


def test_threshold_for_recall_refuses_class_zero_and_multiclass() -> None:
    clf, images = _scored([0.9, 0.1])
    with pytest.raises(InvalidInputError, match="class 0.*class 1 \\('PNEUMONIA'\\)"):
        training.threshold_for_recall(clf, (images, np.array([1, 0])), positive="NORMAL",
                                      recall=0.9)
    with pytest.raises(InvalidInputError, match="recall"):
        training.threshold_for_recall(clf, (images, np.array([1, 0])), positive=1, recall=0)
    three = cx.Classifier(small_cam_cnn(3))
    with pytest.raises(InvalidInputError, match="two-class"):
        training.threshold_for_recall(three, (np.zeros((2, SIZE, SIZE, 1)), np.array([0, 1])),
                                      positive=1, recall=0.9)


# ----------------------------------------------------------------------------------- fit
def _png_folder(root: Path, n: int = 64) -> Path:
    images, labels = _planted(n)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / ("NORMAL" if label == 0 else "PNEUMONIA")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.round(image[..., 0] * 255).astype(np.uint8))
    return root


def test_fit_two_epochs_lowers_the_loss(tmp_path: Path) -> None:
    root = _png_folder(tmp_path / "xr")
    train = cxdata.image_folder(root, image_size=SIZE, batch_size=16)
    model = small_cam_cnn()
    history = training.fit(model, train, epochs=2, verbose=0, seed=0,
                           checkpoint_dir=tmp_path / "run")
    loss = history.history["loss"]
    assert len(loss) == 2 and loss[1] < loss[0]
    assert model.compiled and type(model.optimizer).__name__ == "Adam"
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and len(log) == 3
    assert (tmp_path / "run" / "final.weights.h5").is_file()


class _Record(keras.callbacks.Callback):  # type: ignore[misc]
    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        self.weights = [w.copy() for w in self.model.get_weights()]


class _Interrupt(keras.callbacks.Callback):  # type: ignore[misc]
    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        if epoch == 2:
            raise KeyboardInterrupt


def test_resume_continues_exactly_where_the_run_stopped(tmp_path: Path) -> None:
    images, labels = _planted(48)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    straight, resumed = _Record(), _Record()
    options: dict[str, Any] = {"epochs": 4, "verbose": 0, "class_weight": None}
    full = training.fit(small_cam_cnn(), data, data, callbacks=[straight], **options)
    with pytest.raises(KeyboardInterrupt):
        training.fit(small_cam_cnn(), data, data, checkpoint_dir=tmp_path, callbacks=[_Interrupt()],
                     **options)
    assert training.load_state(tmp_path).epoch == 2  # type: ignore[union-attr]
    model = small_cam_cnn()  # a fresh process would rebuild the model
    history = training.fit(model, data, data, checkpoint_dir=tmp_path, resume=True,
                           callbacks=[resumed], **options)
    assert history.epoch == [0, 1, 2, 3]
    np.testing.assert_allclose(history.history["loss"], full.history["loss"], rtol=1e-6)
    for a, b in zip(straight.weights, resumed.weights, strict=True):  # optimizer state kept
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 5
    # a finished run resumes to its final weights without training
    final = [w.copy() for w in model.get_weights()]
    again = training.fit(small_cam_cnn(), data, data, checkpoint_dir=tmp_path, resume=True,
                         **options)
    assert again.epoch == [0, 1, 2, 3]
    for a, b in zip(again.model.get_weights(), final, strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_false_starts_over_and_resume_needs_a_folder(tmp_path: Path) -> None:
    images, labels = _planted(32)
    training.fit(small_cam_cnn(), (images, labels), epochs=2, verbose=0, checkpoint_dir=tmp_path)
    history = training.fit(small_cam_cnn(), (images, labels), epochs=1, verbose=0,
                           checkpoint_dir=tmp_path)
    assert history.epoch == [0]
    assert training.load_state(tmp_path).epoch == 1  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError, match="checkpoint_dir"):
        training.fit(small_cam_cnn(), (images, labels), epochs=1, resume=True)


def test_mixed_precision_path_on_cpu() -> None:
    images, labels = _planted(32)
    model = small_cam_cnn()
    before = [w.copy() for w in model.get_weights()]
    history = training.fit(model, (images, labels), epochs=1, verbose=0, mixed_precision=True)
    trained = history.model
    assert trained is not model
    assert trained.get_layer("block1_conv").compute_dtype == "float16"
    assert trained.get_layer("predictions").compute_dtype == "float32"
    assert type(trained.optimizer).__name__ == "LossScaleOptimizer"
    assert keras.config.dtype_policy().name == "float32"  # left as it was
    assert np.isfinite(history.history["loss"][0])
    assert model.get_layer("block1_conv").compute_dtype == "float32"
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
    assert any(changed)  # the trained weights came back into the user's model
    for a, b in zip(trained.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_mirrored_strategy_over_two_logical_cpus(tmp_path: Path) -> None:
    script = TWO_LOGICAL_CPUS + textwrap.dedent(f"""
        import numpy as np, keras
        from cxrexplain import models, training
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        rng = np.random.default_rng(0)
        x = rng.random((32, {SIZE}, {SIZE}, 1)).astype("float32")
        y = np.arange(32) % 2
        model = models.build("cam_cnn", input_shape=({SIZE}, {SIZE}, 1), num_classes=2,
                             filters=(8, 16))
        before = [w.copy() for w in model.get_weights()]
        history = training.fit(model, (x, y), epochs=2, verbose=0, strategy=strategy,
                               checkpoint_dir=r"{tmp_path / 'run'}")
        changed = any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        print(json.dumps({{"replicas": strategy.num_replicas_in_sync,
                          "same_strategy": history.model.distribute_strategy is strategy,
                          "epochs": history.epoch, "loss": history.history["loss"],
                          "changed": changed}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["same_strategy"]
    assert result["epochs"] == [0, 1] and all(np.isfinite(result["loss"]))
    assert result["changed"]


def test_fit_rejects_bad_arguments() -> None:
    images, labels = _planted(8)
    with pytest.raises(InvalidInputError, match="epochs"):
        training.fit(small_cam_cnn(), (images, labels), epochs=0)
    with pytest.raises(InvalidInputError, match="class_weight"):
        training.fit(small_cam_cnn(), (images, labels), epochs=1, class_weight={0: 1.0})
    with pytest.raises(InvalidInputError, match="mixed_precision"):
        training.fit(small_cam_cnn(), (images, labels), epochs=1, mixed_precision="yes")
    with pytest.raises(InvalidInputError, match="train"):
        training.fit(small_cam_cnn(), [1, 2, 3], epochs=1)


class _NoTraining(keras.callbacks.Callback):  # type: ignore[misc]
    """Fails the test if training starts: a refused data set must be refused before."""

    def on_train_begin(self, logs: object = None) -> None:
        raise AssertionError("training started")


def _three_class_folder(root: Path) -> Path:
    images, _ = _planted(6)
    for name in ("COVID", "NORMAL", "PNEUMONIA"):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(images[:2]):
            cv2.imwrite(str(root / name / f"{i}.png"), np.round(image[..., 0] * 255)
                        .astype(np.uint8))
    return root


@pytest.mark.parametrize("model_kind", ["softmax2", "sigmoid1", "softmax4"])
@pytest.mark.parametrize("class_weight", ["balanced", None])
def test_fit_refuses_a_data_set_with_another_class_count(
    tmp_path: Path, model_kind: str, class_weight: str | None
) -> None:
    """Three class folders against a model of 2 (softmax or one sigmoid unit) or 4 classes:
    refused before training, naming both counts and the class names (it used to end in a
    TensorFlow InvalidArgumentError from the class-weight lookup, or train silently)."""
    train = cxdata.image_folder(_three_class_folder(tmp_path / "xr"), image_size=SIZE)
    model = {"softmax2": lambda: small_cam_cnn(2), "sigmoid1": lambda: conv_gap_dense(
        1, "sigmoid"), "softmax4": lambda: small_cam_cnn(4)}[model_kind]()
    classes = 4 if model_kind == "softmax4" else 2
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(InvalidInputError) as info:
        training.fit(model, train, epochs=1, verbose=0, class_weight=class_weight,
                     callbacks=[_NoTraining()])
    message = str(info.value)
    assert message.startswith("train: the data set has 3 classes (COVID, NORMAL, PNEUMONIA)")
    assert f"has {classes} classes" in message and "num_classes=3" in message
    if model_kind == "sigmoid1":
        assert "one sigmoid output" in message  # why one unit counts as two classes
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_fit_class_count_from_tuples_one_hot_rows_and_validation_data() -> None:
    images, labels = _planted(8)
    with pytest.raises(InvalidInputError, match=r"train: its labels go up to class index 2 "
                                                r"\(at least 3 classes\).*has 2 classes"):
        training.fit(small_cam_cnn(), (images, labels * 2), epochs=1, callbacks=[_NoTraining()])
    one_hot = tf.data.Dataset.from_tensor_slices((images, np.eye(3)[labels])).batch(4)
    with pytest.raises(InvalidInputError, match="one-hot rows of 3 classes"):
        training.fit(small_cam_cnn(), one_hot, epochs=1, callbacks=[_NoTraining()])
    val = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    val.class_names = ["A", "B", "C"]
    with pytest.raises(InvalidInputError, match=r"^val: the data set has 3 classes \(A, B, C\)"):
        training.fit(small_cam_cnn(), (images, labels), val, epochs=1,
                     callbacks=[_NoTraining()])


def test_fit_accepts_two_classes_for_one_sigmoid_unit(tmp_path: Path) -> None:
    train = cxdata.image_folder(_png_folder(tmp_path / "xr", n=8), image_size=SIZE)
    history = training.fit(conv_gap_dense(1, "sigmoid"), train, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1


def test_evaluate_refuses_another_class_count_before_predicting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clf = cx.Classifier(small_cam_cnn(2))  # default names class_0, class_1 are no excuse
    three = cxdata.image_folder(_three_class_folder(tmp_path / "xr"), image_size=SIZE)

    def no_forward_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("predicted before checking the classes")

    monkeypatch.setattr(clf, "predict_proba", no_forward_pass)
    with pytest.raises(InvalidInputError, match=r"data: the data set has 3 classes \(COVID, "
                                                r"NORMAL, PNEUMONIA\) but the classifier "
                                                r"\(class_0, class_1\) has 2 classes"):
        training.evaluate(clf, three)
    images, _ = _planted(4)
    with pytest.raises(InvalidInputError, match="labels go up to class index 3"):
        training.evaluate(clf, (images, np.array([0, 1, 3, 0])))


# ---------------------------------------------------------------------- cross-validation
def test_cross_validate_writes_each_fold_and_skips_finished_ones(tmp_path: Path) -> None:
    root = _png_folder(tmp_path / "xr", n=24)
    built: list[int] = []

    def build(setup: training.FoldSetup) -> keras.Model:
        built.append(setup.fold)
        assert setup.input_shape == (SIZE, SIZE, 1) and setup.num_classes == 2
        return models.build("cam_cnn", input_shape=setup.input_shape,
                            num_classes=setup.num_classes, filters=(4, 8))

    out = tmp_path / "cv"
    result = training.cross_validate(build, root, k=3, image_size=SIZE, epochs=1,
                                     batch_size=8, results_dir=out, validation_fraction=None)
    assert built == [0, 1, 2]
    assert sorted(p.name for p in out.iterdir()) == ["fold_0.json", "fold_1.json",
                                                      "fold_2.json"]
    assert [f.report.n for f in result.folds] == [8, 8, 8]
    assert result.pooled().n == 24
    mean, sd = result.summary()["accuracy"]
    values = result.values("accuracy")
    assert mean == pytest.approx(values.mean()) and sd == pytest.approx(values.std(ddof=1))
    assert "accuracy" in result.to_markdown() and "±" in result.to_text()
    assert json.loads(result.to_json())["k"] == 3

    def refuse(setup: training.FoldSetup) -> keras.Model:
        raise AssertionError("finished folds must not be rebuilt")

    again = training.cross_validate(refuse, root, k=3, image_size=SIZE, epochs=1,
                                    batch_size=8, results_dir=out, validation_fraction=None)
    assert again.summary()["accuracy"] == pytest.approx(result.summary()["accuracy"],
                                                        nan_ok=True)
    with pytest.raises(InvalidInputError, match="another set-up.*epochs"):
        training.cross_validate(refuse, root, k=3, image_size=SIZE, epochs=2, batch_size=8,
                                results_dir=out, validation_fraction=None)


def test_cross_validate_keeps_patients_whole(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from cxrexplain.training import cross_validation

    root = _png_folder(tmp_path / "xr", n=36)
    patient = {f"{part}/{i:03d}.png": f"p{i // 3}"  # three films per patient
               for part in ("NORMAL", "PNEUMONIA") for i in range(36)}
    seen: list[cxdata.LabeledFiles] = []
    real = cross_validation.from_files

    def recorded(files: cxdata.LabeledFiles, **kwargs: Any) -> Any:
        seen.append(files)  # the training, validation and test parts, in that order
        return real(files, **kwargs)

    monkeypatch.setattr(cross_validation, "from_files", recorded)

    def build(setup: training.FoldSetup) -> keras.Model:
        return models.build("cam_cnn", input_shape=setup.input_shape,
                            num_classes=setup.num_classes, filters=(4,))

    out = tmp_path / "cv"
    training.cross_validate(build, root, k=3, image_size=SIZE, epochs=1, batch_size=8,
                            folds=[0], validation_fraction=0.25, groups=patient,
                            results_dir=out)
    train, val, test = ({patient[str(Path(p).relative_to(root))] for p in part.paths}
                        for part in seen)
    assert train and val and test
    assert not train & val and not train & test and not val & test
    assert sum(len(part) for part in seen) == 36
    with pytest.raises(InvalidInputError, match="another set-up.*groups"):
        training.cross_validate(build, root, k=3, image_size=SIZE, epochs=1, batch_size=8,
                                folds=[0], validation_fraction=0.25, results_dir=out,
                                groups={key: "p0" if group == "p1" else group
                                        for key, group in patient.items()})


def test_accuracy_interval_is_the_wilson_interval() -> None:
    """Against published Wilson 95% intervals (Newcombe 1998, Table I: 81/263, 15/148, 0/20,
    1/29) and the report's own summary line."""
    from cxrexplain.training.stats import wilson_interval

    for (k, n), (low, high) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                                (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)
    assert all(np.isnan(wilson_interval(0, 0)))
    report = cx.training.report_from_predictions(
        np.array([0, 0, 1, 1, 1]), np.array([[.9, .1], [.2, .8], [.3, .7], [.4, .6], [.6, .4]]),
        ["NORMAL", "PNEUMONIA"])
    low, high = report.accuracy_interval
    assert (low, high) == pytest.approx(wilson_interval(3, 5))
    assert f"accuracy 0.6000 [95% CI {low:.4f}, {high:.4f}] on 5 images" in report.to_text()
