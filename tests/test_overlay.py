"""Tests of cxrexplain.drawing: pixel-exact drawing, figure layout, bad input, real X-ray."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import keras
import matplotlib as mpl
import numpy as np
import pytest
from matplotlib.figure import Figure
from tiny_models import adapted_backbone

from cxrexplain.drawing import (
    colorize,
    draw_box,
    draw_mask,
    overlay,
    plot_explanations,
    plot_feature_maps,
    save_figure,
    save_overlay,
)
from cxrexplain.errors import CxrExplainError, InvalidInputError, ModelStructureError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PNEUMONIA = DATA / "cxr" / "PNEUMONIA"


def _top(name: str) -> np.ndarray:
    """The colormap's colour at 1.0, as round(cmap(1.0) * 255), computed independently."""
    return np.rint(np.asarray(mpl.colormaps[name](1.0))[:3] * 255).astype(np.uint8)


def _bottom(name: str) -> np.ndarray:
    return np.rint(np.asarray(mpl.colormaps[name](0.0))[:3] * 255).astype(np.uint8)


def _image_axes(fig: Figure) -> list[Any]:
    return [ax for ax in fig.axes if ax.images]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def gray_u8(rng: np.random.Generator) -> np.ndarray:
    # values 40..200 so that no pixel equals a pure colour by accident
    return rng.integers(40, 200, size=(24, 32), dtype=np.uint8)


@dataclass(frozen=True)
class FakeExplanation:
    """Stands in for cxrexplain.explain.base.Explanation (duck-typed by plot_explanations)."""

    heatmaps: np.ndarray
    method: str
    targets: np.ndarray
    probabilities: np.ndarray
    scores: np.ndarray


# ------------------------------------------------------------------------------ colorize
@pytest.mark.parametrize("name", ["jet", "inferno", "viridis", "gray"])
def test_colorize_hottest_pixel_gets_the_top_colour(name: str, rng: np.random.Generator) -> None:
    heat = rng.random((20, 30)) * 0.9
    heat[7, 11] = 1.0
    rgb = colorize(heat, name)
    assert rgb.shape == (20, 30, 3)
    assert rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[7, 11], _top(name))
    # only that pixel is at the top level
    assert (rgb == _top(name)).all(axis=2).sum() == 1


def test_colorize_accepts_a_colormap_object() -> None:
    cmap = mpl.colormaps["magma"]
    heat = np.array([[0.0, 1.0]], np.float32)
    rgb = colorize(heat, cmap)
    np.testing.assert_array_equal(rgb[0, 0], _bottom("magma"))
    np.testing.assert_array_equal(rgb[0, 1], _top("magma"))


def test_colorize_all_zero_is_the_colormap_minimum_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = colorize(np.zeros((9, 13), np.float32), "jet")
    assert (rgb == _bottom("jet")).all()


def test_colorize_clips_out_of_range_values() -> None:
    rgb = colorize(np.array([[-3.0, 7.5]]), "jet")
    np.testing.assert_array_equal(rgb[0, 0], _bottom("jet"))
    np.testing.assert_array_equal(rgb[0, 1], _top("jet"))


# ------------------------------------------------------------------------------- overlay
def test_overlay_alpha_zero_returns_the_image_unchanged(
    gray_u8: np.ndarray, rng: np.random.Generator
) -> None:
    heat = rng.random(gray_u8.shape)
    out = overlay(gray_u8, heat, alpha=0.0)
    assert out.dtype == np.uint8
    assert out.shape == (*gray_u8.shape, 3)
    np.testing.assert_array_equal(out, np.repeat(gray_u8[:, :, None], 3, axis=2))
    rgb = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(overlay(rgb, rng.random((16, 16)), alpha=0), rgb)
    as_float = rgb.astype(np.float32) / 255.0
    np.testing.assert_array_equal(overlay(as_float, rng.random((16, 16)), alpha=0), rgb)


