"""CheXpert (Irvin et al. 2019): ``train.csv`` / ``valid.csv``, with an uncertainty policy.

Columns: ``Path`` (``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``),
``Sex``, ``Age``, ``Frontal/Lateral``, ``AP/PA``, then one column per finding (14, ``No
Finding`` included) holding ``1.0`` positive, ``0.0`` negative, ``-1.0`` **uncertain** (the
report hedges) or a **blank** (the report does not mention it).

* ``uncertain``: ``"ones"`` (U-Ones, the default: an uncertain finding is positive),
  ``"zeros"`` (U-Zeros) or ``"ignore"`` (NaN: unknown, left out of a masked loss or metric);
* ``blank``: ``"zeros"`` (the default and the paper's convention: not mentioned = negative)
  or ``"ignore"`` (NaN).

``view`` is ``"LATERAL"`` for lateral films, else the ``AP/PA`` column (``"AP"``, ``"PA"``,
``"LL"``, ``"RL"``; ``"FRONTAL"`` when blank); ``patient`` is ``patientNNNNN`` from the path,
and the metadata column ``study`` its ``patientNNNNN/studyN``. The paths in the CSV start
with the data set's folder, so ``images`` defaults to the folder *above* the CSV's.

Example:
    >>> _ = Path("train.csv").write_text(
    ...     "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Edema,Pleural Effusion\\n"
    ...     "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,"
    ...     "Frontal,AP,1.0,,\\n"
    ...     "CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg,Male,87,"
    ...     "Lateral,,,-1.0,1.0\\n")
    >>> recs = read_chexpert("train.csv", uncertain="ignore")
    >>> recs.targets.tolist()
    [[1.0, 0.0, 0.0], [0.0, nan, 1.0]]
    >>> recs.view.tolist(), recs.sex.tolist(), recs.patient.tolist()
    (['AP', 'LATERAL'], ['F', 'M'], ['patient00001', 'patient00002'])
"""

from __future__ import annotations

import os
import re
from typing import Literal

import numpy as np

from cxrexplain._checks import check_choice
from cxrexplain.data._rows import read_table
from cxrexplain.data.readers._common import film_paths, parse_binary
from cxrexplain.data.records import Records

__all__ = ["CHEXPERT_SOURCE", "read_chexpert"]

CHEXPERT_SOURCE = "CheXpert"
"""The ``source`` of the films read here."""

_META = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
_STUDY = re.compile(r"(patient\d+)/(study\d+)")
_POLICY = {"ones": 1.0, "zeros": 0.0, "ignore": float("nan")}


def read_chexpert(
    csv: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    uncertain: Literal["ones", "zeros", "ignore"] = "ones",
    *,
    blank: Literal["zeros", "ignore"] = "zeros",
) -> Records:
    """Read CheXpert's labels and metadata.

    Args:
        csv: ``train.csv`` or ``valid.csv`` (``.gz``, ``.zip`` too).
        images: The folder holding ``CheXpert-v1.0-small/`` (or whatever the paths start
            with); default the folder above the CSV's.
        uncertain: What a ``-1`` becomes: ``"ones"``, ``"zeros"`` or ``"ignore"`` (NaN).
        blank: What a blank becomes: ``"zeros"`` or ``"ignore"`` (NaN).

    Returns:
        :class:`~cxrexplain.data.Records` with the CSV's finding columns as classes,
        ``patient``, ``view``, ``sex``, ``age``, ``source`` ``"CheXpert"`` and the metadata
        column ``study``.

    Raises:
        InvalidInputError: A missing file or column, an unknown policy, or a malformed row
            (a label other than 1, 0, -1 or blank, a bad age): the message names file, row
            and column.

    Example:
        >>> _ = Path("valid.csv").write_text(
        ...     "Path,Sex,Age,Frontal/Lateral,AP/PA,Edema\\n"
        ...     "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,"
        ...     "Frontal,AP,-1.0\\n")
        >>> read_chexpert("valid.csv").targets.tolist(), read_chexpert(
        ...     "valid.csv", uncertain="zeros").targets.tolist()
        ([[1.0]], [[0.0]])
    """
    check_choice(uncertain, "uncertain", tuple(_POLICY))
    check_choice(blank, "blank", ("zeros", "ignore"))
    table = read_table(csv, "csv")
    columns = {name: table.require(name) for name in _META}
    classes = [c for c in table.header if c and c not in columns.values()]
    extra = {"-1": _POLICY[uncertain], "-1.0": _POLICY[uncertain],
             "": _POLICY[blank]}
    targets = np.stack([parse_binary(table, c, extra=extra) for c in classes],
                       axis=1).reshape(len(table), len(classes))
    paths = table.column(columns["Path"])
    lateral = np.array([v.lower() == "lateral" for v in table.column(columns["Frontal/Lateral"])],
                       bool)
    view = np.asarray([v or "FRONTAL" for v in table.column(columns["AP/PA"])], np.str_)
    if len(view):
        view[lateral] = "LATERAL"
    default = table.path.parent.parent
    patient, study = _studies(paths)
    return Records(
        film_paths(paths, images, default), classes, targets,
        patient=patient, view=view,
        sex=table.column(columns["Sex"]), age=table.numbers(columns["Age"]),
        source=CHEXPERT_SOURCE, metadata={"study": study},
    )


def _studies(paths: list[str]) -> tuple[list[str], list[str]]:
    """Each path's ``patientNNNNN`` and ``patientNNNNN/studyN`` ("" where absent)."""
    found = _STUDY.findall("\n".join(paths).replace("\\", "/"))
    if len(found) != len(paths):  # a path without a study: one at a time
        found = [next(iter(_STUDY.findall(p.replace("\\", "/"))), ("", "")) for p in paths]
    return [p for p, _ in found], [f"{p}/{s}" if p else "" for p, s in found]
