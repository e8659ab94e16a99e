"""One table that says which explainer to trust for a model: methods x metrics.

:func:`evaluate_explainers` explains the same images with several methods and scores every map
with the metrics that apply (pointing game when boxes are given, mask energy when masks are
given, deletion and insertion AUC, the randomization check), next to two baselines that know
nothing about the model: a random map and a centred Gaussian. A method that does not beat the
centred Gaussian on the pointing game is not localising anything.

Example:
    >>> import cxrexplain as cx
    >>> table = cx.evaluate_explainers(clf, ["cam", "gradcam"], images, boxes=boxes, steps=10,
    ...                                randomization_layers=1)
    >>> table.metrics
    ['pointing_game', 'deletion_auc', 'insertion_auc', 'randomization_spearman',
     'seconds_per_image']
    >>> print(table.to_markdown())
    | method | pointing game (higher) | deletion AUC (lower) | ...
    |---|---:|---:|---:|---:|---:|
    | cam | 1.000 [1.000, 1.000] (+0%) | ...
    | gradcam | ...
    | random | ... | n/a | n/a |
    | centre_gaussian | ... | n/a | n/a |
    <BLANKLINE>
    [low, high]: 95% percentile-bootstrap interval over the 4 images (1000 resamples). ...
    <BLANKLINE>
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from cxrexplain._checks import check_number, describe
from cxrexplain._tables import format_number, json_number, markdown_table, nanmean
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain import Explainer, get_explainer
from cxrexplain.io import ImageSource
from cxrexplain.metrics import (
    Interval,
    bootstrap_ci,
    deletion_auc,
    energy_in_mask,
    insertion_auc,
    paired_bootstrap_ci,
    pointing_game,
    randomization_check,
)
from cxrexplain.metrics.trust import pair_baseline, repeatability, reproducibility

__all__ = ["BASELINES", "ExplainerEvaluation", "baseline_maps", "evaluate_explainers"]

BASELINES = ("random", "centre_gaussian")
"""Model-blind reference maps scored beside the methods."""

_LABELS = {
    "pointing_game": "pointing game (higher)",
    "mask_energy": "energy in mask (higher)",
    "deletion_auc": "deletion AUC (lower)",
    "insertion_auc": "insertion AUC (higher)",
    "randomization_spearman": "randomization Spearman (lower)",
    "repeatability_ssim": "repeatability SSIM (higher)",
    "reproducibility_ssim": "reproducibility SSIM (higher)",
    "pair_ssim": "random-pair SSIM (the floor)",
    "seconds_per_image": "s / image",
}


@dataclass(frozen=True)
class ExplainerEvaluation:
    """A methods x metrics table.

    Attributes:
        rows: One dict per method (then the baselines): ``{"method": name, metric: value}``;
            a metric that does not apply is NaN (shown as n/a).
        metrics: The metric columns, in order.
        images: Number of images scored.
        settings: The settings used (tolerance, steps, targets, ...), for the record.
    """

    rows: list[dict[str, Any]]
    metrics: list[str]
    images: int
    settings: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    reference: str | None = None
    reference_values: dict[str, float] = field(default_factory=dict)
    differences: dict[str, dict[str, Interval]] = field(default_factory=dict)

    def interval(self, method: str, metric: str) -> tuple[float, float]:
        """The 95% interval ``(low, high)`` of one cell (NaN, NaN when it has none).

        Example:
            >>> table = ExplainerEvaluation([{"method": "cam", "pointing_game": 0.5}],
            ...     ["pointing_game"], images=4, intervals={"cam": {"pointing_game": (0.0, 1.0)}})
            >>> table.interval("cam", "pointing_game")
            (0.0, 1.0)
        """
        self.value(method, metric)  # the method must exist
        return self.intervals.get(method, {}).get(metric, (math.nan, math.nan))

    def gap(self, method: str, metric: str) -> float:
        """The percentage gap of one cell to the reference: ``100 * (value - ref) / |ref|``.

        NaN without a reference value for the metric, or when the reference is 0.

        Example:
            >>> table = ExplainerEvaluation(
            ...     [{"method": "cam", "pointing_game": 0.3}], ["pointing_game"], images=22,
            ...     reference="radiologists", reference_values={"pointing_game": 0.6})
            >>> table.gap("cam", "pointing_game")
            -50.0
        """
        value = self.value(method, metric)
        ref = self.reference_values.get(metric, math.nan)
        if math.isnan(ref) or ref == 0 or math.isnan(value):
            return math.nan
        return 100.0 * (value - ref) / abs(ref)

    def value(self, method: str, metric: str) -> float:
        """One cell of the table.

        Example:
            >>> table = ExplainerEvaluation([{"method": "gradcam", "pointing_game": 0.73}],
            ...                             ["pointing_game"], images=30)
            >>> table.value("gradcam", "pointing_game")
            0.73
        """
        for row in self.rows:
            if row["method"] == method:
                return float(row[metric])
        raise InvalidInputError(f"method: {method!r} is not in the table")

    def to_markdown(self, digits: int = 3) -> str:
        """The table as Markdown: each cell ``mean [low, high] (gap)``, then a legend.

        NaN is shown as n/a. The gap is the percentage difference to the reference row (or
        reference numbers); ``*`` marks a gap whose paired-bootstrap interval excludes 0.
        """
        header, rows = self._table(digits, labels=True)
        return markdown_table(header, rows) + "\n\n" + self.legend() + "\n"

    def legend(self) -> str:
        """One sentence that says what the brackets, gaps and stars of the table mean."""
        level = self.settings.get("level", 0.95)
        resamples = self.settings.get("n_resamples", 1000)
        text = (f"[low, high]: {level:.0%} percentile-bootstrap interval over the "
                f"{self.images} images ({resamples} resamples).")
        if self.reference is not None:
            text += f" (+x%): gap to {self.reference}"
            text += ("; * where the paired-bootstrap interval of the difference excludes 0."
                     if self.differences else ".")
        return text

    def _table(self, digits: int, *, labels: bool) -> tuple[list[str], list[list[str]]]:
        """Header and formatted rows (NaN as n/a), shared by Markdown and the demo's HTML."""
        header = ["method", *(_LABELS.get(m, m) if labels else m for m in self.metrics)]
        rows = [[str(row["method"]), *(self._cell(str(row["method"]), m, digits)
                                       for m in self.metrics)] for row in self.rows]
        return header, rows

    def _cell(self, method: str, metric: str, digits: int) -> str:
        text = format_number(self.value(method, metric), digits)
        low, high = self.interval(method, metric)
        if not (math.isnan(low) or math.isnan(high)):
            text += f" [{format_number(low, digits)}, {format_number(high, digits)}]"
        gap = self.gap(method, metric)
        if not math.isnan(gap) and method != self.reference:
            difference = self.differences.get(method, {}).get(metric)
            star = "*" if difference is not None and (difference.low > 0 or
                                                       difference.high < 0) else ""
            text += f" ({gap:+.0f}%{star})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None): rows, intervals, gaps and differences."""
        rows = [{k: (json_number(v) if isinstance(v, float) else v)
                 for k, v in row.items()} for row in self.rows]
        intervals = {method: {metric: [json_number(low), json_number(high)]
                              for metric, (low, high) in by_metric.items()}
                     for method, by_metric in self.intervals.items()}
        gaps = {str(row["method"]): {m: json_number(self.gap(str(row["method"]), m))
                                     for m in self.metrics if m in self.reference_values}
                for row in self.rows}
        differences = {method: {metric: [json_number(v) for v in interval]
                                for metric, interval in by_metric.items()}
                       for method, by_metric in self.differences.items()}
        return {"images": self.images, "metrics": self.metrics, "rows": rows,
                "intervals": intervals, "reference": self.reference,
                "reference_values": {k: json_number(v) for k, v in
                                     self.reference_values.items()},
                "gaps_percent": gaps, "differences": differences, "settings": self.settings}

    def to_json(self, indent: int = 2) -> str:
        """The table as JSON (NaN becomes null)."""
        return json.dumps(self.to_dict(), indent=indent)


