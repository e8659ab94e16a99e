"""Run-length codes (cx.data.rle) and polygon/mask geometry (cx.data.shapes)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from cxrexplain.data import rle, shapes
from cxrexplain.errors import InvalidInputError


def _reference_runs(mask: np.ndarray) -> list[int]:
    """Run lengths by a plain loop over the column-major pixels (background first)."""
    runs, current, value = [], 0, False
    for pixel in mask.T.ravel().tolist():
        if bool(pixel) == value:
            current += 1
        else:
            runs.append(current)
            current, value = 1, not value
    runs.append(current)
    return runs


def _reference_coco_string(runs: list[int]) -> str:
    """COCO's rleToString, transcribed from maskApi.c line by line."""
    out = []
    for i, count in enumerate(runs):
        x = count - runs[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _random_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    masks = [rng.random((h, w)) < p for h, w, p in
             [(1, 1, 0.5), (7, 5, 0.5), (40, 33, 0.1), (64, 64, 0.9), (3, 200, 0.5)]]
    blobs = np.zeros((300, 257), bool)
    blobs[20:200, 30:90] = True      # long runs: counts over 32, 1024 (several characters)
    blobs[250:, 100:] = True
    masks += [blobs, np.zeros((9, 4), bool), np.ones((9, 4), bool)]
    return masks


@pytest.mark.parametrize("index", range(8))
def test_coco_round_trip_random(index: int) -> None:
    mask = _random_masks()[index]
    runs = _reference_runs(mask)
    code = rle.mask_to_coco(mask)
    assert code["size"] == list(mask.shape)
    assert code["counts"] == _reference_coco_string(runs)
    assert rle.coco_counts(code["counts"]).tolist() == runs
    np.testing.assert_array_equal(rle.coco_to_mask(code), mask)
    listed = rle.mask_to_coco(mask, compressed=False)
    assert listed["counts"] == runs
    np.testing.assert_array_equal(rle.coco_to_mask(listed), mask)


def test_coco_known_codes() -> None:
    # pycocotools: encode(asfortranarray([[0,1],[1,1]])) == b'13' (1 background, 3 mask)
    assert rle.mask_to_coco(np.array([[0, 1], [1, 1]]))["counts"] == "13"
    # negative differences: runs 5, 40, 3, 1 -> 1 - 40 = -39 is two characters with the sign
    assert _reference_coco_string([5, 40, 3, 1]) == "5X13iN"
    assert rle.coco_counts("5X13iN").tolist() == [5, 40, 3, 1]
    mask = rle.coco_to_mask({"size": [7, 7], "counts": "5X13iN"})
    assert mask.T.ravel()[5:45].all() and not mask.T.ravel()[45:48].any()
    assert mask.sum() == 41


def test_coco_errors() -> None:
    with pytest.raises(InvalidInputError, match="cover 4 pixels"):
        rle.coco_to_mask({"size": [2, 3], "counts": [1, 3]})
    with pytest.raises(InvalidInputError, match="middle of a number"):
        rle.coco_counts("1X")
    with pytest.raises(InvalidInputError, match="outside"):
        rle.coco_to_mask({"size": [1, 1], "counts": "1 "}, name="a.json[x]")
    with pytest.raises(InvalidInputError, match="size"):
        rle.coco_to_mask({"size": [1], "counts": "1"})
    with pytest.raises(InvalidInputError, match="'size' and 'counts'"):
        rle.coco_to_mask({"counts": "1"})


def test_siim_hand_made() -> None:
    # 3 x 3: pixels (column-major) 1, 2 and 6 set: gap 1, length 2, gap 3, length 1
    mask = np.zeros((3, 3), bool)
    mask[1, 0] = mask[2, 0] = mask[0, 2] = True
    assert rle.mask_to_siim(mask) == "1 2 3 1"
    np.testing.assert_array_equal(rle.siim_to_mask("1 2 3 1", shape=(3, 3)), mask)
    assert not rle.siim_to_mask(" -1", shape=(3, 3)).any()


@pytest.mark.parametrize("index", range(8))
def test_siim_round_trip_random(index: int) -> None:
    mask = _random_masks()[index]
    np.testing.assert_array_equal(
        rle.siim_to_mask(rle.mask_to_siim(mask), shape=mask.shape), mask)


def test_siim_errors() -> None:
    with pytest.raises(InvalidInputError, match="pairs"):
        rle.siim_to_mask("1 2 3")
    with pytest.raises(InvalidInputError, match="whole numbers"):
        rle.siim_to_mask("1 2.5")
    with pytest.raises(InvalidInputError, match="cover 10 pixels"):
        rle.siim_to_mask("0 10", shape=(3, 3))


def test_real_coco_codes_round_trip(data_dir: Path) -> None:
    segmentations = json.loads(
        (data_dir / "formats/chexlocalize/gt_segmentations_val.json").read_text())
    sizes = {}
    for film, findings in segmentations.items():
        for finding, code in findings.items():
            mask = rle.coco_to_mask(code)
            assert mask.shape == tuple(code["size"])
            # our encoder writes back the very string pycocotools wrote
            assert rle.mask_to_coco(mask)["counts"] == code["counts"]
            sizes[(film[:12], finding)] = int(mask.sum())
    assert sizes[("patient64541", "Cardiomegaly")] == 867107
    assert sizes[("patient64542", "Support Devices")] == 47345
    assert sizes[("patient64542", "Cardiomegaly")] == 0


def test_real_siim_codes(data_dir: Path) -> None:
    with gzip.open(data_dir / "formats/siim/train-rle.csv.gz", "rt") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["ImageId", " EncodedPixels"]
    codes = [row[1] for row in rows[1:] if row[1].strip() != "-1"]
    assert len(codes) == 3576
    for code in codes[:300]:
        mask = rle.siim_to_mask(code)
        assert rle.mask_to_siim(mask) == " ".join(code.split())
    first = rle.siim_to_mask(codes[0])   # 557374 2 1015 8 ...: column 544, rows 318-319 first
    assert first.shape == (1024, 1024)
    assert first[318:320, 544].all() and not first[:318, 544].any()
    assert not first[:, :544].any()


def test_polygon_mask_matches_pillow_style_square() -> None:
    # vertices at pixel corners: the filled square includes its outline pixels
    mask = shapes.polygon_mask([[[2, 1], [5, 1], [5, 3], [2, 3]]], (5, 7))
    expected = np.zeros((5, 7), bool)
    expected[1:4, 2:6] = True
    np.testing.assert_array_equal(mask, expected)
    # two overlapping polygons stay one filled union (no even-odd hole)
    both = shapes.polygon_mask([[[0, 0], [4, 0], [4, 4], [0, 4]],
                                [[2, 2], [6, 2], [6, 4], [2, 4]]], (6, 8))
    assert both[3, 3] and both[3, 6] and both[0, 0] and not both[5, 7]


def test_boxes_of_shapes() -> None:
    mask = np.zeros((10, 12), bool)
    mask[1:3, 2:6] = True
    mask[6:10, 9:11] = True
    np.testing.assert_array_equal(shapes.component_boxes(mask), [[2, 1, 4, 2], [9, 6, 2, 4]])
    assert shapes.component_boxes(np.zeros((3, 3), bool)).shape == (0, 4)
    with pytest.raises(InvalidInputError, match="polygon 0"):
        shapes.polygon_boxes([[[1, 2, 3]]])


def _mask_box(mask: np.ndarray) -> list[list[float]]:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return []
    return [[cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]]


@pytest.mark.parametrize("index", range(8))
def test_runs_box_matches_the_decoded_mask(index: int) -> None:
    mask = _random_masks()[index]
    assert rle.runs_box(rle.mask_to_runs(mask), mask.shape[0]).tolist() == _mask_box(mask)


def test_runs_box_of_real_siim_codes(data_dir: Path) -> None:
    with gzip.open(data_dir / "formats/siim/train-rle.csv.gz", "rt") as handle:
        codes = [row[1] for row in csv.reader(handle) if row[1].strip() not in ("-1", "")]
    for code in codes[1:200:7]:
        box = rle.runs_box(rle.siim_runs(code), 1024)
        assert box.tolist() == _mask_box(rle.siim_to_mask(code))
