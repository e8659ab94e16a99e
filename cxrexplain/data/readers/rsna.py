"""RSNA Pneumonia Detection (Shih et al. 2019): ``stage_2_train_labels.csv``, boxes per row.

The CSV has one row per box: ``patientId, x, y, width, height, Target``; a film with
``Target`` 0 has one row with blank box columns, a film with ``Target`` 1 one row per lung
opacity box, in its own 1024 x 1024 pixels. Films are DICOM files ``<patientId>.dcm`` (read
with the ``dicom`` extra). RSNA's films are ChestX-ray14 films re-read by radiologists:
torchxrayvision's cross-reference ``nih_matches.csv`` (``patientId, nih_image, mse,
rsna_class``) maps each to its NIH file by pixel distance. With ``nih_matches``, the films
matched closer than ``max_mse`` (10: a few hundredths of a grey level per pixel) are returned
under their NIH names, with RSNA's boxes and reading: that is how the shared films got their
``rsna_boxes.csv`` and ``rsna_label``.

Example:
    >>> _ = Path("labels.csv").write_text(
    ...     "patientId,x,y,width,height,Target\\n"
    ...     "id-1,,,,,0\\n"
    ...     "id-2,264.0,152.0,213.0,379.0,1\\n"
    ...     "id-2,562.0,152.0,256.0,453.0,1\\n")
    >>> recs = read_rsna("labels.csv")
    >>> recs.paths == (os.path.join(".", "id-1.dcm"), os.path.join(".", "id-2.dcm"))
    True
    >>> recs.targets.ravel().tolist(), [len(b) for b in recs.boxes("Lung Opacity")]
    ([0.0, 1.0], [0, 2])
"""

from __future__ import annotations

import logging
import os

import numpy as np

from cxrexplain._checks import check_number
from cxrexplain.data._rows import Table, codes, read_table
from cxrexplain.data.annotations import FilmBoxes
from cxrexplain.data.readers._common import film_paths
from cxrexplain.data.records import Records

__all__ = ["RSNA_CLASS", "RSNA_SOURCE", "read_rsna"]

_LOG = logging.getLogger("cxrexplain.data")

RSNA_CLASS = "Lung Opacity"
"""The one class (and finding of the boxes) of the RSNA challenge."""

RSNA_SOURCE = "RSNA Pneumonia Detection"
"""The ``source`` of the films read here."""

_SIZE = (1024, 1024)
_BOX = ("x", "y", "width", "height")


