"""Map agreement (issue 3): do cxrexplain's maps match tf-keras-vis's and xplique's?

Same model object and weights, same images, same target classes and same target layer on every
side. Two models: a flat functional VGG16 (``weights=None``, seed 0, 224x224x3, GAP ->
Dense(2, softmax), layer ``block5_conv3``) and ``cam_cnn`` (128x128x1, layer ``block4_relu``,
the layer feeding the GAP) trained for a few epochs on synthetic phantoms. Counterparts:

* Grad-CAM: ``tf_keras_vis.gradcam.Gradcam`` and ``xplique.attributions.GradCAM``;
* Grad-CAM++: ``tf_keras_vis.gradcam_plus_plus.GradcamPlusPlus`` and ``xplique`` ``GradCAMPP``;
* LayerCAM: ``tf_keras_vis.layercam.Layercam``;
* Score-CAM: ``tf_keras_vis.scorecam.Scorecam``.

tf-keras-vis runs with ``ReplaceToLinear`` (its score is the logit, as cxrexplain's),
``seek_penultimate_conv_layer=False`` (the named layer itself, not the Conv before it),
``normalize_cam=False``. xplique differentiates the model's output as it is (the softmax
probability), so it gets a logits twin of the model (a clone with the same weights and a linear
head); the "softmax model as given" rows show what it gives without one.

Maps are compared at the layer's resolution (cxrexplain's ``Explanation.raw`` against the
counterpart's map before upsampling, each divided by its own maximum) and at input resolution
(each min-max normalised): Pearson r per image, max |difference|, and whether the peaks fall on
the same layer cell. A second table says where differences come from: each library's map
against its own formula recomputed here in NumPy from the layer's activations ``A`` and the
logit gradients ``dS/dA`` (taken independently of all three libraries), cxrexplain against the
published formula, and the input-resolution r once both layer maps are upsampled the same way.

Results go one JSON line per case to ``benchmarks/out/map_agreement.jsonl`` (the trained
cam_cnn's weights beside it); a rerun skips finished cases. The tables are written as the
section ``## Map agreement with tf-keras-vis and xplique (issue 3)`` of
``benchmarks/RESULTS.md``. Run it from outside the source tree so that ``import cxrexplain``
takes the installed package (about 7 minutes on 2 CPU cores, 4 of them Score-CAM on VGG16)::

    python -m venv /tmp/bench-venv && . /tmp/bench-venv/bin/activate
    pip install ".[dev]"                                  # not editable
    pip install -r benchmarks/requirements-bench.txt && pip install --no-deps xplique==2.0.2
    cd /tmp && python /path/to/repo/benchmarks/map_agreement.py
    python benchmarks/map_agreement.py --quick     # smoke test (tiny, separate output)
    python benchmarks/map_agreement.py --report    # tables from the results so far
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))
import reference_maps as ref  # the published formulas in NumPy, shared with the tests
from _results import machine, publish, read_jsonl

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Map agreement with tf-keras-vis and xplique (issue 3)"
COMMAND = "cd /tmp && python /path/to/cxrexplain/benchmarks/map_agreement.py"
METHODS = ("gradcam", "gradcampp", "layercam", "scorecam")
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++", "layercam": "LayerCAM",
                "scorecam": "Score-CAM"}
COUNTERPARTS: dict[str, tuple[str, ...]] = {
    "gradcam": ("tf-keras-vis", "xplique", "xplique (softmax model as given)"),
    "gradcampp": ("tf-keras-vis", "xplique", "xplique (softmax model as given)"),
    "layercam": ("tf-keras-vis",),
    "scorecam": ("tf-keras-vis",),
}
Array = np.ndarray
LEARNING_RATE, BATCH = 3e-3, 16  # cam_cnn's training: 1.00 accuracy on held-out phantoms


# ------------------------------------------------------------------------------ settings
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12, help="images per model")
    parser.add_argument("--train-images", type=int, default=256,
                        help="phantoms cam_cnn is trained on")
    parser.add_argument("--epochs", type=int, default=5, help="cam_cnn training epochs")
    parser.add_argument("--vgg-scorecam-images", type=int, default=1,
                        help="images for Score-CAM on VGG16 (every one of the 512 channels "
                             "masks the image: about 2 minutes per image and library)")
    parser.add_argument("--scorecam-channels", type=int, default=32,
                        help="also compare Score-CAM on cam_cnn with only this many channels "
                             "(0: skip); each library picks its own channels")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    parser.add_argument("--report", action="store_true", help="only write the tables")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.train_images, args.epochs = 2, 64, 1
        args.vgg_scorecam_images, args.scorecam_channels = 0, 8
    args.jsonl = OUT / ("map_agreement_quick.jsonl" if args.quick else "map_agreement.jsonl")
    args.weights = OUT / (f"map_agreement_cam_cnn_{args.train_images}img_{args.epochs}ep"
                          f"{'_quick' if args.quick else ''}.weights.h5")
    args.results_md = OUT / "map_agreement_quick.md" if args.quick else RESULTS
    return args


# ------------------------------------------------------------------------------ models
@dataclass
class Subject:
    """One model with its images, targets, target layer and the probe's A and dS/dA."""

    name: str
    model: Any
    twin: Any  # the same weights with a linear head: logits out
    layer: str
    images: Array
    targets: Array
    fingerprint: str
    note: str
    activations: Array = field(default_factory=lambda: np.zeros(0))
    logit_grads: Array = field(default_factory=lambda: np.zeros(0))
    prob_grads: Array = field(default_factory=lambda: np.zeros(0))
    recompute_scorecam: bool = False  # cheap enough to redo Score-CAM's passes twice


