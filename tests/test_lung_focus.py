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
                       ("blur", "inverse"), ("mean", "crop")):
        focused = cx.models.with_lung_focus(bright_spot_classifier_rgb(), seg, fill=fill,
                                            mode=mode)

        def forward(x: tf.Tensor, model: keras.Model = focused) -> tf.Tensor:
            return model(x, training=False)

        compiled = tf.function(forward, jit_compile=True)
        np.testing.assert_allclose(np.asarray(compiled(images)),
                                   np.asarray(focused(images, training=False)),
                                   rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ 8. crop
def numpy_crop_and_resize(image: np.ndarray, box: np.ndarray, size: tuple[int, int]
                          ) -> np.ndarray:
    """One ``(H, W, C)`` image's box at ``size``, pixel by pixel in float64, as
    ``tf.image.crop_and_resize`` documents it: output ``(i, j)`` samples the image at
    ``(y0 (H - 1) + i (y1 - y0)(H - 1) / (h - 1), x0 (W - 1) + ...)``, bilinear between the
    four pixels around it, 0 beyond the image (a sample within 1e-3 px of the edge counts as
    on it: float32 rounding)."""
    height, width = image.shape[:2]
    y0, x0, y1, x1 = (float(v) for v in box)
    out = np.zeros((*size, image.shape[2]))
    for i in range(size[0]):
        y = y0 * (height - 1) + i * (y1 - y0) * (height - 1) / (size[0] - 1)
        if not -1e-3 <= y <= height - 1 + 1e-3:
            continue
        y = min(max(y, 0.0), height - 1.0)
        top = math.floor(y)
        bottom, dy = min(top + 1, height - 1), y - top
        for j in range(size[1]):
            x = x0 * (width - 1) + j * (x1 - x0) * (width - 1) / (size[1] - 1)
            if not -1e-3 <= x <= width - 1 + 1e-3:
                continue
            x = min(max(x, 0.0), width - 1.0)
            left = math.floor(x)
            right, dx = min(left + 1, width - 1), x - left
            out[i, j] = ((1 - dy) * ((1 - dx) * image[top, left] + dx * image[top, right])
                         + dy * ((1 - dx) * image[bottom, left] + dx * image[bottom, right]))
    return out


def numpy_to_film(crop_map: np.ndarray, box: np.ndarray) -> np.ndarray:
    """An ``(h, w)`` map in the crop's frame on the film, pixel by pixel: film pixel ``(r, c)``
    lies at ``t = r / (h - 1)`` of the film, at ``(t - y0) / (y1 - y0)`` of the crop; its
    value is the crop map's bilinear sample there, 0 outside the crop."""
    height, width = crop_map.shape
    y0, x0, y1, x1 = (float(v) for v in box)
    out = np.zeros((height, width))
    padded = crop_map.astype(np.float64)
    for r in range(height):
        v = (r / (height - 1) - y0) / (y1 - y0) * (height - 1)
        if not -1e-3 <= v <= height - 1 + 1e-3:
            continue
        v = min(max(v, 0.0), height - 1.0)
        top = math.floor(v)
        bottom, dv = min(top + 1, height - 1), v - top
        for c in range(width):
            u = (c / (width - 1) - x0) / (x1 - x0) * (width - 1)
            if not -1e-3 <= u <= width - 1 + 1e-3:
                continue
            u = min(max(u, 0.0), width - 1.0)
            left = math.floor(u)
            right, du = min(left + 1, width - 1), u - left
            out[r, c] = ((1 - dv) * ((1 - du) * padded[top, left] + du * padded[top, right])
                         + dv * ((1 - du) * padded[bottom, left] + du * padded[bottom, right]))
    return out


def numpy_box(mask: np.ndarray) -> np.ndarray:
    """The normalised ``(y0, x0, y1, x1)`` box of an ``(H, W)`` mask; the frame if empty."""
    height, width = mask.shape
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.array([0.0, 0.0, 1.0, 1.0])
    return np.array([rows.min() / (height - 1), cols.min() / (width - 1),
                     rows.max() / (height - 1), cols.max() / (width - 1)])


def dark_box_films() -> np.ndarray:
    """Three bright films (0.9 + noise): a dark box at two places, and none (no lungs)."""
    rng = np.random.default_rng(7)
    images = (0.8 + 0.2 * rng.random((3, FILM, FILM, 1))).astype(np.float32)
    images[0, 10:40, 6:30] = 0.1
    images[1, 24:60, 20:58] = 0.1
    return images


@pytest.mark.parametrize("margin", [0.0, DEFAULT_MARGIN])
def test_crop_boxes_are_the_bounding_boxes_of_the_grown_masks(margin: float) -> None:
    images = dark_box_films()
    focus = LungFocus(intensity_segmenter().model, threshold=0.5, margin=margin, mode="crop")
    boxes = np.asarray(focus.crop_boxes(images))
    masks = np.asarray(focus.lung_masks(images))[..., 0] > 0.5
    assert masks[0].any() and masks[1].any() and not masks[2].any()
    expected = np.stack([numpy_box(mask) for mask in masks])
    np.testing.assert_allclose(boxes, expected, atol=1e-7)
    assert not np.allclose(boxes[0], boxes[1])  # a box per film
    np.testing.assert_array_equal(boxes[2], [0.0, 0.0, 1.0, 1.0])  # no lungs: the whole frame
    fixed = LungFocus(fixed_mask_segmenter(lungs_32()).model, margin=margin, mode="crop")
    grown = ref.numpy_dilate(np.kron(lungs_32(), np.ones((2, 2), bool)), round(margin * FILM))
    np.testing.assert_allclose(np.asarray(fixed.crop_boxes(images[:1]))[0], numpy_box(grown),
                               atol=1e-7)


def test_the_crop_equals_tf_crop_and_resize_and_a_numpy_rederivation() -> None:
    images = np.concatenate([dark_box_films(), films(3, seed=4)[:, :, :, :1] * 0.5])[:4]
    focus = LungFocus(intensity_segmenter().model, margin=0.0, mode="crop")
    out = np.asarray(focus(images))
    masks = np.asarray(focus.lung_masks(images))[..., 0] > 0.5
    boxes = np.stack([numpy_box(mask) for mask in masks]).astype(np.float32)
    reference = tf.image.crop_and_resize(images, boxes, np.arange(len(images)), (FILM, FILM))
    np.testing.assert_allclose(out, np.asarray(reference), rtol=1e-5, atol=1e-5)
    for image, box, result in zip(images, boxes, out, strict=True):
        np.testing.assert_allclose(result, numpy_crop_and_resize(image, box, (FILM, FILM)),
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[2], images[2], atol=1e-6)  # no lungs: the film itself


def test_to_film_equals_a_numpy_rederivation_and_tf_crop_and_resize() -> None:
    rng = np.random.default_rng(3)
    height, width = 24, 40  # not square: a swapped axis cannot pass
    maps = rng.random((4, height, width)).astype(np.float32)
    starts = rng.uniform(0.0, 0.4, (4, 2))
    stops = rng.uniform(0.6, 1.0, (4, 2))
    boxes = np.concatenate([starts, stops], axis=1).astype(np.float32)
    boxes[3] = [5 / 23, 8 / 39, 17 / 23, 30 / 39]  # edges on pixel centres, as from a mask
    film = np.asarray(LungFocus.to_film(maps, boxes))
    assert film.shape == maps.shape
    for crop_map, box, result in zip(maps, boxes, film, strict=True):
        np.testing.assert_allclose(result, numpy_to_film(crop_map, box), rtol=1e-5, atol=1e-5)
    y0, x0, y1, x1 = boxes.T
    inverse = np.stack([-y0 / (y1 - y0), -x0 / (x1 - x0), (1 - y0) / (y1 - y0),
                        (1 - x0) / (x1 - x0)], axis=1)
    reference = tf.image.crop_and_resize(maps[..., None], inverse, np.arange(4),
                                         (height, width), extrapolation_value=0.0)[..., 0]
    inside = np.abs(np.asarray(reference) - film) < 1e-4
    assert inside.mean() > 0.995  # TF drops a box edge that float32 rounds outside; we keep it
    edge = np.ones((1, height, width), np.float32)
    on_film = np.asarray(LungFocus.to_film(edge, boxes[3:]))[0]
    expected = np.zeros((height, width))
    expected[5:18, 8:31] = 1.0
    np.testing.assert_allclose(on_film, expected, atol=1e-5)  # every box pixel, none beyond


def test_to_film_undoes_the_crop_on_a_linear_ramp() -> None:
    """Bilinear sampling reproduces a linear function: crop a ramp, put it back, and the
    film inside the box is the ramp again (outside it is 0)."""
    rows, cols = np.meshgrid(np.arange(48.0), np.arange(64.0), indexing="ij")
    ramp = (0.01 * rows + 0.005 * cols).astype(np.float32)[None, :, :, None]
    focus = LungFocus(fixed_mask_segmenter(lungs_32()).model, margin=0.0, mode="crop")
    boxes = focus.crop_boxes(ramp)
    from cxrexplain.lungs.focus import _crop_and_resize

    cropped = _crop_and_resize(ramp, boxes, (48, 64))
    back = np.asarray(LungFocus.to_film(cropped, boxes))[0, ..., 0]
    box = np.round(np.asarray(boxes)[0] * [47, 63, 47, 63]).astype(int)
    inside = np.zeros((48, 64), bool)
    inside[box[0]:box[2] + 1, box[1]:box[3] + 1] = True
    np.testing.assert_allclose(back[inside], ramp[0, ..., 0][inside], atol=1e-5)
    assert not back[~inside].any()


def crop_film() -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """A dark 48 x 64 film, an opacity (5 x 5) in the lower right of the lungs and a marker
    (6 x 6, brighter) outside their box; the lungs (rows 12..42, columns 8..47 at 48 x 64,
    from a 32 x 32 mask) and the opacity's box ``(x, y, w, h)``."""
    height, width = 48, 64
    film = np.full((1, height, width, 1), 0.2, np.float32)
    film[0, 34:39, 38:43] = 0.9
    film[0, 1:7, 54:60] = 1.0
    lungs = np.zeros((SEG, SEG), bool)
    lungs[8:29, 4:24] = True
    return film, lungs, (38, 34, 5, 5)


@pytest.mark.parametrize("method", ["gradcam", "cam", "hirescam", "scorecam"])
def test_explanations_of_a_crop_focused_model_are_in_the_films_pixels(method: str) -> None:
    film, lungs, box = crop_film()
    classifier = bright_spot_classifier(film.shape[1:3], pool=True)
    focused = cx.models.with_lung_focus(classifier, fixed_mask_segmenter(lungs), mode="crop",
                                        margin=0.0)
    focus = focus_of(focused)
    masks = np.asarray(focus.lung_masks(film))[0, ..., 0] > 0.5
    np.testing.assert_allclose(np.asarray(focus.crop_boxes(film))[0], numpy_box(masks),
                               atol=1e-7)
    top, left, bottom, right = np.round(numpy_box(masks) * [47, 63, 47, 63]).astype(int)
    assert (top, left, bottom, right) == (12, 8, 42, 47)
    cropped = np.asarray(focus(film))[0, ..., 0]
    seen = peak(cropped)
    assert not (34 <= seen[0] < 39 and 38 <= seen[1] < 43), "control: the crop moved it"
    assert cropped[:8, 48:].max() < 0.5, "control: the marker is cropped away"

    exp = cx.get_explainer(method)(focused).explain(film, targets=[1])
    assert exp.layer == "classifier/last_conv"
    assert exp.heatmaps.shape == (1, 48, 64) and exp.raw.shape == (1, 24, 32)
    hit = cx.metrics.pointing_game(exp.heatmaps, np.array([box], float), tolerance=1)
    assert bool(hit.hits[0]), f"{method}: peak at {peak(exp.heatmaps[0])}, opacity {box}"
    outside = np.ones((48, 64), bool)
    outside[top:bottom + 1, left:right + 1] = False
    assert not exp.heatmaps[0][outside].any(), "0 outside the crop box"
    assert exp.heatmaps.max() == pytest.approx(1.0)


def test_cam_of_a_crop_focused_model_equals_the_crop_map_put_back_by_numpy() -> None:
    """The whole chain against references: the inner classifier's activation on the crop
    (``layer_activations``), upsampled (``tf.image.resize``), put back on the film
    (:func:`numpy_to_film`), normalised; ``raw`` is the raw map put back at its size."""
    film, lungs, _ = crop_film()
    classifier = bright_spot_classifier(film.shape[1:3], pool=True)
    focused = cx.models.with_lung_focus(classifier, fixed_mask_segmenter(lungs), mode="crop",
                                        margin=0.0)
    focus = focus_of(focused)
    box = np.asarray(focus.crop_boxes(film))[0]
    from cxrexplain.explain.layers import layer_activations

    _, activations = layer_activations(classifier, np.asarray(focus(film)), "last_conv")
    crop_map = np.maximum(activations[0, ..., 0] * 20.0, 0.0)  # the head's weight for class 1
    upsampled = np.asarray(tf.image.resize(crop_map[None, ..., None], (48, 64)))[0, ..., 0]
    expected = numpy_to_film(np.maximum(upsampled, 0.0), box)
    exp = cx.CAM(focused).explain(film, targets=[1])
    np.testing.assert_allclose(exp.heatmaps[0], expected / expected.max(), atol=1e-5)
    np.testing.assert_allclose(exp.raw[0], numpy_to_film(crop_map, box), rtol=1e-5, atol=1e-5)


def test_occlusion_of_a_crop_focused_model_is_left_as_it_is() -> None:
    """An input explainer works on the film's pixels: nothing is mapped."""
    film, lungs, box = crop_film()
    classifier = bright_spot_classifier(film.shape[1:3], pool=True)
    focused = cx.models.with_lung_focus(classifier, fixed_mask_segmenter(lungs), mode="crop",
                                        margin=0.0)
    exp = cx.Occlusion(focused, patch=4).explain(film, targets=[1])
    hit = cx.metrics.pointing_game(exp.heatmaps, np.array([box], float), tolerance=2)
    assert bool(hit.hits[0]), f"peak at {peak(exp.heatmaps[0])}, opacity {box}"


def test_crop_mode_survives_save_and_reload(tmp_path: Path) -> None:
    images = dark_box_films()
    focused = cx.models.with_lung_focus(small_classifier(), intensity_segmenter(),
                                        mode="crop")
    assert focus_of(focused).get_config()["mode"] == "crop"
    clf = cx.Classifier(focused, class_names=["NORMAL", "PNEUMONIA"])
    loaded = cx.Classifier.load(clf.save(tmp_path / "crop.keras"))  # safe_mode on
    again = focus_of(loaded.model)
    assert again.mode == "crop" and again.reframes
    np.testing.assert_array_equal(np.asarray(again(images)),
                                  np.asarray(focus_of(focused)(images)))
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))
    np.testing.assert_array_equal(cx.GradCAM(loaded).explain(images).heatmaps,
                                  cx.GradCAM(clf).explain(images).heatmaps)


