"""``cxrexplain audit``: audit a saved classifier on folders of films and write the report.

Writes ``audit.csv`` (one row per film, appended as batches finish, so ``--resume`` after a
crash loses and repeats nothing: the table is :class:`cxrexplain._resumable.ResumableTable`,
as ``predictions.csv`` of ``cxrexplain explain``), then ``audit.json`` and a self-contained
``index.html``.

The swap test (``counterfactual``, :func:`cxrexplain.metrics.swap_test`) does not resume: each
film's donor is another film, so it runs once the table is complete, over all the films
(resumed ones included), batch by batch, and writes ``counterfactual.csv``. A run killed
during it loses only the swap test: ``--resume`` finds every row of ``audit.csv`` done and
runs the swap test again. ``audit.csv`` keeps its columns with or without the swap test, so
turning it on or off never makes ``--resume`` redo the audit.
The exit code says the verdict: 0 not flagged, 3 flagged (1 for an error, 2 for a usage
error), so a script or CI pipeline can gate a model on it.

With ``by`` and ``metadata`` (``--metadata FILE --by view,sex``) the report also has the lung
share per subgroup, the subgroup table (with labels; written to ``subgroups.csv``) and the
encoding probe (``encoding.csv``). Like the swap test, the probe does not resume: once the
table is complete its features are computed in one more pass over all the films.

Example:
    >>> from cxrexplain.cli.audit.to_folder import audit_to_folder
    >>> rep = audit_to_folder(clf, paths, "lungs.keras", "audit-out")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrexplain._files import atomic_write_text
from cxrexplain._resumable import ResumableTable
from cxrexplain.auditing.attributes import (
    DEFAULT_BANDS,
    film_attributes,
    parse_by,
    patient_column,
    records_labels,
)
from cxrexplain.auditing.features import collect_features
from cxrexplain.auditing.measure import DEFAULT_MARGIN
from cxrexplain.auditing.report import AuditReport, AuditRule, GalleryItem, film_rows
from cxrexplain.auditing.run import (
    GALLERY,
    _groups,
    audit_batches,
    feature_sets,
    merge_gallery,
    metadata_findings,
    swap_wanted,
)
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain import get_explainer
from cxrexplain.lungs.source import LungSource, lung_source
from cxrexplain.metrics.swap import check_labels, swap_test

__all__ = ["FLAGGED_EXIT_CODE", "audit_to_folder"]

FLAGGED_EXIT_CODE = 3
"""The exit code of ``cxrexplain audit`` for a flagged model."""


def audit_to_folder(
    classifier: Classifier,
    paths: Sequence[Path],
    lungs: Any,
    out_dir: str | os.PathLike[str],
    *,
    method: str = "gradcam",
    target: str | int | None = None,
    groups: str | None = None,
    batch_size: int = 32,
    resume: bool = False,
    lung_margin: float = DEFAULT_MARGIN,
    rule: AuditRule | None = None,
    gallery: int = 12,
    progress: bool = True,
    labels: Sequence[Any] | str | None = None,
    counterfactual: bool | None = None,
    seed: int = 0,
    by: str | Sequence[str] | None = None,
    metadata: Any = None,
    bands: Sequence[float] = DEFAULT_BANDS,
    encoding: bool | None = None,
) -> AuditReport:
    """Audit ``paths`` batch by batch, writing ``audit.csv`` as it goes, then the report.

    Args:
        classifier: The classifier.
        paths: The film files.
        lungs: A lungs ``.keras`` file or :class:`~cxrexplain.lungs.LungSegmenter`, or a
            folder of masks matched to the films by name.
        out_dir: Output folder (created).
        method: Explainer name.
        target: Class to explain (None: each film's predicted class).
        groups: None or ``"folder"``.
        batch_size: Films per batch.
        resume: Keep the films already in ``out_dir/audit.csv`` and audit the rest.
        lung_margin: The lungs' dilation.
        rule: The verdict's rule.
        gallery: Films in the report's gallery.
        progress: Show a progress bar.
        labels: None, each film's true class (index or name), or ``"folder"`` (each film's
            parent folder's name is its class).
        counterfactual: Run the swap test (None: when labels are given; see
            :func:`cxrexplain.audit`), written to ``counterfactual.csv``.
        seed: The seed of the swap test, the intervals and the probe.
        by: Metadata columns to report by (``"view,sex"``).
        metadata: The films' metadata: a records table (matched to the films by path) or
            a mapping of column name to one value per film. Its single labels are the
            films' labels when ``labels`` is None.
        bands: Edges that cut a numeric column (the age) into bands.
        encoding: Run the encoding probe (None: with ``by``; see :func:`cxrexplain.audit`).

    Returns:
        The :class:`~cxrexplain.auditing.AuditReport` of all the films.
    """
    if not paths:
        raise InvalidInputError("images: no films to audit")
    names = [str(p) for p in paths]
    labels_of = _folder_labels(paths) if labels == "folder" else labels
    if labels_of is None and metadata is not None:
        labels_of = records_labels(metadata, tuple(classifier.class_names), paths=names)
    attributes = film_attributes(metadata, parse_by(by), len(paths), paths=names, bands=bands)
    extractors = feature_sets(classifier, encoding, bool(attributes), seed)
    out = Path(os.fspath(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    labels = _groups(groups, list(paths), len(paths))
    truth = None if labels_of is None else check_labels(classifier, labels_of, len(paths))
    swap = swap_wanted(counterfactual, truth, len(paths))
    root = Path(os.path.commonpath([str(p.parent.absolute()) for p in paths]))
    columns = list(film_rows(["x"], None, *_empty_row(classifier.num_classes),
                             class_names=classifier.class_names)[0])
    table = ResumableTable(out / "audit.csv", columns)
    done = table.start(names, resume=resume)
    todo = [p for p in paths if str(p) not in done]
    wanted = None if target is None else classifier.target_indices(target, len(todo))
    explainer = get_explainer(method)(classifier)
    source = _source(lungs, todo, root)
    bar = keras.utils.Progbar(len(paths), unit_name="film") if progress else None
    finished = len(paths) - len(todo)
    if bar is not None:
        bar.update(finished)
    layer = ""
    position = {name: i for i, name in enumerate(names)}
    with table.appending() as rows:
        for part in audit_batches(classifier, list(todo), lungs=source, explainer=explainer,
                                  targets=wanted, batch_size=batch_size,
                                  lung_margin=lung_margin, gallery=0):
            chunk = todo[part.start : part.start + len(part.targets)]
            m = part.measures
            rows.write(film_rows([str(p) for p in chunk],
                                 None if labels is None else [labels[position[str(p)]]
                                                              for p in chunk],
                                 m.lung_share, m.border_share, m.peak_in_lungs, m.peak,
                                 part.targets, part.probabilities, classifier.class_names))
            layer = part.layer
            finished += len(chunk)
            if bar is not None:
                bar.update(finished)
    test = None
    if swap:
        test = swap_test(classifier, list(paths), lungs=_source(lungs, paths, root),
                         labels=truth, seed=seed, margin=lung_margin, batch_size=batch_size)
    report = AuditReport.from_rows(table.rows(names), class_names=classifier.class_names,
                                   method=explainer.name, layer=layer or _layer(explainer),
                                   lung_margin=float(lung_margin), rule=rule or AuditRule(),
                                   counterfactual=test, attributes=attributes or None)
    features = ([] if extractors is None else
                [collect_features(extractors, classifier, list(paths), batch_size)])
    subgroups, probe = metadata_findings(
        attributes, truth, report.probabilities, tuple(classifier.class_names), features,
        patient_column(metadata, len(paths), names) if attributes else None, seed)
    report = replace(report, subgroups=subgroups, encoding=probe)
    report = _with_gallery(report, classifier, paths, lungs, root, explainer, gallery,
                           lung_margin)
    report.to_csv(table.path)  # the finished table: the report's rows, in input order
    if report.counterfactual is not None:
        report.to_counterfactual_csv(out / "counterfactual.csv")
    if report.subgroups is not None:
        report.to_subgroups_csv(out / "subgroups.csv")
    if report.encoding is not None:
        report.to_encoding_csv(out / "encoding.csv")
    atomic_write_text(out / "audit.json", report.to_json())
    report.to_html(out, k=gallery)
    return report


def _folder_labels(paths: Sequence[Path]) -> list[str]:
    """Each film's parent folder's name, its class (``--labels folder``)."""
    return [p.parent.name for p in paths]


def _empty_row(classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                      np.ndarray, np.ndarray]:
    nan = np.full(1, np.nan)
    return (nan, nan, np.zeros(1, bool), np.zeros((1, 2)), np.zeros(1, np.int64),
            np.zeros((1, classes), np.float32))


def _layer(explainer: Any) -> str:
    try:
        return str(explainer.layer)
    except Exception:  # the layer resolves on the first pass; none ran (all resumed)
        return ""


def _source(lungs: Any, films: Sequence[Path], root: Path) -> LungSource:
    """The lungs of ``films``; a folder of masks matched from the root of all the films."""
    return lung_source(lungs, list(films), len(films), image_root=root)


def _with_gallery(report: AuditReport, classifier: Classifier, paths: Sequence[Path],
                  lungs: Any, root: Path, explainer: Any, k: int, margin: float
                  ) -> AuditReport:
    """The report with the gallery of its k worst films (run again on those k only)."""
    worst = [int(i) for i in report.worst(max(1, min(k, GALLERY)))
             if np.isfinite(report.lung_share[i])]
    if not worst:
        return report
    films = [paths[i] for i in worst]
    kept: list[tuple[float, int, GalleryItem]] = []
    targets = report.targets[worst]
    for part in audit_batches(classifier, films, lungs=_source(lungs, films, root),
                              explainer=explainer, targets=targets, batch_size=len(films),
                              lung_margin=margin, gallery=len(films)):
        items = [GalleryItem(worst[g.index], g.image, g.heatmap, g.lungs) for g in part.gallery]
        kept = merge_gallery(kept, items, report.lung_share, limit=len(films))
    gallery = [item for _, _, item in sorted(kept, key=lambda e: (e[0], e[1]))]
    return replace(report, gallery=gallery)
