"""The self-contained demo behind ``cxrexplain demo``: no data, no downloads, a few minutes.

It generates synthetic chest X-ray phantoms with planted opacities (``cxrexplain.synthetic``),
trains the reference CAM model on them, explains held-out phantoms with every explainer,
scores the maps against the planted lesions, and writes an HTML report with the overlay grid,
the metrics table and the model summary, plus the PNGs, ``metrics.json`` and the trained
``model.keras``.

Example:
    >>> from cxrexplain.demo import run_demo
    >>> run_demo("demo-out", quick=True)  # doctest: +SKIP
    PosixPath('demo-out/index.html')
"""

from __future__ import annotations

import html
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrexplain._files import atomic_write_text
from cxrexplain._version import __version__
from cxrexplain.classifier import Classifier
from cxrexplain.drawing import plot_explanations, save_figure, save_overlay
from cxrexplain.evaluate import ExplainerEvaluation, evaluate_explainers
from cxrexplain.explain import Explainer, explainers
from cxrexplain.models import build
from cxrexplain.synthetic import PhantomSet, generate
from cxrexplain.training import recalibrate_batchnorm

__all__ = ["DemoSettings", "run_demo"]

CLASSES = ("NORMAL", "PNEUMONIA", "COVID")

_EXPLAINER_OPTIONS: dict[str, dict[str, Any]] = {
    "scorecam": {"max_channels": 32},
    # the sampling methods with fewer samples than their defaults (50, 50 and 25 x 25
    # gradient evaluations per film), so that each costs about what occlusion costs
    "smoothgrad": {"samples": 16},
    "integrated_gradients": {"steps": 16},
    "smooth_ig": {"samples": 8, "steps": 8},
    "rise": {"samples": 200},  # 4000 by default: about occlusion's cost at 200
}
"""Settings of the explainers in the demo that differ from their defaults (by registry name)."""


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run."""

    size: int = 96
    train_images: int = 600
    test_images: int = 60
    epochs: int = 20
    filters: tuple[int, ...] = (16, 32, 64)
    shown: int = 4

    @classmethod
    def quick(cls) -> DemoSettings:
        """A smoke-test run (well under a minute)."""
        return cls(size=64, train_images=150, test_images=24, epochs=4, filters=(8, 16),
                   shown=2)


def run_demo(out_dir: str | os.PathLike[str], *, quick: bool = False, seed: int = 0,
             settings: DemoSettings | None = None) -> Path:
    """Run the demo and write ``out_dir/index.html`` (and PNGs, metrics.json, model.keras).

    Args:
        out_dir: Output folder (created).
        quick: Use :meth:`DemoSettings.quick` (a smoke test).
        seed: Seed of the phantoms and of training.
        settings: Explicit sizes (overrides ``quick``).

    Returns:
        The path of ``index.html``.

    Example:
        >>> run_demo("demo", quick=True)  # doctest: +SKIP
    """
    config = settings or (DemoSettings.quick() if quick else DemoSettings())
    out = Path(os.fspath(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)

    _say(f"1/4 generating {config.train_images} + {config.test_images} phantoms "
         f"({config.size}x{config.size}, classes {', '.join(CLASSES)})")
    train = generate(config.train_images, size=config.size, classes=CLASSES, seed=seed)
    test = generate(config.test_images, size=config.size, classes=CLASSES, seed=seed + 1)

    _say(f"2/4 training cam_cnn for {config.epochs} epochs")
    classifier, accuracy, history = _train(train, test, config)
    classifier.save(out / "model.keras")

    sick = np.flatnonzero(test.labels > 0)
    applying = _applying(classifier)
    _say(f"3/4 explaining and scoring {len(sick)} held-out phantoms with "
         f"{', '.join(applying)}")
    methods = [cls(classifier, **_EXPLAINER_OPTIONS.get(name, {}))
               for name, cls in applying.items()]
    table = evaluate_explainers(
        classifier, methods, test.images[sick], targets=test.labels[sick],
        boxes=_boxes(test.masks[sick]), masks=test.masks[sick], tolerance=0.05 * config.size,
        steps=16, randomization_layers=2, seed=seed,
    )

    _say("4/4 drawing the report")
    shown = sick[: config.shown]
    explanations = [m.explain(test.images[shown], test.labels[shown]) for m in methods]
    figure = plot_explanations(test.images[shown], explanations,
                               class_names=list(CLASSES), boxes=_boxes(test.masks[shown]))
    save_figure(figure, out / "grid.png", dpi=90)
    for exp in explanations:
        save_overlay(out / "overlays" / f"{exp.method}.png", test.images[shown[0]],
                     exp.heatmaps[0], alpha=0.45)
    elapsed = time.perf_counter() - started
    metrics = {
        "cxrexplain": __version__,
        "settings": config.__dict__ | {"filters": list(config.filters)},
        "explainer_options": _EXPLAINER_OPTIONS,
        "classification_accuracy": accuracy,
        "training_loss": history,
        "explanations": table.to_dict(),
        "seconds": round(elapsed, 1),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    report = atomic_write_text(out / "index.html",
                               _html(table, accuracy, classifier, config, elapsed))
    _say(f"done in {elapsed:.0f} s: held-out accuracy {accuracy:.1%}; report {report}")
    return report


def _say(message: str) -> None:
    print(f"[cxrexplain demo] {message}", flush=True)


def _train(train: PhantomSet, test: PhantomSet, config: DemoSettings
           ) -> tuple[Classifier, float, list[float]]:
    model = build("cam_cnn", input_shape=(config.size, config.size, 1),
                  num_classes=len(CLASSES), filters=config.filters)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train.images, train.labels, epochs=config.epochs, batch_size=32,
                        verbose=2, shuffle=True)
    # the moving averages lag the last epochs' weights: use the final weights' statistics
    recalibrate_batchnorm(model, train.images, batch_size=32)
    classifier = Classifier(model, list(CLASSES))
    predicted = classifier.predict_proba(test.images).argmax(axis=1)
    accuracy = float((predicted == test.labels).mean())
    return classifier, accuracy, [round(float(v), 4) for v in history.history["loss"]]


def _boxes(masks: np.ndarray) -> list[np.ndarray]:
    """Bounding boxes (x, y, w, h) of each connected lesion mask's pixels."""
    boxes = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            boxes.append(np.zeros((1, 4)))
            continue
        boxes.append(np.array([[xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                ys.max() - ys.min() + 1]], float))
    return boxes


