"""Lung segmentation benchmark (issue 13): 5-fold cross-validated Dice on the shared COVID masks.

``cx.lungs.train`` with its defaults (256 px, default epochs, 20% of the training folds held
out for early stopping) on four folds of the 99 COVID films of ``../shared/data/cxr`` and their
v7labs lung masks, Dice of ``LungSegmenter.segment`` (at the films' own 256 px, after the
two-largest-regions clean-up) on the fifth. Each fold writes
``benchmarks/out/lung_dice_cv/fold_<i>.json`` and its model ``fold_<i>.keras`` when it
finishes; a rerun skips finished folds (an interrupted fold resumes from its checkpoint).

    python benchmarks/lung_dice_cv.py            # 5 folds (about 10-15 min a fold on 2 cores)
    python benchmarks/lung_dice_cv.py --folds 1  # one fold
    python benchmarks/lung_dice_cv.py --report   # the table from the folds done so far

After the folds, a registration check (``registration.json``): for each test film, the shift of
its reference mask (up to 32 px either way) that best overlaps the fold's prediction, and the
Dice after that shift. A reference mask that needs a large shift to meet lungs the segmenter
found is one drawn on a differently cropped copy of the film (look at the films it names).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr"
OUT = ROOT / "benchmarks" / "out" / "lung_dice_cv"
K = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=K)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    films = sorted((DATA / "COVID").glob("*.png"))
    masks = [DATA / "lung_masks" / "COVID" / p.name for p in films]
    if not films or not all(m.is_file() for m in masks):
        raise SystemExit(f"expected the COVID films and their masks under {DATA}")
    OUT.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(args.seed).permutation(len(films))
    folds = np.array_split(order, K)
    if not args.report:
        import cxrexplain as cx

        for i in range(min(args.folds, K)):
            result = OUT / f"fold_{i}.json"
            if result.is_file():
                print(f"fold {i}: done before", flush=True)
                continue
            test = set(folds[i].tolist())
            train_idx = [j for j in range(len(films)) if j not in test]
            test_idx = sorted(test)
            started = time.time()
            seg = cx.lungs.train([films[j] for j in train_idx], [masks[j] for j in train_idx],
                                 checkpoint_dir=OUT / f"fold_{i}.checkpoint", resume=True,
                                 seed=args.seed, verbose=2)
            seconds = time.time() - started
            seg.save(OUT / f"fold_{i}.keras")
            pred = seg.segment([films[j] for j in test_idx])
            true = cx.lungs.read_masks([masks[j] for j in test_idx], size=(256, 256))
            scores = cx.lungs.dice(pred, true)
            log = (OUT / f"fold_{i}.checkpoint" / "log.csv").read_text().splitlines()
            payload = {"fold": i, "train_films": len(train_idx),
                       "test_films": len(test_idx),
                       "train_seconds": round(seconds, 1), "epochs_run": len(log) - 1,
                       "dice_mean": float(scores.mean()), "dice_min": float(scores.min()),
                       "dice": {films[j].name: float(s)
                                for j, s in zip(test_idx, scores, strict=True)}}
            result.write_text(json.dumps(payload, indent=1))
            print(f"fold {i}: Dice mean {scores.mean():.4f} min {scores.min():.4f} "
                  f"({seconds:.0f} s, {payload['epochs_run']} epochs)", flush=True)
        if len(list(OUT.glob("fold_*.json"))) == K:
            registration(films, masks, folds)
    print(report())
    return 0


SHIFT = 32


def registration(films: list[Path], masks: list[Path], folds: list[np.ndarray]) -> None:
    """Per test film: the shift of the reference mask that best meets the prediction."""
    path = OUT / "registration.json"
    if path.is_file():
        return
    import cv2

    import cxrexplain as cx

    rows = []
    for i, fold in enumerate(folds):
        seg = cx.lungs.LungSegmenter.load(OUT / f"fold_{i}.keras")
        test = sorted(fold.tolist())
        pred = seg.segment([films[j] for j in test], size=(256, 256))
        true = cx.lungs.read_masks([masks[j] for j in test], size=(256, 256))
        for j, p, t in zip(test, pred, true, strict=True):
            padded = cv2.copyMakeBorder(p.astype(np.float32), SHIFT, SHIFT, SHIFT, SHIFT,
                                        cv2.BORDER_CONSTANT, value=0)
            overlap = cv2.matchTemplate(padded, t.astype(np.float32), cv2.TM_CCORR)
            row, col = np.unravel_index(int(overlap.argmax()), overlap.shape)
            total = float(p.sum() + t.sum())
            rows.append({"film": films[j].name, "fold": i,
                         "dice": 2 * float(overlap[SHIFT, SHIFT]) / total,
                         "dice_shifted": 2 * float(overlap.max()) / total,
                         "shift": [int(row) - SHIFT, int(col) - SHIFT]})
    path.write_text(json.dumps(rows, indent=1))


def report() -> str:
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob("fold_*.json"))]
    if not rows:
        return "no folds finished yet"
    every = np.array([d for r in rows for d in r["dice"].values()])
    lines = ["| fold | train films | test films | epochs | train time (s) | Dice mean | "
             "Dice min |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['fold']} | {r['train_films']} | {r['test_films']} | "
                     f"{r['epochs_run']} | {r['train_seconds']:.0f} | {r['dice_mean']:.4f} | "
                     f"{r['dice_min']:.4f} |")
    means = [r["dice_mean"] for r in rows]
    lines.append(f"| **all {len(rows)}** | | {len(every)} | | "
                 f"{np.median([r['train_seconds'] for r in rows]):.0f} (median) | "
                 f"**{every.mean():.4f}** (folds {np.mean(means):.4f} ± {np.std(means):.4f}) | "
                 f"**{every.min():.4f}** |")
    reg_path = OUT / "registration.json"
    if reg_path.is_file():
        reg = json.loads(reg_path.read_text())
        dice = np.array([r["dice"] for r in reg])
        moved = np.array([max(abs(v) for v in r["shift"]) for r in reg])
        lines.append("")
        lines.append(f"Registration check: the best shift of the reference mask onto the "
                     f"prediction raises the mean Dice to "
                     f"{np.mean([r['dice_shifted'] for r in reg]):.4f}; "
                     + "; ".join(f"{int((moved > t).sum())} masks need a shift of more than "
                                 f"{t} px (Dice of the other films {dice[moved <= t].mean():.4f})"
                                 for t in (4, 8, 16)) + ".")
    lines.append("")
    lines.append(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
                 f"{sys.version.split()[0]}. Command: `python benchmarks/lung_dice_cv.py`.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
