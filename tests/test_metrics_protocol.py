"""The CXR-paper localisation protocol against independent references.

Otsu against ``cv2.threshold(..., THRESH_OTSU)``, AUPRC against a plain precision-recall sum
(and scikit-learn when installed), the bootstrap against a loop over the same draws, SSIM
against closed forms (and scikit-image when installed), IoU, hit rate and boxes on planted
and hand-drawn cases.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from tiny_models import conv_gap_dense

import cxrexplain as cx
from cxrexplain import metrics, synthetic
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics import randomization, thresholding


def _cv2_otsu(u8: np.ndarray) -> np.ndarray:
    return cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1] > 0


def _eight_bit(heat: np.ndarray) -> np.ndarray:
    """CheXlocalize's 8-bit map: ``np.uint8(255 * (m - min) / (max - min))``."""
    values = heat.astype(np.float64)
    return np.floor((values - values.min()) / (values.max() - values.min()) * 255).astype(
        np.uint8)


# ---------------------------------------------------------------- binarize: Otsu
def test_otsu_matches_opencv_on_random_and_bimodal_8_bit_maps() -> None:
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 256, (6, 19, 23)).astype(np.uint8)
    dark = rng.random((6, 19, 23)) < np.linspace(0.2, 0.8, 6)[:, None, None]
    bimodal = np.where(dark, rng.normal(60, 12, dark.shape), rng.normal(185, 20, dark.shape))
    bimodal = bimodal.clip(0, 255).astype(np.uint8)
    three_levels = rng.choice([0, 40, 255], (6, 19, 23)).astype(np.uint8)
    for stack in (uniform, bimodal, three_levels):
        stack[:, 0, 0], stack[:, 0, 1] = 0, 255  # min 0, max 255: the map is its own 8-bit map
        got = metrics.binarize(stack.astype(np.float32))  # all images in one call
        expected = np.stack([_cv2_otsu(u8) for u8 in stack])
        np.testing.assert_array_equal(got, expected)
        assert 0 < got.sum() < got.size


def test_otsu_threshold_values_match_opencv_across_empty_bins() -> None:
    rng = np.random.default_rng(12)
    # few levels: long runs of empty bins where the between-class variance is flat (ties)
    stack = np.stack([rng.choice(rng.choice(256, 3, replace=False), (9, 11)) for _ in range(40)])
    stack = stack.astype(np.uint8)
    expected = [cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[0] for u8 in stack]
    assert thresholding.otsu_thresholds(stack).tolist() == expected


def test_otsu_on_float_maps_uses_the_truncated_8_bit_map() -> None:
    rng = np.random.default_rng(1)
    heat = rng.gamma(2.0, 1.0, (4, 16, 16)) * 3.0 + 5.0  # arbitrary offset and scale
    got = metrics.binarize(heat)
    expected = np.stack([_cv2_otsu(_eight_bit(h)) for h in heat])
    np.testing.assert_array_equal(got, expected)
    # min-max normalisation: an affine change of a map does not change its mask
    np.testing.assert_array_equal(metrics.binarize(heat * 0.01 - 7.0), got)


def test_otsu_splits_a_planted_blob_and_flat_maps_give_empty_masks() -> None:
    heat = np.full((3, 12, 12), 0.1)
    heat[0, 3:7, 4:9] = 0.9
    heat[1] = 0.0  # flat zero
    heat[2] = 0.7  # flat non-zero
    masks = metrics.binarize(heat)
    planted = np.zeros((12, 12), bool)
    planted[3:7, 4:9] = True
    np.testing.assert_array_equal(masks[0], planted)
    assert not masks[1:].any()
    assert not metrics.binarize(heat, threshold=0.0)[1:].any()


# ---------------------------------------------------------------- binarize: fixed, gate
def test_fixed_threshold_is_strict_on_the_normalised_map() -> None:
    heat = np.array([[[2.0, 4.0, 6.0, 10.0]]])  # normalised: 0, 0.25, 0.5, 1
    assert metrics.binarize(heat, threshold=0.5)[0, 0].tolist() == [False, False, False, True]
    assert metrics.binarize(heat, threshold=0.49)[0, 0].tolist() == [False, False, True, True]
    assert metrics.binarize(heat, threshold=0.0)[0, 0].tolist() == [False, True, True, True]
    assert not metrics.binarize(heat, threshold=1.0).any()
    assert metrics.binarize(heat[0]).shape == (1, 1, 4)  # one (H, W) map


