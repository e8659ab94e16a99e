"""Explanation-guided training (``cx.training.Guide``): the terms against NumPy, the swap, the
datasets that carry boxes and lungs, the plain model it leaves behind, and the planted
shortcut the issue describes (a marker outside the lungs that the plain model reads)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import reference_maps as ref
import tensorflow as tf
from tiny_models import fixed_mask_segmenter

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain.layers import layer_activations
from cxrexplain.training.guide import GuidedModel, outside_share

S = 32
LUNGS = np.zeros((S, S), bool)
LUNGS[6:26, 5:27] = True


def marker_films(count: int, seed: int, p_positive: float = 0.95, p_negative: float = 0.05
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Faint opacity inside the lungs = the label; a bright corner marker on ``p_positive`` of
    the positives and ``p_negative`` of the negatives = the shortcut."""
    rng = np.random.default_rng(seed)
    films = 0.3 + rng.normal(0.0, 0.05, (count, S, S, 1))
    labels = np.arange(count) % 2
    rows, cols = np.mgrid[:S, :S]
    for i in range(count):
        if labels[i]:
            r, c = rng.integers(10, 22), rng.integers(8, 24)
            films[i, ..., 0] += 0.25 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 8.0)
        if rng.random() < (p_positive if labels[i] else p_negative):
            films[i, 1:4, 1:4, 0] = 1.0
    return np.clip(films, 0, 1).astype(np.float32), labels


def small_model(classes: int = 2) -> keras.Model:
    keras.utils.set_random_seed(1)
    return cx.models.build("cam_cnn", input_shape=(S, S, 1), num_classes=classes,
                           filters=(4, 8))


def numpy_outside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    positive = np.maximum(maps, 0)
    total = positive.sum(axis=(1, 2))
    outside = (positive * (1 - masks)).sum(axis=(1, 2))
    return np.where(total > 0, outside / np.where(total > 0, total, 1), 1.0)


# ------------------------------------------------------------------------------ the terms
def test_outside_share_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(6, 9, 7)).astype(np.float32)
    maps[2] = -1.0  # no positive mass: all outside (1), never NaN
    masks = (rng.random((6, 9, 7)) > 0.5).astype(np.float32)
    np.testing.assert_allclose(outside_share(maps, masks).numpy(), numpy_outside(maps, masks),
                               atol=1e-5)


def test_logged_lung_term_is_the_cam_share_outside_the_grown_lungs() -> None:
    """``val_lung_outside`` = NumPy: the true class's CAM (activations x Dense column), ReLU,
    bilinear to the film, share outside the lungs grown by the margin."""
    model = small_model(3)
    films, _ = marker_films(8, seed=3)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    guide = cx.training.Guide(fixed_mask_segmenter(LUNGS), lungs=1.0, margin=0.1)
    guided = GuidedModel(model, guide)
    guided.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logs = guided.evaluate(films, labels, batch_size=8, verbose=0, return_dict=True)

    _, activations = layer_activations(model, films)
    kernel = [layer for layer in model.layers
              if isinstance(layer, keras.layers.Dense)][-1].kernel.numpy()
    cams = np.einsum("nhwk,kn->nhw", activations, kernel[:, labels])
    cams = np.maximum(cams, 0)
    upsampled = np.stack([cv2.resize(c, (S, S), interpolation=cv2.INTER_LINEAR) for c in cams])
    grown = ref.numpy_dilate(LUNGS, round(0.1 * S))  # radius 3 px
    expected = numpy_outside(upsampled, np.repeat(grown[None], 8, 0).astype(np.float32)).mean()
    assert logs["lung_outside"] == pytest.approx(expected, abs=2e-3)


