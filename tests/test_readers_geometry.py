"""Readers with geometry: CheXlocalize (polygons, COCO masks), SIIM-ACR (RLE), VinDr-CXR (boxes)."""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

import cxrexplain as cx
from cxrexplain.data.readers.chexlocalize import CHEXLOCALIZE_CLASSES
from cxrexplain.errors import InvalidInputError

VINDR_HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"


@pytest.fixture(scope="module")
def formats(data_dir: Path) -> Path:
    folder = data_dir / "formats"
    if not folder.is_dir():
        pytest.skip("formats/ not found")
    return folder


# --- VinDr-CXR ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vindr_rows(formats: Path) -> list[dict[str, str]]:
    with gzip.open(formats / "vindr/train.csv.gz", "rt") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("merge", ["union", "majority", "unanimous"])
def test_vindr_real_file_against_a_plain_reference(formats: Path, vindr_rows: list[dict[str, str]],
                                                   merge: str) -> None:
    recs = cx.data.read_vindr(formats / "vindr/train.csv.gz", images=formats, merge=merge)
    assert len(vindr_rows) == 67914 and len(recs) == 15000
    assert recs.class_names[0] == "Aortic enlargement" and recs.class_names[-1] == "No finding"
    assert len(recs.class_names) == 15
    # the reference: plain dictionaries over the rows
    readers: dict[str, set[str]] = defaultdict(set)
    votes: dict[tuple[str, str], set[str]] = defaultdict(set)
    boxes: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    for row in vindr_rows:
        readers[row["image_id"]].add(row["rad_id"])
        votes[(row["image_id"], row["class_name"])].add(row["rad_id"])
        if row["x_min"]:
            x0, y0, x1, y1 = (float(row[c]) for c in ("x_min", "y_min", "x_max", "y_max"))
            boxes[(row["image_id"], row["class_name"])].append([x0, y0, x1 - x0, y1 - y0])
    film = {image: i for i, image in enumerate(recs.patient.tolist())}
    expected = np.zeros_like(recs.targets)
    for (image, name), who in votes.items():
        n, k = len(who), len(readers[image])
        if name != "No finding" and {"union": n >= 1, "majority": 2 * n > k,
                                     "unanimous": n == k}[merge]:
            expected[film[image], recs.class_names.index(name)] = 1
    expected[:, -1] = expected[:, :-1].max(axis=1) == 0
    np.testing.assert_array_equal(recs.targets, expected)
    assert (recs.metadata["readers"] == 3).all()
    total = 0
    for name in recs.findings_with_boxes:
        per_film = recs.boxes(name)
        for i in np.flatnonzero(expected[:, recs.class_names.index(name)]).tolist():
            want = boxes[(recs.patient[i], name)]
            assert per_film[i].tolist() == want
            total += len(want)
    assert total == sum(len(b) for name in recs.findings_with_boxes for b in recs.boxes(name))
    if merge == "union":
        assert total == 36096  # every box of the file
    assert recs.source[0] == "VinDr-CXR" and len(recs.missing()) == 15000  # no films here


def test_vindr_known_row(formats: Path) -> None:
    recs = cx.data.read_vindr(formats / "vindr/train.csv.gz")
    i = recs.patient.tolist().index("9a5094b2563a1ef3ff50dc5c7ff71345")
    # row 4 of the file: Cardiomegaly, R10, 691, 1375, 1653, 1831
    assert [691.0, 1375.0, 962.0, 456.0] in recs.boxes("Cardiomegaly")[i].tolist()
    assert recs.targets[i, recs.class_names.index("Cardiomegaly")] == 1
    assert recs.paths[i].endswith("9a5094b2563a1ef3ff50dc5c7ff71345.dicom")


