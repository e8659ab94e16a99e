"""The readers of the public collections: real files in ../shared/data, small files of our own."""

from __future__ import annotations

import csv
import gzip
import io
import os
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import cxrexplain as cx
from cxrexplain.data.readers.nih import NIH_CLASSES


def _formats(data_dir: Path, *parts: str) -> Path:
    path = data_dir.joinpath("formats", *parts)
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def _stdlib_rows(path: Path) -> list[dict[str, str]]:
    """An independent read: the standard library alone."""
    if path.suffix == ".gz":
        text = gzip.decompress(path.read_bytes()).decode("utf-8-sig")
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            text = archive.read(archive.namelist()[0]).decode("utf-8-sig")
    else:
        text = path.read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def _by_name(boxes_csv: Path) -> dict[str, list[list[float]]]:
    out: dict[str, list[list[float]]] = {}
    for row in _stdlib_rows(boxes_csv):
        out.setdefault(Path(row["image"]).name, []).append(
            [float(row[k]) for k in ("x", "y", "width", "height")])
    return out


# --- the real files -----------------------------------------------------------------------


@pytest.mark.slow
def test_nih_real_file(data_dir: Path) -> None:
    entry = _formats(data_dir, "nih", "Data_Entry_2017_v2020.csv.gz")
    bbox = _formats(data_dir, "nih", "BBox_List_2017.csv.gz")
    recs = cx.data.read_nih(entry, images=data_dir / "cxr" / "PNEUMONIA", boxes=bbox)
    assert len(recs) == 112_120 and recs.class_names == NIH_CLASSES
    first = recs.subset([0])
    assert Path(first.paths[0]).name == "00000001_000.png"
    assert first.targets[0].tolist() == [float(c == "Cardiomegaly") for c in NIH_CLASSES]
    assert (first.patient[0], first.view[0], first.sex[0], first.age[0]) == ("1", "PA", "M", 57)
    rows = _stdlib_rows(entry)
    expected = Counter(p for row in rows for p in row["Finding Labels"].split("|"))
    assert recs.counts() == {name: expected[name] for name in NIH_CLASSES}
    assert int((recs.targets.sum(axis=1) == 0).sum()) == expected["No Finding"]
    assert Counter(recs.view.tolist()) == Counter(r["View Position"] for r in rows)
    # boxes: 984 on 880 films, inside the 1024 x 1024 frame
    assert sum(len(b) for b in recs.boxes()) == 984 and int(recs.annotated().sum()) == 880
    pooled = np.concatenate([b for b in recs.boxes() if len(b)])
    assert (pooled[:, :2] >= 0).all() and (pooled[:, :2] + pooled[:, 2:] <= 1025).all()
    assert "Infiltration" in recs.findings_with_boxes
    # the shared films' boxes.csv is this list rescaled to 256 pixels: the same geometry
    shared = _by_name(data_dir / "cxr" / "boxes.csv")
    names = [Path(p).name for p in recs.paths]
    index = {name: i for i, name in enumerate(names)}
    films = [index[name] for name in shared]
    scaled = recs.subset(films).boxes("Pneumonia", size=256)
    for name, found in zip(shared, scaled, strict=True):
        np.testing.assert_allclose(found, shared[name], atol=0.051)
    # films found in the images folder resolve there; the others are reported missing
    present = {os.path.basename(p) for p in os.listdir(data_dir / "cxr" / "PNEUMONIA")}
    assert len(recs.subset(films).missing()) == sum(name not in present for name in shared)


