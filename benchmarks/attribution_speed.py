"""Every saliency method's cost at 224 px, and xplique's five on the same inputs (issue 25).

Two parts, each model in its own subprocesses, on VGG16 (``weights=None``, nested in a
Sequential with GAP -> Dense(2, softmax)) and the reference ``cam_cnn`` (224x224x1) of
``explain_speed.py`` (the same builders, seeds and layers), explaining 224-px films of
``../shared/data/cxr`` (random images where the data is absent), targets alternating 0/1:

* ``--compare``: cxrexplain's Saliency, SmoothGrad, IntegratedGradients, GuidedBackprop and
  RISE beside xplique 2.0.2's classes of the same names, **in one process, round-robin**
  (every repeat runs every method once, starting one method later each time), so the ratios
  are of medians measured under the same load. xplique runs on the flat functional model that
  shares the nested model's layers (it cannot reach into a nested model), with a linear copy
  of the head for the gradient methods, so both libraries differentiate the same
  pre-softmax score; RISE is a black box on the softmax output in both. Then the maps:
  cxrexplain's signed per-channel ``attributions`` reduced over the channels with xplique's
  reducer (Saliency: max of magnitudes; the others: mean), against xplique's maps:
  relative max difference and Pearson r. SmoothGrad is compared twice: as both libraries
  draw (independent noise) and with xplique's ``_perturb_samples`` fed cxrexplain's seeded
  draws (the same definition, so the maps must agree to float tolerance). RISE's masks are
  random in both and their normalisations differ (ours ``sum f M / (N p)`` as the paper's
  code, xplique's ``sum f M / sum M``): its agreement is a correlation, shown beside the
  correlation of two cxrexplain seeds (the noise floor at that many masks).
* ``--cost``: every registered cxrexplain explainer that applies to the model, one
  subprocess each: warm-up on one film, then the median of timed runs on the films, and the
  peak resident memory above the loaded model (the kernel's high-water mark), plus xplique's
  five under the same conditions.

Settings below the defaults where the defaults cost too much on 2 shared CPU cores, the same
for both libraries: SmoothGrad 16 samples (noise sd 0.2: xplique's absolute default, ours
as a share of each film's range, which is ~1 here), IG 16 steps (trapezoid, black baseline,
both), RISE 256 masks (grid 7, p = 0.5, both), Smooth IG 4 x 8, Score-CAM 64 channels; chunks
of 32 samples per pass in both libraries. Results: ``benchmarks/out/attribution_speed/
{compare,cost}.jsonl``, one line per model or case; a rerun skips what is done.

Needs xplique (benchmark-only, see ``requirements-bench.txt``)::

    python benchmarks/attribution_speed.py --compare
    python benchmarks/attribution_speed.py --cost
    python benchmarks/attribution_speed.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import read_jsonl
from explain_speed import (
    IMAGE_SIZE,
    SEED,
    Interference,
    PeakRSS,
    build_model,
    machine,
    make_images,
    make_targets,
    rss,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "attribution_speed"
DATA = HERE.parent.parent / "shared" / "data" / "cxr"
MODELS = ("cam_cnn", "vgg16")
PAIRS = ("saliency", "smoothgrad", "integrated_gradients", "guided_backprop", "rise")
FILMS = {"cam_cnn": 8, "vgg16": 4}
RISE_FILMS = {"cam_cnn": 4, "vgg16": 2}
SAMPLES, STEPS, MASKS, NOISE, CHUNK = 16, 16, 256, 0.2, 32
SETTINGS: dict[str, dict[str, Any]] = {
    "smoothgrad": {"samples": SAMPLES, "noise": NOISE, "sample_batch_size": CHUNK},
    "integrated_gradients": {"steps": STEPS, "sample_batch_size": CHUNK},
    "saliency": {"sample_batch_size": CHUNK},
    "guided_backprop": {"sample_batch_size": CHUNK},
    "gradient_input": {"sample_batch_size": CHUNK},
    "smooth_ig": {"samples": 4, "steps": 8, "sample_batch_size": CHUNK},
    "rise": {"samples": MASKS, "grid": 7, "probability": 0.5, "mask_batch_size": CHUNK},
    "scorecam": {"max_channels": 64},
}
REDUCER = {"saliency": "max_abs", "smoothgrad": "mean", "integrated_gradients": "mean",
           "guided_backprop": "mean"}


# ------------------------------------------------------------------------------ inputs
def films(count: int, channels: int) -> tuple[Any, str]:
    """``count`` shared films at 224 px (half COVID, half PNEUMONIA), else random images."""
    import cv2
    import numpy as np

    paths = (sorted((DATA / "COVID").glob("*.png"))[: count // 2]
             + sorted((DATA / "PNEUMONIA").glob("*.png"))[: count - count // 2])
    if len(paths) < count:
        return make_images(count, channels), "random uniform images"
    gray = [cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (IMAGE_SIZE, IMAGE_SIZE),
                       interpolation=cv2.INTER_AREA) for p in paths]
    batch = np.stack(gray).astype(np.float32)[..., None] / 255.0
    return np.repeat(batch, channels, axis=-1), f"{count} films of ../shared/data/cxr"


def logits_model(built: dict[str, Any]) -> Any:
    """The flat model with a linear copy of its softmax head: xplique's gradient target."""
    import keras

    flat = built["flat"]
    head = flat.layers[-1]
    features = built.get("flat_features", head.input)
    linear = keras.layers.Dense(head.units, name="logits")
    outputs = linear(features)
    linear.set_weights(head.get_weights())
    return keras.Model(flat.inputs, outputs, name=f"{flat.name}_logits")


