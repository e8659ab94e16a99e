"""VinDr-CXR: ``train.csv``, a row per box per radiologist, readers merged per film.

The file (Nguyen et al., Scientific Data 2022) has the columns
``image_id, class_name, class_id, rad_id, x_min, y_min, x_max, y_max``: one row per box a
radiologist (``rad_id``) drew, in the film's own pixels (the DICOM's rows and columns), and
one row without a box for a radiologist who saw nothing (``class_name`` ``"No finding"``,
class 14). Each training film was read by three radiologists of seventeen.

**Merging the readers** (``merge``), per film and finding, where a film's readers are the
distinct ``rad_id`` of its rows:

* ``"union"``: the finding is present when any reader marked it; its boxes are every reader's
  boxes of it;
* ``"majority"``: present when more than half of the film's readers marked it (2 of 3); its
  boxes are every reader's boxes of it (those of a reader in the minority too);
* ``"unanimous"``: present when every reader of the film marked it; all their boxes.

``"No finding"`` is then present exactly when no other finding is, so every film has at least
one positive class. Boxes are ``(x, y, width, height)`` = ``(x_min, y_min, x_max - x_min,
y_max - y_min)``; a finding's boxes from several readers overlap (they are not fused).

Classes are the file's ``class_name`` values ordered by ``class_id`` (``"No finding"`` last on
the real file). Films are in the order of their first row. Paths: ``<image_id>`` with the
suffix ``.dicom`` (VinDr's own), ``.dcm``, ``.png``, ``.jpg`` or ``.jpeg``, anywhere under
``images`` (one walk of the folder); a film without a file is reported in the table's missing
films, not raised. The file carries no patient, view, sex or age (they are in the DICOM
headers): ``patient`` is the image id (one film per study), ``view`` ``""``, ``sex`` ``""``,
``age`` NaN, ``source`` ``"VinDr-CXR"``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from cxrexplain.errors import InvalidInputError

__all__ = ["MERGES", "NO_FINDING", "merge_readings"]

MERGES = ("union", "majority", "unanimous")
"""The ways :func:`read_vindr` merges the radiologists' readings."""

NO_FINDING = "No finding"
"""VinDr's class of a radiologist who marked nothing."""

Merge = Literal["union", "majority", "unanimous"]


def merge_readings(film: np.ndarray, finding: np.ndarray, reader: np.ndarray,
                   num_films: int, num_classes: int, merge: Merge,
                   no_finding: int | None) -> np.ndarray:
    """``(num_films, num_classes)`` bool: the findings present after merging the readers.

    Args:
        film: Each row's film index.
        finding: Each row's class index.
        reader: Each row's reader index.
        num_films: How many films.
        num_classes: How many classes.
        merge: ``"union"``, ``"majority"`` or ``"unanimous"`` (module docs).
        no_finding: The class index of "No finding" (set where no other class is), or None.

    Example:
        >>> rows = np.array([[0, 1, 0], [0, 1, 1], [0, 0, 2], [1, 2, 0]])  # film, class, reader
        >>> merge_readings(*rows.T, 2, 3, "majority", no_finding=2).astype(int).tolist()
        [[0, 1, 0], [0, 0, 1]]
        >>> merge_readings(*rows.T, 2, 3, "union", no_finding=2).astype(int).tolist()
        [[1, 1, 0], [0, 0, 1]]
    """
    if merge not in MERGES:
        raise InvalidInputError(f"merge: expected one of {', '.join(map(repr, MERGES))}, got "
                                f"{merge!r}")
    num_readers = int(reader.max()) + 1 if reader.size else 1
    # each (film, reader) once: how many readers a film has
    film_reader = np.unique(film.astype(np.int64) * num_readers + reader)
    readers = np.bincount(film_reader // num_readers, minlength=num_films)
    # each (film, class, reader) once: how many readers marked a class on a film
    key = (film.astype(np.int64) * num_classes + finding) * num_readers + reader
    marked = np.bincount(np.unique(key) // num_readers, minlength=num_films * num_classes)
    votes = marked.reshape(num_films, num_classes)
    if merge == "union":
        present = votes > 0
    elif merge == "majority":
        present = 2 * votes > readers[:, None]
    else:
        present = (votes > 0) & (votes == readers[:, None])
    if no_finding is not None:
        others = np.delete(present, no_finding, axis=1)
        present[:, no_finding] = ~others.any(axis=1)
    return present