def test_crop_mode_under_mixed_float16() -> None:
    film, lungs, box = crop_film()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        classifier = bright_spot_classifier(film.shape[1:3], pool=True)
        focused = cx.models.with_lung_focus(classifier, fixed_mask_segmenter(lungs),
                                            mode="crop", margin=0.0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert classifier.get_layer("spot").compute_dtype == "float16"
    assert focus_of(focused).compute_dtype == "float32"
    probabilities = cx.Classifier(focused).predict_proba(film)
    assert np.isfinite(probabilities).all() and probabilities[0, 1] > 0.5
    for method in ("gradcam", "cam"):
        exp = cx.get_explainer(method)(focused).explain(film, targets=[1])
        assert exp.heatmaps.dtype == np.float32 and np.isfinite(exp.heatmaps).all()
        hit = cx.metrics.pointing_game(exp.heatmaps, np.array([box], float), tolerance=1)
        assert bool(hit.hits[0]), f"{method}: peak at {peak(exp.heatmaps[0])}"


def test_no_gradient_reaches_the_segmenter_through_the_crop() -> None:
    images = films(4)
    classifier = small_classifier()
    focused = cx.models.with_lung_focus(classifier, unet_segmenter(images), mode="crop",
                                        margin=0.0)
    segmenter_weights = focus_of(focused).segmenter.weights
    films_in = tf.constant(images)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(films_in)
        for weight in segmenter_weights:
            tape.watch(weight.value)
        loss = tf.reduce_sum(focused(films_in, training=True)[:, 1])
    to_segmenter = tape.gradient(loss, [w.value for w in segmenter_weights])
    assert all(g is None or not np.any(np.asarray(g)) for g in to_segmenter)
    to_films = tape.gradient(loss, films_in)
    assert to_films is not None and np.any(np.asarray(to_films))  # the crop passes them
    to_classifier = tape.gradient(loss, classifier.trainable_weights)
    assert any(g is not None and np.any(np.asarray(g)) for g in to_classifier)


def test_a_thin_or_missing_mask_gives_a_usable_box() -> None:
    """One lung row or one pixel (films at the segmenter's 32 px: no resizing): a box two
    pixels wide (no division by zero on the way back); no lungs: the whole frame, and the
    crop is the film."""
    small = films(2)[:, :SEG, :SEG]
    thin = np.zeros((SEG, SEG), bool)
    thin[31, 5:9] = True  # the last row
    focus = LungFocus(fixed_mask_segmenter(thin).model, margin=0.0, mode="crop")
    np.testing.assert_allclose(np.asarray(focus.crop_boxes(small))[0] * 31, [30, 5, 31, 8],
                               atol=1e-4)
    point = np.zeros((SEG, SEG), bool)
    point[0, 0] = True
    single = LungFocus(fixed_mask_segmenter(point).model, margin=0.0, mode="crop")
    boxes = single.crop_boxes(small)
    np.testing.assert_allclose(np.asarray(boxes) * 31, [[0, 0, 1, 1]] * 2, atol=1e-4)
    assert np.isfinite(np.asarray(single(small))).all()
    back = np.asarray(LungFocus.to_film(np.ones((2, 8, 8), np.float32), boxes))
    assert np.isfinite(back).all()
    empty = LungFocus(fixed_mask_segmenter(np.zeros((SEG, SEG), bool)).model, mode="crop")
    np.testing.assert_allclose(np.asarray(empty(films(2))), films(2), atol=1e-6)