def test_box_term_counts_only_boxed_films() -> None:
    model = small_model()
    films, labels = marker_films(4, seed=2)
    boxes = np.zeros((4, S, S, 1), np.float32)
    boxes[1, 4:12, 4:12] = 1.0  # one boxed film of four
    guided = GuidedModel(model, cx.training.Guide(None, boxes=1.0))
    guided.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logs = guided.evaluate({"images": films, "boxes": boxes}, labels, batch_size=4, verbose=0,
                           return_dict=True)
    _, activations = layer_activations(model, films[1:2])
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    cam = np.maximum(activations[0] @ dense.kernel.numpy()[:, labels[1]], 0)
    cam = cv2.resize(cam, (S, S), interpolation=cv2.INTER_LINEAR)
    expected = numpy_outside(cam[None], boxes[1:2, ..., 0])[0]
    assert logs["box_outside"] == pytest.approx(expected, abs=2e-3)


def test_swap_keeps_the_lungs_and_takes_another_films_surroundings() -> None:
    films = np.stack([np.full((S, S, 1), v, np.float32) for v in (0.1, 0.2, 0.3, 0.4, 0.5)])
    guided = GuidedModel(small_model(), cx.training.Guide(fixed_mask_segmenter(LUNGS),
                                                          swap=1.0, margin=0.0))
    lungs = tf.constant(np.repeat(LUNGS[None, ..., None], 5, 0).astype(np.float32))
    swapped = guided._swap(tf.constant(films), lungs).numpy()
    np.testing.assert_array_equal(swapped[:, LUNGS], films[:, LUNGS])  # lungs kept
    outside = swapped[:, ~LUNGS][..., 0][:, 0]
    donors = np.rint(outside * 10).astype(int) - 1
    assert sorted(donors.tolist()) == [0, 1, 2, 3, 4]  # every film gives once...
    assert all(d != i for i, d in enumerate(donors))  # ...and never to itself


# --------------------------------------------------------------------------- fit and data
def test_fit_with_a_guide_leaves_the_plain_classifier(tmp_path: Path) -> None:
    films, labels = marker_films(32, seed=0)
    model = small_model()
    before = [w.copy() for w in model.get_weights()]
    guide = cx.training.Guide(fixed_mask_segmenter(LUNGS), lungs=1.0, swap=0.5)
    history = cx.training.fit(model, (films, labels), (films[:8], labels[:8]), epochs=2,
                              guide=guide, verbose=0, seed=0)
    assert {"lung_outside", "val_lung_outside"} <= set(history.history)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(),
                                                        strict=True))
    assert model.name == "cam_cnn" and len(model.inputs) == 1
    path = tmp_path / "m.keras"
    cx.Classifier(model, ["N", "P"]).save(path)
    loaded = cx.Classifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(films[:4]),
                               cx.Classifier(model, ["N", "P"]).predict_proba(films[:4]),
                               atol=1e-6)
    assert not any("guide" in layer.name for layer in loaded.model.layers)


def test_guided_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    films, labels = marker_films(16, seed=0)
    guide = cx.training.Guide(fixed_mask_segmenter(LUNGS), lungs=1.0)
    model = small_model()
    cx.training.fit(model, (films, labels), epochs=1, guide=guide, verbose=0, seed=0,
                    checkpoint_dir=tmp_path / "run")
    again = small_model()
    history = cx.training.fit(again, (films, labels), epochs=2, guide=guide, verbose=0, seed=0,
                              checkpoint_dir=tmp_path / "run", resume=True)
    assert history.epoch == [0, 1] and len(history.history["lung_outside"]) == 2


@pytest.mark.parametrize("mode", ["mixed", "strategy"])
def test_guide_under_mixed_precision_and_a_strategy(mode: str) -> None:
    films, labels = marker_films(16, seed=0)
    guide = cx.training.Guide(fixed_mask_segmenter(LUNGS), lungs=1.0, swap=0.5)
    model = small_model()
    kwargs = ({"mixed_precision": True} if mode == "mixed" else
              {"strategy": tf.distribute.MirroredStrategy(["/cpu:0"])})
    history = cx.training.fit(model, (films, labels), epochs=1, guide=guide, verbose=0,
                              seed=0, **kwargs)
    assert np.isfinite(history.history["loss"][0])
    assert 0.0 <= history.history["lung_outside"][0] <= 1.0
    assert model.get_layer("block1_conv").compute_dtype == "float32"  # the user's model


