"""Read a CSV table for the readers (private): ``.gz``/``.zip`` opened transparently, one error.

Every reader of :mod:`cxrexplain.data.readers` reads its file through :func:`read_table` and
reports a malformed value through :meth:`Table.error`, whose message names the file, the row
(its 1-based line number in the file, the header being line 1) and the column::

    csv: 'labels.csv' row 4, column 'age': expected a number, got 'abc'

The whole file is read at once (annotation files are a few MB) and parsed with the standard
``csv`` module; columns are taken out as lists and turned into NumPy arrays in one call each,
so a 100,000-row file reads in well under a second. Text is UTF-8 (a byte-order mark is
skipped); a file that is not valid UTF-8 is read as Windows-1252 (the COVID-19 image data
collection's ``metadata.csv``). Blank lines are skipped.

Example:
    >>> _ = Path("t.csv").write_text("image,age\\na.png,61\\nb.png,\\n")
    >>> table = read_table("t.csv")
    >>> len(table), table.column("image"), table.numbers("age").tolist()
    (2, ['a.png', 'b.png'], [61.0, nan])
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np

from cxrexplain.errors import InvalidInputError

__all__ = ["Table", "codes", "read_table", "read_text"]


def read_text(path: str | os.PathLike[str], what: str = "csv") -> str:
    """The text of a file, a ``.gz`` file or the (one, or first ``.csv``) member of a ``.zip``.

    Raises:
        InvalidInputError: No such file, or a file that cannot be read or unpacked.

    Example:
        >>> import gzip
        >>> _ = Path("t.csv.gz").write_bytes(gzip.compress(b"a,b\\n1,2\\n"))
        >>> read_text("t.csv.gz")
        'a,b\\n1,2\\n'
    """
    file = Path(os.fspath(path))
    if not file.is_file():
        raise InvalidInputError(f"{what}: no such file '{file}'")
    try:
        data = _read_bytes(file)
    except (OSError, EOFError, zipfile.BadZipFile, gzip.BadGzipFile) as err:
        raise InvalidInputError(f"{what}: cannot read '{file}' ({err})") from err
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _read_bytes(file: Path) -> bytes:
    name = file.name.lower()
    if name.endswith(".gz"):
        with gzip.open(file, "rb") as handle:
            return handle.read()
    if name.endswith(".zip"):
        with zipfile.ZipFile(file) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")
                       and not Path(m).name.startswith(".") and "__MACOSX" not in m]
            tables = [m for m in members if m.lower().endswith(".csv")] or members
            if not tables:
                raise OSError("the archive is empty")
            return archive.read(tables[0])
    return file.read_bytes()


@dataclass(frozen=True)
class Table:
    """A CSV file's header and rows, with the one error message of the readers.

    Attributes:
        path: The file.
        header: The column names, stripped of surrounding spaces.
        rows: The data rows (lists of the raw values), blank lines left out.
        what: The argument's name for messages (``"csv"``, ``"boxes"``).
        delimiter: The field separator.
    """

    path: Path
    header: tuple[str, ...]
    rows: list[list[str]]
    what: str = "csv"
    delimiter: str = ","

    def __len__(self) -> int:
        return len(self.rows)

    def has(self, name: str) -> bool:
        """Whether the header has the column ``name``."""
        return name in self.header

    def find(self, names: str | Iterable[str]) -> str | None:
        """The first of ``names`` the header has (exact, then ignoring case, spaces and
        punctuation), or None.

        Example:
            >>> Table(Path("t.csv"), ("Patient ID", "View"), []).find(["patientid", "pid"])
            'Patient ID'
        """
        wanted = [names] if isinstance(names, str) else list(names)
        for name in wanted:
            if name in self.header:
                return name
        loose = {_loose(column): column for column in reversed(self.header)}
        for name in wanted:
            if _loose(name) in loose:
                return loose[_loose(name)]
        return None

    def require(self, names: str | Iterable[str]) -> str:
        """Like :meth:`find`, but a missing column raises.

        Raises:
            InvalidInputError: None of ``names`` is a column; the message lists the header.
        """
        found = self.find(names)
        if found is None:
            wanted = [names] if isinstance(names, str) else list(names)
            raise InvalidInputError(
                f"{self.what}: '{self.path}' has no column {' or '.join(repr(n) for n in wanted)}"
                f" (its columns: {', '.join(repr(c) for c in self.header) or 'none'})"
            )
        return found

    def column(self, name: str | int) -> list[str]:
        """A column's values as written (spaces after a delimiter dropped), by name or position.

        Raises:
            InvalidInputError: The column is missing, or a row is too short to have it.
        """
        index = name if isinstance(name, int) else self.header.index(self.require(name))
        label = self.header[index] if index < len(self.header) else f"#{index + 1}"
        try:
            return list(map(itemgetter(index), self.rows))
        except IndexError:
            short = next(i for i, row in enumerate(self.rows) if len(row) <= index)
            raise self.error(short, label, f"the row has {len(self.rows[short])} values, "
                                           f"the header {len(self.header)}") from None

    def numbers(self, name: str | int, *, positive: bool = False,
                blank: bool = True) -> np.ndarray:
        """A column as float64 (blank: NaN), checked finite (and > 0 with ``positive``).

        Raises:
            InvalidInputError: A value that is not a number, infinite, not positive (with
                ``positive``) or blank (without ``blank``): the message names its row.
        """
        values = self.column(name)
        label = name if isinstance(name, str) else self.header[name]
        return self.parse_numbers(values, label, positive=positive, blank=blank)

    def parse_numbers(self, values: Sequence[str], column: str, *, positive: bool = False,
                      blank: bool = True, rows: Sequence[int] | None = None) -> np.ndarray:
        """Values of ``column`` (at data rows ``rows``, default all) as float64; see
        :meth:`numbers`."""
        filled = [v or "nan" for v in values]
        try:
            array = np.asarray(filled, dtype=np.float64)
        except ValueError:
            for i, text in enumerate(filled):
                try:
                    float(text)
                except ValueError:
                    raise self.error(i if rows is None else rows[i], column,
                                     f"expected a number, got {text!r}") from None
            raise  # pragma: no cover - one value above fails
        nan = np.isnan(array)
        bad = np.isinf(array)
        if nan.any():  # a blank is missing; the text "nan" is not a number
            written = np.array([bool(v) for v in values], bool)
            bad |= nan & (written | (not blank))
        if positive:
            bad |= ~nan & ~(array > 0)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            rule = "a positive number" if positive else "a finite number"
            got = repr(values[first]) if values[first] else "a blank"
            raise self.error(first if rows is None else rows[first], column,
                             f"expected {rule}, got {got}")
        return array

    def error(self, row: int, column: str, message: str) -> InvalidInputError:
        """The error for data row ``row`` (0-based) and ``column``: names file, line, column.

        Example:
            >>> _ = Path("t.csv").write_text("image,age\\na.png,61\\nb.png,x\\n")
            >>> print(read_table("t.csv").error(1, "age", "expected a number, got 'x'"))
            csv: 't.csv' row 3, column 'age': expected a number, got 'x'
        """
        return InvalidInputError(
            f"{self.what}: '{self.path}' row {self.line(row)}, column '{column}': {message}")

    def line(self, row: int) -> int:
        """The 1-based line of the file on which data row ``row`` (0-based) starts."""
        reader = csv.reader(io.StringIO(read_text(self.path, self.what)),
                            delimiter=self.delimiter, skipinitialspace=True)
        ends = 0
        seen = -1  # the header
        for record in reader:
            start = ends + 1
            ends = reader.line_num
            if not record:
                continue
            if seen == row:
                return start
            seen += 1
        return ends + 1  # pragma: no cover - rows come from this file


def codes(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The distinct values, in first-seen order, and each value's index among them (int64).

    One pass in C (``dict.fromkeys``, ``map``): a 200,000-value column takes milliseconds.

    Example:
        >>> codes(["b", "a", "b"])
        (['b', 'a'], array([0, 1, 0]))
    """
    distinct = list(dict.fromkeys(values))
    index = {value: k for k, value in enumerate(distinct)}
    inverse = np.fromiter(map(index.__getitem__, values), np.int64, count=len(values))
    return distinct, inverse


def _loose(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def read_table(path: str | os.PathLike[str], what: str = "csv", *,
               delimiter: str = ",") -> Table:
    """Read a CSV file (``.gz``, ``.zip`` too) into a :class:`Table`.

    Raises:
        InvalidInputError: No such file, an unreadable one, or one without a header.

    Example:
        >>> _ = Path("t.csv").write_text(" image , label\\n\\na.png,NORMAL\\n")
        >>> read_table("t.csv").header, read_table("t.csv").rows
        (('image', 'label'), [['a.png', 'NORMAL']])
    """
    file = Path(os.fspath(path))
    text = read_text(file, what)
    try:
        records = list(filter(None, csv.reader(io.StringIO(text), delimiter=delimiter,
                                               skipinitialspace=True)))
    except csv.Error as err:
        raise InvalidInputError(f"{what}: '{file}' is not a readable CSV ({err})") from err
    if not records:
        raise InvalidInputError(f"{what}: '{file}' is empty; expected a header line")
    header = tuple(name.strip() for name in records[0])
    return Table(file, header, records[1:], what, delimiter)