# ----------------------------------------------------------------------------- runners
def ours(method: str, built: dict[str, Any], seed: int = 0) -> Any:
    import cxrexplain as cx

    options = dict(SETTINGS.get(method, {}))
    if method in ("smoothgrad", "rise", "smooth_ig"):
        options["seed"] = seed
    if method.endswith("cam") and method not in ("cam", "eigencam"):
        options.setdefault("layer", built["layer"])
    return cx.explainers()[method](cx.Classifier(built["model"]), **options)


def xplique_explainer(method: str, built: dict[str, Any], logits: Any) -> Any:
    from xplique import attributions as xa

    if method == "saliency":
        return xa.Saliency(logits, batch_size=CHUNK)
    if method == "smoothgrad":
        return xa.SmoothGrad(logits, batch_size=CHUNK, nb_samples=SAMPLES, noise=NOISE)
    if method == "integrated_gradients":
        return xa.IntegratedGradients(logits, batch_size=CHUNK, steps=STEPS)
    if method == "guided_backprop":
        return xa.GuidedBackprop(logits, batch_size=CHUNK)
    if method == "rise":
        return xa.Rise(built["flat"], batch_size=CHUNK, nb_samples=MASKS, grid_size=7,
                       preservation_probability=0.5)
    raise ValueError(method)


def runner(library: str, method: str, built: dict[str, Any], logits: Any) -> Callable[..., Any]:
    """``run(images, targets) -> maps`` (``(N, H, W)`` float) of one library's method."""
    import numpy as np

    if library == "xplique":
        explainer = xplique_explainer(method, built, logits)

        def run_x(images: Any, targets: Any) -> Any:
            one_hot = np.eye(2, dtype=np.float32)[targets]
            return np.asarray(explainer.explain(images, one_hot))[..., 0]

        return run_x
    explainer = ours(method, built)

    def run_o(images: Any, targets: Any) -> Any:
        return explainer.explain(images, targets, batch_size=len(images)).heatmaps

    return run_o


def agreement(a: Any, b: Any) -> dict[str, float]:
    """Relative max difference (to b's largest magnitude) and Pearson r, over all pixels."""
    import numpy as np

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    scale = float(np.abs(b).max()) or 1.0
    return {"rel_max_diff": float(np.abs(a - b).max() / scale),
            "pearson": float(np.corrcoef(a, b)[0, 1])}


