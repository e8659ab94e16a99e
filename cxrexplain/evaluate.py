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
    | cam | ...
    | gradcam | ...
    | random | ... | n/a | n/a |
    | centre_gaussian | ... | n/a | n/a |
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from cxrexplain._tables import format_number, json_number, markdown_table
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain import Explainer, get_explainer
from cxrexplain.io import ImageSource
from cxrexplain.metrics import (
    deletion_auc,
    energy_in_mask,
    insertion_auc,
    pointing_game,
    randomization_check,
)

__all__ = ["BASELINES", "ExplainerEvaluation", "baseline_maps", "evaluate_explainers"]

BASELINES = ("random", "centre_gaussian")
"""Model-blind reference maps scored beside the methods."""

_LABELS = {
    "pointing_game": "pointing game (higher)",
    "mask_energy": "energy in mask (higher)",
    "deletion_auc": "deletion AUC (lower)",
    "insertion_auc": "insertion AUC (higher)",
    "randomization_spearman": "randomization Spearman (lower)",
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
        """The table as Markdown (NaN shown as n/a)."""
        header, rows = self._table(digits, labels=True)
        return markdown_table(header, rows) + "\n"

    def _table(self, digits: int, *, labels: bool) -> tuple[list[str], list[list[str]]]:
        """Header and formatted rows (NaN as n/a), shared by Markdown and the demo's HTML."""
        header = ["method", *(_LABELS.get(m, m) if labels else m for m in self.metrics)]
        rows = [[str(row["method"]), *(format_number(float(row[m]), digits)
                                       for m in self.metrics)] for row in self.rows]
        return header, rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        rows = [{k: (json_number(v) if isinstance(v, float) else v)
                 for k, v in row.items()} for row in self.rows]
        return {"images": self.images, "metrics": self.metrics, "rows": rows,
                "settings": self.settings}

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
) -> ExplainerEvaluation:
    """Explain the images with each method and score every map; baselines included.

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
        seed: Seed of the random baseline and of the randomization.
        progress: Print one line per method.

    Returns:
        :class:`ExplainerEvaluation`.

    Raises:
        InvalidInputError: No methods, unknown method names, mismatched boxes or masks.

    Example:
        >>> table = evaluate_explainers(clf, ["cam", "gradcam"], batch, masks=lungs, steps=5,
        ...                             randomization_layers=None)
        >>> table.images, table.metrics
        (4, ['mask_energy', 'deletion_auc', 'insertion_auc', 'seconds_per_image'])
    """
    clf = classifier if isinstance(classifier, Classifier) else Classifier(classifier)
    if not methods:
        raise InvalidInputError("methods: give at least one explainer")
    explainers = [_explainer(clf, method) for method in methods]
    batch = clf.prepare(images)
    count, height, width = batch.shape[:3]
    columns = _columns(boxes is not None, masks is not None, randomization_layers is not None)
    rows: list[dict[str, Any]] = []
    chosen = targets
    for explainer in explainers:
        started = time.perf_counter()
        exp = explainer.explain(batch, chosen, batch_size=batch_size)
        elapsed = (time.perf_counter() - started) / count
        chosen = exp.targets  # every method and baseline explains the same classes
        row = _score(clf, batch, exp.heatmaps, chosen, boxes, masks, tolerance, steps,
                     batch_size)
        row["method"] = explainer.name
        row["seconds_per_image"] = elapsed
        if randomization_layers is not None:
            check = randomization_check(explainer, batch, targets=chosen,
                                        layers=randomization_layers, seed=seed,
                                        batch_size=batch_size)
            row["randomization_spearman"] = float(check.mean[-1])
        rows.append(row)
        if progress:
            print(f"  {explainer.name}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in row.items() if k != "method"), flush=True)
    if baselines:
        for kind in BASELINES:
            maps = baseline_maps(kind, count, (height, width), seed=seed)
            row = _score(clf, batch, maps, chosen, boxes, masks, tolerance, steps, batch_size)
            row.update(method=kind, seconds_per_image=math.nan,
                       randomization_spearman=math.nan)
            rows.append(row)
    ordered = [{"method": r["method"], **{c: float(r.get(c, math.nan)) for c in columns}}
               for r in rows]
    settings = {"tolerance": tolerance, "steps": steps,
                "randomization_layers": randomization_layers,
                "targets": [int(t) for t in np.asarray(chosen).ravel()],
                "image_size": [int(height), int(width)]}
    return ExplainerEvaluation(ordered, columns, int(count), settings)


def _explainer(clf: Classifier, method: str | type[Explainer] | Explainer) -> Explainer:
    if isinstance(method, Explainer):
        return method
    if isinstance(method, str):
        return get_explainer(method)(clf)
    if isinstance(method, type) and issubclass(method, Explainer):
        return method(clf)
    raise InvalidInputError(f"methods: expected names, classes or explainers, got {method!r}")


def _columns(has_boxes: bool, has_masks: bool, randomized: bool) -> list[str]:
    columns = []
    if has_boxes:
        columns.append("pointing_game")
    if has_masks:
        columns.append("mask_energy")
    columns += ["deletion_auc", "insertion_auc"]
    if randomized:
        columns.append("randomization_spearman")
    columns.append("seconds_per_image")
    return columns


def _score(clf: Classifier, batch: np.ndarray, maps: np.ndarray, targets: Any, boxes: Any,
           masks: Any, tolerance: float, steps: int, batch_size: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if boxes is not None:
        row["pointing_game"] = pointing_game(maps, boxes, tolerance=tolerance).hit_rate
    if masks is not None:
        with np.errstate(all="ignore"):
            energy = energy_in_mask(maps, masks)
        row["mask_energy"] = float(np.nanmean(energy)) if np.isfinite(energy).any() else math.nan
    row["deletion_auc"] = float(np.mean(deletion_auc(
        clf, batch, maps, targets=targets, steps=steps, batch_size=batch_size)))
    row["insertion_auc"] = float(np.mean(insertion_auc(
        clf, batch, maps, targets=targets, steps=steps, batch_size=batch_size)))
    return row