@pytest.mark.parametrize(("line", "message"), [
    ("f1,Cardiomegaly,3,R1,10,20,5,70\n", "row 3, column 'x_max': expected x_max > x_min"),
    ("f1,Cardiomegaly,3,R1,10,20,,70\n", "row 3, column 'x_max': expected a number"),
    ("f1,Cardiomegaly,3,R1,10,abc,15,70\n", "row 3, column 'y_min': expected a number"),
    ("f1,Cardiomegaly,4,R1,10,20,15,70\n", "row 3, column 'class_id': class 'Cardiomegaly'"),
    ("f1,Nodule,3,R1,10,20,15,70\n", "row 3, column 'class_id': class_id 3 names both"),
    ("f1,Cardiomegaly,3.5,R1,10,20,15,70\n", "row 3, column 'class_id': expected a whole"),
    (",Cardiomegaly,3,R1,10,20,15,70\n", "row 3, column 'image_id': expected a value"),
])
def test_vindr_malformed_rows_name_file_row_and_column(tmp_path: Path, line: str,
                                                       message: str) -> None:
    path = tmp_path / "train.csv"
    path.write_text(VINDR_HEADER + "f0,Cardiomegaly,3,R2,1,2,3,4\n" + line)
    with pytest.raises(InvalidInputError, match="train.csv' " + message.replace("(", r"\(")):
        cx.data.read_vindr(path)