def baseline_maps(kind: str, count: int, size: tuple[int, int], *, seed: int = 0
                  ) -> np.ndarray:
    """Model-blind maps: ``"random"`` (uniform noise) or ``"centre_gaussian"`` (sigma 1/4).

    Args:
        kind: One of :data:`BASELINES`.
        count: Number of maps.
        size: ``(height, width)``.
        seed: Seed of the random maps.

    Returns:
        ``(count, height, width)`` float32 in [0, 1].

    Example:
        >>> maps = baseline_maps("centre_gaussian", 1, (5, 5))
        >>> maps.shape, float(maps[0, 2, 2]), float(maps[0, 0, 0]) < 0.5
        ((1, 5, 5), 1.0, True)
    """
    height, width = size
    if kind == "random":
        return np.random.default_rng(seed).random((count, height, width)).astype(np.float32)
    if kind == "centre_gaussian":
        y = (np.arange(height) - (height - 1) / 2) / (0.25 * height)
        x = (np.arange(width) - (width - 1) / 2) / (0.25 * width)
        gauss = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)
        return np.repeat((gauss / gauss.max())[None], count, axis=0)
    raise InvalidInputError(f"kind: expected one of {BASELINES}, got {kind!r}")


def evaluate_explainers(
    classifier: Classifier | keras.Model,
    methods: Sequence[str | type[Explainer] | Explainer],
    images: ImageSource | Iterable[ImageSource],
    *,
    targets: Any = None,
    boxes: Any = None,
    masks: Any = None,
    tolerance: float = 15,
    steps: int = 20,
    randomization_layers: int | None = 3,
    baselines: bool = True,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = False,
    reference: str | Mapping[str, float] | None = "centre_gaussian",
    n_resamples: int = 1000,
    level: float = 0.95,
    repeat: Classifier | keras.Model | None = None,
    reproduce: Classifier | keras.Model | None = None,
) -> ExplainerEvaluation:
    """Explain the images with each method and score every map; baselines included.

    Every figure is the mean over the images with its percentile-bootstrap interval
    (:func:`cxrexplain.metrics.bootstrap_ci`), and its percentage gap to a reference: a row of
    the table (default the centred Gaussian, the blob that knows nothing about the model),
    for which each method's difference also gets a paired-bootstrap interval
    (:func:`cxrexplain.metrics.paired_bootstrap_ci`), or numbers the user gives (a
    radiologist benchmark).

    Args:
        classifier: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        methods: Explainer names (``"cam"``, ``"gradcam"``, ...), classes or instances.
        images: The images (anything :func:`cxrexplain.load_images` accepts).
        targets: Classes to explain (None: each image's predicted class); all methods explain
            the same targets.
        boxes: Optional boxes for the pointing game, in pixels of the model's input size
            (see :func:`cxrexplain.metrics.pointing_game`).
        masks: Optional masks (lungs, lesions) for the energy-in-mask metric.
        tolerance: Pointing-game tolerance in pixels.
        steps: Deletion/insertion steps.
        randomization_layers: Top layers re-initialised in the randomization check (None
            skips it; it costs one explanation pass per layer).
        baselines: Add the random and centred-Gaussian rows.
        batch_size: Images per pass.
        seed: Seed of the random baseline, of the randomization and of the bootstrap.
        progress: Print one line per method.
        reference: The row the gaps are measured to (a method or baseline name), a mapping
            ``{metric: value}`` (e.g. ``{"pointing_game": 0.60}`` from a reader study), or
            None for no gaps. The default row is skipped silently when ``baselines`` is False.
        n_resamples: Bootstrap resamples of each interval.
        level: Confidence level of the intervals.
        repeat: The same architecture trained again (another seed): each method also explains
            the images, for the same classes, with this model, and ``repeatability_ssim`` is
            the SSIM of the two maps per image (:func:`cxrexplain.metrics.repeatability`,
            Arun et al. 2021).
        reproduce: Another architecture trained on the same data: ``reproducibility_ssim``
            likewise (:func:`cxrexplain.metrics.reproducibility`). With either, the column
            ``pair_ssim`` gives each method's floor: the SSIM of its maps of random pairs of
            images (:func:`cxrexplain.metrics.pair_baseline`). An explainer instance is
            rebuilt on the other model with its class's defaults.

    Returns:
        :class:`ExplainerEvaluation`.

    Raises:
        InvalidInputError: No methods, unknown method names, mismatched boxes or masks, a
            reference row that is not in the table or a reference metric it does not have.

    Example:
        >>> table = evaluate_explainers(clf, ["cam", "gradcam"], batch, masks=lungs, steps=5,
        ...                             randomization_layers=None)
        >>> table.images, table.metrics
        (4, ['mask_energy', 'deletion_auc', 'insertion_auc', 'seconds_per_image'])
        >>> low, high = table.interval("cam", "mask_energy")
        >>> bool(low <= table.value("cam", "mask_energy") <= high)
        True
    """
    clf = classifier if isinstance(classifier, Classifier) else Classifier(classifier)
    if not methods:
        raise InvalidInputError("methods: give at least one explainer")
    explainers = [_explainer(clf, method) for method in methods]
    batch = clf.prepare(images)
    count, height, width = batch.shape[:3]
    others = {"repeatability_ssim": repeat, "reproducibility_ssim": reproduce}
    trusted = {column: (other if isinstance(other, Classifier) else Classifier(other))
               for column, other in others.items() if other is not None}
    columns = _columns(boxes is not None, masks is not None, randomization_layers is not None,
                       tuple(trusted))
    per_image: dict[str, dict[str, np.ndarray]] = {}
    seconds: dict[str, float] = {}
    chosen = targets
    for explainer in explainers:
        started = time.perf_counter()
        exp = explainer.explain(batch, chosen, batch_size=batch_size)
        name = explainer.name
        if name in per_image:  # the same method twice (other layers or settings)
            name = f"{name} ({explainer.layer})"
        seconds[name] = (time.perf_counter() - started) / count
        chosen = exp.targets  # every method and baseline explains the same classes
        values = _score(clf, batch, exp.heatmaps, chosen, boxes, masks, tolerance, steps,
                        batch_size)
        if randomization_layers is not None:
            check = randomization_check(explainer, batch, targets=chosen,
                                        layers=randomization_layers, seed=seed,
                                        batch_size=batch_size)
            values["randomization_spearman"] = np.asarray(check.correlations[-1], np.float64)
        if trusted:
            values.update(_trust(explainer, trusted, batch, exp.heatmaps, chosen, batch_size,
                                 seed))
        per_image[name] = values
        if progress:
            print(f"  {name}: " + ", ".join(
                f"{k} {nanmean(v):.3f}" for k, v in values.items()), flush=True)
    if baselines:
        for kind in BASELINES:
            maps = baseline_maps(kind, count, (height, width), seed=seed)
            per_image[kind] = _score(clf, batch, maps, chosen, boxes, masks, tolerance, steps,
                                     batch_size)
    rows = [{"method": method,
             **{c: (seconds.get(method, math.nan) if c == "seconds_per_image"
                    else nanmean(values.get(c, [math.nan]))) for c in columns}}
            for method, values in per_image.items()]
    intervals = {method: {metric: _interval(bootstrap_ci(array, n_resamples=n_resamples,
                                                         level=level, seed=seed))
                          for metric, array in values.items()}
                 for method, values in per_image.items()}
    ref_name, ref_values, differences = _reference(reference, per_image, rows, columns,
                                                   n_resamples, level, seed)
    settings = {"tolerance": tolerance, "steps": steps,
                "randomization_layers": randomization_layers,
                "targets": [int(t) for t in np.asarray(chosen).ravel()],
                "image_size": [int(height), int(width)], "n_resamples": n_resamples,
                "level": level, "seed": seed}
    return ExplainerEvaluation(rows, columns, int(count), settings, intervals, ref_name,
                               ref_values, differences)


