"""Run an audit: :func:`audit` streams the films through the classifier, explainer and lungs.

Each batch is loaded once (each film at its own size), resized for the classifier, explained in
one compiled forward and backward pass (which also gives the probabilities), and measured
against its lung masks; only the per-film numbers and a bounded gallery of the worst films are
kept, so memory stays flat however many films there are.

Example:
    >>> import cxrexplain as cx
    >>> rep = cx.audit(clf, data.images, lungs=data.lung_masks)
    >>> rep.lung_share.shape, type(rep.flagged)
    ((8,), <class 'bool'>)
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrexplain._checks import check_int, describe, first_line
from cxrexplain.auditing.gallery import GalleryItem
from cxrexplain.auditing.report import AuditReport, AuditRule
from cxrexplain.classifier import Classifier
from cxrexplain.errors import CxrExplainError, InvalidInputError
from cxrexplain.explain import Explainer, get_explainer
from cxrexplain.io import find_images, load_image
from cxrexplain.lungs.geometry import DEFAULT_MARGIN
from cxrexplain.lungs.masks import binary_masks, match_masks, read_masks
from cxrexplain.lungs.segmenter import LungSegmenter
from cxrexplain.lungs.shares import Measures, measure

__all__ = ["Batch", "LungSource", "audit", "audit_batches", "lung_source"]

GALLERY = 24
"""Films kept for the report's gallery (the lowest lung shares)."""


@dataclass(frozen=True)
class Batch:
    """What one batch of an audit gives (the rows ``start .. start + len`` of the report)."""

    start: int
    measures: Measures
    targets: np.ndarray
    probabilities: np.ndarray
    gallery: list[GalleryItem]
    layer: str