def test_gate_empties_images_below_the_probability() -> None:
    heat = np.zeros((3, 5, 5))
    heat[:, 2, 2] = 1.0
    masks = metrics.binarize(heat, threshold=0.5, probabilities=[0.2, 0.5, 0.9], gate=0.5)
    assert masks.any(axis=(1, 2)).tolist() == [False, True, True]  # p == gate passes
    otsu = metrics.binarize(heat, probabilities=np.array([[0.9], [0.1], [0.6]]), gate=0.5)
    assert otsu.any(axis=(1, 2)).tolist() == [True, False, True]


def test_gate_reads_the_scores_of_an_explanation() -> None:
    class Fake:
        heatmaps = np.zeros((2, 4, 4), np.float32)
        heatmaps[:, 1, 1] = 1.0
        scores = np.array([0.3, 0.8], np.float32)

    assert metrics.binarize(Fake(), gate=0.5).any(axis=(1, 2)).tolist() == [False, True]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": "mean"}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": None}, "threshold"),
        ({"gate": 0.5}, "probabilities"),
        ({"probabilities": [0.5, 0.5]}, "gate"),
        ({"probabilities": [0.5], "gate": 0.5}, "probabilities"),
        ({"probabilities": [0.5, 0.5], "gate": 1.5}, "gate"),
    ],
    ids=["word", "above-1", "below-0", "nan", "none", "gate-alone", "probs-alone",
         "probs-count", "gate-range"],
)
def test_binarize_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        metrics.binarize(np.random.default_rng(0).random((2, 6, 6)), **kwargs)


def test_binarize_rejects_bad_maps() -> None:
    with pytest.raises(InvalidInputError, match="heatmaps"):
        metrics.binarize(np.zeros(6))
    with pytest.raises(InvalidInputError, match="heatmaps"):
        metrics.binarize(np.zeros((0, 4, 4)))


# ---------------------------------------------------------------- tune_threshold
def _ramp(count: int) -> np.ndarray:
    """Maps rising left to right: column c has value c / 9 (10 columns)."""
    return np.tile(np.linspace(0.0, 1.0, 10), (count, 10, 1))


def test_tune_threshold_finds_the_planted_best_threshold() -> None:
    heat = _ramp(3)
    truth = heat > 0.45  # columns 5..9: exactly what threshold 0.5 keeps (5/9 > 0.5 > 4/9)
    assert metrics.tune_threshold(heat, truth) == pytest.approx(0.5)
    # 0.7 keeps columns 7..9 (IoU 3/5), 0.6 keeps 6..9 (4/5), 0.3 keeps 3..9 (5/7)
    assert metrics.tune_threshold(heat, truth, grid=[0.7, 0.6, 0.3]) == pytest.approx(0.6)


def test_tune_threshold_maximises_the_mean_iou_by_brute_force() -> None:
    rng = np.random.default_rng(2)
    heat = rng.random((6, 8, 8))
    truth = rng.random((6, 8, 8)) < 0.3
    grid = np.linspace(0.0, 1.0, 11)
    means = [np.nanmean(metrics.iou(metrics.binarize(heat, threshold=t), truth)) for t in grid]
    assert metrics.tune_threshold(heat, truth, grid=grid) == pytest.approx(
        grid[int(np.argmax(means))])


def test_tune_threshold_per_class_and_ties_go_to_the_first() -> None:
    heat = _ramp(4)
    truth = np.concatenate([heat[:2] > 0.45, heat[2:] > 0.75])  # best: 0.5 and 0.7
    best = metrics.tune_threshold(heat, truth, labels=["Edema", "Edema", "Effusion", "Effusion"])
    assert best == pytest.approx({"Edema": 0.5, "Effusion": 0.7})
    assert list(best) == ["Edema", "Effusion"]
    by_index = metrics.tune_threshold(heat, truth, labels=np.array([3, 3, 1, 1]))
    assert by_index == pytest.approx({1: 0.7, 3: 0.5})
    assert all(type(k) is int for k in by_index)
    # 0.45 and 0.5 keep the same columns (5..9): equal IoU, the first in grid order wins
    assert metrics.tune_threshold(heat[:1], truth[:1], grid=[0.5, 0.45]) == 0.5
    assert metrics.tune_threshold(heat[:1], truth[:1], grid=[0.45, 0.5]) == 0.45


