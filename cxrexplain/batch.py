"""Explain folders of thousands of X-rays: streamed in batches, written atomically, resumable.

Memory does not grow with the number of images: at most three batches are held, the next one
being read (in a reader thread), the current one being explained and the previous one being
drawn and written (in a writer thread), so file reading and PNG encoding overlap the model.
Every overlay PNG is written to a temporary name and renamed into place
(:mod:`cxrexplain._files`), and its row is appended to ``predictions.csv`` only after, so an
interrupted run (even by ``SIGKILL``) leaves nothing half-written that counts: ``resume=True``
drops a CSV line cut short, removes stale temporary files and skips the images already done
(the table is :class:`cxrexplain._resumable.ResumableTable`, which ``cxrexplain audit`` writes
too; the films are read by :func:`cxrexplain.io.load_each`, as on Ray).

Overlays mirror the paths the user gave, relative to their common folder; symbolic links are
not resolved, so two links to one file get two overlays under the links' names.

Example:
    >>> import cxrexplain as cx
    >>> from cxrexplain.batch import explain_to_folder
    >>> clf = cx.Classifier.load("pneumonia.keras")
    >>> explain_to_folder(clf, cx.io.find_images("chest_xray/test"), "out",
    ...                   method="gradcam", progress=False)
    PosixPath('out/predictions.csv')
    >>> sorted(p.as_posix() for p in Path("out/overlays").rglob("*.png"))[:2]
    ['out/overlays/NORMAL/00.png', 'out/overlays/NORMAL/02.png']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np

from cxrexplain._files import atomic_write_bytes
from cxrexplain._resumable import ResumableTable, RowWriter
from cxrexplain.classifier import Classifier
from cxrexplain.drawing import overlay
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain import Explanation, get_explainer
from cxrexplain.io import Loaded, load_each

__all__ = ["explain_to_folder", "predict_rows"]


def predict_rows(classifier: Classifier, paths: Sequence[Path], *, batch_size: int = 32
                 ) -> list[dict[str, Any]]:
    """Predictions for files, in batches: one dict per image (bad files get an ``error``).

    Args:
        classifier: The classifier.
        paths: Image files.
        batch_size: Images per forward pass.

    Returns:
        ``{"image", "label", "probability", <class>: p, ..., "error"}`` per path, in order
        (a file that cannot be read: ``""`` but for ``image`` and ``error``).

    Example:
        >>> row = predict_rows(clf, [Path("a.png")])[0]
        >>> sorted(row)
        ['NORMAL', 'PNEUMONIA', 'error', 'image', 'label', 'probability']
        >>> row["label"] in clf.class_names, row["error"]
        (True, '')
    """
    rows: list[dict[str, Any]] = []
    for start in range(0, len(paths), batch_size):
        chunk = list(paths[start : start + batch_size])
        loaded = load_each(chunk, channels=classifier.channels or 1)
        probabilities = classifier.predict_proba(loaded.films, batch_size=batch_size) \
            if loaded.films else None
        rows += _prediction_rows(classifier, chunk, loaded, probabilities, float)
    return rows


def explain_to_folder(
    classifier: Classifier,
    paths: Sequence[Path],
    out_dir: str | os.PathLike[str],
    *,
    method: str = "gradcam",
    target: str | int | None = None,
    batch_size: int = 16,
    resume: bool = False,
    alpha: float = 0.4,
    colormap: str = "jet",
    threshold: float | None = None,
    progress: bool = True,
) -> Path:
    """Write an overlay PNG per image and a ``predictions.csv``, batch by batch.

    Overlays are drawn on each X-ray at its own resolution (the map is upsampled) and saved
    under ``out_dir/overlays/`` mirroring the paths as given (symbolic links are not
    resolved) relative to their common parent folder. A file that cannot be read gets a CSV
    row with its error and the run goes on. Rows are appended as batches finish; a run
    killed at any moment can be finished with ``resume=True``. The finished table has one
    row per path, in the order of ``paths``.

    Args:
        classifier: The classifier to explain.
        paths: Image files (see :func:`cxrexplain.io.find_images`).
        out_dir: Output folder (created).
        method: Explainer name (``cxrexplain.explainers()``).
        target: Class to explain (name or index); None: each image's predicted class.
        batch_size: Images per batch.
        resume: Skip the images of ``paths`` already in ``predictions.csv`` whose overlay
            exists, or that failed with an error (a last line cut short by an interruption is
            dropped and its image redone; rows of images not in ``paths`` are dropped).
        alpha: Overlay opacity.
        colormap: Matplotlib colormap name.
        threshold: Hide heatmap values below this in the overlay.
        progress: Show a progress bar.

    Returns:
        The path of ``predictions.csv``.

    Raises:
        InvalidInputError: Unknown method, bad target, no images.

    Example:
        >>> paths = cx.io.find_images("chest_xray/test")
        >>> table = explain_to_folder(clf, paths[:2], "out", progress=False)
        >>> explain_to_folder(clf, paths, "out", resume=True, progress=False)  # the rest
        PosixPath('out/predictions.csv')
        >>> len(table.read_text().splitlines())  # a header and a row per image
        5
    """
    if not paths:
        raise InvalidInputError("images: no images to explain")
    explainer = get_explainer(method)(classifier)
    out = Path(os.fspath(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    columns = ["image", "label", "probability", *classifier.class_names, "target", "method",
               "overlay", "error"]
    table = ResumableTable(out / "predictions.csv", columns)
    names = [str(p) for p in paths]
    done = table.start(names, resume=resume,
                       keep=lambda row: bool(row["error"]) or _overlay_exists(out, row))
    _remove_partial_overlays(out)
    root = _common_parent(paths)
    todo = [p for p in paths if str(p) not in done]
    bar = keras.utils.Progbar(len(paths), unit_name="image") if progress else None
    finished = len(paths) - len(todo)
    if bar is not None:
        bar.update(finished)
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    # three stages overlap: a reader thread loads (and resizes) batch k + 1 and a writer thread
    # draws and writes batch k - 1 while batch k is explained; OpenCV releases the GIL, so the
    # cores do not wait on files. One thread per stage keeps the CSV in input order.
    with table.appending() as rows, \
            ThreadPoolExecutor(1, thread_name_prefix="cxrexplain-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="cxrexplain-write") as writer:
        draw = _Drawing(out, root, alpha, colormap, threshold, explainer.name, classifier)
        reading = reader.submit(_read_batch, chunks[0], classifier) if chunks else None
        writing: Future[int] | None = None
        for k, chunk in enumerate(chunks):
            assert reading is not None
            loaded = reading.result()
            if k + 1 < len(chunks):
                reading = reader.submit(_read_batch, chunks[k + 1], classifier)
            exp = (explainer.explain(loaded.batch, target, batch_size=batch_size)
                   if loaded.batch is not None else None)
            if writing is not None:
                finished += writing.result()
                if bar is not None:
                    bar.update(finished)
            writing = writer.submit(draw.write, chunk, loaded, exp, rows)
        if writing is not None:
            finished += writing.result()
            if bar is not None:
                bar.update(finished)
    return table.finish(names)


def _prediction_rows(classifier: Classifier, chunk: Sequence[Path], loaded: Loaded,
                     probabilities: np.ndarray | None, number: Callable[[float], Any]
                     ) -> list[dict[str, Any]]:
    """The rows ``image, label, probability, <class>..., error`` of a chunk, in its order:
    the readable films' decisions (numbers through ``number``), the others' errors."""
    blank = dict.fromkeys(["label", "probability", *classifier.class_names], "")
    rows = [{"image": str(path), **blank, "error": loaded.errors[i]}
            for i, path in enumerate(chunk)]
    if probabilities is not None:
        decisions = classifier.decide(probabilities)
        for position, decision in zip(loaded.good.tolist(), decisions, strict=True):
            rows[position].update({
                "label": decision.label, "probability": number(decision.probability),
                **{c: number(p) for c, p in decision.probabilities.items()},
            })
    return rows


@dataclass(frozen=True)
class _Batch:
    """One chunk of files: read (:func:`~cxrexplain.io.load_each`), and the readable ones
    as the model takes them."""

    loaded: Loaded
    batch: np.ndarray | None


def _read_batch(paths: Sequence[Path], classifier: Classifier) -> _Batch:
    loaded = load_each(paths, channels=classifier.channels or 1)
    return _Batch(loaded, classifier.prepare(loaded.films) if loaded.films else None)


@dataclass(frozen=True)
class _Drawing:
    """Draws a batch's overlays and appends its CSV rows (run in the writer thread)."""

    out: Path
    root: Path
    alpha: float
    colormap: str
    threshold: float | None
    method: str
    classifier: Classifier

    def write(self, chunk: Sequence[Path], read: _Batch, exp: Explanation | None,
              table: RowWriter) -> int:
        """Write the overlays, then the rows (so a row never points at a missing file)."""
        rows = _prediction_rows(self.classifier, chunk, read.loaded,
                                None if exp is None else exp.probabilities, _six_digits)
        for row in rows:
            row.update(target="", method=self.method, overlay="")
        if exp is not None:
            for k, position in enumerate(read.loaded.good.tolist()):
                name = _overlay_name(chunk[position], self.root)
                picture = overlay(read.loaded.films[k], exp.heatmaps[k],
                                  colormap=self.colormap, alpha=self.alpha,
                                  threshold=self.threshold)
                _write_png_atomically(self.out / "overlays" / name, picture)
                rows[position].update(target=exp.class_names[int(exp.targets[k])],
                                      overlay=str(Path("overlays") / name))
        table.write(rows)
        return len(chunk)


