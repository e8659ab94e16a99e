"""The demo (the README's main job): its quick form (report, figures, metrics, model) and, slow, its
full form's held-out accuracy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import cxrexplain as cx
from cxrexplain.cli.demo.report import DemoSettings, run_demo


def test_quick_demo_writes_a_complete_report(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo", quick=True)
    out = report.parent
    page = report.read_text()
    assert '<img id="grid" src="grid.png"' in page
    # the wide metrics table scrolls inside its box rather than past the page's right edge,
    # and each interval sits under its value on one line of its own
    assert '<div class="table-scroll"><table id="metrics">' in page
    assert ".table-scroll { overflow-x: auto;" in page
    assert re.search(r"<td>-?\d\.\d{3}<small>\[-?\d\.\d{3}, -?\d\.\d{3}\]", page)
    for method, cls in cx.explainers().items():
        if cls.requires is not None:  # attention rollout: not for the demo's CNN
            assert f"<td>{method}</td>" not in page
            continue
        assert f"<td>{method}</td>" in page
        assert (out / "overlays" / f"{method}.png").is_file()
    assert "centre_gaussian" in page
    grid = cv2.imread(str(out / "grid.png"))
    settings = DemoSettings.quick()
    assert grid is not None
    assert grid.shape[0] > 100 * settings.shown // 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["classification_accuracy"] <= 1.0
    rows = {r["method"]: r for r in metrics["explanations"]["rows"]}
    cnn_methods = {name for name, cls in cx.explainers().items() if cls.requires is None}
    assert set(rows) == {*cnn_methods, "random", "centre_gaussian"}
    clf = cx.Classifier.load(out / "model.keras")
    assert clf.class_names == ["NORMAL", "PNEUMONIA", "COVID"]
    images = cx.synthetic.phantoms(2, size=settings.size, seed=5)[0]
    assert np.isfinite(clf.predict_proba(images)).all()


@pytest.mark.slow
def test_full_demo_classifies_held_out_phantoms(tmp_path: Path) -> None:
    # --seed 2: with the moving BatchNormalization averages of the last epoch (no
    # recalibration) this run classified every NORMAL phantom as PNEUMONIA (66.7 %)
    report = run_demo(tmp_path / "demo", seed=2)
    metrics = json.loads((report.parent / "metrics.json").read_text())
    assert metrics["classification_accuracy"] >= 0.90
    clf = cx.Classifier.load(report.parent / "model.keras")
    test = cx.synthetic.generate(60, size=96, classes=clf.class_names, seed=3)
    accuracy = float((clf.predict_proba(test.images).argmax(axis=1) == test.labels).mean())
    assert accuracy >= 0.90  # the saved model too, on phantoms it has never seen
