"""Explain folders of thousands of X-rays: streamed in batches, written atomically, resumable.

Memory does not grow with the number of images: each batch is read, explained, drawn and
written before the next is read. Every overlay PNG is written to a temporary name and renamed
into place, and its row is appended to ``predictions.csv`` only after, so an interrupted run
leaves nothing half-written; ``resume=True`` skips the images already done.

Example:
    >>> import cxrexplain as cx
    >>> from cxrexplain.batch import explain_to_folder
    >>> clf = cx.Classifier.load("pneumonia.keras")  # doctest: +SKIP
    >>> explain_to_folder(clf, cx.io.find_images("xrays/"), "out", method="gradcam")
    ... # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io as _io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np

from cxrexplain.classifier import Classifier
from cxrexplain.errors import CxrExplainError, InvalidInputError
from cxrexplain.explain import get_explainer
from cxrexplain.io import load_image
from cxrexplain.overlay import overlay

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
        >>> predict_rows(clf, [Path("a.png")])[0]["label"]  # doctest: +SKIP
        'PNEUMONIA'
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
    under ``out_dir/overlays/`` mirroring the images' folders relative to their common parent.
    A file that cannot be read gets a CSV row with its error and the run goes on.

    Args:
        classifier: The classifier to explain.
        paths: Image files (see :func:`cxrexplain.io.find_images`).
        out_dir: Output folder (created).
        method: Explainer name (``cxrexplain.explainers()``).
        target: Class to explain (name or index); None: each image's predicted class.
        batch_size: Images per batch.
        resume: Skip images already in ``predictions.csv`` whose overlay exists.
        alpha: Overlay opacity.
        colormap: Matplotlib colormap name.
        threshold: Hide heatmap values below this in the overlay.
        progress: Show a progress bar.

    Returns:
        The path of ``predictions.csv``.

    Raises:
        InvalidInputError: Unknown method, bad target, no images.

    Example:
        >>> explain_to_folder(clf, paths, "out", resume=True)  # doctest: +SKIP
        PosixPath('out/predictions.csv')
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
    _rewrite(table, columns, list(done.values()))
    root = _common_parent(paths)
    todo = [p for p in paths if str(p) not in done]
    bar = keras.utils.Progbar(len(paths), unit_name="image") if progress else None
    finished = len(paths) - len(todo)
    if bar is not None:
        bar.update(finished)
    with table.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            images, errors = _read(chunk, classifier)
            rows: dict[int, dict[str, Any]] = {
                i: {"image": str(chunk[i]), "method": explainer.name, "error": message}
                for i, message in errors.items()
            }
            if images:
                exp = explainer.explain(list(images.values()), target, batch_size=batch_size)
                for k, i in enumerate(images):
                    name = _overlay_name(chunk[i], root)
                    picture = overlay(images[i], exp.heatmaps[k], colormap=colormap,
                                      alpha=alpha, threshold=threshold)
                    _write_png_atomically(out / "overlays" / name, picture)
                    decision = classifier.decide(exp.probabilities[k : k + 1])[0]
                    rows[i] = {
                        "image": str(chunk[i]), "label": decision.label,
                        "probability": f"{decision.probability:.6f}",
                        **{c: f"{p:.6f}" for c, p in decision.probabilities.items()},
                        "target": exp.class_names[int(exp.targets[k])],
                        "method": explainer.name, "overlay": str(Path("overlays") / name),
                        "error": "",
                    }
            for i in range(len(chunk)):
                writer.writerow(rows[i])
            handle.flush()
            finished += len(chunk)
            if bar is not None:
                bar.update(finished)
    return table


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


def _common_parent(paths: Sequence[Path]) -> Path:
    parents = [p.resolve().parent for p in paths]
    try:
        return Path(os.path.commonpath([str(p) for p in parents]))
    except ValueError:  # different drives
        return Path("/")


def _overlay_name(path: Path, root: Path) -> Path:
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        relative = Path(path.name)
    return relative if relative.suffix.lower() == ".png" else relative.with_name(
        relative.name + ".png")


def _write_png_atomically(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise InvalidInputError(f"overlay: cannot encode a PNG for '{path}'")
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(encoded.tobytes())
    os.replace(partial, path)


def _finished_rows(table: Path, columns: list[str], out: Path) -> dict[str, dict[str, str]]:
    """Rows of a previous run whose overlay exists (complete rows only)."""
    if not table.is_file():
        return {}
    done: dict[str, dict[str, str]] = {}
    text = table.read_text(encoding="utf-8")
    for row in csv.DictReader(_io.StringIO(text)):
        if None in row or any(row.get(c) is None for c in columns):
            continue  # a row cut short by an interruption
        if row["error"] or (row["overlay"] and (out / row["overlay"]).is_file()):
            done[row["image"]] = row
    return done


def _rewrite(table: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    partial = table.with_name(f".{table.name}.partial")
    partial.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(partial, table)