def _write_folder(root: Path, films: np.ndarray, labels: np.ndarray) -> None:
    for i, (film, label) in enumerate(zip(films, labels, strict=True)):
        folder = root / ("P" if label else "N")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), (film[..., 0] * 255).astype(np.uint8))


def test_image_folder_with_boxes_and_lungs(tmp_path: Path) -> None:
    films, labels = marker_films(6, seed=4)
    big = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA)[..., None]
                    for f in films])  # the files are 64 px, the dataset 32 px
    _write_folder(tmp_path / "data", big, labels)
    (tmp_path / "boxes.csv").write_text("image,finding,x,y,width,height\n"
                                        "P/1.png,x,8,16,16,8\nP/1.png,x,40,40,8,8\n")
    ds = cx.data.image_folder(tmp_path / "data", image_size=32, batch_size=6,
                              boxes=tmp_path / "boxes.csv", shuffle=False)
    inputs, _ = next(iter(ds))
    index = ds.file_paths.index(str(tmp_path / "data" / "P" / "1.png"))
    expected = cx.metrics.boxes_to_masks([np.array([[4, 8, 8, 4], [20, 20, 4, 4]])], 32)[0]
    np.testing.assert_array_equal(inputs["boxes"].numpy()[index, ..., 0], expected)
    assert inputs["boxes"].numpy().sum() == expected.sum()  # no other film has a box
    assert ds.box_counts.tolist() == [2 if i == index else 0 for i in range(6)]

    seg = fixed_mask_segmenter(LUNGS)
    moved = cx.data.image_folder(tmp_path / "data", image_size=32, batch_size=6,
                                 boxes=tmp_path / "boxes.csv", lungs=seg, shuffle=False,
                                 augment=cx.data.Augmentation(rotation=0, zoom=0, shift=0.2,
                                                              brightness=0, contrast=0))
    inputs, _ = next(iter(moved))
    # the shift moves film, boxes and lungs together: their centroids move by the same step
    lung = inputs["lungs"].numpy()[index, ..., 0]
    box = inputs["boxes"].numpy()[index, ..., 0]

    def centroid(mask: np.ndarray) -> np.ndarray:
        return np.argwhere(mask > 0.5).mean(axis=0)

    lung_step = centroid(lung) - centroid(LUNGS)
    box_step = centroid(box) - centroid(expected)
    assert np.abs(lung_step).max() > 1.0  # it did move
    np.testing.assert_allclose(box_step, lung_step, atol=0.6)


def test_plain_fit_and_evaluate_take_data_with_boxes(tmp_path: Path) -> None:
    films, labels = marker_films(8, seed=5)
    _write_folder(tmp_path / "data", films, labels)
    (tmp_path / "boxes.csv").write_text("image,x,y,width,height\nP/1.png,8,16,16,8\n")
    ds = cx.data.image_folder(tmp_path / "data", image_size=32, boxes=tmp_path / "boxes.csv")
    model = small_model()
    history = cx.training.fit(model, ds, epochs=1, verbose=0)
    assert "box_outside" not in history.history
    report = cx.training.evaluate(cx.Classifier(model, ds.class_names), ds)
    assert int(report.confusion.sum()) == 8


# ---------------------------------------------------------------------------- refusals
def test_errors() -> None:
    seg = fixed_mask_segmenter(LUNGS)
    with pytest.raises(InvalidInputError, match="nothing to do"):
        cx.training.Guide(seg)
    with pytest.raises(InvalidInputError, match="need a lung segmenter"):
        cx.training.Guide(None, lungs=1.0)
    with pytest.raises(InvalidInputError, match="swap"):
        cx.training.Guide(seg, swap=1.5)
    with pytest.raises(InvalidInputError, match="lungs"):
        cx.training.Guide(seg, lungs=-1.0)
    films, labels = marker_films(4, seed=0)
    with pytest.raises(InvalidInputError, match="box term needs data with boxes"):
        cx.training.fit(small_model(), (films, labels), epochs=1, verbose=0,
                        guide=cx.training.Guide(None, boxes=1.0))
    with pytest.raises(InvalidInputError, match="guide: expected"):
        cx.training.fit(small_model(), (films, labels), epochs=1, verbose=0,
                        guide={"lungs": 1.0})  # type: ignore[arg-type]
    flat = keras.Sequential([keras.Input((S, S, 1)), keras.layers.Conv2D(2, 3),
                             keras.layers.Flatten(), keras.layers.Dense(2, "softmax")])
    with pytest.raises(ModelStructureError, match="GlobalAveragePooling2D"):
        GuidedModel(flat, cx.training.Guide(seg, lungs=1.0))


