"""CheXlocalize (Saporta et al., Nature Machine Intelligence 2022): radiologists' outlines.

Two JSON files, either or both, each keyed by film (``patient64541_study1_view1_frontal``):

* ``gt_annotations_{val,test}.json``: per film ``img_size`` ``[height, width]`` and, per
  finding drawn, a list of polygons, each a list of ``[x, y]`` points in the film's pixels;
* ``gt_segmentations_{val,test}.json``: per film and finding a COCO run-length mask
  ``{"size": [h, w], "counts": "..."}`` (all ten findings listed, empty where none), which
  CheXlocalize made from the polygons (``annotation_to_segmentation.py``).

The table has the ten localisation classes of CheXlocalize (:data:`CHEXLOCALIZE_CLASSES`,
then any other finding the files name); a finding is positive (1) where the film has a
polygon of it or a non-empty mask, else 0 (every target known). On the sample the positives
are exactly ``valid.csv``'s positive labels (its ``Lung Opacity`` is ``Airspace Opacity``).

* **masks**: the run-length masks when ``segmentations_json`` is given (decoded on demand,
  :mod:`cxrexplain.data.rle`), else the polygons filled (:class:`~cxrexplain.data.Polygons`,
  CheXlocalize's rule: each polygon with its outline, a vertex in pixel
  ``(floor(x), floor(y))``; on the sample the filled polygons agree with CheXlocalize's masks
  to IoU >= 0.989, Dice >= 0.994);
* **boxes**: one per polygon, the whole pixels its vertices lie in
  (:func:`~cxrexplain.data.shapes.polygon_boxes`), when ``annotations_json`` is given; else
  one per mask, its bounding box (from the runs, no decoding). A radiologist's polygons of
  one finding may overlap, so may the boxes.

Paths: the key ``patientP_studyS_viewV_frontal`` is the CheXpert file
``patientP/studyS/viewV_frontal.jpg``, looked for in ``images`` itself and in its ``valid/``
and ``test/`` folders (the first film decides; default ``valid/`` for a ``_val`` file, else
``test/``); ``images`` defaults to the JSON's folder. With a CheXpert labels CSV (``valid.csv``
found beside the JSON or in ``images``, or ``chexpert_csv=``), each film's ``sex``, ``age`` and
``view`` (AP/PA; ``LATERAL`` for a lateral film) come from its row. ``patient`` is
``patientP``, ``source`` ``"CheXlocalize"``, ``sizes`` the ``img_size``.

Example:
    >>> annotations = {"patient1_study1_view1_frontal": {
    ...     "img_size": [40, 50],
    ...     "Cardiomegaly": [[[10, 10], [30, 10], [30, 25], [10, 25]]]}}
    >>> _ = Path("gt_annotations_val.json").write_text(json.dumps(annotations))
    >>> recs = read_chexlocalize("gt_annotations_val.json")
    >>> recs.counts()["Cardiomegaly"], recs.paths[0].replace(os.sep, "/")
    (1, './valid/patient1/study1/view1_frontal.jpg')
    >>> recs.boxes("Cardiomegaly")[0].tolist(), int(recs.masks("Cardiomegaly").sum())
    ([[10.0, 10.0, 21.0, 16.0]], 336)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cxrexplain.data._rows import read_text
from cxrexplain.data.annotations import FilmBoxes, FilmMasks, Polygons, RunLength
from cxrexplain.data.readers.chexpert import read_chexpert
from cxrexplain.data.records import Records
from cxrexplain.data.rle import coco_counts, runs_box
from cxrexplain.data.shapes import polygon_boxes
from cxrexplain.errors import InvalidInputError

__all__ = ["CHEXLOCALIZE_CLASSES", "CHEXLOCALIZE_SOURCE", "read_chexlocalize"]

CHEXLOCALIZE_CLASSES = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion",
                        "Airspace Opacity", "Edema", "Consolidation", "Atelectasis",
                        "Pneumothorax", "Pleural Effusion", "Support Devices")
"""CheXlocalize's ten localisation tasks (``eval_constants.LOCALIZATION_TASKS``), in order."""

CHEXLOCALIZE_SOURCE = "CheXlocalize"
"""The ``source`` of the films read here."""

_SIZE = "img_size"
_KEY = re.compile(r"^(patient\d+)_(study\d+)_(.+)$")
_CSV_NAMES = {"valid": ("valid.csv",), "test": ("test_labels.csv", "test.csv")}