def test_overlay_alpha_one_is_exactly_the_coloured_heatmap(
    gray_u8: np.ndarray, rng: np.random.Generator
) -> None:
    heat = rng.random(gray_u8.shape).astype(np.float32)
    np.testing.assert_array_equal(
        overlay(gray_u8, heat, alpha=1.0, colormap="inferno"), colorize(heat, "inferno")
    )


def test_overlay_blends_with_the_documented_formula(
    gray_u8: np.ndarray, rng: np.random.Generator
) -> None:
    heat = rng.random(gray_u8.shape)
    out = overlay(gray_u8, heat, alpha=0.3)
    expected = np.rint(0.7 * gray_u8[:, :, None].astype(float) + 0.3 * colorize(heat))
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


def test_overlay_threshold_leaves_cold_pixels_equal_to_the_image(gray_u8: np.ndarray) -> None:
    heat = np.zeros(gray_u8.shape, np.float32)
    heat[:, 16:] = np.linspace(0.5, 1.0, 16)
    heat[:, 10:16] = 0.45
    out = overlay(gray_u8, heat, alpha=0.6, threshold=0.5)
    image = np.repeat(gray_u8[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(out[:, :16], image[:, :16])
    assert (out[:, 16:] != image[:, 16:]).any(axis=2).all()


def test_overlay_resizes_the_heatmap_bilinearly(gray_u8: np.ndarray) -> None:
    small = np.array([[0.0, 1.0], [0.25, 0.5]], np.float32)
    out = overlay(gray_u8, small, alpha=1.0)
    resized = cv2.resize(small, (32, 24), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out, colorize(resized))


def test_overlay_contours_trace_the_level_set() -> None:
    image = np.zeros((20, 20), np.uint8)
    heat = np.zeros((20, 20), np.float32)
    heat[5:12, 4:15] = 0.8
    out = overlay(image, heat, alpha=0.0, contours=[0.5], contour_color=(255, 255, 255))
    white = (out == 255).all(axis=2)
    expected = np.zeros((20, 20), bool)
    expected[5:12, 4:15] = True
    expected[6:11, 5:14] = False
    np.testing.assert_array_equal(white, expected)


def test_overlay_takes_a_path(tmp_path: Path, gray_u8: np.ndarray) -> None:
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), gray_u8)
    out = overlay(path, np.zeros((4, 4)), alpha=0.0)
    np.testing.assert_array_equal(out[:, :, 1], gray_u8)


# ----------------------------------------------------------------------- boxes and masks
def _border_mask(shape: tuple[int, int], box: tuple[int, int, int, int], t: int) -> np.ndarray:
    """Independent reference: outer edge x..x+w-1, y..y+h-1, thickness t inward."""
    x, y, w, h = box
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    inside = (cols >= x) & (cols <= x + w - 1) & (rows >= y) & (rows <= y + h - 1)
    hole = (cols >= x + t) & (cols <= x + w - 1 - t) & (rows >= y + t) & (rows <= y + h - 1 - t)
    return inside & ~hole


@pytest.mark.parametrize(
    ("box", "thickness"),
    [
        ((5, 4, 12, 9), 1),
        ((5, 4, 12, 9), 2),
        ((3, 2, 20, 15), 3),
        ((6, 6, 3, 4), 2),  # thinner than 2 * thickness: filled
        ((-4, -3, 10, 9), 2),  # partly outside, top-left
        ((25, 18, 30, 30), 2),  # partly outside, bottom-right
        ((0, 0, 32, 24), 1),  # the whole frame
    ],
)
def test_draw_box_changes_exactly_the_border_pixels(
    gray_u8: np.ndarray, box: tuple[int, int, int, int], thickness: int
) -> None:
    out = draw_box(gray_u8, box, color=(0, 255, 0), thickness=thickness)
    changed = (out != np.repeat(gray_u8[:, :, None], 3, axis=2)).any(axis=2)
    expected = _border_mask(gray_u8.shape, box, thickness)
    np.testing.assert_array_equal(changed, expected)
    assert (out[expected] == (0, 255, 0)).all()