def reduce(values: Any, how: str) -> Any:
    import numpy as np

    return np.abs(values).max(-1) if how == "max_abs" else values.mean(-1)


# ----------------------------------------------------------------------------- compare
def compare(model_name: str, repeats: int) -> dict[str, Any]:
    """One model: interleaved timing of the five pairs, then the maps' agreement."""
    warnings.filterwarnings("ignore")
    import keras
    import numpy as np
    import tensorflow as tf
    import xplique


    built = build_model(model_name)
    logits = logits_model(built)
    channels = built["channels"]
    images, source = films(FILMS[model_name], channels)
    targets = make_targets(len(images))
    few = RISE_FILMS[model_name]
    runners: dict[str, Callable[..., Any]] = {}
    for method in PAIRS:
        for library in ("cxrexplain", "xplique"):
            runners[f"{library}:{method}"] = runner(library, method, built, logits)

    def inputs(key: str) -> tuple[Any, Any]:
        n = few if key.endswith(":rise") else len(images)
        return images[:n], targets[:n]

    warmup = {}
    for key, run in runners.items():
        start = time.perf_counter()
        run(*inputs(key))
        warmup[key] = time.perf_counter() - start
        print(f"  {model_name} warm-up {key}: {warmup[key]:.1f} s", flush=True)
    times: dict[str, list[float]] = {k: [] for k in runners}
    loads: dict[str, list[float]] = {k: [] for k in runners}
    order = list(runners)
    for repeat in range(repeats):
        shift = (2 * repeat) % len(order)
        for key in order[shift:] + order[:shift]:
            with Interference() as noise:
                start = time.perf_counter()
                runners[key](*inputs(key))
                times[key].append(time.perf_counter() - start)
            loads[key].append(noise.share)
        print(f"  {model_name} repeat {repeat + 1}/{repeats} done", flush=True)
    per_image = {k: statistics.median(t) / len(inputs(k)[0]) for k, t in times.items()}

    # the maps, on the same films
    agree: dict[str, Any] = {}
    one_hot = np.eye(2, dtype=np.float32)
    mine: dict[str, Any] = {}
    for method in ("saliency", "integrated_gradients", "guided_backprop", "smoothgrad"):
        mine[method] = ours(method, built).attributions(images, targets, batch_size=len(images))
        theirs = np.asarray(xplique_explainer(method, built, logits).explain(
            images, one_hot[targets]))[..., 0]
        agree[method] = agreement(reduce(mine[method], REDUCER[method]), theirs)
    smooth = reduce(mine["smoothgrad"], "mean")
    agree["smoothgrad_same_noise"] = agreement(
        smooth, _xplique_smoothgrad_with(built, logits, images, targets))
    other_seed = ours("smoothgrad", built, seed=1).attributions(images, targets,
                                                                batch_size=len(images))
    agree["smoothgrad_two_seeds_ours"] = agreement(smooth, reduce(other_seed, "mean"))
    rise_in, rise_t = images[:few], targets[:few]
    rise0 = ours("rise", built).explain(rise_in, rise_t, batch_size=few).raw
    rise1 = ours("rise", built, seed=1).explain(rise_in, rise_t, batch_size=few).raw
    rise_x = np.asarray(xplique_explainer("rise", built, logits).explain(
        rise_in, one_hot[rise_t]))[..., 0]
    agree["rise"] = agreement(rise0, rise_x)
    agree["rise_two_seeds_ours"] = agreement(rise0, rise1)
    return {"model": model_name, "inputs": source, "films": len(images), "rise_films": few,
            "repeats": repeats, "times_s": times, "other_load": loads,
            "seconds_per_image": per_image, "warmup_s": warmup, "agreement": agree,
            "layer": built["layer"], "settings": SETTINGS, "xplique": xplique.__version__,
            "tf": tf.__version__, "keras": keras.__version__, "machine": machine(),
            "loadavg_after": Path("/proc/loadavg").read_text().split()[:3]}


