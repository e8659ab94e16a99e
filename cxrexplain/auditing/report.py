"""The :class:`AuditReport`: per-film measures, the per-class/per-group summary and the verdict.

The verdict (:class:`AuditRule`): the model is **flagged** when, for some judged class with at
least ``min_images`` films explained for it, the mean lung share is below ``min_lung_share``
(most of the evidence lies outside the lungs) or more than ``max_peaks_outside`` of its maps
peak outside the lungs. The negative class ("NORMAL", "No Finding", ...) is reported but not
judged by default: the evidence for "nothing is wrong" is the absence of findings, which has no
place of its own, so where its map falls says little about a shortcut.

With the counterfactual section (:attr:`AuditReport.counterfactual`, the swap test of
:func:`cxrexplain.metrics.swap_test`), the model is also flagged when **the decision reads the
surroundings**: with at least ``min_images`` films swapped, decisions flip on more than
``max_flip_rate`` of them, or accuracy drops by more than ``max_accuracy_drop`` (with labels).
The two checks look at different things: the lung share at where the explanation points, the
swap test at what the decision does when only the outside of the lungs changes (a cause, not
a picture of one). Either failing flags the model; :attr:`AuditReport.reason` lists the
classes that broke the lung-share rule, then the swap test's line whatever it found (a map
that points outside the lungs while the decisions do not move says the map misleads).

Example:
    >>> import numpy as np
    >>> from cxrexplain.auditing.report import AuditReport
    >>> rep = AuditReport.from_measures(
    ...     lung_share=np.array([0.1, 0.2, 0.9]), border_share=np.array([0.8, 0.7, 0.0]),
    ...     peak_in_lungs=np.array([False, False, True]), peak=np.full((3, 2), 0.5),
    ...     targets=np.array([1, 1, 0]), probabilities=np.array([[.2, .8], [.1, .9], [.7, .3]]),
    ...     class_names=("NORMAL", "PNEUMONIA"), rule=AuditRule(min_images=2))
    >>> rep.flagged, rep.reason  # doctest: +ELLIPSIS
    (True, 'PNEUMONIA (2 films): mean lung share 0.15 < 0.5; 100% of peaks outside the lungs > 50%')
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cxrexplain._checks import check_fraction, check_int
from cxrexplain._files import atomic_write_text
from cxrexplain._tables import json_number
from cxrexplain._version import __version__
from cxrexplain.auditing.attributes import sorted_values
from cxrexplain.auditing.gallery import GalleryItem
from cxrexplain.auditing.html import write_html
from cxrexplain.auditing.probe import EncodingRow
from cxrexplain.auditing.subgroups import SubgroupRow
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics.bootstrap import bootstrap_ci
from cxrexplain.metrics.swap import SwapTest

__all__ = ["NEGATIVE_NAMES", "AuditReport", "AuditRule", "GalleryItem", "film_rows"]

NEGATIVE_NAMES = ("normal", "no finding", "nofinding", "negative", "healthy", "no disease",
                  "none")
"""Class names (case, ``_`` and ``-`` ignored) taken as the negative class by ``"auto"``."""

SUMMARY_COLUMNS = ("by", "name", "count", "lung_share_mean", "lung_share_low",
                   "lung_share_high", "lung_share_q1", "lung_share_median", "lung_share_q3",
                   "border_share_mean", "border_share_low", "border_share_high",
                   "border_share_q1", "border_share_median", "border_share_q3",
                   "peaks_outside_lungs", "peaks_outside_lungs_low", "peaks_outside_lungs_high",
                   "probability_mean")
"""The summary's keys; ``*_low`` / ``*_high`` bound the 95% percentile-bootstrap interval of
the mean over the films (:func:`cxrexplain.metrics.bootstrap_ci`, 1000 resamples, seed 0)."""


@dataclass(frozen=True)
class AuditRule:
    """When an audit flags a model (see the module docs).

    Attributes:
        min_lung_share: Flag a class whose mean lung share is below this.
        max_peaks_outside: Flag a class with more than this share of peaks outside the lungs.
        min_images: Judge only classes with at least this many films explained for them.
        negative: ``"auto"`` (classes named like :data:`NEGATIVE_NAMES` are not judged),
            ``None`` (judge every class), or the names of the classes not judged.
        max_flip_rate: The swap test: flag when decisions flip on more than this share of
            the films.
        max_accuracy_drop: The swap test: flag when accuracy drops by more than this (0.03:
            three percentage points).

    Example:
        >>> AuditRule().judged(("NORMAL", "PNEUMONIA"))
        ['PNEUMONIA']
        >>> AuditRule(negative=None).judged(("NORMAL", "PNEUMONIA"))
        ['NORMAL', 'PNEUMONIA']
    """

    min_lung_share: float = 0.5
    max_peaks_outside: float = 0.5
    min_images: int = 5
    negative: Literal["auto"] | Sequence[str] | None = "auto"
    max_flip_rate: float = 0.05
    max_accuracy_drop: float = 0.03

    def __post_init__(self) -> None:
        check_fraction(self.min_lung_share, "min_lung_share")
        check_fraction(self.max_peaks_outside, "max_peaks_outside")
        check_fraction(self.max_flip_rate, "max_flip_rate")
        check_fraction(self.max_accuracy_drop, "max_accuracy_drop")
        check_int(self.min_images, "min_images")
        if not (self.negative is None or self.negative == "auto" or (
                isinstance(self.negative, Sequence) and not isinstance(self.negative, str)
                and all(isinstance(n, str) for n in self.negative))):
            raise InvalidInputError(
                f"negative: expected 'auto', None or a list of class names, got "
                f"{self.negative!r}"
            )

    def judged(self, class_names: Sequence[str]) -> list[str]:
        """The classes this rule judges."""
        if self.negative is None:
            return list(class_names)
        if self.negative == "auto":
            return [c for c in class_names if _plain(c) not in {_plain(n) for n in
                                                                NEGATIVE_NAMES}]
        skipped = set(self.negative)
        return [c for c in class_names if c not in skipped]

    def swap_verdict(self, test: SwapTest) -> tuple[bool | None, str]:
        """Whether the swap test says the decision reads the surroundings, and why.

        Returns:
            ``(True, why)`` when decisions flip on more than :attr:`max_flip_rate` of the
            films or accuracy drops by more than :attr:`max_accuracy_drop`; ``(False,
            why)`` otherwise; ``(None, why)`` with fewer than :attr:`min_images` films.

        Example:
            >>> test = cx.metrics.swap_test(clf, data.images, lungs=data.lung_masks,
            ...                             labels=data.labels)
            >>> AuditRule().swap_verdict(test)[1]  # doctest: +ELLIPSIS
            'swap test (8 films): decisions flip on ...'
            >>> AuditRule(min_images=10).swap_verdict(test)
            (None, 'swap test (8 films): not judged (fewer than 10 films)')
        """
        head = f"swap test ({test.n} films)"
        if test.n < self.min_images:
            return None, f"{head}: not judged (fewer than {self.min_images} films)"
        flips = test.flip_rate.mean
        drop = test.accuracy_drop
        broken = []
        if flips > self.max_flip_rate:
            broken.append(f"decisions flip on {flips:.0%} of films > {self.max_flip_rate:.0%}")
        if drop is not None and drop > self.max_accuracy_drop:
            broken.append(f"accuracy drops {100 * drop:.0f} points > "
                          f"{100 * self.max_accuracy_drop:g}")
        if broken:
            return True, f"{head}: {'; '.join(broken)}: the decision reads the surroundings"
        kept = [f"decisions flip on {flips:.0%} of films"]
        if drop is not None:
            kept.append(f"accuracy drops {100 * drop:.0f} points")
        return False, (f"{head}: {', '.join(kept)}: the decision does not read the "
                       "surroundings")

    def as_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready values."""
        negative = self.negative if self.negative in (None, "auto") else list(
            self.negative or ())
        return {"min_lung_share": self.min_lung_share,
                "max_peaks_outside": self.max_peaks_outside, "min_images": self.min_images,
                "negative": negative, "max_flip_rate": self.max_flip_rate,
                "max_accuracy_drop": self.max_accuracy_drop}