def test_vindr_missing_films_and_nested_folders(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(VINDR_HEADER + "f0,No finding,14,R1,,,,\n"
                                        "f1,No finding,14,R1,,,,\nf2,No finding,14,R1,,,,\n")
    (tmp_path / "films/train").mkdir(parents=True)
    (tmp_path / "films/train/f0.png").write_bytes(b"")
    (tmp_path / "films/train/f2.dicom").write_bytes(b"")
    recs = cx.data.read_vindr(tmp_path / "train.csv", images=tmp_path / "films")
    assert [Path(p).name for p in recs.paths] == ["f0.png", "f1.dicom", "f2.dicom"]
    assert recs.missing() == (str(tmp_path / "films/f1.dicom"),)
    with pytest.raises(InvalidInputError, match="merge"):
        cx.data.read_vindr(tmp_path / "train.csv", merge="vote")  # type: ignore[arg-type]


# --- SIIM-ACR -------------------------------------------------------------------------------

def _kaggle_rle2mask(code: str) -> np.ndarray:
    """The SIIM organisers' ``mask_functions.rle2mask`` (then ``.T``), as published."""
    mask = np.zeros(1024 * 1024)
    array = np.asarray([int(x) for x in code.split()])
    position = 0
    for start, length in zip(array[0::2], array[1::2], strict=True):
        position += start
        mask[position:position + length] = 255
        position += length
    return mask.reshape(1024, 1024).T > 0


def test_siim_real_file(formats: Path) -> None:
    path = formats / "siim/train-rle.csv.gz"
    recs = cx.data.read_siim(path)
    assert len(recs) == 12047 and recs.class_names == ("Pneumothorax",)
    assert recs.counts() == {"Pneumothorax": 2669}
    assert len(recs.mask_table("Pneumothorax").codes) == 3576
    assert (recs.sizes == 1024).all() and recs.source[0] == "SIIM-ACR"
    with gzip.open(path, "rt") as handle:
        rows = [row for row in csv.reader(handle)][1:]
    codes: dict[str, list[str]] = defaultdict(list)
    for image, code in rows:
        if code.strip() != "-1":
            codes[image].append(code)
    assert recs.patient[0] == rows[0][0] and recs.targets[0, 0] == 0  # the first row: -1
    several = [image for image, found in codes.items() if len(found) >= 3][:3]
    single = "1.2.276.0.7230010.3.1.4.8323329.13666.1517875247.117800"  # the file's 2nd row
    picked = [recs.patient.tolist().index(image) for image in [single, *several]]
    sub = recs.subset(picked)
    masks = sub.masks("Pneumothorax")
    for k, image in enumerate([single, *several]):
        reference = np.zeros((1024, 1024), bool)
        for code in codes[image]:
            reference |= _kaggle_rle2mask(code)
        np.testing.assert_array_equal(masks[k], reference)
        boxes = sub.boxes("Pneumothorax")[k]
        assert len(boxes) == len(codes[image])
        rows_, cols = np.nonzero(reference)
        union = [boxes[:, 0].min(), boxes[:, 1].min(), (boxes[:, 0] + boxes[:, 2]).max(),
                 (boxes[:, 1] + boxes[:, 3]).max()]
        assert union == [cols.min(), rows_.min(), cols.max() + 1, rows_.max() + 1]
    assert sub.boxes("Pneumothorax")[0].tolist() == [[544.0, 125.0, 252.0, 266.0]]


@pytest.mark.parametrize(("code", "message"), [
    ("1 2 3", "pairs"), ("1 x", "whole numbers"), ("1048575 2", "cover 1048577 pixels"),
    ("5 -2", "negative"),
])
def test_siim_malformed_rows(tmp_path: Path, code: str, message: str) -> None:
    path = tmp_path / "train-rle.csv"
    path.write_text(f"ImageId, EncodedPixels\n1.2,-1\n\n3.4,{code}\n")
    with pytest.raises(InvalidInputError,
                       match=f"train-rle.csv' row 4, column 'EncodedPixels': .*{message}"):
        cx.data.read_siim(path)


def test_siim_films_found_below_the_folder(tmp_path: Path) -> None:
    (tmp_path / "rle.csv").write_text("ImageId, EncodedPixels\n1.2.3,-1\n4.5.6,0 3\n"
                                      "7.8,-1\n")
    nested = tmp_path / "dicom-images-train/1.2.9/1.2.10"
    nested.mkdir(parents=True)
    (nested / "1.2.3.dcm").write_bytes(b"")
    (nested.parent / "4.5.6.dcm").write_bytes(b"")
    recs = cx.data.read_siim(tmp_path / "rle.csv", images=tmp_path)
    assert recs.paths[:2] == (str(nested / "1.2.3.dcm"), str(nested.parent / "4.5.6.dcm"))
    assert recs.missing() == (str(tmp_path / "7.8.dcm"),)
    assert recs.targets.ravel().tolist() == [0.0, 1.0, 0.0]


# --- CheXlocalize ---------------------------------------------------------------------------

def _iou_dice(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    inter, union = float((a & b).sum()), float((a | b).sum())
    return inter / union, 2 * inter / float(a.sum() + b.sum())


def test_chexlocalize_polygons_agree_with_the_run_length_masks(formats: Path) -> None:
    folder = formats / "chexlocalize"
    polygons = cx.data.read_chexlocalize(folder / "gt_annotations_val.json")
    runs = cx.data.read_chexlocalize(segmentations_json=folder / "gt_segmentations_val.json")
    assert polygons.findings_with_masks == runs.findings_with_masks == (
        "Enlarged Cardiomediastinum", "Cardiomegaly", "Airspace Opacity", "Support Devices")
    scores = {}
    for finding in polygons.findings_with_masks:
        film = int(np.flatnonzero(polygons.annotated(finding))[0])
        filled = polygons.subset([film]).masks(finding)[0]
        coded = runs.subset([film]).masks(finding)[0]
        scores[finding] = _iou_dice(filled, coded)
        # what OpenCV adds is a thin rim along the outline, never a missed inside
        assert (coded & ~filled).sum() <= 1
    assert min(iou for iou, _ in scores.values()) >= 0.985, scores
    assert min(dice for _, dice in scores.values()) >= 0.99, scores
    assert scores["Cardiomegaly"][0] >= 0.999


def test_chexlocalize_real_sample(formats: Path) -> None:
    folder = formats / "chexlocalize"
    recs = cx.data.read_chexlocalize(folder / "gt_annotations_val.json",
                                     folder / "gt_segmentations_val.json", images=folder)
    assert len(recs) == 2 and recs.class_names == CHEXLOCALIZE_CLASSES
    assert recs.missing() == ()
    assert recs.patient.tolist() == ["patient64541", "patient64542"]
    assert recs.sex.tolist() == ["M", "M"] and recs.age.tolist() == [73.0, 70.0]
    assert recs.view.tolist() == ["AP", "PA"]
    for path, size in zip(recs.paths, recs.sizes.tolist(), strict=True):
        film = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        assert list(film.shape) == size  # img_size is (height, width)
    # the positives are valid.csv's positive labels (Lung Opacity = Airspace Opacity)
    with (folder / "valid.csv").open() as handle:
        labels = list(csv.DictReader(handle))
    for k, row in enumerate(labels):
        for finding in recs.class_names:
            column = "Lung Opacity" if finding == "Airspace Opacity" else finding
            assert recs.targets[k, recs.class_names.index(finding)] == float(row[column])
    # boxes: one per polygon, around the polygon's pixels of the run-length mask
    boxes = recs.boxes("Enlarged Cardiomediastinum")[0]
    assert boxes.tolist() == [[1218.0, 723.0, 670.0, 1275.0], [1201.0, 936.0, 1173.0, 1065.0]]
    mask = recs.subset([0]).masks("Enlarged Cardiomediastinum")[0]
    rows, cols = np.nonzero(mask)
    assert [cols.min(), rows.min()] == [boxes[:, 0].min(), boxes[:, 1].min()]
    assert [cols.max() + 1, rows.max() + 1] == [(boxes[:, 0] + boxes[:, 2]).max(),
                                                (boxes[:, 1] + boxes[:, 3]).max()]
    # masks at a model's size, boxes rescaled to it
    assert recs.masks("Support Devices", size=64).shape == (2, 64, 64)
    scaled = recs.boxes("Support Devices", size=(101, 101))[1][0]
    native = recs.boxes("Support Devices")[1][0]
    np.testing.assert_allclose(scaled, native * np.array([101 / 2021, 101 / 2022] * 2))


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("film", "message"), [
    ({"Edema": [[[0, 0], [1, 1], [2, 0]]]}, "film 'patient1_study1_view1_frontal': "
                                             "expected 'img_size'"),
    ({"img_size": [10, 10], "Edema": [[[0, 0], [1, 1]]]},
     "film 'patient1_study1_view1_frontal', finding 'Edema': .*three"),
    ({"img_size": [10, 10], "Edema": [[[0, 0], [1, "a"], [2, 2]]]},
     "film 'patient1_study1_view1_frontal', finding 'Edema'"),
    ({"img_size": [10, 10], "Edema": "nope"},
     "film 'patient1_study1_view1_frontal', finding 'Edema': expected a list"),
])
def test_chexlocalize_malformed_annotations(tmp_path: Path, film: dict[str, object],
                                            message: str) -> None:
    path = _write(tmp_path / "gt_annotations_val.json", {"patient1_study1_view1_frontal": film})
    with pytest.raises(InvalidInputError,
                       match="^annotations_json: '.*gt_annotations_val.json' " + message):
        cx.data.read_chexlocalize(path)


@pytest.mark.parametrize(("code", "message"), [
    ({"size": [2, 2], "counts": "1X"}, "middle of a number"),
    ({"size": [2, 2], "counts": [1, 2]}, "cover 3 pixels"),
    ({"size": [2], "counts": "4"}, "size"),
    ({"counts": "4"}, "size"),
    ({"size": [3, 3], "counts": [9]}, "the mask is 3 x 3, the film 2 x 2"),
])
def test_chexlocalize_malformed_masks(tmp_path: Path, code: dict[str, object],
                                      message: str) -> None:
    key = "patient1_study1_view1_frontal"
    annotations = _write(tmp_path / "gt_annotations_val.json", {key: {"img_size": [2, 2]}})
    path = _write(tmp_path / "gt_segmentations_val.json", {key: {"Edema": code}})
    with pytest.raises(InvalidInputError,
                       match=f"^segmentations_json: '.*gt_segmentations_val.json' film "
                             f"'{key}', finding 'Edema': .*{message}"):
        cx.data.read_chexlocalize(annotations, path)


def test_chexlocalize_paths_and_missing_films(tmp_path: Path) -> None:
    key_a, key_b = "patient1_study1_view1_frontal", "patient2_study3_view2_frontal"
    path = _write(tmp_path / "gt_annotations_test.json",
                  {key_a: {"img_size": [4, 4]}, key_b: {"img_size": [4, 4]}})
    (tmp_path / "test/patient1/study1").mkdir(parents=True)
    (tmp_path / "test/patient1/study1/view1_frontal.jpg").write_bytes(b"")
    recs = cx.data.read_chexlocalize(path)
    assert recs.paths[0] == str(tmp_path / "test/patient1/study1/view1_frontal.jpg")
    assert recs.missing() == (str(tmp_path / "test/patient2/study3/view2_frontal.jpg"),)
    assert recs.targets.sum() == 0 and recs.findings_with_boxes == ()
    with pytest.raises(InvalidInputError, match="annotations_json, segmentations_json"):
        cx.data.read_chexlocalize()
