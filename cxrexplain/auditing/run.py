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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrexplain._checks import check_int, describe
from cxrexplain.auditing.attributes import (
    DEFAULT_BANDS,
    film_attributes,
    is_records,
    parse_by,
    patient_column,
    records_labels,
)
from cxrexplain.auditing.features import FeatureSets
from cxrexplain.auditing.gallery import GalleryItem
from cxrexplain.auditing.probe import EncodingRow, encoding_probe
from cxrexplain.auditing.report import AuditReport, AuditRule
from cxrexplain.auditing.subgroups import SubgroupRow, subgroup_table
from cxrexplain.classifier import Classifier
from cxrexplain.errors import CxrExplainError, InvalidInputError, ModelStructureError
from cxrexplain.explain import Explainer, get_explainer
from cxrexplain.io import find_images, load_image
from cxrexplain.lungs.geometry import DEFAULT_MARGIN
from cxrexplain.lungs.shares import Measures, measure
from cxrexplain.lungs.source import LungSource, lung_source
from cxrexplain.metrics.swap import check_labels, swap_test

__all__ = ["Batch", "LungSource", "audit", "audit_batches", "feature_sets", "lung_source",
           "metadata_findings", "swap_wanted"]

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
    features: dict[str, np.ndarray] | None = field(default=None, repr=False)


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
    features: FeatureSets | None = None,
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
        features: The encoding probe's extractors, run on each prepared batch (else None).

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
        yield Batch(offset + start, measures, exp.targets, exp.probabilities, kept, exp.layer,
                    None if features is None else features.compute(batch))


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
    labels: Any = None,
    counterfactual: bool | None = None,
    seed: int = 0,
    by: str | Sequence[str] | None = None,
    metadata: Any = None,
    bands: Sequence[float] = DEFAULT_BANDS,
    encoding: bool | None = None,
) -> AuditReport:
    """Audit where a classifier looks across a data set, film by film, against the lungs.

    For each film: the share of the explanation's mass inside the lungs (dilated by
    ``lung_margin``), in the border band (1/8 of each side), and whether its peak lies in the
    lungs; then a summary per class and per group and a verdict (:class:`AuditRule`): a model
    whose evidence for a finding lies mostly outside the lungs is flagged.

    The counterfactual section (``counterfactual``) then runs the swap test
    (:func:`cxrexplain.metrics.swap_test`) on the same films with the same lungs: each film
    keeps its lungs and takes its surroundings from a donor (of another class, with
    ``labels``), and the decisions are compared. A model whose decisions flip, or whose
    accuracy drops, reads the surroundings and is flagged too (:meth:`AuditRule.swap_verdict`).
    It runs after the audit's batches, over all the films (donors are other films), batch by
    batch: the films are read again with their donors, and the classifier runs on the
    originals and on the composites (a segmenter segments again).

    With ``by`` (metadata columns: ``["view", "sex", "age"]``) the audit also reports what
    the model encodes besides the disease: the summary gets the lung share per value of each
    column (where the evidence lies by view, by sex); with labels, :attr:`AuditReport.
    subgroups` holds accuracy, macro AUC and per-class sensitivity per value with intervals
    and the gap to the whole set (:func:`~cxrexplain.auditing.subgroup_table`); and
    :attr:`AuditReport.encoding` holds the encoding probe
    (:func:`~cxrexplain.auditing.encoding_probe`): each column read by a cross-validated
    linear probe (grouped by the ``patient`` column when there is one) from the model's
    penultimate features, an untrained copy's and the films' pixel statistics, computed
    from the same batches. A numeric column (the age) is cut into ``bands``.

    Args:
        classifier: A :class:`~cxrexplain.Classifier` or a Keras model.
        images: Film files, folders, arrays, or a list of them (anything
            :func:`cxrexplain.load_images` takes); folders are searched for images. Or a
            records table (:class:`cxrexplain.data.Records`): its films, its metadata for
            ``by`` (unless ``metadata`` is given) and, when each film has exactly one of
            the classifier's classes, its labels (unless ``labels`` is given).
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
        labels: None, or each film's true class (index or class name): the swap test draws
            donors of another class and reports accuracies.
        counterfactual: Run the swap test: None (the default) runs it when ``labels`` are
            given (with films of at least two classes), True always (without labels, donors
            are any other film and only the flip rate is reported), False never.
        seed: Seed of the swap test's donor draw, of the bootstrap intervals, of the
            probe's folds and of the untrained copy's weights.
        by: Metadata columns to report by: ``["view", "sex"]`` or ``"view,sex"``.
        metadata: The films' metadata for ``by``: a records table (matched to the films by
            path) or a mapping of column name to one value per film, in the films' order.
        bands: Edges that cut a numeric column into bands (default ``<40``, ``40-60``,
            ``60-80``, ``>=80`` years).
        encoding: Run the encoding probe: None (the default) runs it with ``by`` when the
            model has a Dense head, True always (an error without one), False never.

    Returns:
        The :class:`~cxrexplain.auditing.AuditReport`.

    Raises:
        InvalidInputError: Mismatched mask counts or sizes, empty masks, targets out of
            range, bad groups or labels, an unknown method, ``counterfactual=True`` with
            fewer than two films or labels of one class, ``by`` without metadata or with a
            column the metadata lacks.
        ModelStructureError: ``encoding=True`` for a model without a Dense head.
        ImageLoadError: A film or mask file cannot be read.

    Example:
        >>> rep = cx.audit(clf, data.images, lungs=data.lung_masks, targets="PNEUMONIA")
        >>> sorted(set(rep.targets.tolist()))
        [1]
    """
    clf = classifier if isinstance(classifier, Classifier) else Classifier(classifier)
    check_int(batch_size, "batch_size")
    if is_records(images):
        metadata = images if metadata is None else metadata
        labels = records_labels(images, tuple(clf.class_names)) if labels is None else labels
        images = [str(p) for p in images.paths]
    items, paths = film_items(images)
    count = len(items)
    wanted = None if targets is None else clf.target_indices(targets, count)
    group_labels = _groups(groups, paths, count)
    truth = None if labels is None else check_labels(clf, labels, count)
    swap = swap_wanted(counterfactual, truth, count)
    seed = check_int(seed, "seed", minimum=0)
    names = None if paths is None else [str(p) for p in paths]
    attributes = film_attributes(metadata, parse_by(by), count, paths=names, bands=bands)
    extractors = feature_sets(clf, encoding, bool(attributes), seed)
    collected: list[dict[str, np.ndarray]] = []
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
                              batch_size=batch_size, lung_margin=lung_margin,
                              features=extractors):
        rows = slice(part.start, part.start + len(part.targets))
        lung_share[rows] = part.measures.lung_share
        border_share[rows] = part.measures.border_share
        peak_in[rows] = part.measures.peak_in_lungs
        peak[rows] = part.measures.peak
        chosen[rows] = part.targets
        probabilities[rows] = part.probabilities
        layer = part.layer
        kept = merge_gallery(kept, part.gallery, lung_share)
        if part.features is not None:
            collected.append(part.features)
        if bar is not None:
            bar.update(rows.stop)
    test = None
    if swap:
        test = swap_test(clf, items, lungs=source, labels=truth, seed=seed,
                         margin=lung_margin, batch_size=batch_size)
    subgroups, probe = metadata_findings(
        attributes, truth, probabilities, tuple(clf.class_names), collected,
        patient_column(metadata, count, names) if attributes else None, seed)
    return AuditReport.from_measures(
        lung_share=lung_share, border_share=border_share, peak_in_lungs=peak_in, peak=peak,
        targets=chosen, probabilities=probabilities, class_names=tuple(clf.class_names),
        paths=None if paths is None else [str(p) for p in paths], groups=group_labels,
        method=explainer.name, layer=layer, lung_margin=float(lung_margin), rule=rule,
        gallery=[item for _, _, item in sorted(kept, key=lambda e: (e[0], e[1]))],
        counterfactual=test, attributes=attributes or None, subgroups=subgroups,
        encoding=probe,
    )