def _fingerprint(model: Any, images: Array) -> str:
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, np.float32).tobytes())
    digest.update(np.ascontiguousarray(images, np.float32).tobytes())
    return digest.hexdigest()[:16]


def logits_twin(model: Any) -> Any:
    """A clone of ``model`` with the same weights whose output layer is linear."""
    import keras

    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    head = twin.layers[-1]
    if getattr(head, "activation", None) is None:
        raise ValueError(f"the output layer {head.name} has no activation to replace")
    head.activation = keras.activations.linear
    return twin


def vgg16_subject(count: int) -> Subject:
    import keras

    import cxrexplain as cx

    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    model = keras.Model(base.input, out, name="vgg16_flat")
    images = cx.synthetic.generate(count, size=224, seed=2, channels=3).images
    targets = np.arange(count, dtype=np.int64) % 2
    return Subject("VGG16 224x224x3 (weights=None, seed 0)", model, logits_twin(model),
                   "block5_conv3", images, targets, _fingerprint(model, images),
                   "untrained (glorot) weights, flat functional model")


def cam_cnn_subject(args: argparse.Namespace, count: int) -> Subject:
    import keras

    import cxrexplain as cx

    keras.utils.set_random_seed(0)
    model = cx.models.build("cam_cnn", input_shape=(128, 128, 1), num_classes=2)
    train = cx.synthetic.generate(args.train_images, size=128, seed=0)
    test = cx.synthetic.generate(count, size=128, seed=1)
    if args.weights.is_file():
        model.load_weights(args.weights)
        how = f"weights reloaded from {args.weights.name}"
    else:
        steps = args.epochs * -(-args.train_images // BATCH)
        schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
        model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(train.images, train.labels, epochs=args.epochs, batch_size=BATCH, verbose=0,
                  shuffle=True)
        args.weights.parent.mkdir(parents=True, exist_ok=True)
        model.save_weights(args.weights)
        how = f"trained in {time.perf_counter() - start:.0f} s"
    predicted = model.predict(test.images, verbose=0).argmax(axis=1)
    accuracy = float((predicted == test.labels).mean())
    layer = model.get_layer("gap").input
    name = next(lyr.name for lyr in model.layers if lyr.output is layer)
    note = (f"Adam {LEARNING_RATE:g} with cosine decay, batch {BATCH}, {args.epochs} epochs "
            f"on {args.train_images} phantoms ({how}); "
            f"accuracy on the {count} compared phantoms {accuracy:.2f}")
    print(f"cam_cnn: {note}; layer feeding the GAP: {name}", flush=True)
    return Subject(f"cam_cnn 128x128x1 (phantoms, {args.epochs} epochs)", model,
                   logits_twin(model), name, test.images, test.labels.astype(np.int64),
                   _fingerprint(model, test.images), note, recompute_scorecam=True)


def probe(subject: Subject) -> None:
    """``A``, ``dS/dA`` (S the target logit) and ``dp/dA`` (p its probability), taken with a
    plain GradientTape on the logits twin, independently of the three libraries."""
    import keras
    import tensorflow as tf

    twin = subject.twin
    both = keras.Model(twin.inputs, [twin.get_layer(subject.layer).output, twin.output])
    images = tf.constant(subject.images)
    targets = tf.constant(subject.targets, tf.int32)
    with tf.GradientTape(persistent=True) as tape:
        activations, logits = both(images, training=False)
        score = tf.gather(logits, targets, axis=1, batch_dims=1)
        prob = tf.gather(tf.nn.softmax(logits), targets, axis=1, batch_dims=1)
    subject.activations = np.asarray(activations, np.float64)
    subject.logit_grads = np.asarray(tape.gradient(score, activations), np.float64)
    subject.prob_grads = np.asarray(tape.gradient(prob, activations), np.float64)
    given = np.asarray(subject.model(images, training=False))
    gap = float(np.abs(np.asarray(tf.nn.softmax(logits)) - given).max())
    if gap > 1e-5:
        raise RuntimeError(f"the logits twin's softmax differs from the model by {gap:.2e}")


# ------------------------------------------------------------------------------ the maps
def ours(subject: Subject, method: str, max_channels: int | None = None) -> tuple[Array, Array]:
    """cxrexplain's ``(raw, heatmaps)``."""
    import cxrexplain as cx

    kinds: dict[str, Any] = {"gradcam": cx.GradCAM, "gradcampp": cx.GradCAMPlusPlus,
                             "layercam": cx.LayerCAM, "scorecam": cx.ScoreCAM}
    options = {"max_channels": max_channels} if method == "scorecam" else {}
    explainer = kinds[method](subject.model, layer=subject.layer, **options)
    prepared = explainer.classifier.prepare(subject.images)
    if prepared.shape != subject.images.shape or not np.allclose(prepared, subject.images):
        raise RuntimeError("cxrexplain's prepare() changed the images: compare like with like")
    exp = explainer.explain(subject.images, targets=subject.targets,
                            batch_size=len(subject.images))
    if not np.array_equal(exp.targets, subject.targets):
        raise RuntimeError("cxrexplain explained other targets than those asked for")
    return np.asarray(exp.raw, np.float64), np.asarray(exp.heatmaps, np.float64)


def tf_keras_vis_maps(subject: Subject, method: str, max_n: int = -1) -> tuple[Array, Array]:
    """tf-keras-vis's ``(map at the layer, map at the input)``, both before normalisation."""
    from scipy.ndimage import zoom
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils import zoom_factor
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    kinds: dict[str, Any] = {"gradcam": Gradcam, "gradcampp": GradcamPlusPlus,
                             "layercam": Layercam, "scorecam": Scorecam}
    explainer = kinds[method](subject.model, model_modifier=ReplaceToLinear(), clone=True)
    score = CategoricalScore(subject.targets.tolist())
    common: dict[str, Any] = {"penultimate_layer": subject.layer,
                              "seek_penultimate_conv_layer": False, "normalize_cam": False}
    if method == "scorecam":
        common["max_N"] = max_n
    raw = np.asarray(explainer(score, subject.images, expand_cam=False, **common), np.float64)
    if method == "scorecam":
        # expand_cam=True only adds this step (scorecam.py) to the same map: do it here rather
        # than mask every channel of every image a second time
        full = zoom(raw, zoom_factor(raw.shape, subject.images.shape), order=1)
    else:
        full = np.asarray(explainer(score, subject.images, expand_cam=True, **common),
                          np.float64)
    return raw, full


def xplique_maps(subject: Subject, method: str, *, softmax: bool) -> tuple[Array, Array]:
    """xplique's ``(map at the layer, map at the input)``: the layer map from the steps of
    ``GradCAM.explain`` before its bicubic resize, the input map from ``explain`` itself."""
    import tensorflow as tf
    from xplique.attributions import GradCAM, GradCAMPP

    model = subject.model if softmax else subject.twin
    kind: Any = {"gradcam": GradCAM, "gradcampp": GradCAMPP}[method]
    explainer = kind(model, conv_layer=subject.layer, batch_size=len(subject.images))
    one_hot = np.eye(2, dtype=np.float32)[subject.targets]
    images = tf.constant(subject.images)
    feature_maps, gradients = explainer._gradient(images, tf.constant(one_hot))
    weights = explainer._compute_weights(gradients, feature_maps)
    raw = np.asarray(explainer._apply_weights(weights, feature_maps), np.float64)
    full = np.asarray(explainer.explain(subject.images, one_hot), np.float64)[..., 0]
    return raw, full


# --------------------------------------------------------- each library's formula, in NumPy
# The published formulas (Grad-CAM, Grad-CAM++, LayerCAM, Score-CAM) are tests/reference_maps.py,
# the reference tests/test_explain.py holds cxrexplain to; here only the counterparts' variants.
def gradcampp_normalised_alpha(a: Array, g: Array) -> Array:
    """As tf-keras-vis: the paper's alpha, then divided by its sum over the locations of each
    channel (the Grad-CAM++ code that circulates with the paper does so too, summing only where
    the gradient is positive)."""
    alpha = ref.gradcampp_alpha(a, g)
    alpha = ref.divide_or_zero(alpha, np.broadcast_to(alpha.sum(axis=(1, 2), keepdims=True),
                                                      alpha.shape))
    return ref.weighted_map(a, (alpha * np.maximum(g, 0)).sum(axis=(1, 2)))


def gradcampp_mean_activation(a: Array, g: Array) -> Array:
    """As xplique: the mean of ``A_k`` over locations where the paper has the sum
    (``2 g^2 + mean_ab A_ab g^3``), 1e-4 for a zero denominator, and the mean over locations."""
    mean = a.mean(axis=(1, 2), keepdims=True)
    den = 2 * g**2 + g**3 * mean
    den = den + (den == 0) * 1e-4
    return ref.weighted_map(a, (g**2 / den * np.maximum(g, 0)).mean(axis=(1, 2)))


PAPER: dict[str, Callable[[Array, Array], Array]] = ref.GRADIENT_FORMULAS
THEIR_FORMULA: dict[tuple[str, str], tuple[str, Callable[[Array, Array], Array]]] = {
    ("gradcam", "tf-keras-vis"): ("Selvaraju eq. 1-2, dS/dA", ref.gradcam),
    ("gradcam", "xplique"): ("Selvaraju eq. 1-2, dS/dA", ref.gradcam),
    ("gradcam", "xplique (softmax model as given)"): ("Selvaraju eq. 1-2, d softmax/dA",
                                                      ref.gradcam),
    ("gradcampp", "tf-keras-vis"): ("paper alpha / sum_ij alpha",
                                    gradcampp_normalised_alpha),
    ("gradcampp", "xplique"): ("mean_ab A in alpha's denominator", gradcampp_mean_activation),
    ("gradcampp", "xplique (softmax model as given)"): ("mean_ab A, d softmax/dA",
                                                        gradcampp_mean_activation),
    ("layercam", "tf-keras-vis"): ("Jiang 2021", ref.layercam),
}


# ------------------------------------------------------------------------------ comparison
def by_max(maps: Array) -> Array:
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def min_max(maps: Array) -> Array:
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1).reshape(-1, 1, 1)
    span = (flat.max(axis=1) - flat.min(axis=1)).reshape(-1, 1, 1)
    return np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)