def test_read_boxes_names_file_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("image,x,y,width,height\na.png,1,2,3,4\na.png,1,2,x,4\n")
    with pytest.raises(InvalidInputError, match=r"b.csv' row 3, column 'width'"):
        cx.data.read_boxes(path)
    path.write_text("image,x,y,width\na.png,1,2,3\n")
    with pytest.raises(InvalidInputError, match="missing height"):
        cx.data.read_boxes(path)
    path.write_text("image,x,y,width,height\na.png,1,2,0,4\n")
    with pytest.raises(InvalidInputError, match="positive"):
        cx.data.read_boxes(path)


# --------------------------------------------------------------- the planted shortcut
def test_swap_and_lung_term_fix_decision_and_map_where_plain_reads_the_marker() -> None:
    """The issue's planted experiment, small: the plain model reads the corner marker (wrong on
    films whose marker contradicts the label); the lung term with the background swap is right
    on them and its CAM lies in the lungs."""
    train_films, train_labels = marker_films(192, seed=0)
    test_films, test_labels = marker_films(200, seed=1, p_positive=0.5, p_negative=0.5)
    contradicting = (test_films[:, 2, 2, 0] > 0.9) != (test_labels == 1)
    lungs = np.repeat(LUNGS[None], len(test_films), 0)
    results = {}
    for name, guide in (("plain", None),
                        ("guided", cx.training.Guide(fixed_mask_segmenter(LUNGS), lungs=1.0,
                                                     swap=1.0))):
        keras.utils.set_random_seed(1)
        model = cx.models.build("cam_cnn", input_shape=(S, S, 1), num_classes=2,
                                filters=(8, 16))
        cx.training.fit(model, (train_films, train_labels), epochs=30, verbose=0, seed=0,
                        guide=guide, early_stopping_patience=None, reduce_lr_patience=None)
        clf = cx.Classifier(model, ["N", "P"])
        right = clf.predict_proba(test_films).argmax(1) == test_labels
        maps = cx.CAM(clf).explain(test_films, targets=test_labels).heatmaps
        share = cx.lungs.shares.measure(maps, lungs).lung_share
        results[name] = (right[contradicting].mean(), np.nanmean(share))
    assert results["plain"][0] < 0.7  # measured 0.48: the marker decides
    assert results["guided"][0] > 0.85  # measured 1.00
    assert results["guided"][1] > results["plain"][1] + 0.15  # measured 0.93 against 0.65


def test_explanation_callback_explains_the_guided_classifier_and_logs_the_terms(
        tmp_path: Path) -> None:
    films, labels = marker_films(16, seed=0)
    model = small_model()
    callback = cx.training.ExplanationCallback(films[:4], out_dir=tmp_path / "pictures",
                                               class_names=["N", "P"])
    guide = cx.training.Guide(fixed_mask_segmenter(LUNGS), lungs=1.0)
    cx.training.fit(model, (films, labels), (films[:4], labels[:4]), epochs=1, guide=guide,
                    verbose=0, callbacks=[callback])
    assert callback.last_explanation is not None
    assert callback._explainer is not None and callback._explainer.model is model
    assert set(callback._guide_terms) == {"lung_outside", "val_lung_outside"}
    assert (tmp_path / "pictures" / "epoch_001.png").is_file()