def test_rsna_real_file_and_nih_matches(data_dir: Path) -> None:
    labels = _formats(data_dir, "rsna", "stage_2_train_labels.csv.zip")
    matches = _formats(data_dir, "rsna", "nih_matches.csv")
    recs = cx.data.read_rsna(labels)
    rows = _stdlib_rows(labels)
    assert len(rows) == 30_227 and len(recs) == 26_684
    assert int(np.nansum(recs.targets)) == len({r["patientId"] for r in rows if r["Target"] == "1"})
    assert sum(len(b) for b in recs.boxes("Lung Opacity")) == sum(r["Target"] == "1" for r in rows)
    assert recs.paths[0].endswith("0004cfab-14fd-4e49-80ba-63a80b6bddd6.dcm")
    two = recs.subset([recs.patient.tolist().index("00436515-870c-4b36-a041-de91049b9ab4")])
    assert two.boxes("Lung Opacity")[0].tolist() == [[264, 152, 213, 379], [562, 152, 256, 453]]
    nih = cx.data.read_rsna(labels, images=data_dir / "cxr" / "NORMAL", nih_matches=matches)
    close = [r for r in _stdlib_rows(matches) if float(r["mse"]) < 10]
    assert len(nih) == len(close) == 26_586
    assert Counter(nih.column("rsna_class").tolist()) == Counter(r["rsna_class"] for r in close)
    assert (nih.targets[:, 0] == (nih.column("rsna_class") == "Lung Opacity")).all()
    # the shared films' rsna_boxes.csv came from these boxes, rescaled to 256 pixels
    shared = _by_name(data_dir / "cxr" / "rsna_boxes.csv")
    names = [Path(p).name for p in nih.paths]
    films = [names.index(name) for name in shared]
    for name, found in zip(shared, nih.subset(films).boxes(size=256), strict=True):
        np.testing.assert_allclose(sorted(found.tolist()), sorted(shared[name]), atol=0.051)


@pytest.mark.slow
def test_chexpert_real_file(data_dir: Path) -> None:
    path = _formats(data_dir, "chexpert", "train.csv.gz")
    recs = cx.data.read_chexpert(path, uncertain="ignore", blank="ignore")
    assert len(recs) == 223_414 and len(recs.class_names) == 14
    assert recs.paths[0].endswith("CheXpert-v1.0-small/train/patient00001/study1/"
                                  "view1_frontal.jpg")
    assert (recs.patient[1], recs.sex[1], recs.age[1], recs.view[1]) == (
        "patient00002", "F", 87, "AP")
    k = recs.class_names.index
    # row 3 of the file: Cardiomegaly -1, Lung Opacity 1, Enlarged Cardiomediastinum blank
    assert recs.targets[1, k("Lung Opacity")] == 1
    assert np.isnan(recs.targets[1, [k("Cardiomegaly"), k("Enlarged Cardiomediastinum")]]).all()
    rows = _stdlib_rows(path)
    for name in ("Edema", "No Finding"):
        column = recs.targets[:, k(name)]
        assert int(np.isnan(column).sum()) == sum(r[name] in ("-1.0", "") for r in rows)
        assert int((column == 1).sum()) == sum(r[name] == "1.0" for r in rows)
    assert Counter(recs.view.tolist())["LATERAL"] == sum(
        r["Frontal/Lateral"] == "Lateral" for r in rows)


@pytest.mark.parametrize(("uncertain", "blank", "expected"), [
    ("ones", "zeros", [1, 0, 1, 0]), ("zeros", "zeros", [1, 0, 0, 0]),
    ("ignore", "zeros", [1, 0, np.nan, 0]), ("ones", "ignore", [1, 0, 1, np.nan]),
])
def test_chexpert_policies(tmp_path: Path, uncertain: str, blank: str,
                           expected: list[float]) -> None:
    rows = "".join(f"CheXpert-v1.0-small/train/patient0000{i}/study1/view1_frontal.jpg,Male,"
                   f"50,Frontal,PA,{value}\n" for i, value in enumerate(["1.0", "0.0", "-1.0", ""]))
    path = _write(tmp_path / "train.csv", "Path,Sex,Age,Frontal/Lateral,AP/PA,Edema\n" + rows)
    recs = cx.data.read_chexpert(path, uncertain=uncertain, blank=blank)  # type: ignore[arg-type]
    np.testing.assert_array_equal(recs.targets[:, 0], expected)
    assert recs.paths[0] == str(tmp_path.parent / "CheXpert-v1.0-small" / "train" /
                                "patient00000" / "study1" / "view1_frontal.jpg")


