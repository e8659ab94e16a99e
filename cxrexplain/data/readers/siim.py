"""SIIM-ACR Pneumothorax Segmentation: ``train-rle.csv``, masks as run-length codes.

The file has the columns ``ImageId`` (the film's DICOM SOP instance UID) and
``" EncodedPixels"`` (with its leading space; column names are matched stripped): per row a
run-length code of a pneumothorax on the 1024 x 1024 film, column-major, as pairs
``gap length`` where each gap counts from the end of the previous run
(:mod:`cxrexplain.data.rle`), or ``-1`` for a film without pneumothorax. A film with several
separate regions has a row per region; its mask is their union.

The table has one class, ``"Pneumothorax"`` (1 where any row of the film has a mask, else 0;
every target known), its masks (one :class:`~cxrexplain.data.RunLength` per row, decoded on
demand at 1024 x 1024) and its boxes: one per row, the bounding box of that row's region,
computed from the runs without decoding (:func:`~cxrexplain.data.rle.runs_box`), in the
film's pixels. Films are in the order of their first row; ``sizes`` are 1024 x 1024.

Paths: ``<ImageId>.dcm`` (then ``.dicom``, ``.png``, ``.jpg``) directly in ``images``, or
else anywhere below it, found by one walk of the folder (the Kaggle copy nests them as
``dicom-images-train/<study>/<series>/<ImageId>.dcm``); absent films are listed by
:meth:`~cxrexplain.data.Records.missing`. The file has no patient, view, sex or age (they are
in the DICOM headers): ``patient`` is the ImageId (a stand-in: one film per id), ``source``
``"SIIM-ACR"``.

Example:
    >>> _ = Path("train-rle.csv").write_text(
    ...     "ImageId, EncodedPixels\\n"
    ...     "1.2.3,-1\\n"
    ...     "4.5.6,1026 2 1022 2\\n"          # columns 1 and 2, rows 2-3
    ...     "4.5.6,5000 1\\n")
    >>> recs = read_siim("train-rle.csv")
    >>> recs.targets.ravel().tolist(), recs.boxes("Pneumothorax")[1].tolist()
    ([0.0, 1.0], [[1.0, 2.0, 2.0, 2.0], [4.0, 904.0, 1.0, 1.0]])
    >>> int(recs.subset([1]).masks("Pneumothorax").sum())
    5
"""

from __future__ import annotations

import os

import numpy as np

from cxrexplain.data._rows import read_table
from cxrexplain.data.annotations import FilmBoxes, FilmMasks, RunLength
from cxrexplain.data.readers._common import films_by_id
from cxrexplain.data.records import Records
from cxrexplain.data.rle import SIIM_SHAPE, runs_box, siim_runs
from cxrexplain.errors import InvalidInputError

__all__ = ["SIIM_CLASS", "SIIM_SOURCE", "SIIM_SUFFIXES", "read_siim"]

SIIM_CLASS = "Pneumothorax"
"""The one class of the SIIM-ACR table."""

SIIM_SOURCE = "SIIM-ACR"
"""The ``source`` of the films read here."""

SIIM_SUFFIXES = (".dcm", ".dicom", ".png", ".jpg", ".jpeg")
"""The files a film's ``ImageId`` is looked for as, in this order."""


def read_siim(rle_csv: str | os.PathLike[str],
              images: str | os.PathLike[str] | None = None) -> Records:
    """Read SIIM-ACR's ``train-rle.csv``: a pneumothorax mask and boxes per film.

    Args:
        rle_csv: ``train-rle.csv`` (``.gz``, ``.zip`` too).
        images: The folder of the films (module docs); default the CSV's folder.

    Returns:
        :class:`~cxrexplain.data.Records` with the class ``"Pneumothorax"``, its masks and
        boxes (module docs).

    Raises:
        InvalidInputError: A missing file or column, or a malformed row (a blank ImageId, a
            code that is not ``-1`` or pairs of whole numbers, or runs past the 1024 x 1024
            film): the message names the file, row and column.

    Example:
        >>> _ = Path("train-rle.csv").write_text("ImageId, EncodedPixels\\n1.2.3,-1\\n"
        ...                                      "4.5.6,1030 3\\n")
        >>> recs = read_siim("train-rle.csv", images="dicom-images-train")
        >>> len(recs), recs.findings_with_masks, recs.sizes[0].tolist()
        (2, ('Pneumothorax',), [1024, 1024])
        >>> recs.paths[1], len(recs.missing())
        ('dicom-images-train/4.5.6.dcm', 2)
    """
    table = read_table(rle_csv, "rle_csv")
    id_column = table.require(["ImageId", "image_id"])
    code_column = table.require("EncodedPixels")
    ids = table.column(id_column)
    codes = table.column(code_column)
    if "" in ids:
        raise table.error(ids.index(""), id_column, "expected an ImageId, got a blank")
    distinct, first, inverse = np.unique(np.asarray(ids), return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    film = rank[inverse.reshape(-1)]
    film_ids = [str(v) for v in distinct[order]]
    height, width = SIIM_SHAPE
    films, runs_of, boxes = [], [], []
    for row, code in enumerate(codes):
        try:
            runs = siim_runs(code)
            if int(runs.sum()) > height * width:
                raise InvalidInputError(f"the runs cover {int(runs.sum())} pixels; a "
                                        f"{height} x {width} film has {height * width}")
        except InvalidInputError as err:
            message = str(err).removeprefix("EncodedPixels: ")
            raise table.error(row, code_column, message) from None
        box = runs_box(runs, height) if runs.size else None
        if box is not None and len(box):
            films.append(int(film[row]))
            runs_of.append(runs)
            boxes.append(box[0])
    marked = np.asarray(films, np.int64)
    targets = np.zeros((len(film_ids), 1), np.float32)
    targets[marked, 0] = 1.0
    masks = FilmMasks(marked, tuple(RunLength(tuple(r.tolist()), SIIM_SHAPE) for r in runs_of))
    return Records(
        films_by_id(film_ids, images, table.path.parent, SIIM_SUFFIXES),
        [SIIM_CLASS], targets, patient=film_ids, source=SIIM_SOURCE, sizes=SIIM_SHAPE,
        boxes={SIIM_CLASS: FilmBoxes(marked, np.asarray(boxes, np.float64).reshape(-1, 4))},
        masks={SIIM_CLASS: masks},
    )