def test_tune_threshold_respects_the_gate_and_returns_nan_with_nothing_to_tune() -> None:
    heat = _ramp(2)
    truth = np.stack([heat[0] > 0.45, heat[1] > 0.75])
    # the second image is gated off: its IoU is 0 at every threshold, the first decides
    tuned = metrics.tune_threshold(heat, truth, probabilities=[0.9, 0.1], gate=0.5)
    assert tuned == pytest.approx(0.5)
    assert metrics.tune_threshold(heat, truth, probabilities=[0.1, 0.9], gate=0.5) == 0.7
    nothing = metrics.tune_threshold(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), labels=[0, 1])
    assert set(nothing) == {0, 1} and all(np.isnan(v) for v in nothing.values())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid": []}, "grid"),
        ({"grid": [0.2, 1.2]}, "grid"),
        ({"grid": "0.5"}, "grid"),
        ({"labels": [0]}, "labels"),
        ({"labels": [[0, 1]]}, "labels"),
    ],
    ids=["empty-grid", "grid-range", "grid-text", "labels-count", "labels-shape"],
)
def test_tune_threshold_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        metrics.tune_threshold(_ramp(2), _ramp(2) > 0.5, **kwargs)
    with pytest.raises(InvalidInputError, match="masks"):
        metrics.tune_threshold(_ramp(2), np.zeros((3, 10, 10)))


# ------------------------------------------------------ empty bool masks (not cv2.error)
_MAPS = np.random.default_rng(0).uniform(size=(2, 8, 8)).astype(np.float32)
_EMPTY = {"0x0": np.zeros((2, 0, 0), bool), "0xW": np.zeros((2, 0, 8), bool),
          "Hx0": np.zeros((2, 8, 0), bool)}


@pytest.mark.parametrize("shape", list(_EMPTY))
@pytest.mark.parametrize(
    ("call", "argument"),
    [  # each ended in cv2.error (!ssize.empty() in resize): bool skipped the size rule
        (lambda e: metrics.energy_in_mask(_MAPS, e), "masks"),
        (lambda e: metrics.tune_threshold(_MAPS, e), "masks"),
        (lambda e: metrics.iou(e, _MAPS > 0.5), "pred_masks"),
        (lambda e: metrics.iou(_MAPS > 0.5, e), "true_masks"),
        (lambda e: metrics.iou(e, e), "pred_masks"),
        (lambda e: metrics.hit_rate(_MAPS, e), "true_masks"),
        (lambda e: metrics.pixel_auprc(_MAPS, e), "true_masks"),
        (lambda e: metrics.hit_rate(e, e), "heatmaps"),
    ],
    ids=["energy_in_mask", "tune_threshold", "iou-pred", "iou-true", "iou-both", "hit_rate",
         "pixel_auprc", "hit_rate-maps"],
)
def test_empty_bool_masks_raise_invalid_input(call: Any, argument: str, shape: str) -> None:
    with pytest.raises(InvalidInputError, match="empty") as info:
        call(_EMPTY[shape])
    assert str(info.value).startswith(argument), str(info.value)


# ---------------------------------------------------------------- iou
def test_iou_against_hand_counts() -> None:
    pred = np.zeros((4, 6, 6), bool)
    true = np.zeros((4, 6, 6), bool)
    pred[0, :3, :4], true[0, 1:4, 2:6] = True, True  # 12 and 12 pixels, 4 shared -> 4 / 20
    pred[1, 2:4, 2:4] = true[1, 2:4, 2:4] = True  # identical
    true[2, 0, 0] = True  # empty prediction
    # image 3: both empty -> undefined
    result = metrics.iou(pred, true)
    assert result[:3].tolist() == [pytest.approx(0.2), 1.0, 0.0]
    assert np.isnan(result[3])
    assert metrics.iou(pred.astype(np.uint8) * 255, true)[:3] == pytest.approx([0.2, 1.0, 0.0])


def test_iou_resizes_true_masks_to_the_predicted_size() -> None:
    pred = np.zeros((1, 4, 4), bool)
    pred[0, :2, :2] = True
    true = np.zeros((1, 8, 8), bool)
    true[0, :4, :4] = True
    assert metrics.iou(pred, true).tolist() == [1.0]
    with pytest.raises(InvalidInputError, match="true_masks"):
        metrics.iou(pred, np.zeros((2, 4, 4)))
    with pytest.raises(InvalidInputError, match="pred_masks"):
        metrics.iou(np.zeros(4), true)