def test_draw_box_draws_several_boxes(gray_u8: np.ndarray) -> None:
    boxes = np.array([(1, 1, 8, 6), (15, 10, 12, 10)])
    out = draw_box(gray_u8, boxes, color=(255, 0, 0), thickness=1)
    changed = (out != np.repeat(gray_u8[:, :, None], 3, axis=2)).any(axis=2)
    expected = _border_mask(gray_u8.shape, (1, 1, 8, 6), 1) | _border_mask(
        gray_u8.shape, (15, 10, 12, 10), 1
    )
    np.testing.assert_array_equal(changed, expected)


def test_draw_box_does_not_modify_its_input(gray_u8: np.ndarray) -> None:
    rgb = np.repeat(gray_u8[:, :, None], 3, axis=2)
    before = rgb.copy()
    draw_box(rgb, (2, 2, 5, 5))
    np.testing.assert_array_equal(rgb, before)


def test_draw_mask_tints_inside_and_outlines() -> None:
    image = np.full((16, 16), 100, np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True  # resized nearest to rows/cols 4..11
    fill = draw_mask(image, mask, color=(0, 255, 255), alpha=0.5, outline=False)
    inside = np.zeros((16, 16), bool)
    inside[4:12, 4:12] = True
    np.testing.assert_array_equal(fill[inside], np.tile([50, 178, 178], (64, 1)))
    assert (fill[~inside] == 100).all()
    lines = draw_mask(image, mask, color=(0, 255, 255), alpha=0.0, outline=True)
    edge = inside.copy()
    edge[5:11, 5:11] = False
    np.testing.assert_array_equal((lines != 100).any(axis=2), edge)


# ---------------------------------------------------------------------------- figures
def _fake_batch(rng: np.random.Generator, n: int = 2) -> tuple[np.ndarray, list[Any]]:
    images = rng.random((n, 24, 24, 1)).astype(np.float32)
    probs = np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]][:n], np.float32)
    targets = probs.argmax(axis=1)
    grad = FakeExplanation(
        rng.random((n, 24, 24)).astype(np.float32),
        "Grad-CAM",
        targets,
        probs,
        probs[np.arange(n), targets],
    )
    return images, [grad, rng.random((n, 6, 6)).astype(np.float32)]


def test_plot_explanations_grid_and_titles(rng: np.random.Generator) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    images, explanations = _fake_batch(rng, n=3)
    fig = plot_explanations(images, explanations, class_names=["NORMAL", "PNEUMONIA"])
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before  # pyplot untouched
    axes = _image_axes(fig)
    assert len(axes) == 3 * 3
    titles = [ax.get_title() for ax in axes]
    assert titles == [
        "PNEUMONIA (p=0.80)", "Grad-CAM", "method 2",
        "NORMAL (p=0.90)", "Grad-CAM", "method 2",
        "PNEUMONIA (p=0.60)", "Grad-CAM", "method 2",
    ]  # fmt: skip
    assert len(fig.axes) == 3 * 3 + 1  # the colour bar
    # the explanation panel shows exactly overlay(image, heatmap)
    panel = np.asarray(axes[1].images[0].get_array())
    np.testing.assert_array_equal(panel, overlay(images[0], explanations[0].heatmaps[0]))


def test_plot_explanations_custom_titles_probabilities_no_colorbar(
    rng: np.random.Generator,
) -> None:
    images = rng.random((2, 16, 16)).astype(np.float32)
    heat = rng.random((2, 16, 16)).astype(np.float32)
    fig = plot_explanations(
        list(images),
        [heat, heat],
        titles=["A", "B"],
        probabilities=np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]]),
        class_names=["COVID", "NORMAL", "PNEUMONIA"],
        colorbar=False,
    )
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes] == [
        "NORMAL (p=0.70)", "A", "B", "COVID (p=0.50)", "A", "B",
    ]  # fmt: skip


