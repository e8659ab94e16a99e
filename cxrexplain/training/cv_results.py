"""What :func:`~cxrexplain.training.cross_validate` returns: per-fold results and their summary.

* :class:`FoldSetup`: what a model-building function receives for each fold;
* :class:`FoldResult`: one fold's test report and training cost (JSON round trip);
* :class:`CrossValidationResult`: every fold, each metric's mean and sample standard
  deviation, the pooled report, and text / Markdown / JSON renderings.

Example:
    >>> result.k, len(result.folds), result.class_names  # a two-fold result
    (2, 2, ('COVID', 'NORMAL', 'PNEUMONIA'))
    >>> result.summary()["accuracy"]  # mean and sample standard deviation
    (0.75, 0.0707...)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrexplain._tables import format_number, json_number, markdown_table
from cxrexplain.errors import InvalidInputError
from cxrexplain.training.report import EvaluationReport, report_from_predictions

__all__ = ["CrossValidationResult", "FoldResult", "FoldSetup"]


@dataclass(frozen=True)
class FoldSetup:
    """What ``build_fn`` receives for each fold.

    Attributes:
        fold: The fold's index, from 0.
        k: The number of folds.
        input_shape: ``(height, width, channels)`` of the images.
        num_classes: Number of classes.
        class_names: The class names, in label order.
        train_size: Images the model trains on in this fold.
        steps_per_epoch: Batches per epoch (for learning-rate schedules).
        epochs: The epochs of the run.

    Example:
        >>> def build(setup: FoldSetup):
        ...     return cx.models.build("cam_cnn", input_shape=setup.input_shape,
        ...                            num_classes=setup.num_classes)
        >>> setup = FoldSetup(fold=0, k=5, input_shape=(64, 64, 1), num_classes=3,
        ...                   class_names=("COVID", "NORMAL", "PNEUMONIA"), train_size=80,
        ...                   steps_per_epoch=3, epochs=30)
        >>> build(setup).output_shape
        (None, 3)
    """

    fold: int
    k: int
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    train_size: int
    steps_per_epoch: int
    epochs: int


@dataclass(frozen=True)
class FoldResult:
    """One fold's test report and training cost.

    Attributes:
        fold: The fold's index.
        report: The evaluation on the fold's held-out images.
        fit_seconds: Wall time of training (the part run in the last session).
        epochs: Epochs trained in total (early stopping may end before ``epochs``).
        train_images: Images trained on per epoch.
        images_per_second: Training images per second of ``fit`` wall time (validation
            passes and callbacks included); NaN when nothing was trained in the session.

    Example:
        >>> fold = result.folds[0]
        >>> fold.fold, fold.epochs, fold.report.accuracy
        (0, 3, 0.7)
    """

    fold: int
    report: EvaluationReport
    fit_seconds: float
    epochs: int
    train_images: int
    images_per_second: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the report keeps its labels and probabilities).

        Example:
            >>> FoldResult.from_dict(fold.to_dict()).epochs == fold.epochs
            True
            >>> sorted(fold.to_dict())
            ['epochs', 'fit_seconds', 'fold', 'images_per_second', 'report', 'train_images']
        """
        return {
            "fold": self.fold,
            "fit_seconds": self.fit_seconds,
            "epochs": self.epochs,
            "train_images": self.train_images,
            "images_per_second": json_number(self.images_per_second),
            "report": self.report.to_dict(include_predictions=True),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FoldResult:
        """Rebuild from :meth:`to_dict` output.

        Example:
            >>> text = json.dumps(fold.to_dict())
            >>> FoldResult.from_dict(json.loads(text)).report.accuracy == fold.report.accuracy
            True
        """
        speed = data.get("images_per_second")
        return cls(int(data["fold"]), EvaluationReport.from_dict(data["report"]),
                   float(data["fit_seconds"]), int(data["epochs"]), int(data["train_images"]),
                   float("nan") if speed is None else float(speed))


@dataclass(frozen=True)
class CrossValidationResult:
    """The folds of a cross-validation and their summary.

    Attributes:
        folds: One :class:`FoldResult` per fold run, in fold order.
        class_names: The class names.
        k: The number of folds of the protocol (``len(folds)`` may be smaller when only some
            folds were asked for).

    Example:
        >>> result.summary()["accuracy"]
        (0.75, 0.0707...)
    """

    folds: tuple[FoldResult, ...]
    class_names: tuple[str, ...]
    k: int

    def values(self, metric: str) -> np.ndarray:
        """One value of ``metric`` (a key of :meth:`EvaluationReport.metrics`) per fold.

        Example:
            >>> result.values("accuracy"), result.values("sensitivity/COVID")
            (array([0.7, 0.8]), array([0.5, 0.5]))
        """
        try:
            return np.array([f.report.metrics()[metric] for f in self.folds], dtype=np.float64)
        except KeyError as err:
            known = ", ".join(self.folds[0].report.metrics()) if self.folds else ""
            raise InvalidInputError(f"metric: unknown {metric!r}; known: {known}") from err

    def summary(self) -> dict[str, tuple[float, float]]:
        """Every metric's mean and sample standard deviation (n - 1; NaN for one fold).

        Example:
            >>> mean, sd = result.summary()["auc/COVID"]
            >>> round(mean, 4), sd
            (0.9688, 0.0)
        """
        if not self.folds:
            return {}
        out = {}
        for metric in self.folds[0].report.metrics():
            values = self.values(metric)
            values = values[~np.isnan(values)]
            mean = float(values.mean()) if values.size else float("nan")
            sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
            out[metric] = (mean, sd)
        return out

    def pooled(self) -> EvaluationReport:
        """One report over every held-out image of every fold (confusion matrices summed).

        Example:
            >>> result.pooled().n, result.pooled().accuracy  # the 10 + 10 held-out images
            (20, 0.75)
        """
        if not self.folds:
            raise InvalidInputError("result: no folds")
        reports = [f.report for f in self.folds]
        if all(r.labels is not None and r.probabilities is not None for r in reports):
            labels = np.concatenate([np.asarray(r.labels) for r in reports])
            probs = np.concatenate([np.asarray(r.probabilities) for r in reports])
            pooled = report_from_predictions(labels, probs, self.class_names)
            confusion = np.sum([r.confusion for r in reports], axis=0)
            return EvaluationReport(self.class_names, confusion, pooled.auc,
                                    reports[0].threshold, labels, probs)
        confusion = np.sum([r.confusion for r in reports], axis=0)
        return EvaluationReport(self.class_names, confusion,
                                np.full(len(self.class_names), np.nan))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the summary and the folds.

        Example:
            >>> result.to_dict()["summary"]["accuracy"]
            [0.75, 0.0707...]
        """
        return {
            "k": self.k,
            "class_names": list(self.class_names),
            "summary": {m: [json_number(a), json_number(b)]
                        for m, (a, b) in self.summary().items()},
            "folds": [f.to_dict() for f in self.folds],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON.

        Example:
            >>> from pathlib import Path
            >>> _ = Path("cv.json").write_text(result.to_json())
            >>> json.loads(Path("cv.json").read_text())["k"]
            2
        """
        return json.dumps(self.to_dict(), indent=indent)

    def _lines(self, metrics: Iterable[str]) -> list[tuple[str, str, str]]:
        summary = self.summary()
        rows = []
        for metric in metrics:
            mean, sd = summary[metric]
            per_fold = ", ".join(format_number(v) for v in self.values(metric))
            rows.append((metric, f"{format_number(mean)} ± {format_number(sd)}", per_fold))
        return rows

    def _metric_names(self) -> list[str]:
        return list(self.summary())

    def to_text(self) -> str:
        """Mean ± sd of every metric with the per-fold values.

        Example:
            >>> print(result.to_text())
            2 of 2 folds; classes COVID, NORMAL, PNEUMONIA
            accuracy               0.7500 ± 0.0707    [0.7000, 0.8000]
            balanced_accuracy      0.7083 ± 0.0589    [0.6667, 0.7500]
            ...
            auc/PNEUMONIA          0.8646 ± 0.0737    [0.8125, 0.9167]
        """
        rows = self._lines(self._metric_names())
        width = max(len(r[0]) for r in rows) if rows else 6
        head = f"{len(self.folds)} of {self.k} folds; classes {', '.join(self.class_names)}"
        return "\n".join([head] + [f"{m.ljust(width)}  {v:<18} [{f}]" for m, v, f in rows])

    def to_markdown(self) -> str:
        """A Markdown table: metric, mean ± sd, per-fold values.

        Example:
            >>> print(result.to_markdown())
            | metric | mean ± sd | per fold |
            |---|---:|---|
            | accuracy | 0.7500 ± 0.0707 | 0.7000, 0.8000 |
            ...
        """
        rows = [list(row) for row in self._lines(self._metric_names())]
        return markdown_table(["metric", "mean ± sd", "per fold"], rows,
                              numeric=[False, True, False])



