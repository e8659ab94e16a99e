"""Right for the right reasons: training recipes judged on the swap test and 100+ boxes (issue 23).

The same ``cam_cnn``, folds, image size (128 px), epochs and optimiser for every recipe; only
what the model sees and what its loss asks differ:

* ``plain``: today's reference training (AdamW 1e-3, cosine decay, weight decay 1e-4, label
  smoothing 0.05, balanced class weights, augmentation without flip, early stopping on 10 %
  of the training films);
* ``mask``: ``with_lung_focus(model, segmenter)``: everything outside the grown lungs becomes
  the film's mean;
* ``crop``: ``with_lung_focus(..., mode="crop")``: the lungs' box resized to the frame (run
  when the library has the mode);
* ``swap``: ``Guide(segmenter, swap=1.0)``: every training film keeps its grown lungs and
  takes its surroundings from another film of the batch, whatever its class;
* ``lungs``: ``Guide(segmenter, lungs=1.0)``: the CAM's share outside the grown lungs is
  added to the loss;
* ``lungs_boxes``: ``Guide(segmenter, lungs=1.0, boxes=1.0)``: and the share outside the
  radiologists' boxes on the boxed PNEUMONIA training films;
* ``lungs_boxes_swap``: both terms and the swap;
* ``light_guide_swap``: both terms at weight 0.2 and the swap (added after fold 0 showed the
  weight-1 terms costing 19 points of accuracy);
* ``light_guide_twins``: the same with the swap consistency (each film and its swapped twin
  in the batch, the symmetric KL between their predictions added with weight 1: the swap
  test made a loss; added after fold 0 showed swapped training alone leaving 21-29 % flips);
* ``inverse`` / ``inverse_swap``: the meters: ``with_lung_focus(..., mode="inverse")`` (only
  what lies outside the lungs is visible) trained on the plain data and on swapped data. On
  swapped data nothing outside the lungs carries the label: its accuracy should fall to the
  majority-class rate.

Folds: 5, dealt by patient (``cxr/metadata.csv``'s ``patient``) with ``cx.data.k_folds``,
stratified by class. Boxes: ``cxr/boxes.csv`` (NIH) and ``cxr/rsna_boxes.csv`` (RSNA), on the
PNEUMONIA films only (the four NORMAL films RSNA boxed stay unboxed: a box marks evidence for
the film's label); a boxed film's boxes train the box term when it is in a training fold and
score localisation when it is in the test fold. Lung masks for the guide: the segmenter's,
computed once per film (``from_files(..., lungs=segmenter)``).

Per model, every number per film (so the report pools folds and bootstraps films): the test
predictions; the swap test (each test film's surroundings from a film of another class,
``cx.metrics.swap_test``); the Grad-CAM lung share for COVID on the test COVID films' reference
masks (``cx.audit``); on the boxed PNEUMONIA test films, the PNEUMONIA Grad-CAM's hit (maximum
inside a box, no tolerance), IoU at Otsu's threshold and pixel AUPRC, with the same for two
model-blind maps: the centred blob and the lung prior (the film's segmenter mask, blurred);
the audit's verdict on the test fold.

Each (task, recipe, fold) writes ``benchmarks/out/guided_real/<task>/<recipe>_fold<i>.json``
(and the model) when done; a rerun skips it.

    python benchmarks/guided_real.py --folds 5                  # fold by fold, every recipe
    python benchmarks/guided_real.py --quick                    # smoke test (64 px, 2 epochs)
    python benchmarks/guided_real.py --report                   # tables and grid so far
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr"
OUT = ROOT / "benchmarks" / "out" / "guided_real"
FIGURES = ROOT / "docs" / "images"
TASKS = {"three_class": ("COVID", "NORMAL", "PNEUMONIA"), "covid_normal": ("COVID", "NORMAL")}
RECIPES = ("plain", "light_guide_twins", "light_guide_swap", "mask", "swap", "inverse_swap",
           "lungs_boxes_swap", "lungs", "lungs_boxes", "crop", "inverse")
CORE = RECIPES[:6]  # run first on the first three folds: the default's question
GUIDES: dict[str, dict[str, float]] = {
    "swap": {"swap": 1.0}, "lungs": {"lungs": 1.0}, "lungs_boxes": {"lungs": 1.0, "boxes": 1.0},
    "lungs_boxes_swap": {"lungs": 1.0, "boxes": 1.0, "swap": 1.0},
    "light_guide_swap": {"lungs": 0.2, "boxes": 0.2, "swap": 1.0},
    "light_guide_twins": {"lungs": 0.2, "boxes": 0.2, "swap": 1.0, "consistency": 1.0},
    "inverse_swap": {"swap": 1.0},
}
SHORT = {"light_guide_swap": "light+swap", "light_guide_twins": "light+twins",
         "lungs_boxes_swap": "w1+swap", "lungs_boxes": "lungs+boxes"}
FOCUS = {"mask": "mask", "crop": "crop", "inverse": "inverse", "inverse_swap": "inverse"}
K = 5


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["three_class"])
    parser.add_argument("--recipes", nargs="+", choices=RECIPES, default=list(RECIPES))
    parser.add_argument("--folds", type=int, default=K, help="how many of the 5 folds to run")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lungs", type=Path,
                        default=ROOT / "benchmarks" / "out" / "segmenter_306.keras",
                        help="a segmenter trained on ../shared/data/lungs (none of cxr/)")
    parser.add_argument("--quick", action="store_true", help="64 px, 2 epochs, own folder")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--add-control", action="store_true",
                        help="add the swap test's same-class control to finished results")
    parser.add_argument("--table-folds", type=int, nargs="+",
                        help="with --report: pool only these folds (default: every fold done)")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.epochs = 64, 2
    args.out = OUT.with_name("guided_real_quick") if args.quick else OUT
    return args


# ------------------------------------------------------------------------------------ data
def metadata() -> dict[str, dict[str, str]]:
    with (DATA / "metadata.csv").open(newline="") as handle:
        return {row["image"]: row for row in csv.DictReader(handle)}


def box_table() -> dict[str, np.ndarray]:
    """NIH and RSNA boxes of the PNEUMONIA films, in 256-pixel film coordinates."""
    import cxrexplain as cx

    table: dict[str, list[np.ndarray]] = {}
    for name in ("boxes.csv", "rsna_boxes.csv"):
        for image, boxes in cx.data.read_boxes(DATA / name).items():
            if image.startswith("PNEUMONIA/"):
                table.setdefault(image, []).append(boxes)
    return {image: np.concatenate(parts) for image, parts in table.items()}


def folds(classes: tuple[str, ...], seed: int) -> tuple[Any, list[Any]]:
    import cxrexplain as cx

    meta = metadata()
    paths, labels = [], []
    for label, name in enumerate(classes):
        for p in sorted((DATA / name).glob("*.png")):
            paths.append(str(p))
            labels.append(label)
    files = cx.data.LabeledFiles(tuple(paths), tuple(labels), classes)
    groups = {key: row["patient"] for key, row in meta.items()}
    return files, cx.data.k_folds(files, K, seed, groups=groups)


# ------------------------------------------------------------------------------- training
def run_one(args: argparse.Namespace, task: str, recipe: str, fold: int,
            segmenter: Any) -> dict[str, Any]:
    import keras

    import cxrexplain as cx

    classes = TASKS[task]
    _, parts = folds(classes, args.seed)
    train_all, test = parts[fold].train, parts[fold].test
    if args.quick:
        train_all = train_all.subset(range(0, len(train_all), 8))
        test = test.subset(range(0, len(test), 4))
    train, val = cx.data.stratified_split(train_all, 0.1, seed=args.seed + fold)
    size = args.image_size
    guide_terms = GUIDES.get(recipe)
    boxes = box_table()
    extras: dict[str, Any] = {}
    if guide_terms is not None:
        extras = {"lungs": segmenter}
        if "boxes" in guide_terms:
            extras["boxes"] = boxes
    train_ds = cx.data.from_files(train, image_size=size, batch_size=32, shuffle=True,
                                  augment=cx.data.Augmentation(), seed=args.seed + fold,
                                  **extras)
    val_ds = cx.data.from_files(val, image_size=size, batch_size=32, **extras)
    keras.backend.clear_session()
    keras.utils.set_random_seed(args.seed + fold)
    model = cx.models.build("cam_cnn", input_shape=(size, size, 1), num_classes=len(classes))
    if recipe in FOCUS:
        model = cx.models.with_lung_focus(model, segmenter, mode=FOCUS[recipe])
    steps = -(-len(train) // 32)
    cx.models.compile_recommended(model, learning_rate=1e-3, weight_decay=1e-4,
                                  label_smoothing=0.05, decay_steps=args.epochs * steps)
    guide = None if guide_terms is None else cx.training.Guide(segmenter, seed=fold,
                                                               **guide_terms)
    started = time.time()
    checkpoint = args.out / task / f"{recipe}_fold{fold}.checkpoint"
    history = cx.training.fit(model, train_ds, val_ds, epochs=args.epochs,
                              class_weight="balanced", checkpoint_dir=checkpoint, resume=True,
                              seed=args.seed + fold, verbose=0, guide=guide)
    seconds = time.time() - started
    clf = cx.Classifier(model, class_names=list(classes))
    clf.save(args.out / task / f"{recipe}_fold{fold}.keras")
    test_paths = list(test.paths)
    labels = np.asarray(test.labels)
    probabilities = clf.predict_proba(test_paths)
    result: dict[str, Any] = {
        "task": task, "recipe": recipe, "fold": fold, "train_films": len(train),
        "validation_films": len(val), "test_films": len(test), "image_size": size,
        "epochs": args.epochs, "epochs_run": len(history.history.get("loss", [])),
        "train_seconds": round(seconds, 1),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "films": [str(Path(p).relative_to(DATA)) for p in test_paths],
        "labels": labels.tolist(), "probabilities": np.round(probabilities, 5).tolist(),
    }
    if not recipe.startswith("inverse"):
        result.update(_explanations(args, clf, test_paths, labels, classes, segmenter, boxes,
                                    fold))
    accuracy = float(np.mean(probabilities.argmax(1) == labels))
    print(f"{task} {recipe} fold {fold}: accuracy {accuracy:.4f}, "
          f"{result['epochs_run']} epochs, {seconds:.0f} s"
          + (f", flip rate {np.mean(result['swap_flipped']):.3f}"
             if "swap_flipped" in result else ""), flush=True)
    return result


def _control(clf: Any, paths: list[str], labels: np.ndarray, segmenter: Any,
             fold: int) -> dict[str, Any]:
    """The swap test's control: donors of each film's own class (``donor_class="same"``)."""
    import cxrexplain as cx

    control = cx.metrics.swap_test(clf, paths, lungs=segmenter, labels=labels, seed=fold,
                                   donor_class="same")
    return {"control_flipped": control.flipped.astype(int).tolist(),
            "control_predicted": control.swapped.astype(int).tolist()}


def add_control(args: argparse.Namespace, segmenter: Any) -> None:
    """Add the same-class control to finished results from their saved models."""
    import cxrexplain as cx

    for task in args.tasks:
        for target in sorted((args.out / task).glob("*_fold*.json")):
            result = json.loads(target.read_text())
            if ("control_flipped" in result or "swap_flipped" not in result
                    or result["recipe"] not in args.recipes):
                continue
            clf = cx.Classifier.load(target.with_suffix(".keras"))
            paths = [str(DATA / f) for f in result["films"]]
            result.update(_control(clf, paths, np.asarray(result["labels"]), segmenter,
                                   result["fold"]))
            cx._files.atomic_write_text(target, json.dumps(result))
            print(f"{task} {result['recipe']} fold {result['fold']}: control flip rate "
                  f"{np.mean(result['control_flipped']):.3f} (swap test "
                  f"{np.mean(result['swap_flipped']):.3f})", flush=True)


def _explanations(args: argparse.Namespace, clf: Any, paths: list[str], labels: np.ndarray,
                  classes: tuple[str, ...], segmenter: Any, boxes: dict[str, np.ndarray],
                  fold: int) -> dict[str, Any]:
    import cv2

    import cxrexplain as cx
    from cxrexplain.evaluate import baseline_maps

    out: dict[str, Any] = {}
    swap = cx.metrics.swap_test(clf, paths, lungs=segmenter, labels=labels, seed=fold)
    out["swap_flipped"] = swap.flipped.astype(int).tolist()
    out["swap_predicted"] = swap.swapped.astype(int).tolist()
    out.update(_control(clf, paths, labels, segmenter, fold))
    covid = [p for p, lab in zip(paths, labels, strict=True) if classes[lab] == "COVID"]
    masks = [DATA / "lung_masks" / "COVID" / Path(p).name for p in covid]
    on_masks = cx.audit(clf, covid, lungs=masks, targets="COVID")
    out["covid_lung_share"] = np.round(on_masks.lung_share, 5).tolist()
    rep = cx.audit(clf, paths, lungs=segmenter, targets=labels)
    out["audit_flagged"] = bool(rep.flagged)
    out["audit_reason"] = rep.reason
    if "PNEUMONIA" in classes:
        boxed = [p for p in paths if str(Path(p).relative_to(DATA)) in boxes]
        out["boxed_films"] = [str(Path(p).relative_to(DATA)) for p in boxed]
        if boxed:
            size = args.image_size
            scale = size / 256
            truth = cx.metrics.boxes_to_masks(
                [boxes[str(Path(p).relative_to(DATA))] * scale for p in boxed], size)
            maps = cx.GradCAM(clf).explain(boxed, targets="PNEUMONIA").heatmaps
            lung_masks = np.asarray(segmenter.segment(boxed, size=size), np.float32)
            sigma = 0.05 * size
            prior = np.stack([cv2.GaussianBlur(m, (0, 0), sigma) for m in lung_masks])
            blob = baseline_maps("centre_gaussian", len(boxed), (size, size))
            for name, heat in (("model", maps), ("blob", blob), ("lung_prior", prior)):
                out[f"hit_{name}"] = cx.metrics.hit_rate(heat, truth).tolist()
                otsu = cx.metrics.binarize(heat, threshold="otsu")
                out[f"iou_{name}"] = cx.metrics.iou(otsu, truth).tolist()
                out[f"auprc_{name}"] = cx.metrics.pixel_auprc(heat, truth).tolist()
    return out


# --------------------------------------------------------------------------------- report
def _interval(values: Any, *, paired: Any = None, seed: int = 0) -> str:
    import cxrexplain as cx

    values = np.asarray(values, np.float64)
    if values.size == 0:
        return "—"
    if paired is not None:
        ci = cx.metrics.paired_bootstrap_ci(values, np.asarray(paired, np.float64), seed=seed)
        return f"{ci.mean:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]"
    ci = cx.metrics.bootstrap_ci(values, seed=seed)
    return f"{ci.mean:.2f} [{ci.low:.2f}, {ci.high:.2f}]"


def _macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    import cxrexplain as cx

    aucs = [cx.training.roc_auc((labels == c).astype(int), probabilities[:, c])
            for c in range(probabilities.shape[1])]
    return float(np.mean(aucs))


def report(args: argparse.Namespace) -> str:
    meta = metadata()
    lines: list[str] = []
    for task in args.tasks:
        classes = TASKS[task]
        rows: dict[str, list[dict[str, Any]]] = {}
        for recipe in RECIPES:
            found = [json.loads(p.read_text())
                     for p in sorted((args.out / task).glob(f"{recipe}_fold*.json"))]
            found = [r for r in found
                     if args.table_folds is None or r["fold"] in args.table_folds]
            if found:
                rows[recipe] = found
        if not rows:
            continue
        done = {r: sorted(x["fold"] for x in found) for r, found in rows.items()}
        first = next(iter(rows.values()))[0]
        lines += [f"**{task}** ({first['image_size']} px, up to {first['epochs']} epochs; "
                  f"folds done per recipe: "
                  + "; ".join(f"{r} {','.join(map(str, f))}" for r, f in done.items())
                  + "). Pooled over the folds run; 95 % bootstrap intervals over films.", ""]
        header = ["recipe", "swap flip rate", "control: same-class donors; excess (paired)",
                  "accuracy swapped (drop)", "accuracy",
                  "macro AUC", "sensitivity (" + ", ".join(classes) + ")",
                  "COVID lung share"]
        if "PNEUMONIA" in classes:
            header += ["hit rate", "- blob", "- lung prior", "mIoU (Otsu)", "AUPRC",
                       "NORMAL vs PNEUMONIA acc. AP / PA"]
        header += ["audit flagged", "train s/model"]
        lines += ["| " + " | ".join(header) + " |",
                  "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        blob_line: list[str] = []
        for recipe, found in rows.items():
            labels = np.concatenate([np.asarray(r["labels"]) for r in found])
            probs = np.concatenate([np.asarray(r["probabilities"]) for r in found])
            predicted = probs.argmax(1)
            correct = (predicted == labels).astype(float)
            sens = ", ".join(f"{np.mean(predicted[labels == c] == c):.2f}"
                             for c in range(len(classes)))
            cells = [recipe]
            if "swap_flipped" in found[0]:
                flipped = np.concatenate([r["swap_flipped"] for r in found])
                swapped = np.concatenate([r["swap_predicted"] for r in found])
                swapped_ok = (swapped == labels).astype(float)
                control = "—"
                if all("control_flipped" in r for r in found):
                    same = np.concatenate([r["control_flipped"] for r in found])
                    control = (f"{_interval(same)}; excess "
                               f"{_interval(flipped, paired=same)}")
                cells += [_interval(flipped), control,
                          f"{_interval(swapped_ok)} ({correct.mean() - swapped_ok.mean():+.3f})"]
            else:
                cells += ["—", "—", "—"]
            cells += [_interval(correct), f"{_macro_auc(labels, probs):.3f}", sens]
            shares = np.concatenate([r.get("covid_lung_share", []) for r in found])
            cells.append(_interval(shares) if shares.size else "—")
            if "PNEUMONIA" in classes:
                if "hit_model" in found[0]:
                    hit = np.concatenate([r["hit_model"] for r in found])
                    blob = np.concatenate([r["hit_blob"] for r in found])
                    prior = np.concatenate([r["hit_lung_prior"] for r in found])
                    iou = np.concatenate([r["iou_model"] for r in found])
                    auprc = np.concatenate([r["auprc_model"] for r in found])
                    cells += [f"{np.nanmean(hit):.2f} (n={hit.size})",
                              _interval(hit, paired=blob), _interval(hit, paired=prior),
                              f"{np.nanmean(iou):.3f}" if iou.size else "—",
                              f"{np.nanmean(auprc):.3f}"]
                    if not blob_line:
                        def pooled(key: str, found: list[dict[str, Any]] = found) -> float:
                            return float(np.nanmean(np.concatenate([r[key] for r in found])))

                        blob_line = [
                            f"Model-blind maps on the same {hit.size} boxed films: centred "
                            f"blob hit rate {np.nanmean(blob):.2f}, mIoU "
                            f"{pooled('iou_blob'):.3f}, AUPRC {pooled('auprc_blob'):.3f}; "
                            f"lung prior hit rate {np.nanmean(prior):.2f}, mIoU "
                            f"{pooled('iou_lung_prior'):.3f}, AUPRC "
                            f"{pooled('auprc_lung_prior'):.3f}."]
                else:
                    cells += ["—"] * 5
                films = [f for r in found for f in r["films"]]
                views = np.array([meta.get(f, {}).get("view", "") for f in films])
                pair = np.isin(labels, [classes.index("NORMAL"), classes.index("PNEUMONIA")])
                within = []
                for view in ("AP", "PA"):
                    chosen = pair & (views == view)
                    two = probs[chosen][:, [classes.index("NORMAL"), classes.index("PNEUMONIA")]]
                    truth = labels[chosen] == classes.index("PNEUMONIA")
                    within.append(f"{np.mean((two.argmax(1) == 1) == truth):.2f} "
                                  f"(n={int(chosen.sum())})")
                cells.append(" / ".join(within))
            flagged = [r.get("audit_flagged") for r in found if "audit_flagged" in r]
            cells.append(f"{sum(bool(f) for f in flagged)}/{len(flagged)}" if flagged else "—")
            cells.append(f"{np.mean([r['train_seconds'] for r in found]):.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        widest = max(rows.values(), key=len)  # the recipe with the most folds done
        pooled_labels = np.concatenate([np.asarray(r["labels"]) for r in widest])
        majority = max(np.mean(pooled_labels == c) for c in range(len(classes)))
        lines += ["", f"Majority-class rate on the test films of {widest[0]['recipe']}'s folds: "
                  f"{majority:.3f}. "
                  + " ".join(blob_line), ""]
    return "\n".join(lines)


def grid(args: argparse.Namespace, task: str = "three_class", fold: int = 0) -> Path | None:
    """Fold ``fold``'s models on the same six test films (two per class), one row each."""
    import cv2

    import cxrexplain as cx

    classes = TASKS[task]
    models = [(r, args.out / task / f"{r}_fold{fold}.keras") for r in RECIPES
              if not r.startswith("inverse")]
    models = [(r, p) for r, p in models if p.is_file()]
    if not models:
        return None
    found = json.loads((args.out / task / f"{models[0][0]}_fold{fold}.json").read_text())
    boxes = box_table()
    chosen: list[str] = []
    for c, name in enumerate(classes):
        films = [f for f, lab in zip(found["films"], found["labels"], strict=True) if lab == c]
        if name == "PNEUMONIA":
            films = [f for f in films if f in boxes] + films
        chosen += films[:2]
    size = found["image_size"]
    images = cx.load_images([DATA / f for f in chosen], size=size)
    tiles, captions, tile_boxes = [], [], []
    for recipe, path in models:
        clf = cx.Classifier.load(path)
        exp = cx.GradCAM(clf).explain(images, targets=[classes.index(f.split("/")[0])
                                                        for f in chosen])
        tiles.append(exp.heatmaps)
        probs = clf.predict_proba(images)
        captions += [f"{SHORT.get(recipe, recipe)} "
                     f"p={probs[i, classes.index(f.split('/')[0])]:.2f}"
                     for i, f in enumerate(chosen)]
        tile_boxes += [boxes[f] * size / 256 if f in boxes else None for f in chosen]
    picture = cx.drawing.overlay_grid(
        np.concatenate([images] * len(models)), np.concatenate(tiles), captions=captions,
        boxes=tile_boxes, columns=len(chosen),
        header=f"{task}, fold {fold}, Grad-CAM of the true class; columns "
               + ", ".join(f.split("/")[0] for f in chosen) + "; p: its probability")
    FIGURES.mkdir(parents=True, exist_ok=True)
    target = FIGURES / "guided_recipes_grid.png"
    cv2.imwrite(str(target), cv2.cvtColor(np.asarray(picture), cv2.COLOR_RGB2BGR))
    return target


def schedule(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """What runs in which order: the core recipes on the first three folds, then the rest of
    those folds, then the remaining folds (so that a session cut short leaves paired folds)."""
    first = range(min(3, args.folds))
    later = range(min(3, args.folds), args.folds)
    core = [r for r in args.recipes if r in CORE]
    rest = [r for r in args.recipes if r not in CORE]
    order = ([(r, f) for f in first for r in core] + [(r, f) for f in first for r in rest]
             + [(r, f) for f in later for r in args.recipes])
    return [(task, r, f) for task in args.tasks for r, f in order]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report:
        print(report(args))
        print(grid(args))
        return 0
    import cxrexplain as cx
    from cxrexplain.lungs.focus import MODES

    segmenter = cx.lungs.LungSegmenter.load(args.lungs)
    if args.add_control:
        add_control(args, segmenter)
        print(report(args))
        return 0
    for task, recipe, fold in schedule(args):
        if FOCUS.get(recipe) and FOCUS[recipe] not in MODES:
            continue
        target = args.out / task / f"{recipe}_fold{fold}.json"
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        result = run_one(args, task, recipe, fold, segmenter)
        cx._files.atomic_write_text(target, json.dumps(result))
    print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