def _applying(classifier: Classifier) -> dict[str, type[Explainer]]:
    """The registered methods that apply to the demo's CNN (not attention rollout)."""
    return {name: cls for name, cls in explainers().items() if cls.applies_to(classifier)}


def _html(table: ExplainerEvaluation, accuracy: float, classifier: Classifier,
          config: DemoSettings, elapsed: float) -> str:
    lines: list[str] = []
    classifier.model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    summary = html.escape("\n".join(lines))
    header, rows = _metrics_html(table)
    overlays = "".join(
        f'<figure><img src="overlays/{name}.png" alt="{name} overlay">'
        f"<figcaption>{name}</figcaption></figure>" for name in _applying(classifier)
    )
    return _TEMPLATE.format(
        version=__version__, accuracy=f"{accuracy:.1%}", size=config.size,
        train=config.train_images, test=config.test_images, epochs=config.epochs,
        header=header, rows=rows, overlays=overlays, summary=summary,
        seconds=f"{elapsed:.0f}", images=table.images, legend=html.escape(table.legend()),
    )


def _metrics_html(table: ExplainerEvaluation) -> tuple[str, str]:
    """The metrics table's header and body rows, each value above its interval and gap."""
    names, cells = table._table(3, labels=True)
    header = "<tr>" + "".join(f"<th>{html.escape(name)}</th>" for name in names) + "</tr>"
    rows = []
    for method, *values in cells:
        parts = [f"<td>{html.escape(method)}</td>"]
        for cell in values:
            value, _, detail = cell.partition(" ")  # "0.448 [0.407, 0.486] (+663%*)"
            small = f"<small>{html.escape(detail)}</small>" if detail else ""
            parts.append(f"<td>{html.escape(value)}{small}</td>")
        rows.append("<tr>" + "".join(parts) + "</tr>")
    return header, "\n".join(rows)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>cxrexplain demo</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; }}
.table-scroll {{ overflow-x: auto; margin: 1rem 0; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: right; }}
th {{ vertical-align: bottom; background: #f5f5f5; }}
th:first-child, td:first-child {{ text-align: left; }}
td small {{ display: block; color: #666; font-size: 0.75rem; white-space: nowrap; }}
img {{ max-width: 100%; }}
figure {{ display: inline-block; margin: 0.3rem; width: 150px; text-align: center; }}
pre {{ background: #f5f5f5; padding: 1rem; overflow-x: auto; font-size: 0.8rem; }}
</style></head>
<body>
<h1>cxrexplain demo</h1>
<p>A <code>cam_cnn</code> trained for {epochs} epochs on {train} synthetic chest X-ray phantoms
({size}x{size}; NORMAL, PNEUMONIA with one dense opacity, COVID with bilateral faint
opacities) reaches <strong>{accuracy}</strong> accuracy on {test} held-out phantoms. Every
explainer explains the true class of the {images} held-out phantoms with a lesion; the green
boxes and the scores use the planted lesion masks. Run time {seconds} s; cxrexplain {version}.
</p>
<h2>Overlay grid</h2>
<img id="grid" src="grid.png" alt="X-rays with each explainer's heatmap">
<h2>How well each explainer localises the lesion</h2>
<div class="table-scroll"><table id="metrics"><thead>{header}</thead><tbody>
{rows}
</tbody></table></div>
<p>{legend}</p>
<p>Pointing game: share of maps whose maximum falls in the lesion's box. Energy in mask: share
of the map's mass on the lesion. Deletion / insertion AUC: target probability as the most
important pixels are removed / revealed (Petsiuk et al. 2018). Randomization: Spearman
correlation of the maps after re-initialising the top two layers (Adebayo et al. 2018; lower
is better). "random" and "centre_gaussian" are model-blind baselines.</p>
<h2>One phantom, every explainer</h2>
{overlays}
<h2>Model</h2>
<pre>{summary}</pre>
<p>Files: <a href="metrics.json">metrics.json</a>, <a href="model.keras">model.keras</a>
(try <code>cxrexplain explain model.keras IMAGE --out OUT</code>).</p>
</body></html>
"""