def test_plot_explanations_draws_boxes_and_masks_on_every_panel(rng: np.random.Generator) -> None:
    images, explanations = _fake_batch(rng)
    mask = np.zeros((2, 24, 24), bool)
    mask[1, 3:9, 3:9] = True
    fig = plot_explanations(
        images,
        explanations,
        boxes=[(10, 10, 8, 8), None],
        masks=mask,
    )
    axes = _image_axes(fig)
    ring = _border_mask((24, 24), (10, 10, 8, 8), 1)
    for ax in axes[:3]:
        panel = np.asarray(ax.images[0].get_array())
        assert (panel[ring] == (0, 255, 0)).all()
    for ax in axes[3:]:
        panel = np.asarray(ax.images[0].get_array())
        assert not (panel == (0, 255, 0)).all(axis=2).any()
        assert (panel[3, 3:9] == (0, 255, 255)).all()  # the mask outline


def test_plot_explanations_show_calls_pyplot_show(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    calls: list[int] = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append(1))
    images, explanations = _fake_batch(rng)
    fig = plot_explanations(images, explanations, show=True)
    assert calls == [1]
    plt.close(fig)


def test_save_figure_writes_a_png(tmp_path: Path, rng: np.random.Generator) -> None:
    images, explanations = _fake_batch(rng)
    path = save_figure(plot_explanations(images, explanations), tmp_path / "sub" / "g.png", dpi=50)
    assert path == tmp_path / "sub" / "g.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------- feature maps
@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    return adapted_backbone()


@pytest.mark.parametrize(
    ("layer", "max_maps", "panels"),
    [("adapt", 32, 3), ("b_conv2", 32, 6), ("backbone/b_conv2", 4, 4), ("backbone/b_conv1", 1, 1)],
)
def test_plot_feature_maps_panel_count(
    tiny_model: keras.Model, layer: str, max_maps: int, panels: int
) -> None:
    image = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    fig = plot_feature_maps(tiny_model, image, layer, max_maps=max_maps)
    assert isinstance(fig, Figure)
    assert len(_image_axes(fig)) == panels
    assert len(fig.axes) == panels


def test_plot_feature_maps_shows_the_nested_layer_activations(tiny_model: keras.Model) -> None:
    image = np.random.default_rng(1).random((16, 16, 1)).astype(np.float32)
    layer = tiny_model.get_layer("backbone").get_layer("b_conv1")
    fig = plot_feature_maps(tiny_model, image, layer, max_maps=2)
    backbone = tiny_model.get_layer("backbone")
    adapted = tiny_model.get_layer("adapt")(image[None])
    expected = np.asarray(keras.Model(backbone.inputs, layer.output)(adapted))[0, :, :, 1]
    shown = np.asarray(_image_axes(fig)[1].images[0].get_array())
    scaled = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(shown, scaled, atol=1e-5)


def test_plot_feature_maps_unknown_layer_lists_conv_layers(tiny_model: keras.Model) -> None:
    with pytest.raises(ModelStructureError, match="no layer 'block9'") as info:
        plot_feature_maps(tiny_model, np.zeros((16, 16)), "block9")
    for name in ("adapt", "backbone/b_conv1", "backbone/b_conv2"):
        assert name in str(info.value)
    assert "head" not in str(info.value)


def test_plot_feature_maps_rejects_a_dense_layer(tiny_model: keras.Model) -> None:
    with pytest.raises(ModelStructureError, match="4-D"):
        plot_feature_maps(tiny_model, np.zeros((16, 16)), "head")