def read_chexlocalize(
    annotations_json: str | os.PathLike[str] | None = None,
    segmentations_json: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    *,
    chexpert_csv: str | os.PathLike[str] | bool | None = None,
) -> Records:
    """Read CheXlocalize's polygons and/or run-length masks (module docs).

    Args:
        annotations_json: ``gt_annotations_val.json`` (or ``_test``): polygons, or None.
        segmentations_json: ``gt_segmentations_val.json`` (or ``_test``): masks, or None.
        images: The CheXpert folder holding ``valid/`` (or ``test/``), or that folder itself;
            default the first JSON's folder.
        chexpert_csv: A CheXpert labels CSV for sex, age and view; None looks for
            ``valid.csv`` (``test_labels.csv`` for a test file) beside the JSON and in
            ``images``; False reads none.

    Returns:
        :class:`~cxrexplain.data.Records` (module docs).

    Raises:
        InvalidInputError: Neither file given, a missing or malformed file (a film without
            ``img_size``, a malformed polygon or run-length mask, a mask whose size is not the
            film's): the message names the file, film and finding.

    Example:
        >>> code = {"size": [2, 3], "counts": [2, 3, 1]}
        >>> _ = Path("gt_segmentations_val.json").write_text(json.dumps(
        ...     {"patient1_study1_view1_frontal": {"Edema": code}}))
        >>> recs = read_chexlocalize(segmentations_json="gt_segmentations_val.json",
        ...                          images="CheXpert-v1.0")
        >>> recs.masks("Edema")[0].astype(int).tolist(), recs.boxes("Edema")[0].tolist()
        ([[0, 1, 1], [0, 1, 0]], [[1.0, 0.0, 2.0, 2.0]])
    """
    if annotations_json is None and segmentations_json is None:
        raise InvalidInputError("read_chexlocalize: give annotations_json, segmentations_json "
                                "or both")
    annotations = _load(annotations_json, "annotations_json")
    segmentations = _load(segmentations_json, "segmentations_json")
    first = Path(os.fspath(annotations_json if annotations_json is not None
                           else segmentations_json))  # type: ignore[arg-type]
    keys = list(annotations) + [k for k in segmentations if k not in annotations]
    names = list(CHEXLOCALIZE_CLASSES)
    for table in (annotations, segmentations):
        for findings in table.values():
            names += [f for f in findings if f != _SIZE and f not in names]
    sizes = np.zeros((len(keys), 2), np.int64)
    targets = np.zeros((len(keys), len(names)), np.float32)
    box_film: dict[str, list[int]] = {}
    box_rows: dict[str, list[np.ndarray]] = {}
    mask_film: dict[str, list[int]] = {}
    mask_codes: dict[str, list[Any]] = {}
    for film, key in enumerate(keys):
        where = (annotations_json if key in annotations else segmentations_json)
        if key in annotations:
            sizes[film] = _size(annotations[key].get(_SIZE), where, key)
        for finding, code in segmentations.get(key, {}).items():
            runs, shape = _runs(code, segmentations_json, key, finding)
            if not sizes[film].any():
                sizes[film] = shape
            elif tuple(sizes[film]) != shape:
                raise _error(segmentations_json, key, finding,
                             f"the mask is {shape[0]} x {shape[1]}, the film "
                             f"{sizes[film][0]} x {sizes[film][1]} (img_size)")
            box = runs_box(runs, shape[0])
            if not len(box):
                continue
            targets[film, names.index(finding)] = 1
            mask_film.setdefault(finding, []).append(film)
            mask_codes.setdefault(finding, []).append(RunLength(tuple(runs.tolist()), shape))
            if key not in annotations:
                box_film.setdefault(finding, []).append(film)
                box_rows.setdefault(finding, []).append(box)
        for finding, polygons in annotations.get(key, {}).items():
            if finding == _SIZE or not polygons:
                continue
            code, boxes = _polygons(polygons, tuple(sizes[film]), annotations_json, key, finding)
            targets[film, names.index(finding)] = 1
            box_film.setdefault(finding, []).extend([film] * len(boxes))
            box_rows.setdefault(finding, []).append(boxes)
            if segmentations_json is None:
                mask_film.setdefault(finding, []).append(film)
                mask_codes.setdefault(finding, []).append(code)
    folder = Path(os.fspath(images)) if images is not None else first.parent
    metadata = _chexpert_rows(chexpert_csv, first, folder, keys)
    return Records(
        _paths(keys, folder, first.name), names, targets,
        patient=[_parts(k)[0] for k in keys], source=CHEXLOCALIZE_SOURCE, sizes=sizes,
        **metadata,
        boxes={f: FilmBoxes(np.asarray(box_film[f], np.int64), np.concatenate(box_rows[f]))
               for f in names if f in box_film},
        masks={f: FilmMasks(np.asarray(mask_film[f], np.int64), tuple(mask_codes[f]))
               for f in names if f in mask_film},
    )


