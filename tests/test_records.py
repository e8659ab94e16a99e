"""The records table: construction, subsets, pooling, boxes, masks, bridges, writing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import cxrexplain as cx
from cxrexplain.data import Polygons, Records, RunLength
from cxrexplain.data.annotations import FilmBoxes, FilmMasks


def _table() -> Records:
    return Records(
        ["a.png", "b.png", "c.png", "d.png"], ["Effusion", "Mass"],
        [[1, 0], [0, np.nan], [0, 1], [1, 1]],
        patient=["p1", "p1", "p2", "p3"], view=["PA", "AP Supine", "L", ""],
        sex=["female", "M", "", "x"], age=[61, np.nan, 3, 40], source="test",
        sizes=(100, 200), metadata={"site": ["s1", "s2", "s1", "s2"], "score": [1, 2, 3, 4]},
        boxes={"Mass": [None, None, [[10, 10, 5, 5], [0, 0, 2, 2]], [1, 2, 3, 4]],
               "Effusion": [[50, 50, 10, 10], None, None, None]},
        masks={"Mass": [None, RunLength((3, 2), (2, 4)), None, None]},
    )


def test_columns_are_normalised_and_named() -> None:
    recs = _table()
    assert recs.view.tolist() == ["PA", "AP", "LATERAL", ""]
    assert recs.sex.tolist() == ["F", "M", "", ""]
    assert recs.source.tolist() == ["test"] * 4
    assert recs.column("site").tolist() == ["s1", "s2", "s1", "s2"]
    assert recs.column("score").tolist() == [1.0, 2.0, 3.0, 4.0]
    assert recs.column("path").tolist() == list(recs.paths)
    assert recs.counts() == {"Effusion": 2, "Mass": 2}
    with pytest.raises(cx.InvalidInputError, match="no column 'race'.*site"):
        recs.column("race")
    with pytest.raises(ValueError, match="read-only"):
        recs.targets[0, 0] = 0  # read-only


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"targets": [[2, 0]] * 4}, "expected 1 .* got 2.0 at film 0"),
    ({"targets": [[1, 0]] * 3}, r"shape \(4, 2\)"),
    ({"targets": [[1, 0]] * 4, "age": [1, 2]}, "age: expected one value per film"),
    ({"targets": [[1, 0]] * 4, "metadata": {"view": ["a"] * 4}}, "built-in column"),
    ({"targets": [[1, 0]] * 4, "boxes": {"Mass": [None]}}, "one entry per film"),
])
def test_bad_tables_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(cx.InvalidInputError, match=message):
        Records(["a", "b", "c", "d"], ["Effusion", "Mass"], **kwargs)  # type: ignore[arg-type]


def test_boxes_per_film_pooled_and_rescaled() -> None:
    recs = _table()
    mass = recs.boxes("Mass")
    assert [b.shape for b in mass] == [(0, 4), (0, 4), (2, 4), (1, 4)]
    assert mass[2].tolist() == [[10, 10, 5, 5], [0, 0, 2, 2]]
    assert [len(b) for b in recs.boxes()] == [1, 0, 2, 1]
    # sizes are (height 100, width 200): to 50 x 50 x scales by 1/4, y by 1/2
    assert recs.boxes("Mass", size=50)[3].tolist() == [[0.25, 1.0, 0.75, 2.0]]
    assert recs.annotated("Mass").tolist() == [False, True, True, True]
    assert recs.findings_with_boxes == ("Mass", "Effusion")
    with pytest.raises(cx.InvalidInputError, match="no boxes for 'Nodule'.*'Mass'"):
        recs.boxes("Nodule")


def test_boxes_rescale_from_the_file_when_the_size_is_unknown(tmp_path: Path) -> None:
    film = tmp_path / "film.png"
    cv2.imwrite(str(film), np.zeros((40, 20), np.uint8))  # height 40, width 20
    recs = Records([str(film)], [], boxes={"Mass": [[2, 4, 10, 20]]})
    assert recs.boxes("Mass", size=(80, 10))[0].tolist() == [[1.0, 8.0, 5.0, 40.0]]


def test_subset_takes_boxes_and_masks_with_the_films() -> None:
    recs = _table()
    order = [3, 2, 2, 1]
    part = recs.subset(order)
    assert part.paths == ("d.png", "c.png", "c.png", "b.png")
    expected = [recs.boxes("Mass")[i] for i in order]
    assert all(np.array_equal(a, b) for a, b in zip(part.boxes("Mass"), expected, strict=True))
    np.testing.assert_array_equal(part.masks("Mass", size=(2, 4)),
                                  recs.masks("Mass", size=(2, 4))[order])
    np.testing.assert_array_equal(part.targets, recs.targets[order])
    assert part.column("site").tolist() == ["s2", "s1", "s1", "s2"]
    by_mask = recs.subset(recs.view == "PA")
    assert by_mask.paths == ("a.png",) and len(by_mask.boxes("Effusion")[0]) == 1
    assert len(recs.subset([])) == 0
    with pytest.raises(cx.InvalidInputError, match="out of range"):
        recs.subset([4])


def test_run_length_codes_round_trip_both_orders() -> None:
    rng = np.random.default_rng(0)
    for order in ("F", "C"):
        for _ in range(5):
            mask = rng.random((7, 5)) > 0.6
            code = RunLength.from_mask(mask, order=order)
            np.testing.assert_array_equal(code.decode(), mask)
            # an independent decode: expand the runs by hand
            flat = np.concatenate([np.full(c, k % 2 == 1) for k, c in enumerate(code.counts)])
            np.testing.assert_array_equal(flat.reshape((7, 5), order=order), mask)
    with pytest.raises(cx.InvalidInputError, match="covering at most 2 x 2"):
        RunLength((3, 2), (2, 2))


def test_masks_decode_unite_and_resize() -> None:
    square = Polygons(([[0, 0], [1, 0], [1, 1], [0, 1]],), (4, 4))
    stripe = RunLength((12, 4), (4, 4))  # the last column
    recs = Records(["a", "b"], [], masks={"Pneumothorax": FilmMasks(
        np.array([0, 0]), (square, stripe))})
    expected = np.zeros((4, 4), bool)
    expected[:2, :2] = True
    expected[:, 3] = True
    masks = recs.masks("Pneumothorax")
    np.testing.assert_array_equal(masks[0], expected)
    assert not masks[1].any()
    big = recs.masks("Pneumothorax", size=8)
    np.testing.assert_array_equal(big[0], np.kron(expected, np.ones((2, 2), bool)))
    mixed = Records(["a", "b"], [], masks={"x": [RunLength((1,), (2, 2)),
                                                RunLength((1,), (3, 3))]})
    with pytest.raises(cx.InvalidInputError, match="2x2, 3x3.*size="):
        mixed.masks("x")
    assert mixed.masks("x", size=3).shape == (2, 3, 3)


def test_pooling_unites_classes_metadata_and_annotations() -> None:
    first = _table()
    second = Records(["e.png"], ["COVID"], [[1]], metadata={"site": ["s9"]},
                     boxes={"Mass": [[5, 5, 1, 1]]})
    pooled = first + second
    assert pooled.class_names == ("Effusion", "Mass", "COVID")
    assert np.isnan(pooled.targets[:4, 2]).all() and np.isnan(pooled.targets[4, :2]).all()
    assert pooled.targets[4, 2] == 1
    assert pooled.column("site").tolist()[-1] == "s9"
    assert np.isnan(pooled.column("score")[-1])
    assert pooled.boxes("Mass")[4].tolist() == [[5, 5, 1, 1]]
    assert [len(b) for b in pooled.boxes("Mass")[:4]] == [0, 0, 2, 1]
    assert len(pooled.masks("Mass", size=2)) == 5


def test_single_label_files() -> None:
    recs = Records(["a", "b", "c", "d"], ["COVID", "PNEUMONIA"],
                   [[1, 0], [0, 1], [0, 0], [1, 1]])
    with pytest.raises(cx.InvalidInputError, match="2 films are not single-label.*'c'"):
        recs.files()
    dropped = recs.files(ambiguous="drop")
    assert dropped.paths == ("a", "b") and dropped.labels == (0, 1)
    normal = recs.files(none="NORMAL", ambiguous="drop")
    assert normal.paths == ("a", "b", "c") and normal.labels == (0, 1, 2)
    assert recs.files(["PNEUMONIA"], none="OTHER").labels == (1, 0, 1, 0)


def test_k_folds_takes_a_table_and_groups_by_patient() -> None:
    patients = [f"p{i // 2}" for i in range(24)]
    recs = Records([f"{i}.png" for i in range(24)], ["A", "B"],
                   [[1, 0] if i % 4 < 2 else [0, 1] for i in range(24)], patient=patients)
    folds = cx.data.k_folds(recs, k=3, seed=0)
    seen = [{patients[int(p.split(".")[0])] for p in fold.test.paths} for fold in folds]
    assert sum(len(s) for s in seen) == 12  # every patient in exactly one test part
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])


def test_missing_films_are_listed_and_refused_by_the_dataset(tmp_path: Path) -> None:
    film = tmp_path / "here.png"
    cv2.imwrite(str(film), np.full((20, 20), 128, np.uint8))
    paths = [str(film)] + [str(tmp_path / f"gone{i}.png") for i in range(7)]
    recs = Records(paths, ["x"], [[1]] * 8)
    assert recs.missing() == tuple(paths[1:])
    with pytest.raises(cx.InvalidInputError, match="7 of 8 films have no file: .*gone0.*and 2 "
                                                   "more"):
        recs.dataset(16)


def test_the_dataset_carries_multi_label_targets_and_boxes(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], np.full((40, 40), 60 * i, np.uint8))
    recs = Records(paths, ["x", "y"], [[1, np.nan], [0, 1], [1, 1]], sizes=(40, 40),
                   boxes={"x": [[0, 0, 20, 20], None, None]})
    ds = recs.dataset(20, batch_size=3, unknown=0.5)
    images, targets = next(iter(ds))
    assert images.shape == (3, 20, 20, 1)
    assert targets.numpy().tolist() == [[1, 0.5], [0, 1], [1, 1]]
    np.testing.assert_allclose(images.numpy()[:, 0, 0, 0], [0, 60 / 255, 120 / 255], atol=1e-6)
    inputs, _ = next(iter(recs.dataset(20, batch_size=3, boxes="x")))
    box = inputs["boxes"].numpy()[..., 0]
    assert box[0, :10, :10].all() and box[0].sum() == 100 and box[1:].sum() == 0


def test_csv_round_trip(tmp_path: Path) -> None:
    recs = _table()
    written = recs.to_csv(tmp_path / "table.csv")
    back = cx.data.read_csv(written, images="", path="path", labels=list(recs.class_names))
    assert back.paths == recs.paths
    np.testing.assert_array_equal(back.targets, recs.targets)
    for name in ("patient", "view", "sex", "source"):
        assert back.column(name).tolist() == recs.column(name).tolist()
    np.testing.assert_array_equal(back.age, recs.age)
    assert back.column("score").tolist() == ["1", "2", "3", "4"]  # extra columns: text
    boxes = cx.data.read_boxes(recs.to_boxes_csv(tmp_path / "boxes.csv"))
    assert boxes["c.png"].tolist() == [[10, 10, 5, 5], [0, 0, 2, 2]]


def test_film_boxes_keep_a_films_order() -> None:
    found = FilmBoxes(np.array([1, 0, 1]), np.array([[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]]))
    assert found.film.tolist() == [0, 1, 1]
    assert found.boxes[:, 0].tolist() == [2, 1, 3]
