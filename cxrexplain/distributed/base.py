"""What the data-set callables share: the model loaded once, the rows read, error rows filled.

A batch is what ``ray.data.Dataset.map_batches`` hands a callable class: a dict of NumPy
columns. Its films come from a ``path`` column (files the workers can read), or a ``bytes``
column (the encoded files) with an ``id`` column naming them. Every film is loaded at its own
size by :func:`cxrexplain.io.load_each` (the per-film reader :mod:`cxrexplain.batch` uses
too); one that cannot be read becomes an *error row* (its ``error`` column says why, its
numbers are NaN) and the batch goes on, so a bad file never fails a task. The other input
columns are passed through unchanged (the ``bytes`` column is dropped), so labels or ids
travel with the results.

Example:
    >>> import numpy as np
    >>> from cxrexplain.distributed.base import read_rows
    >>> rows = read_rows({"path": np.array(["a.png", "missing.png"], object)}, channels=1)
    >>> rows.good.tolist(), rows.errors[1].startswith("image 'missing.png'")
    ([0], True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrexplain._checks import check_int, describe, first_line
from cxrexplain.classifier import Classifier
from cxrexplain.distributed._ray import assigned_cpus
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import load_each

__all__ = ["BatchActor", "Rows", "configure_threads", "filled", "quoted", "read_rows"]

ModelPath = str | os.PathLike[str]


@dataclass
class Rows:
    """One batch's films: the readable ones, loaded, and the others' error messages.

    Attributes:
        count: The rows in the batch.
        columns: The input columns passed through to the output (all but ``bytes``).
        sources: Each row's path (str) or bytes (None when the cell is empty).
        films: The readable films, ``(H, W, C)`` float32 each at its own size.
        good: ``(n,)`` int64, the positions of ``films`` in the batch.
        errors: One message per row, ``""`` for a readable film.
    """

    count: int
    columns: dict[str, np.ndarray]
    sources: list[Any]
    films: list[np.ndarray]
    good: np.ndarray
    errors: list[str]

    def drop(self, position: int, message: str) -> None:
        """Turn the readable film at batch ``position`` into an error row."""
        keep = self.good != position
        index = int(np.flatnonzero(~keep)[0])
        del self.films[index]
        self.good = self.good[keep]
        self.errors[position] = message


def read_rows(batch: dict[str, np.ndarray], *, channels: int) -> Rows:
    """Read a batch's films (see the module docs).

    Args:
        batch: The columns, with ``path``, or ``bytes`` and ``id``.
        channels: The channels to load (the model's).

    Returns:
        The :class:`Rows`.

    Raises:
        InvalidInputError: No ``path`` or ``bytes`` column, ``bytes`` without ``id``, or
            columns of different lengths.
    """
    if not isinstance(batch, dict):
        raise InvalidInputError(
            f"batch: expected a dict of NumPy columns (map_batches' default batch format), "
            f"got {describe(batch)}"
        )
    if "path" in batch:
        key = "path"
    elif "bytes" in batch:
        key = "bytes"
        if "id" not in batch:
            raise InvalidInputError(
                "batch: a 'bytes' column needs an 'id' column naming each film"
            )
    else:
        raise InvalidInputError(
            f"batch: expected a 'path' column (or 'bytes' and 'id'), got columns "
            f"{sorted(batch)}"
        )
    lengths = {name: len(column) for name, column in batch.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInputError(f"batch: the columns differ in length: {lengths}")
    count = lengths[key]
    sources = [_cell(value, key) for value in batch[key]]
    loaded = load_each(sources, channels=channels, missing=f"{key}: the cell is empty")
    if key == "bytes":
        sources = [None if s is None else f"bytes of {batch['id'][i]!s}"
                   for i, s in enumerate(sources)]
    columns = {name: column for name, column in batch.items() if name != "bytes"}
    return Rows(count, columns, sources, loaded.films, loaded.good, loaded.errors)


def _cell(value: Any, key: str) -> Any:
    """A ``path`` cell as ``str`` or a ``bytes`` cell as ``bytes``; None when empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if key == "bytes":
        data = bytes(value) if isinstance(value, (bytes, bytearray, memoryview, np.bytes_)) \
            else None
        return data if data else None
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", errors="replace")
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else str(value)
    return text or None


def filled(shape: tuple[int, ...], fill: Any, dtype: Any) -> np.ndarray:
    """A new array of ``shape`` and ``dtype`` holding ``fill`` (the error rows' value)."""
    if dtype is object:
        out = np.empty(shape, object)
        out[...] = fill
        return out
    return np.full(shape, fill, dtype)


def configure_threads(threads: int | None) -> int | None:
    """Size TensorFlow's thread pools (intra- and inter-op) before it starts.

    Args:
        threads: Threads per pool; None: the whole CPUs Ray gave this actor (nothing changes
            outside Ray).

    Returns:
        The threads set, or None when TensorFlow keeps its default (one per core), because
        nothing was asked or TensorFlow already runs in this process.
    """
    wanted = threads if threads is not None else assigned_cpus()
    if wanted is None:
        return None
    check_int(wanted, "threads")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(wanted))
        tf.config.threading.set_inter_op_parallelism_threads(int(wanted))
    except RuntimeError:  # TensorFlow already initialised in this process
        return None
    return int(wanted)


class BatchActor:
    """The shared part of :class:`~cxrexplain.distributed.Predict`, ``Explain`` and ``Audit``.

    Args:
        model: A ``.keras`` classifier file (``cx.Classifier.save``), loaded once here.
        batch_size: Films per compiled model pass (a Ray batch may hold more).
        threads: TensorFlow threads per pool; None: the CPUs Ray gave the actor.

    Raises:
        ModelLoadError: The file is missing or not a Keras model.
        InvalidInputError: A bad ``batch_size`` or ``threads``.
    """

    def __init__(self, model: ModelPath, *, batch_size: int = 32,
                 threads: int | None = None) -> None:
        if not isinstance(model, (str, os.PathLike)):
            raise InvalidInputError(
                f"model: expected the path of a .keras classifier file (each worker loads it "
                f"once), got {describe(model)}"
            )
        self.batch_size = check_int(batch_size, "batch_size")
        if threads is not None:
            check_int(threads, "threads")
        self.threads = configure_threads(threads)
        self.model_path = os.fspath(model)
        self.classifier = Classifier.load(model)
        self.class_names = list(self.classifier.class_names)

    def read(self, batch: dict[str, np.ndarray]) -> Rows:
        """The batch's films, loaded with the model's channels."""
        return read_rows(batch, channels=self.classifier.channels or 1)

    def output(self, rows: Rows) -> dict[str, np.ndarray]:
        """The passed-through columns and ``error``."""
        out = dict(rows.columns)
        out["error"] = np.asarray(rows.errors, object)
        return out

    def probabilities(self, rows: Rows, values: np.ndarray | None) -> dict[str, np.ndarray]:
        """``probabilities`` ``(N, K)`` float32 (NaN rows on error) and ``label`` (the
        decided class name, ``""`` on error) from the good rows' probabilities."""
        count, classes = rows.count, self.classifier.num_classes
        probabilities = filled((count, classes), np.nan, np.float32)
        labels = filled((count,), "", object)
        if values is not None and len(rows.good):
            probabilities[rows.good] = values
            labels[rows.good] = [p.label for p in self.classifier.decide(values)]
        return {"probabilities": probabilities, "label": labels}


def quoted(err: BaseException) -> str:
    """``"<Type>: <first line>"`` of an unexpected error, for an error cell."""
    return f"{type(err).__name__}: {first_line(err)}"