class LungSource:
    """Lung masks for a batch of loaded films, from a segmenter, an array or mask files."""

    def __init__(self, *, segmenter: LungSegmenter | None = None,
                 masks: np.ndarray | None = None, paths: Sequence[Path] | None = None) -> None:
        self.segmenter = segmenter
        self.array = masks
        self.paths = None if paths is None else list(paths)

    def count(self) -> int | None:
        """How many masks it holds (None: a segmenter, any number)."""
        if self.array is not None:
            return len(self.array)
        return None if self.paths is None else len(self.paths)

    def masks(self, start: int, films: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """``(n, *size)`` bool masks of the films ``start .. start + n``."""
        if self.segmenter is not None:
            return np.stack(self.segmenter.segment_loaded(films, size=size))
        if self.array is not None:
            chosen = self.array[start : start + len(films)]
            names = [f"lungs[{start + i}]" for i in range(len(films))]
        else:
            assert self.paths is not None
            files = self.paths[start : start + len(films)]
            chosen_list = read_masks(files, name="lungs")
            assert isinstance(chosen_list, list)
            chosen = chosen_list  # type: ignore[assignment]
            names = [f"lungs '{p}'" for p in files]
        out = []
        for name, mask, film in zip(names, chosen, films, strict=True):
            if mask.shape != film.shape[:2]:
                raise InvalidInputError(
                    f"{name}: the mask is {mask.shape[0]}x{mask.shape[1]} but its film is "
                    f"{film.shape[0]}x{film.shape[1]}; give masks of the films' size"
                )
            if not mask.any():
                raise InvalidInputError(f"{name}: the mask is empty (no lung pixel)")
            out.append(mask)
        return binary_masks(np.stack(out), size=size, name="lungs")


def lung_source(lungs: Any, paths: Sequence[Path] | None, count: int) -> LungSource:
    """Turn the ``lungs=`` argument of :func:`audit` into a :class:`LungSource`.

    Args:
        lungs: A :class:`LungSegmenter` (or its ``.keras`` file), a lung-mask model, an
            ``(N, H, W)`` mask array, a list of mask files, or a folder of masks matched to
            the film paths (:func:`cxrexplain.lungs.match_masks`).
        paths: The film paths (None for arrays).
        count: The number of films.

    Raises:
        InvalidInputError: A count that differs, empty masks, or something else.
    """
    if isinstance(lungs, LungSegmenter):
        return LungSource(segmenter=lungs)
    if isinstance(lungs, keras.Model):
        try:
            return LungSource(segmenter=LungSegmenter(lungs))
        except CxrExplainError as err:
            raise InvalidInputError(f"lungs: {first_line(err)}") from err
    if isinstance(lungs, (str, os.PathLike)):
        path = Path(os.fspath(lungs))
        if path.is_dir():
            if paths is None:
                raise InvalidInputError(
                    "lungs: a folder of masks is matched by file name and needs film paths; "
                    "with arrays, give an (N, H, W) mask array"
                )
            try:
                return LungSource(paths=match_masks(paths, path))
            except InvalidInputError as err:  # its messages say masks: the argument is lungs
                raise InvalidInputError(
                    "lungs: " + str(err).removeprefix("masks: ")) from err
        if path.suffix == ".keras":
            return LungSource(segmenter=LungSegmenter.load(path))
        lungs = [path]
    if isinstance(lungs, np.ndarray):
        masks = binary_masks(lungs, name="lungs")
        _check_count(len(masks), count)
        empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
        if len(empty):
            raise InvalidInputError(
                f"lungs: {len(empty)} mask(s) are empty (no lung pixel), at positions "
                f"{', '.join(map(str, empty[:10].tolist()))}"
            )
        return LungSource(masks=masks)
    if isinstance(lungs, Iterable) and not isinstance(lungs, (bytes, bytearray)):
        items = list(lungs)
        if items and all(isinstance(i, (str, os.PathLike)) for i in items):
            _check_count(len(items), count)
            return LungSource(paths=[Path(os.fspath(i)) for i in items])
        if items and all(isinstance(i, np.ndarray) for i in items):
            shapes = {np.shape(i) for i in items}
            if len(shapes) > 1:
                raise InvalidInputError(
                    "lungs: the mask arrays differ in size; give one (N, H, W) array of the "
                    "films' size"
                )
            return lung_source(np.stack(items), paths, count)
    raise InvalidInputError(
        f"lungs: expected a LungSegmenter, a lungs .keras file, an (N, H, W) mask array, a "
        f"list of mask files or a folder of masks, got {describe(lungs)}"
    )


def _check_count(masks: int, films: int) -> None:
    if masks != films:
        raise InvalidInputError(
            f"lungs: expected one mask per film, got {masks} masks for {films} films"
        )


def film_items(images: Any) -> tuple[list[Any] | np.ndarray, list[Path] | None]:
    """The films as a list (or a 4-D array) and their paths when all are paths.

    A folder (or a list with folders) is expanded with :func:`cxrexplain.io.find_images`.
    """
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            if not len(images):
                raise InvalidInputError("images: the batch is empty; give at least one image")
            return images, None
        return [images], None
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if not isinstance(images, Iterable) or isinstance(images, (bytes, bytearray)):
        raise InvalidInputError(
            f"images: expected files, folders, arrays or a list of them, got {describe(images)}"
        )
    items = list(images)
    if not items:
        raise InvalidInputError("images: no films given")
    if all(isinstance(i, (str, os.PathLike)) for i in items):
        paths = find_images(items)
        return list(paths), list(paths)
    return items, None


def _explainer(method: str | Explainer, classifier: Classifier) -> Explainer:
    if isinstance(method, Explainer):
        return method
    return get_explainer(method)(classifier)


def audit_batches(
    classifier: Classifier,
    items: list[Any] | np.ndarray,
    *,
    lungs: LungSource,
    explainer: Explainer,
    targets: np.ndarray | None,
    batch_size: int,
    lung_margin: float,
    gallery: int = GALLERY,
    offset: int = 0,
) -> Iterator[Batch]:
    """Audit ``items`` batch by batch (the engine of :func:`audit` and ``cxrexplain audit``).

    Args:
        classifier: The classifier.
        items: The films (a list, or a 4-D array).
        lungs: Their lung masks.
        explainer: The explainer (of ``classifier``).
        targets: ``(N,)`` class indices, or None for each film's predicted class.
        batch_size: Films per batch.
        lung_margin: The lungs' dilation.
        gallery: Films of each batch kept for the gallery (the lowest lung shares).
        offset: The position of ``items[0]`` among the lung source's masks.

    Yields:
        One :class:`Batch` per batch.
    """
    channels = classifier.channels or 1
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        films = []
        for k, item in enumerate(chunk):
            try:
                films.append(load_image(item, channels=channels))
            except CxrExplainError as err:
                raise type(err)(f"images[{offset + start + k}]: {err}") from err
        batch = classifier.prepare(films)
        wanted = None if targets is None else targets[start : start + len(films)]
        exp = explainer.explain(batch, wanted, batch_size=len(batch))
        size = (int(exp.heatmaps.shape[1]), int(exp.heatmaps.shape[2]))
        masks = lungs.masks(offset + start, films, size)
        measures = measure(exp.heatmaps, masks, margin=lung_margin)
        key = np.where(np.isnan(measures.lung_share), np.inf, measures.lung_share)
        kept = [
            GalleryItem(index=offset + start + int(i), image=batch[i, ..., 0].copy(),
                        heatmap=exp.heatmaps[i].copy(), lungs=masks[i].copy())
            for i in np.argsort(key, kind="stable")[:gallery] if np.isfinite(key[i])
        ]
        yield Batch(offset + start, measures, exp.targets, exp.probabilities, kept, exp.layer)


def audit(
    classifier: Classifier | keras.Model,
    images: Any,
    *,
    lungs: Any,
    method: str | Explainer = "gradcam",
    targets: Any = None,
    groups: Sequence[str] | str | None = None,
    batch_size: int = 32,
    lung_margin: float = DEFAULT_MARGIN,
    rule: AuditRule | None = None,
    progress: bool = False,
) -> AuditReport:
    """Audit where a classifier looks across a data set, film by film, against the lungs.

    For each film: the share of the explanation's mass inside the lungs (dilated by
    ``lung_margin``), in the border band (1/8 of each side), and whether its peak lies in the
    lungs; then a summary per class and per group and a verdict (:class:`AuditRule`): a model
    whose evidence for a finding lies mostly outside the lungs is flagged.

    Args:
        classifier: A :class:`~cxrexplain.Classifier` or a Keras model.
        images: Film files, folders, arrays, or a list of them (anything
            :func:`cxrexplain.load_images` takes); folders are searched for images.
        lungs: A :class:`~cxrexplain.lungs.LungSegmenter` (or its ``.keras`` file), an
            ``(N, H, W)`` mask array, a list of mask files, or a folder of masks matched to
            the films by file name. Masks must have their film's size.
        method: An explainer name (``cx.explainers()``) or an explainer of ``classifier``.
        targets: None (each film's predicted class), a class for all, or one per film.
        groups: None, a label per film (one per hospital or source), or ``"folder"`` (each
            film's parent folder; needs paths).
        batch_size: Films per compiled pass.
        lung_margin: The lungs' dilation as a share of the image side (0: none).
        rule: The verdict's rule (default :class:`AuditRule`).
        progress: Show a progress bar.

    Returns:
        The :class:`~cxrexplain.auditing.AuditReport`.

    Raises:
        InvalidInputError: Mismatched mask counts or sizes, empty masks, targets out of
            range, bad groups, an unknown method.
        ImageLoadError: A film or mask file cannot be read.

    Example:
        >>> rep = cx.audit(clf, data.images, lungs=data.lung_masks, targets="PNEUMONIA")
        >>> sorted(set(rep.targets.tolist()))
        [1]
    """
    clf = classifier if isinstance(classifier, Classifier) else Classifier(classifier)
    check_int(batch_size, "batch_size")
    items, paths = film_items(images)
    count = len(items)
    wanted = None if targets is None else clf.target_indices(targets, count)
    labels = _groups(groups, paths, count)
    source = lung_source(lungs, paths, count)
    explainer = _explainer(method, clf)
    rule = rule if rule is not None else AuditRule()
    lung_share = np.empty(count)
    border_share = np.empty(count)
    peak_in = np.empty(count, bool)
    peak = np.empty((count, 2))
    chosen = np.empty(count, np.int64)
    probabilities = np.empty((count, clf.num_classes), np.float32)
    kept: list[tuple[float, int, GalleryItem]] = []
    layer = ""
    bar = keras.utils.Progbar(count, unit_name="film") if progress else None
    for part in audit_batches(clf, items, lungs=source, explainer=explainer, targets=wanted,
                              batch_size=batch_size, lung_margin=lung_margin):
        rows = slice(part.start, part.start + len(part.targets))
        lung_share[rows] = part.measures.lung_share
        border_share[rows] = part.measures.border_share
        peak_in[rows] = part.measures.peak_in_lungs
        peak[rows] = part.measures.peak
        chosen[rows] = part.targets
        probabilities[rows] = part.probabilities
        layer = part.layer
        kept = merge_gallery(kept, part.gallery, lung_share)
        if bar is not None:
            bar.update(rows.stop)
    return AuditReport.from_measures(
        lung_share=lung_share, border_share=border_share, peak_in_lungs=peak_in, peak=peak,
        targets=chosen, probabilities=probabilities, class_names=tuple(clf.class_names),
        paths=None if paths is None else [str(p) for p in paths], groups=labels,
        method=explainer.name, layer=layer, lung_margin=float(lung_margin), rule=rule,
        gallery=[item for _, _, item in sorted(kept, key=lambda e: (e[0], e[1]))],
    )


def merge_gallery(kept: list[tuple[float, int, GalleryItem]], new: list[GalleryItem],
                  lung_share: np.ndarray, limit: int = GALLERY
                  ) -> list[tuple[float, int, GalleryItem]]:
    """Keep the ``limit`` films of lowest lung share among ``kept`` and ``new``."""
    entries = kept + [(float(lung_share[item.index]), item.index, item) for item in new]
    return heapq.nsmallest(limit, entries, key=lambda e: (e[0], e[1]))


def _groups(groups: Sequence[str] | str | None, paths: list[Path] | None, count: int
            ) -> list[str] | None:
    if groups is None:
        return None
    if isinstance(groups, str):
        if groups != "folder":
            raise InvalidInputError(
                f"groups: expected None, 'folder' or one label per film, got {groups!r}"
            )
        if paths is None:
            raise InvalidInputError("groups: 'folder' needs film paths, not arrays")
        return [p.parent.name or str(p.parent) for p in paths]
    if not isinstance(groups, (Sequence, np.ndarray)):
        raise InvalidInputError(
            f"groups: expected None, 'folder' or one label per film, got {describe(groups)}"
        )
    labels = [str(g) for g in list(groups)]
    if len(labels) != count:
        raise InvalidInputError(
            f"groups: expected one label per film ({count}), got {len(labels)}"
        )
    return labels
