"""Lung segmentation benchmark (issues 13, 23): patient-grouped 5-fold Dice on all 405 lung masks.

The films: the 306 of ``../shared/data/lungs`` (``manifest.csv``, 179 patients) and the 99 COVID
films of ``../shared/data/cxr`` with their masks in ``cxr/lung_masks/COVID`` (patients from
``cxr/metadata.csv``), all with v7labs lung masks at 256 px. The folds split the *patients*
(shuffled with ``--seed``, then each patient, the largest first, to the fold with the fewest
films), so no patient's films are on both sides. ``cx.lungs.train`` with its defaults on four
folds, Dice of ``LungSegmenter.segment`` (at the films' own 256 px, after the clean-up) on the
fifth. Each fold writes ``benchmarks/out/lung_dice_cv/fold_<i>.json`` and its model
``fold_<i>.keras`` when it finishes; a rerun skips finished folds (an interrupted fold resumes
from its checkpoint; a fold file from another design, for example the older 99-film folds, is
redone).

    python benchmarks/lung_dice_cv.py                # 5 folds, then the independent check
    python benchmarks/lung_dice_cv.py --folds 1      # one fold
    python benchmarks/lung_dice_cv.py --independent  # only the 306-film segmenter
    python benchmarks/lung_dice_cv.py --report       # the table from what is done so far

After the folds, a registration check (``registration.json``): for each test film, the shift of
its reference mask (up to 32 px either way) that best overlaps the fold's prediction, and the
Dice after that shift. A reference mask that needs a large shift to meet lungs the segmenter
found is one drawn on a differently cropped copy of the film (look at the films it names).

The independent check: one segmenter trained with the defaults on the 306 ``lungs/`` films
only (``benchmarks/out/segmenter_306.keras``, its scores in ``segmenter_306.json``), scored on
the 99 ``cxr/COVID`` films, none of which it saw.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "lung_dice_cv"
INDEPENDENT = ROOT / "benchmarks" / "out" / "segmenter_306.keras"
K = 5
DESIGN = "405 films, patient-grouped"
SIZE = (256, 256)


class Film:
    """One film, its mask, its patient and where it comes from (``lungs`` or ``cxr``)."""

    def __init__(self, image: Path, mask: Path, patient: str, source: str) -> None:
        self.image, self.mask, self.patient, self.source = image, mask, patient, source


def films() -> list[Film]:
    """The 306 ``lungs/`` films, then the 99 ``cxr/COVID`` films."""
    found = []
    with (DATA / "lungs" / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            found.append(Film(DATA / "lungs" / row["image"], DATA / "lungs" / row["mask"],
                              row["patient"], "lungs"))
    with (DATA / "cxr" / "metadata.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["image"].startswith("COVID/"):
                name = row["image"].split("/", 1)[1]
                found.append(Film(DATA / "cxr" / row["image"],
                                  DATA / "cxr" / "lung_masks" / "COVID" / name,
                                  row["patient"], "cxr"))
    missing = [f for f in found if not (f.image.is_file() and f.mask.is_file())]
    if len(found) != 405 or missing:
        raise SystemExit(f"expected 405 films with masks under {DATA}, found {len(found)} "
                         f"({len(missing)} without their film or mask)")
    return found


def patient_folds(items: list[Film], k: int, seed: int) -> list[list[int]]:
    """``k`` folds of film positions, no patient in two folds, film counts balanced."""
    patients = sorted({f.patient for f in items})
    np.random.default_rng(seed).shuffle(patients)
    count = {p: sum(f.patient == p for f in items) for p in patients}
    load = [0] * k
    fold_of = {}
    for patient in sorted(patients, key=lambda p: -count[p]):  # stable: ties keep the shuffle
        fold_of[patient] = int(np.argmin(load))
        load[fold_of[patient]] += count[patient]
    return [[j for j, f in enumerate(items) if fold_of[f.patient] == i] for i in range(k)]


def name(film: Film) -> str:
    return f"{film.source}/{film.image.name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=K)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--independent", action="store_true",
                        help="only train and score the 306-film segmenter")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    items = films()
    folds = patient_folds(items, K, args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.report:
        if not args.independent:
            for i in range(min(args.folds, K)):
                run_fold(items, folds, i, args.seed)
            if all(done(items, folds, i) for i in range(K)):
                registration(items, folds)
        if args.independent or args.folds >= K:
            independent(items, args.seed)
    print(report())
    return 0


def done(items: list[Film], folds: list[list[int]], i: int) -> bool:
    path = OUT / f"fold_{i}.json"
    if not path.is_file():
        return False
    old = json.loads(path.read_text())
    return bool(old.get("design") == DESIGN
                and sorted(old.get("dice", {})) == sorted(name(items[j]) for j in folds[i]))


def run_fold(items: list[Film], folds: list[list[int]], i: int, seed: int) -> None:
    import cxrexplain as cx

    if done(items, folds, i):
        print(f"fold {i}: done before", flush=True)
        return
    test = folds[i]
    train = [j for j in range(len(items)) if j not in set(test)]
    checkpoint = OUT / f"fold_{i}.checkpoint"
    started = time.time()
    seg = cx.lungs.train([items[j].image for j in train], [items[j].mask for j in train],
                         checkpoint_dir=checkpoint, resume=True, seed=seed, verbose=2)
    seconds = time.time() - started
    seg.save(OUT / f"fold_{i}.keras")
    scores = score(seg, [items[j] for j in test])
    log = (checkpoint / "log.csv").read_text().splitlines()
    payload = {"design": DESIGN, "fold": i, "train_films": len(train), "test_films": len(test),
               "test_patients": len({items[j].patient for j in test}),
               "train_seconds": round(seconds, 1), "epochs_run": len(log) - 1,
               "dice_mean": float(scores.mean()), "dice_min": float(scores.min()),
               "dice": {name(items[j]): float(s) for j, s in zip(test, scores, strict=True)}}
    (OUT / f"fold_{i}.json").write_text(json.dumps(payload, indent=1))
    print(f"fold {i}: Dice mean {scores.mean():.4f} min {scores.min():.4f} "
          f"({seconds:.0f} s, {payload['epochs_run']} epochs)", flush=True)


def score(seg: Any, test: list[Film]) -> np.ndarray:
    """Dice of the segmenter's masks against the reference masks, at 256 px."""
    import cxrexplain as cx

    pred = seg.segment([f.image for f in test], size=SIZE)
    true = cx.lungs.read_masks([f.mask for f in test], size=SIZE)
    return np.asarray(cx.lungs.dice(pred, true))