# ---------------------------------------------------------------------------- bad input
GOOD_IMAGE = np.zeros((16, 16), np.float32)
GOOD_HEAT = np.zeros((16, 16), np.float32)
NAN_HEAT = np.full((16, 16), np.nan, np.float32)
INF_HEAT = np.where(np.eye(16) > 0, np.inf, 0.0)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: colorize(NAN_HEAT), "heatmap"),
        (lambda: colorize(INF_HEAT), "heatmap"),
        (lambda: colorize(np.zeros(16)), "heatmap"),
        (lambda: colorize(np.zeros((2, 16, 16))), "heatmap"),
        (lambda: colorize(GOOD_HEAT, "not_a_colormap"), "colormap"),
        (lambda: colorize(GOOD_HEAT, 3), "colormap"),  # type: ignore[arg-type]
        (lambda: overlay(GOOD_IMAGE, NAN_HEAT), "heatmap"),
        (lambda: overlay(GOOD_IMAGE, np.zeros((1, 16, 16, 3))), "heatmap"),
        (lambda: overlay(GOOD_IMAGE, GOOD_HEAT, colormap="nope"), "colormap"),
        (lambda: overlay(GOOD_IMAGE, GOOD_HEAT, alpha=1.5), "alpha"),
        (lambda: overlay(GOOD_IMAGE, GOOD_HEAT, alpha=-0.1), "alpha"),
        (lambda: overlay(GOOD_IMAGE, GOOD_HEAT, alpha=float("nan")), "alpha"),
        (lambda: overlay(GOOD_IMAGE, GOOD_HEAT, threshold=2.0), "threshold"),
        (lambda: overlay(GOOD_IMAGE, GOOD_HEAT, contours=[0.5, 1.0]), "contours"),
        (lambda: overlay(np.full((16, 16), np.nan), GOOD_HEAT), "image"),
        (lambda: overlay(np.zeros((2, 16, 16, 1)), GOOD_HEAT), "image"),
        (lambda: draw_box(GOOD_IMAGE, (1, 2, 3)), "box"),
        (lambda: draw_box(GOOD_IMAGE, (1, 2, 0, 3)), "box"),
        (lambda: draw_box(GOOD_IMAGE, (1, np.nan, 2, 3)), "box"),
        (lambda: draw_box(GOOD_IMAGE, (1, 2, 3, 3), color=(0, 300, 0)), "color"),
        (lambda: draw_box(GOOD_IMAGE, (1, 2, 3, 3), thickness=0), "thickness"),
        (lambda: draw_mask(GOOD_IMAGE, NAN_HEAT), "mask"),
        (lambda: draw_mask(GOOD_IMAGE, GOOD_HEAT > 0, alpha=2), "alpha"),
        (lambda: plot_explanations(np.zeros((2, 16, 16, 1)), [np.zeros((3, 16, 16))]),
         "explanations[0]"),
        (lambda: plot_explanations(np.zeros((2, 16, 16, 1)), [np.zeros((2, 16))]),
         "explanations[0]"),
        (lambda: plot_explanations(np.zeros((1, 16, 16, 1)), [NAN_HEAT[None]]),
         "explanations[0]"),
        (lambda: plot_explanations(np.zeros((1, 16, 16, 1)), [GOOD_HEAT[None]], alpha=3),
         "alpha"),
        (lambda: plot_explanations(np.zeros((1, 16, 16, 1)), [GOOD_HEAT[None]], colormap="x"),
         "colormap"),
        (lambda: plot_explanations(np.zeros((1, 16, 16, 1)), [GOOD_HEAT[None]], titles=[]),
         "titles"),
        (lambda: plot_explanations(np.zeros((2, 16, 16, 1)), [np.zeros((2, 16, 16))],
                                   boxes=[(1, 1, 2, 2)]), "boxes"),
        (lambda: plot_explanations(np.zeros((2, 16, 16, 1)), [np.zeros((2, 16, 16))],
                                   probabilities=np.ones((3, 2))), "probabilities"),
        (lambda: save_figure("not a figure", "x.png"), "figure"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_raises_invalid_input_naming_the_argument(call: Any, argument: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        call()
    assert isinstance(info.value, CxrExplainError)
    assert str(info.value).startswith(argument), str(info.value)


def test_save_overlay_rejects_an_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="path"):
        save_overlay(tmp_path / "a.notanimage", GOOD_IMAGE, GOOD_HEAT)


# ------------------------------------------------------------------------- real X-ray
def test_save_overlay_on_a_real_xray(tmp_path: Path) -> None:
    if not PNEUMONIA.is_dir():
        pytest.skip(f"real X-rays not found at {PNEUMONIA}")
    source = sorted(PNEUMONIA.glob("*.png"))[0]
    rows, cols = np.mgrid[0:64, 0:64]
    heat = np.exp(-((rows - 20.0) ** 2 + (cols - 40.0) ** 2) / (2 * 6.0**2)).astype(np.float32)
    path = save_overlay(tmp_path / "out" / "overlay.png", source, heat, alpha=0.5)
    assert path == tmp_path / "out" / "overlay.png"
    written = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert written is not None
    assert written.shape == (256, 256, 3)
    rgb = cv2.cvtColor(written, cv2.COLOR_BGR2RGB).astype(np.int32)
    redness = rgb[:, :, 0] - rgb[:, :, 2]
    hot = redness[76:84, 156:164]  # the Gaussian's centre (20, 40) scaled by 4
    cold = redness[220:250, 10:40]
    assert hot.mean() > 30
    assert cold.mean() < -30
    # the written file is exactly the overlay
    np.testing.assert_array_equal(rgb, overlay(source, heat, alpha=0.5))


# ------------------------------------------------------ arrays OpenCV would have rejected
_U8_EMPTY = np.zeros((0, 0), np.uint8)
_U8_EMPTY_RGB = np.zeros((0, 5, 3), np.uint8)


class _Targets:
    """An explanation-like object with the given targets."""

    def __init__(self, targets: Any) -> None:
        self.heatmaps = np.zeros((1, 16, 16), np.float32)
        self.targets = targets


@pytest.mark.parametrize(
    ("call", "argument", "fragment"),
    [  # each ended in cv2.error, TypeError, ValueError or IndexError before
        (lambda: overlay(_U8_EMPTY, GOOD_HEAT), "image", "empty"),
        (lambda: overlay(_U8_EMPTY_RGB, GOOD_HEAT), "image", "empty"),
        (lambda: draw_box(_U8_EMPTY_RGB, (1, 1, 2, 2)), "image", "empty"),
        (lambda: draw_box(_U8_EMPTY, (1, 1, 2, 2)), "image", "empty"),
        (lambda: draw_mask(_U8_EMPTY, GOOD_HEAT > 0), "image", "empty"),
        (lambda: plot_explanations([_U8_EMPTY], [GOOD_HEAT[None]]), "images[0]", "empty"),
        (lambda: save_overlay(None, GOOD_IMAGE, GOOD_HEAT), "path", "file path"),  # type: ignore[arg-type]
        (lambda: save_overlay("o.png", GOOD_IMAGE, GOOD_HEAT, bogus=1), "overlay_kwargs",
         "bogus"),
        (lambda: save_figure(Figure(), None), "path", "file path"),  # type: ignore[arg-type]
        (lambda: plot_explanations(GOOD_IMAGE, [GOOD_HEAT[None]], probabilities=[[0.4, 0.6]],
                                   class_names=3), "class_names", "list of strings"),  # type: ignore[arg-type]
        (lambda: plot_explanations(GOOD_IMAGE, _Targets(["a"])), "explanations[0].targets",
         "numbers"),
        (lambda: plot_explanations(GOOD_IMAGE, _Targets([0.5])), "explanations[0].targets",
         "class indices"),
        (lambda: plot_explanations(GOOD_IMAGE, [GOOD_HEAT[None]], boxes=np.array(3.0)),
         "boxes", "one entry per image"),
        (lambda: plot_explanations(GOOD_IMAGE, [GOOD_HEAT[None]], masks=np.array(1.0)),
         "masks", "one entry per image"),
        (lambda: colorize(np.zeros((16, 16), np.complex64)), "heatmap", "complex"),
        (lambda: colorize(np.zeros((16, 16), object)), "heatmap", "numbers"),
        (lambda: draw_mask(GOOD_IMAGE, np.zeros((0, 16))), "mask", "empty"),
        # empty bool maps were converted before the size rule and reached cv2.resize
        (lambda: overlay(GOOD_IMAGE, np.zeros((0, 0), bool)), "heatmap", "empty"),
        (lambda: overlay(GOOD_IMAGE, np.zeros((5, 0), bool)), "heatmap", "empty"),
        (lambda: colorize(np.zeros((0, 3), bool)), "heatmap", "empty"),
        (lambda: draw_mask(GOOD_IMAGE, np.zeros((0, 0), bool)), "mask", "empty"),
        (lambda: save_overlay("o.png", GOOD_IMAGE, np.zeros((0, 0), bool)), "heatmap",
         "empty"),
        (lambda: plot_explanations(GOOD_IMAGE, [np.zeros((1, 0, 0), bool)]), "explanations[0]",
         "empty"),
        (lambda: overlay(np.zeros((16, 16), np.complex128), GOOD_HEAT), "image", "complex"),
    ],
)
def test_odd_arrays_raise_invalid_input_not_opencv_errors(
    call: Any, argument: str, fragment: str
) -> None:
    with pytest.raises(InvalidInputError, match=fragment) as info:
        call()
    assert str(info.value).startswith(argument), str(info.value)


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int8, np.uint16, np.uint32, np.bool_,
                                   np.longdouble])