def read_rsna(
    labels_csv: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    nih_matches: str | os.PathLike[str] | None = None,
    *,
    max_mse: float = 10.0,
) -> Records:
    """Read RSNA's labels and boxes; optionally move them onto the NIH films they came from.

    Args:
        labels_csv: ``stage_2_train_labels.csv`` (``.zip`` as Kaggle ships it, too).
        images: The folder of the films (searched, see :mod:`cxrexplain.data.readers`):
            RSNA's ``.dcm`` files, or with ``nih_matches`` NIH's PNGs. Default the folder of
            ``labels_csv``.
        nih_matches: The cross-reference ``nih_matches.csv``, or None.
        max_mse: With ``nih_matches``, keep matches with a pixel MSE below this.

    Returns:
        :class:`~cxrexplain.data.Records`, one class :data:`RSNA_CLASS` (``Target``), boxes
        of that finding, ``sizes`` 1024 x 1024, ``source`` :data:`RSNA_SOURCE`, ``patient``
        the ``patientId`` (RSNA has one film per id). With ``nih_matches``: only the matched
        films, in RSNA's order, named ``<images>/<nih_image>``, ``patient`` NIH's patient id
        (from the file name, as :func:`~cxrexplain.data.read_nih` writes it), and the
        metadata ``rsna_id``, ``rsna_class`` (``"Normal"``, ``"No Lung Opacity / Not
        Normal"``, ``"Lung Opacity"``) and ``match_mse``.

    Raises:
        InvalidInputError: A missing file or column, or a malformed row (``Target`` not 0/1,
            a box on a ``Target`` 0 row or none on a ``Target`` 1 row, a bad number, rows of
            one film that disagree): the message names file, row and column.

    Example:
        >>> _ = Path("labels.csv").write_text(
        ...     "patientId,x,y,width,height,Target\\nid-1,,,,,0\\nid-2,264,152,213,379,1\\n")
        >>> _ = Path("matches.csv").write_text(
        ...     "patientId,nih_image,mse,rsna_class\\n"
        ...     "id-1,00019124_092.png,1.8,Normal\\nid-2,00000013_005.png,12.5,Lung Opacity\\n")
        >>> recs = read_rsna("labels.csv", nih_matches="matches.csv")
        >>> [os.path.basename(p) for p in recs.paths], recs.patient.tolist()
        (['00019124_092.png'], ['19124'])
        >>> recs.column("rsna_class").tolist()
        ['Normal']
    """
    check_number(max_mse, "max_mse", low=0.0)
    table = read_table(labels_csv, "labels_csv")
    ids_column = table.require("patientId")
    target_column = table.require("Target")
    ids = table.column(ids_column)
    target = table.numbers(target_column, blank=False)
    bad = ~np.isin(target, (0.0, 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise table.error(first, target_column, f"expected 0 or 1, got "
                                                f"{table.column(target_column)[first]!r}")
    names, film = codes(ids)
    targets = np.full(len(names), np.nan, np.float32)
    targets[film[::-1]] = target[::-1]  # each film's first row
    differ = targets[film] != target
    if differ.any():
        first = int(np.flatnonzero(differ)[0])
        raise table.error(first, target_column, "the film's Target differs from its other rows")
    boxes = _boxes(table, target, film)
    if nih_matches is None:
        return Records(
            film_paths([f"{name}.dcm" for name in names], images, table.path.parent),
            (RSNA_CLASS,), targets[:, None], patient=names, source=RSNA_SOURCE,
            sizes=_SIZE, boxes={RSNA_CLASS: boxes})
    return _on_nih(names, targets, boxes, nih_matches, images, max_mse, table)


def _boxes(table: Table, target: np.ndarray, film: np.ndarray) -> FilmBoxes:
    columns = [table.require(c) for c in _BOX]
    values = [table.column(c) for c in columns]
    filled = np.array([[bool(v) for v in column] for column in values], bool).T  # (rows, 4)
    has_box = filled.any(axis=1)
    wrong = (has_box & (target == 0)) | ((target == 1) & ~filled.all(axis=1))
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        column = columns[int(np.argmax(~filled[row]))] if has_box[row] and target[
            row] == 1 else columns[int(np.argmax(filled[row]))]
        why = ("a Target 0 row has a box" if target[row] == 0 else
               "a Target 1 row needs x, y, width and height")
        raise table.error(row, column, why)
    rows = np.flatnonzero(has_box).tolist()
    numbers = np.stack([
        table.parse_numbers([values[k][r] for r in rows], columns[k], positive=k >= 2,
                            blank=False, rows=rows) for k in range(4)], axis=1)
    return FilmBoxes(film[rows], numbers.reshape(len(rows), 4))


def _on_nih(names: list[str], targets: np.ndarray, boxes: FilmBoxes,
            nih_matches: str | os.PathLike[str], images: str | os.PathLike[str] | None,
            max_mse: float, labels: Table) -> Records:
    table = read_table(nih_matches, "nih_matches")
    ids = table.column(table.require("patientId"))
    nih = table.column(table.require("nih_image"))
    mse = table.numbers(table.require("mse"), blank=False)
    reading = (table.column(table.require("rsna_class")) if table.find("rsna_class")
               else [""] * len(ids))
    match = {i: row for row, i in enumerate(ids) if mse[row] < max_mse}
    kept = [film for film, name in enumerate(names) if name in match]
    rows = [match[names[film]] for film in kept]
    _LOG.info("nih_matches: %d of %d RSNA films matched to NIH (mse < %g)", len(kept),
              len(names), max_mse)
    files = [nih[r] for r in rows]
    blank = next((r for r in rows if not nih[r]), None)
    if blank is not None:
        raise table.error(blank, "nih_image", "the NIH file name is blank")
    picked = np.asarray(kept, np.int64)
    return Records(
        film_paths(files, images, labels.path.parent),
        (RSNA_CLASS,), targets[picked, None],
        patient=[_nih_patient(f) for f in files], source=RSNA_SOURCE, sizes=_SIZE,
        metadata={"rsna_id": [names[f] for f in kept], "rsna_class": [reading[r] for r in rows],
                  "match_mse": mse[rows] if rows else np.zeros(0)},
        boxes={RSNA_CLASS: boxes.take(picked)},
    )


def _nih_patient(name: str) -> str:
    """``00019124_092.png`` -> ``19124`` (NIH's ``Patient ID`` as its CSV writes it)."""
    stem = os.path.basename(name).split("_")[0]
    return str(int(stem)) if stem.isdigit() else stem
