"""One rule for a mask, everywhere: the audit, the training callback, the metrics, the drawing.

The rule (``cxrexplain/_arrays.py``): bool as is; floating point values are probabilities,
inside at >= 0.5; integers are a label image, inside above half of the largest value present
(all zero: empty); mask files are read at their stored integer type. The references below are
written from that sentence with plain Python, not with the package's code.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

import cxrexplain as cx
from cxrexplain._arrays import as_masks, binary
from cxrexplain.drawing import draw_mask
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import load_mask
from cxrexplain.training import ExplanationCallback

SIZE = 32
CLASSES = ("NORMAL", "PNEUMONIA")


def reference_rule(mask: np.ndarray) -> np.ndarray:
    """The documented rule, pixel by pixel, for one 2-D mask."""
    rows, cols = mask.shape
    values = mask.tolist()
    if mask.dtype == bool:
        return mask.copy()
    if np.issubdtype(mask.dtype, np.floating):
        return np.array([[values[r][c] >= 0.5 for c in range(cols)] for r in range(rows)])
    largest = max(max(row) for row in values)
    return np.array([[largest > 0 and values[r][c] * 2 > largest for c in range(cols)]
                     for r in range(rows)])


@pytest.fixture(scope="module")
def films() -> cx.synthetic.PhantomSet:
    return cx.synthetic.generate(4, size=SIZE, classes=CLASSES, seed=3)


@pytest.fixture(scope="module")
def clf() -> cx.Classifier:
    keras.utils.set_random_seed(0)
    model = cx.models.build("cam_cnn", input_shape=(SIZE, SIZE, 1), num_classes=2,
                            filters=(4, 8))
    return cx.Classifier(model, class_names=list(CLASSES))


def _files(folder: Path, masks: np.ndarray, scale: int) -> list[Path]:
    paths = []
    for i, mask in enumerate(masks):
        path = folder / f"mask_{scale}_{i}.png"
        assert cv2.imwrite(str(path), mask.astype(np.uint8) * scale)
        paths.append(path)
    return paths


def _callback_share(clf: cx.Classifier, images: np.ndarray, masks: object) -> float:
    watch = ExplanationCallback(images, masks=masks)
    watch.set_model(clf.model)
    watch.on_train_begin()
    return watch.explain_now(0)["expl_lung_share"]


# ------------------------------------------------------------------------------ the rule
@pytest.mark.parametrize("dtype", [bool, np.uint8, np.uint16, np.int32, np.int64, np.float32,
                                   np.float64])
def test_the_rule_matches_its_sentence_on_random_masks(dtype: type) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        if dtype is bool:
            mask = rng.random((5, 6)) > 0.5
        elif np.issubdtype(dtype, np.floating):
            mask = rng.random((5, 6)).astype(dtype)
        else:
            mask = rng.integers(0, rng.integers(1, 300), (5, 6)).astype(dtype)
        np.testing.assert_array_equal(binary(mask), reference_rule(mask))
        np.testing.assert_array_equal(load_mask(mask), reference_rule(mask))


def test_each_mask_of_a_stack_has_its_own_largest_value() -> None:
    stack = np.array([[[0, 1], [1, 0]], [[0, 255], [200, 100]], [[0, 0], [0, 0]]], np.uint8)
    expected = np.stack([reference_rule(m) for m in stack])
    np.testing.assert_array_equal(as_masks(stack), expected)
    assert expected.tolist()[2] == [[False, False], [False, False]]


def test_a_mask_file_is_read_at_its_stored_type(tmp_path: Path) -> None:
    mask = np.zeros((12, 10), np.uint8)
    mask[3:9, 2:6] = 1
    for scale, depth in ((1, np.uint8), (255, np.uint8), (1, np.uint16), (65535, np.uint16)):
        path = tmp_path / f"m{scale}_{depth.__name__}.png"
        assert cv2.imwrite(str(path), mask.astype(depth) * scale)
        np.testing.assert_array_equal(load_mask(path), mask.astype(bool))
    assert cv2.imwrite(str(tmp_path / "black.png"), np.zeros((12, 10), np.uint8))
    assert not load_mask(tmp_path / "black.png").any()


# ------------------------------------------------------------------------------ everywhere
def test_a_soft_mask_of_0_3_is_empty_everywhere(films: cx.synthetic.PhantomSet,
                                                  clf: cx.Classifier) -> None:
    soft = np.full((4, SIZE, SIZE), 0.3, np.float32)
    with pytest.raises(InvalidInputError, match=r"lungs: 4 mask\(s\) are empty"):
        cx.audit(clf, films.images, lungs=soft)
    with pytest.raises(InvalidInputError, match=r"masks: 4 mask\(s\) are empty"):
        ExplanationCallback(films.images, masks=soft)
    heat = np.ones((4, SIZE, SIZE), np.float32)
    assert cx.metrics.energy_in_mask(heat, soft).tolist() == [0.0] * 4
    assert cx.lungs.dice(soft, np.zeros((4, SIZE, SIZE), bool)).tolist() == [1.0] * 4
    picture = (films.images[0, ..., 0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(draw_mask(picture, soft[0]), draw_mask(picture, soft[0] * 0))
    half = np.full((SIZE, SIZE), 0.5, np.float32)  # at 0.5 a probability is inside
    assert not np.array_equal(draw_mask(picture, half), draw_mask(picture, half * 0))


def test_0_1_and_0_255_masks_and_their_files_give_the_same_lungs(
        films: cx.synthetic.PhantomSet, clf: cx.Classifier, tmp_path: Path) -> None:
    lungs = films.lung_masks
    ones, full = lungs.astype(np.uint8), lungs.astype(np.uint8) * 255
    one_files, full_files = _files(tmp_path, lungs, 1), _files(tmp_path, lungs, 255)

    reference = cx.audit(clf, films.images, lungs=lungs).lung_share
    for given in (ones, full, one_files, full_files):
        np.testing.assert_array_equal(cx.audit(clf, films.images, lungs=given).lung_share,
                                      reference)

    expected = float(np.nanmean(reference))  # the callback measures as the audit does
    for given in (lungs, ones, full, list(one_files), list(full_files)):
        assert _callback_share(clf, films.images, given) == pytest.approx(expected, abs=1e-12)

    heat = cx.GradCAM(clf).explain(films.images).heatmaps
    base = cx.metrics.energy_in_mask(heat, lungs)
    for given in (ones, full, one_files, full_files):
        np.testing.assert_array_equal(cx.metrics.energy_in_mask(heat, given), base)

    picture = (films.images[0, ..., 0] * 255).astype(np.uint8)
    drawn = draw_mask(picture, lungs[0])
    for given in (ones[0], full[0], one_files[0], full_files[0]):
        np.testing.assert_array_equal(draw_mask(picture, given), drawn)


def test_the_callback_takes_mask_files_of_another_size(films: cx.synthetic.PhantomSet,
                                                       clf: cx.Classifier,
                                                       tmp_path: Path) -> None:
    big = np.stack([cv2.resize(m.astype(np.uint8), (2 * SIZE, 2 * SIZE),
                               interpolation=cv2.INTER_NEAREST) for m in films.lung_masks])
    paths = _files(tmp_path, big.astype(bool), 1)
    expected = float(np.nanmean(cx.audit(clf, films.images, lungs=films.lung_masks).lung_share))
    assert _callback_share(clf, films.images, paths) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(InvalidInputError, match="masks: expected 4 masks, got 3"):
        ExplanationCallback(films.images, masks=paths[:3])
