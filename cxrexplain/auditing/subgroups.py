"""Subgroup performance: accuracy, AUC and sensitivity per value of a metadata column.

For each column (view, sex, age band, source) and each of its values, :func:`subgroup_table`
gives the films' count, accuracy, macro AUC (one class against the rest, averaged over the
classes with positives and negatives in the subgroup) and each class's sensitivity, each
with a 95% percentile-bootstrap interval over the subgroup's films (the draw of
:func:`cxrexplain.metrics.bootstrap_ci`: the accuracy's interval is exactly that function's
on the films' hits), and the **gap** to the whole set: the subgroup's figure minus the whole
set's, with a paired bootstrap interval (the whole set's films are resampled, and each
resample's subgroup is compared with that same resample). A gap interval that excludes 0 says
the model does better or worse on that subgroup than overall (Glocker et al. 2023 found
performance gaps by sex, race and view where models encode them).

Example:
    >>> import numpy as np
    >>> from cxrexplain.auditing import subgroup_table
    >>> labels = np.array([0, 1, 0, 1, 0, 1])
    >>> p = np.array([[.9, .1], [.2, .8], [.6, .4], [.7, .3], [.8, .2], [.4, .6]])
    >>> rows = subgroup_table(labels, p, {"view": ["AP", "AP", "AP", "PA", "PA", "PA"]},
    ...                       class_names=("NORMAL", "PNEUMONIA"), n_resamples=200)
    >>> [(r.value, r.n, round(r.accuracy.mean, 2)) for r in rows]
    [('all', 6, 0.83), ('AP', 3, 1.0), ('PA', 3, 0.67)]
    >>> round(rows[2].accuracy_gap.mean, 2)  # 2/3 - 5/6
    -0.17
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxrexplain._checks import check_int, describe
from cxrexplain._stats import bootstrap_weights, weighted_auc
from cxrexplain._tables import json_number
from cxrexplain.auditing.attributes import sorted_values
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics.bootstrap import Interval

__all__ = ["MIN_SUBGROUP_FILMS", "SUBGROUP_COLUMNS", "SubgroupRow", "macro_auc",
           "subgroup_table"]

MIN_SUBGROUP_FILMS = 20
"""Below this many films a subgroup's gap is shown but never marked as clear: the bootstrap
of a handful of films gives intervals too narrow to trust (four right answers: [1, 1])."""

SUBGROUP_COLUMNS = ("by", "value", "n", "accuracy", "accuracy_low", "accuracy_high",
                    "accuracy_gap", "accuracy_gap_low", "accuracy_gap_high", "macro_auc",
                    "macro_auc_low", "macro_auc_high", "macro_auc_gap", "macro_auc_gap_low",
                    "macro_auc_gap_high")
"""The leading columns of :meth:`SubgroupRow.as_dict` (then ``sensitivity_<class>``, its
``_low`` / ``_high``, and ``sensitivity_gap_<class>`` with its bounds, per class)."""

_NAN = Interval(float("nan"), float("nan"), float("nan"))


@dataclass(frozen=True)
class SubgroupRow:
    """The classifier's performance on the films of one value of one metadata column.

    Attributes:
        by: The column (``"view"``).
        value: Its value (``"AP"``), or ``"all"`` for the whole set's row.
        n: The films with this value (and a label).
        accuracy: The share of films whose predicted class is their label, with its 95%
            interval.
        macro_auc: The mean over classes of the one-vs-rest ROC AUC (classes without
            positives or negatives in the subgroup left out; NaN when none is left).
        sensitivity: Each class's sensitivity (recall) in the subgroup (NaN when the
            subgroup has none of its films).
        accuracy_gap: ``accuracy`` minus the whole set's, paired bootstrap interval.
        macro_auc_gap: ``macro_auc`` minus the whole set's.
        sensitivity_gap: Each class's sensitivity minus the whole set's.
    """

    by: str
    value: str
    n: int
    accuracy: Interval
    macro_auc: Interval
    sensitivity: dict[str, Interval] = field(default_factory=dict)
    accuracy_gap: Interval = _NAN
    macro_auc_gap: Interval = _NAN
    sensitivity_gap: dict[str, Interval] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The row as flat JSON-ready values (NaN as None): :data:`SUBGROUP_COLUMNS`, then
        the per-class sensitivities and their gaps."""
        row: dict[str, Any] = {"by": self.by, "value": self.value, "n": self.n}
        figures: list[tuple[str, Interval]] = [
            ("accuracy", self.accuracy), ("accuracy_gap", self.accuracy_gap),
            ("macro_auc", self.macro_auc), ("macro_auc_gap", self.macro_auc_gap)]
        figures += [(f"sensitivity_{c}", v) for c, v in self.sensitivity.items()]
        figures += [(f"sensitivity_gap_{c}", v) for c, v in self.sensitivity_gap.items()]
        for name, (mean, low, high) in figures:
            row.update({name: json_number(mean), f"{name}_low": json_number(low),
                        f"{name}_high": json_number(high)})
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> SubgroupRow:
        """Read back a row of :meth:`as_dict` (None as NaN)."""
        def interval(name: str) -> Interval:
            return Interval(*(float("nan") if row.get(k) is None else float(row[k])
                              for k in (name, f"{name}_low", f"{name}_high")))

        classes = [k.removeprefix("sensitivity_") for k in row
                   if k.startswith("sensitivity_") and not k.startswith("sensitivity_gap_")
                   and not k.endswith(("_low", "_high"))]
        return cls(str(row["by"]), str(row["value"]), int(row["n"]), interval("accuracy"),
                   interval("macro_auc"),
                   {c: interval(f"sensitivity_{c}") for c in classes},
                   interval("accuracy_gap"), interval("macro_auc_gap"),
                   {c: interval(f"sensitivity_gap_{c}") for c in classes})


