"""Lung-focused training against today's recipe, and the shortcut-strength check (issue 14).

Three recipes, the same folds, image size, epochs and training for each:

* ``plain``: the reference ``cam_cnn`` as ``train_real.py`` trains it (AdamW 1e-3 with cosine
  decay, weight decay 1e-4, label smoothing 0.05, balanced class weights, augmentation without
  flip, early stopping on 10 % of the training films, best epoch restored);
* ``mask``: the same ``cam_cnn`` inside ``cx.models.with_lung_focus(model, segmenter)``: the
  frozen segmenter finds the lungs, everything outside them (grown by 3 %) becomes the film's
  mean before the classifier sees it;
* ``inverse``: ``with_lung_focus(..., mode="inverse")``: only what lies *outside* the lungs is
  visible. Its accuracy is the shortcut strength of the data set: far above chance, the data
  carry the label outside the lungs, whatever a given model does.

Tasks: ``three_class`` (COVID, NORMAL, PNEUMONIA) and ``covid_normal``. Folds: 5 folds dealt
by *patient* (NIH films ``00000150_002.png`` belong to patient ``00000150``; for the COVID
films, whose names carry no patient, films of one source figure or one patient's days,
``…-day7``, ``…-m-e``, are kept together), stratified by class; ``--folds N`` runs the first N.
The 22 films with radiologists' boxes never enter training or testing; the ``plain`` and
``mask`` models explain PNEUMONIA on them for the pointing game (three_class).

Per model, on its test fold: accuracy, macro AUC, sensitivity per class
(``cx.training.evaluate``); the lung share of Grad-CAM for COVID on the test fold's COVID films
against their reference lung masks (``cx.audit``, lungs grown by 3 %); the audit's verdict on
the test fold with the segmenter's lungs.

Segmenter: ``benchmarks/out/lung_dice_cv/fold_0.keras`` (from ``lung_dice_cv.py``; since
issue 23 trained on four fifths of all 405 lung masks, ``lungs/`` and ``cxr/``, dealt by
patient; some of its ``cxr/`` films are in a classifier's test fold; the issue-14 figures
came from the earlier one trained on 79 of the 99 ``cxr/`` masks). For a segmenter that never
saw a ``cxr/`` film, pass ``--lungs benchmarks/out/segmenter_306.keras`` (``lung_dice_cv.py``).

Each (task, recipe, fold) writes ``benchmarks/out/lung_focus_real/<task>/<recipe>_fold<i>.json``
when it finishes and a rerun skips it.

    python benchmarks/lung_focus_real.py --folds 1          # one fold: about 30 min on 2 cores
    python benchmarks/lung_focus_real.py --quick            # smoke test
    python benchmarks/lung_focus_real.py --report           # the table from what is done
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr"
OUT = ROOT / "benchmarks" / "out" / "lung_focus_real"
TASKS = {"three_class": ("COVID", "NORMAL", "PNEUMONIA"), "covid_normal": ("COVID", "NORMAL")}
RECIPES = ("plain", "mask", "inverse")
K = 5


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    parser.add_argument("--folds", type=int, default=1, help="how many of the 5 folds to run")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lungs", type=Path,
                        default=ROOT / "benchmarks" / "out" / "lung_dice_cv" / "fold_0.keras")
    parser.add_argument("--quick", action="store_true", help="64 px, 2 epochs, own folder")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.epochs = 64, 2
    args.out = OUT.with_name("lung_focus_real_quick") if args.quick else OUT
    return args


# ---------------------------------------------------------------------------------- folds
def patient(path: Path) -> str:
    """The patient (or source) a film belongs to, from its name."""
    stem = path.stem
    nih = re.fullmatch(r"(\d{8})_\d{3}", stem)
    if nih:
        return "nih-" + nih.group(1)
    stem = re.sub(r"-day\d+$", "", stem)  # one patient's days
    stem = re.sub(r"-[a-z]$", "", stem)  # panels of one figure
    return "covid-" + stem


def boxed_names() -> set[str]:
    with (DATA / "boxes.csv").open() as handle:
        return {Path(row["image"]).name for row in csv.DictReader(handle)}


def patient_folds(classes: tuple[str, ...], seed: int) -> tuple[list[Path], np.ndarray,
                                                                  np.ndarray]:
    """Films, labels and fold of each film: patients dealt to folds by class, in turn."""
    boxed = boxed_names()
    paths, labels = [], []
    for label, name in enumerate(classes):
        for p in sorted((DATA / name).glob("*.png")):
            if p.name not in boxed:
                paths.append(p)
                labels.append(label)
    label_array = np.array(labels)
    groups = [patient(p) for p in paths]
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(paths), np.int64)
    turn = 0
    for label in range(len(classes)):
        names = sorted({g for g, lab in zip(groups, labels, strict=True) if lab == label})
        for index, group in enumerate(rng.permutation(names)):
            for i in np.flatnonzero([g == group for g in groups]):
                fold_of[i] = (index + turn) % K
        turn = (turn + len(names)) % K
    return paths, label_array, fold_of


# ------------------------------------------------------------------------------- training
def run_one(args: argparse.Namespace, task: str, recipe: str, fold: int) -> dict[str, Any]:
    import keras

    import cxrexplain as cx

    classes = TASKS[task]
    paths, labels, fold_of = patient_folds(classes, args.seed)
    train_idx = np.flatnonzero(fold_of != fold)
    test_idx = np.flatnonzero(fold_of == fold)
    if args.quick:
        train_idx, test_idx = train_idx[::10], test_idx[::5]
    rng = np.random.default_rng(args.seed + fold)
    held = set(rng.permutation(train_idx)[: len(train_idx) // 10].tolist())
    files = cx.data.LabeledFiles(tuple(str(p) for p in paths), tuple(labels.tolist()), classes)
    train = files.subset([int(i) for i in train_idx if i not in held])
    val = files.subset(sorted(held))
    test = files.subset([int(i) for i in test_idx])
    size = args.image_size
    train_ds = cx.data.from_files(train, image_size=size, batch_size=32, shuffle=True,
                                  augment=cx.data.Augmentation(), seed=args.seed + fold)
    val_ds = cx.data.from_files(val, image_size=size, batch_size=32)
    test_ds = cx.data.from_files(test, image_size=size, batch_size=32)
    keras.backend.clear_session()
    keras.utils.set_random_seed(args.seed + fold)
    model = cx.models.build("cam_cnn", input_shape=(size, size, 1), num_classes=len(classes))
    segmenter = cx.lungs.LungSegmenter.load(args.lungs)
    if recipe != "plain":
        model = cx.models.with_lung_focus(model, segmenter, mode=recipe)
    steps = -(-len(train) // 32)
    cx.models.compile_recommended(model, learning_rate=1e-3, weight_decay=1e-4,
                                  label_smoothing=0.05, decay_steps=args.epochs * steps)
    started = time.time()
    checkpoint = args.out / task / f"{recipe}_fold{fold}.checkpoint"
    history = cx.training.fit(model, train_ds, val_ds, epochs=args.epochs,
                              class_weight="balanced", checkpoint_dir=checkpoint, resume=True,
                              seed=args.seed + fold, verbose=0)
    seconds = time.time() - started
    clf = cx.Classifier(model, class_names=list(classes))
    clf.save(args.out / task / f"{recipe}_fold{fold}.keras")  # for the overlay grid
    report = cx.training.evaluate(clf, test_ds)
    metrics = report.metrics()
    result: dict[str, Any] = {
        "task": task, "recipe": recipe, "fold": fold, "train_films": len(train),
        "validation_films": len(val), "test_films": len(test), "image_size": size,
        "epochs": args.epochs, "epochs_run": len(history.history.get("loss", [])),
        "train_seconds": round(seconds, 1), "accuracy": float(report.accuracy),
        "macro_auc": float(metrics["macro_auc"]),
        "sensitivity": {c: float(metrics[f"sensitivity/{c}"]) for c in classes},
    }
    if recipe != "inverse":
        result.update(_localisation(args, clf, test, segmenter, classes))
    print(f"{task} {recipe} fold {fold}: accuracy {result['accuracy']:.4f}, macro AUC "
          f"{result['macro_auc']:.4f}, {result['epochs_run']} epochs, {seconds:.0f} s",
          flush=True)
    return result


def _localisation(args: argparse.Namespace, clf: Any, test: Any, segmenter: Any,
                  classes: tuple[str, ...]) -> dict[str, Any]:
    """Lung share on the COVID masks, the audit's verdict, the pointing game on the boxes."""
    import cxrexplain as cx

    out: dict[str, Any] = {}
    covid = [Path(p) for p, lab in zip(test.paths, test.labels, strict=True)
             if classes[lab] == "COVID"]
    masks = [DATA / "lung_masks" / "COVID" / p.name for p in covid]
    on_masks = cx.audit(clf, covid, lungs=masks, targets="COVID")
    out["covid_lung_share"] = float(np.nanmean(on_masks.lung_share))
    out["covid_films"] = len(covid)
    rep = cx.audit(clf, list(test.paths), lungs=segmenter, targets=np.array(test.labels))
    out["audit_flagged"] = bool(rep.flagged)
    out["audit_reason"] = rep.reason
    out["audit_lung_share"] = {
        row["name"]: row["lung_share_mean"] for row in rep.summary if row["by"] == "class"}
    if "PNEUMONIA" in classes:
        with (DATA / "boxes.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        names = sorted({Path(r["image"]).name for r in rows})
        scale = args.image_size / 256
        boxes = [[[float(r[k]) * scale for k in ("x", "y", "width", "height")]
                  for r in rows if Path(r["image"]).name == n] for n in names]
        exp = cx.GradCAM(clf).explain([DATA / "PNEUMONIA" / n for n in names],
                                      targets="PNEUMONIA")
        game = cx.metrics.pointing_game(exp, boxes, tolerance=15 * scale)
        out["pointing_hits"] = int(np.sum(game.hits))
        out["pointing_films"] = len(names)
    return out


# --------------------------------------------------------------------------------- report
def report(args: argparse.Namespace) -> str:
    lines = []
    for task in args.tasks:
        rows = {}
        for recipe in RECIPES:
            found = [json.loads(p.read_text())
                     for p in sorted((args.out / task).glob(f"{recipe}_fold*.json"))]
            if found:
                rows[recipe] = found
        if not rows:
            continue
        classes = TASKS[task]
        first = next(iter(rows.values()))[0]
        lines += [f"**{task}** ({first['image_size']} px, up to {first['epochs']} epochs; "
                  f"folds run: {', '.join(str(r['fold']) for r in next(iter(rows.values())))} "
                  f"of {K}, patient-disjoint; mean over folds run)", "",
                  "| recipe | accuracy | macro AUC | sensitivity ("
                  + ", ".join(classes) + ") | lung share (COVID masks) | pointing game "
                  "(22 boxes; centre blob 0.23) | audit flagged | outside-only accuracy |",
                  "|---|---:|---:|---|---:|---:|---|---:|"]
        for recipe, found in rows.items():
            def mean(key: str, found: list[dict[str, Any]] = found) -> float:
                return float(np.mean([r[key] for r in found]))
            sens = ", ".join(f"{np.mean([r['sensitivity'][c] for r in found]):.2f}"
                             for c in classes)
            if recipe == "inverse":
                lines.append(f"| inverse (outside lungs only) | {mean('accuracy'):.3f} | "
                             f"{mean('macro_auc'):.3f} | {sens} | — | — | — | "
                             f"**{mean('accuracy'):.3f}** |")
                continue
            game = "—"
            if "pointing_hits" in found[0]:
                hits = sum(r["pointing_hits"] for r in found)
                shown = sum(r["pointing_films"] for r in found)
                game = f"{hits / shown:.2f} ({hits} of {shown})"
            flagged = ", ".join("yes" if r["audit_flagged"] else "no" for r in found)
            name = "today's cam_cnn" if recipe == "plain" else "lung-focused cam_cnn"
            lines.append(f"| {name} | {mean('accuracy'):.3f} | {mean('macro_auc'):.3f} | {sens} "
                         f"| {mean('covid_lung_share'):.2f} | {game} | {flagged} | — |")
        _, labels, fold_of = patient_folds(classes, args.seed)
        ran = sorted({r["fold"] for found in rows.values() for r in found})
        majority = np.mean([np.bincount(labels[fold_of == f]).max() / (fold_of == f).sum()
                            for f in ran])
        lines += ["", f"Floors: always the majority class scores accuracy {majority:.3f} on "
                  f"these test folds, a macro AUC of 0.5 is chance. Train time per model: "
                  + ", ".join(f"{recipe} {np.median([r['train_seconds'] for r in found]):.0f} s"
                              for recipe, found in rows.items()) + ".", ""]
    return "\n".join(lines) if lines else "nothing finished yet"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.report:
        if not args.lungs.is_file():
            raise SystemExit(f"--lungs: no segmenter at {args.lungs} (run lung_dice_cv.py)")
        for fold in range(args.folds):
            for task in args.tasks:
                for recipe in args.recipes:
                    path = args.out / task / f"{recipe}_fold{fold}.json"
                    if path.is_file():
                        continue
                    path.parent.mkdir(parents=True, exist_ok=True)
                    result = run_one(args, task, recipe, fold)
                    path.write_text(json.dumps(result, indent=1))
    print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
