"""Every saliency method on real X-rays: the CheXlocalize protocol and Arun et al.'s trust tests
(issue 25).

Model: the plain three-class ``cam_cnn`` at 128 px of the issue-23 benchmark
(``benchmarks/guided_real.py``, recipe ``plain``), fold ``i``'s model explaining fold ``i``'s
own test films (read from ``--models``, default ``../main/benchmarks/out/guided_real/three_class``;
read-only). Per fold, the films scored are:

* the boxed PNEUMONIA test films (``cxr/boxes.csv`` NIH + ``cxr/rsna_boxes.csv`` RSNA, boxes in
  each film's 256-px pixels rescaled to the 128-px input), explained for PNEUMONIA: hit rate
  (the map's maximum inside a box, no tolerance: CheXlocalize's rule), mIoU at Otsu's threshold,
  pixel AUPRC, pointing game with a 15-px tolerance (``evaluate_explainers``' rule);
* the COVID test films with a reference lung mask (``cxr/lung_masks/COVID``), explained for
  COVID: the map's energy inside the lungs (lung share).

On all of them: deletion and insertion AUC (20 steps, ``cx.metrics``' defaults otherwise), the
cascading randomization check (top 3 layers re-initialised, Spearman of the last step), and, on
fold 0 only, Arun et al.'s repeatability (SSIM to the maps of a second ``cam_cnn`` trained with
the same recipe and another seed) and reproducibility (SSIM to the maps of a ``five_block_cnn``
trained with the same recipe), beside ``pair_ssim``, the SSIM of the method's own maps of random
pairs of films (the floor). Two model-blind maps are scored the same way: the centred blob and
uniform noise. Every figure is the mean over films with a 95 % percentile-bootstrap interval;
the localisation columns also give the paired difference to the centred blob.

Each (fold, method) writes ``benchmarks/out/methods_real/fold<i>/<method>.json`` with its
per-film values when done; a rerun skips it. The two extra models are trained first and saved
as ``benchmarks/out/methods_real/{repeat,reproduce}_fold0.keras``.

    nohup python benchmarks/methods_real.py --folds 0 1 2 3 4 > benchmarks/out/methods_real.log &
    python benchmarks/methods_real.py --report
"""

from __future__ import annotations

import argparse
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
OUT = ROOT / "benchmarks" / "out" / "methods_real"
MODELS = ROOT.parent / "main" / "benchmarks" / "out" / "guided_real" / "three_class"
CLASSES = ("COVID", "NORMAL", "PNEUMONIA")
SIZE = 128
# Settings below the defaults where the defaults cost too much on 2 shared CPU cores.
SETTINGS: dict[str, dict[str, Any]] = {
    "rise": {"samples": 1000},
    "smooth_ig": {"samples": 8, "steps": 8},
}
# Cheap first, so that a run cut short leaves most of the table.
ORDER = ("cam", "gradcam", "gradcampp", "hirescam", "xgradcam", "layercam", "eigencam",
         "saliency", "gradient_input", "guided_backprop", "guided_gradcam", "deeplift", "lrp",
         "integrated_gradients", "smoothgrad", "occlusion", "ablationcam", "scorecam",
         "smooth_ig", "rise")
BLIND = ("centre_gaussian", "random")
STEPS = 20
TOLERANCE = 15
RANDOMIZED = 3


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--no-trust", action="store_true",
                        help="skip training/using the repeat and reproduce models")
    parser.add_argument("--trust", nargs="+", choices=("repeat", "reproduce"),
                        default=["repeat", "reproduce"], help="which trust models to use")
    parser.add_argument("--add-trust", choices=("repeat", "reproduce"),
                        help="only add this trust column to fold 0's finished methods, "
                             "from their saved maps")
    parser.add_argument("--randomization-folds", type=int, nargs="+", default=None,
                        help="run the randomization check on these folds only (default: all; "
                             "it costs three more explanations of every film)")
    parser.add_argument("--report", action="store_true")
    return parser.parse_args(argv)


def method_list(args: argparse.Namespace) -> list[str]:
    import cxrexplain as cx

    registered = list(cx.explainers())
    chosen = args.methods or [m for m in ORDER if m in registered] + [
        m for m in registered if m not in ORDER]
    return [m for m in chosen if m in registered]