def test_covid_collection_real_file(data_dir: Path) -> None:
    path = _formats(data_dir, "cohen", "metadata.csv")
    recs = cx.data.read_covid_collection(path)
    rows = _stdlib_rows(path)
    frontal = [r for r in rows if r["modality"] == "X-ray" and r["view"] in
               ("PA", "AP", "AP Supine", "AP semi erect")]
    assert len(recs) == len(frontal) == 542
    assert set(recs.view.tolist()) == {"PA", "AP"}
    assert recs.counts()["COVID-19"] == sum("COVID-19" in r["finding"] for r in frontal)
    assert len(cx.data.read_covid_collection(path, views=None, modality=None)) == len(rows)
    first = recs.subset([0])
    assert first.paths[0] == str(path.parent / "images" / frontal[0]["filename"])
    assert (first.patient[0], first.sex[0], first.age[0]) == ("cohen:2", "M", 65)
    # the shared films' metadata.csv took patient, age and sex of its COVID films from here
    shared = cx.data.read_csv(data_dir / "cxr" / "metadata.csv", labels="label")
    covid = shared.subset(shared.source == "COVID-19 image data collection")
    stems = {Path(p).stem: i for i, p in enumerate(recs.paths)}
    matched = [(i, stems[Path(p).stem]) for i, p in enumerate(covid.paths) if Path(p).stem in stems]
    assert len(matched) > 50
    for mine, theirs in matched:
        assert covid.patient[mine] == recs.patient[theirs]
        assert covid.sex[mine] == recs.sex[theirs]
        assert np.array_equal(covid.age[mine], recs.age[theirs], equal_nan=True)


def test_shared_metadata_through_the_generic_reader(data_dir: Path) -> None:
    recs = cx.data.read_csv(data_dir / "cxr" / "metadata.csv", labels="label")
    assert len(recs) == 886 and recs.missing() == ()
    assert recs.counts() == {"COVID": 99, "NORMAL": 399, "PNEUMONIA": 388}
    normal = recs.subset(recs.targets[:, 1] == 1)
    pneumonia = recs.subset(recs.targets[:, 2] == 1)
    assert round(float((normal.view == "AP").mean()), 2) == 0.68  # the README's confounder
    assert round(float((pneumonia.view == "PA").mean()), 2) == 0.57
    assert {"nih_findings", "rsna_label"} <= set(recs.columns)
    assert set(recs.sex.tolist()) <= {"F", "M", ""}


# --- small files of our own -----------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("reader", "text", "where"), [
    (cx.data.read_csv, "image,label,age\na.png,X,1\nb.png,Y,abc\n", "row 3, column 'age'"),
    (lambda p: cx.data.read_csv(p, labels=["Mass"]), "image,Mass\na.png,1\n\nb.png,2\n",
     "row 4, column 'Mass'"),
    (lambda p: cx.data.read_csv(p, labels="label", classes=["X"]), "image,label\na.png,Y\n",
     "row 2, column 'label'"),
    (cx.data.read_csv, "image,label\na.png,X\na.png,Y\n", "row 3, column 'image'"),
    (cx.data.read_nih, "Image Index,Finding Labels,Patient ID,Patient Age,Patient Gender,"
                       "View Position\na.png,Cardiomegaly|Flu,1,50,M,PA\n",
     "row 2, column 'Finding Labels'"),
    (cx.data.read_rsna, "patientId,x,y,width,height,Target\na,,,,,0\nb,1,2,0,4,1\n",
     "row 3, column 'width'"),
    (cx.data.read_rsna, "patientId,x,y,width,height,Target\na,,,,,2\n", "row 2, column 'Target'"),
    (cx.data.read_chexpert, "Path,Sex,Age,Frontal/Lateral,AP/PA,Edema\n"
                            "p/patient1/study1/v.jpg,Male,60,Frontal,AP,2.0\n",
     "row 2, column 'Edema'"),
    (cx.data.read_covid_collection, "patientid,sex,age,finding,view,modality,folder,filename\n"
                                    '1,M,"60\nyears",COVID-19,PA,X-ray,images,a.png\n',
     "row 2, column 'age'"),
])
def test_a_malformed_row_names_file_row_and_column(tmp_path: Path, reader: object, text: str,
                                                   where: str) -> None:
    path = _write(tmp_path / "table.csv", text)
    with pytest.raises(cx.InvalidInputError) as err:
        reader(path)  # type: ignore[operator]
    assert str(path) in str(err.value) and where in str(err.value)


