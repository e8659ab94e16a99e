"""Explain folders of thousands of X-rays: streamed in batches, written atomically, resumable.

Memory does not grow with the number of images: at most three batches are held, the next one
being read (in a reader thread), the current one being explained and the previous one being
drawn and written (in a writer thread), so file reading and PNG encoding overlap the model.
Every overlay PNG is written to a temporary name and renamed into place
(:mod:`cxrexplain._files`), and its row is appended to ``predictions.csv`` only after, so an
interrupted run (even by ``SIGKILL``) leaves nothing half-written that counts: ``resume=True``
drops a CSV line cut short, removes stale temporary files and skips the images already done.

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

import csv
import io as _io
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np

from cxrexplain._checks import one_line
from cxrexplain._files import atomic_write_bytes, atomic_write_text
from cxrexplain.classifier import Classifier
from cxrexplain.drawing import overlay
from cxrexplain.errors import CxrExplainError, InvalidInputError
from cxrexplain.explain import Explanation, get_explainer
from cxrexplain.io import load_image

__all__ = ["explain_to_folder", "predict_rows"]


def predict_rows(classifier: Classifier, paths: Sequence[Path], *, batch_size: int = 32
                 ) -> list[dict[str, Any]]:
    """Predictions for files, in batches: one dict per image (bad files get an ``error``).

    Args:
        classifier: The classifier.
        paths: Image files.
        batch_size: Images per forward pass.

    Returns:
        ``{"image", "label", "probability", <class>: p, ..., "error"}`` per path, in order.

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
        images, errors = _read(chunk, classifier)
        predictions = classifier.decide(classifier.predict_proba(
            list(images.values()), batch_size=batch_size)) if images else []
        by_index = dict(zip(images, predictions, strict=True))
        for i, path in enumerate(chunk):
            if i in by_index:
                p = by_index[i]
                rows.append({"image": str(path), "label": p.label,
                             "probability": p.probability, **p.probabilities, "error": ""})
            else:
                rows.append({"image": str(path), "label": "", "probability": "",
                             "error": errors[i]})
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
    killed at any moment can be finished with ``resume=True``.

    Args:
        classifier: The classifier to explain.
        paths: Image files (see :func:`cxrexplain.io.find_images`).
        out_dir: Output folder (created).
        method: Explainer name (``cxrexplain.explainers()``).
        target: Class to explain (name or index); None: each image's predicted class.
        batch_size: Images per batch.
        resume: Skip images already in ``predictions.csv`` whose overlay exists (a last
            line cut short by an interruption is dropped and its image redone).
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
    table = out / "predictions.csv"
    columns = ["image", "label", "probability", *classifier.class_names, "target", "method",
               "overlay", "error"]
    done = _finished_rows(table, columns, out) if resume else {}
    _remove_partials(out, table)
    _rewrite(table, columns, list(done.values()))
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
    with table.open("a", newline="", encoding="utf-8") as handle, \
            ThreadPoolExecutor(1, thread_name_prefix="cxrexplain-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="cxrexplain-write") as writer:
        table_writer = csv.DictWriter(handle, fieldnames=columns)
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
            writing = writer.submit(draw.write, chunk, loaded, exp, table_writer, handle)
        if writing is not None:
            finished += writing.result()
            if bar is not None:
                bar.update(finished)
    return table


@dataclass(frozen=True)
class _Loaded:
    """One batch of files: the readable ones at native size, as the model takes them, and
    the others' error messages (by position in the chunk)."""

    images: dict[int, np.ndarray]
    batch: np.ndarray | None
    errors: dict[int, str]


def _read_batch(paths: Sequence[Path], classifier: Classifier) -> _Loaded:
    images, errors = _read(paths, classifier)
    batch = classifier.prepare(list(images.values())) if images else None
    return _Loaded(images, batch, errors)


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

    def write(self, chunk: Sequence[Path], loaded: _Loaded, exp: Explanation | None,
              table: csv.DictWriter[str], handle: Any) -> int:
        """Write the overlays, then the rows (so a row never points at a missing file)."""
        rows: dict[int, dict[str, Any]] = {
            i: {"image": str(chunk[i]), "method": self.method, "error": one_line(message)}
            for i, message in loaded.errors.items()
        }
        if exp is not None:
            decisions = self.classifier.decide(exp.probabilities)
            for k, i in enumerate(loaded.images):
                name = _overlay_name(chunk[i], self.root)
                picture = overlay(loaded.images[i], exp.heatmaps[k], colormap=self.colormap,
                                  alpha=self.alpha, threshold=self.threshold)
                _write_png_atomically(self.out / "overlays" / name, picture)
                decision = decisions[k]
                rows[i] = {
                    "image": str(chunk[i]), "label": decision.label,
                    "probability": f"{decision.probability:.6f}",
                    **{c: f"{p:.6f}" for c, p in decision.probabilities.items()},
                    "target": exp.class_names[int(exp.targets[k])],
                    "method": self.method, "overlay": str(Path("overlays") / name),
                    "error": "",
                }
        for i in range(len(chunk)):
            table.writerow(rows[i])
        handle.flush()
        return len(chunk)


def _read(paths: Sequence[Path], classifier: Classifier
          ) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """The files that load, at native size, by position; and the others' error messages."""
    channels = classifier.channels or 1
    images: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    for position, path in enumerate(paths):
        try:
            images[position] = load_image(path, channels=channels)
        except CxrExplainError as err:
            errors[position] = str(err)
    return images, errors


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


def _complete_lines(text: str) -> str:
    """``text`` without a last line cut short (one that does not end in a newline)."""
    return text if text.endswith("\n") else text[: text.rfind("\n") + 1]


def _remove_partials(out: Path, table: Path) -> None:
    """Delete temporary files an interrupted run left behind (see :mod:`cxrexplain._files`)."""
    overlays = out / "overlays"
    stale = list(overlays.rglob(".*.partial*")) if overlays.is_dir() else []
    stale += list(out.glob(f".{table.name}.partial*"))
    for path in stale:
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)


def _finished_rows(table: Path, columns: list[str], out: Path) -> dict[str, dict[str, str]]:
    """Rows of a previous run whose overlay exists (complete rows only)."""
    if not table.is_file():
        return {}
    done: dict[str, dict[str, str]] = {}
    text = _complete_lines(table.read_text(encoding="utf-8", errors="replace"))
    for row in csv.DictReader(_io.StringIO(text)):
        if None in row or any(row.get(c) is None for c in columns):
            continue  # a row cut short by an interruption
        if row["error"] or (row["overlay"] and (out / row["overlay"]).is_file()):
            done[row["image"]] = row
    return done


def _rewrite(table: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """Replace ``table`` atomically by a header and ``rows``."""
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(table, buffer.getvalue())
