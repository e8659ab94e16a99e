"""The resumable CSV of long runs (private): a row per film, appended as work finishes.

``cxrexplain explain`` (``predictions.csv``, :func:`cxrexplain.batch.explain_to_folder`) and
``cxrexplain audit`` (``audit.csv``, :func:`cxrexplain.cli.audit.to_folder.audit_to_folder`)
share this one table, so a run killed at any moment (even by ``SIGKILL``) and started again
with ``resume`` loses and repeats nothing:

* :meth:`ResumableTable.start` removes the temporary files a killed write left
  (``.NAME.partial*``, :mod:`cxrexplain._files`), keeps, when resuming, the complete rows of
  an earlier run under the same header for this run's films (and that ``keep`` accepts: an
  overlay that exists), drops a last line cut short, and rewrites the table atomically: the
  header and the kept rows, in input order. The films without a row are the work to do.
* :meth:`ResumableTable.appending` writes rows as batches finish, flushed at once (whatever a
  row points at, such as an overlay, is written before it). Cells are strings; None is empty.
* :meth:`ResumableTable.finish` puts the rows in input order (the kept rows and the new ones
  are each in input order, so this is a streamed merge, in bounded memory) and
  :meth:`ResumableTable.rows` reads them back in input order.

The table holds this run's films only: one row each, keyed by the ``key`` column (a film
given twice gets two rows). Lines end in ``"\\n"``.

Example:
    >>> import tempfile, pathlib
    >>> table = ResumableTable(pathlib.Path(tempfile.mkdtemp()) / "t.csv", ["image", "label"])
    >>> films = ["a", "b", "c"]
    >>> table.start(films, resume=False)
    {}
    >>> with table.appending() as rows:  # the run is killed after a and c
    ...     rows.write([{"image": "a", "label": "NORMAL"}, {"image": "c", "label": None}])
    >>> table.start(films, resume=True)  # the next run: b is left to do
    {'a': {'image': 'a', 'label': 'NORMAL'}, 'c': {'image': 'c', 'label': ''}}
    >>> with table.appending() as rows:
    ...     rows.write([{"image": "b", "label": "PNEUMONIA"}])
    >>> table.finish(films).read_text().splitlines()
    ['image,label', 'a,NORMAL', 'b,PNEUMONIA', 'c,']
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from cxrexplain._files import atomic_path, atomic_write_text, partial_path

__all__ = ["ResumableTable", "RowWriter"]

Row = dict[str, str]


class RowWriter:
    """Appends rows to an open table (see :meth:`ResumableTable.appending`)."""

    def __init__(self, handle: TextIO, columns: Sequence[str]) -> None:
        self._handle = handle
        self._writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")

    def header(self) -> None:
        """Write the header line (a new file's first)."""
        self._writer.writeheader()

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append ``rows`` (their cells as text, None as empty) and flush them to the file."""
        self._writer.writerows({k: "" if v is None else v for k, v in row.items()}
                               for row in rows)
        self._handle.flush()


class ResumableTable:
    """A CSV of one row per film, written as work finishes and resumable after a crash.

    Args:
        path: The CSV file.
        columns: Its header.
        key: The column naming each row's film.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], *,
                 key: str = "image") -> None:
        self.path = Path(os.fspath(path))
        self.columns = list(columns)
        self.key = key
        self._kept = 0

    def start(self, names: Sequence[str], *, resume: bool,
              keep: Callable[[Row], bool] | None = None) -> dict[str, Row]:
        """Begin a run over the films ``names``; returns the rows already done, by film.

        Args:
            names: This run's films, in input order (the ``key`` column's values).
            resume: Keep an earlier run's rows; else the table starts empty.
            keep: Also needed for a row to count as done (e.g. its overlay exists).

        Returns:
            ``{name: row}`` of the films done; the table holds the header and these rows.
        """
        self._remove_partials()
        wanted = set(names)
        done: dict[str, Row] = {}
        if resume:
            for row in self._read():
                name = row[self.key]
                if name in wanted and (keep is None or keep(row)):
                    done[name] = row
        kept = [done[name] for name in names if name in done]
        self._replace(kept)
        self._kept = len(kept)
        return done

    @contextlib.contextmanager
    def appending(self) -> Iterator[RowWriter]:
        """Open the table to append rows (after :meth:`start`)."""
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            yield RowWriter(handle, self.columns)

    def finish(self, names: Sequence[str]) -> Path:
        """Put the rows in the input order of ``names`` (atomically); returns the path."""
        if self._kept == 0:  # nothing resumed: the rows were written in input order
            return self.path
        position: dict[str, int] = {}
        for i, name in enumerate(names):
            position.setdefault(name, i)
        # the readers close (in reverse order) before atomic_path replaces the file
        with atomic_path(self.path) as partial, \
                self.path.open(newline="", encoding="utf-8") as kept_file, \
                self.path.open(newline="", encoding="utf-8") as new_file, \
                partial.open("w", newline="", encoding="utf-8") as out:
            kept = itertools.islice(csv.DictReader(kept_file), self._kept)
            new = itertools.islice(csv.DictReader(new_file), self._kept, None)
            writer = RowWriter(out, self.columns)
            writer.header()
            writer.write(heapq.merge(kept, new, key=lambda row: position[row[self.key]]))
        self._kept = 0
        return self.path

    def rows(self, names: Sequence[str]) -> list[Row]:
        """The rows of ``names`` in their order (a film without a row is left out)."""
        by_name = {row[self.key]: row for row in self._read()}
        return [by_name[name] for name in names if name in by_name]

    def _read(self) -> Iterator[Row]:
        """The complete rows under this header (none under another or no header)."""
        if not self.path.is_file():
            return
        text = self.path.read_text(encoding="utf-8", errors="replace")
        text = text[: text.rfind("\n") + 1]  # a last line cut short by a kill is dropped
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames != self.columns:
            return
        for row in reader:
            if None not in row and None not in row.values():
                yield row

    def _replace(self, rows: list[Row]) -> None:
        """Write the header and ``rows`` atomically (the table before any row is appended)."""
        buffer = io.StringIO(newline="")
        writer = RowWriter(buffer, self.columns)
        writer.header()
        writer.write(rows)
        atomic_write_text(self.path, buffer.getvalue())

    def _remove_partials(self) -> None:
        """Delete the temporary files an interrupted atomic write of the table left."""
        if not self.path.parent.is_dir():
            return
        prefix = partial_path(self.path).stem  # .NAME.partial
        for path in self.path.parent.iterdir():
            if path.name.startswith(prefix) and (path.is_file() or path.is_symlink()):
                path.unlink(missing_ok=True)
