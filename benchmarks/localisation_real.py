"""Localisation with 95 % bootstrap intervals on real chest X-rays (issue 16).

The CXR-paper protocol (Saporta et al. 2022, CheXlocalize; Arun et al. 2021) on the two
``cam_cnn`` models of ``benchmarks/evaluate_real.py`` (issue 6), reloaded from
``benchmarks/out/evaluate_real/`` (trained there through that script's code when missing):

* **pneumonia**: the NORMAL vs PNEUMONIA model explains PNEUMONIA on the 22 films with
  radiologists' boxes (never trained on); the truth is the boxes filled into masks at the
  model's input size (``boxes_to_masks``).
* **covid**: the COVID vs PNEUMONIA model explains COVID on its held-out COVID films; the truth
  is the lung masks (lungs, not lesions).

Every explainer of ``cx.explainers()`` and the two model-blind baselines (random, centred
Gaussian) are scored per image: IoU of the Otsu-binarised map, IoU at a threshold tuned by
leave-one-out over the task's images (``tune_threshold`` on the other N-1 images, applied to
the one left out), IoU with a 0.5 gate on the target probability (Otsu), hit rate, pixel
AUPRC, the pointing game (boxes; 15 px at 256 px, scaled) and the energy in the mask. Each
metric is reported as its mean with a 95 % percentile-bootstrap interval (1000 resamples,
seed 0), and each method's difference to the centred Gaussian with a paired bootstrap
interval. Each (task, method) writes its per-image values to
``benchmarks/out/localisation_real/<task>_<method>.json`` as it finishes; a rerun skips those.
The section goes to ``benchmarks/RESULTS.md``.

    python benchmarks/localisation_real.py     # ~2-3 min on 2 cores with the models saved
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import evaluate_real
import numpy as np
from _results import machine, write_section

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "localisation_real"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Localisation with confidence intervals (issue 16)"
TARGETS = {"pneumonia": "PNEUMONIA", "covid": "COVID"}
IMAGE_SIZE, EPOCHS, SEED = 128, 30, 0  # evaluate_real's defaults: the saved models' settings
RESAMPLES, LEVEL = 1000, 0.95
GATE = 0.5
SCORECAM_CHANNELS = 64  # as in evaluate_real
RISE_SAMPLES = 1000
OCCLUSION = {"patch": 16, "stride": 8, "baseline": 0.5}  # 15 x 15 = 225 positions at 128 px
CENTRE = "centre_gaussian"
COLUMNS = {
    "pneumonia": [("iou_otsu", "mIoU Otsu"), ("iou_tuned", "mIoU tuned (LOO)"),
                  ("iou_gated", "mIoU Otsu, gate 0.5"), ("hit_rate", "hit rate"),
                  ("pixel_auprc", "pixel AUPRC"), ("pointing_game", "pointing game")],
    "covid": [("iou_otsu", "mIoU Otsu"), ("iou_tuned", "mIoU tuned (LOO)"),
              ("iou_gated", "mIoU Otsu, gate 0.5"), ("hit_rate", "hit rate"),
              ("pixel_auprc", "pixel AUPRC"), ("mask_energy", "energy in mask")],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import cxrexplain as cx
    from cxrexplain.evaluate import BASELINES

    started = time.time()
    # the methods that apply to these CNNs (attention rollout needs a transformer)
    methods = [*(name for name, cls in cx.explainers().items() if cls.requires is None),
               *BASELINES]
    boxes = evaluate_real._read_boxes(evaluate_real.DATA / "boxes.csv")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    models: dict[str, dict[str, Any]] = {}
    for task in TARGETS:
        clf, held_out, info = _model(cx, task, boxes, args.out)
        models[task] = info
        pending = [m for m in methods if not _done(args.out, task, m, info["sha256"])]
        if pending:
            _run_task(cx, task, clf, held_out, boxes, pending, args.out, info["sha256"])
        else:
            print(f"[{task}] all {len(methods)} methods done before", flush=True)
        results[task] = {m: json.loads(_path(args.out, task, m).read_text()) for m in methods}
    total_file = args.out / "run_seconds.json"
    total = json.loads(total_file.read_text())["seconds"] if total_file.is_file() else 0.0
    total += time.time() - started
    total_file.write_text(json.dumps({"seconds": round(total, 1)}))
    _write_results(results, models, methods, total)


def _path(out: Path, task: str, method: str) -> Path:
    return out / f"{task}_{method}.json"


def _done(out: Path, task: str, method: str, digest: str) -> bool:
    """Whether the method's values exist for this very model file (a retrained model
    makes them stale)."""
    path = _path(out, task, method)
    return path.is_file() and json.loads(path.read_text()).get("model_sha256") == digest


def _model(cx: Any, task: str, boxes: dict[str, list[list[float]]], out: Path
           ) -> tuple[Any, list[Path], dict[str, Any]]:
    """The task's model via evaluate_real (reloaded, or trained and saved there), its
    held-out images and its provenance (cached in ``models.json`` with the file's hash)."""
    saved = evaluate_real.OUT / f"{task}.keras"
    existed = saved.is_file()
    model_args = argparse.Namespace(image_size=IMAGE_SIZE, epochs=EPOCHS, seed=SEED,
                                    quick=False, out=evaluate_real.OUT)
    model_args.out.mkdir(parents=True, exist_ok=True)
    if not existed:
        print(f"[{task}] no saved model at {saved}: training it with evaluate_real's code",
              flush=True)
    clf, held_out, info = evaluate_real._model(cx, task, boxes, model_args)
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()[:12]
    stamp = datetime.fromtimestamp(saved.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")
    facts = {**info, "file": str(saved.relative_to(HERE.parent)), "sha256": digest,
             "saved": stamp, "trained_by_this_script": not existed}
    cache = out / "models.json"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    if known.get(task, {}).get("sha256") == digest:  # keep "trained_by_this_script" of run 1
        facts["trained_by_this_script"] = known[task]["trained_by_this_script"]
    known[task] = facts
    cache.write_text(json.dumps(known, indent=2))
    return clf, held_out, facts


def _run_task(cx: Any, task: str, clf: Any, held_out: list[Path],
              boxes: dict[str, list[list[float]]], pending: list[str], out: Path,
              digest: str) -> None:
    from cxrexplain.evaluate import BASELINES, baseline_maps

    target = TARGETS[task]
    batch = clf.prepare(held_out)
    count, height, width = batch.shape[:3]
    scale = height / 256.0
    probabilities = clf.predict_proba(batch)[:, list(clf.class_names).index(target)]
    if task == "pneumonia":
        scaled = [np.array(boxes[p.name]) * scale for p in held_out]
        truth = cx.metrics.boxes_to_masks(scaled, (height, width))
    else:
        scaled = None
        truth = np.stack([cx.load_image(evaluate_real.DATA / "lung_masks" / "COVID" / p.name,
                                        size=height)[..., 0] > 0.5
                          for p in held_out])
    print(f"[{task}] {count} images at {height}x{width}, target {target}; "
          f"{int((probabilities >= GATE).sum())} with p >= {GATE}; "
          f"to do: {', '.join(pending)}", flush=True)
    for method in pending:
        began = time.perf_counter()
        if method in BASELINES:
            maps = baseline_maps(method, count, (height, width), seed=SEED)
            settings: dict[str, Any] = {"seed": SEED}
        else:
            explainer, settings = _explainer(cx, clf, method)
            maps = explainer.explain(batch, target).heatmaps
        seconds = time.perf_counter() - began
        values = _score(cx, maps, truth, probabilities, scaled, scale)
        record = {"task": task, "method": method, "model_sha256": digest, "target": target,
                  "settings": settings,
                  "images": [p.name for p in held_out],
                  "probability": [float(p) for p in probabilities],
                  "seconds_per_image": seconds / count, **values}
        path = _path(out, task, method)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(record, indent=1))
        partial.replace(path)
        print(f"[{task}] {method}: " + ", ".join(
            f"{key} {np.nanmean(values[key]):.3f}" for key, _ in COLUMNS[task])
            + f" ({seconds:.1f} s)", flush=True)


def _explainer(cx: Any, clf: Any, method: str) -> tuple[Any, dict[str, Any]]:
    if method == "scorecam":
        return cx.ScoreCAM(clf, max_channels=SCORECAM_CHANNELS), {
            "max_channels": SCORECAM_CHANNELS}
    if method == "occlusion":
        return cx.Occlusion(clf, **OCCLUSION), dict(OCCLUSION)
    if method == "rise":  # 4000 masks by default: one model pass each, too slow on a CPU
        return cx.RISE(clf, samples=RISE_SAMPLES), {"samples": RISE_SAMPLES}
    return cx.explainers()[method](clf), {}


def _score(cx: Any, maps: np.ndarray, truth: np.ndarray, probabilities: np.ndarray,
           boxes: list[np.ndarray] | None, scale: float) -> dict[str, list[float | None]]:
    """Per-image values of every metric (None for NaN, so the JSON stays standard)."""
    m = cx.metrics
    tuned, thresholds = _leave_one_out(m, maps, truth)
    values = {
        "iou_otsu": m.iou(m.binarize(maps), truth),
        "iou_tuned": tuned,
        "iou_gated": m.iou(m.binarize(maps, probabilities=probabilities, gate=GATE), truth),
        "hit_rate": m.hit_rate(maps, truth),
        "pixel_auprc": m.pixel_auprc(maps, truth),
        "mask_energy": m.energy_in_mask(maps, truth),
        "tuned_threshold": thresholds,
    }
    if boxes is not None:
        values["pointing_game"] = m.pointing_game(
            maps, boxes, tolerance=15 * scale).hits.astype(float)
    return {k: [None if math.isnan(x) else float(x) for x in np.asarray(v, float)]
            for k, v in values.items()}


def _leave_one_out(m: Any, maps: np.ndarray, truth: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """IoU of each image at the threshold tuned on the other images, and those thresholds."""
    count = maps.shape[0]
    scores, thresholds = np.full(count, np.nan), np.full(count, np.nan)
    for i in range(count):
        others = np.arange(count) != i
        chosen = m.tune_threshold(maps[others], truth[others])
        thresholds[i] = chosen
        if not math.isnan(chosen):
            scores[i] = m.iou(m.binarize(maps[i:i + 1], threshold=chosen), truth[i:i + 1])[0]
    return scores, thresholds


# -- the RESULTS.md section -----------------------------------------------------------------

def _array(record: dict[str, Any], key: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in record[key]], float)


def _ci(values: np.ndarray) -> Any:
    from cxrexplain.metrics import bootstrap_ci

    return bootstrap_ci(values, n_resamples=RESAMPLES, level=LEVEL, seed=SEED)


def _paired(a: np.ndarray, b: np.ndarray) -> Any:
    from cxrexplain.metrics import paired_bootstrap_ci

    return paired_bootstrap_ci(a, b, n_resamples=RESAMPLES, level=LEVEL, seed=SEED)


def _cell(interval: Any, signed: bool = False) -> str:
    if math.isnan(interval.mean):
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    return (f"{f.format(interval.mean)} [{f.format(interval.low)}, "
            f"{f.format(interval.high)}]")


def _gap(value: float, centre: float) -> str:
    if math.isnan(value) or math.isnan(centre) or centre == 0:
        return "n/a"
    return f"{100.0 * (value - centre) / centre:+.0f} %"


def _table(task: str, records: dict[str, dict[str, Any]], methods: list[str]) -> list[str]:
    columns = COLUMNS[task]
    lines = ["| method | " + " | ".join(label for _, label in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for method in methods:
        cells = [_cell(_ci(_array(records[method], key))) for key, _ in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _comparisons(records: dict[str, dict[str, Any]], methods: list[str]
                 ) -> dict[str, dict[str, Any]]:
    """Per method and metric: the paired interval of method - centre and the % gap."""
    centre = records[CENTRE]
    found: dict[str, dict[str, Any]] = {}
    for method in methods:
        if method == CENTRE:
            continue
        found[method] = {}
        for key in ("iou_otsu", "hit_rate"):
            a, b = _array(records[method], key), _array(centre, key)
            found[method][key] = (_paired(a, b), _gap(float(np.nanmean(a)),
                                                      float(np.nanmean(b))))
    return found


def _comparison_table(found: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| method | mIoU Otsu - centre [95 % CI] | mIoU gap | "
             "hit rate - centre [95 % CI] | hit-rate gap |", "|---|---|---|---|---|"]
    for method, row in found.items():
        (d_iou, g_iou), (d_hit, g_hit) = row["iou_otsu"], row["hit_rate"]
        lines.append(f"| {method} | {_cell(d_iou, True)} | {g_iou} | {_cell(d_hit, True)} | "
                     f"{g_hit} |")
    return lines


def _verdict(found: dict[str, dict[str, Any]], explainers: list[str]) -> dict[str, list[str]]:
    """Explainers whose paired interval lies above 0, below 0, or straddles it, per metric."""
    sides: dict[str, list[str]] = {}
    for key in ("iou_otsu", "hit_rate"):
        for method in explainers:
            interval = found[method][key][0]
            side = ("above" if interval.low > 0 else "below" if interval.high < 0
                    else "unclear")
            sides.setdefault(f"{key}:{side}", []).append(method)
    return sides


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def _provenance(info: dict[str, Any]) -> str:
    auc = info.get("validation_auc")
    how = ("trained by this script through `evaluate_real._model`" if
           info.get("trained_by_this_script") else
           "trained by `evaluate_real.py`'s code (`_model`), reloaded")
    return (f"Model `{info['file']}` (sha256 {info['sha256']}, saved {info['saved']}; {how}): "
            f"`cam_cnn` at {info['image_size']} px, classes {' vs '.join(info['classes'])}, "
            f"{info['train_images']} training images, {info.get('epochs_run', '?')} epochs in "
            f"{info.get('train_seconds', 0) / 60:.1f} min, validation accuracy "
            f"{info.get('validation_accuracy', float('nan')):.1%}"
            + (f" (AUC {auc:.3f})" if auc is not None else "")
            + f" on {info['validation_images']} images.")


def _issue6_note(task: str, info: dict[str, Any]) -> str:
    """A warning when issue 6's section reports another validation accuracy for the task's
    model: its tables then come from an earlier training, not from the file used here."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.is_file() else ""
    start = text.find(evaluate_real.SECTION)
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    found = re.findall(r"validation accuracy (\d+\.\d)%", text[start:end if end > 0 else None])
    index = list(TARGETS).index(task)
    ours = f"{100 * info.get('validation_accuracy', float('nan')):.1f}"
    if len(found) <= index or found[index] == ours:
        return ""
    return (f" Issue 6's section reports {found[index]} % for this model: its tables come "
            "from an earlier training of the same code (that file is gone), not from this one.")


def _write_results(results: dict[str, dict[str, dict[str, Any]]],
                   models: dict[str, dict[str, Any]], methods: list[str],
                   seconds: float) -> None:
    from cxrexplain.evaluate import BASELINES

    explainers = [m for m in methods if m not in BASELINES]
    pneumonia, covid = results["pneumonia"], results["covid"]
    n_pneu, n_covid = len(pneumonia[CENTRE]["images"]), len(covid[CENTRE]["images"])
    gated = {t: int((np.array(r[CENTRE]["probability"]) >= GATE).sum())
             for t, r in results.items()}
    found = {t: _comparisons(r, methods) for t, r in results.items()}
    sides = {t: _verdict(found[t], explainers) for t in results}
    occlusion = ", ".join(f"{k} {v}" for k, v in OCCLUSION.items())
    trained = [t for t, info in models.items() if info.get("trained_by_this_script")]
    lines = [
        SECTION, "",
        f"Command: `python benchmarks/localisation_real.py`; machine: {machine()}; "
        f"{seconds / 60:.1f} min of compute in all"
        + (f" (including training the {' and '.join(trained)} model)" if trained else
           " (models reloaded)")
        + ". The models are files under the ignored `benchmarks/out/` (not in git): a "
        "retrained model has a new hash, and a rerun then recomputes every row. "
        "Every method of `cx.explainers()` explains the target class on the same images "
        f"(Score-CAM with max_channels={SCORECAM_CHANNELS}; occlusion with {occlusion}: "
        f"{((IMAGE_SIZE - OCCLUSION['patch']) // OCCLUSION['stride'] + 1) ** 2} forward "
        "passes per image), next to the model-blind `random` and `centre_gaussian` maps. "
        f"Cells are the mean over images with its 95 % percentile-bootstrap interval "
        f"(`bootstrap_ci`, {RESAMPLES} resamples, seed {SEED}); NaN values (an all-zero map "
        "has no energy share) are dropped.", "",
        "Metrics (CheXlocalize, Saporta et al. 2022): **mIoU Otsu**: IoU of the map "
        "binarised at its Otsu threshold (`binarize`) with the truth mask; **mIoU tuned "
        "(LOO)**: IoU at a fixed threshold tuned with `tune_threshold` (grid 0.2-0.8) by "
        "leave-one-out over the task's images, each image scored at the threshold tuned on "
        "the others, so no image is scored at a threshold chosen on itself; **gate 0.5**: "
        "as mIoU Otsu, but an image whose target probability is below 0.5 gets an empty mask "
        "(IoU 0; the baselines are gated on the same model probabilities); **hit rate**: "
        "the map's maximum pixel inside the truth mask; **pixel AUPRC**: average "
        "precision of the map's pixels as scores of the mask (chance = the "
        "mask's area fraction); **pointing game**: maximum within a box grown by 15 px at "
        "256 px (7.5 px here); **energy in mask**: share of the map's mass in the mask.", "",
        f"### Pneumonia boxes: PNEUMONIA on the {n_pneu} boxed films (never trained on)", "",
        _provenance(models["pneumonia"]) + _issue6_note("pneumonia", models["pneumonia"])
        + " Truth: the radiologists' boxes "
        f"(`boxes.csv`) scaled to {IMAGE_SIZE} px and filled (`boxes_to_masks`). "
        f"{gated['pneumonia']} of the {n_pneu} films have p(PNEUMONIA) >= {GATE}.", "",
        *_table("pneumonia", pneumonia, methods), "",
        "Difference to the centred Gaussian (paired bootstrap over the same images, "
        "`paired_bootstrap_ci`) and the gap in % of the centre row's mean:", "",
        *_comparison_table(found["pneumonia"]), "",
        f"### COVID lung masks: COVID on the {n_covid} held-out COVID films", "",
        _provenance(models["covid"]) + _issue6_note("covid", models["covid"])
        + " Truth: the v7labs **lung** masks "
        f"(`lung_masks/COVID`) at {IMAGE_SIZE} px. Lung masks are not lesion masks: a map "
        "that covers the opacities inside one lung is penalised for the healthy lung it "
        "leaves out, so IoU and AUPRC here measure \"inside the lungs\", not \"on the "
        f"finding\". {gated['covid']} of the {n_covid} films have p(COVID) >= {GATE}.", "",
        *_table("covid", covid, methods), "",
        "Difference to the centred Gaussian:", "",
        *_comparison_table(found["covid"]), "",
        "### What the intervals support", "",
        _reading("pneumonia", pneumonia, found["pneumonia"], sides["pneumonia"],
                 explainers), "",
        _reading("covid", covid, found["covid"], sides["covid"], explainers), "",
        f"With {n_pneu} and {n_covid} films one film moves a rate by "
        f"{1 / n_pneu:.3f} and {1 / n_covid:.3f}; the paired intervals only compare each "
        "explainer with the centred Gaussian, not explainers with one another.", "",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    write_section(RESULTS, SECTION, text)
    print(f"wrote {RESULTS}", flush=True)


def _reading(task: str, records: dict[str, dict[str, Any]],
             found: dict[str, dict[str, Any]], sides: dict[str, list[str]],
             explainers: list[str]) -> str:
    """One task's reading of the paired intervals, in words, from the numbers alone."""
    count = len(records[CENTRE]["images"])
    noun = "boxes" if task == "pneumonia" else "lung masks"
    text = f"**{task.capitalize() if task == 'pneumonia' else task.upper()} {noun} " \
           f"({count} films).** "
    above = sides.get("iou_otsu:above", [])
    below = sides.get("iou_otsu:below", [])
    unclear = sides.get("iou_otsu:unclear", [])
    text += "On mIoU (Otsu) the paired interval to the centred Gaussian "
    if below and not above and not unclear:
        text += "lies below 0 for every explainer: all are measurably *worse* than the centre " \
                "guess. "
    else:
        text += (f"lies above 0 for {_listing(above)}, below 0 for {_listing(below)}, and "
                 f"includes 0 for {_listing(unclear)}. ")
    hit_above = sides.get("hit_rate:above", [])
    hit_below = sides.get("hit_rate:below", [])
    centre_hits = int(np.nansum(_array(records[CENTRE], "hit_rate")))
    never = [m for m in explainers if np.nansum(_array(records[m], "hit_rate")) == 0]
    text += (f"On hit rate it lies above 0 for {_listing(hit_above)} and below 0 for "
             f"{_listing(hit_below)}")
    if never:
        edge = [m for m in never if found[m]["hit_rate"][0].high == 0]
        text += (f"; {_listing(never)} never put their maximum inside the truth on any film "
                 f"(the centre does on {centre_hits} of {count})")
        if edge:
            text += (", yet with so few discordant films the upper limit of the paired "
                     "interval sits at exactly 0, so even that deficit is not shown at 95 %")
    text += ". "
    random_hits = float(np.nanmean(_array(records["random"], "hit_rate")))
    if task == "covid" and random_hits > centre_hits / count:
        text += (f"The centred Gaussian is a weak reference for the hit rate on lungs: its "
                 f"peak, at the film's centre, falls outside the lung masks on "
                 f"{count - centre_hits} of {count} films (between the lungs), and even the "
                 f"random map hits {random_hits:.2f}. ")
    if above or hit_above:
        text += (f"Better than the centre with an interval excluding 0: "
                 f"{_listing(sorted(set(above + hit_above)))}; every other comparison shows "
                 "no advantage.")
    else:
        text += ("Nothing here shows any explainer localising better than a model-blind "
                 "Gaussian at the centre of the film.")
    return text


if __name__ == "__main__":
    sys.exit(main())