def feature_sets(classifier: Classifier, encoding: bool | None, wanted: bool, seed: int
                 ) -> FeatureSets | None:
    """The encoding probe's extractors, or None when the probe does not run.

    Raises:
        InvalidInputError: ``encoding`` not True, False or None; True without ``by``.
        ModelStructureError: ``encoding=True`` for a model without a Dense head.
    """
    if encoding is not None and not isinstance(encoding, (bool, np.bool_)):
        raise InvalidInputError(
            f"encoding: expected True, False or None, got {describe(encoding)}")
    if encoding and not wanted:
        raise InvalidInputError(
            "encoding: the probe reads the by= columns; give by= and the films' metadata")
    if encoding is False or not wanted:
        return None
    try:
        return FeatureSets.of(classifier, seed)
    except ModelStructureError:
        if encoding:
            raise
        return None


def metadata_findings(
    attributes: dict[str, list[str | None]],
    labels: np.ndarray | None,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    features: list[dict[str, np.ndarray]],
    patients: list[str | None] | None,
    seed: int,
) -> tuple[list[SubgroupRow] | None, list[EncodingRow] | None]:
    """The subgroup table (with labels) and the encoding probe (with features) of ``by``."""
    if not attributes:
        return None, None
    subgroups = None
    if labels is not None:
        subgroups = subgroup_table(labels, probabilities, attributes,
                                   class_names=class_names, seed=seed)
    probe = None
    if features:
        joined = {name: np.concatenate([part[name] for part in features])
                  for name in features[0]}
        probe = encoding_probe(joined, attributes, patients=patients, seed=seed)
    return subgroups, probe


def swap_wanted(counterfactual: bool | None, labels: np.ndarray | None, count: int) -> bool:
    """Whether the audit runs the swap test (see :func:`audit`'s ``counterfactual``).

    Checked before the audit runs, so that a swap test that cannot run fails at once.

    Raises:
        InvalidInputError: Not True, False or None; True with fewer than two films or with
            labels of one class.

    Example:
        >>> [swap_wanted(None, np.array([0, 1]), 2), swap_wanted(None, None, 2),
        ...  swap_wanted(None, np.array([1, 1]), 2), swap_wanted(True, None, 2)]
        [True, False, False, True]
    """
    if counterfactual is None:
        return labels is not None and len(np.unique(labels)) > 1
    if not isinstance(counterfactual, (bool, np.bool_)):
        raise InvalidInputError(
            f"counterfactual: expected True, False or None, got {describe(counterfactual)}"
        )
    if counterfactual and count < 2:
        raise InvalidInputError(
            f"counterfactual: the swap test needs at least two films, got {count}")
    if counterfactual and labels is not None and len(np.unique(labels)) < 2:
        raise InvalidInputError(
            "counterfactual: every film has the same label; the swap test draws each film's "
            "donor from another class (give films of two classes, or no labels)"
        )
    return bool(counterfactual)


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