def _error(path: Any, key: str, finding: str | None, message: str) -> InvalidInputError:
    """The error naming the argument, file, film and finding (the JSON's row and column)."""
    what = "segmentations_json" if "segmentation" in Path(os.fspath(path)).name else (
        "annotations_json")
    place = f"film '{key}'" + (f", finding '{finding}'" if finding else "")
    return InvalidInputError(f"{what}: '{os.fspath(path)}' {place}: {message}")


def _load(path: str | os.PathLike[str] | None, what: str) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{what}: '{os.fspath(path)}' is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{what}: '{os.fspath(path)}' must hold an object keyed by "
                                f"film, got {type(data).__name__}")
    for key, findings in data.items():
        if not isinstance(findings, dict):
            raise _error(path, key, None, "expected an object of findings, got "
                                          f"{type(findings).__name__}")
    return data


def _size(value: Any, path: Any, key: str) -> tuple[int, int]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and v > 0 for v in value)):
        raise _error(path, key, None, f"expected '{_SIZE}': [height, width], got {value!r}")
    return value[0], value[1]


def _runs(code: Any, path: Any, key: str, finding: str) -> tuple[np.ndarray, tuple[int, int]]:
    if not isinstance(code, Mapping) or not isinstance(code.get("counts"), (str, list)):
        raise _error(path, key, finding, "expected a run-length mask {'size': [h, w], "
                                         "'counts': ...}")
    counts = code["counts"]
    if isinstance(counts, list):
        if not all(isinstance(v, int) for v in counts):
            raise _error(path, key, finding, "expected 'counts' of whole numbers")
        runs = np.asarray(counts, np.int64)
    else:
        try:
            runs = coco_counts(counts)
        except InvalidInputError as err:
            raise _error(path, key, finding, str(err)) from None
    size = code.get("size")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and v > 0 for v in size)):
        raise _error(path, key, finding, f"expected 'size': [height, width], got {size!r}")
    if int(runs.sum()) != size[0] * size[1] or (runs.size and int(runs.min()) < 0):
        raise _error(path, key, finding, f"the runs cover {int(runs.sum())} pixels; a "
                                         f"{size[0]} x {size[1]} mask has {size[0] * size[1]}")
    return runs, (size[0], size[1])


def _polygons(polygons: Any, shape: tuple[int, int], path: Any, key: str,
              finding: str) -> tuple[Polygons, np.ndarray]:
    if not isinstance(polygons, list):
        raise _error(path, key, finding, "expected a list of polygons")
    try:
        code = Polygons(tuple(np.asarray(p, np.float64) for p in polygons), shape)
    except (InvalidInputError, TypeError, ValueError) as err:
        raise _error(path, key, finding, str(err)) from None
    return code, polygon_boxes(code.polygons)


def _parts(key: str) -> tuple[str, str, str]:
    match = _KEY.match(key)
    if match is None:
        return key, "", ""
    return match.group(1), match.group(2), match.group(3)


def _relative(key: str) -> str:
    patient, study, view = _parts(key)
    return f"{patient}/{study}/{view}.jpg" if study else f"{key}.jpg"


def _paths(keys: list[str], folder: Path, json_name: str) -> list[str]:
    split = "valid" if "_val" in json_name else "test"
    others = [p for p in ("", "valid", "test") if p != split]
    chosen = split
    if keys:
        for prefix in (split, *others):
            if (folder / prefix / _relative(keys[0])).is_file():
                chosen = prefix
                break
    return [os.path.join(folder, chosen, *_relative(k).split("/")) if chosen
            else os.path.join(folder, *_relative(k).split("/")) for k in keys]


def _chexpert_rows(chexpert_csv: str | os.PathLike[str] | bool | None, first: Path,
                   folder: Path, keys: list[str]) -> dict[str, Any]:
    """``sex``, ``age``, ``view`` of each film from a CheXpert labels CSV (none without)."""
    if chexpert_csv is False:
        return {}
    if chexpert_csv is None or chexpert_csv is True:
        split = "valid" if "_val" in first.name else "test"
        found = [d / n for d in (first.parent, folder) for n in _CSV_NAMES[split]
                 if (d / n).is_file()]
        if not found:
            return {}
        chexpert_csv = found[0]
    labels = read_chexpert(chexpert_csv)
    row_of = {}
    for row, path in enumerate(labels.paths):
        patient, study, view = path.replace("\\", "/").rsplit("/", 3)[-3:]
        row_of[f"{patient}_{study}_{view.rsplit('.', 1)[0]}"] = row
    rows = np.array([row_of.get(k, -1) for k in keys], np.int64)
    known = rows >= 0
    pick = np.where(known, rows, 0)

    def column(values: np.ndarray, missing: Any) -> list[Any]:
        return [v if ok else missing for v, ok in zip(values[pick].tolist(), known, strict=True)]

    return {"sex": column(labels.sex, ""), "age": column(labels.age, float("nan")),
            "view": column(labels.view, "")}
