"""Training benchmark (issue 5): 5-fold cross-validation on the real chest X-rays.

The protocol of the DarkCovidNet study (Ozturk et al., Computers in Biology and Medicine 2020):
stratified 5-fold cross-validation, each fold's model trained from scratch on the other four
folds and tested on its own, mean and standard deviation over the folds. Three tasks on
``../shared/data/cxr`` (886 images of the DarkCovidNet data, 256x256 gray):

* ``covid_normal``: COVID (99) vs NORMAL (399), DarkCovidNet's "COVID vs no-finding"
  (reference accuracy 98.08% on their whole data set);
* ``normal_pneumonia``: NORMAL (399) vs PNEUMONIA (388) (no reference);
* ``three_class``: COVID, NORMAL, PNEUMONIA (reference 87.02%).

Model: ``cam_cnn`` (and, with ``--backbone NAME``, one transfer builder too). Training
follows our tips: AdamW (1e-3, weight decay 1e-4) with cosine decay to 0 over the run, label
smoothing 0.05, BatchNormalization momentum 0.9 (cam_cnn's default), balanced class weights,
augmentation for chest films (rotation 5 deg, zoom 0.1, shift 0.05, brightness/contrast 0.1,
no flip), early stopping (patience 10) on the loss of 10% of the training folds held out,
best epoch restored. The test fold never influences training.

Resumable: each (task, fold) writes ``benchmarks/out/train_real/<run>/<task>/fold_<i>.json``
when it finishes and a rerun skips it (an interrupted fold resumes at its last epoch from
``fold_<i>.checkpoint/``). The report (printed, and written as the section
``## Training: 5-fold cross-validation (issue 5): <size> px, <epochs> epochs`` of
``benchmarks/RESULTS.md``, leaving the other sections alone) gives accuracy, per-class
sensitivity, specificity and AUC as mean ± sd, image size, epochs, wall time, the machine and
the training throughput (images per second of ``fit``).

Usage::

    python benchmarks/train_real.py                       # full run (hours on 2 CPU cores)
    python benchmarks/train_real.py --tasks three_class --backbone mobilenet_v2
    python benchmarks/train_real.py --quick               # smoke test: 1 fold, 2 epochs, 64 px
    python benchmarks/train_real.py --report              # report from the results so far
    python benchmarks/train_real.py --lungs lungs.keras   # lung-focused models (issue 14)
    python benchmarks/train_real.py --group-by-patient    # no patient in two folds

``--quick`` writes its report to ``benchmarks/out/train_real/quick/RESULTS.md``, never to
``benchmarks/RESULTS.md`` (pass ``--results-md`` to choose).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from _results import machine, write_section

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data" / "cxr"
OUT = HERE / "out" / "train_real"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Training: 5-fold cross-validation (issue 5)"

TASKS: dict[str, tuple[str, ...]] = {
    "covid_normal": ("COVID", "NORMAL"),
    "normal_pneumonia": ("NORMAL", "PNEUMONIA"),
    "three_class": ("COVID", "NORMAL", "PNEUMONIA"),
}
REFERENCE = {  # DarkCovidNet, 5-fold CV on their whole data set
    "covid_normal": ("98.08%", "COVID vs no-finding"),
    "normal_pneumonia": ("—", "not reported"),
    "three_class": ("87.02%", "COVID / no-finding / pneumonia"),
}
K = 5


# --------------------------------------------------------------------------------- options
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the cxr folder")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--folds", type=int, default=K, help="how many of the 5 folds to run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", default=None,
                        help="also cross-validate this transfer builder (vgg16, mobilenet_v2...)")
    parser.add_argument("--backbone-weights", default=None,
                        help="'imagenet' (downloads) or a local weights file for --backbone")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 fold, 2 epochs, 64 px, separate output folder")
    parser.add_argument("--report", action="store_true",
                        help="only report the results already on disk")
    parser.add_argument("--results-md", type=Path, default=None,
                        help="the Markdown file to write the section to")
    parser.add_argument("--no-early-stopping", action="store_true",
                        help="train every epoch of the cosine schedule on all training folds "
                             "(no validation slice) and keep the last epochs' weights")
    parser.add_argument("--lungs", type=Path, default=None,
                        help="a lung segmenter (.keras): train lung-focused models "
                             "(cx.models.with_lung_focus)")
    parser.add_argument("--lung-mode", choices=("mask", "inverse"), default="mask",
                        help="with --lungs: only the lungs visible (mask) or only what lies "
                             "outside them (inverse, the shortcut-strength check)")
    parser.add_argument("--group-by-patient", action="store_true",
                        help="whole patients per fold and per validation slice (metadata.csv's "
                             "patient column, cx.data.k_folds(groups=...))")
    parser.add_argument("--verbose", type=int, default=0, help="Keras fit verbosity")
    args = parser.parse_args(argv)
    if args.quick:
        args.folds, args.epochs, args.image_size = 1, 2, 64
    if not 1 <= args.folds <= K:
        parser.error(f"--folds: expected 1..{K}")
    if args.lungs is None and args.lung_mode != "mask":
        parser.error("--lung-mode: needs --lungs")
    noes = "_noes" if args.no_early_stopping else ""
    noes += "" if args.lungs is None else f"_lungs-{args.lung_mode}"
    noes += "_patients" if args.group_by_patient else ""
    run = f"quick{noes}" if args.quick else (f"{args.image_size}px_{args.epochs}ep_"
                                             f"bs{args.batch_size}_seed{args.seed}{noes}")
    args.out = OUT / run
    if args.results_md is None:
        args.results_md = args.out / "RESULTS.md" if args.quick else RESULTS
    return args


def model_names(args: argparse.Namespace) -> list[str]:
    return ["cam_cnn"] + ([args.backbone] if args.backbone else [])


# ------------------------------------------------------------------------------- training
def run(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    import keras

    import cxrexplain as cx
    from cxrexplain import models, training

    if args.backbone and args.backbone not in models.available():
        raise SystemExit(f"--backbone: unknown {args.backbone!r}; "
                         f"available: {', '.join(models.available())}")
    results = {}
    for name in model_names(args):
        for task in args.tasks:
            def build(setup: Any, name: str = name) -> Any:
                keras.backend.clear_session()  # forgets the global seed: set it again
                keras.utils.set_random_seed(args.seed + setup.fold)
                options: dict[str, Any] = {}
                if name != "cam_cnn" and args.backbone_weights:
                    options["weights"] = args.backbone_weights
                model = models.build(name, input_shape=setup.input_shape,
                                     num_classes=setup.num_classes, **options)
                return models.compile_recommended(
                    model, learning_rate=1e-3, weight_decay=1e-4, label_smoothing=0.05,
                    decay_steps=setup.epochs * setup.steps_per_epoch)

            def done(fold: Any, task: str = task, name: str = name) -> None:
                r = fold.report
                print(f"  {name} {task} fold {fold.fold}: accuracy {r.accuracy:.4f}, "
                      f"macro AUC {r.metrics()['macro_auc']:.4f}, {fold.epochs} epochs, "
                      f"{fold.fit_seconds:.0f} s, {fold.images_per_second:.1f} img/s",
                      flush=True)

            print(f"{name} / {task}: {args.folds} of {K} folds, {args.epochs} epochs, "
                  f"{args.image_size} px", flush=True)
            started = time.perf_counter()
            result = training.cross_validate(
                build, args.data, k=K, classes=list(TASKS[task]), image_size=args.image_size,
                epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                folds=list(range(args.folds)),
                validation_fraction=None if args.no_early_stopping else 0.1,
                augment=cx.data.Augmentation(), results_dir=args.out / name / task,
                tag=f"{name} AdamW+cosine ls0.05 {args.backbone_weights or ''}".strip(),
                fit_options={"early_stopping_patience": None if args.no_early_stopping else 10,
                             "class_weight": "balanced"},
                on_fold_end=done, verbose=args.verbose,
                lungs=None if args.lungs is None else cx.lungs.LungSegmenter.load(args.lungs),
                lung_mode=args.lung_mode,
                groups=patients(args.data) if args.group_by_patient else None,
            )
            print(f"  wall time {time.perf_counter() - started:.0f} s", flush=True)
            results[(name, task)] = result
    return results


def patients(folder: Path) -> dict[str, str]:
    """``metadata.csv``'s patient of each film, keyed by ``CLASS/name.png``."""
    import csv

    with (folder / "metadata.csv").open(newline="", encoding="utf-8") as table:
        return {row["image"]: row["patient"] for row in csv.DictReader(table)}