# ---------------------------------------------------------------- hit rate
def test_hit_rate_on_planted_peaks_ties_flat_maps_and_empty_masks() -> None:
    heat = np.zeros((5, 8, 8))
    truth = np.zeros((5, 8, 8), bool)
    truth[:, 2:5, 2:5] = True
    heat[0, 3, 4] = 1.0  # inside
    heat[1, 7, 0] = 1.0  # outside
    heat[2, 0, 0] = heat[2, 3, 3] = 1.0  # a tie: the first in row-major order, (0, 0), misses
    heat[3] = 0.5  # flat: no peak (though argmax, pixel (0, 0), is in its mask)
    truth[3, 0, 0] = True
    heat[4, 3, 3] = 1.0
    truth[4] = False  # nothing to hit
    result = metrics.hit_rate(heat, truth)
    assert result[:4].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert np.isnan(result[4])
    assert np.nanmean(result) == pytest.approx(0.25)
    heat[2, 0, 0] = 0.0  # the tie broken: a hit
    assert metrics.hit_rate(heat, truth.astype(np.uint8) * 255)[2] == 1.0


def test_hit_rate_agrees_with_the_pointing_game_on_boxes() -> None:
    rng = np.random.default_rng(3)
    heat = rng.random((30, 16, 16))
    boxes = np.column_stack([rng.integers(0, 12, (30, 2)), rng.integers(1, 8, (30, 2))])
    hits = metrics.hit_rate(heat, metrics.boxes_to_masks(boxes, 16))
    pointing = metrics.pointing_game(heat, boxes, tolerance=0).hits
    np.testing.assert_array_equal(hits == 1.0, pointing)
    assert 0 < pointing.sum() < 30


# ---------------------------------------------------------------- pixel AUPRC
def _plain_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """sum_n (R_n - R_{n-1}) P_n over the distinct scores, from the highest down."""
    positives = labels.sum()
    total, recall_before = 0.0, 0.0
    for cut in np.unique(scores)[::-1]:
        chosen = scores >= cut
        precision = labels[chosen].sum() / chosen.sum()
        recall = labels[chosen].sum() / positives
        total += (recall - recall_before) * precision
        recall_before = recall
    return float(total)


def test_pixel_auprc_matches_a_plain_precision_recall_sum_with_ties() -> None:
    rng = np.random.default_rng(4)
    heat = np.round(rng.random((5, 9, 7)) * 6) / 6  # 7 levels: many ties
    truth = rng.random((5, 9, 7)) < 0.3
    heat[0] = rng.random((9, 7))  # no ties
    expected = [_plain_ap(h.ravel(), t.ravel()) for h, t in zip(heat, truth, strict=True)]
    np.testing.assert_allclose(metrics.pixel_auprc(heat, truth), expected, rtol=1e-12)


def test_pixel_auprc_matches_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    heat = np.round(rng.random((4, 10, 10)) * 10) / 10
    truth = rng.random((4, 10, 10)) < 0.2
    expected = [sklearn_metrics.average_precision_score(t.ravel(), h.ravel())
                for h, t in zip(heat, truth, strict=True)]
    np.testing.assert_allclose(metrics.pixel_auprc(heat, truth), expected, rtol=1e-12)


def test_pixel_auprc_hand_cases() -> None:
    heat = np.zeros((4, 4, 4))
    truth = np.zeros((4, 4, 4), bool)
    heat[0, :2], truth[0, :2] = 1.0, True  # the mask ranked first: AP 1
    heat[1] = 0.3  # all tied: precision = area fraction at the only step
    truth[1, 0] = True
    truth[2, 0, 0] = True  # heat all 0 except a wrong peak: the positive ties with 14 others
    heat[2, 3, 3] = 1.0
    result = metrics.pixel_auprc(heat, truth)
    assert result[:3].tolist() == pytest.approx([1.0, 0.25, 1 / 16])
    assert np.isnan(result[3])  # no finding
    # rank-based: a monotone transform of the maps changes nothing
    np.testing.assert_array_equal(metrics.pixel_auprc(np.exp(3 * heat), truth)[:3], result[:3])