def test_swap_consistency_is_the_symmetric_kl_of_the_twins() -> None:
    from cxrexplain.training.guide import _symmetric_kl

    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(3), 5).astype(np.float32)
    q = rng.dirichlet(np.ones(3), 5).astype(np.float32)
    expected = np.mean([(np.sum(a * np.log(a / b)) + np.sum(b * np.log(b / a))) / 2
                        for a, b in zip(p, q, strict=True)])
    assert float(_symmetric_kl(p, q)) == pytest.approx(expected, rel=1e-4)
    one = np.array([[0.2], [0.9]], np.float32)  # a sigmoid unit: two-class distributions
    two = np.array([[0.5], [0.6]], np.float32)
    expected_two = float(_symmetric_kl(np.hstack([1 - one, one]), np.hstack([1 - two, two])))
    assert float(_symmetric_kl(one, two)) == pytest.approx(expected_two)
    with pytest.raises(InvalidInputError, match="consistency"):
        cx.training.Guide(fixed_mask_segmenter(LUNGS), lungs=1.0, consistency=1.0)
    films, labels = marker_films(16, seed=0)
    guide = cx.training.Guide(fixed_mask_segmenter(LUNGS), swap=1.0, consistency=1.0)
    history = cx.training.fit(small_model(), (films, labels), epochs=1, guide=guide, verbose=0)
    assert history.history["swap_divergence"][0] > 0


# ------------------------------------------------- the design's names: Guidance, the swap as data
def _constant_folder(root: Path, values: tuple[float, ...]) -> None:
    for i, value in enumerate(values):
        folder = root / ("P" if i % 2 else "N")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), np.full((S, S), round(value * 255), np.uint8))


STILL = {"rotation": 0, "zoom": 0, "shift": 0, "brightness": 0, "contrast": 0}


def test_augmentation_background_swap_pastes_the_lungs_on_another_films_surroundings(
        tmp_path: Path) -> None:
    values = (0.2, 0.4, 0.6, 0.8, 1.0)
    _constant_folder(tmp_path / "data", values)
    seg = fixed_mask_segmenter(LUNGS)
    ds = cx.data.image_folder(tmp_path / "data", image_size=S, batch_size=5, shuffle=False,
                              augment=cx.data.Augmentation(**STILL, background_swap=seg))
    films, _ = next(iter(ds))  # the masks leave the element: plain films for any model
    films = films.numpy()
    own = np.array([values[int(Path(p).stem)] for p in ds.file_paths])
    grown = cx.lungs.geometry.dilate(LUNGS[None], cx.lungs.geometry.DEFAULT_MARGIN)[0]
    np.testing.assert_allclose(films[:, grown, 0], own[:, None] * np.ones((1, grown.sum())),
                               atol=1 / 255)  # the (grown) lungs are the film's own
    outside = films[:, ~grown, 0]
    assert np.ptp(outside, axis=1).max() < 1 / 255  # one donor per film
    donors = [int(np.argmin(np.abs(own - row[0]))) for row in outside]
    assert sorted(donors) == list(range(5)) and all(d != i for i, d in enumerate(donors))

    kept = cx.data.image_folder(tmp_path / "data", image_size=S, batch_size=5, shuffle=False,
                                lungs=seg, augment=cx.data.Augmentation(
                                    **STILL, background_swap=seg, swap_probability=0.0))
    inputs, _ = next(iter(kept))  # lungs= keeps the masks; probability 0 swaps nothing
    np.testing.assert_array_equal(inputs["lungs"].numpy()[0, ..., 0], LUNGS)
    np.testing.assert_allclose(inputs["images"].numpy()[:, 0, 0, 0], own, atol=1 / 255)
    val = cx.data.image_folder(tmp_path / "data", image_size=S, validation_split=0.4, seed=0,
                               augment=cx.data.Augmentation(**STILL, background_swap=seg))[1]
    assert isinstance(next(iter(val))[0], tf.Tensor)  # validation: never swapped, no masks
    with pytest.raises(InvalidInputError, match="background_swap"):
        cx.data.Augmentation(background_swap="lungs.keras")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="swap_probability"):
        cx.data.Augmentation(background_swap=seg, swap_probability=1.5)