def load(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    """The results already on disk (for --report)."""
    from cxrexplain.training import CrossValidationResult, FoldResult

    results = {}
    for name in model_names(args):
        for task in args.tasks:
            folder = args.out / name / task
            folds = []
            for path in sorted(folder.glob("fold_*.json")):
                folds.append(FoldResult.from_dict(json.loads(path.read_text())["result"]))
            if folds:
                results[(name, task)] = CrossValidationResult(tuple(folds), TASKS[task], K)
    return results


# -------------------------------------------------------------------------------- report
def _pm(mean: float, sd: float, percent: bool = True) -> str:
    if math.isnan(mean):
        return "n/a"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    spread = "" if math.isnan(sd) else f" ± {sd * scale:.2f}"
    return f"{mean * scale:.2f}{spread}{unit}"


def command(args: argparse.Namespace) -> str:
    """The command that runs (or resumes) this configuration."""
    if args.quick:
        return "python benchmarks/train_real.py --quick"
    tasks = "" if args.tasks == list(TASKS) else " --tasks " + " ".join(args.tasks)
    noes = " --no-early-stopping" if args.no_early_stopping else ""
    if args.lungs is not None:
        noes += f" --lungs {args.lungs} --lung-mode {args.lung_mode}"
    noes += " --group-by-patient" if args.group_by_patient else ""
    return (f"python benchmarks/train_real.py --image-size {args.image_size} --epochs "
            f"{args.epochs}{tasks}{noes}")


def heading(args: argparse.Namespace) -> str:
    """One section per run configuration, so runs at other sizes or epochs stand side by side."""
    noes = ", no early stopping" if args.no_early_stopping else ""
    if args.lungs is not None:
        noes += f", lung focus ({args.lung_mode})"
    noes += ", folds grouped by patient" if args.group_by_patient else ""
    return f"{SECTION}: {args.image_size} px, {args.epochs} epochs{noes}"


def section(args: argparse.Namespace, results: dict[tuple[str, str], Any]) -> str:
    lines = [heading(args), ""]
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    kind = "**Smoke test (`--quick`), not a result.** " if args.quick else ""
    lines += [
        f"{kind}`{command(args)}` (results as of {when}); {machine()}.",
        "",
        f"Data: `../shared/data/cxr` (886 images of the DarkCovidNet data: 99 COVID, 399 NORMAL, "
        f"388 PNEUMONIA), resized to {args.image_size}x{args.image_size} gray. Protocol: "
        f"stratified {K}-fold cross-validation (DarkCovidNet's), {args.folds} of {K} folds run; "
        + ("each fold trains from scratch on all the other folds and is tested on its own "
           "images. " if args.no_early_stopping else
           "each fold trains from scratch on the other folds (10% of them held out for early "
           "stopping) and is tested on its own images. ")
        + f"Training: {'' if args.no_early_stopping else 'up to '}{args.epochs} epochs, "
        f"batch {args.batch_size}, AdamW 1e-3 (weight decay 1e-4) with cosine decay, label "
        "smoothing 0.05, balanced class weights, augmentation without flip (rotation 5°, zoom "
        "0.1, shift 0.05, brightness/contrast 0.1), "
        + ("no early stopping (the epoch of lowest training loss is kept, in practice one of "
           "the last). " if args.no_early_stopping else
           "early stopping (patience 10) restoring the best epoch. ")
        + "Mean ± sample sd over folds.",
        "",
        "| model | task | folds | accuracy | macro AUC | DarkCovidNet accuracy | epochs run "
        "| fit images/s | train time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, task), result in results.items():
        summary = result.summary()
        epochs = [f.epochs for f in result.folds]
        speed = [f.images_per_second for f in result.folds if not math.isnan(f.images_per_second)]
        seconds = sum(f.fit_seconds for f in result.folds)
        lines.append(
            f"| {name} | {task} | {len(result.folds)} | {_pm(*summary['accuracy'])} | "
            f"{_pm(*summary['macro_auc'], percent=False)} | {REFERENCE[task][0]} | "
            f"{min(epochs)}-{max(epochs)} | "
            f"{(sum(speed) / len(speed)) if speed else float('nan'):.1f} | {seconds / 60:.1f} min |"
        )
    for (name, task), result in results.items():
        summary = result.summary()
        lines += ["", f"**{name}, {task}** (per class, one vs rest):", "",
                  "| class | sensitivity | specificity | AUC |", "|---|---:|---:|---:|"]
        for cls in result.class_names:
            lines.append(
                f"| {cls} | {_pm(*summary[f'sensitivity/{cls}'])} | "
                f"{_pm(*summary[f'specificity/{cls}'])} | "
                f"{_pm(*summary[f'auc/{cls}'], percent=False)} |"
            )
        pooled = result.pooled()
        lines += ["", "Pooled confusion matrix over the held-out folds (rows true, columns "
                  "predicted):", "", pooled.to_markdown().split("\n\n", 2)[-1]]
    lines += ["", "DarkCovidNet's figures are on their whole data set; ours is a "
              "patient-disjoint 886-image subset, so the comparison is indicative. Per-fold "
              f"JSON results: `benchmarks/out/train_real/{args.out.name}/`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.data.is_dir():
        print(f"data folder not found: {args.data}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results = load(args) if args.report else run(args)
    if not results:
        print("no results yet", file=sys.stderr)
        return 1
    text = section(args, results)
    print()
    print(text)
    write_section(args.results_md, heading(args), text)
    print(f"wrote the section to {args.results_md} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
