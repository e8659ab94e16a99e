"""Render the figures of docs/overlays.md from real chest X-rays and synthetic heatmaps.

Run from anywhere in a checkout that has the shared data folder beside it
(``../shared/data/cxr``)::

    python docs/figures.py

It writes ``docs/images/overlay_example.png`` and ``docs/images/explainer_grid.png``. The
heatmaps are synthetic (Gaussians placed on the radiologists' boxes), so the pictures show
what the drawing functions do, not what any model learned. Only these renderings are kept in
the repository, never the X-ray files themselves.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np

from cxrexplain.drawing import draw_box, overlay, plot_explanations, save_figure

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "cxr"
IMAGES = REPO / "docs" / "images"


def read_boxes(limit: int) -> list[tuple[Path, tuple[float, float, float, float]]]:
    """The first ``limit`` (image path, (x, y, w, h)) rows of boxes.csv."""
    with (DATA / "boxes.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    return [
        (DATA / row["image"], (float(row["x"]), float(row["y"]),
                               float(row["width"]), float(row["height"])))
        for row in rows
    ]


def gaussian_in_box(
    box: tuple[float, float, float, float], size: int = 256, spread: float = 0.35
) -> np.ndarray:
    """A synthetic heatmap in [0, 1]: a Gaussian centred in the box, as wide as the box."""
    x, y, w, h = box
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = x + w / 2.0, y + h / 2.0
    heat = np.exp(-(((cols - cx) / (spread * w)) ** 2 + ((rows - cy) / (spread * h)) ** 2) / 2)
    return np.asarray(heat, dtype=np.float32)


def coarse(heat: np.ndarray, cells: int = 8) -> np.ndarray:
    """The same map at a coarse grid (like a last conv layer), for a second 'method'."""
    small = np.asarray(cv2.resize(heat, (cells, cells), interpolation=cv2.INTER_AREA))
    return (small / max(float(small.max()), 1e-12)).astype(np.float32)


def overlay_example(target: Path) -> Path:
    """One X-ray, a synthetic heatmap on its pneumonia box, the box, and contour lines."""
    (path, box), = read_boxes(1)
    heat = gaussian_in_box(box)
    rgb = overlay(path, heat, colormap="jet", alpha=0.4, threshold=0.1, contours=[0.5])
    rgb = draw_box(rgb, box, color=(0, 255, 0), thickness=2)
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return target


def explainer_grid(target: Path) -> Path:
    """Three X-rays x two synthetic 'methods', with the radiologists' boxes."""
    rows = read_boxes(3)
    paths = [path for path, _ in rows]
    boxes = [box for _, box in rows]
    fine = np.stack([gaussian_in_box(box) for box in boxes])
    blocky = np.stack([coarse(gaussian_in_box(box, spread=0.6)) for box in boxes])
    fig = plot_explanations(
        paths,
        [fine, blocky],
        titles=["synthetic: fine", "synthetic: 8x8 grid"],
        boxes=boxes,
        alpha=0.4,
    )
    fig.set_size_inches(4.8, 5.0)  # keeps the PNG well under 200 KB
    return save_figure(fig, target, dpi=100)


def main() -> int:
    if not (DATA / "boxes.csv").is_file():
        print(f"real data not found at {DATA}", file=sys.stderr)
        return 1
    for written in (
        overlay_example(IMAGES / "overlay_example.png"),
        explainer_grid(IMAGES / "explainer_grid.png"),
    ):
        print(f"{written.relative_to(REPO)}: {written.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