def _xplique_smoothgrad_with(built: dict[str, Any], logits: Any, images: Any,
                             targets: Any) -> Any:
    """xplique's SmoothGrad with its noise replaced by cxrexplain's seeded draws."""
    import numpy as np
    import tensorflow as tf
    from xplique.attributions.gradient_statistics.gradient_statistic import GradientStatistic

    from cxrexplain.explain._gradients import gaussian_noise

    draws = gaussian_noise(0, SAMPLES, tuple(images.shape[1:]))
    saved = GradientStatistic._perturb_samples

    def perturb(inputs: Any, nb_perturbations: int, noise: float) -> Any:
        if nb_perturbations != SAMPLES:
            raise RuntimeError("xplique split the samples of a film; raise its batch_size")
        flat = tf.reshape(inputs, (inputs.shape[0], -1))
        spread = noise * (tf.reduce_max(flat, 1) - tf.reduce_min(flat, 1))  # ours: share of range
        noisy = inputs[:, None] + spread[:, None, None, None, None] * draws[None]
        return tf.reshape(noisy, (-1, *inputs.shape[1:]))

    GradientStatistic._perturb_samples = staticmethod(perturb)
    try:
        explainer = xplique_explainer("smoothgrad", built, logits)
        return np.asarray(explainer.explain(images, np.eye(2, dtype=np.float32)[targets]))[..., 0]
    finally:
        GradientStatistic._perturb_samples = saved


# -------------------------------------------------------------------------------- cost
def cost(model_name: str, library: str, method: str, repeats: int) -> dict[str, Any]:
    """One method alone in this process: warm-up, timed runs, peak memory above the model."""
    warnings.filterwarnings("ignore")
    built = build_model(model_name)
    logits = logits_model(built) if library == "xplique" else None
    images, source = films(FILMS[model_name], built["channels"])
    if method in ("rise", "occlusion", "scorecam", "smooth_ig"):
        images = images[: RISE_FILMS[model_name]]
    targets = make_targets(len(images))
    result: dict[str, Any] = {"model": model_name, "library": library, "method": method,
                              "films": len(images), "inputs": source}
    try:
        run = runner(library, method, built, logits)
    except Exception as err:  # a method that does not apply to this model: say why
        return {**result, "status": "refused", "error": f"{type(err).__name__}: {err}"[:300]}
    base = rss()
    with PeakRSS() as warm_peak:
        start = time.perf_counter()
        run(images[:1], targets[:1])
        result["warmup_s"] = time.perf_counter() - start
    times = []
    with PeakRSS() as peak:
        for _ in range(repeats):
            start = time.perf_counter()
            run(images, targets)
            times.append(time.perf_counter() - start)
    result.update(status="ok", times_s=times,
                  seconds_per_image=statistics.median(times) / len(images),
                  peak_above_model_mb=(max(warm_peak.peak, peak.peak) - base) / 1e6,
                  loadavg_after=Path("/proc/loadavg").read_text().split()[:3])
    return result


def cost_plan(models: tuple[str, ...]) -> list[dict[str, str]]:
    import cxrexplain as cx

    names = [n for n in cx.explainers() if n != "attention_rollout"]
    return ([{"model": m, "library": "cxrexplain", "method": n} for m in models for n in names]
            + [{"model": m, "library": "xplique", "method": n} for m in models for n in PAIRS])


