"""NIH ChestX-ray14 (Wang et al. 2017): ``Data_Entry_2017*.csv`` and ``BBox_List_2017.csv``.

* ``Data_Entry_2017.csv`` / ``Data_Entry_2017_v2020.csv`` (112,120 films): ``Image Index``,
  ``Finding Labels`` (``|``-separated, ``No Finding`` = every class negative), ``Follow-up #``,
  ``Patient ID``, ``Patient Age`` (years; older copies write ``058Y``), ``Patient Gender``,
  ``View Position``. Column names are matched ignoring case, spaces and punctuation, so the
  2017, v2020 and Kaggle spellings (``Patient_ID``, ``Finding_Labels``) all read. The 14
  classes are :data:`NIH_CLASSES`, in the paper's order; every label is known (0 or 1).
* ``BBox_List_2017.csv`` (984 boxes on 880 films): ``Image Index``, ``Finding Label``,
  ``x, y, w, h`` in the films' own 1024 x 1024 pixels (its header splits ``Bbox [x,y,w,h]``
  into four names and ends with empty columns: the columns are read by position). Its
  ``Infiltrate`` is the class ``Infiltration``. Boxes of films not in the table are left out.

Films are PNGs named by ``Image Index``, 1024 x 1024 (``sizes``); ``images`` is searched
(NIH ships ``images_001/images/`` ... ``images_012/images/``).

Example:
    >>> _ = Path("Data_Entry.csv").write_text(
    ...     "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    ...     "View Position\\n"
    ...     "00000001_000.png,Cardiomegaly|Effusion,0,1,58,M,PA\\n"
    ...     "00000002_000.png,No Finding,0,2,81,F,AP\\n")
    >>> recs = read_nih("Data_Entry.csv")
    >>> recs.counts()["Effusion"], recs.targets[1].sum(), recs.patient.tolist()
    (1, np.float32(0.0), ['1', '2'])
"""

from __future__ import annotations

import logging
import os

import numpy as np

from cxrexplain.data._columns import parse_ages
from cxrexplain.data._rows import Table, codes, read_table
from cxrexplain.data.annotations import FilmBoxes
from cxrexplain.data.readers._common import film_paths
from cxrexplain.data.records import Records

__all__ = ["NIH_CLASSES", "NIH_SIZE", "NIH_SOURCE", "read_nih"]

_LOG = logging.getLogger("cxrexplain.data")

NIH_CLASSES = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
               "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
               "Pleural_Thickening", "Hernia")
"""The 14 findings of ChestX-ray14, in the paper's order (the spelling of the CSV)."""

NIH_SIZE = (1024, 1024)
"""``(height, width)`` of every ChestX-ray14 film, the frame of its boxes."""

NIH_SOURCE = "NIH ChestX-ray14"
"""The ``source`` of the films read here."""

_NO_FINDING = "No Finding"
_ALIASES = {"infiltrate": "Infiltration", "pleuralthickening": "Pleural_Thickening"}


def _class_of(label: str) -> str | None:
    key = "".join(c for c in label.lower() if c.isalnum())
    for name in NIH_CLASSES:
        if "".join(c for c in name.lower() if c.isalnum()) == key:
            return name
    return _ALIASES.get(key)


