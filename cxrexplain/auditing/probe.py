"""The encoding probe: how well a linear model reads a metadata attribute from the features.

Glocker et al. (2023) showed that chest X-ray classifiers encode sex, race and the view far
beyond chance. :func:`encoding_probe` fits, for each attribute (the view, the sex, the age
band), an L2-regularised logistic regression on standardised features, cross-validated over
``k`` folds (grouped by patient when patients are known, so no patient's films are on both
sides; stratified by the attribute, :func:`cxrexplain.data.k_folds`), and reports the ROC
AUC of the held-out scores with a 95% bootstrap interval over the films. An attribute of
more than two values is probed one value against the rest and its AUC is the mean over the
values (macro). Values with fewer than ``k`` films, and films without a value, are left out.

Read it against two baselines, the same probe on an untrained copy of the model (what the
architecture alone gives) and on the films' pixel statistics (what brightness and contrast
give away): a trained model far above both has learnt the attribute. AUC 0.5 is chance.

The regression is Newton's method in NumPy (no scikit-learn): it minimises
``sum(log-loss) + l2 / 2 * ||w||^2`` (intercept not penalised), which is scikit-learn's
``LogisticRegression(C=1 / l2)``; with more features than films it works in the films' span
(the SVD of the training features), where the L2 solution lies.

Example:
    >>> import numpy as np
    >>> from cxrexplain.auditing import encoding_probe
    >>> rng = np.random.default_rng(0)
    >>> view = np.array(["AP", "PA"] * 40)
    >>> features = rng.normal(size=(80, 5)); features[:, 0] += 3 * (view == "PA")
    >>> row, = encoding_probe({"model": features}, {"view": view}, n_resamples=200)
    >>> row.attribute, row.features, row.n, row.auc.mean > 0.95
    ('view', 'model', 80, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrexplain._checks import check_int, check_number, describe
from cxrexplain._stats import bootstrap_weights
from cxrexplain._tables import json_number
from cxrexplain.auditing.attributes import sorted_values
from cxrexplain.auditing.subgroups import macro_auc
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics.bootstrap import Interval

__all__ = ["ENCODING_COLUMNS", "EncodingRow", "encoding_probe", "logistic_fit",
           "probe_folds"]

ENCODING_COLUMNS = ("attribute", "features", "n", "values", "folds", "grouped", "auc",
                    "auc_low", "auc_high")
"""The keys of :meth:`EncodingRow.as_dict`."""

_NAN = Interval(float("nan"), float("nan"), float("nan"))


@dataclass(frozen=True)
class EncodingRow:
    """One attribute probed from one feature set.

    Attributes:
        attribute: The metadata column (``"view"``).
        features: ``"model"`` (the classifier's penultimate features), ``"untrained"`` (an
            untrained copy's) or ``"pixels"`` (pixel statistics); any name given.
        n: The films probed (with a value kept).
        values: The attribute's values probed (``("AP", "PA")``).
        folds: The cross-validation folds.
        grouped: Whether the folds were grouped by patient.
        auc: The held-out ROC AUC (macro over values for more than two) and its interval;
            NaN when fewer than two values have ``k`` films.
    """

    attribute: str
    features: str
    n: int
    values: tuple[str, ...]
    folds: int
    grouped: bool
    auc: Interval = _NAN

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (:data:`ENCODING_COLUMNS`; ``values`` joined by ``|``)."""
        return {"attribute": self.attribute, "features": self.features, "n": self.n,
                "values": "|".join(self.values), "folds": self.folds,
                "grouped": self.grouped, "auc": json_number(self.auc.mean),
                "auc_low": json_number(self.auc.low), "auc_high": json_number(self.auc.high)}

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> EncodingRow:
        """Read back :meth:`as_dict` (None as NaN)."""
        def number(key: str) -> float:
            return float("nan") if row.get(key) in (None, "") else float(row[key])

        values = str(row.get("values") or "")
        grouped = row.get("grouped")
        return cls(str(row["attribute"]), str(row["features"]), int(row["n"]),
                   tuple(values.split("|")) if values else (), int(row["folds"]),
                   grouped is True or str(grouped) == "True",
                   Interval(number("auc"), number("auc_low"), number("auc_high")))


def logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, *, iterations: int = 100
                 ) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method: weights and intercept.

    Minimises ``sum(logaddexp(0, s) - y * s) + l2 / 2 * ||w||^2`` with ``s = x @ w + b``.

    Args:
        x: ``(N, D)`` features (standardise them first).
        y: ``(N,)`` 0/1 targets.
        l2: The penalty (> 0).
        iterations: The most Newton steps.

    Returns:
        ``(w, b)``.

    Example:
        >>> x = np.array([[-2.0], [-1.0], [1.0], [2.0]]); y = np.array([0, 1, 0, 1])
        >>> w, b = logistic_fit(x, y, l2=1.0)
        >>> round(float(w[0]), 3), round(b, 3)
        (0.291, 0.0)
    """
    n, d = x.shape
    target = np.asarray(y, np.float64)
    basis = None
    if d > n:  # the L2 solution lies in the span of the films: work there
        _, singular, vt = np.linalg.svd(x, full_matrices=False)
        keep = singular > singular[0] * 1e-10 if singular.size else singular > 0
        basis = vt[keep].T
        x = x @ basis
        d = x.shape[1]
    z = np.hstack([x, np.ones((n, 1))])
    penalty = np.r_[np.full(d, float(l2)), 0.0]
    theta = np.zeros(d + 1)

    def loss(t: np.ndarray) -> float:
        s = z @ t
        return float(np.sum(np.logaddexp(0.0, s) - target * s) + 0.5 * l2 * t[:d] @ t[:d])

    current = loss(theta)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ theta)))
        gradient = z.T @ (p - target) + penalty * theta
        hessian = (z.T * (p * (1.0 - p))) @ z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        for _ in range(30):  # backtrack: Newton may overshoot far from the optimum
            trial = theta - scale * step
            value = loss(trial)
            if value <= current + 1e-12:
                break
            scale /= 2.0
        theta, current = trial, value
        if np.abs(scale * step).max() < 1e-9:
            break
    w = theta[:d] if basis is None else basis @ theta[:d]
    return w, float(theta[d])


def probe_folds(labels: np.ndarray, groups: Sequence[str] | None, k: int, seed: int
                ) -> list[np.ndarray]:
    """Each film's held-out fold: ``k`` index arrays, stratified by ``labels``, grouped.

    The folds of :func:`cxrexplain.data.k_folds` (its greedy stratified grouping); ``k``
    shrinks to the number of groups when there are fewer.

    Example:
        >>> [f.tolist() for f in probe_folds(np.array([0, 0, 1, 1]), None, 2, seed=0)]
        [[0, 2], [1, 3]]
    """
    from cxrexplain.data import LabeledFiles, k_folds

    names = tuple(str(v) for v in range(int(labels.max()) + 1))
    files = LabeledFiles(tuple(str(i) for i in range(len(labels))),
                         tuple(int(v) for v in labels), names)
    if groups is not None:
        k = min(k, len(set(groups)))
        of = list(groups)
        folds = k_folds(files, k, seed, groups=lambda path: of[int(path)])
    else:
        folds = k_folds(files, k, seed)
    return [np.sort(np.array([int(p) for p in f.test.paths], np.int64)) for f in folds]


def encoding_probe(
    features: Mapping[str, np.ndarray],
    attributes: Mapping[str, Sequence[str | None]],
    *,
    patients: Sequence[str | None] | None = None,
    k: int = 5,
    l2: float = 1.0,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[EncodingRow]:
    """Probe each attribute from each feature set; the held-out AUC with its interval.

    Args:
        features: ``{name: (N, D) features}`` (:class:`~cxrexplain.auditing.features.
            FeatureSets` gives ``"model"``, ``"untrained"`` and ``"pixels"``).
        attributes: ``{column: value per film}`` (None: unknown, left out).
        patients: Each film's patient (None entries: a patient of their own); the folds
            keep each patient's films together.
        k: Cross-validation folds (fewer when there are fewer patients).
        l2: The regression's penalty on standardised features.
        n_resamples: Bootstrap resamples of the AUC's interval.
        level: The interval's level.
        seed: Seed of the folds and the resamples.

    Returns:
        One :class:`EncodingRow` per attribute and feature set (attributes outer).

    Raises:
        InvalidInputError: Feature sets or attributes of another length than the films,
            non-finite features, bad ``k``, ``l2`` or ``level``.
    """
    sets = {str(name): _features(name, value) for name, value in features.items()}
    counts = {len(f) for f in sets.values()} | {len(v) for v in attributes.values()}
    if patients is not None:
        counts.add(len(patients))
    if len(counts) > 1:
        raise InvalidInputError(
            f"features, attributes: expected one row per film, got lengths {sorted(counts)}")
    check_int(k, "k", minimum=2)
    check_number(l2, "l2", low=0.0, low_open=True)
    if not 0.0 < float(level) < 1.0:
        raise InvalidInputError(f"level: expected a number in (0, 1), got {level!r}")
    quantiles = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    rows = []
    for attribute, raw in attributes.items():
        values = [None if v is None else str(v) for v in raw]
        found = {v: values.count(v) for v in sorted_values(values)}
        kept_values = tuple(v for v, n in found.items() if n >= k)
        keep = np.array([v in kept_values for v in values], bool)
        idx = np.flatnonzero(keep)
        if len(kept_values) < 2:
            rows += [EncodingRow(attribute, name, len(idx), kept_values, 0,
                                 patients is not None) for name in sets]
            continue
        labels = np.array([kept_values.index(v) for v in np.array(values, object)[idx]],
                          np.int64)
        groups: list[str] | None = None if patients is None else [
            _patient(patients[int(i)], int(i)) for i in idx]
        folds = probe_folds(labels, groups, k, seed)
        weights = bootstrap_weights(len(idx), n_resamples, seed).astype(np.float64)
        for name, matrix in sets.items():
            scores = _held_out_scores(matrix[idx], labels, len(kept_values), folds, l2)
            point = float(macro_auc(labels, scores, np.ones((1, len(idx))))[0])
            resampled = macro_auc(labels, scores, weights)
            finite = resampled[~np.isnan(resampled)]
            low, high = (np.quantile(finite, quantiles) if finite.size
                         else (float("nan"), float("nan")))
            rows.append(EncodingRow(attribute, name, len(idx), kept_values, len(folds),
                                    groups is not None,
                                    Interval(point, float(low), float(high))))
    return rows


def _held_out_scores(x: np.ndarray, labels: np.ndarray, classes: int,
                     folds: list[np.ndarray], l2: float) -> np.ndarray:
    """``(N, classes)`` each film's score from the probes fitted without its fold."""
    scores = np.zeros((len(x), classes))
    for test in folds:
        train = np.setdiff1d(np.arange(len(x)), test)
        mean = x[train].mean(axis=0)
        std = x[train].std(axis=0)
        std[std < 1e-12] = 1.0
        fit_x, test_x = (x[train] - mean) / std, (x[test] - mean) / std
        targets = range(1, 2) if classes == 2 else range(classes)
        for c in targets:
            w, b = logistic_fit(fit_x, (labels[train] == c).astype(np.float64), l2)
            scores[test, c] = test_x @ w + b
        if classes == 2:
            scores[test, 0] = -scores[test, 1]
    return scores


def _patient(patient: str | None, film: int) -> str:
    """A film's group: its patient, or a group of its own."""
    return f"\0film{film}" if patient is None else str(patient)


def _features(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2 or not len(array):
        raise InvalidInputError(
            f"features: '{name}' must be (N, D) numbers, got {describe(value)}")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"features: '{name}' has non-finite values")
    return array
