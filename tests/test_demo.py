"""The demo (the README's main job) in its quick form: report, figures, metrics, model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

import cxrexplain as cx
from cxrexplain.demo import DemoSettings, run_demo


def test_quick_demo_writes_a_complete_report(tmp_path: Path) -> None:
    report = run_demo(tmp_path / "demo", quick=True)
    out = report.parent
    page = report.read_text()
    assert '<img id="grid" src="grid.png"' in page
    assert '<table id="metrics">' in page
    for method in cx.explainers():
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
    assert set(rows) == {*cx.explainers(), "random", "centre_gaussian"}
    clf = cx.Classifier.load(out / "model.keras")
    assert clf.class_names == ["NORMAL", "PNEUMONIA", "COVID"]
    images = cx.synthetic.phantoms(2, size=settings.size, seed=5)[0]
    assert np.isfinite(clf.predict_proba(images)).all()