def independent(items: list[Film], seed: int) -> None:
    """Train on the 306 ``lungs/`` films (defaults), score on the 99 ``cxr`` films."""
    result = INDEPENDENT.with_suffix(".json")
    if result.is_file():
        print("independent segmenter: done before", flush=True)
        return
    import cxrexplain as cx

    train = [f for f in items if f.source == "lungs"]
    test = [f for f in items if f.source == "cxr"]
    started = time.time()
    seg = cx.lungs.train([f.image for f in train], [f.mask for f in train],
                         checkpoint_dir=INDEPENDENT.with_suffix(".checkpoint"), resume=True,
                         seed=seed, verbose=2)
    seconds = time.time() - started
    seg.save(INDEPENDENT)
    scores = score(seg, test)
    shared = sorted({f.patient for f in train} & {f.patient for f in test})
    payload = {"train_films": len(train), "test_films": len(test),
               "train_seconds": round(seconds, 1), "shared_patients": shared,
               "dice_mean": float(scores.mean()), "dice_min": float(scores.min()),
               "dice": {name(f): float(s) for f, s in zip(test, scores, strict=True)}}
    result.write_text(json.dumps(payload, indent=1))
    print(f"independent segmenter: Dice mean {scores.mean():.4f} min {scores.min():.4f} "
          f"({seconds:.0f} s)", flush=True)


SHIFT = 32