def macro_auc(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray
              ) -> np.ndarray:
    """``(B,)`` macro one-vs-rest AUC of each weighted resample (rows of ``weights``).

    Classes without positive or negative weight in a resample are left out of its mean; NaN
    when no class is left.

    Example:
        >>> macro_auc(np.array([0, 1, 2]), np.eye(3), np.ones((1, 3))).tolist()
        [1.0]
    """
    per_class = np.stack([weighted_auc(labels == c, probabilities[:, c], weights)
                          for c in range(probabilities.shape[1])], axis=1)
    present = ~np.isnan(per_class)
    total = np.where(present, per_class, 0.0).sum(axis=1)
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def subgroup_table(
    labels: Any,
    probabilities: Any,
    groups: Mapping[str, Sequence[str | None]],
    *,
    class_names: Sequence[str] | None = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    overall: bool = True,
) -> list[SubgroupRow]:
    """Accuracy, macro AUC and per-class sensitivity per subgroup, with intervals and gaps.

    Args:
        labels: ``(N,)`` each film's true class index.
        probabilities: ``(N, K)`` the classifier's probabilities (the predicted class is the
            largest).
        groups: ``{column: value per film}``; None for a film leaves it out of that column's
            subgroups (its figures stay in the whole set's).
        class_names: The K class names (default ``"0"``, ``"1"``, ...).
        n_resamples: Bootstrap resamples.
        level: The intervals' level.
        seed: The resamples' seed (each subgroup's interval draws with it, as
            :func:`cxrexplain.metrics.bootstrap_ci`).
        overall: Put the whole set's row first (``by="all"``, ``value="all"``).

    Returns:
        One :class:`SubgroupRow` per column and value (age bands in order, other values
        sorted), after the whole set's (whose gaps are NaN).

    Raises:
        InvalidInputError: Mismatched lengths, labels outside ``0..K-1``, a bad level.
    """
    truth, p = _check(labels, probabilities)
    count, classes = p.shape
    names = [str(c) for c in (class_names if class_names is not None else range(classes))]
    if len(names) != classes:
        raise InvalidInputError(
            f"class_names: {len(names)} names for {classes} probability columns")
    check_int(n_resamples, "n_resamples")
    if not 0.0 < float(level) < 1.0:
        raise InvalidInputError(f"level: expected a number in (0, 1), got {level!r}")
    hits = (np.argmax(p, axis=1) == truth).astype(np.float64)
    quantiles = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    whole_weights = bootstrap_weights(count, n_resamples, seed).astype(np.float64)
    whole_point = _figures(truth, p, hits, np.ones((1, count)))
    whole_boot = _figures(truth, p, hits, whole_weights)
    rows = []
    if overall:
        rows.append(_row("all", "all", np.ones(count, bool), truth, p, hits, names,
                         n_resamples, seed, quantiles, None))
    for column, values in groups.items():
        if len(values) != count:
            raise InvalidInputError(
                f"groups: column '{column}' has {len(values)} values for {count} films")
        present = sorted_values(values)
        labels_of = np.array(["" if v is None else str(v) for v in values], dtype=object)
        known = np.array([v is not None for v in values], bool)
        for value in present:
            member = known & (labels_of == value)
            gaps = _gaps(truth, p, hits, member, whole_point, whole_boot, whole_weights,
                         quantiles)
            rows.append(_row(column, value, member, truth, p, hits, names, n_resamples,
                             seed, quantiles, gaps))
    return rows