def _interval(interval: Interval) -> tuple[float, float]:
    return (float(interval.low), float(interval.high))


def _reference(
    reference: str | Mapping[str, float] | None,
    per_image: dict[str, dict[str, np.ndarray]],
    rows: list[dict[str, Any]],
    columns: list[str],
    n_resamples: int,
    level: float,
    seed: int,
) -> tuple[str | None, dict[str, float], dict[str, dict[str, Interval]]]:
    """The reference's name, its value per metric, and each row's paired difference to it."""
    if reference is None:
        return None, {}, {}
    if isinstance(reference, Mapping):
        values: dict[str, float] = {}
        for metric, value in reference.items():
            if metric not in columns:
                raise InvalidInputError(
                    f"reference: the table has no metric {metric!r}; it has {columns}")
            values[metric] = check_number(value, f"reference[{metric!r}]")
        return "reference", values, {}
    if not isinstance(reference, str):
        raise InvalidInputError(
            f"reference: expected a row name, a {{metric: value}} mapping or None, got "
            f"{describe(reference)}")
    if reference not in per_image:
        if reference == "centre_gaussian":  # the default, without baselines: no gaps
            return None, {}, {}
        raise InvalidInputError(
            f"reference: no row {reference!r} in the table; rows: {list(per_image)}")
    row = next(r for r in rows if r["method"] == reference)
    values = {m: float(row[m]) for m in columns if m != "seconds_per_image"}
    mine = per_image[reference]
    differences = {
        method: {metric: paired_bootstrap_ci(array, mine[metric], n_resamples=n_resamples,
                                             level=level, seed=seed)
                 for metric, array in by_metric.items() if metric in mine}
        for method, by_metric in per_image.items() if method != reference
    }
    return reference, values, differences


