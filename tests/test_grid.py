"""``cxrexplain.drawing.overlay_grid``: films x maps as one RGB picture, tile by tile."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cxrexplain.drawing import draw_box, draw_mask, overlay, overlay_grid
from cxrexplain.errors import InvalidInputError

GAP, CAPTION, HEADER = 2, 14, 16  # the layout's constants, as documented in the module


def _films(count: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    films = rng.random((count, size, size, 1)).astype(np.float32)
    maps = rng.random((count, size, size)).astype(np.float32)
    return films, maps


def test_each_tile_is_the_overlay_of_its_film_scaled_to_128_pixels() -> None:
    films, maps = _films(5)
    grid = overlay_grid(films, maps, columns=3)  # no header, no captions
    tile = 128  # 32 px films are scaled up to the smallest tile side
    assert grid.shape == (2 * (tile + CAPTION + GAP) + GAP, 3 * (tile + GAP) + GAP, 3)
    for i in range(5):
        y = GAP + (i // 3) * (tile + CAPTION + GAP)
        x = GAP + (i % 3) * (tile + GAP)
        film = cv2.resize(films[i], (tile, tile), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(grid[y : y + tile, x : x + tile],
                                      overlay(film, maps[i], alpha=0.4))
    empty = grid[GAP + tile + CAPTION + GAP:, GAP + 2 * (tile + GAP):]  # the sixth cell
    assert (empty == 32).all()


def test_masks_boxes_header_and_captions() -> None:
    films, maps = _films(2, size=64)
    lungs = np.zeros((2, 64, 64), np.uint8)
    lungs[:, 10:50, 8:30] = 255  # 0/255: the one mask rule
    boxes = [np.array([[4.0, 4.0, 10.0, 10.0]]), None]
    grid = overlay_grid(films, maps, masks=lungs, boxes=boxes, header="epoch 1",
                        captions=["NORMAL 0.90", ""])
    tile = 128
    y, x = HEADER + GAP, GAP
    film = cv2.resize(films[0], (tile, tile), interpolation=cv2.INTER_LINEAR)
    expected = draw_box(draw_mask(overlay(film, maps[0], alpha=0.4), lungs[0] > 0, alpha=0.0),
                        boxes[0] * 2, thickness=1)
    np.testing.assert_array_equal(grid[y : y + tile, x : x + tile], expected)
    assert (grid[:HEADER] != 32).any()  # the header's text
    caption_rows = grid[y + tile : y + tile + CAPTION]
    assert (caption_rows[:, x : x + tile] != 32).any()  # the first caption
    second = caption_rows[:, x + tile + GAP : x + 2 * tile + GAP]
    assert (second == 32).all()  # an empty caption draws nothing


def test_bad_arguments_name_themselves() -> None:
    films, maps = _films(2)
    with pytest.raises(InvalidInputError, match="^heatmaps"):
        overlay_grid(films, maps[:1])
    with pytest.raises(InvalidInputError, match="^captions"):
        overlay_grid(films, maps, captions=["a"])
    with pytest.raises(InvalidInputError, match="^masks: expected 2 masks"):
        overlay_grid(films, maps, masks=np.ones((3, 32, 32), bool))
    with pytest.raises(InvalidInputError, match="^images"):
        overlay_grid(films[0], maps)
