"""Lung segmentation: Dice, the mask rule, cleaning, matching files, the segmenter and training.

Every model here is tiny (a 32 px ``lung_unet`` with filters (4, 8), or a hand-built one-layer
model whose output is known); the one training run is one epoch on 16 phantoms.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from tiny_models import conv_gap_dense, random_images

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError, ModelLoadError
from cxrexplain.lungs import (
    DiceBCELoss,
    LungSegmenter,
    binary_masks,
    clean_mask,
    dice,
    dice_coefficient,
    match_masks,
    read_masks,
)

SIZE = 32


def tiny_unet(seed: int = 0, size: int = SIZE) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return cx.models.build("lung_unet", input_shape=(size, size, 1), filters=(4, 8))


def constant_unet(logit: float) -> keras.Model:
    """A tiny lung U-Net whose final ``mask`` conv outputs ``sigmoid(logit)`` everywhere."""
    model = tiny_unet()
    set_logit(model, logit)
    return model


def set_logit(model: keras.Model, logit: float) -> None:
    kernel, bias = model.get_layer("mask").get_weights()
    model.get_layer("mask").set_weights([np.zeros_like(kernel), np.full_like(bias, logit)])


def threshold_model(size: int = SIZE, cut: float = 0.5) -> keras.Model:
    """``sigmoid(200 (x - cut))`` per pixel: lung wherever the film is brighter than ``cut``."""
    inputs = keras.Input((size, size, 1))
    layer = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")
    outputs = layer(inputs)
    layer.set_weights([np.full((1, 1, 1, 1), 200.0, np.float32),
                       np.array([-200.0 * cut], np.float32)])
    return keras.Model(inputs, outputs, name="threshold")


def two_lungs() -> tuple[np.ndarray, np.ndarray]:
    """A 32 x 32 film (bright = lung) with two lungs, a hole in one, a speck; and its answer."""
    film = np.full((SIZE, SIZE), 0.1, np.float32)
    film[4:28, 3:13] = 0.9  # right lung (on the left of the image)
    film[6:26, 18:29] = 0.9  # left lung, smaller
    film[12:15, 7:9] = 0.1  # a hole (an opacity inside the lung)
    film[30, 30] = 0.9  # a speck outside the chest
    answer = np.zeros((SIZE, SIZE), bool)
    answer[4:28, 3:13] = True
    answer[6:26, 18:29] = True
    return film, answer


# ---------------------------------------------------------------- dice
def numpy_dice(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = []
    for a, b in zip(p, t, strict=True):
        total = int(a.sum()) + int(b.sum())
        out.append(1.0 if total == 0 else 2.0 * int((a & b).sum()) / total)
    return np.array(out)


def test_dice_matches_numpy_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((6, 20, 24)) > rng.uniform(0.2, 0.8, (6, 1, 1))
    t = rng.random((6, 20, 24)) > 0.5
    score = dice(p, t)
    assert score.shape == (6,) and score.dtype == np.float64
    np.testing.assert_allclose(score, numpy_dice(p, t), rtol=1e-12)
    assert score.min() > 0.2 and score.max() < 0.9  # random halves overlap about half-way


def test_dice_identities() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((3, 16, 16)) > 0.5
    assert dice(a, a).tolist() == [1.0, 1.0, 1.0]
    left = np.zeros((1, 8, 8), bool)
    left[0, :, :4] = True
    assert dice(left, ~left).tolist() == [0.0]
    empty = np.zeros((2, 8, 8), bool)
    assert dice(empty, empty).tolist() == [1.0, 1.0]
    assert dice(empty[:1], left).tolist() == [0.0]
    assert dice(left[0], left[0]).tolist() == [1.0]  # one (H, W) mask


def test_dice_bool_01_and_0255_inputs_agree() -> None:
    rng = np.random.default_rng(2)
    p = rng.random((4, 12, 12)) > 0.4
    t = rng.random((4, 12, 12)) > 0.6
    expected = numpy_dice(p, t)
    np.testing.assert_allclose(dice(p.astype(np.uint8), t.astype(np.uint8)), expected)
    np.testing.assert_allclose(dice(p.astype(np.uint8) * 255, t), expected)
    np.testing.assert_allclose(dice(p[..., None].astype(np.float32), t * 255.0), expected)


def test_dice_shape_mismatch() -> None:
    with pytest.raises(InvalidInputError, match="pred, true: expected masks of the same shape"):
        dice(np.ones((2, 8, 8)), np.ones((2, 8, 9)))
    with pytest.raises(InvalidInputError, match="pred"):
        dice(np.ones(8), np.ones(8))


# ---------------------------------------------------------------- the mask rule
def test_binary_masks_integers_above_half_of_each_masks_own_max() -> None:
    masks = np.array([
        [[0, 2], [4, 3]],  # max 4: above 2 is lung (2 itself is not)
        [[0, 100], [60, 40]],  # max 100: above 50
        [[0, 0], [0, 0]],  # all zero: empty
    ], np.int32)
    out = binary_masks(masks)
    assert out.dtype == bool
    assert out.tolist() == [[[False, False], [True, True]], [[False, True], [True, False]],
                            [[False, False], [False, False]]]


def test_binary_masks_floats_are_probabilities_inside_at_one_half() -> None:
    masks = np.array([
        [[0.0, 0.49], [0.5, 1.0]],  # 0.5 itself is lung
        [[0.3, 0.3], [0.3, 0.3]],  # a soft mask of 0.3: empty (not "above half its max")
        [[0.0, 100.0], [60.0, 40.0]],  # floats are not labels: everything >= 0.5 is lung
    ], np.float32)
    assert binary_masks(masks).tolist() == [[[False, False], [True, True]],
                                            [[False, False], [False, False]],
                                            [[False, True], [True, True]]]


def test_binary_masks_16_bit_jpeg_background_and_channel_axis() -> None:
    sixteen = np.array([[[0, 1000], [40000, 65535]], [[0, 300], [700, 1000]]], np.uint16)
    assert binary_masks(sixteen).tolist() == [[[False, False], [True, True]],
                                              [[False, False], [True, True]]]
    jpeg = np.array([[[3, 7], [250, 251]]], np.uint8)[..., None]  # noisy 0/255, (N, H, W, 1)
    assert binary_masks(jpeg).tolist() == [[[False, False], [True, True]]]
    assert binary_masks(np.eye(3)).shape == (1, 3, 3)  # one (H, W) mask


def test_binary_masks_nearest_resize_stays_binary() -> None:
    rng = np.random.default_rng(3)
    masks = rng.random((3, 7, 9)) > 0.5
    doubled = binary_masks(masks.astype(np.uint8) * 255, size=(14, 18))
    assert doubled.dtype == bool
    np.testing.assert_array_equal(doubled, masks.repeat(2, axis=1).repeat(2, axis=2))
    odd = binary_masks(masks, size=(20, 13))
    for mask, out in zip(masks, odd, strict=True):
        reference = cv2.resize(mask.astype(np.uint8), (13, 20), interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(out, reference.astype(bool))


@pytest.mark.parametrize("bad", [np.ones((2, 3, 4, 2)), np.ones(5), np.ones((0, 4, 4)), "abc"],
                         ids=["two-channels", "1-d", "empty", "text"])
def test_binary_masks_bad_input_names_the_argument(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="^lungs"):
        binary_masks(bad, name="lungs")


def test_read_masks_files_and_arrays(tmp_path: Path) -> None:
    big = np.zeros((16, 20), np.uint8)
    big[4:12, 2:10] = 255
    cv2.imwrite(str(tmp_path / "a.png"), big)
    small = np.array([[0, 1], [1, 1]], np.uint8)
    native = read_masks([tmp_path / "a.png", small])
    assert isinstance(native, list)
    assert [m.shape for m in native] == [(16, 20), (2, 2)]
    np.testing.assert_array_equal(native[0], big > 0)
    resized = read_masks([tmp_path / "a.png", small], size=(8, 10))
    assert isinstance(resized, np.ndarray) and resized.shape == (2, 8, 10)
    np.testing.assert_array_equal(resized[0], (big > 0)[::2, ::2])
    with pytest.raises(InvalidInputError, match="masks: no masks given"):
        read_masks([])
    with pytest.raises(InvalidInputError, match="^masks"):
        read_masks(42)


# ---------------------------------------------------------------- cleaning
def test_clean_mask_keeps_two_lungs_fills_hole_drops_specks() -> None:
    mask = np.zeros((30, 30), bool)
    mask[2:26, 2:12] = True
    mask[4:24, 16:27] = True
    mask[10:14, 5:8] = False  # a hole
    mask[28, 28] = mask[0, 15] = True  # specks
    mask[27:29, 0:3] = True  # a third, small region
    cleaned = clean_mask(mask)
    expected = np.zeros((30, 30), bool)
    expected[2:26, 2:12] = True
    expected[4:24, 16:27] = True
    np.testing.assert_array_equal(cleaned, expected)
    assert cleaned.dtype == bool


def test_clean_mask_one_region_when_the_second_is_below_min_share() -> None:
    mask = np.zeros((20, 20), bool)
    mask[2:18, 2:12] = True  # 160 pixels
    mask[5:8, 15:18] = True  # 9 pixels: 5.6% of the largest
    kept = clean_mask(mask)
    np.testing.assert_array_equal(kept, mask & (np.arange(20) < 12)[None, :])
    np.testing.assert_array_equal(clean_mask(mask, min_share=0.05), mask)  # now it stays
    np.testing.assert_array_equal(clean_mask(mask, regions=1, min_share=0.0), kept)


def test_clean_mask_all_false_and_hole_at_the_border() -> None:
    assert not clean_mask(np.zeros((8, 8), bool)).any()
    ring = np.ones((8, 8), bool)
    ring[3:5, 3:5] = False  # a hole inside: filled
    assert clean_mask(ring).all()
    notch = np.ones((8, 8), bool)
    notch[0:2, 3:5] = False  # open to the border: not a hole
    np.testing.assert_array_equal(clean_mask(notch), notch)


# ---------------------------------------------------------------- matching files
def _write(path: Path, value: int = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((8, 8), np.uint8)
    pixels[2:6, 2:6] = value
    assert cv2.imwrite(str(path), pixels)
    return path


def test_match_masks_by_relative_path_then_by_name(tmp_path: Path) -> None:
    images = [_write(tmp_path / "films" / s / "x.png") for s in ("a", "b")]
    masks = [_write(tmp_path / "masks" / s / "x.png") for s in ("a", "b")]
    assert match_masks(images, tmp_path / "masks") == masks  # the name alone is ambiguous
    other = [tmp_path / "films" / "train" / "p1.png", tmp_path / "films" / "test" / "p2.png"]
    flat = [_write(tmp_path / "flat" / "all" / "p2.png"), _write(tmp_path / "flat" / "p1.png")]
    assert match_masks(other, tmp_path / "flat") == flat[::-1]


def test_match_masks_other_suffix_and_mask_ending(tmp_path: Path) -> None:
    films = [tmp_path / "films" / "a.jpg", tmp_path / "films" / "CHNCXR_0001_0.png",
             tmp_path / "films" / "MCUCXR_0002_1.png"]
    masks = [_write(tmp_path / "masks" / "a.png"),
             _write(tmp_path / "masks" / "CHNCXR_0001_0_mask.png"),
             _write(tmp_path / "masks" / "left" / "MCUCXR_0002_1.bmp")]
    assert match_masks(films, tmp_path / "masks") == masks


def test_match_masks_lists_unmatched_and_ambiguous_films(tmp_path: Path) -> None:
    _write(tmp_path / "masks" / "a.png")
    films = [tmp_path / "f" / "a.png", tmp_path / "f" / "c.png", tmp_path / "f" / "d.jpg"]
    with pytest.raises(InvalidInputError, match=r"masks: 2 image\(s\) have no mask") as err:
        match_masks(films, tmp_path / "masks")
    assert "c.png" in str(err.value) and "d.jpg" in str(err.value)
    assert "a.png" not in str(err.value).split("no mask in")[1].split(" (a mask")[0]
    _write(tmp_path / "twice" / "one" / "z.png")
    _write(tmp_path / "twice" / "two" / "z.png")
    with pytest.raises(InvalidInputError, match="match several masks") as err:
        match_masks([tmp_path / "f" / "z.png"], tmp_path / "twice")
    assert "z.png" in str(err.value)
    with pytest.raises(InvalidInputError, match="masks: .* is not a folder"):
        match_masks(films, tmp_path / "nowhere")


# ---------------------------------------------------------------- the lung_unet builder
def test_lung_unet_builds_without_num_classes() -> None:
    model = tiny_unet()
    assert model.output_shape == (None, SIZE, SIZE, 1)
    out = np.asarray(model(random_images(2, SIZE), training=False))
    assert out.shape == (2, SIZE, SIZE, 1)
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.std() > 0
    down = cx.models.build("lung_unet", input_shape=(SIZE, SIZE, 1), filters=(4, 8),
                           downsample=2)
    assert down.output_shape == (None, SIZE, SIZE, 1)
    assert cx.models.available()["lung_unet"].head == "mask"


def test_lung_unet_size_must_fit_the_pooling() -> None:
    with pytest.raises(InvalidInputError, match="input_shape: .*multiples of 16, got 40x40"):
        cx.models.build("lung_unet", input_shape=(40, 40, 1))
    with pytest.raises(InvalidInputError, match="input_shape: .*multiples of 2, got 33x32"):
        cx.models.build("lung_unet", input_shape=(33, 32, 1), filters=(4, 8))
    with pytest.raises(InvalidInputError, match="filters"):
        cx.models.build("lung_unet", input_shape=(32, 32, 1), filters=(4,))
    with pytest.raises(InvalidInputError, match="downsample"):
        cx.models.build("lung_unet", input_shape=(32, 32, 1), downsample=3)


def test_classifiers_still_need_num_classes() -> None:
    with pytest.raises(InvalidInputError, match="num_classes"):
        cx.models.build("cam_cnn", input_shape=(32, 32, 1))


def test_lung_unet_keras_file_round_trip_in_safe_mode(tmp_path: Path) -> None:
    model = tiny_unet(seed=3)
    images = random_images(2, SIZE, seed=1)
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(np.asarray(loaded(images, training=False)),
                               np.asarray(model(images, training=False)), atol=1e-6)


# ---------------------------------------------------------------- the segmenter
def test_segment_returns_masks_at_each_images_size() -> None:
    seg = LungSegmenter(tiny_unet())
    assert (seg.input_size, seg.channels) == ((SIZE, SIZE), 1)
    masks = seg.segment(random_images(3, 48))
    assert isinstance(masks, np.ndarray)
    assert masks.shape == (3, 48, 48) and masks.dtype == bool
    wide = seg.segment(np.random.default_rng(0).random((2, 40, 56)).astype(np.float32)[..., None])
    assert isinstance(wide, np.ndarray) and wide.shape == (2, 40, 56)
    sized = seg.segment(random_images(2, 48), size=(20, 24))
    assert isinstance(sized, np.ndarray) and sized.shape == (2, 20, 24)
    square = seg.segment(random_images(2, 48), size=16)
    assert isinstance(square, np.ndarray) and square.shape == (2, 16, 16)
    mixed = seg.segment([np.zeros((40, 40)), np.zeros((50, 30)), np.zeros((40, 40))],
                        batch_size=2)
    assert isinstance(mixed, list)
    assert [m.shape for m in mixed] == [(40, 40), (50, 30), (40, 40)]
    assert all(m.dtype == bool for m in mixed)
    assert seg.probabilities(random_images(3, 48)).shape == (3, SIZE, SIZE)


def test_segment_known_output_threshold_and_clean() -> None:
    film, answer = two_lungs()
    seg = LungSegmenter(threshold_model())
    masks = seg.segment(film[None, ..., None])
    np.testing.assert_array_equal(masks[0], answer)  # speck dropped, hole filled
    raw = LungSegmenter(threshold_model(), clean=False).segment(film[None, ..., None])
    np.testing.assert_array_equal(raw[0], film > 0.5)
    # at twice the size: area-shrunk to 32 exactly, the probabilities enlarged back bilinearly
    big = np.kron(film, np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(seg.segment([big])[0], np.kron(answer, np.ones((2, 2), bool)))


def test_segment_threshold_on_a_constant_output() -> None:
    images = random_images(2, 40)
    model = constant_unet(0.4)  # sigmoid(0.4) = 0.599 everywhere
    default, strict = LungSegmenter(model), LungSegmenter(model, threshold=0.65)
    assert np.all(default.segment(images))
    assert not np.any(strict.segment(images))
    set_logit(model, -10.0)
    assert not np.any(default.segment(images))
    set_logit(model, 10.0)
    assert np.all(strict.segment(images, size=(24, 20)))


def test_segment_png_and_16_bit_png_files(tmp_path: Path) -> None:
    film, answer = two_lungs()
    eight = tmp_path / "eight.png"
    cv2.imwrite(str(eight), np.round(film * 255).astype(np.uint8))
    sixteen = np.where(film > 0.5, 50000, 0).astype(np.uint16)
    sixteen[20:24, 20:23] = 30000  # 0.46 of full scale: not lung (min-max scaling would say 0.6)
    cv2.imwrite(str(tmp_path / "sixteen.png"), sixteen)
    seg = LungSegmenter(threshold_model(), clean=False)
    masks = seg.segment([eight, tmp_path / "sixteen.png"])
    assert isinstance(masks, np.ndarray) and masks.shape == (2, SIZE, SIZE)
    np.testing.assert_array_equal(masks[0], film > 0.5)
    np.testing.assert_array_equal(masks[1], sixteen > 32767)
    assert LungSegmenter(threshold_model()).segment(str(eight))[0].tolist() == answer.tolist()


def test_segmenter_save_load_round_trip(tmp_path: Path) -> None:
    images = random_images(3, 40, seed=2)
    model = tiny_unet(seed=5)
    middle = float(np.median(LungSegmenter(model).probabilities(images)))
    seg = LungSegmenter(model, threshold=middle, clean=False)
    masks = seg.segment(images)
    assert 0.2 < np.mean(masks) < 0.8  # a threshold that splits the map: masks that can differ
    loaded = LungSegmenter.load(seg.save(tmp_path / "lungs.keras"))
    assert (loaded.input_size, loaded.channels) == ((SIZE, SIZE), 1)
    assert (loaded.threshold, loaded.clean) == (middle, False)
    np.testing.assert_array_equal(loaded.segment(images), masks)
    plain = tmp_path / "plain.keras"
    threshold_model().save(plain)  # a mask model without cxrexplain metadata: the defaults
    assert (LungSegmenter.load(plain).threshold, LungSegmenter.load(plain).clean) == (0.5, True)


def test_segmenter_rejects_classifiers(tmp_path: Path) -> None:
    classifier = conv_gap_dense(2, size=SIZE)
    cx.Classifier(classifier, ["NORMAL", "PNEUMONIA"]).save(tmp_path / "clf.keras")
    with pytest.raises(ModelLoadError, match="holds a classifier, not a lung segmenter"):
        LungSegmenter.load(tmp_path / "clf.keras")
    classifier.save(tmp_path / "plain_clf.keras")
    with pytest.raises(ModelLoadError, match="one mask channel"):
        LungSegmenter.load(tmp_path / "plain_clf.keras")
    with pytest.raises(ModelLoadError, match="missing|not found|no such|does not exist"):
        LungSegmenter.load(tmp_path / "none.keras")
    with pytest.raises(InvalidInputError, match="model: a lung segmenter outputs one mask"):
        LungSegmenter(classifier)
    with pytest.raises(InvalidInputError, match="model: expected a keras.Model"):
        LungSegmenter("lungs.keras")
    with pytest.raises(InvalidInputError, match="threshold"):
        LungSegmenter(threshold_model(), threshold=1.0)
    with pytest.raises(InvalidInputError, match="clean"):
        LungSegmenter(threshold_model(), clean=1)  # type: ignore[arg-type]


def test_segment_bad_arguments() -> None:
    seg = LungSegmenter(threshold_model())
    with pytest.raises(InvalidInputError, match="size"):
        seg.segment(random_images(1, SIZE), size=0)
    with pytest.raises(InvalidInputError, match="batch_size"):
        seg.segment(random_images(1, SIZE), batch_size=0)


# ---------------------------------------------------------------- loss and metric
def test_dice_bce_loss_matches_numpy() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random((3, 8, 8, 1)) > 0.5).astype(np.float32)
    y[2] = 0.0  # an empty mask stays finite
    p = rng.uniform(0.05, 0.95, (3, 8, 8, 1)).astype(np.float32)
    overlap = (y * p).sum(axis=(1, 2, 3))
    total = y.sum(axis=(1, 2, 3)) + p.sum(axis=(1, 2, 3))
    soft_dice = 1.0 - (2.0 * overlap + 1.0) / (total + 1.0)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=(1, 2, 3))
    expected = soft_dice + bce
    loss = DiceBCELoss()
    np.testing.assert_allclose(np.asarray(loss.call(y, p)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(loss(y, p)), expected.mean(), rtol=1e-5)
    assert float(loss(y[:1], y[:1])) < 1e-3  # a perfect mask costs (almost) nothing


def test_dice_coefficient_thresholds_at_half() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random((4, 8, 8, 1)) > 0.5).astype(np.float32)
    p = rng.random((4, 8, 8, 1)).astype(np.float32)
    y[3], p[3] = 0.0, 0.2  # both empty: 1
    expected = numpy_dice(y[..., 0] > 0.5, p[..., 0] > 0.5)
    assert expected[3] == 1.0
    np.testing.assert_allclose(np.asarray(dice_coefficient(y, p)), expected, rtol=1e-6)


# ---------------------------------------------------------------- training
def test_train_runs_and_logs(tmp_path: Path) -> None:
    data = cx.synthetic.generate(16, size=SIZE, seed=0)
    seg = cx.lungs.train(data.images, data.lung_masks.astype(np.uint8) * 255, image_size=SIZE,
                         epochs=1, model=tiny_unet(), checkpoint_dir=tmp_path / "run",
                         verbose=0)
    assert isinstance(seg, LungSegmenter)
    assert seg.input_size == (SIZE, SIZE)
    lines = (tmp_path / "run" / "log.csv").read_text().strip().splitlines()
    assert len(lines) == 2  # header + one epoch
    assert "val_loss" in lines[0] and "dice_coefficient" in lines[0]
    masks = seg.segment(data.images[:2])
    assert isinstance(masks, np.ndarray) and masks.shape == (2, SIZE, SIZE)


def test_train_errors() -> None:
    data = cx.synthetic.generate(4, size=SIZE, seed=0)
    with pytest.raises(InvalidInputError, match="masks: expected one mask per image, got 3 "
                                                "masks for 4 images"):
        cx.lungs.train(data.images, data.lung_masks[:3], image_size=SIZE)
    holes = data.lung_masks.copy()
    holes[2] = False
    with pytest.raises(InvalidInputError, match=r"masks: 1 mask\(s\) are empty .*positions 2$"):
        cx.lungs.train(data.images, holes, image_size=SIZE)
    with pytest.raises(InvalidInputError, match="multiples of 16"):
        cx.lungs.train(data.images, data.lung_masks, image_size=40)
    for split in (1.0, -0.1, 1.5):
        with pytest.raises(InvalidInputError, match="validation_split"):
            cx.lungs.train(data.images, data.lung_masks, image_size=SIZE,
                           validation_split=split)
    with pytest.raises(InvalidInputError, match="image_size"):
        cx.lungs.train(data.images, data.lung_masks, image_size=8)