@dataclass(frozen=True)
class AuditReport:
    """Where a classifier's evidence lies, film by film, and the data-set verdict.

    Attributes:
        lung_share: ``(N,)`` share of each map's mass inside the (dilated) lungs; NaN for an
            all-zero map.
        border_share: ``(N,)`` share in the outer band (1/8 of each side).
        peak_in_lungs: ``(N,)`` bool, whether each map's peak lies in the (dilated) lungs.
        peak: ``(N, 2)`` the peak's (row, column) as shares of the height and width.
        targets: ``(N,)`` the class explained for each film.
        probabilities: ``(N, K)`` the classifier's probabilities.
        class_names: The classifier's class names.
        paths: The film paths, when paths were given, else None.
        groups: The group of each film (``groups=``), else None.
        method: The explainer's name.
        layer: The explained layer.
        lung_margin: The dilation of the lung masks (a share of the side).
        rule: The :class:`AuditRule` of the verdict.
        summary: One dict per class and per group (keys: :data:`SUMMARY_COLUMNS`).
        flagged: The verdict.
        reason: Why (the classes that broke the rule), or why not.
        gallery: The worst films kept for :meth:`to_html` (lowest lung share first).
        counterfactual: The swap test of the same films with the same lungs
            (:func:`cxrexplain.metrics.swap_test`), or None when it did not run.
        attributes: The ``by=`` metadata columns, one value per film (numbers cut into
            bands; None where unknown), or None: the summary has rows per value.
        subgroups: Accuracy, macro AUC and sensitivity per value of each ``by`` column,
            with intervals and gaps to the whole set (:func:`~cxrexplain.auditing.
            subgroup_table`; its first row is the whole set), or None (no labels or no
            ``by``).
        encoding: The encoding probe (:func:`~cxrexplain.auditing.encoding_probe`): each
            ``by`` column read from the model's penultimate features, an untrained copy's
            and the pixel statistics, or None when it did not run.
    """

    lung_share: np.ndarray
    border_share: np.ndarray
    peak_in_lungs: np.ndarray
    peak: np.ndarray
    targets: np.ndarray
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    paths: list[str] | None = None
    groups: list[str] | None = None
    method: str = "gradcam"
    layer: str = ""
    lung_margin: float = 0.03
    rule: AuditRule = field(default_factory=AuditRule)
    summary: list[dict[str, Any]] = field(default_factory=list)
    flagged: bool = False
    reason: str = ""
    gallery: list[GalleryItem] = field(default_factory=list, repr=False)
    counterfactual: SwapTest | None = field(default=None, repr=False)
    attributes: dict[str, list[str | None]] | None = field(default=None, repr=False)
    subgroups: list[SubgroupRow] | None = field(default=None, repr=False)
    encoding: list[EncodingRow] | None = field(default=None, repr=False)

    @classmethod
    def from_measures(cls, **values: Any) -> AuditReport:
        """Build a report (summary and verdict included) from the per-film arrays.

        Args:
            **values: The fields up to ``rule``, ``gallery``, ``counterfactual``,
                ``attributes``, ``subgroups`` and ``encoding``; ``summary``, ``flagged`` and
                ``reason`` are computed.
        """
        rule = values.get("rule") or AuditRule()
        values["rule"] = rule
        draft = cls(**values)
        summary = draft._summarise()
        flagged, reason = draft._verdict(summary)
        return cls(**{**values, "summary": summary, "flagged": flagged, "reason": reason})

    def __len__(self) -> int:
        return len(self.lung_share)

    @property
    def reads_surroundings(self) -> bool | None:
        """The swap test's verdict (:meth:`AuditRule.swap_verdict`); None without it.

        Example:
            >>> rep.reads_surroundings is None  # an audit without labels
            True
        """
        if self.counterfactual is None:
            return None
        return self.rule.swap_verdict(self.counterfactual)[0]

    # ------------------------------------------------------------------ views
    def worst(self, k: int = 12) -> np.ndarray:
        """Indices of the ``k`` films with the lowest lung share (all-zero maps last).

        Example:
            >>> rep.worst(1).tolist()
            [0]
        """
        check_int(k, "k")
        key = np.where(np.isnan(self.lung_share), np.inf, self.lung_share)
        order: np.ndarray = np.argsort(key, kind="stable")[:k]
        return order

    def rows(self) -> list[dict[str, Any]]:
        """One dict per film: what :meth:`to_csv` writes."""
        return film_rows(self._names(), self.groups, self.lung_share, self.border_share,
                         self.peak_in_lungs, self.peak, self.targets, self.probabilities,
                         self.class_names)

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, str]], *, class_names: Sequence[str],
                  paths: bool = True, **values: Any) -> AuditReport:
        """Rebuild a report from rows read back from :meth:`to_csv` (empty cells are NaN).

        Args:
            rows: The CSV rows, as strings.
            class_names: The classifier's class names.
            paths: Whether the ``image`` column holds paths (else positions).
            **values: ``method``, ``layer``, ``lung_margin``, ``rule``, ``gallery``,
                ``counterfactual``, ``attributes``, ``subgroups``, ``encoding``.
        """
        def number(text: str) -> float:
            return float(text) if text not in ("", "None", "nan") else float("nan")

        names = tuple(class_names)
        index = {name: i for i, name in enumerate(names)}
        groups = [r.get("group", "") for r in rows]
        return cls.from_measures(
            lung_share=np.array([number(r["lung_share"]) for r in rows]),
            border_share=np.array([number(r["border_share"]) for r in rows]),
            peak_in_lungs=np.array([r["peak_in_lungs"] == "True" for r in rows], bool),
            peak=np.array([[number(r["peak_row"]), number(r["peak_col"])] for r in rows]
                          ).reshape(len(rows), 2),
            targets=np.array([index[r["target"]] for r in rows], np.int64),
            probabilities=np.array([[number(r[f"p_{n}"]) for n in names] for r in rows],
                                   np.float32).reshape(len(rows), len(names)),
            class_names=names, paths=[r["image"] for r in rows] if paths else None,
            groups=groups if any(groups) else None, **values)

    def to_json(self) -> str:
        """The verdict, rule, summary and per-film rows as a JSON string (NaN as null).

        The swap test, when it ran, is under ``"counterfactual"`` (its verdict under
        ``"reads_surroundings"``; :meth:`SwapTest.from_dict` reads the rest back), else that
        key is null. ``"attributes"`` holds the ``by`` columns' value per film,
        ``"subgroups"`` the rows of :meth:`SubgroupRow.as_dict` and ``"encoding"`` those of
        :meth:`EncodingRow.as_dict` (null when they did not run).

        Example:
            >>> json.loads(rep.to_json())["flagged"]
            True
        """
        document = {
            "cxrexplain_version": __version__, "flagged": self.flagged, "reason": self.reason,
            "method": self.method, "layer": self.layer, "lung_margin": self.lung_margin,
            "border_fraction": 1 / 8, "rule": self.rule.as_dict(),
            "class_names": list(self.class_names),
            "summary": [{k: json_number(v) if isinstance(v, float) else v
                         for k, v in row.items()} for row in self.summary],
            "films": self.rows(),
            "counterfactual": None if self.counterfactual is None else {
                "reads_surroundings": self.reads_surroundings,
                **self.counterfactual.as_dict(self._names())},
            "attributes": self.attributes,
            "subgroups": None if self.subgroups is None else [
                row.as_dict() for row in self.subgroups],
            "encoding": None if self.encoding is None else [
                row.as_dict() for row in self.encoding],
        }
        return json.dumps(document, indent=1)

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one row per film (written atomically). Empty cells for NaN.

        Example:
            >>> rep.to_csv("audit.csv").read_text().splitlines()[0]  # doctest: +ELLIPSIS
            'image,group,target,probability,lung_share,...'
        """
        rows = self.rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["image"],
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        return atomic_write_text(path, buffer.getvalue())

    def to_subgroups_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the subgroup table, one row per column and value (atomically).

        Columns: :data:`~cxrexplain.auditing.subgroups.SUBGROUP_COLUMNS`, then each class's
        sensitivity and its gap, each with ``_low`` / ``_high``; empty cells for NaN.

        Raises:
            InvalidInputError: The audit ran without subgroups (give ``by=`` and labels).

        Example:
            >>> rep.to_subgroups_csv("subgroups.csv")  # doctest: +SKIP
            PosixPath('subgroups.csv')
        """
        if self.subgroups is None:
            raise InvalidInputError(
                "subgroups: this audit has no subgroup table (give by= and the films' labels)")
        return _write_rows(path, [row.as_dict() for row in self.subgroups])

    def to_encoding_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the encoding probe, one row per attribute and feature set (atomically).

        Columns: :data:`~cxrexplain.auditing.probe.ENCODING_COLUMNS`.

        Raises:
            InvalidInputError: The audit ran without the probe.

        Example:
            >>> rep.to_encoding_csv("encoding.csv")  # doctest: +SKIP
            PosixPath('encoding.csv')
        """
        if self.encoding is None:
            raise InvalidInputError(
                "encoding: this audit ran without the encoding probe (give by=)")
        return _write_rows(path, [row.as_dict() for row in self.encoding])

    def to_html(self, folder: str | os.PathLike[str], *, k: int = 12) -> Path:
        """Write a self-contained ``index.html``: verdict, table, histograms, the k worst films.

        Args:
            folder: Output folder (created).
            k: Films in the gallery (at most those kept when the audit ran).

        Returns:
            The path of ``index.html``.

        Example:
            >>> rep.to_html("audit-report")  # doctest: +SKIP
            PosixPath('audit-report/index.html')
        """
        return write_html(self, Path(os.fspath(folder)), k=check_int(k, "k"))

    def to_counterfactual_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the swap test's rows, one per film (:meth:`SwapTest.rows`), atomically.

        The per-film table of :meth:`to_csv` stays as it is (it is the table ``cxrexplain
        audit`` resumes), so the swap test has its own file.

        Raises:
            InvalidInputError: The audit ran without the swap test.

        Example:
            >>> rep.to_counterfactual_csv("counterfactual.csv")  # doctest: +SKIP
            PosixPath('counterfactual.csv')
        """
        if self.counterfactual is None:
            raise InvalidInputError(
                "counterfactual: this audit ran without the swap test (counterfactual=True, "
                "or give labels)"
            )
        return self.counterfactual.to_csv(path, self._names())

    # ------------------------------------------------------------------ parts
    def _names(self) -> list[str]:
        return self.paths if self.paths is not None else [str(i) for i in range(len(self))]

    def _summarise(self) -> list[dict[str, Any]]:
        rows = []
        for c, name in enumerate(self.class_names):
            rows.append(self._summary_row("class", name, self.targets == c))
        if self.groups is not None:
            labels = np.asarray(self.groups, dtype=object)
            for group in sorted(set(self.groups)):
                rows.append(self._summary_row("group", group, labels == group))
        for column, values in (self.attributes or {}).items():
            known = np.array([v is not None for v in values], bool)
            labels = np.array(["" if v is None else str(v) for v in values], dtype=object)
            for value in sorted_values(values):
                rows.append(self._summary_row(column, value, known & (labels == value)))
        return rows

    def _summary_row(self, by: str, name: str, selected: np.ndarray) -> dict[str, Any]:
        lung = self.lung_share[selected]
        border = self.border_share[selected]
        has_mass = ~np.isnan(lung)
        peaks = self.peak_in_lungs[selected][has_mass]
        target_probability = self.probabilities[np.arange(len(self)), self.targets][selected]
        row: dict[str, Any] = {"by": by, "name": name, "count": int(selected.sum())}
        for label, values in (("lung_share", lung), ("border_share", border)):
            finite = values[~np.isnan(values)]
            if len(finite):
                q1, median, q3 = np.percentile(finite, [25, 50, 75])
                _, low, high = bootstrap_ci(finite)
                row.update({f"{label}_mean": float(finite.mean()), f"{label}_low": low,
                            f"{label}_high": high, f"{label}_q1": float(q1),
                            f"{label}_median": float(median), f"{label}_q3": float(q3)})
            else:
                row.update({f"{label}_{s}": float("nan")
                            for s in ("mean", "low", "high", "q1", "median", "q3")})
        if len(peaks):
            outside = bootstrap_ci(~peaks)
            row.update(peaks_outside_lungs=outside.mean, peaks_outside_lungs_low=outside.low,
                       peaks_outside_lungs_high=outside.high)
        else:
            row.update({key: float("nan") for key in (
                "peaks_outside_lungs", "peaks_outside_lungs_low", "peaks_outside_lungs_high")})
        row["probability_mean"] = (float(target_probability.mean()) if len(target_probability)
                                   else float("nan"))
        return row

    def _verdict(self, summary: list[dict[str, Any]]) -> tuple[bool, str]:
        rule = self.rule
        judged = rule.judged(self.class_names)
        problems = []
        checked = []
        for row in summary:
            if row["by"] != "class" or row["name"] not in judged:
                continue
            if row["count"] < rule.min_images or np.isnan(row["lung_share_mean"]):
                continue
            checked.append(row)
            broken = []
            if row["lung_share_mean"] < rule.min_lung_share:
                broken.append(f"mean lung share {row['lung_share_mean']:.2f} < "
                              f"{rule.min_lung_share:g}")
            if row["peaks_outside_lungs"] > rule.max_peaks_outside:
                broken.append(f"{row['peaks_outside_lungs']:.0%} of peaks outside the lungs > "
                              f"{rule.max_peaks_outside:.0%}")
            if broken:
                problems.append(f"{row['name']} ({row['count']} films): " + "; ".join(broken))
        swap: tuple[bool | None, str] | None = None
        if self.counterfactual is not None:
            swap = rule.swap_verdict(self.counterfactual)
            if swap[0]:
                problems.append(swap[1])
        if problems:
            if swap is not None and not swap[0]:  # the explanation points outside; the
                problems.append(swap[1])          # decision may still not follow it
            return True, " | ".join(problems)
        if not checked:
            reason = (f"not judged: no class of {', '.join(judged) or 'none'} has "
                      f"{rule.min_images} or more films explained for it")
        else:
            listed = ", ".join(f"{r['name']} {r['lung_share_mean']:.2f}" for r in checked)
            reason = (f"most evidence lies inside the lungs for every judged class (mean "
                      f"lung share: {listed})")
        return False, reason if swap is None else f"{reason} | {swap[1]}"


def film_rows(names: Sequence[str], groups: Sequence[str] | None, lung_share: np.ndarray,
              border_share: np.ndarray, peak_in_lungs: np.ndarray, peak: np.ndarray,
              targets: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
              ) -> list[dict[str, Any]]:
    """The per-film rows of a report (or of one batch of ``cxrexplain audit``)."""
    out = []
    chosen = probabilities[np.arange(len(targets)), targets]
    for i, name in enumerate(names):
        row: dict[str, Any] = {
            "image": name,
            "group": groups[i] if groups is not None else "",
            "target": class_names[int(targets[i])],
            "probability": float(chosen[i]),
            "lung_share": json_number(lung_share[i]),
            "border_share": json_number(border_share[i]),
            "peak_in_lungs": bool(peak_in_lungs[i]),
            "peak_row": float(peak[i, 0]), "peak_col": float(peak[i, 1]),
        }
        for c, class_name in enumerate(class_names):
            row[f"p_{class_name}"] = float(probabilities[i, c])
        out.append(row)
    return out


def _write_rows(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["by"],
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return atomic_write_text(path, buffer.getvalue())


def _plain(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())