def pearson(a: Array, b: Array) -> Array:
    """Per-image Pearson r; NaN where either map is constant."""
    x = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(axis=1, keepdims=True)
    y = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(axis=1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    return np.divide((x * y).sum(axis=1), den, out=np.full(len(a), np.nan), where=den > 0)


def _stats(values: Array) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None, None
    return float(np.median(finite)), float(finite.min())


def resize_like_ours(raw: Array, size: tuple[int, int]) -> Array:
    """cxrexplain's upsampling (TF bilinear, half-pixel centres, ReLU, / max)."""
    import tensorflow as tf

    from cxrexplain.explain.base import upsample_and_normalise

    return np.asarray(upsample_and_normalise(tf.constant(raw, tf.float32), size), np.float64)


def compare(ours_raw: Array, ours_full: Array, raw: Array, full: Array) -> dict[str, Any]:
    a_raw, b_raw = by_max(ours_raw), by_max(raw)
    a_full, b_full = min_max(ours_full), min_max(full)
    r_raw, r_full = pearson(a_raw, b_raw), pearson(a_full, b_full)
    size = (int(ours_full.shape[1]), int(ours_full.shape[2]))
    r_same = pearson(a_full, min_max(resize_like_ours(raw, size)))
    zero_a = a_raw.reshape(len(a_raw), -1).max(axis=1) <= 0
    zero_b = b_raw.reshape(len(b_raw), -1).max(axis=1) <= 0
    peak_a = a_raw.reshape(len(a_raw), -1).argmax(axis=1)
    peak_b = b_raw.reshape(len(b_raw), -1).argmax(axis=1)
    same_peak = ((peak_a == peak_b) & ~zero_a & ~zero_b) | (zero_a & zero_b)
    record: dict[str, Any] = {
        "images": len(ours_raw), "cells": "x".join(str(s) for s in ours_raw.shape[1:]),
        "zero_maps_ours": int(zero_a.sum()), "zero_maps_theirs": int(zero_b.sum()),
        "diff_raw_median": float(np.median(np.abs(a_raw - b_raw).max(axis=(1, 2)))),
        "diff_full_median": float(np.median(np.abs(a_full - b_full).max(axis=(1, 2)))),
        "same_peak": int(same_peak.sum()),
        "r_raw": [None if not np.isfinite(v) else round(float(v), 7) for v in r_raw],
    }
    record["r_raw_median"], record["r_raw_min"] = _stats(r_raw)
    record["r_full_median"], record["r_full_min"] = _stats(r_full)
    record["r_full_same_resize_median"], record["r_full_same_resize_min"] = _stats(r_same)
    return record


def channel_overlap(activations: Array, keep: int) -> dict[str, Any]:
    """cxrexplain keeps each image's ``keep`` channels of largest mean activation;
    tf-keras-vis each image's ``keep`` of largest spatial std, then the union over the batch
    (every image is weighted over that union). The share of cxrexplain's channels that
    tf-keras-vis also used, and the union's size."""
    mean = activations.mean(axis=(1, 2))
    std = activations.std(axis=(1, 2))
    ours_top = np.argsort(-mean, axis=1, kind="stable")[:, :keep]
    union = set(np.argsort(-std, axis=1, kind="stable")[:, :keep].reshape(-1).tolist())
    shared = [len(set(row.tolist()) & union) / keep for row in ours_top]
    return {"their_formula": (
        f"channels: cxrexplain top {keep} by mean per image; tf-keras-vis top {keep} by std "
        f"per image, union over the batch ({len(union)} of {activations.shape[-1]}); "
        f"{100 * float(np.mean(shared)):.0f}% of cxrexplain's channels in that union")}


def scorecam_formula(subject: Subject, grid: str) -> Array:
    """Wang et al. 2020 (with the authors' softmax weights, ``reference_maps.scorecam``)
    recomputed here from the probe's activations. ``grid="tf"``: cxrexplain's masks (TF
    bilinear, half-pixel centres; a constant channel weighs 0); ``grid="zoom"``: tf-keras-vis's
    (``scipy.ndimage.zoom(order=1, mode="nearest")``, corners on corners;
    ``(x - min) / (max - min + 1e-7)``)."""
    import tensorflow as tf
    from scipy.ndimage import zoom

    _, h, w, _ = subject.activations.shape
    size = subject.images.shape[1:3]

    def upsample(a: Array) -> Array:  # (h, w, k) -> (H, W, k), in float32 as the libraries
        a = a.astype(np.float32)
        if grid == "tf":
            return np.asarray(tf.image.resize(a[None], size, method="bilinear"))[0]
        return zoom(a, (size[0] / h, size[1] / w, 1), order=1, mode="nearest")

    def probabilities(masked: Array) -> Array:
        return np.asarray(subject.model.predict(masked, batch_size=64, verbose=0), np.float64)

    return ref.scorecam(subject.activations, subject.images, subject.targets, probabilities,
                        upsample, epsilon=0.0 if grid == "tf" else 1e-7)


def gradcampp_term(a: Array, g: Array) -> str:
    """How far ``sum_ab A_ab * g_ij`` (beside 2 in alpha's denominator, once divided by
    g^2) is from 0 where g > 0: where it is small, alpha is about 1/2 whatever is summed or
    normalised, and the paper, tf-keras-vis and xplique give nearly the same weights. Then the
    three formulas on the same A with the gradients scaled so that the term's 99th percentile
    is 2 (a head with larger weights), to show that they are different formulas."""
    term = np.abs(a.sum(axis=(1, 2), keepdims=True) * g)[g > 0]
    if not term.size:
        return "no positive gradient"
    p99 = float(np.percentile(term, 99))
    scaled = g * (2.0 / p99)
    paper = by_max(ref.gradcampp(a, scaled))
    r_tkv = pearson(paper, by_max(gradcampp_normalised_alpha(a, scaled)))
    r_xpl = pearson(paper, by_max(gradcampp_mean_activation(a, scaled)))
    return (f"abs(sum_ab A g) where g > 0: median {np.median(term):.2g}, 99th percentile "
            f"{p99:.2g}, max {term.max():.2g}, against 2; with g scaled so that the 99th "
            f"percentile is 2, r(paper, alpha / sum alpha) = {_f(_stats(r_tkv)[0], 4)} "
            f"(min {_f(_stats(r_tkv)[1], 4)}), r(paper, mean A) = {_f(_stats(r_xpl)[0], 4)} "
            f"(min {_f(_stats(r_xpl)[1], 4)})")


def explain_cause(subject: Subject, method: str, library: str, ours_raw: Array,
                  raw: Array, channels: int | None = None) -> dict[str, Any]:
    """Each library against its own formula, and cxrexplain against the paper's; for
    Score-CAM on a subset of channels, how many channels the two picked alike."""
    out: dict[str, Any] = {}
    if method == "scorecam":
        if channels:
            return channel_overlap(subject.activations, channels)
        if not subject.recompute_scorecam:
            return {}  # two more passes over every channel of every image: too slow here
        label = "Wang 2020, probability weights, tf-keras-vis's masks (scipy zoom, +1e-7)"
        theirs_formula = scorecam_formula(subject, "zoom")
        paper_formula = scorecam_formula(subject, "tf")
    else:
        label, formula = THEIR_FORMULA[(method, library)]
        grads = subject.prob_grads if "softmax" in library else subject.logit_grads
        theirs_formula = formula(subject.activations, grads)
        paper_formula = PAPER[method](subject.activations, subject.logit_grads)
        if method == "gradcampp":
            out["alpha_term"] = gradcampp_term(subject.activations, grads)
    out["their_formula"] = label
    theirs = pearson(by_max(raw), by_max(theirs_formula))
    paper = pearson(by_max(ours_raw), by_max(paper_formula))
    out["r_theirs_vs_their_formula_median"], out["r_theirs_vs_their_formula_min"] = \
        _stats(theirs)
    out["r_ours_vs_paper_median"], out["r_ours_vs_paper_min"] = _stats(paper)
    out["diff_ours_vs_paper_max"] = float(np.abs(by_max(ours_raw) - by_max(paper_formula)).max())
    return out


# ------------------------------------------------------------------------------ driver
def cases(args: argparse.Namespace) -> list[tuple[str, str, str, int, int | None]]:
    """(model key, method, counterpart, images, Score-CAM channels or None for all)."""
    out: list[tuple[str, str, str, int, int | None]] = []
    for key in ("cam_cnn", "vgg16"):
        for method in METHODS:
            count = args.images
            if method == "scorecam" and key == "vgg16":
                count = args.vgg_scorecam_images
            if count < 1:
                continue
            for library in COUNTERPARTS[method]:
                out.append((key, method, library, count, None))
        if key == "cam_cnn" and args.scorecam_channels > 0:
            out.append((key, "scorecam", "tf-keras-vis", args.images, args.scorecam_channels))
    return out


def run_all(args: argparse.Namespace) -> None:
    import tensorflow as tf

    import cxrexplain as cx

    print(f"cxrexplain {cx.__version__} from {cx.__file__}", flush=True)
    if "site-packages" not in cx.__file__:
        print("warning: cxrexplain is imported from a source tree, not an installed package",
              flush=True)
    tf.config.experimental.enable_op_determinism()
    args.jsonl.parent.mkdir(parents=True, exist_ok=True)
    have = {(r["model_key"], r["method"], r["library"], r["images"], r.get("channels"),
             r["fingerprint"]) for r in read_jsonl(args.jsonl) if "error" not in r}
    subjects: dict[tuple[str, int], Subject] = {}
    mine: dict[tuple[str, int, str, int | None], tuple[Array, Array]] = {}
    for key, method, library, count, channels in cases(args):
        if (key, count) not in subjects:
            subject = (cam_cnn_subject(args, count) if key == "cam_cnn"
                       else vgg16_subject(count))
            probe(subject)
            subjects[(key, count)] = subject
        subject = subjects[(key, count)]
        if (key, method, library, count, channels, subject.fingerprint) in have:
            continue
        label = f"{key} {method} vs {library}" + (f" ({channels} channels)" if channels else "")
        print(f"{label}, {count} images ...", end=" ", flush=True)
        record: dict[str, Any] = {
            "model_key": key, "model": subject.name, "model_note": subject.note,
            "method": method, "library": library, "images": count, "channels": channels,
            "layer": subject.layer, "fingerprint": subject.fingerprint,
        }
        try:
            start = time.perf_counter()
            if (key, count, method, channels) not in mine:
                mine[(key, count, method, channels)] = ours(subject, method, channels)
            ours_seconds = time.perf_counter() - start
            ours_raw, ours_full = mine[(key, count, method, channels)]
            start = time.perf_counter()
            if library == "tf-keras-vis":
                raw, full = tf_keras_vis_maps(subject, method, channels or -1)
            else:
                raw, full = xplique_maps(subject, method, softmax="softmax" in library)
            record["seconds_theirs"] = round(time.perf_counter() - start, 2)
            record["seconds_ours"] = round(ours_seconds, 2)
            record.update(compare(ours_raw, ours_full, raw, full))
            record.update(explain_cause(subject, method, library, ours_raw, raw, channels))
            print(f"r at layer {record['r_raw_median']}, at input {record['r_full_median']}",
                  flush=True)
        except Exception as err:  # one failed case must not stop the others
            record["error"] = f"{type(err).__name__}: {str(err).strip()[:300]}"
            print("failed:", record["error"], flush=True)
        with args.jsonl.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------------------ the tables
def _f(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record of each case (a rerun after a change of model replaces the old one)."""
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        latest[(r["model_key"], r["method"], r["library"], r.get("channels"))] = r
    order = {k: i for i, k in enumerate(("cam_cnn", "vgg16"))}
    return sorted(latest.values(), key=lambda r: (
        order.get(r["model_key"], 9), METHODS.index(r["method"]), r.get("channels") or 0,
        COUNTERPARTS[r["method"]].index(r["library"])))


def _method_label(r: dict[str, Any]) -> str:
    name = METHOD_NAMES[r["method"]]
    return f"{name} (top {r['channels']} channels)" if r.get("channels") else name


def report(args: argparse.Namespace) -> str:
    import keras

    records = _latest(read_jsonl(args.jsonl))
    good = [r for r in records if "error" not in r]
    failed = [r for r in records if "error" in r]
    versions = _versions()
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    models = {r["model"]: r["model_note"] for r in good}
    lines = [
        SECTION, "",
        f"`{COMMAND}{' --quick' if args.quick else ''}` (results as of {when}; "
        "`--report` rewrites the tables from `benchmarks/out/map_agreement.jsonl`). "
        f"{machine()}, Keras {keras.__version__}; {versions}.", "",
        "Install (a separate virtual environment, cxrexplain installed non-editable): "
        "`pip install \".[dev]\"`, `pip install -r benchmarks/requirements-bench.txt`, "
        "`pip install --no-deps xplique==2.0.2`; `TF_USE_LEGACY_KERAS` unset, so "
        "tf-keras-vis and xplique run on Keras 3 through `tf.keras`.", "",
        "Models: " + "; ".join(f"**{name}**: {note}" for name, note in models.items()) + ". "
        "Same model object, images (synthetic phantoms; targets: cam_cnn its labels, VGG16 "
        "0, 1, 0, ...) and layer on every side. tf-keras-vis: `ReplaceToLinear` (the score "
        "is the logit, as in cxrexplain), `seek_penultimate_conv_layer=False` (otherwise it "
        "moves from `block4_relu` back to `block4_conv`, before BatchNorm and ReLU), "
        "`normalize_cam=False`, Score-CAM `max_N=-1` (every channel). xplique "
        "differentiates the model's output as given, the softmax probability: it gets a "
        "logits twin (a clone with `set_weights` and a linear head, whose softmax equals the "
        "model's output to 1e-5); the rows *softmax model as given* are xplique on the "
        "model itself. xplique's layer map is taken from the steps of its `explain` before "
        "the bicubic resize (`_gradient`, `_compute_weights`, `_apply_weights`).", "",
        "*At layer*: cxrexplain's `Explanation.raw` against the counterpart's map before "
        "upsampling, each divided by its own maximum; *at input*: cxrexplain's `heatmaps` "
        "against the counterpart's upsampled map, each min-max normalised. r: Pearson per "
        "image, median (minimum) over images; max abs diff: per image, median over images; "
        "same peak: both maps' maxima on the same layer cell (two all-zero maps count as "
        "the same). Images whose map is all zero on either side have no r.", "",
        "| model | method | counterpart | layer (cells) | images | r at layer | "
        "max abs diff at layer | r at input | max abs diff at input | same peak cell |",
        "|---|---|---|---|---:|---|---:|---|---:|---:|",
    ]
    for r in good:
        zeros = ""
        if r["zero_maps_ours"] or r["zero_maps_theirs"]:
            zeros = f" ({r['zero_maps_ours']}/{r['zero_maps_theirs']} all-zero)"
        lines.append(
            f"| {r['model']} | {_method_label(r)} | {r['library']} | `{r['layer']}` "
            f"({r['cells']}) | {r['images']}{zeros} | {_f(r['r_raw_median'], 6)} "
            f"({_f(r['r_raw_min'], 6)}) | {r['diff_raw_median']:.2e} | "
            f"{_f(r['r_full_median'], 4)} ({_f(r['r_full_min'], 4)}) | "
            f"{r['diff_full_median']:.3f} | {r['same_peak']}/{r['images']} |")
    lines += [
        "", "Where the differences come from. *Their formula*: the counterpart's layer map "
        "against that formula recomputed in NumPy (float64) from the layer's activations A "
        "and the gradients dS/dA of the target logit (or of the softmax probability where "
        "said), taken with a plain GradientTape outside all three libraries. *cxrexplain vs "
        "paper*: `Explanation.raw` against the published formula from the same A and dS/dA "
        "(max abs diff of the max-scaled maps). *At input, same resize*: r at input once the "
        "counterpart's layer map is upsampled as cxrexplain does (TF bilinear, half-pixel "
        "centres).", "",
        "| model | method | counterpart | their formula | r(their map, their formula) | "
        "r(cxrexplain, paper) | max abs diff (cxrexplain, paper) | r at input, same resize |",
        "|---|---|---|---|---|---|---:|---|",
    ]
    for r in good:
        lines.append(_cause_row(r))
    terms = [r for r in good if r["method"] == "gradcampp" and r["library"] == "tf-keras-vis"
             and "alpha_term" in r]
    if terms:
        lines += ["", "Grad-CAM++'s alpha denominator, from the same A and dS/dA: "
                  + "; ".join(f"**{r['model'].split(' (')[0]}**: {r['alpha_term']}"
                              for r in terms) + "."]
    lines += ["", *findings(good)]
    if failed:
        lines += ["", "Failed cases: " + "; ".join(
            f"{r['model_key']} {r['method']} vs {r['library']}: {r['error'][:200]}"
            for r in failed)]
    lines.append("")
    return "\n".join(lines)


def _pick(good: list[dict[str, Any]], model_key: str, method: str, library: str,
          channels: int | None = None) -> dict[str, Any]:
    for r in good:
        if (r["model_key"], r["method"], r["library"], r.get("channels")) == (
                model_key, method, library, channels):
            return r
    return {}


def _r(record: dict[str, Any], key: str, digits: int = 3) -> str:
    """``median (min min)`` of one r in a record, or n/a."""
    if not record or record.get(f"{key}_median") is None:
        return "n/a"
    return f"{record[f'{key}_median']:.{digits}f} (min {record[f'{key}_min']:.{digits}f})"


def findings(good: list[dict[str, Any]]) -> list[str]:
    """What the tables say (the figures are taken from the records)."""
    tkv_input = [r["r_full_min"] for r in good if r["library"] == "tf-keras-vis"
                 and not r.get("channels") and r["r_full_min"] is not None]
    xpl_input = [r["r_full_min"] for r in good if r["library"] == "xplique"
                 and r["r_full_min"] is not None]
    paper_gap = [r["diff_ours_vs_paper_max"] for r in good if "diff_ours_vs_paper_max" in r]
    vgg_soft = _pick(good, "vgg16", "gradcam", "xplique (softmax model as given)")
    vgg_logit = _pick(good, "vgg16", "gradcam", "xplique")
    cnn_soft = _pick(good, "cam_cnn", "gradcam", "xplique (softmax model as given)")
    score = _pick(good, "cam_cnn", "scorecam", "tf-keras-vis")
    subset = [r for r in good if r["method"] == "scorecam" and r.get("channels")]
    top = subset[0] if subset else {}
    lines = [
        "What the tables say:", "",
        "- **No cxrexplain bug found.** At the layer's resolution cxrexplain's Grad-CAM and "
        "LayerCAM equal tf-keras-vis's and xplique's (logits twin) to float32 round-off on "
        "both models, and Grad-CAM++ to about 1e-3 of the peak (the formula variants below): "
        "r >= 0.999999, every peak on the same cell; and "
        "`Explanation.raw` equals the published formulas (Selvaraju 2017 eq. 1-2, "
        "Chattopadhay 2018's closed-form alpha with the exponential score, Jiang 2021; "
        "Score-CAM: Wang 2020 with softmax weights, recomputed with cxrexplain's masks) "
        "recomputed in NumPy from A and dS/dA: largest difference of the max-scaled maps "
        f"{max(paper_gap):.1e}." if paper_gap else "- No formula check ran.",
        "- **Input resolution, tf-keras-vis (r down to "
        f"{min(tkv_input):.3f}): the upsampling grid, nothing else.** tf-keras-vis upsamples "
        "with `scipy.ndimage.zoom(cam, factor, order=1)`, whose default grid "
        "(`grid_mode=False`) puts the centres of the first and last cells on the image's "
        "corner pixels (align-corners); cxrexplain uses `tf.image.resize(method=\"bilinear\")`"
        " with half-pixel centres, where a 14x14 cell covers a 16x16 block of a 224 image "
        "(as OpenCV and PyTorch's `align_corners=False`). The same map therefore lands up "
        "to half a cell (8 px at 224) apart, most at the borders. Resizing the counterpart's "
        "layer map the cxrexplain way gives r = 1.000000 (last column). The untrained "
        "VGG16's maps change from cell to cell, which is why it shows most there (LayerCAM); "
        "the trained cam_cnn's are smooth (r about 0.99). xplique resizes bicubically "
        f"(half-pixel too): r at input at least {min(xpl_input):.3f}."
        if tkv_input and xpl_input else "- Input resolution: not measured.",
        "- **xplique on the model as given explains the softmax probability.** Its "
        "`GradCAM._gradient` differentiates `model(inputs) * one_hot`, the model's output; "
        "for two softmax classes dp_c/dA = p_c (1 - p_c) d(z_c - z_other)/dA, a map of "
        "class c *against* the other class rather than of z_c (Selvaraju et al. use the "
        "score before the softmax). On VGG16 that gives r "
        f"{_r(vgg_soft, 'r_raw')} at the layer and {vgg_soft.get('zero_maps_theirs', 'n/a')} "
        f"all-zero maps of {vgg_soft.get('images', 'n/a')} (logits twin: "
        f"{vgg_logit.get('zero_maps_theirs', 'n/a')}, the same images as cxrexplain); on the "
        f"trained cam_cnn the gap is small ({_r(cnn_soft, 'r_raw', 4)}). "
        "Recomputed from dp/dA it is reproduced exactly (second table). With a logits twin "
        "(same weights, linear head) xplique agrees with cxrexplain to round-off.",
        "- **Grad-CAM++: neither counterpart implements the paper's alpha, but here it does "
        "not show.** tf-keras-vis divides each channel's alphas by their sum over locations "
        "(the paper's closed form has no such step; the Grad-CAM++ code circulating with the "
        "paper normalises too, over the locations of positive gradient); xplique puts the "
        "mean of A_k over locations where the paper has the sum (and averages instead of sums "
        "the weights, a constant factor). Each library's map equals its own formula "
        "exactly (second table). The variants differ from the paper only through "
        "sum_ab A_ab g_ij beside 2 in alpha's denominator, which is small on both models "
        "(figures above), so alpha is about 1/2 everywhere and all three coincide; even "
        "with gradients scaled so that the term's 99th percentile is 2 they stay at "
        "r > 0.99 on these activations. cxrexplain follows the paper.",
        "- **Score-CAM with every channel: r "
        f"{_r(score, 'r_raw')} at the layer, from the masks.** The weights come from "
        "masked forward passes, and the masks are upsampled differently: tf-keras-vis "
        "`zoom(order=1, mode=\"nearest\")` (align-corners grid) and `(x - min) / (max - min + "
        "1e-7)`, cxrexplain TF bilinear with half-pixel centres and weight 0 for a constant "
        "channel. Recomputing Score-CAM in NumPy/Keras with each library's masks reproduces "
        "each library's map (r = 1.000000 both, second table). Both weight a channel by the "
        "target's softmax probability on the masked image (tf-keras-vis: `K.softmax` of the "
        "`ReplaceToLinear` model's logits), as the authors' code does. On the untrained "
        "VGG16 (one image, all 512 channels: the masked passes cost about 2 minutes per "
        "library) every masked image gets nearly the same probability (the untrained head "
        "gives about 0.5 to everything), so the maps agree.",
        "- **Score-CAM on a subset of channels is not comparable between the two.** "
        "cxrexplain's `max_channels=N` keeps each image's N channels of largest mean "
        "activation; tf-keras-vis's `max_N=N` keeps each image's N channels of largest "
        "spatial standard deviation and weights every image over the union of those over "
        f"the batch ({top.get('their_formula', 'n/a').removeprefix('channels: ')}); r at the "
        f"layer {_r(top, 'r_raw')}. "
        "The paper uses every channel; both are speed-ups, and the difference is a choice, "
        "not an error.",
        "- **tf-keras-vis's `seek_penultimate_conv_layer=True` (its default)** replaces a "
        "named layer that is not a convolution by the nearest convolution before it: "
        "asked for `block4_relu` it explains `block4_conv`, before BatchNormalization and "
        "ReLU. The runs above pass `False` so both sides explain the same layer.",
    ]
    return lines


def _cause_row(r: dict[str, Any]) -> str:
    """One row of the second table."""
    if "their_formula" in r and "r_theirs_vs_their_formula_median" in r:
        formula = r["their_formula"]
        theirs = (f"{_f(r['r_theirs_vs_their_formula_median'], 6)} "
                  f"({_f(r['r_theirs_vs_their_formula_min'], 6)})")
        paper = f"{_f(r['r_ours_vs_paper_median'], 6)} ({_f(r['r_ours_vs_paper_min'], 6)})"
        diff = f"{r['diff_ours_vs_paper_max']:.1e}"
    else:
        formula = r.get("their_formula", "n/a (masked forward passes)")
        theirs, paper, diff = "n/a", "n/a", "n/a"
    same = f"{_f(r['r_full_same_resize_median'], 6)} ({_f(r['r_full_same_resize_min'], 6)})"
    return (f"| {r['model'].split(' (')[0]} | {_method_label(r)} | {r['library']} | {formula} "
            f"| {theirs} | {paper} | {diff} | {same} |")


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("cxrexplain", "tf-keras-vis", "xplique", "scipy"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} not installed")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.report:
        run_all(args)
    publish(args.results_md, SECTION, report(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
