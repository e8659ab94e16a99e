"""Metrics against hand-computed cases, phantoms, and a CAM model trained on phantoms."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
from rounding import output_tolerance
from tiny_models import conv_gap_dense

import cxrexplain as cx
from cxrexplain import evaluate, metrics, synthetic
from cxrexplain.errors import InvalidInputError


# ---------------------------------------------------------------- pointing game
def _peak(size: int, y: int, x: int) -> np.ndarray:
    heat = np.zeros((size, size), np.float32)
    heat[y, x] = 1.0
    return heat


def test_pointing_game_inside_outside_and_tolerance() -> None:
    maps = np.stack([_peak(64, 20, 30), _peak(64, 50, 50), _peak(64, 14, 24)])
    boxes = np.array([[25, 15, 10, 10], [0, 0, 10, 10], [25, 15, 10, 10]])
    strict = metrics.pointing_game(maps, boxes, tolerance=0)
    assert strict.hits.tolist() == [True, False, False]
    assert strict.hit_rate == pytest.approx(1 / 3)
    assert strict.points.tolist() == [[30, 20], [50, 50], [24, 14]]
    grown = metrics.pointing_game(maps, boxes, tolerance=2)
    assert grown.hits.tolist() == [True, False, True]


def test_pointing_game_several_boxes_and_flat_maps() -> None:
    maps = np.stack([_peak(32, 5, 28), np.zeros((32, 32)), np.full((32, 32), 0.3)])
    boxes = [np.array([[0, 0, 4, 4], [25, 2, 5, 5]]), np.array([[0, 0, 32, 32]]),
             [[0, 0, 32, 32]]]
    result = metrics.pointing_game(maps, boxes, tolerance=0)
    assert result.hits.tolist() == [True, False, False]  # a flat map points nowhere
    assert result.points[1].tolist() == [-1, -1]


def test_pointing_game_accepts_an_explanation_object() -> None:
    class Fake:
        heatmaps = np.stack([_peak(16, 3, 3)])

    assert metrics.pointing_game(Fake(), [[0, 0, 5, 5]], tolerance=0).hit_rate == 1.0


@pytest.mark.parametrize(
    ("maps", "boxes", "kwargs"),
    [
        (np.zeros((2, 8, 8)), [[0, 0, 1, 1]], {}),
        (np.zeros((1, 8, 8)), [[0, 0, -1, 1]], {}),
        (np.zeros((1, 8, 8)), [[0, 0, 1, 1]], {"tolerance": -1}),
        (np.full((1, 8, 8), np.nan), [[0, 0, 1, 1]], {}),
        (np.zeros(8), [[0, 0, 1, 1]], {}),
    ],
    ids=["count", "negative-width", "tolerance", "nan", "rank"],
)
def test_pointing_game_bad_input(maps: np.ndarray, boxes: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        metrics.pointing_game(maps, boxes, **kwargs)


# ---------------------------------------------------------------- energy in mask
def test_uniform_map_energy_is_the_mask_area_fraction() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((4, 20, 30)) > 0.7
    energy = metrics.energy_in_mask(np.ones((4, 20, 30)), masks)
    np.testing.assert_allclose(energy, masks.mean(axis=(1, 2)))


def test_energy_hand_computed_zero_map_and_resized_mask() -> None:
    heat = np.zeros((2, 4, 4))
    heat[0, 0, 0], heat[0, 3, 3] = 3.0, 1.0
    mask = np.zeros((2, 8, 8), np.uint8)
    mask[:, :4, :4] = 255  # top-left quarter, at twice the resolution, 0/255
    energy = metrics.energy_in_mask(heat, mask)
    assert energy[0] == pytest.approx(0.75)
    assert np.isnan(energy[1])  # an all-zero map has no mass to share
    with pytest.raises(InvalidInputError, match="non-negative"):
        metrics.energy_in_mask(-np.ones((1, 4, 4)), np.ones((1, 4, 4)))
    with pytest.raises(InvalidInputError, match="masks"):
        metrics.energy_in_mask(np.ones((2, 4, 4)), np.ones((3, 4, 4)))


# ---------------------------------------------------------------- deletion / insertion
def _linear_model(weights: np.ndarray, bias: float) -> keras.Model:
    """p(x) = sigmoid(sum(W * x) + b): a model whose output is a known function of pixels."""
    size = weights.shape[0]
    model = keras.Sequential([keras.Input((size, size, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.layers[-1].set_weights([weights.reshape(-1, 1).astype(np.float32),
                                  np.array([bias], np.float32)])
    return model


def _by_hand(weights: np.ndarray, bias: float, image: np.ndarray, heat: np.ndarray,
             steps: int, deletion: bool) -> tuple[np.ndarray, float]:
    pixels = heat.size
    order = np.argsort(-heat.ravel(), kind="stable")
    curve = []
    for count in np.round(np.linspace(0, pixels, steps + 1)).astype(int):
        keep = np.zeros(pixels, bool)
        keep[order[:count]] = True
        x = image.ravel().copy()
        x = np.where(keep, 0.0, x) if deletion else np.where(keep, x, 0.0)
        curve.append(1 / (1 + np.exp(-(weights.ravel() @ x + bias))))
    curve_array = np.array(curve)
    fractions = np.round(np.linspace(0, pixels, steps + 1)) / pixels
    return curve_array, float(np.trapezoid(curve_array, fractions))


@pytest.mark.parametrize("deletion", [True, False], ids=["deletion", "insertion"])
def test_perturbation_curve_matches_hand_computation(deletion: bool) -> None:
    rng = np.random.default_rng(1)
    weights = rng.normal(0, 0.3, (8, 8))
    image = rng.random((8, 8)).astype(np.float32)
    heat = np.clip(weights * image, 0, None)
    clf = cx.Classifier(_linear_model(weights, -0.5), ["NEG", "POS"])
    curves = metrics.perturbation_curves(
        clf, image[None, :, :, None], heat[None], targets=1, steps=16,
        mode="deletion" if deletion else "insertion", baseline=0.0, batch_size=7,
    )
    expected_curve, expected_auc = _by_hand(weights, -0.5, image, heat, 16, deletion)
    tolerance = output_tolerance(clf.model)  # float32 batches against float64 (rounding.py)
    np.testing.assert_allclose(curves.probabilities[0], expected_curve, rtol=0, atol=tolerance)
    assert curves.auc[0] == pytest.approx(expected_auc, abs=tolerance)
    function = metrics.deletion_auc if deletion else metrics.insertion_auc
    np.testing.assert_allclose(
        function(clf, image[None, :, :, None], heat[None], targets=[1], steps=16, baseline=0.0),
        curves.auc, atol=1e-7)


def test_faithful_map_beats_its_reverse_on_deletion_and_insertion() -> None:
    rng = np.random.default_rng(2)
    weights = np.abs(rng.normal(0, 0.3, (8, 8)))
    images = rng.random((3, 8, 8, 1)).astype(np.float32)
    faithful = weights[None] * images[..., 0]
    reverse = faithful.max() - faithful
    clf = cx.Classifier(_linear_model(weights, -2.0), ["NEG", "POS"])
    good_del = metrics.deletion_auc(clf, images, faithful, targets=1, steps=20)
    bad_del = metrics.deletion_auc(clf, images, reverse, targets=1, steps=20)
    assert (good_del < bad_del).all()
    good_ins = metrics.insertion_auc(clf, images, faithful, targets=1, steps=20, baseline=0.0)
    bad_ins = metrics.insertion_auc(clf, images, reverse, targets=1, steps=20, baseline=0.0)
    assert (good_ins > bad_ins).all()


def test_perturbation_bad_input() -> None:
    clf = cx.Classifier(_linear_model(np.ones((8, 8)), 0.0))
    images = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(InvalidInputError, match="heatmaps"):
        metrics.deletion_auc(clf, images, np.zeros((3, 8, 8)))
    with pytest.raises(InvalidInputError, match="steps"):
        metrics.deletion_auc(clf, images, np.zeros((2, 8, 8)), steps=0)
    with pytest.raises(InvalidInputError, match="baseline"):
        metrics.deletion_auc(clf, images, np.zeros((2, 8, 8)), baseline="noise")  # type: ignore
    with pytest.raises(InvalidInputError, match="targets"):
        metrics.deletion_auc(clf, images, np.zeros((2, 8, 8)), targets=[0, 7])


# ---------------------------------------------------------------- randomization
def test_spearman_against_hand_values_and_ties() -> None:
    a = np.array([[1, 2, 3, 4, 5], [1, 1, 2, 2, 3], [1, 1, 1, 1, 1]], float)
    b = np.array([[5, 6, 7, 8, 7], [1, 1, 2, 2, 3], [1, 2, 3, 4, 5]], float)
    result = metrics.spearman(a, b)
    # ranks of b[0]: 1, 2, 3.5, 5, 3.5 -> Pearson with 1..5
    rx = np.arange(1, 6) - 3.0
    ry = np.array([1, 2, 3.5, 5, 3.5]) - 3.0
    assert result[0] == pytest.approx((rx @ ry) / np.sqrt((rx @ rx) * (ry @ ry)))
    assert result[1] == pytest.approx(1.0)
    assert np.isnan(result[2])


def _small_cnn() -> keras.Sequential:
    """Conv 6 -> Conv 8 ``last_conv`` -> GAP -> Dense 2 softmax, 24x24x1, random seed 5."""
    return conv_gap_dense(filters=(6, 8), padding="same", last_conv="last_conv", seed=5)


def test_randomization_changes_maps_and_leaves_the_model_alone() -> None:
    model = _small_cnn()
    before = [w.copy() for w in model.get_weights()]
    images = synthetic.phantoms(4, size=32, seed=3)[0][:, 4:28, 4:28]
    result = metrics.randomization_check(cx.GradCAM(model), images, seed=1)
    assert result.layers == ["dense", "last_conv", "conv2d"] or len(result.layers) == 3
    assert result.correlations.shape == (3, 4)
    assert result.mean[-1] < 0.9  # with every layer re-initialised the maps changed
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    independent = metrics.randomization_check(cx.CAM(model), images, layers=1, cascading=False)
    assert independent.layers == [result.layers[0]]


def test_randomization_bad_layer_name() -> None:
    with pytest.raises(InvalidInputError, match="no layer with weights"):
        metrics.randomization_check(cx.GradCAM(_small_cnn()), np.zeros((1, 24, 24, 1)),
                                    layers=["nope"])


# ---------------------------------------------------------------- phantoms
def test_phantoms_are_deterministic_and_lesions_lie_in_the_lungs() -> None:
    data = synthetic.generate(12, size=64, classes=("NORMAL", "PNEUMONIA", "COVID"), seed=4)
    again = synthetic.phantoms(12, size=64, classes=("NORMAL", "PNEUMONIA", "COVID"), seed=4)
    np.testing.assert_array_equal(data.images, again[0])
    assert data.images.shape == (12, 64, 64, 1)
    assert data.labels.tolist() == [0, 1, 2] * 4
    assert not data.masks[data.labels == 0].any()
    assert all(data.masks[i].any() for i in np.flatnonzero(data.labels > 0))
    assert not (data.masks & ~data.lung_masks).any()
    # the lesion is brighter than the rest of its lung
    for i in np.flatnonzero(data.labels == 1):
        rest = data.lung_masks[i] & ~data.masks[i]
        assert data.images[i, ..., 0][data.masks[i]].mean() > data.images[i, ..., 0][rest].mean()
    assert synthetic.phantoms(2, size=32, channels=3)[0].shape == (2, 32, 32, 3)
    with pytest.raises(InvalidInputError):
        synthetic.phantoms(0)


def _mask_boxes(masks: np.ndarray) -> list[np.ndarray]:
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        boxes.append(np.array([[xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                ys.max() - ys.min() + 1]]))
    return boxes


def test_cam_model_trained_on_phantoms_finds_the_lesion() -> None:
    keras.utils.set_random_seed(0)
    train = synthetic.generate(384, size=64, seed=10)

    def block(filters: int) -> list[keras.layers.Layer]:
        return [keras.layers.Conv2D(filters, 3, padding="same", use_bias=False),
                keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU()]

    model = keras.Sequential([
        keras.Input((64, 64, 1)), *block(16), keras.layers.MaxPooling2D(),
        *block(32), keras.layers.MaxPooling2D(), *block(32),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax"),
    ])
    # cosine decay to 0: with a constant 3e-3 the last steps move the weights away from the
    # BatchNormalization moving statistics and inference accuracy drops well below training's
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=20 * 12)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss="sparse_categorical_crossentropy")
    model.fit(train.images, train.labels, epochs=20, batch_size=32, verbose=0)
    test = synthetic.generate(64, size=64, seed=11)
    clf = cx.Classifier(model, ["NORMAL", "PNEUMONIA"])
    accuracy = (clf.predict_proba(test.images).argmax(axis=1) == test.labels).mean()
    assert accuracy >= 0.9
    sick = np.flatnonzero(test.labels == 1)[:32]
    exp = cx.CAM(clf).explain(test.images[sick], targets="PNEUMONIA")
    result = metrics.pointing_game(exp, _mask_boxes(test.masks[sick]), tolerance=4)
    assert result.hit_rate >= 0.8
    inside = metrics.energy_in_mask(exp, test.masks[sick])
    assert np.nanmean(inside) > test.masks[sick].mean()  # more mass on the lesion than chance


# ---------------------------------------------------------------- the evaluation table
def test_evaluate_explainers_table_matches_the_metrics() -> None:
    import json

    data = synthetic.generate(6, size=32, seed=7)
    model = _small_cnn()
    clf = cx.Classifier(model, ["NORMAL", "PNEUMONIA"])
    boxes = [np.array([[4, 4, 8, 8]])] * 6
    table = cx.evaluate_explainers(clf, ["cam", cx.GradCAM], data.images, targets=1,
                                   boxes=boxes, masks=data.lung_masks, steps=5,
                                   randomization_layers=1)
    assert [row["method"] for row in table.rows] == ["cam", "gradcam", "random",
                                                     "centre_gaussian"]
    assert table.metrics == ["pointing_game", "mask_energy", "deletion_auc", "insertion_auc",
                             "randomization_spearman", "seconds_per_image"]
    cam = cx.CAM(clf).explain(data.images, targets=1)
    assert table.value("cam", "pointing_game") == metrics.pointing_game(cam, boxes).hit_rate
    assert table.value("cam", "deletion_auc") == pytest.approx(float(np.mean(
        metrics.deletion_auc(clf, data.images, cam.heatmaps, targets=1, steps=5))))
    assert np.isnan(table.value("random", "randomization_spearman"))
    markdown = table.to_markdown()
    assert "| centre_gaussian |" in markdown
    assert "n/a" in markdown
    parsed = json.loads(table.to_json())
    assert parsed["rows"][2]["randomization_spearman"] is None
    assert parsed["settings"]["targets"] == [1] * 6
    with pytest.raises(InvalidInputError, match="unknown explainer"):
        cx.evaluate_explainers(clf, ["magic"], data.images)


def test_evaluate_explainers_intervals_gaps_and_paired_differences() -> None:
    """Every cell has the bootstrap interval of its per-image values; gaps to the reference
    row and the paired differences are recomputed here from the metrics themselves."""
    import json

    data = synthetic.generate(8, size=32, seed=3)
    model = conv_gap_dense(filters=(6, 8), padding="same", size=32, seed=5)  # no resizing
    clf = cx.Classifier(model, ["NORMAL", "PNEUMONIA"])
    boxes = [np.array([[4, 4, 12, 12]])] * 4 + [np.array([[10, 10, 12, 12]])] * 4
    table = cx.evaluate_explainers(clf, ["hirescam"], data.images, targets=1, boxes=boxes,
                                   masks=data.lung_masks, steps=4, randomization_layers=None,
                                   n_resamples=500, seed=2)
    grad = cx.HiResCAM(clf).explain(data.images, targets=1)
    assert (grad.heatmaps.max(axis=(1, 2)) > 0).all()
    energy = metrics.energy_in_mask(grad, data.lung_masks).astype(np.float64)
    draws = np.random.default_rng(2).integers(0, 8, (500, 8))
    resampled = energy[draws].mean(axis=1)
    low, high = table.interval("hirescam", "mask_energy")
    assert low == pytest.approx(np.quantile(resampled, 0.025))
    assert high == pytest.approx(np.quantile(resampled, 0.975))
    centre = evaluate.baseline_maps("centre_gaussian", 8, (32, 32))
    centre_energy = metrics.energy_in_mask(centre, data.lung_masks).astype(np.float64)
    assert table.reference == "centre_gaussian"
    expected_gap = 100 * (energy.mean() - centre_energy.mean()) / abs(centre_energy.mean())
    assert table.gap("hirescam", "mask_energy") == pytest.approx(expected_gap)
    difference = table.differences["hirescam"]["mask_energy"]
    paired = (energy - centre_energy)[draws].mean(axis=1)
    assert difference.low == pytest.approx(np.quantile(paired, 0.025))
    assert difference.high == pytest.approx(np.quantile(paired, 0.975))
    markdown = table.to_markdown()
    cell = f"{table.value('hirescam', 'mask_energy'):.3f} [{low:.3f}, {high:.3f}]"
    assert cell in markdown and "gap to centre_gaussian" in markdown
    parsed = json.loads(table.to_json())
    assert parsed["intervals"]["hirescam"]["mask_energy"] == pytest.approx([low, high])
    assert parsed["gaps_percent"]["hirescam"]["mask_energy"] == pytest.approx(expected_gap)

    numbers = cx.evaluate_explainers(clf, ["cam"], data.images, targets=1, boxes=boxes,
                                     steps=4, randomization_layers=None, baselines=False,
                                     reference={"pointing_game": 0.5})
    hit = numbers.value("cam", "pointing_game")
    assert numbers.gap("cam", "pointing_game") == pytest.approx(100 * (hit - 0.5) / 0.5)
    assert numbers.differences == {}
    with pytest.raises(InvalidInputError, match="no row 'radiologists'"):
        cx.evaluate_explainers(clf, ["cam"], data.images, steps=4, randomization_layers=None,
                               reference="radiologists")
    with pytest.raises(InvalidInputError, match="no metric 'iou'"):
        cx.evaluate_explainers(clf, ["cam"], data.images, steps=4, randomization_layers=None,
                               reference={"iou": 0.4})