# ---------------------------------------------------------------- boxes
def test_boxes_to_masks_against_hand_drawn_masks() -> None:
    masks = metrics.boxes_to_masks(
        [np.array([[1, 1, 2, 1], [4, 2, 1, 2]]), [[0.5, 0, 1, 1]], []], (4, 6))
    drawn = np.array([
        [[0, 0, 0, 0, 0, 0],
         [0, 1, 1, 0, 0, 0],
         [0, 0, 0, 0, 1, 0],
         [0, 0, 0, 0, 1, 0]],
        # x from 0.5 to 1.5 covers the centres 0.5 and 1.5 of columns 0 and 1
        [[1, 1, 0, 0, 0, 0],
         [0, 0, 0, 0, 0, 0],
         [0, 0, 0, 0, 0, 0],
         [0, 0, 0, 0, 0, 0]],
        np.zeros((4, 6)),
    ], bool)
    np.testing.assert_array_equal(masks, drawn)


def test_boxes_to_masks_one_box_per_image_and_clipping() -> None:
    masks = metrics.boxes_to_masks(np.array([[2, 1, 3, 2], [-3, -3, 5, 5]]), 5)
    assert masks.shape == (2, 5, 5)
    assert masks[0].sum() == 6 and masks[0, 1:3, 2:5].all()
    assert masks[1].sum() == 4 and masks[1, :2, :2].all()  # the part inside the image