def test_guidance_is_the_design_spelling_of_a_guide() -> None:
    seg = fixed_mask_segmenter(LUNGS)
    assert cx.training.Guidance(lungs=seg, lung_weight=1.0, box_weight=1.0) == \
        cx.training.Guide(seg, lungs=1.0, boxes=1.0)
    assert cx.training.Guidance(lungs=seg).lungs == cx.training.guide.RECOMMENDED_WEIGHT
    assert cx.training.Guidance(box_weight=0.5).terms == ("boxes",)
    films, labels = marker_films(16, seed=0)
    history = cx.training.fit(small_model(), (films, labels), epochs=1, verbose=0, seed=0,
                              guidance=cx.training.Guidance(lungs=seg, lung_weight=1.0))
    assert "lung_outside" in history.history
    with pytest.raises(InvalidInputError, match="one of the two"):
        cx.training.fit(small_model(), (films, labels), epochs=1, verbose=0,
                        guide=cx.training.Guide(seg, lungs=1.0),
                        guidance=cx.training.Guidance(lungs=seg))


def test_cross_validate_trains_every_fold_guided_and_records_the_guide(tmp_path: Path) -> None:
    films, labels = marker_films(12, seed=6)
    _write_folder(tmp_path / "data", films, labels)
    (tmp_path / "boxes.csv").write_text("image,finding,x,y,width,height\n"
                                        "P/1.png,x,8,10,12,10\nP/3.png,x,14,12,10,10\n")
    seg = fixed_mask_segmenter(LUNGS)
    seen: list[set[str]] = []

    class Keys(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            seen.append(set(logs or {}))

    def build(setup: cx.training.FoldSetup) -> keras.Model:
        return cx.models.build("cam_cnn", input_shape=setup.input_shape,
                               num_classes=setup.num_classes, filters=(4, 8))

    results = tmp_path / "cv"
    options: dict[str, object] = {"k": 2, "image_size": S, "epochs": 1, "batch_size": 6,
                                  "folds": [0], "validation_fraction": None,
                                  "results_dir": results}
    guide = cx.training.Guide(seg, lungs=1.0, boxes=0.5, swap=1.0)
    result = cx.training.cross_validate(build, tmp_path / "data", guide=guide,
                                        boxes=tmp_path / "boxes.csv",
                                        fit_options={"callbacks": [Keys()]}, **options)
    assert result.folds[0].report.n == 6
    assert {"lung_outside", "box_outside"} <= seen[0]  # both terms were in the loss
    record = json.loads((results / "fold_0.json").read_text())["setup"]["guide"]
    assert (record["lungs"], record["boxes"], record["swap"]) == (1.0, 0.5, 1.0)
    assert len(record["segmenter"]["weights"]) == 40 and len(record["box_table"]) == 40

    # another guide, or none, is another set-up: refused before training
    for other in ({"guide": cx.training.Guide(seg, lungs=0.2, boxes=0.5, swap=1.0),
                   "boxes": tmp_path / "boxes.csv"}, {}):
        with pytest.raises(InvalidInputError, match=r"another set-up \(differs in guide\)"):
            cx.training.cross_validate(build, tmp_path / "data", **other, **options)
    assert len(seen) == 1

    def never(setup: cx.training.FoldSetup) -> keras.Model:
        raise AssertionError("not reached")

    folder = tmp_path / "data"
    with pytest.raises(InvalidInputError, match="^boxes: the boxes serve a guide"):
        cx.training.cross_validate(never, folder, boxes=tmp_path / "boxes.csv")
    with pytest.raises(InvalidInputError, match="^guide: its box term needs"):
        cx.training.cross_validate(never, folder, guide=guide)
    with pytest.raises(InvalidInputError, match="not both"):
        cx.training.cross_validate(never, folder, guide=cx.training.Guide(seg, lungs=1.0),
                                   lungs=seg)
    with pytest.raises(InvalidInputError, match="given twice"):
        cx.training.cross_validate(never, folder, guide=cx.training.Guide(seg, lungs=1.0),
                                   fit_options={"guide": cx.training.Guide(seg, lungs=1.0)})
    with pytest.raises(InvalidInputError, match="^guide: expected a cx.training.Guide"):
        cx.training.cross_validate(never, folder, guide="lungs")  # type: ignore[arg-type]
