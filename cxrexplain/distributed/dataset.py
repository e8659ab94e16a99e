"""``explain_dataset``: explain a data set past one machine with Ray Data, into Parquet.

One call does what the ``cxrexplain explain --engine ray`` command does: it starts a local
Ray (or attaches to the running one, or to ``address``), makes one row per film
(``index``, ``path``), runs :class:`~cxrexplain.distributed.Explain` in a pool of actors
(each loads the model once), and writes the rows as Parquet files into ``out`` while the run
goes on. A film that cannot be read becomes an error row. Each Parquet file is written whole
by one Ray task; after a crash ``resume=True`` drops the files cut short (unreadable) and
explains only the films that have no row yet, so nothing is lost or written twice.

Example:
    >>> import cxrexplain as cx
    >>> summary = cx.distributed.explain_dataset(
    ...     "films/**/*.png", "pneumonia.keras", method="gradcam", out="maps/")
    ... # doctest: +SKIP
    >>> table = cx.distributed.read_results("maps/")  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import importlib
import json
import math
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrexplain import errors
from cxrexplain._checks import check_int, check_number, describe, first_line
from cxrexplain.distributed._ray import INSTALL, quiet_data_context, ray_session, require_ray
from cxrexplain.distributed.explain import Explain
from cxrexplain.errors import (
    CxrExplainError,
    ImageLoadError,
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
)
from cxrexplain.io import find_images

__all__ = ["ExplainSummary", "explain_dataset", "list_films", "read_results"]

ROWS_PER_FILE_BATCHES = 8
"""Ray batches per input block, so per Parquet file (256 rows at the default batch size)."""


@dataclass(frozen=True)
class ExplainSummary:
    """What :func:`explain_dataset` did.

    Attributes:
        out: The output folder.
        rows: Rows in the folder's Parquet files (one per film).
        errors: Of those, the error rows (films that could not be read).
        new: Rows written by this call (``rows`` minus those a resumed run found).
        files: Parquet files in the folder.
        seconds: Wall-clock time of the call.
        workers: Ray actors used (0 when nothing was left to do).

    Example:
        >>> print(ExplainSummary("maps", 2000, 3, 2000, 8, 61.5, 2))
        wrote 2000 rows (3 errors) to maps in 61.5 s with 2 Ray workers
    """

    out: str
    rows: int
    errors: int
    new: int
    files: int
    seconds: float
    workers: int

    def __str__(self) -> str:
        done = f"wrote {self.new} rows" if self.new == self.rows else \
            f"wrote {self.new} new rows ({self.rows} in all)"
        errors = f"{self.errors} error{'s' if self.errors != 1 else ''}"
        return (f"{done} ({errors}) to {self.out} in {self.seconds:.1f} s "
                f"with {self.workers} Ray worker{'s' if self.workers != 1 else ''}")


def explain_dataset(
    paths_or_glob: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    model_path: str | os.PathLike[str],
    *,
    method: str = "gradcam",
    out: str | os.PathLike[str],
    address: str | None = None,
    concurrency: int | None = None,
    num_gpus: float = 0,
    num_cpus: float = 1,
    batch_size: int = 32,
    heatmap_size: int | None = 64,
    png: bool = True,
    target: str | int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> ExplainSummary:
    """Explain every film with Ray Data and write one Parquet row per film into ``out``.

    The columns are ``index`` (the film's position), ``path`` (made absolute) and those of
    :class:`~cxrexplain.distributed.Explain` (``error``, ``probabilities``, ``label``,
    ``target``, ``score``, ``heatmap``, ``heatmap_png``); :func:`read_results` reads them
    back as arrays in film order.

    On a cluster the films, the model file and ``out`` must be on a file system every node
    sees (the same paths), and the nodes need cxrexplain and the ``ray`` extra installed.

    Args:
        paths_or_glob: A glob pattern (``"films/**/*.png"``, recursive), a folder (searched
            for images), a file, or a list of them. Files in a list are kept as given: a
            missing one becomes an error row.
        model_path: A ``.keras`` classifier file (``cx.Classifier.save``).
        method: An explainer name (``cx.explainers()``).
        out: The output folder (created); it must hold no Parquet files unless ``resume``.
        address: A Ray cluster's address (``"auto"``: the cluster this machine belongs to);
            None: the Ray already running in this process, or a new local one (shut down at
            the end).
        concurrency: Ray actors (each loads the model once); None: as many as the cluster's
            CPUs (or GPUs, with ``num_gpus``) allow.
        num_gpus: GPUs per actor (0: CPU only; 0.5: two actors share a GPU).
        num_cpus: CPUs per actor; each actor's TensorFlow uses that many threads.
        batch_size: Films per Ray batch and per compiled pass.
        heatmap_size: Side of the ``heatmap`` column's maps; None: the model's input size.
        png: Add the ``heatmap_png`` column (each map at the model's input size).
        target: The class to explain for every film; None: each film's predicted class.
        resume: Finish an interrupted run into the same ``out`` (see the module docs).
        progress: Show Ray Data's progress bar (on an interactive terminal).

    Returns:
        An :class:`ExplainSummary` (``print`` it for one line).

    Raises:
        MissingDependencyError: Ray is not installed (``pip install "cxrexplain[ray]"``).
        ImageLoadError: A folder or pattern holds no image.
        ModelLoadError: The model file cannot be loaded.
        InvalidInputError: A bad argument, ``out`` holds another run's files, or Ray cannot
            start or reach ``address``.
        CxrExplainError: The Ray job failed; what was written stays, and ``resume=True``
            finishes it.

    Example:
        >>> summary = explain_dataset(["a.png", "b.png"], "pneumonia.keras", out="maps")
        ... # doctest: +SKIP
        >>> summary.rows, summary.errors  # doctest: +SKIP
        (2, 0)
    """
    started = time.perf_counter()
    require_ray()
    films = [os.path.abspath(p) for p in list_films(paths_or_glob)]
    check_int(batch_size, "batch_size")
    if concurrency is not None:
        check_int(concurrency, "concurrency")
    check_number(num_gpus, "num_gpus", low=0.0)
    check_number(num_cpus, "num_cpus", low=0.0)
    if num_cpus == 0 and num_gpus == 0:
        raise InvalidInputError("num_cpus: an actor needs CPUs or GPUs; both are 0")
    model = Path(os.fspath(model_path)) if isinstance(model_path, (str, os.PathLike)) else None
    if model is None:
        raise InvalidInputError(f"model_path: expected a .keras file, got {describe(model_path)}")
    if not model.is_file():
        raise ModelLoadError(f"model file '{model}': no such file")
    options: dict[str, Any] = {"model": str(model.absolute()), "method": method,
                               "heatmap_size": heatmap_size, "png": png, "target": target,
                               "batch_size": batch_size}
    Explain(**options, threads=None)  # every argument checked here, before Ray starts
    folder = _out_folder(out)
    done = _finished_paths(folder) if resume else _refuse_old_run(folder)
    before = _count(folder)[0] if done else 0
    items = [{"index": i, "path": p} for i, p in enumerate(films) if p not in done]
    workers = 0
    if items:
        with ray_session(address) as ray, quiet_data_context(ray, progress=progress):
            workers = concurrency or _default_workers(ray, num_cpus, num_gpus)
            workers = max(1, min(workers, math.ceil(len(items) / batch_size)))
            rows_per_block = batch_size * ROWS_PER_FILE_BATCHES
            blocks = max(math.ceil(len(items) / rows_per_block),
                         min(math.ceil(len(items) / batch_size), 2 * workers))
            dataset = ray.data.from_items(items, override_num_blocks=blocks)
            remote: dict[str, Any] = {"num_cpus": num_cpus}
            if num_gpus:
                remote["num_gpus"] = num_gpus
            mapped = dataset.map_batches(
                Explain, fn_constructor_kwargs=options,
                compute=ray.data.ActorPoolStrategy(size=workers), batch_size=batch_size,
                **remote)
            try:
                mapped.write_parquet(str(folder))
            except Exception as err:
                raise _library_error(err, folder) from err
    rows, bad, files = _count(folder)
    return ExplainSummary(str(folder), rows, bad, rows - before, files,
                          time.perf_counter() - started, workers)


def list_films(paths_or_glob: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
               ) -> list[str]:
    """The film paths a data-set run takes (see :func:`explain_dataset`), as strings.

    Raises:
        ImageLoadError: A folder or pattern holds no image, or one given path does not
            exist.
        InvalidInputError: Not a path, a pattern or a list of them, or nothing given.

    Example:
        >>> list_films("cxr/*/0[0-1].png")
        ['cxr/COVID/00.png', 'cxr/NORMAL/01.png']
        >>> list_films(["a.png", "missing.png"])  # a listed file is kept: an error row
        ['a.png', 'missing.png']
    """
    given: Any = paths_or_glob  # checked here, whatever the annotation says
    if isinstance(given, (str, os.PathLike)):
        text = os.fspath(given)
        if glob.has_magic(text):
            return _expand(text)
        return [str(p) for p in find_images(text)]
    if not isinstance(given, Iterable) or isinstance(given, (bytes, bytearray)):
        raise InvalidInputError(
            f"paths_or_glob: expected a glob pattern, a folder, a file or a list of them, got "
            f"{describe(given)}"
        )
    films: list[str] = []
    for position, item in enumerate(given):
        if not isinstance(item, (str, os.PathLike)):
            raise InvalidInputError(
                f"paths_or_glob[{position}]: expected a path or a pattern, got {describe(item)}"
            )
        text = os.fspath(item)
        if glob.has_magic(text):
            films.extend(_expand(text))
        elif os.path.isdir(text):
            films.extend(str(p) for p in find_images(text))
        else:
            films.append(text)
    if not films:
        raise InvalidInputError("paths_or_glob: no films given")
    return films


def _expand(pattern: str) -> list[str]:
    found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    if not found:
        raise ImageLoadError(f"paths_or_glob: the pattern '{pattern}' matches no file")
    return found


def _out_folder(out: object) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInputError(f"out: expected a folder path, got {describe(out)}")
    folder = Path(os.fspath(out)).absolute()
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"out: '{folder}' is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _parquet_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.parquet") if p.is_file())


def _refuse_old_run(folder: Path) -> set[str]:
    files = _parquet_files(folder)
    if files:
        raise InvalidInputError(
            f"out: '{folder}' already holds {len(files)} Parquet file(s) of another run; "
            "resume it (resume=True, --resume) or choose an empty folder"
        )
    return set()


def _finished_paths(folder: Path) -> set[str]:
    """The paths that have a row in the folder's whole Parquet files; files cut short by a
    crash (no readable footer) are deleted."""
    pq = _pyarrow_parquet()
    done: set[str] = set()
    for file in _parquet_files(folder):
        try:
            table = pq.read_table(file, columns=["path"])
        except Exception:  # a file cut short: its films are explained again
            file.unlink(missing_ok=True)
            continue
        done.update(str(p) for p in table.column("path").to_pylist())
    return done


def _count(folder: Path) -> tuple[int, int, int]:
    """Rows, error rows and Parquet files in ``folder``."""
    pq = _pyarrow_parquet()
    rows = errors = 0
    files = _parquet_files(folder)
    for file in files:
        column = pq.read_table(file, columns=["error"]).column("error").to_pylist()
        rows += len(column)
        errors += sum(1 for e in column if e)
    return rows, errors, len(files)


def _default_workers(ray: Any, num_cpus: float, num_gpus: float) -> int:
    resources = ray.cluster_resources()
    if num_gpus:
        return max(1, int(float(resources.get("GPU", 0.0)) // num_gpus))
    return max(1, int(float(resources.get("CPU", 1.0)) // max(num_cpus, 1e-9)))


def _library_error(err: BaseException, folder: Path) -> CxrExplainError:
    """The cxrexplain error inside a Ray failure, or one that says where to look."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, CxrExplainError):
            return type(cause)(str(cause))
        if isinstance(current, CxrExplainError) and type(current).__module__.startswith(
                "cxrexplain"):
            return current
        current = current.__cause__ or (cause if isinstance(cause, BaseException) else None)
    # a worker's exception crosses processes as text: "cxrexplain.errors.<Name>: <message>"
    found = re.findall(r"^cxrexplain\.errors\.(\w+): (.+)$", str(err), flags=re.MULTILINE)
    for name, message in found:
        kind = getattr(errors, name, None)
        if isinstance(kind, type) and issubclass(kind, CxrExplainError):
            return kind(f"{message} (in a Ray worker)")
    return CxrExplainError(
        f"ray: the run failed ({type(err).__name__}: {first_line(err)}); the rows written so "
        f"far are in '{folder}' (resume=True, or --resume, finishes the run); Ray's logs are "
        "under /tmp/ray/session_latest/logs"
    )


def _pyarrow_parquet() -> Any:
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as err:
        raise MissingDependencyError(
            f"pyarrow: needed to read Parquet results ({first_line(err)}); install it with: "
            f"{INSTALL}"
        ) from err
    return pq


def read_results(out: str | os.PathLike[str], *, columns: Iterable[str] | None = None
                 ) -> dict[str, np.ndarray]:
    """The Parquet rows of a data-set run as NumPy columns, in film (``index``) order.

    Fixed-shape columns come back with their shape (``probabilities`` ``(N, K)``,
    ``heatmap`` ``(N, S, S)``); Ray is not needed, only pyarrow.

    Args:
        out: The folder :func:`explain_dataset` wrote (or any folder of such Parquet files).
        columns: The columns to read; None: all.

    Returns:
        A dict of arrays, one entry per column.

    Raises:
        InvalidInputError: The folder holds no Parquet file.
        MissingDependencyError: pyarrow is not installed.

    Example:
        >>> table = read_results("maps/")  # doctest: +SKIP
        >>> table["heatmap"].shape  # doctest: +SKIP
        (2000, 64, 64)
    """
    pq = _pyarrow_parquet()
    folder = Path(os.fspath(out))
    files = _parquet_files(folder) if folder.is_dir() else []
    if not files:
        raise InvalidInputError(f"out: '{folder}' holds no Parquet file")
    wanted = None if columns is None else list(columns)
    parts = [pq.read_table(f, columns=wanted) for f in files]
    result: dict[str, np.ndarray] = {}
    for name in parts[0].column_names:
        result[name] = np.concatenate([_column(part, name) for part in parts])
    if "index" in result:
        order = np.argsort(result["index"], kind="stable")
        result = {name: values[order] for name, values in result.items()}
    return result


def _column(table: Any, name: str) -> np.ndarray:
    """One column as an array; a (Ray) fixed-shape tensor column gets its shape back."""
    pa = importlib.import_module("pyarrow")

    field = table.schema.field(name)
    column = table.column(name).combine_chunks()
    shape: tuple[int, ...] | None = None
    if isinstance(field.type, pa.ExtensionType):
        shape = tuple(int(s) for s in getattr(field.type, "shape", ()) or ()) or None
        column = column.storage
    elif field.metadata and b"ARROW:extension:metadata" in field.metadata:
        try:
            shape = tuple(int(s) for s in json.loads(field.metadata[b"ARROW:extension:metadata"]))
        except (ValueError, TypeError):
            shape = None
    if shape is not None and (pa.types.is_list(column.type)
                              or pa.types.is_large_list(column.type)
                              or pa.types.is_fixed_size_list(column.type)):
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat).reshape(len(column), *shape)
    values = column.to_numpy(zero_copy_only=False)
    return np.asarray(values)
