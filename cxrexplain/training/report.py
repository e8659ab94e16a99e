"""``evaluate(classifier, data)`` and the :class:`EvaluationReport` it returns.

The report holds the confusion matrix (rows: true class, columns: predicted class, using the
classifier's decision rule: its threshold for two classes, else argmax) and each class's
one-vs-rest ROC AUC from the predicted probabilities; accuracy, sensitivity, specificity,
precision and F1 follow from the matrix. It renders as text, Markdown and JSON and draws a
ROC + confusion-matrix figure.

Example:
    >>> import cxrexplain as cx
    >>> report = cx.training.evaluate(clf, test)
    >>> print(report.to_text())
    accuracy ... on 4 images (argmax); macro AUC ...
    <BLANKLINE>
    class      sensitivity  specificity  precision  f1      auc     n
    NORMAL     ...  2
    PNEUMONIA  ...  2
    <BLANKLINE>
    confusion (rows: true, columns: predicted)
    ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cxrexplain._checks import as_labels, as_numbers
from cxrexplain._tables import format_number, json_number, markdown_table, nanmean
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.training.figures import report_figure
from cxrexplain.training.predictions import collect
from cxrexplain.training.stats import (
    confusion_matrix,
    per_class_rates,
    roc_auc,
    wilson_interval,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EvaluationReport", "evaluate", "report_from_predictions"]

_RATES = ("sensitivity", "specificity", "precision", "f1", "auc")


@dataclass(frozen=True, eq=False)
class EvaluationReport:
    """The evaluation of a classifier on labelled data.

    Attributes:
        class_names: The classes, in label order.
        confusion: ``(K, K)`` counts; ``confusion[i, j]`` images of class i predicted j.
        auc: ``(K,)`` one-vs-rest ROC AUC of each class (NaN when a class is absent or the
            only one present).
        threshold: The classifier's two-class threshold used for the decisions (None: argmax).
        labels: ``(N,)`` true classes, when kept (for :meth:`plot`).
        probabilities: ``(N, K)`` predicted probabilities, when kept.

    Example:
        >>> import numpy as np
        >>> r = EvaluationReport(("A", "B"), np.array([[3, 1], [2, 4]]), np.array([0.8, 0.8]))
        >>> r.accuracy, r.sensitivity["B"]
        (0.7, 0.6666666666666666)
    """

    class_names: tuple[str, ...]
    confusion: np.ndarray
    auc: np.ndarray
    threshold: float | None = None
    labels: np.ndarray | None = field(default=None, repr=False)
    probabilities: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        k = len(self.class_names)
        if np.shape(self.confusion) != (k, k) or np.shape(self.auc) != (k,):
            raise InvalidInputError(
                f"confusion/auc: expected shapes ({k}, {k}) and ({k},) for {k} classes, got "
                f"{np.shape(self.confusion)} and {np.shape(self.auc)}"
            )

    # ------------------------------------------------------------------ metrics
    @property
    def n(self) -> int:
        """Number of images."""
        return int(np.sum(self.confusion))

    @property
    def accuracy(self) -> float:
        """Share of images whose predicted class is the true one."""
        return float(np.trace(self.confusion) / max(self.n, 1))

    @property
    def accuracy_interval(self) -> tuple[float, float]:
        """The 95% Wilson score interval of :attr:`accuracy` (``low, high``).

        Example:
            >>> [round(v, 4) for v in report.accuracy_interval]  # 7 of 10 right
            [0.3968, 0.8922]
        """
        return wilson_interval(int(np.trace(self.confusion)), self.n)

    def _per_class(self, name: str) -> dict[str, float]:
        values = self.auc if name == "auc" else per_class_rates(self.confusion)[name]
        return {c: float(v) for c, v in zip(self.class_names, values, strict=True)}

    @property
    def sensitivity(self) -> dict[str, float]:
        """Per class: TP / (TP + FN), the recall (one class against the rest)."""
        return self._per_class("sensitivity")

    @property
    def specificity(self) -> dict[str, float]:
        """Per class: TN / (TN + FP)."""
        return self._per_class("specificity")

    @property
    def precision(self) -> dict[str, float]:
        """Per class: TP / (TP + FP) (NaN when the class is never predicted)."""
        return self._per_class("precision")

    @property
    def f1(self) -> dict[str, float]:
        """Per class: the harmonic mean of precision and sensitivity."""
        return self._per_class("f1")

    @property
    def roc_auc(self) -> dict[str, float]:
        """Per class: the one-vs-rest ROC AUC."""
        return self._per_class("auc")

    def metrics(self) -> dict[str, float]:
        """Every number as a flat dict: ``accuracy``, ``macro_auc``, ``macro_f1``,
        ``balanced_accuracy`` and ``<metric>/<class>`` for each class.

        Example:
            >>> sorted(report.metrics())[:3]
            ['accuracy', 'auc/COVID', 'auc/NORMAL']
            >>> report.metrics()["sensitivity/COVID"]
            0.5
        """
        flat: dict[str, float] = {"accuracy": self.accuracy}
        flat["balanced_accuracy"] = nanmean(self.sensitivity.values())
        flat["macro_f1"] = nanmean(self.f1.values())
        flat["macro_auc"] = nanmean(self.roc_auc.values())
        for rate in _RATES:
            for name, value in self._per_class(rate).items():
                flat[f"{rate}/{name}"] = value
        return flat

    # ------------------------------------------------------------------ rendering
    def to_dict(self, *, include_predictions: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (NaN as None); :meth:`from_dict` reads it back.

        Args:
            include_predictions: Also store the labels and probabilities.

        Example:
            >>> report.to_dict()["confusion"]
            [[1, 0, 1], [0, 3, 1], [0, 1, 3]]
        """
        data: dict[str, Any] = {
            "class_names": list(self.class_names),
            "n": self.n,
            "threshold": self.threshold,
            "confusion": np.asarray(self.confusion, dtype=np.int64).tolist(),
            "auc": [json_number(v) for v in self.auc],
            "metrics": {k: json_number(v) for k, v in self.metrics().items()},
        }
        if include_predictions and self.labels is not None and self.probabilities is not None:
            data["labels"] = np.asarray(self.labels).astype(int).tolist()
            data["probabilities"] = np.round(np.asarray(self.probabilities, np.float64),
                                             7).tolist()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """Rebuild a report from :meth:`to_dict` output.

        Example:
            >>> EvaluationReport.from_dict(report.to_dict()).accuracy == report.accuracy
            True
        """
        try:
            labels = data.get("labels")
            probabilities = data.get("probabilities")
            return cls(
                tuple(data["class_names"]),
                np.asarray(data["confusion"], dtype=np.int64),
                np.asarray([np.nan if v is None else v for v in data["auc"]], dtype=np.float64),
                data.get("threshold"),
                None if labels is None else np.asarray(labels, dtype=np.int64),
                None if probabilities is None else np.asarray(probabilities, dtype=np.float32),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInputError(f"data: not an EvaluationReport dict ({err})") from err

    def to_json(self, *, indent: int | None = 2, include_predictions: bool = False) -> str:
        """The report as JSON (see :meth:`to_dict`).

        Example:
            >>> _ = Path("report.json").write_text(report.to_json())
            >>> sorted(json.loads(Path("report.json").read_text()))
            ['auc', 'class_names', 'confusion', 'metrics', 'n', 'threshold']
        """
        return json.dumps(self.to_dict(include_predictions=include_predictions), indent=indent)

    def _rows(self) -> list[list[str]]:
        rows = []
        for name in self.class_names:
            rows.append([name] + [format_number(self._per_class(r)[name]) for r in _RATES]
                        + [str(int(self.confusion[self.class_names.index(name)].sum()))])
        return rows

    def to_text(self) -> str:
        """A plain-text table of the per-class metrics and the confusion matrix.

        Example:
            >>> print(report.to_text())
            accuracy 0.7000 [95% CI 0.3968, 0.8922] on 10 images (argmax); macro AUC 0.8993
            <BLANKLINE>
            class      sensitivity  specificity  precision  f1      auc     n
            COVID      0.5000       1.0000       1.0000     0.6667  0.9688  2
            NORMAL     0.7500       0.8333       0.7500     0.7500  0.9167  4
            PNEUMONIA  0.7500       0.6667       0.6000     0.6667  0.8125  4
            <BLANKLINE>
            confusion (rows: true, columns: predicted)
                           COVID     NORMAL  PNEUMONIA
            COVID              1          0          1
            NORMAL             0          3          1
            PNEUMONIA          0          1          3
        """
        header = ["class", *_RATES, "n"]
        rows = self._rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [self._summary_line(), ""]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        lines += ["", "confusion (rows: true, columns: predicted)"]
        names = list(self.class_names)
        width = max(max(len(n) for n in names), max(len(str(v)) for v in self.confusion.ravel()))
        lines.append(" " * (width + 2) + "  ".join(n.rjust(width) for n in names))
        for name, row in zip(names, self.confusion, strict=True):
            lines.append(name.ljust(width + 2) + "  ".join(str(int(v)).rjust(width) for v in row))
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Markdown: a summary line, a per-class table and the confusion matrix.

        Example:
            >>> print(report.to_markdown())
            accuracy 0.7000 [95% CI 0.3968, 0.8922] on 10 images (argmax); macro AUC 0.8993
            <BLANKLINE>
            | class | sensitivity | specificity | precision | f1 | auc | n |
            |---|---:|---:|---:|---:|---:|---:|
            | COVID | 0.5000 | 1.0000 | 1.0000 | 0.6667 | 0.9688 | 2 |
            | NORMAL | 0.7500 | 0.8333 | 0.7500 | 0.7500 | 0.9167 | 4 |
            | PNEUMONIA | 0.7500 | 0.6667 | 0.6000 | 0.6667 | 0.8125 | 4 |
            <BLANKLINE>
            | true ... predicted | COVID | NORMAL | PNEUMONIA |
            ...
        """
        confusion = [[name, *(str(int(v)) for v in row)]
                     for name, row in zip(self.class_names, self.confusion, strict=True)]
        return "\n".join([
            self._summary_line(), "",
            markdown_table(["class", *_RATES, "n"], self._rows()), "",
            markdown_table(["true \\ predicted", *self.class_names], confusion),
        ])

    def _summary_line(self) -> str:
        rule = "argmax" if self.threshold is None else f"threshold {self.threshold:.4g}"
        low, high = self.accuracy_interval
        return (f"accuracy {format_number(self.accuracy)} [95% CI {format_number(low)}, "
                f"{format_number(high)}] on {self.n} images ({rule}); macro AUC "
                f"{format_number(self.metrics()['macro_auc'])}")

    def __str__(self) -> str:
        return self.to_text()

    def plot(self, *, figsize: tuple[float, float] = (10.0, 4.5)) -> Figure:
        """ROC curves (one-vs-rest) beside the confusion matrix, as a new Figure.

        Uses no pyplot global state: save it with ``fig.savefig(...)``. The ROC panel needs
        the stored labels and probabilities (kept by :func:`evaluate`).

        Example:
            >>> report.plot().savefig("report.png")
            >>> Path("report.png").is_file()
            True
        """
        return report_figure(self, figsize=figsize)


def evaluate(classifier: Classifier, data: Any, *, batch_size: int = 32) -> EvaluationReport:
    """Evaluate a classifier on labelled data.

    Args:
        classifier: A two-class or softmax :class:`~cxrexplain.Classifier`; its threshold
            (two classes) or argmax decides each image's class.
        data: A ``tf.data.Dataset`` of ``(images, labels)`` batches (its ``class_names``, if
            any, must match the classifier's) or an ``(images, labels)`` tuple.
        batch_size: Images per forward pass for tuple data.

    Returns:
        An :class:`EvaluationReport` (it keeps labels and probabilities for :meth:`plot`).

    Raises:
        InvalidInputError: Malformed data, or class names that differ.
        ModelStructureError: A multi-label classifier.

    Example:
        >>> import cxrexplain as cx
        >>> report = cx.training.evaluate(clf, test)  # test: 4 phantoms and their labels
        >>> report.n, report.class_names, report.threshold
        (4, ('NORMAL', 'PNEUMONIA'), None)
        >>> sorted(report.sensitivity), report.labels.tolist()
        (['NORMAL', 'PNEUMONIA'], [0, 1, 0, 1])
    """
    probabilities, labels = collect(classifier, data, batch_size=batch_size)
    threshold = classifier.threshold  # collect() refused multi-label models: a float or None
    return report_from_predictions(
        labels, probabilities, classifier.class_names,
        decisions=np.array([p.index for p in classifier.decide(probabilities)]),
        threshold=threshold if isinstance(threshold, float) and classifier.num_classes == 2
        else None,
    )


def report_from_predictions(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    decisions: np.ndarray | None = None,
    threshold: float | None = None,
) -> EvaluationReport:
    """Build a report from true labels and probabilities (decisions default to argmax).

    Example:
        >>> import numpy as np
        >>> r = report_from_predictions(np.array([0, 1]), np.array([[0.9, 0.1], [0.3, 0.7]]),
        ...                             ["A", "B"])
        >>> r.accuracy, r.roc_auc["B"]
        (1.0, 1.0)
    """
    probs = as_numbers(probabilities, "probabilities").astype(np.float32)
    k = len(class_names)
    truth = as_labels(labels, "labels", num_classes=k)
    if probs.ndim != 2 or probs.shape[1] != k or len(probs) != len(truth):
        raise InvalidInputError(
            f"probabilities: expected shape ({len(truth)}, {k}), got {probs.shape}"
        )
    chosen = probs.argmax(axis=1) if decisions is None else np.asarray(decisions, np.int64)
    matrix = confusion_matrix(truth, chosen, k)
    auc = np.array([roc_auc(truth == c, probs[:, c]) for c in range(k)], dtype=np.float64)
    return EvaluationReport(tuple(class_names), matrix, auc, threshold, truth, probs)



