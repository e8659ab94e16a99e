"""The COVID-19 image data collection (Cohen et al. 2020): its ``metadata.csv``.

One row per image: ``patientid``, ``sex``, ``age``, ``finding``, ``view``, ``modality``,
``folder``, ``filename`` and more (dates, places, licence, clinical notes). ``finding`` is a
path in newer snapshots (``Pneumonia/Viral/COVID-19``) and a list in older ones
(``COVID-19, ARDS``): its parts, split at ``/`` and ``,``, are the classes (sorted by name),
every part of a film positive; ``No Finding`` is every class
negative; a blank, ``todo`` or ``Unknown`` finding leaves the film's classes unknown (NaN).

By default only frontal X-rays are kept: ``modality`` X-ray and a view that normalises to
``"PA"`` or ``"AP"`` (``AP Supine``, ``AP semi erect`` ...; ``L`` lateral, CT ``Axial`` and
``Coronal`` left out). ``patient`` is ``cohen:<patientid>`` (as the shared films'
``metadata.csv`` writes it, so that it cannot clash with another collection's numbers), the
view as written stays in the metadata column ``view_position``, and every other column is kept
as metadata (``finding``, ``modality``, ``date``, ``location``, ``license``, ...).

Example:
    >>> _ = Path("metadata.csv").write_text(
    ...     "patientid,offset,sex,age,finding,view,modality,folder,filename\\n"
    ...     "2,0,M,65,COVID-19,PA,X-ray,images,a.jpeg\\n"
    ...     "3,,F,,Pneumonia/Bacterial/Streptococcus,AP Supine,X-ray,images,b.jpeg\\n"
    ...     "4,,F,50,COVID-19,Axial,CT,images,c.jpeg\\n")
    >>> recs = read_covid_collection("metadata.csv")
    >>> recs.class_names
    ('Bacterial', 'COVID-19', 'Pneumonia', 'Streptococcus')
    >>> recs.targets.tolist(), recs.view.tolist(), recs.patient.tolist()
    ([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 1.0]], ['PA', 'AP'], ['cohen:2', 'cohen:3'])
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection

import numpy as np

from cxrexplain.data._columns import normalise_view, parse_ages
from cxrexplain.data._rows import read_table
from cxrexplain.data.readers._common import film_paths
from cxrexplain.data.records import Records

__all__ = ["COVID_SOURCE", "FRONTAL_VIEWS", "read_covid_collection"]

COVID_SOURCE = "COVID-19 image data collection"
"""The ``source`` of the films read here (as the shared films' ``metadata.csv`` writes it)."""

FRONTAL_VIEWS = ("PA", "AP")
"""The normalised views kept by default."""

_SPLIT = re.compile(r"[/,]")
_NEGATIVE = "no finding"
_UNKNOWN = {"", "todo", "unknown"}
_USED = ("patientid", "sex", "age", "finding", "view", "folder", "filename")


def read_covid_collection(
    metadata_csv: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    *,
    views: Collection[str] | None = FRONTAL_VIEWS,
    modality: str | None = "X-ray",
) -> Records:
    """Read the collection's metadata: findings as classes, frontal X-rays by default.

    Args:
        metadata_csv: The collection's ``metadata.csv``.
        images: The folder of the image files (``<images>/<filename>``); default the
            collection's own layout, ``<folder of the CSV>/<folder column>/<filename>``.
        views: The normalised views to keep (``"PA"``, ``"AP"``, ``"LATERAL"``, ...), or
            None for all.
        modality: The modality to keep (``"X-ray"``; case ignored), or None for all.

    Returns:
        :class:`~cxrexplain.data.Records` of the kept films: the finding parts as classes,
        ``patient``, ``view``, ``sex``, ``age``, ``source`` :data:`COVID_SOURCE`, and the
        other columns as metadata (``view_position``: the view as written).

    Raises:
        InvalidInputError: A missing file or column, or a malformed row (a bad age, a blank
            file name): the message names file, row and column.

    Example:
        >>> _ = Path("metadata.csv").write_text(
        ...     "patientid,sex,age,finding,view,modality,folder,filename\\n"
        ...     "9,F,40,No Finding,L,X-ray,images,d.jpeg\\n")
        >>> len(read_covid_collection("metadata.csv")), read_covid_collection(
        ...     "metadata.csv", views=None).view.tolist()
        (0, ['LATERAL'])
    """
    table = read_table(metadata_csv, "metadata_csv")
    column = {name: table.require(name) for name in _USED if name != "folder"}
    folder_column = table.find("folder")
    view_raw = table.column(column["view"])
    view = normalise_view(view_raw)
    keep = np.ones(len(table), bool)
    if views is not None:
        keep &= np.isin(view, [str(v) for v in views])
    if modality is not None:
        mod = table.column(table.require("modality"))
        keep &= np.array([m.lower() == modality.lower() for m in mod], bool)
    rows = np.flatnonzero(keep).tolist()

    def values(name: str) -> list[str]:
        every = table.column(name)
        return [every[r] for r in rows]

    files = values(column["filename"])
    blank = next((k for k, f in enumerate(files) if not f), None)
    if blank is not None:
        raise table.error(rows[blank], column["filename"], "the file name is blank")
    if images is None:
        folders = values(folder_column) if folder_column else ["images"] * len(rows)
        files = [os.path.join(f or "images", name) for f, name in zip(folders, files,
                                                                      strict=True)]
    classes, targets = _targets(values(column["finding"]))
    ages = values(column["age"])
    used = set(column.values()) | {folder_column}
    metadata: dict[str, object] = {"view_position": [view_raw[r] for r in rows],
                                   "finding": values(column["finding"])}
    metadata |= {name: values(name) for name in table.header if name and name not in used}
    return Records(
        film_paths(files, images, table.path.parent), classes, targets,
        patient=[f"cohen:{p}" for p in values(column["patientid"])], view=view[rows],
        sex=values(column["sex"]),
        age=parse_ages(ages, on_error=lambda k: table.error(
            rows[k], column["age"], f"expected an age in years, got {ages[k]!r}")),
        source=COVID_SOURCE, metadata=metadata,
    )


def _targets(findings: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    parts = [[p.strip() for p in _SPLIT.split(f)] for f in findings]
    names = sorted({p for film in parts for p in film
                    if p.lower() not in _UNKNOWN and p.lower() != _NEGATIVE})
    index = {name: k for k, name in enumerate(names)}
    targets = np.zeros((len(findings), len(names)), np.float32)
    for row, film in enumerate(parts):
        if all(p.lower() in _UNKNOWN for p in film):
            targets[row] = np.nan
        for p in film:
            if p in index:
                targets[row, index[p]] = 1.0
    return tuple(names), targets
