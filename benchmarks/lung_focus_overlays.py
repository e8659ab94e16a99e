"""Before/after overlays of lung-focused training (issue 14): the same films, two models.

Loads the three-class ``plain`` and ``mask`` models of fold 0 written by
``lung_focus_real.py`` and draws Grad-CAM for each film's true class with both, side by side,
into ``docs/images/lung_focus_overlays.png``: four of the 22 PNEUMONIA films with
radiologists' boxes (never trained on; boxes drawn) and four COVID films of the test fold with
their reference lung masks (outlined). The films are the first of each sorted list (a fixed,
not a hand-picked, choice).

    python benchmarks/lung_focus_overlays.py
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr"
RUNS = ROOT / "benchmarks" / "out" / "lung_focus_real" / "three_class"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=4)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "docs" / "images" / "lung_focus_overlays.png")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lung_focus_real as runs

    import cxrexplain as cx

    plain = cx.Classifier.load(RUNS / "plain_fold0.keras")
    focused = cx.Classifier.load(RUNS / "mask_fold0.keras")
    size = plain.input_size[0] if plain.input_size else 96
    with (DATA / "boxes.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    boxed = sorted({Path(r["image"]).name for r in rows})[: args.per_kind]
    paths, labels, fold_of = runs.patient_folds(runs.TASKS["three_class"], 0)
    covid = [p for p, lab, f in zip(paths, labels, fold_of, strict=True)
             if lab == 0 and f == 0][: args.per_kind]
    films = [DATA / "PNEUMONIA" / n for n in boxed] + covid
    targets = ["PNEUMONIA"] * len(boxed) + ["COVID"] * len(covid)
    scale = size / 256
    boxes: list[np.ndarray | None] = [
        np.array([[float(r[k]) * scale for k in ("x", "y", "width", "height")]
                  for r in rows if Path(r["image"]).name == n]) for n in boxed]
    boxes += [None] * len(covid)
    masks: list[np.ndarray | None] = [None] * len(boxed)
    masks += list(cx.lungs.read_masks([DATA / "lung_masks" / "COVID" / p.name for p in covid],
                                      size=(size, size)))
    images = cx.load_images(films, size=size, channels=1)
    before = cx.GradCAM(plain).explain(images, targets=targets)
    after = cx.GradCAM(focused).explain(images, targets=targets)
    figure = cx.plot_explanations(images, [before, after], class_names=plain.class_names,
                                  boxes=boxes, masks=masks,
                                  titles=["today's cam_cnn", "lung-focused cam_cnn"])
    cx.save_figure(figure, args.out, dpi=80)
    from PIL import Image  # a 256-colour PNG: a fifth of the size

    Image.open(args.out).convert("RGB").quantize(colors=256).save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(films)} films)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