@pytest.mark.parametrize(
    ("boxes", "shape", "match"),
    [
        ([[0, 0, -1, 2]], 4, "boxes"),
        ([[0, 0, 1]], 4, "boxes"),
        ("box", 4, "boxes"),
        ([], 4, "boxes"),
        ([[0, 0, 1, 1]], (4, 4, 4), "shape"),
        ([[0, 0, 1, 1]], 0, "shape"),
    ],
    ids=["negative", "three-numbers", "text", "none", "shape-3", "shape-0"],
)
def test_boxes_to_masks_errors(boxes: Any, shape: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        metrics.boxes_to_masks(boxes, shape)


# ---------------------------------------------------------------- bootstrap
def test_bootstrap_ci_equals_a_loop_over_the_same_draws() -> None:
    values = np.random.default_rng(6).random(37)
    values[[3, 10]] = np.nan
    result = metrics.bootstrap_ci(values, n_resamples=500, level=0.9, seed=7)
    kept = values[~np.isnan(values)]
    picks = np.random.default_rng(7).integers(0, kept.size, (500, kept.size))
    means = np.array([np.mean([kept[j] for j in row]) for row in picks])
    assert result.mean == pytest.approx(np.mean(kept))
    assert result.low == pytest.approx(np.percentile(means, 5))
    assert result.high == pytest.approx(np.percentile(means, 95))
    mean, low, high = result  # unpacks as a 3-tuple
    assert low < mean < high
    assert isinstance(result, metrics.Interval) and tuple(result) == (mean, low, high)


def test_bootstrap_ci_is_seeded_and_narrows_with_more_images() -> None:
    rng = np.random.default_rng(8)
    few, many = rng.random(20), rng.random(2000)
    assert metrics.bootstrap_ci(few, seed=3) == metrics.bootstrap_ci(few, seed=3)
    assert metrics.bootstrap_ci(few, seed=3) != metrics.bootstrap_ci(few, seed=4)
    wide, narrow = metrics.bootstrap_ci(few), metrics.bootstrap_ci(many)
    assert narrow.high - narrow.low < (wide.high - wide.low) / 3
    hits = metrics.bootstrap_ci(np.array([True, False, True, True]))
    assert hits.mean == 0.75 and 0.0 <= hits.low <= hits.high <= 1.0


def test_paired_bootstrap_ci_resamples_pairs() -> None:
    rng = np.random.default_rng(9)
    a = rng.random(40)
    b = a - 0.05 + rng.normal(0, 0.01, 40)  # b is a little worse on every image
    a[0], b[1] = np.nan, np.nan  # both pairs dropped
    result = metrics.paired_bootstrap_ci(a, b, n_resamples=300, seed=2)
    diff = (a - b)[2:]
    picks = np.random.default_rng(2).integers(0, diff.size, (300, diff.size))
    means = np.array([diff[row].mean() for row in picks])
    assert result == pytest.approx((diff.mean(), np.percentile(means, 2.5),
                                    np.percentile(means, 97.5)))
    assert result.low > 0  # paired: the per-image gain is clear
    unpaired = metrics.bootstrap_ci(a).low - metrics.bootstrap_ci(b).high
    assert unpaired < 0  # while the two separate intervals overlap


def test_bootstrap_all_nan_gives_nan_interval() -> None:
    result = metrics.bootstrap_ci([np.nan, np.nan])
    assert all(np.isnan(v) for v in result)
    assert all(np.isnan(v) for v in metrics.paired_bootstrap_ci([1.0, np.nan], [np.nan, 2.0]))


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([],), {}, "values"),
        (([[0.1, 0.2]],), {}, "values"),
        ((["a", "b"],), {}, "values"),
        (([0.1, np.inf],), {}, "infinite"),
        (([0.1, 0.2],), {"level": 1.0}, "level"),
        (([0.1, 0.2],), {"level": 0}, "level"),
        (([0.1, 0.2],), {"n_resamples": 0}, "n_resamples"),
        (([0.1, 0.2],), {"seed": -1}, "seed"),
    ],
    ids=["empty", "2-d", "text", "inf", "level-1", "level-0", "resamples", "seed"],
)
def test_bootstrap_errors(args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        metrics.bootstrap_ci(*args, **kwargs)


def test_paired_bootstrap_length_mismatch() -> None:
    with pytest.raises(InvalidInputError, match="same images"):
        metrics.paired_bootstrap_ci([0.1, 0.2], [0.1, 0.2, 0.3])


# ---------------------------------------------------------------- SSIM
def test_ssim_identity_and_constant_maps_closed_form() -> None:
    rng = np.random.default_rng(10)
    maps = rng.random((3, 12, 15))
    np.testing.assert_array_equal(metrics.ssim(maps, maps), [1.0, 1.0, 1.0])
    # constant maps a and b: no variance, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.2, 0.6, 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = metrics.ssim(np.full((1, 9, 9), a), np.full((1, 9, 9), b))
    assert got[0] == pytest.approx(expected, rel=1e-9)
    assert metrics.ssim(maps, 1 - maps).max() < 0  # inverted structure


def test_ssim_matches_scikit_image() -> None:
    skimage_metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(11)
    a = rng.random((3, 20, 17))
    b = np.clip(a + rng.normal(0, 0.3, a.shape), 0, 1)
    b[2] = cv2.GaussianBlur(a[2], (5, 5), 1.5)
    expected = [skimage_metrics.structural_similarity(x, y, data_range=1.0)
                for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(metrics.ssim(a, b), expected, rtol=1e-9, atol=1e-12)


def test_ssim_errors() -> None:
    with pytest.raises(InvalidInputError, match="shape"):
        metrics.ssim(np.zeros((1, 8, 8)), np.zeros((1, 8, 9)))
    with pytest.raises(InvalidInputError, match="7 x 7"):
        metrics.ssim(np.zeros((1, 6, 8)), np.zeros((1, 6, 8)))
    with pytest.raises(InvalidInputError, match="data_range"):
        metrics.ssim(np.zeros((1, 8, 8)), np.zeros((1, 8, 8)), data_range=0)


# ---------------------------------------------------------------- randomization + SSIM
def test_randomization_check_with_ssim(monkeypatch: pytest.MonkeyPatch) -> None:
    model = conv_gap_dense(filters=(6, 8), padding="same", last_conv="last_conv", seed=5)
    images = synthetic.phantoms(3, size=32, seed=3)[0][:, 4:28, 4:28]
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def recording_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        seen.append((a, b))
        return metrics.ssim(a, b)

    monkeypatch.setattr(randomization, "ssim", recording_ssim)
    result = metrics.randomization_check(cx.GradCAM(model), images, layers=1, seed=1,
                                         similarity="ssim")
    assert result.similarity == "ssim" and result.correlations.shape == (1, 3)
    (original, randomised), = seen
    np.testing.assert_array_equal(result.correlations[0], metrics.ssim(original, randomised))
    assert (result.correlations <= 1).all() and result.correlations.min() < 0.99
    # the default is unchanged: Spearman of the same maps (same seed, same copy)
    default = metrics.randomization_check(cx.GradCAM(model), images, layers=1, seed=1)
    assert default.similarity == "spearman"
    np.testing.assert_allclose(default.correlations[0], metrics.spearman(original, randomised))
    wrong: Any = "pearson"
    with pytest.raises(InvalidInputError, match="similarity"):
        metrics.randomization_check(cx.GradCAM(model), images, similarity=wrong)