# ------------------------------------------------------------------------------ driver
def _spawn(flag: str, spec: dict[str, Any], timeout: int) -> dict[str, Any]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED=str(SEED))
    command = [sys.executable, str(Path(__file__).resolve()), flag, json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "status": "failed", "error": f"timed out after {timeout} s"}
    for line in done.stdout.splitlines():
        if not line.startswith("RESULT "):
            print(line, flush=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if lines:
        return dict(json.loads(lines[-1][len("RESULT "):]))
    tail = " | ".join(done.stderr.strip().splitlines()[-3:])[:400]
    return {**spec, "status": "failed", "error": f"exit {done.returncode}: {tail}"}


def _key(row: dict[str, Any]) -> str:
    return "|".join(str(row.get(k, "")) for k in ("model", "library", "method"))


def _append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def report() -> str:
    lines: list[str] = []
    compared = {r["model"]: r for r in read_jsonl(OUT / "compare.jsonl")} \
        if (OUT / "compare.jsonl").is_file() else {}
    for model_name in MODELS:
        row = compared.get(model_name)
        if row is None:
            continue
        spi = row["seconds_per_image"]
        lines += [f"**{model_name}** ({row['inputs']}; RISE on {row['rise_films']}; median of "
                  f"{row['repeats']} interleaved repeats; xplique {row['xplique']}, "
                  f"TensorFlow {row['tf']}; load average after {' '.join(row['loadavg_after'])})",
                  "", "| method | cxrexplain s/image | xplique s/image | speed vs xplique | "
                  "maps: rel. max diff | maps: Pearson r |", "|---|---:|---:|---:|---:|---:|"]
        agree = row["agreement"]
        for method in PAIRS:
            o, x = spi[f"cxrexplain:{method}"], spi[f"xplique:{method}"]
            a = agree[method]
            lines.append(f"| {method} | {o:.3f} | {x:.3f} | {x / o:.2f}x | "
                         f"{a['rel_max_diff']:.1e} | {a['pearson']:.4f} |")
        same = agree["smoothgrad_same_noise"]
        seeds = agree["smoothgrad_two_seeds_ours"]
        rise = agree["rise_two_seeds_ours"]
        lines += ["", f"SmoothGrad with xplique fed cxrexplain's draws: rel. max diff "
                      f"{same['rel_max_diff']:.1e}, r {same['pearson']:.5f}; two cxrexplain "
                      f"seeds: r {seeds['pearson']:.3f}. RISE, two cxrexplain seeds: r "
                      f"{rise['pearson']:.3f}.", ""]
    costs = [r for r in read_jsonl(OUT / "cost.jsonl")] if (OUT / "cost.jsonl").is_file() else []
    if costs:
        lines += ["| model | library | method | films | s/image | warm-up s | peak MB above "
                  "model |", "|---|---|---|---:|---:|---:|---:|"]
        for r in costs:
            if r.get("status") != "ok":
                lines.append(f"| {r['model']} | {r['library']} | {r['method']} | | "
                             f"{r.get('status')}: {r.get('error', '')[:90]} | | |")
                continue
            lines.append(f"| {r['model']} | {r['library']} | {r['method']} | {r['films']} | "
                         f"{r['seconds_per_image']:.3f} | {r['warmup_s']:.1f} | "
                         f"{r['peak_above_model_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--_compare", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_cost", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._compare:
        spec = json.loads(args._compare)
        print("RESULT " + json.dumps(compare(spec["model"], spec["repeats"])), flush=True)
        return 0
    if args._cost:
        spec = json.loads(args._cost)
        print("RESULT " + json.dumps(cost(spec["model"], spec["library"], spec["method"],
                                          spec["repeats"])), flush=True)
        return 0
    if args.compare:
        path = OUT / "compare.jsonl"
        done = {r["model"] for r in read_jsonl(path)} if path.is_file() else set()
        for model_name in args.models:
            if model_name in done:
                continue
            print(f"compare {model_name} ...", flush=True)
            row = _spawn("--_compare", {"model": model_name, "repeats": args.repeats}, 5400)
            if row.get("status") == "failed":
                print(row["error"], file=sys.stderr)
                return 1
            _append(path, row)
    if args.cost:
        path = OUT / "cost.jsonl"
        done = {_key(r) for r in read_jsonl(path)} if path.is_file() else set()
        for spec in cost_plan(tuple(args.models)):
            if _key(spec) in done:
                continue
            row = _spawn("--_cost", {**spec, "repeats": 2}, 1800)
            _append(path, row)
            print(f"cost {_key(row)}: {row.get('status')} "
                  f"{row.get('seconds_per_image', float('nan')):.3f} s/image", flush=True)
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
