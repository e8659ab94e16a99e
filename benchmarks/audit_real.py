"""The shortcut audit on the real chest X-rays (issue 13).

1. Trains (or reloads) the reference three-class ``cam_cnn`` (COVID, NORMAL, PNEUMONIA) on the
   shared films with the recipe of ``train_real.py`` (AdamW + cosine decay, label smoothing
   0.05, BatchNorm momentum 0.9, balanced class weights, augmentation without flip, early
   stopping on 10% held out). The 22 films with radiologists' boxes never enter training.
2. Audits every shared film with ``cxrexplain audit`` (Grad-CAM, ``--groups folder``: one group
   per true class) against the lungs of a segmenter trained on the shared lung masks
   (``benchmarks/out/lung_dice_cv/fold_0.keras``, from ``lung_dice_cv.py``, by default: since
   issue 23 four fifths of all 405 masks; the issue-13 figures came from one trained on 79 of
   the 99 ``cxr/`` COVID masks).
3. On the 22 boxed PNEUMONIA films: the pointing game (a hit when the peak lies in a box,
   15 px tolerance at 256 px) beside each film's audit numbers.
4. Memory: peak resident memory of ``cx.audit`` over 100 and 2,000 films (the shared films
   repeated), each in a fresh process.

Each step writes under ``benchmarks/out/audit_real/`` and a rerun skips what is done.

    python benchmarks/audit_real.py                 # about 20-30 min on 2 cores
    python benchmarks/audit_real.py --quick         # smoke test
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr"
OUT = ROOT / "benchmarks" / "out" / "audit_real"
CLASSES = ("COVID", "NORMAL", "PNEUMONIA")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lungs", type=Path,
                        default=ROOT / "benchmarks" / "out" / "lung_dice_cv" / "fold_0.keras")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = OUT.with_name("audit_real_quick") if args.quick else OUT
    if args.quick:
        args.image_size, args.epochs = 64, 2
    out.mkdir(parents=True, exist_ok=True)
    if args.memory_only:
        return _memory_child(args, out, args.memory_only)
    model = _classifier(args, out)
    audit = _audit(args, out, model)
    boxes = _pointing(args, out, model)
    memory = _memory(args, out)
    summary = {"audit": audit, "pointing": boxes, "memory": memory}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "pointing"}, indent=1))
    print(json.dumps({k: v for k, v in boxes.items() if k != "films"}, indent=1))
    return 0


def _classifier(args: argparse.Namespace, out: Path) -> Path:
    path = out / "cam_cnn.keras"
    if path.is_file():
        return path
    import keras

    import cxrexplain as cx

    # boxes.csv names films by their path under cxr/ ("PNEUMONIA/00000150_002.png")
    boxed = {Path(row["image"]).name for row in csv.DictReader((DATA / "boxes.csv").open())}
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        for p in sorted((DATA / name).glob("*.png")):
            if p.name not in boxed:
                paths.append(str(p))
                labels.append(label)
    every = sum(len(list((DATA / name).glob("*.png"))) for name in CLASSES)
    if every - len(paths) != len(boxed):
        raise SystemExit(f"expected to hold out the {len(boxed)} boxed films, held out "
                         f"{every - len(paths)}")
    if args.quick:
        paths, labels = paths[::20], labels[::20]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(paths))
    held = set(order[: len(paths) // 10].tolist())
    files = cx.data.LabeledFiles(tuple(paths), tuple(labels), CLASSES)
    train = files.subset([i for i in range(len(paths)) if i not in held])
    val = files.subset(sorted(held))
    size = args.image_size
    train_ds = cx.data.from_files(train, image_size=size, batch_size=32, shuffle=True,
                                  augment=cx.data.Augmentation(), seed=args.seed)
    val_ds = cx.data.from_files(val, image_size=size, batch_size=32)
    keras.utils.set_random_seed(args.seed)
    model = cx.models.build("cam_cnn", input_shape=(size, size, 1), num_classes=3)
    steps = -(-len(train) // 32)
    cx.models.compile_recommended(model, learning_rate=1e-3, weight_decay=1e-4,
                                  label_smoothing=0.05, decay_steps=args.epochs * steps)
    started = time.time()
    cx.training.fit(model, train_ds, val_ds, epochs=args.epochs, class_weight="balanced",
                    checkpoint_dir=out / "cam_cnn_checkpoint", resume=True, seed=args.seed,
                    verbose=2)
    clf = cx.Classifier(model, class_names=list(CLASSES))
    report = cx.training.evaluate(clf, val_ds)
    (out / "cam_cnn_training.json").write_text(json.dumps(
        {"train_films": len(train), "validation_films": len(val),
         "validation_accuracy": float(report.accuracy),
         "train_seconds": round(time.time() - started, 1), "image_size": size,
         "epochs": args.epochs}, indent=1))
    clf.save(path)
    return path


def _audit(args: argparse.Namespace, out: Path, model: Path) -> dict[str, Any]:
    folder = out / "report"
    result = out / "audit_run.json"
    if result.is_file():
        return dict(json.loads(result.read_text()))
    films = [str(DATA / c) for c in CLASSES]
    command = [sys.executable, "-m", "cxrexplain", "audit", str(model), *films,
               "--lungs", str(args.lungs), "--out", str(folder), "--groups", "folder",
               "--resume", "--no-progress"]
    started = time.time()
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    seconds = time.time() - started
    if done.returncode not in (0, 3):
        raise SystemExit(f"audit failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads((folder / "audit.json").read_text())
    payload = {"command": " ".join(["cxrexplain", *command[3:]]), "exit_code": done.returncode,
               "seconds": round(seconds, 1), "films": len(report["films"]),
               "flagged": report["flagged"], "reason": report["reason"],
               "summary": report["summary"], "stdout": done.stdout[-1000:]}
    result.write_text(json.dumps(payload, indent=1))
    return payload


def _pointing(args: argparse.Namespace, out: Path, model: Path) -> dict[str, Any]:
    import cxrexplain as cx

    rows = list(csv.DictReader((DATA / "boxes.csv").open()))
    names = sorted({Path(r["image"]).name for r in rows})
    paths = [DATA / "PNEUMONIA" / n for n in names]
    clf = cx.Classifier.load(model)
    size = clf.input_size[0] if clf.input_size else 256
    scale = size / 256
    boxes = [[[float(r["x"]) * scale, float(r["y"]) * scale, float(r["width"]) * scale,
               float(r["height"]) * scale] for r in rows if Path(r["image"]).name == n]
             for n in names]
    exp = cx.GradCAM(clf).explain(paths, targets="PNEUMONIA")
    game = cx.metrics.pointing_game(exp, boxes, tolerance=15 * scale)
    audit = {Path(r["image"]).name: r for r in
             json.loads((out / "report" / "audit.json").read_text())["films"]}
    films = []
    for i, n in enumerate(names):
        a = audit.get(n, {})
        films.append({"image": n, "hit": bool(game.hits[i]), "lung_share": a.get("lung_share"),
                      "border_share": a.get("border_share"),
                      "peak_in_lungs": a.get("peak_in_lungs"), "target": a.get("target")})
    inside = [f for f in films if f["peak_in_lungs"]]
    outside = [f for f in films if not f["peak_in_lungs"]]
    return {"hits": int(sum(f["hit"] for f in films)), "films": films, "n": len(films),
            "hits_peak_in_lungs": int(sum(f["hit"] for f in inside)),
            "n_peak_in_lungs": len(inside),
            "hits_peak_outside": int(sum(f["hit"] for f in outside)),
            "n_peak_outside": len(outside),
            "mean_lung_share": float(np.nanmean([f["lung_share"] if f["lung_share"] is not None
                                                 else np.nan for f in films]))}


def _memory(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    result = out / "memory.json"
    if result.is_file():
        return dict(json.loads(result.read_text()))
    sizes = (20, 100) if args.quick else (100, 2000)
    measured = {}
    for n in sizes:
        command = [sys.executable, __file__, "--memory-only", str(n),
                   "--lungs", str(args.lungs)] + (["--quick"] if args.quick else [])
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        measured[str(n)] = json.loads(done.stdout.strip().splitlines()[-1])
    low, high = (measured[str(n)]["peak_rss_mb"] for n in sizes)
    payload = {"films": list(sizes), "runs": measured, "growth_mb": round(high - low, 1)}
    result.write_text(json.dumps(payload, indent=1))
    return payload


def _memory_child(args: argparse.Namespace, out: Path, count: int) -> int:
    import resource

    import cxrexplain as cx

    films = sorted(str(p) for c in CLASSES for p in (DATA / c).glob("*.png"))
    paths = (films * (count // len(films) + 1))[:count]
    clf = cx.Classifier.load(out / "cam_cnn.keras")
    seg = cx.lungs.LungSegmenter.load(args.lungs)
    started = time.time()
    rep = cx.audit(clf, paths, lungs=seg, batch_size=32)
    seconds = time.time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"films": len(rep), "peak_rss_mb": round(peak, 1),
                      "seconds": round(seconds, 1),
                      "films_per_second": round(len(rep) / seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