def make(name: str, clf: Any) -> Any:
    import cxrexplain as cx

    return cx.explainers()[name](clf, **SETTINGS.get(name, {}))


# ------------------------------------------------------------------------------ the models
def train_twin(args: argparse.Namespace, kind: str) -> Path:
    """Fold 0's ``plain`` recipe of guided_real.py (run_one), with another seed (``repeat``)
    or another architecture (``reproduce``)."""
    import keras
    from guided_real import folds

    import cxrexplain as cx

    target = OUT / f"{kind}_fold0.keras"
    if target.is_file():
        return target
    fold, seed = 0, 0
    _, parts = folds(CLASSES, seed)
    train_all = parts[fold].train
    train, val = cx.data.stratified_split(train_all, 0.1, seed=seed + fold)
    train_seed = seed + fold + (1000 if kind == "repeat" else 0)
    train_ds = cx.data.from_files(train, image_size=SIZE, batch_size=32, shuffle=True,
                                  augment=cx.data.Augmentation(), seed=train_seed)
    val_ds = cx.data.from_files(val, image_size=SIZE, batch_size=32)
    keras.backend.clear_session()
    keras.utils.set_random_seed(train_seed)
    builder = "cam_cnn" if kind == "repeat" else "five_block_cnn"
    model = cx.models.build(builder, input_shape=(SIZE, SIZE, 1), num_classes=len(CLASSES))
    steps = -(-len(train) // 32)
    cx.models.compile_recommended(model, learning_rate=1e-3, weight_decay=1e-4,
                                  label_smoothing=0.05, decay_steps=args.epochs * steps)
    started = time.time()
    history = cx.training.fit(model, train_ds, val_ds, epochs=args.epochs,
                              class_weight="balanced", checkpoint_dir=OUT / f"{kind}.checkpoint",
                              resume=True, seed=train_seed, verbose=0)
    clf = cx.Classifier(model, class_names=list(CLASSES))
    test = parts[fold].test
    accuracy = float(np.mean(clf.predict_proba(list(test.paths)).argmax(1)
                             == np.asarray(test.labels)))
    OUT.mkdir(parents=True, exist_ok=True)
    clf.save(target)
    info = {"builder": builder, "seed": train_seed, "epochs_run": len(history.history["loss"]),
            "train_seconds": round(time.time() - started, 1), "test_accuracy": accuracy}
    target.with_suffix(".json").write_text(json.dumps(info))
    print(f"{kind}: {info}", flush=True)
    return target


# ---------------------------------------------------------------------------------- films
def fold_films(args: argparse.Namespace, fold: int) -> dict[str, Any]:
    """Fold ``fold``'s scored films: boxed PNEUMONIA (boxes at 128 px), COVID with lung masks."""
    import cv2
    from guided_real import box_table

    import cxrexplain as cx

    found = json.loads((args.models / f"plain_fold{fold}.json").read_text())
    boxes = box_table()
    boxed = [f for f in found["films"] if f in boxes]
    covid = [f for f, lab in zip(found["films"], found["labels"], strict=True)
             if lab == CLASSES.index("COVID")
             and (DATA / "lung_masks" / "COVID" / Path(f).name).is_file()]
    masks = []
    for f in covid:
        mask = cv2.imread(str(DATA / "lung_masks" / "COVID" / Path(f).name),
                          cv2.IMREAD_GRAYSCALE)
        masks.append(cv2.resize((mask > 127).astype(np.float32), (SIZE, SIZE),
                                interpolation=cv2.INTER_AREA) > 0.5)
    return {
        "boxed": boxed, "covid": covid,
        "box_lists": [boxes[f] * SIZE / 256 for f in boxed],
        "truth": cx.metrics.boxes_to_masks([boxes[f] * SIZE / 256 for f in boxed], SIZE),
        "lungs": np.stack(masks) if masks else np.zeros((0, SIZE, SIZE), bool),
    }


# -------------------------------------------------------------------------------- scoring
def score(clf: Any, batch: np.ndarray, maps: np.ndarray, targets: np.ndarray,
          films: dict[str, Any]) -> dict[str, list[float]]:
    """Per-film values of every metric that does not need the explainer again."""
    import cxrexplain as cx

    n_box = len(films["boxed"])
    out: dict[str, Any] = {}
    box_maps = maps[:n_box]
    if n_box:
        out["hit"] = cx.metrics.hit_rate(box_maps, films["truth"])
        out["iou"] = cx.metrics.iou(cx.metrics.binarize(box_maps, threshold="otsu"),
                                    films["truth"])
        out["auprc"] = cx.metrics.pixel_auprc(box_maps, films["truth"])
        out["pointing"] = cx.metrics.pointing_game(
            box_maps, films["box_lists"], tolerance=TOLERANCE).hits
    if len(films["covid"]):
        with np.errstate(all="ignore"):
            out["lung_share"] = cx.metrics.energy_in_mask(maps[n_box:], films["lungs"])
    out["deletion"] = cx.metrics.deletion_auc(clf, batch, maps, targets=targets, steps=STEPS,
                                              batch_size=32)
    out["insertion"] = cx.metrics.insertion_auc(clf, batch, maps, targets=targets, steps=STEPS,
                                                batch_size=32)
    return {k: np.asarray(v, np.float64).round(6).tolist() for k, v in out.items()}


def run_fold(args: argparse.Namespace, fold: int, methods: list[str],
             twins: dict[str, Any]) -> None:
    import cxrexplain as cx
    from cxrexplain.errors import ModelStructureError
    from cxrexplain.evaluate import baseline_maps

    folder = OUT / f"fold{fold}"
    folder.mkdir(parents=True, exist_ok=True)
    films = fold_films(args, fold)
    paths = [str(DATA / f) for f in films["boxed"] + films["covid"]]
    targets = np.array([CLASSES.index("PNEUMONIA")] * len(films["boxed"])
                       + [CLASSES.index("COVID")] * len(films["covid"]))
    clf = cx.Classifier.load(args.models / f"plain_fold{fold}.keras")
    batch = clf.prepare(paths)
    common = {"fold": fold, "films": films["boxed"] + films["covid"],
              "boxed": len(films["boxed"]), "covid": len(films["covid"])}
    for kind in BLIND:
        target = folder / f"{kind}.json"
        if not target.is_file():
            maps = baseline_maps(kind, len(paths), (SIZE, SIZE), seed=fold)
            result = {**common, "method": kind, **score(clf, batch, maps, targets, films)}
            target.write_text(json.dumps(result))
    for name in methods:
        target = folder / f"{name}.json"
        if target.is_file():
            continue
        result: dict[str, Any] = {**common, "method": name, "settings": SETTINGS.get(name, {})}
        try:
            explainer = make(name, clf)
            started = time.perf_counter()
            exp = explainer.explain(batch, targets, batch_size=32)
            result["seconds_per_image"] = (time.perf_counter() - started) / len(paths)
        except ModelStructureError as error:
            result["refused"] = str(error)
            target.write_text(json.dumps(result))
            print(f"fold {fold} {name}: refused ({error})", flush=True)
            continue
        maps = np.asarray(exp.heatmaps, np.float32)
        result.update(score(clf, batch, maps, targets, films))
        if args.randomization_folds is None or fold in args.randomization_folds:
            started = time.perf_counter()
            check = cx.metrics.randomization_check(explainer, batch, targets=targets,
                                                   layers=RANDOMIZED, seed=fold, batch_size=32)
            result["randomization"] = np.asarray(check.correlations[-1], np.float64).round(
                6).tolist()
            result["randomization_seconds"] = round(time.perf_counter() - started, 1)
        for column, other in twins.items():
            try:
                theirs = make(name, other).explain(other.prepare(batch), targets, batch_size=32)
            except ModelStructureError as error:
                result[column + "_refused"] = str(error)
                continue
            compare = (cx.metrics.repeatability if column == "repeatability"
                       else cx.metrics.reproducibility)
            result[column] = np.asarray(compare(maps, theirs.heatmaps), np.float64).round(
                6).tolist()
        if fold == 0:
            np.savez_compressed(folder / f"{name}.npz", maps=maps.astype(np.float16))
        if twins:
            result["pair_ssim"] = np.asarray(cx.metrics.pair_baseline(maps, seed=fold),
                                             np.float64).round(6).tolist()
        cx._files.atomic_write_text(target, json.dumps(result))
        print(f"fold {fold} {name}: {result['seconds_per_image']:.3f} s/image, hit "
              f"{np.mean(result.get('hit', [np.nan])):.2f}, randomization "
              f"{np.nanmean(result.get('randomization', [np.nan])):.2f}", flush=True)


# --------------------------------------------------------------------------------- report
def _ci(values: Any, paired: Any = None, digits: int = 2) -> str:
    import cxrexplain as cx

    values = np.asarray(values, np.float64)
    if values.size == 0 or np.all(np.isnan(values)):
        return "—"
    if paired is not None:
        keep = ~(np.isnan(values) | np.isnan(np.asarray(paired, np.float64)))
        ci = cx.metrics.paired_bootstrap_ci(values[keep], np.asarray(paired)[keep], seed=0)
        return f"{ci.mean:+.{digits}f} [{ci.low:+.{digits}f}, {ci.high:+.{digits}f}]"
    values = values[~np.isnan(values)]
    ci = cx.metrics.bootstrap_ci(values, seed=0)
    return f"{ci.mean:.{digits}f} [{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def load(fold_filter: list[int] | None = None) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(OUT.glob("fold*/*.json")):
        result = json.loads(path.read_text())
        if fold_filter is None or result["fold"] in fold_filter:
            rows.setdefault(result["method"], []).append(result)
    return rows


def _pool(found: list[dict[str, Any]], key: str, folds: set[int]) -> np.ndarray:
    parts = [np.asarray(r[key], np.float64) for r in found if r["fold"] in folds and key in r]
    return np.concatenate(parts) if parts else np.zeros(0)


def report(args: argparse.Namespace) -> str:
    rows = load()
    if not rows:
        return "(nothing measured yet)"
    order = [m for m in ORDER if m in rows] + [m for m in rows if m not in ORDER
                                               and m not in BLIND] + list(BLIND)
    order = [m for m in order if m in rows]
    # pool the folds most methods finished; a method run on fewer (RISE, the costliest) is
    # pooled over its own folds, says which, and is paired with the blob on those films
    done = {m: {r["fold"] for r in rows[m] if "refused" not in r} for m in order
            if not all("refused" in r for r in rows[m])}
    sets = [frozenset(v) for v in done.values() if v]
    common = set(max(sets, key=lambda f: (sum(f == g for g in sets), len(f)))) if sets else set()
    blob = rows["centre_gaussian"]
    lines = []
    first = next(r for m in order for r in rows[m] if r["fold"] in common)
    boxed = sum(r["boxed"] for r in blob if r["fold"] in common)
    covid = sum(r["covid"] for r in blob if r["fold"] in common)
    lines += [f"Folds pooled: {sorted(common)} ({boxed} boxed PNEUMONIA films, {covid} COVID "
              f"films with lung masks; model: plain `cam_cnn`, {SIZE} px, fold i's model on "
              f"fold i's test films). Mean [95 % bootstrap interval over films]; "
              f"Δ blob: paired difference to the centred blob.", ""]
    del first
    header = ["method", "hit rate", "Δ blob", "mIoU (Otsu)", "Δ blob", "AUPRC", "Δ blob",
              "pointing (15 px)", "COVID lung share", "deletion ↓", "insertion ↑",
              "randomization Spearman ↓", "s/image"]
    lines += ["| " + " | ".join(header) + " |",
              "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    refused = []
    for method in order:
        folds = common if done.get(method, set()) >= common else done.get(method, set())
        found = [r for r in rows[method] if r["fold"] in folds]
        if not found or "refused" in found[0]:
            refused.append(method)
            continue
        settings = dict(SETTINGS.get(method, {}))
        if folds != common:
            boxed_here = sum(r["boxed"] for r in found)
            settings["folds"] = "+".join(map(str, sorted(folds))) + f" only, {boxed_here} boxed"
        randomized = sorted(r["fold"] for r in found if "randomization" in r)
        if randomized and set(randomized) != folds:
            settings["randomization"] = "fold " + "+".join(map(str, randomized))
        cells = [method + (" (" + ", ".join(f"{k}={v}" for k, v in settings.items())
                           + ")" if settings else "")]
        for key in ("hit", "iou", "auprc"):
            values = _pool(found, key, folds)
            cells.append(_ci(values))
            cells.append("" if method == "centre_gaussian" else
                         _ci(values, _pool(blob, key, folds)))
        cells += [_ci(_pool(found, "pointing", folds)), _ci(_pool(found, "lung_share", folds)),
                  _ci(_pool(found, "deletion", folds), digits=3),
                  _ci(_pool(found, "insertion", folds), digits=3),
                  _ci(_pool(found, "randomization", folds)),
                  (f"{np.mean([r['seconds_per_image'] for r in found]):.3f}"
                   if "seconds_per_image" in found[0] else "—")]
        lines.append("| " + " | ".join(cells) + " |")
    if refused:
        lines += ["", "Refused the model (ModelStructureError): " + ", ".join(refused) + "."]
    trust = [m for m in order if any("repeatability" in r or "reproducibility" in r
                                     for r in rows[m])]
    if trust:
        info = {k: json.loads((OUT / f"{k}_fold0.json").read_text())
                for k in ("repeat", "reproduce") if (OUT / f"{k}_fold0.json").is_file()}
        films0 = next(r for r in rows[trust[0]] if r["fold"] == 0)
        lines += ["", f"Trust tests (Arun et al. 2021), fold 0 ({len(films0['films'])} films: "
                  f"{films0['boxed']} boxed PNEUMONIA + {films0['covid']} COVID). Repeat model: "
                  + ", ".join(f"{k}: {v['builder']} seed {v['seed']}, test accuracy "
                              f"{v['test_accuracy']:.3f}" for k, v in info.items())
                  + ". SSIM of maps; pair SSIM: the same method's maps of random film pairs "
                    "(the floor a trust score must clear).", "",
                  "| method | repeatability SSIM | reproducibility SSIM | pair SSIM (floor) | "
                  "randomization Spearman (fold 0) |", "|---|---:|---:|---:|---:|"]
        for method in trust:
            r0 = next(r for r in rows[method] if r["fold"] == 0)
            lines.append(f"| {method} | {_ci(r0.get('repeatability', []))} | "
                         f"{_ci(r0.get('reproducibility', []))} | "
                         f"{_ci(r0.get('pair_ssim', []))} | "
                         f"{_ci(r0.get('randomization', []))} |")
    return "\n".join(lines)


COLUMNS = {"repeat": "repeatability", "reproduce": "reproducibility"}


def add_trust(args: argparse.Namespace, kind: str) -> None:
    """Fill ``kind``'s column of fold 0's finished methods from their saved maps."""
    import cxrexplain as cx
    from cxrexplain.errors import ModelStructureError

    column = COLUMNS[kind]
    other = cx.Classifier.load(train_twin(args, kind))
    clf = cx.Classifier.load(args.models / "plain_fold0.keras")
    for target in sorted((OUT / "fold0").glob("*.json")):
        result = json.loads(target.read_text())
        saved = target.with_suffix(".npz")
        if column in result or "refused" in result or not saved.is_file():
            continue
        maps = np.load(saved)["maps"].astype(np.float32)
        films = [str(DATA / f) for f in result["films"]]
        targets = np.array([CLASSES.index("PNEUMONIA")] * result["boxed"]
                           + [CLASSES.index("COVID")] * result["covid"])
        try:
            theirs = make(result["method"], other).explain(other.prepare(clf.prepare(films)),
                                                           targets, batch_size=32)
        except ModelStructureError as error:
            result[column + "_refused"] = str(error)
        except Exception as error:  # a library failure: record it, go on with the others
            result[column + "_failed"] = f"{type(error).__name__}: {str(error)[:300]}"
        else:
            compare = (cx.metrics.repeatability if kind == "repeat"
                       else cx.metrics.reproducibility)
            result[column] = np.asarray(compare(maps, theirs.heatmaps), np.float64).round(
                6).tolist()
        cx._files.atomic_write_text(target, json.dumps(result))
        print(f"fold 0 {result['method']}: {column} "
              f"{np.mean(result.get(column, [np.nan])):.3f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report:
        print(report(args))
        return 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import cxrexplain as cx

    if args.add_trust:
        add_trust(args, args.add_trust)
        return 0
    methods = method_list(args)
    print("methods:", methods, flush=True)
    twins: dict[str, Any] = {}
    if not args.no_trust and 0 in args.folds:
        twins = {COLUMNS[kind]: cx.Classifier.load(train_twin(args, kind))
                 for kind in args.trust}
    for fold in args.folds:
        run_fold(args, fold, methods, twins if fold == 0 else {})
    print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