def read_nih(
    data_entry_csv: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    boxes: str | os.PathLike[str] | None = None,
) -> Records:
    """Read ChestX-ray14's labels and metadata (and, with ``boxes``, its radiologists' boxes).

    Args:
        data_entry_csv: ``Data_Entry_2017.csv`` or ``Data_Entry_2017_v2020.csv`` (``.gz``,
            ``.zip`` too).
        images: The folder of the PNGs (searched, module docs); default the CSV's folder.
        boxes: ``BBox_List_2017.csv``, or None.

    Returns:
        :class:`~cxrexplain.data.Records` with the 14 classes, ``patient``, ``view``,
        ``sex``, ``age``, ``source`` ``"NIH ChestX-ray14"``, ``sizes`` 1024 x 1024 and the
        metadata column ``follow_up`` (the film's number among its patient's, float);
        with ``boxes``, boxes per finding (class names).

    Raises:
        InvalidInputError: A missing file or column, or a malformed row (an unknown finding,
            a bad age or box): the message names the file, row and column.

    Example:
        >>> _ = Path("Data_Entry.csv").write_text(
        ...     "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
        ...     "View Position\\n00000001_000.png,Infiltration,0,1,058Y,M,PA\\n")
        >>> _ = Path("bbox.csv").write_text(
        ...     "Image Index,Finding Label,Bbox [x,y,w,h],,,\\n"
        ...     "00000001_000.png,Infiltrate,100.5,200,50,60,,,\\n")
        >>> recs = read_nih("Data_Entry.csv", boxes="bbox.csv")
        >>> recs.findings_with_boxes, recs.boxes("Infiltration")[0].tolist()
        (('Infiltration',), [[100.5, 200.0, 50.0, 60.0]])
    """
    table = read_table(data_entry_csv, "data_entry_csv")
    image = table.require(["Image Index", "Image"])
    label = table.require(["Finding Labels", "Finding Label", "Labels"])
    names = table.column(image)
    targets = _targets(table, label)
    age_column = table.require(["Patient Age", "Age"])
    ages = table.column(age_column)
    follow = table.find(["Follow-up #", "Follow-up", "Follow_up_Number"])
    return Records(
        film_paths(names, images, table.path.parent),
        NIH_CLASSES, targets,
        patient=table.column(table.require(["Patient ID", "Patient"])),
        view=table.column(table.require(["View Position", "View"])),
        sex=table.column(table.require(["Patient Gender", "Patient Sex", "Gender", "Sex"])),
        age=parse_ages(ages, on_error=lambda i: table.error(
            i, age_column, f"expected an age in years, got {ages[i]!r}")),
        source=NIH_SOURCE, sizes=NIH_SIZE,
        metadata={} if follow is None else {"follow_up": table.numbers(follow)},
        boxes=None if boxes is None else _boxes(boxes, names),
    )


def _targets(table: Table, column: str) -> np.ndarray:
    values = table.column(column)
    distinct, inverse = codes(values)
    rows = np.zeros((len(distinct), len(NIH_CLASSES)), np.float32)
    for k, text in enumerate(distinct):
        for part in (p.strip() for p in text.split("|")):
            if part == _NO_FINDING:
                continue
            name = _class_of(part)
            if name is None:
                raise table.error(values.index(text), column,
                                  f"unknown finding {part!r}; expected '{_NO_FINDING}' or "
                                  f"{', '.join(NIH_CLASSES)}")
            rows[k, NIH_CLASSES.index(name)] = 1.0
    out: np.ndarray = rows[inverse] if len(values) else np.zeros((0, len(NIH_CLASSES)),
                                                                   np.float32)
    return out


def _boxes(path: str | os.PathLike[str], names: list[str]) -> dict[str, FilmBoxes]:
    table = read_table(path, "boxes")
    if len(table.header) < 6 or table.find(["Image Index", "Image"]) != table.header[0]:
        raise table.error(-1, table.header[0] if table.header else "", "expected the header "
                          "'Image Index,Finding Label,Bbox [x,y,w,h]' of BBox_List_2017.csv")
    films = table.column(0)
    findings = table.column(1)
    numbers = np.stack([table.numbers(k, positive=k >= 4, blank=False) for k in range(2, 6)],
                       axis=1).reshape(len(table), 4)
    index = {name: i for i, name in enumerate(names)}
    film_of = np.fromiter((index.get(f, -1) for f in films), np.int64, count=len(films))
    classes = []
    for row, finding in enumerate(findings):
        name = _class_of(finding)
        if name is None:
            raise table.error(row, table.header[1], f"unknown finding {finding!r}")
        classes.append(name)
    known = film_of >= 0
    if not known.all():
        _LOG.info("boxes: %d boxes of films not in the table left out", int((~known).sum()))
    out: dict[str, FilmBoxes] = {}
    for name in NIH_CLASSES:
        mine = known & np.array([c == name for c in classes], bool)
        if mine.any():
            out[name] = FilmBoxes(film_of[mine], numbers[mine])
    return out
