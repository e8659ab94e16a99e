"""Every example script runs end to end on the real data (``--quick``) and writes its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = ROOT.parent / "shared" / "data" / "cxr"

# script -> files it must write under --out
EXPECTED = {
    "covid_vs_pneumonia_cam.py": ["report.png", "cam_grid.png", "cam_lungs.png", "overlays/*.png"],
    "pneumonia_binary_cnn.py": ["report.png", "gradcam_grid.png", "overlays/*.png"],
    "pneumonia_softmax_rmsprop.py": ["report.png", "report.md", "gradcam_grid.png"],
    "transfer_learning_gradcam.py": ["report.png", "gradcam_vs_cam.png"],
    "recall_threshold.py": ["report_default.png", "report_threshold.png", "feature_maps.png",
                            "pneumonia.keras"],
    "compare_explainers.py": ["explainers.md", "explainers.json", "comparison.png",
                              "model.keras"],
}

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"exit code {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n"
        f"--- stderr\n{result.stderr[-3000:]}"
    )


def test_every_example_is_tested() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {*EXPECTED, "quickstart.py"}


@needs_data
def test_quickstart() -> None:
    result = run("quickstart.py", "--size", "64")
    check(result)
    assert "same predictions: True" in result.stdout


@needs_data
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_quick(script: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(script, "--quick", "--out", str(out))
    check(result)
    assert "accuracy" in result.stdout and f"figures in {out}" in result.stdout
    for pattern in EXPECTED[script]:
        found = sorted(out.glob(pattern))
        assert found, f"{script} wrote no {pattern} in {out}: {sorted(out.rglob('*'))}"
        assert all(f.stat().st_size > 0 for f in found)