def _explainer(clf: Classifier, method: str | type[Explainer] | Explainer) -> Explainer:
    if isinstance(method, Explainer):
        return method
    if isinstance(method, str):
        return get_explainer(method)(clf)
    if isinstance(method, type) and issubclass(method, Explainer):
        return method(clf)
    raise InvalidInputError(f"methods: expected names, classes or explainers, got {method!r}")


def _columns(has_boxes: bool, has_masks: bool, randomized: bool,
             trust: tuple[str, ...] = ()) -> list[str]:
    columns = []
    if has_boxes:
        columns.append("pointing_game")
    if has_masks:
        columns.append("mask_energy")
    columns += ["deletion_auc", "insertion_auc"]
    if randomized:
        columns.append("randomization_spearman")
    if trust:
        columns += [*trust, "pair_ssim"]
    columns.append("seconds_per_image")
    return columns


def _trust(explainer: Explainer, others: Mapping[str, Classifier], batch: np.ndarray,
           maps: np.ndarray, targets: Any, batch_size: int, seed: int
           ) -> dict[str, np.ndarray]:
    """Arun et al.'s trust tests of one method: its maps under the other models, and the
    random-pair floor of its own maps."""
    values: dict[str, np.ndarray] = {}
    for column, other in others.items():
        twin = type(explainer)(other)
        theirs = twin.explain(other.prepare(batch), targets, batch_size=batch_size)
        compare = repeatability if column == "repeatability_ssim" else reproducibility
        values[column] = compare(maps, theirs.heatmaps)
    values["pair_ssim"] = (pair_baseline(maps, seed=seed) if len(maps) > 1
                           else np.full(len(maps), np.nan))
    return values


def _score(clf: Classifier, batch: np.ndarray, maps: np.ndarray, targets: Any, boxes: Any,
           masks: Any, tolerance: float, steps: int, batch_size: int) -> dict[str, np.ndarray]:
    """Each metric's per-image values (float64, NaN where a metric does not apply)."""
    values: dict[str, np.ndarray] = {}
    if boxes is not None:
        values["pointing_game"] = pointing_game(maps, boxes, tolerance=tolerance).hits.astype(
            np.float64)
    if masks is not None:
        with np.errstate(all="ignore"):
            values["mask_energy"] = np.asarray(energy_in_mask(maps, masks), np.float64)
    values["deletion_auc"] = np.asarray(deletion_auc(
        clf, batch, maps, targets=targets, steps=steps, batch_size=batch_size), np.float64)
    values["insertion_auc"] = np.asarray(insertion_auc(
        clf, batch, maps, targets=targets, steps=steps, batch_size=batch_size), np.float64)
    return values
