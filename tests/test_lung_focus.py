"""``cx.models.with_lung_focus``: the masking against NumPy, coordinates, gradients, files.

The references are independent of the code under test:

* a **fixed-mask segmenter**: ``Flatten -> Dense(kernel 0, bias = +-20 per pixel) -> sigmoid``
  returns the same known mask whatever the film, so the lungs the focus must keep are known
  exactly; its 32 px mask is made of 2 x 2 blocks of a 64 px film, where bilinear upsampling
  then thresholding at 0.5 equals nearest-neighbour upsampling (the nearest pixel's weight is
  0.5625), so the 64 px reference is ``np.kron(mask, ones((2, 2)))``;
* the disc dilation is brute force over the offsets within the radius, the Gaussian blur a
  2-D sum over the window in NumPy, the fill values NumPy means;
* a **bright-spot classifier** with hand-set weights: ``Conv2D(1, 3)`` of ``ones / 9`` with
  bias -0.5 and a ReLU (it fires where a 3 x 3 mean exceeds 0.5) -> GAP -> ``Dense(2)``; on a
  dark film its score depends on every bright spot, and its Grad-CAM is its activation;
* an **intensity segmenter** (a 1 x 1 convolution and a sigmoid: lung where the film is
  dark) checked against :meth:`cxrexplain.lungs.LungSegmenter.segment`, the NumPy/OpenCV path,
  for the in-graph resizing and channel conversion.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
import reference_maps as ref
import tensorflow as tf

import cxrexplain as cx
from cxrexplain.errors import InvalidInputError, ModelStructureError
from cxrexplain.explain.layers import find_layers
from cxrexplain.lungs.focus import _MIN_BLUR_WEIGHT, BLUR_SIGMA, MODES, LungFocus
from cxrexplain.lungs.geometry import DEFAULT_MARGIN

FILM = 64  # the classifier's input side
SEG = 32  # the segmenter's input side


# ------------------------------------------------------------------------------ models
def fixed_mask_segmenter(mask: np.ndarray, channels: int = 1) -> cx.lungs.LungSegmenter:
    """A segmenter that returns ``mask`` (``(h, w)`` bool) for every film."""
    height, width = mask.shape
    inputs = keras.Input((height, width, channels))
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(height * width)
    x = dense(x)
    x = keras.layers.Reshape((height, width, 1))(x)
    outputs = keras.layers.Activation("sigmoid")(x)
    dense.set_weights([np.zeros((height * width * channels, height * width), np.float32),
                       np.where(mask.ravel(), 20.0, -20.0).astype(np.float32)])
    return cx.lungs.LungSegmenter(keras.Model(inputs, outputs, name="fixed_mask"))


def intensity_segmenter(channels: int = 1, level: float = 0.45) -> cx.lungs.LungSegmenter:
    """Lung where the film (its first channel, or gray) is darker than ``level``."""
    inputs = keras.Input((SEG, SEG, channels))
    conv = keras.layers.Conv2D(1, 1, activation="sigmoid")
    outputs = conv(inputs)
    kernel = np.zeros((1, 1, channels, 1), np.float32)
    kernel[0, 0, 0, 0] = -40.0
    conv.set_weights([kernel, np.array([40.0 * level], np.float32)])
    return cx.lungs.LungSegmenter(keras.Model(inputs, outputs, name="dark_is_lung"))


def bright_spot_classifier(size: tuple[int, int] = (FILM, FILM), *, pool: bool = False
                           ) -> keras.Model:
    """Fires where a 3 x 3 mean exceeds 0.5 (see the module docs); ``last_conv`` is the
    layer explained. With ``pool``, a 2 x 2 max pooling comes before ``last_conv`` (a 1 x 1
    identity), so maps are upsampled from half the film's size."""
    inputs = keras.Input((*size, 1))
    spot = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="spot")
    x = spot(inputs)
    if pool:
        x = keras.layers.MaxPooling2D(name="pool")(x)
        last = keras.layers.Conv2D(1, 1, name="last_conv")
        x = last(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    head = keras.layers.Dense(2, activation="softmax", name="head")
    outputs = head(x)
    model = keras.Model(inputs, outputs, name="classifier")
    spot.set_weights([np.full((3, 3, 1, 1), 1 / 9, np.float32), np.array([-0.5], np.float32)])
    if pool:
        last.set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    head.set_weights([np.array([[-20.0, 20.0]], np.float32), np.zeros(2, np.float32)])
    return model


def small_classifier(channels: int = 1) -> keras.Model:
    """``cam_cnn`` with filters (4, 8) on 64 px films (BatchNorm, two blocks), seed 1."""
    keras.utils.set_random_seed(1)
    return cx.models.build("cam_cnn", input_shape=(FILM, FILM, channels), num_classes=2,
                           filters=(4, 8))


def unet_segmenter(films: np.ndarray) -> cx.lungs.LungSegmenter:
    """An untrained lung U-Net (BatchNorm, seed 2) thresholded at the 80th percentile of its
    probabilities on ``films``: a fifth of each film is "lung", half once dilated by 0.05 on
    phantoms, so the focus visibly masks."""
    keras.utils.set_random_seed(2)
    unet = cx.models.build("lung_unet", input_shape=(SEG, SEG, 1), filters=(4, 8))
    probabilities = cx.lungs.LungSegmenter(unet).probabilities(films)
    return cx.lungs.LungSegmenter(unet, threshold=float(np.quantile(probabilities, 0.8)))


def lungs_32() -> np.ndarray:
    """Two lung fields and a one-pixel island (to see the disc's shape), 32 x 32."""
    mask = np.zeros((SEG, SEG), bool)
    mask[8:26, 4:14] = True
    mask[8:26, 18:28] = True
    mask[29, 3] = True
    return mask


def films(count: int = 3, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Uniform noise films in [0.05, 1)."""
    rng = np.random.default_rng(seed)
    return (0.05 + 0.95 * rng.random((count, FILM, FILM, channels))).astype(np.float32)


# ------------------------------------------------------------------------------ references


def _gaussian_window_sums(values: np.ndarray, present: np.ndarray, sigma: float
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over the window of +-ceil(3 sigma) pixels: the Gaussian-weighted sum of
    ``values`` and of ``present`` (1 where a pixel counts), weights summing to 1 over the
    whole window; pixels beyond the film count as absent."""
    radius = math.ceil(3 * sigma)
    height, width = values.shape
    offsets = np.arange(-radius, radius + 1)
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    taps /= taps.sum()
    weights = taps[:, None] * taps[None, :]
    total = np.zeros((height, width))
    norm = np.zeros((height, width))
    padded = np.pad(np.where(present, values, 0.0).astype(np.float64), radius)
    inside = np.pad(present.astype(np.float64), radius)
    for i, dy in enumerate(offsets):
        for j, dx in enumerate(offsets):
            window = (slice(radius + dy, radius + dy + height),
                      slice(radius + dx, radius + dx + width))
            total += weights[i, j] * padded[window]
            norm += weights[i, j] * inside[window]
    return total, norm


def numpy_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted mean over the window of +-ceil(3 sigma) pixels that lies inside the
    film (the weights renormalised there), one ``(H, W)`` channel."""
    total, norm = _gaussian_window_sums(image, np.ones(image.shape, bool), sigma)
    return total / norm


def numpy_visible_blur(image: np.ndarray, keep: np.ndarray, sigma: float) -> np.ndarray:
    """The inverse mode's blur, brute force: the Gaussian-weighted mean of the kept pixels
    within +-ceil(3 sigma) (weights normalised to sum 1 over the whole window), the kept
    pixels' mean where their total weight is not above ``_MIN_BLUR_WEIGHT``."""
    total, norm = _gaussian_window_sums(image, keep, sigma)
    reached = norm > _MIN_BLUR_WEIGHT
    return np.where(reached, total / np.where(reached, norm, 1.0), image[keep].mean())


def focus_of(model: keras.Model) -> LungFocus:
    layer = model.get_layer("lung_focus")
    assert isinstance(layer, LungFocus)
    return layer


# ------------------------------------------------------------------------------ 1. files
def test_save_and_reload_through_classifier_gives_identical_predictions(tmp_path: Path) -> None:
    images = cx.synthetic.generate(4, size=FILM, seed=0).images
    seg = unet_segmenter(images)
    focused = cx.models.with_lung_focus(small_classifier(), seg, margin=0.05, fill="blur")
    masked = np.asarray(focus_of(focused)(images))
    changed = (masked != images).mean()
    assert 0.2 < changed < 0.8, f"the focus should mask part of the film, masked {changed:.2f}"

    clf = cx.Classifier(focused, class_names=["NORMAL", "PNEUMONIA"])
    path = clf.save(tmp_path / "focused.keras")
    loaded = cx.Classifier.load(path)  # safe_mode on

    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))
    again = focus_of(loaded.model)
    np.testing.assert_array_equal(np.asarray(again(images)), masked)
    assert (again.fill, again.margin, again.threshold) == ("blur", 0.05, seg.threshold)
    assert not again.trainable and not again.segmenter.trainable_weights
    for before, after in zip(focus_of(focused).segmenter.get_weights(),
                             again.segmenter.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


# ------------------------------------------------------------------------------ 2. planted
def planted_film(size: tuple[int, int] = (FILM, FILM)) -> np.ndarray:
    """A dark film (0.2) with an opacity (5 x 5, 0.9) in the left lung and a brighter corner
    marker (6 x 6, 1.0) in the top-left corner, outside the lungs of :func:`lungs_32`."""
    film = np.full((1, *size, 1), 0.2, np.float32)
    film[0, 30:35, 14:19] = 0.9  # opacity, inside rows 16..51, columns 8..27 at 64 px
    film[0, 2:8, 2:8] = 1.0  # marker
    return film


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int(row), int(col)


@pytest.mark.parametrize("fill", ["mean", "zero", "blur"])
def test_gradcam_of_a_focused_model_points_at_the_opacity_not_the_marker(fill: str) -> None:
    film = planted_film()
    classifier = bright_spot_classifier()
    plain = cx.GradCAM(classifier).explain(film, targets=[1]).heatmaps[0]
    assert peak(plain)[0] < 8 and peak(plain)[1] < 8, "control: unfocused, the marker wins"

    focused = cx.models.with_lung_focus(classifier, fixed_mask_segmenter(lungs_32()), fill=fill)
    heat = cx.GradCAM(focused).explain(film, targets=[1]).heatmaps[0]
    row, col = peak(heat)
    assert 30 <= row < 35 and 14 <= col < 19, f"peak at {(row, col)}, not on the opacity"
    assert heat[:10, :10].max() < 0.5 * heat.max()


# ------------------------------------------------------------------------------ 3. gradients
def test_no_gradient_reaches_the_segmenter() -> None:
    images = films(4)
    classifier = small_classifier()
    # margin 0: no dilation, the fewest hard steps between the segmenter and the loss
    focused = cx.models.with_lung_focus(classifier, unet_segmenter(images), margin=0.0)
    segmenter_weights = focus_of(focused).segmenter.weights
    assert segmenter_weights and not any(w.trainable for w in segmenter_weights)
    assert len(focused.trainable_weights) == len(classifier.trainable_weights)
    with tf.GradientTape() as tape:
        for weight in segmenter_weights:  # watched by hand: frozen weights are not watched
            tape.watch(weight.value)
        loss = tf.reduce_sum(focused(images, training=True)[:, 1])
    grads = tape.gradient(loss, [w.value for w in segmenter_weights]
                          + list(classifier.trainable_weights))
    to_segmenter = grads[: len(segmenter_weights)]
    assert all(g is None or not np.any(np.asarray(g)) for g in to_segmenter)
    assert any(g is not None and np.any(np.asarray(g)) for g in grads[len(segmenter_weights):])
    with tf.GradientTape() as tape:  # control: watched this way, the segmenter's own output
        for weight in segmenter_weights:  # has gradients
            tape.watch(weight.value)
        own = tf.reduce_sum(focus_of(focused).segmenter(images[:, ::2, ::2], training=False))
    direct = tape.gradient(own, [w.value for w in segmenter_weights])
    assert any(g is not None and np.any(np.asarray(g)) for g in direct)


@pytest.mark.parametrize("unfreeze", [False, True])
def test_fit_leaves_the_segmenter_unchanged(unfreeze: bool) -> None:
    images = films(8)
    labels = np.array([0, 1] * 4)
    classifier = small_classifier()
    seg = unet_segmenter(images)
    user_weights = seg.model.get_weights()
    focused = cx.models.with_lung_focus(classifier, seg)
    if unfreeze:  # "freeze, then train everything": the segmenter stays frozen all the same
        focused.trainable = False
        focused.trainable = True
    inner = focus_of(focused).segmenter
    assert not inner.trainable_weights
    assert len(focused.trainable_weights) == len(classifier.trainable_weights)
    before = inner.get_weights()  # kernels, BatchNorm's moving statistics too
    classifier_before = classifier.get_weights()
    focused.compile(optimizer=keras.optimizers.Adam(0.05),
                    loss="sparse_categorical_crossentropy")
    focused.fit(images, labels, batch_size=4, epochs=2, verbose=0)

    for old, new in zip(before, inner.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert any(not np.array_equal(old, new)
               for old, new in zip(classifier_before, classifier.get_weights(), strict=True))
    assert seg.model.trainable, "the user's segmenter is copied, not frozen in place"
    for old, new in zip(user_weights, seg.model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("trainer", ["cx.training.fit", "keras.fit"])
def test_a_segmenter_trained_in_this_process_focuses_a_model_that_trains(trainer: str) -> None:
    """``cx.lungs.train`` then ``with_lung_focus`` then fit: the trained segmenter's compiled
    state (its Dice metric, never built in the new model) once rode along into the focused
    model, and the first epoch ended in "Cannot get result() since the metric has not yet
    been built"."""
    data = cx.synthetic.generate(8, size=SEG, classes=("NORMAL", "PNEUMONIA"), seed=4)
    keras.utils.set_random_seed(0)
    unet = cx.models.build("lung_unet", input_shape=(SEG, SEG, 1), filters=(4, 8))
    seg = cx.lungs.train(data.images, data.lung_masks, image_size=SEG, epochs=1, model=unet,
                         validation_split=0.0, verbose=0)
    assert seg.model.compiled  # what made the focused model fail
    keras.utils.set_random_seed(1)
    classifier = cx.models.build("cam_cnn", input_shape=(SEG, SEG, 1), num_classes=2,
                                 filters=(4, 8))
    focused = cx.models.with_lung_focus(classifier, seg)
    inner = focus_of(focused).segmenter
    assert not inner.compiled and inner is not seg.model
    for mine, theirs in zip(inner.get_weights(), seg.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert [m.name for m in focused.metrics] == []  # nothing compiled rides along
    if trainer == "keras.fit":
        focused.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = focused.fit(data.images, data.labels, epochs=1, batch_size=4, verbose=0)
    else:
        history = cx.training.fit(focused, (data.images, data.labels),
                                  (data.images[:4], data.labels[:4]), epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
    np.testing.assert_array_equal(seg.segment(data.images[:2]).shape, (2, SEG, SEG))


# ------------------------------------------------------------------------------ 4. coordinates
def test_explanations_are_in_the_films_pixels() -> None:
    height, width = 48, 64  # not square: a swapped axis cannot pass
    box = (40, 30, 5, 5)  # x, y, width, height: inside the right lung
    film = np.full((1, height, width, 1), 0.2, np.float32)
    film[0, 30:35, 40:45] = 0.9
    film[0, 1:7, 1:7] = 1.0  # a marker, outside the lungs
    lungs = np.zeros((SEG, SEG), bool)
    lungs[6:28, 4:30] = True  # 9..42 rows, 8..60 columns at 48 x 64
    classifier = bright_spot_classifier((height, width), pool=True)
    focused = cx.models.with_lung_focus(classifier, fixed_mask_segmenter(lungs))
    for name in ("gradcam", "cam", "scorecam"):
        exp = cx.get_explainer(name)(focused).explain(film, targets=[1])
        assert exp.heatmaps.shape == (1, height, width)
        assert exp.raw.shape[1:] == (height // 2, width // 2)
        result = cx.metrics.pointing_game(exp.heatmaps, np.array([box], float), tolerance=1)
        assert bool(result.hits[0]), f"{name}: peak at {peak(exp.heatmaps[0])}, box {box}"


# ------------------------------------------------------------------------------ 5. masking
@pytest.mark.parametrize("fill", ["mean", "zero", "blur"])
@pytest.mark.parametrize("margin", [0.0, DEFAULT_MARGIN, 0.1])
def test_masking_equals_a_numpy_rederivation(fill: str, margin: float) -> None:
    images = films(3, channels=3)
    focused = cx.models.with_lung_focus(
        bright_spot_classifier_rgb(), fixed_mask_segmenter(lungs_32()), margin=margin,
        fill=fill)
    out = np.asarray(focus_of(focused)(images))

    keep = ref.numpy_dilate(np.kron(lungs_32(), np.ones((2, 2), bool)), round(margin * FILM))
    assert keep.mean() < 0.9
    for image, result in zip(images, out, strict=True):
        if fill == "mean":
            expected = np.broadcast_to(image.mean(axis=(0, 1)), image.shape)
        elif fill == "zero":
            expected = np.zeros_like(image)
        else:
            expected = np.stack([numpy_blur(image[..., c], BLUR_SIGMA * FILM)
                                 for c in range(3)], axis=-1)
        np.testing.assert_array_equal(result[keep], image[keep])
        np.testing.assert_allclose(result[~keep], expected[~keep], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fill", ["mean", "zero", "blur"])
@pytest.mark.parametrize("margin", [0.0, DEFAULT_MARGIN, 0.1])
def test_inverse_masking_equals_a_numpy_rederivation(fill: str, margin: float) -> None:
    """Inverse: the grown lungs are filled, from the visible part alone; the rest is kept."""
    images = films(3, channels=3)
    focused = cx.models.with_lung_focus(
        bright_spot_classifier_rgb(), fixed_mask_segmenter(lungs_32()), mode="inverse",
        margin=margin, fill=fill)
    assert focus_of(focused).mode == "inverse"
    out = np.asarray(focus_of(focused)(images))

    hidden = ref.numpy_dilate(np.kron(lungs_32(), np.ones((2, 2), bool)), round(margin * FILM))
    keep = ~hidden
    assert 0.1 < hidden.mean() < 0.9
    for image, result in zip(images, out, strict=True):
        if fill == "mean":
            expected = np.broadcast_to(image[keep].mean(axis=0), image.shape)
        elif fill == "zero":
            expected = np.zeros_like(image)
        else:
            expected = np.stack([numpy_visible_blur(image[..., c], keep, BLUR_SIGMA * FILM)
                                 for c in range(3)], axis=-1)
        np.testing.assert_array_equal(result[keep], image[keep])
        np.testing.assert_allclose(result[hidden], expected[hidden], rtol=1e-5, atol=1e-5)
        if fill == "blur" and margin == 0.1:  # lungs wide enough: the fallback is used too
            far = numpy_visible_blur(image[..., 0], keep, BLUR_SIGMA * FILM)
            assert np.any(far[hidden] == image[keep][:, 0].mean())


def test_inverse_and_mask_split_the_film() -> None:
    """With the zero fill, the two modes keep complementary pixels and add up to the film."""
    images = films(2)
    seg = fixed_mask_segmenter(lungs_32())
    classifier = small_classifier()
    both = [np.asarray(focus_of(cx.models.with_lung_focus(classifier, seg, mode=mode,
                                                          fill="zero"))(images))
            for mode in MODES]
    np.testing.assert_allclose(both[0] + both[1], images, rtol=1e-6)
    assert not np.any((both[0] != 0) & (both[1] != 0))


def test_inverse_mode_survives_save_and_reload(tmp_path: Path) -> None:
    images = films(3)
    focused = cx.models.with_lung_focus(small_classifier(), fixed_mask_segmenter(lungs_32()),
                                        mode="inverse", fill="blur")
    clf = cx.Classifier(focused, class_names=["NORMAL", "PNEUMONIA"])
    loaded = cx.Classifier.load(clf.save(tmp_path / "inverse.keras"))
    again = focus_of(loaded.model)
    assert (again.mode, again.fill) == ("inverse", "blur")
    np.testing.assert_array_equal(np.asarray(again(images)),
                                  np.asarray(focus_of(focused)(images)))
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))


def test_a_configuration_without_mode_rebuilds_in_mask_mode() -> None:
    """Files saved before the mode existed hold no ``mode``: they reload as ``"mask"``."""
    focus = LungFocus(fixed_mask_segmenter(lungs_32()).model, name="lung_focus")
    config = focus.get_config()
    assert config.pop("mode") == "mask"
    assert LungFocus.from_config(config).mode == "mask"


def test_the_layer_keeps_its_registered_name_after_the_move_to_lungs() -> None:
    """Saved files name the layer ``cxrexplain>LungFocus`` (and the module it was defined
    in, once ``cxrexplain.models.lung_focus``): both still find the layer, now in lungs/."""
    assert keras.saving.get_registered_name(LungFocus) == "cxrexplain>LungFocus"
    assert cx.models.LungFocus is LungFocus
    focus = LungFocus(fixed_mask_segmenter(lungs_32()).model, name="lung_focus")
    saved = keras.saving.serialize_keras_object(focus)
    assert saved["registered_name"] == "cxrexplain>LungFocus"
    saved["module"] = "cxrexplain.models.lung_focus"  # as files written before the move
    again = keras.saving.deserialize_keras_object(saved)
    assert isinstance(again, LungFocus) and again.threshold == focus.threshold


def test_a_compiled_segmenter_in_a_saved_configuration_loads_uncompiled() -> None:
    """A file written while the copy kept the compiled state holds a ``compile_config``
    (with a loss registered only by training/): it reloads as a clean inference copy."""
    unet = fixed_mask_segmenter(lungs_32()).model
    config = LungFocus(unet, name="lung_focus").get_config()
    config["segmenter"]["compile_config"] = {"loss": {"module": None, "class_name": "Nowhere",
                                                      "config": {}, "registered_name": "x>y"}}
    focus = LungFocus.from_config(config)
    assert not focus.segmenter.compiled


def bright_spot_classifier_rgb() -> keras.Model:
    """Any 3-channel classifier will do for the masking itself."""
    return keras.Sequential([keras.Input((FILM, FILM, 3)), keras.layers.Conv2D(2, 3),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])


@pytest.mark.parametrize(("film_channels", "seg_channels"), [(1, 1), (3, 1), (1, 3)])
def test_segmentation_inside_the_graph_matches_the_segmenter(film_channels: int,
                                                             seg_channels: int) -> None:
    data = cx.synthetic.generate(4, size=FILM, seed=3)
    gray = np.clip(data.images, 0.02, 1.0)
    images = (np.concatenate([gray, gray**2, 0.5 * gray], axis=-1)
              if film_channels == 3 else gray)  # colour: the gray weights matter
    seg = intensity_segmenter(seg_channels)
    seg.clean = False  # the graph does not clean (see the module docs)
    classifier = small_classifier(film_channels)
    focused = cx.models.with_lung_focus(classifier, seg, margin=0.0, fill="zero")
    in_graph = np.asarray(focus_of(focused)(images)).max(axis=-1) > 0
    reference = np.asarray(seg.segment(images))  # load_image's channels, OpenCV's resizing
    assert 0.1 < reference.mean() < 0.9
    assert (in_graph == reference).mean() > 0.999  # float rounding at the threshold only


# ------------------------------------------------------------------------------ 6. layers
def test_the_default_target_layer_is_the_classifiers() -> None:
    classifier = bright_spot_classifier(pool=True)
    focused = cx.models.with_lung_focus(classifier, unet_segmenter(films(2)))
    assert cx.GradCAM(focused).layer == "classifier/last_conv"
    assert cx.GradCAM(classifier).layer == "last_conv"
    paths = find_layers(focused, (FILM, FILM, 1)).spatial_paths()
    assert "lung_focus" in paths and not any(p.startswith("lung_unet") for p in paths)


def test_a_focused_model_without_conv_layers_has_no_default_target() -> None:
    dense = keras.Sequential([keras.Input((FILM, FILM, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")], name="dense")
    focused = cx.models.with_lung_focus(dense, fixed_mask_segmenter(lungs_32()))
    with pytest.raises(ModelStructureError, match="no layer with a 4-D"):
        cx.GradCAM(focused)
    assert cx.GradCAM(focused, layer="lung_focus").layer == "lung_focus"  # named: allowed


# ------------------------------------------------------------------------------ 7. errors
def test_bad_arguments_raise_naming_the_argument() -> None:
    seg = fixed_mask_segmenter(lungs_32())
    model = small_classifier()
    focus = cx.models.with_lung_focus
    with pytest.raises(InvalidInputError, match=r"^model: expected a keras.Model"):
        focus("model.keras", seg)
    with pytest.raises(InvalidInputError, match=r"^segmenter: expected a cx.lungs.LungSegmenter"):
        focus(model, seg.model)
    with pytest.raises(InvalidInputError, match=r"^mode: expected one of 'mask', 'inverse'"):
        focus(model, seg, mode="attention")
    with pytest.raises(InvalidInputError, match=r"^mode: expected one of 'mask', 'inverse'"):
        LungFocus(seg.model, mode="outside")
    for margin in (-0.01, 0.51, float("nan"), "0.1", True):
        with pytest.raises(InvalidInputError, match=r"^margin: expected a number in \[0, 0.5\]"):
            focus(model, seg, margin=margin)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"^fill: expected one of 'mean', 'zero', 'blur'"):
        focus(model, seg, fill="noise")
    two_channels = keras.Sequential([keras.Input((FILM, FILM, 2)), keras.layers.Conv2D(2, 3),
                                     keras.layers.GlobalAveragePooling2D(),
                                     keras.layers.Dense(2)])
    with pytest.raises(InvalidInputError, match=r"^segmenter: takes 1-channel images .* 2"):
        focus(two_channels, seg)
    any_size = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(2, 3),
                                 keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    with pytest.raises(InvalidInputError, match=r"^model: .* fixed-size image input"):
        focus(any_size, seg)
    with pytest.raises(InvalidInputError, match=r"^threshold: expected a number in \(0, 1\)"):
        LungFocus(seg.model, threshold=1.0)
    with pytest.raises(InvalidInputError, match=r"^segmenter: expected a keras.Model"):
        LungFocus("lungs.keras")


# ------------------------------------------------------------------------------ XLA
def test_a_focused_model_compiles_with_xla() -> None:
    """``training.fit`` compiles with XLA on a GPU: every op of the focus must have a kernel
    (TensorFlow's area resizing has none; the focus resizes by matrix products)."""
    images = films(2, channels=3)
    seg = intensity_segmenter(1)
    for fill, mode in (("mean", "mask"), ("blur", "mask"), ("mean", "inverse"),
                       ("blur", "inverse")):
        focused = cx.models.with_lung_focus(bright_spot_classifier_rgb(), seg, fill=fill,
                                            mode=mode)

        def forward(x: tf.Tensor, model: keras.Model = focused) -> tf.Tensor:
            return model(x, training=False)

        compiled = tf.function(forward, jit_compile=True)
        np.testing.assert_allclose(np.asarray(compiled(images)),
                                   np.asarray(focused(images, training=False)),
                                   rtol=1e-4, atol=1e-5)