Figures = dict[str, np.ndarray]


def _figures(truth: np.ndarray, p: np.ndarray, hits: np.ndarray, weights: np.ndarray
             ) -> Figures:
    """Accuracy, macro AUC and each class's sensitivity of each weighted resample."""
    with np.errstate(invalid="ignore", divide="ignore"):
        total = weights.sum(axis=1)
        out = {"accuracy": np.where(total > 0, weights @ hits / np.maximum(total, 1), np.nan),
               "macro_auc": macro_auc(truth, p, weights)}
        for c in range(p.shape[1]):
            of_class = weights * (truth == c)
            n = of_class.sum(axis=1)
            out[f"s{c}"] = np.where(n > 0, of_class @ hits / np.maximum(n, 1), np.nan)
    return out


def _interval(point: float, resampled: np.ndarray, quantiles: list[float]) -> Interval:
    finite = resampled[~np.isnan(resampled)]
    if np.isnan(point) or not finite.size:
        return Interval(float(point), float("nan"), float("nan"))
    low, high = np.quantile(finite, quantiles)
    return Interval(float(point), float(low), float(high))


def _row(by: str, value: str, member: np.ndarray, truth: np.ndarray, p: np.ndarray,
         hits: np.ndarray, names: list[str], n_resamples: int, seed: int,
         quantiles: list[float], gaps: dict[str, Interval] | None) -> SubgroupRow:
    idx = np.flatnonzero(member)
    t, q, h = truth[idx], p[idx], hits[idx]
    point = _figures(t, q, h, np.ones((1, len(idx))))
    boot = _figures(t, q, h, bootstrap_weights(len(idx), n_resamples, seed).astype(float))
    est = {k: _interval(float(point[k][0]), boot[k], quantiles) for k in point}
    gap = gaps or {}
    return SubgroupRow(
        by=by, value=value, n=len(idx), accuracy=est["accuracy"], macro_auc=est["macro_auc"],
        sensitivity={n: est[f"s{c}"] for c, n in enumerate(names)},
        accuracy_gap=gap.get("accuracy", _NAN), macro_auc_gap=gap.get("macro_auc", _NAN),
        sensitivity_gap={n: gap.get(f"s{c}", _NAN) for c, n in enumerate(names)})


def _gaps(truth: np.ndarray, p: np.ndarray, hits: np.ndarray, member: np.ndarray,
          whole_point: Figures, whole_boot: Figures, whole_weights: np.ndarray,
          quantiles: list[float]) -> dict[str, Interval]:
    """Subgroup minus whole set: the point gap and the paired bootstrap interval."""
    ones = member[None, :].astype(np.float64)
    point = _figures(truth, p, hits, ones)
    boot = _figures(truth, p, hits, whole_weights * ones)
    return {k: _interval(float(point[k][0] - whole_point[k][0]), boot[k] - whole_boot[k],
                         quantiles) for k in point}


def _check(labels: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or not len(p):
        raise InvalidInputError(
            f"probabilities: expected (N, K) probabilities, got {describe(probabilities)}")
    truth = np.asarray(labels)
    if truth.shape != (len(p),) or not np.issubdtype(truth.dtype, np.integer):
        raise InvalidInputError(
            f"labels: expected {len(p)} class indices, got {describe(labels)}")
    if truth.min() < 0 or truth.max() >= p.shape[1]:
        raise InvalidInputError(
            f"labels: expected class indices in 0..{p.shape[1] - 1}, got "
            f"{truth.min()}..{truth.max()}")
    return truth.astype(np.int64), p