def _six_digits(value: float) -> str:
    return f"{value:.6f}"


def _overlay_exists(out: Path, row: dict[str, str]) -> bool:
    return bool(row["overlay"]) and (out / row["overlay"]).is_file()


def _absolute(path: Path) -> Path:
    """``path`` made absolute and normalised (``..`` removed) without resolving links."""
    return Path(os.path.abspath(os.fspath(path)))


def _common_parent(paths: Sequence[Path]) -> Path:
    """The deepest folder holding every path as given (links are not followed)."""
    parents = [str(_absolute(p).parent) for p in paths]
    try:
        return Path(os.path.commonpath(parents))
    except ValueError:  # different drives
        return Path("/")


def _overlay_name(path: Path, root: Path) -> Path:
    """The overlay's path under ``overlays/``: ``path`` as given, relative to ``root``."""
    try:
        relative = _absolute(path).relative_to(root)
    except ValueError:
        relative = Path(path.name)
    return relative if relative.suffix.lower() == ".png" else relative.with_name(
        relative.name + ".png")


def _write_png_atomically(path: Path, rgb: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise InvalidInputError(f"overlay: cannot encode a PNG for '{path}'")
    atomic_write_bytes(path, encoded.tobytes())


def _remove_partial_overlays(out: Path) -> None:
    """Delete the overlays' temporary files an interrupted run left behind (the table's
    are :class:`~cxrexplain._resumable.ResumableTable`'s)."""
    overlays = out / "overlays"
    for path in overlays.rglob(".*.partial*") if overlays.is_dir() else []:
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