def registration(items: list[Film], folds: list[list[int]]) -> None:
    """Per test film: the shift of the reference mask that best meets the prediction."""
    path = OUT / "registration.json"
    if path.is_file() and json.loads(path.read_text())[0].get("design") == DESIGN:
        return
    import cv2

    import cxrexplain as cx

    rows = []
    for i, fold in enumerate(folds):
        seg = cx.lungs.LungSegmenter.load(OUT / f"fold_{i}.keras")
        test = [items[j] for j in fold]
        pred = seg.segment([f.image for f in test], size=SIZE)
        true = cx.lungs.read_masks([f.mask for f in test], size=SIZE)
        for film, p, t in zip(test, pred, true, strict=True):
            padded = cv2.copyMakeBorder(p.astype(np.float32), SHIFT, SHIFT, SHIFT, SHIFT,
                                        cv2.BORDER_CONSTANT, value=0)
            overlap = cv2.matchTemplate(padded, t.astype(np.float32), cv2.TM_CCORR)
            row, col = np.unravel_index(int(overlap.argmax()), overlap.shape)
            total = float(p.sum() + t.sum())
            rows.append({"design": DESIGN, "film": name(film), "fold": i,
                         "dice": 2 * float(overlap[SHIFT, SHIFT]) / total,
                         "dice_shifted": 2 * float(overlap.max()) / total,
                         "shift": [int(row) - SHIFT, int(col) - SHIFT]})
    path.write_text(json.dumps(rows, indent=1))


def report() -> str:
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob("fold_*.json"))]
    rows = [r for r in rows if r.get("design") == DESIGN]
    lines = []
    if rows:
        every = {k: v for r in rows for k, v in r["dice"].items()}
        values = np.array(list(every.values()))
        lines += ["| fold | train films | test films (patients) | epochs | train time (s) | "
                  "Dice mean | Dice min |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['fold']} | {r['train_films']} | {r['test_films']} "
                         f"({r['test_patients']}) | {r['epochs_run']} | "
                         f"{r['train_seconds']:.0f} | {r['dice_mean']:.4f} | "
                         f"{r['dice_min']:.4f} |")
        means = [r["dice_mean"] for r in rows]
        lines.append(f"| **all {len(rows)}** | | {len(values)} | | "
                     f"{np.median([r['train_seconds'] for r in rows]):.0f} (median) | "
                     f"**{values.mean():.4f}** (mean over folds {np.mean(means):.4f} ± "
                     f"{np.std(means):.4f}) | **{values.min():.4f}** |")
        by_source = {s: np.array([v for k, v in every.items() if k.startswith(s + "/")])
                     for s in ("lungs", "cxr")}
        lines += ["", "By source: " + "; ".join(
            f"`{s}/` {len(v)} films, Dice mean {v.mean():.4f}, min {v.min():.4f}, "
            f"{int((v < 0.9).sum())} below 0.9" for s, v in by_source.items() if len(v)) + "."]
        worst = sorted(every.items(), key=lambda kv: kv[1])[:5]
        lines.append("Worst films: " + ", ".join(f"`{k}` {v:.3f}" for k, v in worst) + ".")
    reg_path = OUT / "registration.json"
    if reg_path.is_file() and json.loads(reg_path.read_text())[0].get("design") == DESIGN:
        reg = json.loads(reg_path.read_text())
        lines += ["", "Registration check: the best shift (up to 32 px) of the reference mask "
                  "onto the prediction raises the mean Dice to "
                  f"{np.mean([r['dice_shifted'] for r in reg]):.4f}."]
        for source in ("lungs", "cxr"):
            part = [r for r in reg if r["film"].startswith(source + "/")]
            dice = np.array([r["dice"] for r in part])
            moved = np.array([max(abs(v) for v in r["shift"]) for r in part])
            lines.append(
                f"`{source}/` ({len(part)} films): shifted Dice "
                f"{np.mean([r['dice_shifted'] for r in part]):.4f} (unshifted "
                f"{dice.mean():.4f}); " + "; ".join(
                    f"{int((moved > t).sum())} masks need more than {t} px"
                    + (f" (Dice of the other films {dice[moved <= t].mean():.4f})"
                       if (moved <= t).any() else "")
                    for t in (4, 8, 16)) + ".")
    result = INDEPENDENT.with_suffix(".json")
    if result.is_file():
        ind = json.loads(result.read_text())
        lines += ["", f"Independent check: trained on the {ind['train_films']} `lungs/` films "
                  f"({ind['train_seconds']:.0f} s), on the {ind['test_films']} `cxr/COVID` "
                  f"films: Dice mean {ind['dice_mean']:.4f}, min {ind['dice_min']:.4f} "
                  f"(patients on both sides: {', '.join(ind['shared_patients']) or 'none'})."]
    if not lines:
        return "nothing finished yet"
    lines += ["", f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
              f"{sys.version.split()[0]}. Command: `python benchmarks/lung_dice_cv.py`."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
