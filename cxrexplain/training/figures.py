"""The figure of an :class:`~cxrexplain.training.EvaluationReport`: ROC curves and confusion.

Built on ``matplotlib.figure.Figure`` directly (no pyplot, no global state), so it is safe in
scripts, servers and notebooks alike.

Example:
    >>> fig = report_figure(report)
    >>> fig.savefig("evaluation.png")
    >>> len(fig.axes)
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from matplotlib.figure import Figure

from cxrexplain.training.stats import roc_curve

__all__ = ["report_figure"]


class ReportLike(Protocol):
    """What :func:`report_figure` reads (an :class:`~cxrexplain.training.EvaluationReport`).

    Declared here so that the figure does not import the report: the report imports the
    figure, one way.
    """

    @property
    def class_names(self) -> Sequence[str]: ...
    @property
    def confusion(self) -> np.ndarray: ...
    @property
    def auc(self) -> np.ndarray: ...
    @property
    def labels(self) -> np.ndarray | None: ...
    @property
    def probabilities(self) -> np.ndarray | None: ...
    @property
    def accuracy(self) -> float: ...
    @property
    def n(self) -> int: ...


def report_figure(report: ReportLike, *,
                  figsize: tuple[float, float] = (10.0, 4.5)) -> Figure:
    """ROC curves (one per class, one-vs-rest; the positive class only for two classes) and
    the confusion matrix with counts.

    Args:
        report: The report; without stored labels/probabilities the ROC panel says so.
        figsize: Figure size in inches.

    Returns:
        A new ``matplotlib.figure.Figure`` with two axes.

    Example:
        >>> [ax.get_title() for ax in report_figure(report).axes]
        ['ROC (one vs rest)', 'Confusion matrix']
    """
    fig = Figure(figsize=figsize, layout="constrained")
    roc_axes, matrix_axes = fig.subplots(1, 2)
    names = report.class_names
    roc_axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    if report.labels is not None and report.probabilities is not None:
        shown = [1] if len(names) == 2 else list(range(len(names)))
        for index in shown:
            fpr, tpr = roc_curve(report.labels == index, report.probabilities[:, index])
            auc = report.auc[index]
            label = f"{names[index]} (AUC {auc:.3f})" if np.isfinite(auc) else names[index]
            roc_axes.plot(fpr, tpr, linewidth=1.8, label=label)
        roc_axes.legend(loc="lower right", fontsize="small")
    else:
        roc_axes.text(0.5, 0.5, "no stored probabilities", ha="center", va="center")
    roc_axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (false-positive rate)",
                 ylabel="sensitivity (true-positive rate)", title="ROC (one vs rest)")
    roc_axes.set_aspect("equal")

    counts = np.asarray(report.confusion)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape, np.float64), where=rows > 0)
    matrix_axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "white" if shares[i, j] > 0.5 else "black"
            matrix_axes.text(j, i, f"{int(counts[i, j])}\n{shares[i, j]:.0%}", ha="center",
                             va="center", color=colour, fontsize="small")
    ticks = list(range(len(names)))
    matrix_axes.set_xticks(ticks, labels=list(names))
    matrix_axes.set_yticks(ticks, labels=list(names))
    matrix_axes.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    fig.suptitle(f"accuracy {report.accuracy:.3f} on {report.n} images")
    return fig
