"""``cxrexplain audit --metadata FILE``: the films' metadata CSV, read by ``cx.data.read_csv``.

A CSV with a row per film: a path column (``image`` by default; paths relative to the CSV's
folder, matched to the audited films by their trailing parts), optional ``label`` (a class
name per film: the labels of the subgroup table and the swap test) and metadata columns
(``patient``, ``view``, ``sex``, ``age``, ``source``, any other).

Example:
    >>> from cxrexplain.cli.audit.metadata import read_metadata
    >>> _ = Path("meta.csv").write_text("image,label,view,sex,age\\n"
    ...                                 "cxr/NORMAL/00.png,NORMAL,AP,F,61\\n")
    >>> recs = read_metadata(Path("meta.csv"))
    >>> recs.class_names, recs.view.tolist(), recs.age.tolist()
    (('NORMAL',), ['AP'], [61.0])
"""

from __future__ import annotations

from pathlib import Path

from cxrexplain.data import Records, read_csv
from cxrexplain.data._rows import read_table
from cxrexplain.errors import InvalidInputError

__all__ = ["read_metadata"]


def read_metadata(file: Path, *, path: str = "image", label: str = "label") -> Records:
    """Read a metadata CSV (see the module) with :func:`cxrexplain.data.read_csv`.

    Args:
        file: The CSV.
        path: Its column of film paths.
        label: Its column of class names (when the file has no such column: no labels).

    Raises:
        InvalidInputError: No such file, no path column, a malformed row (the message names
            the row and column).
    """
    if not file.is_file():
        raise InvalidInputError(f"--metadata: no such file '{file}'")
    labels = label if read_table(file, "csv").find(label) else None
    return read_csv(file, path=path, labels=labels)