def test_generic_reader_labels_metadata_and_boxes(tmp_path: Path) -> None:
    path = _write(tmp_path / "films.csv",
                  "file,Effusion,Mass,pid,projection,gender,years,site,finding,x,y,w,h\n"
                  "a.png,1,0,p1,AP,F,61,north,Mass,,,,\n"
                  "b.png,0,1,p2,PA,M,,south,Mass,10,20,30,40\n"
                  "b.png,0,1,p2,PA,M,,south,Nodule,1,2,3,4\n"
                  "c.png,,1,p3,L,,7,north,,,,,\n")
    recs = cx.data.read_csv(path, images=tmp_path / "img", path="file",
                            labels=["Effusion", "Mass"], patient="pid", view="projection",
                            sex="gender", age="years", boxes=["x", "y", "w", "h"], keep=["site"])
    assert recs.paths == tuple(str(tmp_path / "img" / n) for n in ("a.png", "b.png", "c.png"))
    assert np.array_equal(recs.targets, [[1, 0], [0, 1], [np.nan, 1]], equal_nan=True)
    assert recs.view.tolist() == ["AP", "PA", "LATERAL"] and recs.sex.tolist() == ["F", "M", ""]
    assert recs.columns == ("path", "patient", "view", "sex", "age", "source", "site")
    assert recs.findings_with_boxes == ("Mass", "Nodule")
    assert [b.tolist() for b in recs.boxes("Mass")] == [[], [[10, 20, 30, 40]], []]
    assert [len(b) for b in recs.boxes()] == [0, 2, 0]
    assert len(recs.missing()) == 3
    _write(tmp_path / "bad.csv", "image,Mass,x,y,width,height\nb.png,1,1,1,1,1\n"
                                 "b.png,0,1,1,1,1\n")
    with pytest.raises(cx.InvalidInputError, match="row 3, column 'Mass'.*row 2"):
        cx.data.read_csv(tmp_path / "bad.csv", labels=["Mass"], boxes=True)


def test_compressed_files_and_a_missing_image_per_film(tmp_path: Path, data_dir: Path) -> None:
    film = next((data_dir / "cxr" / "COVID").glob("*.png"))
    text = f"image,label\n{film},COVID\n{tmp_path / 'gone.png'},NORMAL\n"
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(text.encode()))
    with zipfile.ZipFile(tmp_path / "t.csv.zip", "w") as archive:
        archive.writestr("t.csv", text)
    for name in ("t.csv.gz", "t.csv.zip"):
        recs = cx.data.read_csv(tmp_path / name, labels="label")
        assert recs.class_names == ("COVID", "NORMAL")
        assert recs.missing() == (str(tmp_path / "gone.png"),)
    good = recs.subset([0])
    images, targets = next(iter(good.dataset(32)))
    assert images.shape == (1, 32, 32, 1) and targets.numpy().tolist() == [[1.0, 0.0]]
    with pytest.raises(cx.InvalidInputError, match="1 of 2 films have no file: .*gone.png"):
        recs.dataset(32)


def test_nih_2017_spellings_and_ages(tmp_path: Path) -> None:
    path = _write(tmp_path / "Data_Entry_2017.csv",
                  "Image_Index,Finding_Labels,Follow_up_Number,Patient_ID,Patient_Age,"
                  "Patient_Gender,View_Position,\n"
                  "00000003_000.png,Hernia|Pleural_Thickening,0,3,081Y,F,PA,\n"
                  "00000004_000.png,No Finding,2,4,6M,M,AP,\n")
    recs = cx.data.read_nih(path)
    assert recs.age.tolist() == [81.0, 0.5] and recs.column("follow_up").tolist() == [0.0, 2.0]
    assert recs.counts()["Hernia"] == 1 and recs.counts()["Pleural_Thickening"] == 1
    assert recs.targets[1].sum() == 0 and recs.sizes.tolist() == [[1024, 1024]] * 2
