"""The swap test: the composite (``cx.lungs.swap_surroundings``) and ``cx.metrics.swap_test``.

The composite is checked against a NumPy re-derivation (a brute-force Euclidean dilation and
``np.where``); the test against two hand-built 32 px classifiers whose decisions are known
exactly: one reads only a marker in the top-left corner (outside every lung), one only a patch
in the middle of the film (inside every lung).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import reference_maps as ref
from tiny_models import PLANTED_CENTER, PLANTED_CORNER, PLANTED_SIZE, patch_model, planted

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError
from cxrexplain.lungs import swap_surroundings
from cxrexplain.lungs.geometry import DEFAULT_MARGIN
from cxrexplain.metrics import SwapTest, swap_test
from cxrexplain.metrics.swap import _draw_donors, _draw_same_class_donors

SIZE = PLANTED_SIZE
CORNER, CENTER = PLANTED_CORNER, PLANTED_CENTER


def fixed_segmenter(logit: float) -> cx.lungs.LungSegmenter:
    """A segmenter whose every pixel has lung probability ``sigmoid(logit)``."""
    inputs = keras.Input((SIZE, SIZE, 1))
    conv = keras.layers.Conv2D(1, 1, activation="sigmoid")
    outputs = conv(inputs)
    conv.set_weights([np.zeros((1, 1, 1, 1), np.float32), np.array([logit], np.float32)])
    return cx.lungs.LungSegmenter(keras.Model(inputs, outputs, name="constant"), clean=False)


@pytest.fixture(scope="module")
def shortcut() -> cx.Classifier:
    return cx.Classifier(patch_model(*CORNER), ["NORMAL", "PNEUMONIA"])


@pytest.fixture(scope="module")
def honest() -> cx.Classifier:
    return cx.Classifier(patch_model(*CENTER), ["NORMAL", "PNEUMONIA"])


# ------------------------------------------------------------------ the composite
@pytest.mark.parametrize(("margin", "radius"), [(0.0, 0), (DEFAULT_MARGIN, 1), (0.1, 3)])
def test_swap_surroundings_matches_numpy(margin: float, radius: int) -> None:
    data = cx.synthetic.generate(3, size=SIZE, seed=1)
    donors = np.random.default_rng(2).random(data.images.shape).astype(np.float32)
    out = swap_surroundings(data.images, data.lung_masks, donors, margin=margin)
    assert round(margin * SIZE) == radius
    grown = np.stack([ref.numpy_dilate(m, radius) for m in data.lung_masks])
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    if radius in (0, 1):  # OpenCV's ellipse and the Euclidean disc agree at these radii
        by_cv2 = np.stack([cv2.dilate(m.astype(np.uint8), disc) for m in data.lung_masks])
        np.testing.assert_array_equal(by_cv2.astype(bool), grown)
    np.testing.assert_array_equal(out, np.where(grown[..., None], data.images, donors))
    assert out.dtype == np.float32 and out.shape == data.images.shape
    np.testing.assert_array_equal(out[grown], data.images[grown])
    np.testing.assert_array_equal(out[~grown], donors[~grown])
    assert (~grown).any() and (grown >= data.lung_masks).all()
    assert (grown.sum() > data.lung_masks.sum()) == (radius > 0)


def test_swap_surroundings_mask_rule_and_channels() -> None:
    films = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    donors = np.zeros_like(films)
    lungs = np.zeros((2, 16, 16), bool)
    lungs[:, 4:12, 4:12] = True
    as_bool = swap_surroundings(films, lungs, donors, margin=0)
    as_255 = swap_surroundings(films, lungs.astype(np.uint8) * 255, donors, margin=0)
    as_prob = swap_surroundings(films, lungs[..., None] * 0.9, donors, margin=0)
    np.testing.assert_array_equal(as_bool, as_255)
    np.testing.assert_array_equal(as_bool, as_prob)
    assert (as_bool[:, 4:12, 4:12] == films[:, 4:12, 4:12]).all()
    assert as_bool[:, :4].sum() == 0 and as_bool[:, :, 12:].sum() == 0


def test_swap_surroundings_errors() -> None:
    films = np.zeros((2, 8, 8, 1), np.float32)
    lungs = np.ones((2, 8, 8), bool)
    with pytest.raises(InvalidInputError, match="donors"):
        swap_surroundings(films, lungs, films[:1])
    with pytest.raises(InvalidInputError, match="masks: .*2 masks"):
        swap_surroundings(films, lungs[:1], films)
    with pytest.raises(InvalidInputError, match="masks: the masks are 4x4"):
        swap_surroundings(films, lungs[:, :4, :4], films)
    with pytest.raises(InvalidInputError, match="films: expected an"):
        swap_surroundings(films[..., 0], lungs, films[..., 0])
    with pytest.raises(InvalidInputError, match="margin"):
        swap_surroundings(films, lungs, films, margin=0.7)


# ------------------------------------------------------------------ the planted shortcut
def test_shortcut_model_flips_every_film(shortcut: cx.Classifier) -> None:
    films, labels, lungs = planted()
    test = swap_test(shortcut, films, lungs=lungs, labels=labels, seed=3)
    assert isinstance(test, SwapTest) and test.n == 8
    np.testing.assert_array_equal(test.original, labels)
    np.testing.assert_array_equal(test.swapped, 1 - labels)
    assert test.flip_rate == (1.0, 1.0, 1.0)
    assert test.accuracy == (1.0, 1.0, 1.0) and test.swapped_accuracy == (0.0, 0.0, 0.0)
    assert test.accuracy_drop == 1.0
    assert test.flipped.all() and test.probabilities_swapped.shape == (8, 2)
    assert test.summary() == ("swap test (8 films): flip rate 1.00 [1.00, 1.00]; accuracy "
                              "1.00 -> 0.00 (drop 1.00)")
    assert str(test) == test.summary()


def test_lung_model_keeps_every_decision(honest: cx.Classifier) -> None:
    films, labels, lungs = planted()
    test = swap_test(honest, films, lungs=lungs, labels=labels, seed=3)
    np.testing.assert_array_equal(test.original, labels)
    np.testing.assert_array_equal(test.swapped, labels)
    assert test.flip_rate == (0.0, 0.0, 0.0) and test.accuracy_drop == 0.0
    assert not test.flipped.any()


def test_without_labels_flip_rate_is_share_of_cross_class_donors(shortcut: cx.Classifier
                                                                  ) -> None:
    films, labels, lungs = planted(10)
    test = swap_test(shortcut.model, films, lungs=lungs, seed=5, n_resamples=200)
    assert test.accuracy is None and test.swapped_accuracy is None
    assert test.accuracy_drop is None and "accuracy" not in test.summary()
    crossed = labels[test.donors] != labels
    np.testing.assert_array_equal(test.original != test.swapped, crossed)
    assert test.flip_rate.mean == pytest.approx(crossed.mean())
    expected = cx.metrics.bootstrap_ci(crossed, n_resamples=200, seed=5)
    assert test.flip_rate == expected


def test_threshold_is_the_decision_rule() -> None:
    films, labels, lungs = planted()
    # p(class 1) = sigmoid(40 * 0.45 - 20), about 0.12: class 1 at the threshold 0.1
    films[labels == 0, CORNER[0], CORNER[1]] = 0.45
    clf = cx.Classifier(patch_model(*CORNER), ["NORMAL", "PNEUMONIA"], threshold=0.1)
    test = swap_test(clf, films, lungs=lungs, labels=labels)
    assert (test.original == 1).all() and (test.swapped == 1).all()
    assert test.accuracy is not None and test.accuracy.mean == 0.5


# ------------------------------------------------------------------ donors
def test_donors_never_self_and_deterministic() -> None:
    for seed in range(5):
        donors = _draw_donors(None, 7, seed)
        assert (donors != np.arange(7)).all() and donors.min() >= 0 and donors.max() < 7
    np.testing.assert_array_equal(_draw_donors(None, 50, 1), _draw_donors(None, 50, 1))
    assert (_draw_donors(None, 50, 1) != _draw_donors(None, 50, 2)).any()
    assert _draw_donors(None, 2, 0).tolist() == [1, 0]


def test_donors_from_another_class_and_uniform() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 2, 2])
    draws = np.stack([_draw_donors(labels, 8, seed) for seed in range(400)])
    assert (labels[draws] != labels[None]).all()
    # film 0 (class 0) draws among the six films of classes 1 and 2, each about 1/6 of the time
    counts = np.bincount(draws[:, 0], minlength=8)
    assert counts[[0, 3]].sum() == 0 and counts[[1, 2, 4, 5, 6, 7]].min() > 40


def test_same_class_donors_are_other_films_of_the_class_and_uniform() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 2, 2, 0])
    draws = np.stack([_draw_same_class_donors(labels, seed) for seed in range(600)])
    assert (labels[draws] == labels[None]).all() and (draws != np.arange(9)[None]).all()
    # film 2 (class 2) draws among films 5, 6 and 7, each about 1/3 of the time
    counts = np.bincount(draws[:, 2], minlength=9)
    assert counts[[5, 6, 7]].min() > 150 and counts.sum() == counts[[5, 6, 7]].sum()
    with pytest.raises(InvalidInputError, match=r"class \[1\] has one film"):
        _draw_same_class_donors(np.array([0, 0, 1]), 0)


def test_same_class_control_separates_the_shortcut_from_the_composite(
        shortcut: cx.Classifier, honest: cx.Classifier) -> None:
    """The corner reader flips on every other-class donor and on no same-class donor (its
    shortcut is the class's); the lung reader flips on neither."""
    films, labels, lungs = planted(8)
    control = swap_test(shortcut, films, lungs=lungs, labels=labels, seed=2,
                        donor_class="same")
    assert (labels[control.donors] == labels).all() and control.donor_class == "same"
    assert control.flip_rate == (0.0, 0.0, 0.0) and control.accuracy_drop == 0.0
    assert "same-class donors" in control.summary()
    assert swap_test(shortcut, films, lungs=lungs, labels=labels, seed=2).flip_rate.mean == 1.0
    assert swap_test(honest, films, lungs=lungs, labels=labels, seed=2,
                     donor_class="same").flip_rate.mean == 0.0
    back = SwapTest.from_dict(control.as_dict())
    assert back.donor_class == "same" and back.flip_rate == control.flip_rate
    with pytest.raises(InvalidInputError, match="donor_class: 'same' draws donors"):
        swap_test(shortcut, films, lungs=lungs, donor_class="same")
    with pytest.raises(InvalidInputError, match="donor_class: expected 'other' or 'same'"):
        swap_test(shortcut, films, lungs=lungs, labels=labels, donor_class="another")


def test_swap_test_donors_match_seed(honest: cx.Classifier) -> None:
    films, labels, lungs = planted()
    first = swap_test(honest, films, lungs=lungs, labels=labels, seed=4, n_resamples=10)
    again = swap_test(honest, films, lungs=lungs, labels=labels, seed=4, n_resamples=10)
    np.testing.assert_array_equal(first.donors, again.donors)
    np.testing.assert_array_equal(first.donors, _draw_donors(labels, 8, 4))
    by_name = swap_test(honest, films, lungs=lungs, seed=4, n_resamples=10,
                        labels=[honest.class_names[i] for i in labels])
    np.testing.assert_array_equal(by_name.donors, first.donors)
    assert (labels[first.donors] != labels).all()


def test_errors(honest: cx.Classifier) -> None:
    films, _, lungs = planted(4)
    with pytest.raises(InvalidInputError, match="at least two films"):
        swap_test(honest, films[:1], lungs=lungs[:1])
    with pytest.raises(InvalidInputError, match="labels: every film is of class 1"):
        swap_test(honest, films, lungs=lungs, labels=[1, 1, 1, 1])
    empty = lungs.copy()
    empty[[1, 3]] = False
    with pytest.raises(InvalidInputError, match="2 mask.*empty.*positions 1, 3"):
        swap_test(honest, films, lungs=empty)
    with pytest.raises(InvalidInputError, match="lungs: expected one mask per film, got 3"):
        swap_test(honest, films, lungs=lungs[:3])
    with pytest.raises(InvalidInputError, match="labels: expected one label per image"):
        swap_test(honest, films, lungs=lungs, labels=[0, 1])
    with pytest.raises(InvalidInputError, match="labels: unknown class name 'COVID'"):
        swap_test(honest, films, lungs=lungs, labels=["COVID", "NORMAL"] * 2)
    with pytest.raises(InvalidInputError, match="labels: expected one class"):
        swap_test(honest, films, lungs=lungs, labels="NORMAL")
    with pytest.raises(InvalidInputError, match="lungs: expected a LungSegmenter"):
        swap_test(honest, films, lungs=3)
    with pytest.raises(InvalidInputError, match="seed"):
        swap_test(honest, films, lungs=lungs, seed=-1)


# ------------------------------------------------------------------ where the lungs come from
def test_lungs_from_a_segmenter(shortcut: cx.Classifier) -> None:
    films, labels, _ = planted(4)
    whole = swap_test(shortcut, films, lungs=fixed_segmenter(20.0), labels=labels)
    assert whole.flip_rate.mean == 0.0  # every pixel is lung: the composite is the film
    with pytest.raises(InvalidInputError, match=r"4 mask\(s\) are empty .*segmenter.*0, 1, 2, 3"):
        swap_test(shortcut, films, lungs=fixed_segmenter(-20.0))


def test_untrained_unet_segmenter(shortcut: cx.Classifier) -> None:
    keras.utils.set_random_seed(0)
    seg = cx.lungs.LungSegmenter(cx.models.build("lung_unet", input_shape=(SIZE, SIZE, 1),
                                                 filters=(4, 8)))
    films, labels, _ = planted(4)
    masks = np.asarray(seg.segment(films, size=SIZE))
    if (~masks.reshape(4, -1).any(axis=1)).any():
        with pytest.raises(InvalidInputError, match="empty"):
            swap_test(shortcut, films, lungs=seg, labels=labels)
    else:
        test = swap_test(shortcut, films, lungs=seg, labels=labels)
        composites = swap_surroundings(films, masks, films[test.donors])
        expected = shortcut.predict_proba(composites).argmax(axis=1)
        np.testing.assert_array_equal(test.swapped, expected)


def test_lungs_from_files_and_other_sizes(shortcut: cx.Classifier, tmp_path: Path) -> None:
    films, labels, lungs = planted(4)
    reference = swap_test(shortcut, films, lungs=lungs, labels=labels, seed=1)
    files = []
    for i, mask in enumerate(lungs):
        path = tmp_path / "masks" / f"f{i}_mask.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), np.kron(mask, np.ones((2, 2))).astype(np.uint8) * 255)  # 64 px
        files.append(path)
    by_files = swap_test(shortcut, films, lungs=files, labels=labels, seed=1)
    big = np.kron(lungs, np.ones((1, 2, 2), bool))
    by_big = swap_test(shortcut, films, lungs=big, labels=labels, seed=1)
    for other in (by_files, by_big):
        np.testing.assert_array_equal(other.swapped, reference.swapped)
        np.testing.assert_array_equal(other.probabilities_swapped,
                                      reference.probabilities_swapped)
    film_paths = []
    for i, film in enumerate(films):
        path = tmp_path / "films" / f"f{i}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), np.round(film[..., 0] * 255).astype(np.uint8))
        film_paths.append(path)
    by_folder = swap_test(shortcut, film_paths, lungs=tmp_path / "masks", labels=labels, seed=1)
    np.testing.assert_array_equal(by_folder.swapped, reference.swapped)
    with pytest.raises(InvalidInputError, match="needs film paths"):
        swap_test(shortcut, films, lungs=tmp_path / "masks")