def test_odd_dtypes_draw_without_warnings(dtype: Any) -> None:
    values = (np.arange(256).reshape(16, 16) % 2).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for result in (overlay(values, values, contours=0.5), colorize(values),
                       draw_box(values, (1, 1, 4, 4)), draw_mask(values, values)):
            assert result.shape == (16, 16, 3) and result.dtype == np.uint8


def test_extreme_but_valid_inputs_draw() -> None:
    """One-pixel images, non-contiguous and read-only arrays, heatmaps of another size or
    beyond float32's range, huge boxes and lines: drawn, never an OpenCV error."""
    strided = np.random.default_rng(0).random((64, 64))[::2, ::2]
    frozen = np.zeros((16, 16), np.uint8)
    frozen.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert overlay(np.zeros((1, 1)), np.ones((1, 1)), contours=0.5).shape == (1, 1, 3)
        assert overlay(np.zeros((1, 1), np.uint8), GOOD_HEAT).shape == (1, 1, 3)
        assert draw_box(np.zeros((1, 1), np.uint8), (0, 0, 1, 1), thickness=5).shape == (1, 1, 3)
        assert draw_mask(np.zeros((1, 1)), np.ones((1, 1), bool)).shape == (1, 1, 3)
        assert overlay(strided, strided.T).shape == (32, 32, 3)
        assert draw_box(frozen, (1, 1, 4, 4)).shape == (16, 16, 3)
        assert overlay(GOOD_IMAGE, np.ones((1, 100000))).shape[:2] == GOOD_IMAGE.shape[:2]
        np.testing.assert_array_equal(colorize(np.full((4, 4), 1e300)),
                                      colorize(np.ones((4, 4))))
        plot_explanations(GOOD_IMAGE, [np.full((1, 16, 16), -1e300)])
        assert draw_box(GOOD_IMAGE, (-1e30, -1e30, 1e31, 1e31), thickness=2**40).shape[2] == 3
        wide = overlay(GOOD_IMAGE, np.eye(16), contours=0.5, contour_thickness=2**40)
        every = overlay(GOOD_IMAGE, np.eye(16), contours=0.5, contour_thickness=10_000)
        np.testing.assert_array_equal(wide, every)  # wider than needed: the same pixels
