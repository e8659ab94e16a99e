"""Explanation speed and memory benchmark (issue 3).

On the same model and the same images, in one run, this measures images per second (median of
several timed repeats after a warm-up), the peak resident memory above the loaded model, and the
ratios to three references:

* ``keras-loop``: the per-image loop of the official Keras Grad-CAM example
  (https://keras.io/examples/vision/grad_cam/), re-written here one image at a time: a
  ``keras.Model(model.inputs, [conv.output, model.output])``, a GradientTape per image, the
  gradients averaged over space, the weighted sum of the feature maps, ReLU and division by
  the maximum (plus a bilinear upsampling to the input size, so its output matches ours);
* ``floor``: the bare forward pass of the same images, batched (``model.predict`` and a
  compiled ``model(x, training=False)`` in a ``tf.function``; the faster is the floor);
* the third-party libraries tf-keras-vis (``Gradcam``) and xplique (``GradCAM``), installed
  as benchmark-only extras (``benchmarks/requirements-bench.txt``; see RESULTS.md).

Models: VGG16 (``weights=None``) nested in a Sequential with GAP -> Dense(2, softmax), target
``vgg16/block5_conv3``, and a reference CAM CNN on 224x224x1 images. The official Keras recipe,
tf-keras-vis and xplique cannot reach a layer inside a nested model (the benchmark records their
error), so they run on a *flat* functional model that shares the very same layer objects and
weights; cxrexplain runs on the nested model as users build it.

Every case runs in a fresh subprocess (clean memory numbers, no monkey-patching shared between
libraries) and appends one JSON line to ``benchmarks/out/explain_speed.jsonl``; a rerun skips
the cases already there. The tables are printed at the end (``--report`` prints them only).

Usage::

    python benchmarks/explain_speed.py            # full run (~30 min on 2 CPU cores)
    python benchmarks/explain_speed.py --quick    # smoke run: batch 1 and 8, fewer repeats
    python benchmarks/explain_speed.py --report   # tables from the results so far
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import read_jsonl

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "out"
SEED = 1234
IMAGE_SIZE = 224
VGG_LAYER = "block5_conv3"
CNN_LAYER = "block4_relu"
MODELS = ("vgg16", "cam_cnn")
CASE_TIMEOUT_S = 900
# Other engineers' jobs share the 2 cores: a timed repeat during which other processes used
# more than CLEAN_SHARE of the machine's CPU is repeated (up to MAX_ATTEMPTS_FACTOR x repeats).
CLEAN_SHARE = 0.10
MAX_ATTEMPTS_FACTOR = 3

# --------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------


def plan(quick: bool, *, memory: bool = True, xla: bool = True) -> list[dict[str, Any]]:
    """All cases of a run, in the order they run."""
    batches = (1, 8) if quick else (1, 8, 32)
    big = batches[-1]
    repeats = {"vgg16": 2 if quick else 3, "cam_cnn": 2 if quick else 5}
    images = {1: 4, 8: 16} if quick else {1: 8, 8: 32, 32: 64}
    loop_images = {"vgg16": 4 if quick else 16, "cam_cnn": 8 if quick else 32}
    cases: list[dict[str, Any]] = []

    def add(model: str, method: str, batch: int, n: int, **extra: Any) -> None:
        cases.append({"kind": "speed", "model": model, "method": method, "batch": batch,
                      "images": n, "repeats": repeats[model], **extra})

    for model in MODELS:
        for batch in batches:
            for method in ("floor-compiled", "floor-predict", "gradcam", "cam",
                           "tf-keras-vis", "xplique"):
                add(model, method, batch, images[batch])
        add(model, "keras-loop", 1, loop_images[model])
        for method in ("gradcampp", "hirescam", "layercam"):
            add(model, method, big, images[big])
        if model == "cam_cnn":
            add(model, "scorecam", 8, 8, max_channels=64, mask_batch_size=64)
        if xla:
            add(model, "floor-compiled", big, images[big], variant="xla")
            add(model, "gradcam", big, images[big], variant="xla")
    if memory:
        sizes = (32, 64) if quick else (64, 256)
        mem_batch = 8 if quick else 32
        for method in ("floor-compiled", "gradcam", "tf-keras-vis", "xplique"):
            for n in sizes:
                cases.append({"kind": "memory", "model": "vgg16", "method": method,
                              "batch": mem_batch, "images": n, "repeats": 1})
    return cases


def case_key(case: dict[str, Any]) -> str:
    return "|".join(str(case.get(k, "")) for k in ("kind", "model", "method", "variant",
                                                    "batch", "images"))


def describe(case: dict[str, Any]) -> str:
    variant = f"[{case['variant']}]" if case.get("variant") else ""
    return (f"{case['kind']:6s} {case['model']:7s} {case['method'] + variant:22s} "
            f"b={case['batch']:<3d} n={case['images']}")


# --------------------------------------------------------------------------------------------
# memory: peak resident set size (VmHWM, reset through /proc/self/clear_refs)
# --------------------------------------------------------------------------------------------


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class PeakRSS:
    """Peak RSS (bytes) inside a ``with`` block.

    Resets the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``) and reads VmHWM
    afterwards; where the reset is not allowed it samples VmRSS every millisecond in a thread.
    """

    def __init__(self) -> None:
        self.peak = 0
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self.method = "VmHWM"
        except OSError:
            self.method = "sampled"
            self.peak = _status_kb("VmRSS") * 1024
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_kb("VmRSS") * 1024)
            time.sleep(0.001)

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _status_kb("VmRSS") * 1024)
        else:
            self.peak = _status_kb("VmHWM") * 1024


def rss() -> int:
    return _status_kb("VmRSS") * 1024


class Interference:
    """Share of the machine's CPU time used by *other* processes during a ``with`` block.

    Other engineers' jobs share this machine's cores; each timed repeat records how busy the
    cores were outside this process (from ``/proc/stat`` minus this process's own CPU time), so
    that disturbed numbers can be seen and rerun (``--redo-noisy``).
    """

    def __enter__(self) -> Interference:
        self._busy, self._own, self._wall = _busy_s(), _own_cpu_s(), time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self._wall
        others = (_busy_s() - self._busy) - (_own_cpu_s() - self._own)
        self.own_cpu = _own_cpu_s() - self._own
        self.share = max(0.0, others) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0


def _busy_s() -> float:
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


# --------------------------------------------------------------------------------------------
# models and data (inside a case subprocess)
# --------------------------------------------------------------------------------------------


def build_model(name: str) -> dict[str, Any]:
    """The model as users build it, a flat functional twin (same layers) and the target."""
    import keras

    keras.utils.set_random_seed(SEED)
    if name == "vgg16":
        backbone = keras.applications.VGG16(weights=None, include_top=False,
                                            input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
        gap = keras.layers.GlobalAveragePooling2D(name="gap")
        dense = keras.layers.Dense(2, activation="softmax", name="predictions")
        model = keras.Sequential([keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)), backbone, gap,
                                  dense], name="vgg16_gap_dense")
        features = gap(backbone.output)
        flat = keras.Model(backbone.inputs, dense(features), name="vgg16_flat")
        return {"model": model, "flat": flat, "layer": f"vgg16/{VGG_LAYER}",
                "flat_features": features,
                "flat_layer": VGG_LAYER, "channels": 3, "source": "keras.applications.VGG16"}
    if name == "cam_cnn":
        # cxrexplain.models.build("cam_cnn") where the package has it; else the same
        # architecture defined here (identical layers and layer names)
        try:
            import cxrexplain.models as cx_models

            model = cx_models.build("cam_cnn", input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1),
                                    num_classes=2)
            source = "cxrexplain.models.build('cam_cnn')"
            layer = _layer_before_gap(model)
        except Exception as err:
            keras.utils.set_random_seed(SEED)
            model = _local_cam_cnn()
            source = f"local 4-block CNN (cxrexplain.models.build unusable: {type(err).__name__})"
            layer = CNN_LAYER
        return {"model": model, "flat": model, "layer": layer, "flat_layer": layer,
                "channels": 1, "source": source}
    raise ValueError(f"unknown model {name!r}")


def _local_cam_cnn() -> Any:
    """Conv(3x3, same)+BN+ReLU+MaxPool x4 (32/64/128/256, no pool last) -> GAP -> Dropout ->
    Dense(2, softmax) on 224x224x1."""
    import keras
    from keras import layers

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="image")
    x = inputs
    for block, filters in enumerate((32, 64, 128, 256), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                          name=f"block{block}_conv")(x)
        x = layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = layers.Activation("relu", name=f"block{block}_relu")(x)
        if block < 4:
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="cam_cnn")


def _layer_before_gap(model: Any) -> str:
    import keras

    names = [layer.name for layer in model.layers]
    for index, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            return names[index - 1]
    raise ValueError("cam_cnn: no GlobalAveragePooling2D")


def make_images(n: int, channels: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(SEED)
    return rng.random((n, IMAGE_SIZE, IMAGE_SIZE, channels), dtype=np.float32)


def make_targets(n: int) -> Any:
    import numpy as np

    return (np.arange(n) % 2).astype(np.int32)  # the same fixed targets for every method


# --------------------------------------------------------------------------------------------
# the methods: each returns run(images, targets, batch) -> NumPy heatmaps / outputs
# --------------------------------------------------------------------------------------------


def make_runner(case: dict[str, Any], built: dict[str, Any]) -> tuple[Callable[..., Any],
                                                                      dict[str, Any]]:
    import numpy as np
    import tensorflow as tf

    method = case["method"]
    model, flat = built["model"], built["flat"]
    info: dict[str, Any] = {}

    if method == "floor-compiled":
        jit = case.get("variant") == "xla"
        forward = tf.function(lambda x: model(x, training=False), jit_compile=jit or None)

        def run(images: Any, targets: Any, batch: int) -> Any:
            outs = [forward(tf.constant(images[i:i + batch])).numpy()
                    for i in range(0, len(images), batch)]
            return np.concatenate(outs)

        return run, info

    if method == "floor-predict":
        def run(images: Any, targets: Any, batch: int) -> Any:
            return model.predict(images, batch_size=batch, verbose=0)

        return run, info

    if method == "floor-backward":
        return _bare_backward(built), info

    if method == "keras-loop":
        return _keras_loop(built, info), info

    if method == "gradcam-xla":
        import cxrexplain as cx

        class XlaGradCAM(cx.GradCAM):
            """Grad-CAM with the explain pass compiled by XLA (``jit_compile=True``)."""

            def _pass_key(self) -> tuple[Any, ...]:
                return (*super()._pass_key(), "xla")

            def _trace(self, specs: Any) -> Any:
                with self._interception():
                    return tf.function(self._graph, jit_compile=True).get_concrete_function(
                        *specs)

        explainer = XlaGradCAM(cx.Classifier(model), layer=built["layer"])
        info["layer"] = explainer.layer

        def run(images: Any, targets: Any, batch: int) -> Any:
            return explainer.explain(images, targets=targets, batch_size=batch).heatmaps

        return run, info

    if method in ("gradcam-new", "cam-new"):
        import cxrexplain as cx

        classifier = cx.Classifier(model)
        layer = built["layer"] if method == "gradcam-new" else None
        cls = cx.GradCAM if method == "gradcam-new" else cx.CAM

        def run(images: Any, targets: Any, batch: int) -> Any:
            # the README's pattern: a new explainer for every call, one call per batch
            return np.concatenate([
                cls(classifier, layer=layer).explain(images[i:i + batch], targets[i:i + batch],
                                                     batch_size=batch).heatmaps
                for i in range(0, len(images), batch)])

        return run, info

    if method in ("gradcam", "cam", "gradcampp", "hirescam", "layercam", "scorecam"):
        import cxrexplain as cx

        classifier = cx.Classifier(model)
        cls = cx.explainers()[method]
        if method == "scorecam":
            explainer = cls(classifier, layer=built["layer"],
                            max_channels=case["max_channels"],
                            mask_batch_size=case["mask_batch_size"])
        elif method == "cam":  # CAM needs the layer feeding the GAP: the default one
            explainer = cls(classifier)
        else:
            explainer = cls(classifier, layer=built["layer"])
        info["layer"] = explainer.layer

        def run(images: Any, targets: Any, batch: int) -> Any:
            return explainer.explain(images, targets=targets, batch_size=batch).heatmaps

        return run, info

    if method == "tf-keras-vis":
        import tf_keras_vis
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.scores import CategoricalScore

        info["version"] = tf_keras_vis.__version__
        info["nested_error"] = _nested_error(
            lambda: Gradcam(model, clone=False)(CategoricalScore([0]), make_images(1, 3),
                                                penultimate_layer=VGG_LAYER)
        ) if case["model"] == "vgg16" else None
        gradcam = Gradcam(flat, clone=False)

        def run(images: Any, targets: Any, batch: int) -> Any:
            # tf-keras-vis takes the whole input at once; the loop gives it batches of `batch`
            outs = [gradcam(CategoricalScore(list(targets[i:i + batch])), images[i:i + batch],
                            penultimate_layer=built["flat_layer"],
                            seek_penultimate_conv_layer=False)
                    for i in range(0, len(images), batch)]
            return np.concatenate([o.reshape(-1, *o.shape[-2:]) for o in outs])

        return run, info

    if method == "xplique":
        import xplique
        from xplique.attributions import GradCAM as XGradCAM

        info["version"] = xplique.__version__
        info["nested_error"] = _nested_error(
            lambda: XGradCAM(model, conv_layer=VGG_LAYER)
        ) if case["model"] == "vgg16" else None
        explainers: dict[int, Any] = {}

        def run(images: Any, targets: Any, batch: int) -> Any:
            if batch not in explainers:
                explainers[batch] = XGradCAM(flat, conv_layer=built["flat_layer"],
                                             batch_size=batch)
            one_hot = np.eye(2, dtype=np.float32)[targets]
            return np.asarray(explainers[batch].explain(images, one_hot))[..., 0]

        return run, info

    raise ValueError(f"unknown method {method!r}")


def _nested_error(attempt: Callable[[], Any]) -> str | None:
    try:
        attempt()
    except Exception as err:
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}"
    return None


def _bare_backward(built: dict[str, Any]) -> Callable[..., Any]:
    """The bare batched forward+backward pass Grad-CAM cannot avoid: one compiled
    ``tf.function`` on the flat model returning the target layer's activations and the
    gradients of the target scores before the softmax, nothing else."""
    import keras
    import numpy as np
    import tensorflow as tf

    flat = built["flat"]
    conv = flat.get_layer(built["flat_layer"])
    head = flat.layers[-1]
    # the head's input in the flat graph (the Dense is shared with the nested model, so its
    # own `.input` is the nested model's tensor)
    features = built.get("flat_features", head.input)
    logits_model = keras.Model(flat.inputs, [conv.output, features])

    @tf.function
    def backward(images: Any, targets: Any) -> Any:
        with tf.GradientTape() as tape:
            activations, features = logits_model(images, training=False)
            logits = tf.matmul(features, head.kernel.value) + head.bias.value
            score = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
        return activations, tape.gradient(score, activations)

    def run(images: Any, targets: Any, batch: int) -> Any:
        outs = [backward(tf.constant(images[i:i + batch]),
                         tf.constant(targets[i:i + batch]))[1].numpy()
                for i in range(0, len(images), batch)]
        return np.concatenate(outs)

    return run


def _keras_loop(built: dict[str, Any], info: dict[str, Any]) -> Callable[..., Any]:
    """The official Keras Grad-CAM recipe, one image at a time (eager), on the flat model."""
    import keras
    import numpy as np
    import tensorflow as tf

    model, flat = built["model"], built["flat"]
    if model is not flat:  # show that the recipe cannot be built on the nested model
        def nested() -> Any:
            conv = model.get_layer("vgg16").get_layer(VGG_LAYER)
            grad_model = keras.Model(model.inputs, [conv.output, model.output])
            return grad_model(make_images(1, built["channels"]))

        info["nested_error"] = _nested_error(nested)
    conv_layer = flat.get_layer(built["flat_layer"])
    grad_model = keras.Model(flat.inputs, [conv_layer.output, flat.output])
    size = (IMAGE_SIZE, IMAGE_SIZE)

    def heatmap(image: Any, target: int) -> Any:
        with tf.GradientTape() as tape:
            conv_output, predictions = grad_model(image[None])
            class_score = predictions[:, target]
        grads = tape.gradient(class_score, conv_output)
        pooled = tf.reduce_mean(grads, axis=(0, 1, 2))  # one weight per channel
        cam = tf.squeeze(conv_output[0] @ pooled[..., None], -1)
        cam = tf.maximum(cam, 0.0) / tf.reduce_max(cam)
        cam = tf.image.resize(cam[..., None], size, method="bilinear")[..., 0]
        return cam.numpy()

    def run(images: Any, targets: Any, batch: int) -> Any:
        return np.stack([heatmap(image, int(t)) for image, t in zip(images, targets,
                                                                     strict=True)])

    return run


# --------------------------------------------------------------------------------------------
# one case (in a fresh subprocess)
# --------------------------------------------------------------------------------------------


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    warnings.filterwarnings("ignore")
    import keras
    import numpy as np
    import tensorflow as tf

    built = build_model(case["model"])
    n, batch = case["images"], case["batch"]
    images = make_images(n, built["channels"])
    targets = make_targets(n)
    run, info = make_runner(case, built)
    rss_model = rss()  # the model, its compiled state not yet built, and the input images
    result: dict[str, Any] = {**case, "model_source": built["source"], **info,
                              "rss_model_mb": rss_model / 1e6}

    warm = min(batch, n)
    with PeakRSS() as warm_peak:
        start = time.perf_counter()
        run(images[:warm], targets[:warm], batch)
        result["warmup_s"] = time.perf_counter() - start
    rss_warm = rss()
    times, others, cpu = [], [], []
    clean: list[float] = []
    attempts = case["repeats"] * MAX_ATTEMPTS_FACTOR
    with PeakRSS() as peak:
        while len(clean) < case["repeats"] and len(times) < attempts:
            with Interference() as noise:
                start = time.perf_counter()
                out = run(images, targets, batch)
                times.append(time.perf_counter() - start)
            others.append(noise.share)
            cpu.append(noise.own_cpu)
            if noise.share <= CLEAN_SHARE:
                clean.append(times[-1])
    # the median of the repeats that other processes left alone; of all if too few were
    used = clean if len(clean) >= max(1, (case["repeats"] + 1) // 2) else times
    median = statistics.median(used)
    result.update(
        times_s=times,
        other_load=others,
        cpu_s=cpu,
        clean_repeats=len(clean),
        median_of="clean" if used is clean else "all (machine busy)",
        median_s=median,
        images_per_s=n / median,
        cpu_s_per_image=statistics.median(cpu) / n,
        peak_above_model_mb=(max(warm_peak.peak, peak.peak) - rss_model) / 1e6,
        warm_peak_above_model_mb=(warm_peak.peak - rss_model) / 1e6,
        run_peak_above_warm_mb=(peak.peak - rss_warm) / 1e6,
        rss_warm_mb=rss_warm / 1e6,
        peak_method=peak.method,
        output_shape=list(np.shape(out)),
        output_mb=np.asarray(out).nbytes / 1e6,
        tf=tf.__version__,
        keras=keras.__version__,
        loadavg_after=Path("/proc/loadavg").read_text().split()[:3],
        status="ok",
    )
    if case["method"] == "scorecam":
        result["s_per_image_channel"] = median / (n * case["max_channels"])
    return result


# --------------------------------------------------------------------------------------------
# interleaved: every method in one process, repeat by repeat (issue 15's side-by-side table)
# --------------------------------------------------------------------------------------------

INTERLEAVED = ("floor-predict", "floor-compiled", "floor-backward", "gradcam", "gradcam-new",
               "gradcam-xla", "cam", "cam-new", "xplique", "tf-keras-vis")
INTERLEAVED_IMAGES = {"vgg16": 32, "cam_cnn": 64}


def run_interleaved(model_name: str, batch: int, repeats: int) -> dict[str, Any]:
    """Time every method of :data:`INTERLEAVED` on one model in this process, round-robin.

    Each repeat runs every method once (starting one method later each repeat, so no method
    always follows the same one); the ratios are of medians over the repeats, all measured
    under the same load.
    """
    warnings.filterwarnings("ignore")
    import keras
    import numpy as np
    import tensorflow as tf

    built = build_model(model_name)
    n = INTERLEAVED_IMAGES[model_name]
    images = make_images(n, built["channels"])
    targets = make_targets(n)
    runners: dict[str, Callable[..., Any]] = {}
    info: dict[str, Any] = {}
    for method in INTERLEAVED:
        case = {"method": method, "model": model_name, "batch": batch, "images": n}
        try:
            runners[method], extra = make_runner(case, built)
            info[method] = extra
        except Exception as err:
            info[method] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    warmup: dict[str, float] = {}
    for method, run in runners.items():
        start = time.perf_counter()
        run(images[:batch], targets[:batch], batch)
        warmup[method] = time.perf_counter() - start
    times: dict[str, list[float]] = {m: [] for m in runners}
    loads: dict[str, list[float]] = {m: [] for m in runners}
    order = list(runners)
    for repeat in range(repeats):
        shift = repeat % len(order)
        for method in order[shift:] + order[:shift]:
            with Interference() as noise:
                start = time.perf_counter()
                runners[method](images, targets, batch)
                times[method].append(time.perf_counter() - start)
            loads[method].append(noise.share)
    medians = {m: statistics.median(t) for m, t in times.items()}
    return {"model": model_name, "batch": batch, "images": n, "repeats": repeats,
            "times_s": times, "other_load": loads, "median_s": medians,
            "images_per_s": {m: n / t for m, t in medians.items()}, "warmup_s": warmup,
            "info": info, "model_source": built["source"], "layer": built["layer"],
            "tf": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "machine": machine(), "loadavg_after": Path("/proc/loadavg").read_text().split()[:3]}


def interleaved_table(row: dict[str, Any]) -> str:
    """One model's interleaved results as a Markdown table with the issue's ratios."""
    med = row["median_s"]
    predict_floor = min(med[m] for m in ("floor-predict", "floor-compiled") if m in med)
    lines = [f"**{row['model']}**, batch {row['batch']}, {row['images']} images, median of "
             f"{row['repeats']} interleaved repeats (layer `{row['layer']}`)", "",
             "| method | img/s | time / bare forward+backward | time / bare predict | "
             "speed / xplique | warm-up (s) | others' CPU |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for method in INTERLEAVED:
        if method not in med:
            error = row["info"].get(method, {}).get("error", "not run")
            lines.append(f"| {_LABEL[method]} | could not run: {error} | | | | | |")
            continue
        back = med.get("floor-backward")
        xpl = med.get("xplique")
        loads = row["other_load"][method]
        lines.append(
            f"| {_LABEL[method]} | {row['images_per_s'][method]:.2f} | "
            f"{med[method] / back:.2f}x | {med[method] / predict_floor:.2f}x | "
            f"{(xpl / med[method]) if xpl else float('nan'):.2f}x | "
            f"{row['warmup_s'][method]:.2f} | {min(loads):.0%}-{max(loads):.0%} |"
            if back else f"| {_LABEL[method]} | {row['images_per_s'][method]:.2f} | | | | | |")
    return "\n".join(lines)


def _child_interleaved(spec: str) -> None:
    model_name, batch, repeats = spec.split(":")
    result = run_interleaved(model_name, int(batch), int(repeats))
    print("RESULT " + json.dumps(result), flush=True)


def main_interleaved(out: Path, repeats: int, batch: int, redo: bool,
                     models: tuple[str, ...] = MODELS) -> int:
    """Run (or reuse) each model's interleaved row and print the tables."""
    rows = {r["model"]: r for r in read_jsonl(out)} if out.is_file() else {}
    for model_name in MODELS:
        if model_name not in models or (model_name in rows and not redo):
            print(f"{model_name}: done (use --redo to run again)", flush=True)
            continue
        print(f"{model_name}: running {len(INTERLEAVED)} methods x {repeats} repeats ...",
              flush=True)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED=str(SEED))
        command = [sys.executable, str(Path(__file__).resolve()), "--_interleaved",
                   f"{model_name}:{batch}:{repeats}"]
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=CASE_TIMEOUT_S * 3)
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if not lines:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        rows[model_name] = json.loads(lines[-1][len("RESULT "):])
        with out.open("a") as handle:
            handle.write(json.dumps(rows[model_name]) + "\n")
    for model_name in MODELS:
        if model_name in rows:
            print()
            print(interleaved_table(rows[model_name]))
    return 0


def _child(case_json: str) -> None:
    case = json.loads(case_json)
    try:
        result = run_case(case)
    except Exception as err:  # recorded as "could not run"
        import traceback

        traceback.print_exc()
        result = {**case, "status": "failed",
                  "error": f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
                  if str(err).strip() else type(err).__name__}
    print("RESULT " + json.dumps(result), flush=True)


def spawn(case: dict[str, Any], log: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONHASHSEED"] = str(SEED)
    if case.get("variant") == "xla":  # XLA auto-clustering on CPU, switched on from outside
        env["TF_XLA_FLAGS"] = "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"
    command = [sys.executable, str(Path(__file__).resolve()), "--_case", json.dumps(case)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=CASE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        _append_log(log, case, "timed out")
        return {**case, "status": "failed", "error": f"timed out after {CASE_TIMEOUT_S} s"}
    _append_log(log, case, done.stdout + done.stderr)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])[:300]
    return {**case, "status": "failed", "error": f"exit {done.returncode}: {tail}"}


def _append_log(log: Path, case: dict[str, Any], text: str) -> None:
    with log.open("a") as handle:
        handle.write(f"===== {describe(case)}\n{text}\n")


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

_ORDER = ["floor-compiled", "floor-predict", "floor-backward", "keras-loop", "gradcam",
          "gradcam-new", "gradcam-xla", "cam", "cam-new", "gradcampp",
          "hirescam", "layercam", "scorecam", "tf-keras-vis", "xplique"]
_LABEL = {
    "floor-compiled": "floor: compiled `model(x)`",
    "floor-predict": "floor: `model.predict`",
    "floor-backward": "bare compiled forward+backward",
    "keras-loop": "Keras example, per-image loop",
    "gradcam-new": "cxrexplain GradCAM, new explainer per call",
    "gradcam-xla": "cxrexplain GradCAM, pass compiled by XLA",
    "cam-new": "cxrexplain CAM, new explainer per call",
    "gradcam": "cxrexplain GradCAM",
    "cam": "cxrexplain CAM",
    "gradcampp": "cxrexplain GradCAM++",
    "hirescam": "cxrexplain HiResCAM",
    "layercam": "cxrexplain LayerCAM",
    "scorecam": "cxrexplain ScoreCAM (64 ch.)",
    "tf-keras-vis": "tf-keras-vis Gradcam",
    "xplique": "xplique GradCAM",
}


def noisy(row: dict[str, Any], share: float) -> bool:
    """Whether other processes used more than ``share`` of the CPU while the row was timed."""
    loads = row.get("other_load", [0])
    clean = sorted(loads)[: max(1, (row.get("repeats", 1) + 1) // 2)]
    return row.get("status") == "ok" and max(clean) > share


def latest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last result of each case (a rerun appends a new line)."""
    by_key = {case_key(r): r for r in rows}
    return list(by_key.values())


def _lookup(rows: list[dict[str, Any]], **want: Any) -> dict[str, Any] | None:
    for row in rows:
        if row.get("status") == "ok" and all(row.get(k) == v for k, v in want.items()):
            return row
    return None


def _speed(row: dict[str, Any], basis: str) -> float:
    """Images per second: wall clock (``"wall"``) or per CPU-second of this process
    (``"cpu"``, insensitive to other processes sharing the cores)."""
    if basis == "cpu":
        return 1.0 / row["cpu_s_per_image"]
    return float(row["images_per_s"])


def floor_ips(rows: list[dict[str, Any]], model: str, batch: int, basis: str = "wall",
              variant: str | None = None) -> float | None:
    """The floor: the faster of ``model.predict`` and the compiled forward at that batch."""
    methods = ("floor-compiled",) if variant else ("floor-compiled", "floor-predict")
    best = [_speed(r, basis) for r in rows if r.get("status") == "ok"
            and r["kind"] == "speed" and r["model"] == model and r["batch"] == batch
            and r.get("variant") == variant and r["method"] in methods]
    return max(best) if best else None


def _pair(a: dict[str, Any] | None, b: dict[str, Any] | None, *, invert: bool = False,
          floor: tuple[float | None, float | None] | None = None) -> str:
    """``wall (cpu)`` ratio of row a's speed to row b's (or the floor's to a's)."""
    if a is None:
        return "n/a"
    values = []
    for index, basis in enumerate(("wall", "cpu")):
        mine = _speed(a, basis)
        other = floor[index] if floor is not None else (_speed(b, basis) if b else None)
        if not other:
            return "n/a"
        values.append(other / mine if invert else mine / other)
    return f"{values[0]:.2f} ({values[1]:.2f})"


def speed_table(rows: list[dict[str, Any]], model: str) -> str:
    speed = [r for r in rows if r["kind"] == "speed" and r["model"] == model]
    loop = _lookup(speed, method="keras-loop")
    lines = [
        "| method | batch | images | img/s (median) | CPU ms/img | repeat times (s) | "
        "peak RSS above model (MB) | x per-image loop | time / floor | x xplique | "
        "others' CPU |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    speed.sort(key=lambda r: (bool(r.get("variant")), _ORDER.index(r["method"]), r["batch"]))
    for row in speed:
        label = _LABEL[row["method"]] + (f" [{row['variant']}]" if row.get("variant") else "")
        if row.get("status") != "ok":
            lines.append(f"| {label} | {row['batch']} | {row['images']} | could not run: "
                         f"{row.get('error', '?')} | | | | | | | |")
            continue
        variant = row.get("variant")
        floor = (floor_ips(rows, model, row["batch"], "wall", variant),
                 floor_ips(rows, model, row["batch"], "cpu", variant))
        xpl = _lookup(speed, method="xplique", batch=row["batch"], variant=None)
        extra = ""
        if row["method"] == "scorecam":
            extra = f" ({row['s_per_image_channel'] * 1e3:.2f} ms/img/ch)"
        lines.append(
            f"| {label} | {row['batch']} | {row['images']} | "
            f"{row['images_per_s']:.2f}{extra} | {row['cpu_s_per_image'] * 1e3:.0f} | "
            f"{min(row['times_s']):.2f}-{max(row['times_s']):.2f} | "
            f"{row['peak_above_model_mb']:.0f} | {_pair(row, loop)} | "
            f"{_pair(row, None, invert=True, floor=floor)} | {_pair(row, xpl)} | "
            f"{_load_text(row)} |"
        )
    return "\n".join(lines)


def _load_text(row: dict[str, Any]) -> str:
    loads = row.get("other_load", [0])
    text = f"{min(loads):.0%}-{max(loads):.0%}"
    if row.get("median_of", "clean") != "clean":
        text += " busy"
    return text


def memory_table(rows: list[dict[str, Any]]) -> str:
    mem = [r for r in rows if r["kind"] == "memory"]
    mem.sort(key=lambda r: (_ORDER.index(r["method"]), r["images"]))
    batch = mem[0]["batch"] if mem else "?"
    lines = [
        f"| method (VGG16, batch_size {batch}) | images | RSS: model + inputs (MB) | "
        "peak above that (MB) | of which in the warm-up batch (MB) | change vs fewer images "
        "(MB) | output array (MB) | img/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    smallest: dict[str, float] = {}
    for row in mem:
        label = _LABEL[row["method"]]
        if row.get("status") != "ok":
            lines.append(f"| {label} | {row['images']} | could not run: {row.get('error')} "
                         "| | | | | |")
            continue
        peak = row["peak_above_model_mb"]
        base = smallest.setdefault(row["method"], peak)
        change = "" if base is peak else f"{peak - base:+.0f}"
        lines.append(
            f"| {label} | {row['images']} | {row['rss_model_mb']:.0f} | {peak:.0f} | "
            f"{row['warm_peak_above_model_mb']:.0f} | {change} | {row['output_mb']:.0f} | "
            f"{row['images_per_s']:.2f} |"
        )
    return "\n".join(lines)


def targets_report(rows: list[dict[str, Any]]) -> str:
    out = []
    plain = [r for r in rows if r["kind"] == "speed" and not r.get("variant")]
    batches = sorted({r["batch"] for r in plain if r["method"] == "gradcam"})

    def verdict(ok: bool, parts: list[str]) -> str:
        return ("met" if ok else "MISSED") if parts else "no data"

    def ratios(model: str, method: str, against: Callable[[int, str], float | None],
               invert: bool = False) -> list[tuple[int, float, float]]:
        found = []
        for b in batches:
            row = _lookup(plain, model=model, method=method, batch=b)
            ref = (against(b, "wall"), against(b, "cpu"))
            if row and ref[0] and ref[1]:
                wall, cpu = _speed(row, "wall") / ref[0], _speed(row, "cpu") / ref[1]
                found.append((b, 1 / wall if invert else wall, 1 / cpu if invert else cpu))
        return found

    def text(found: list[tuple[int, float, float]]) -> str:
        return ", ".join(f"b{b}: {w:.2f}x ({c:.2f}x CPU)" for b, w, c in found)

    for model, need in (("vgg16", 4.0), ("cam_cnn", 8.0)):
        loop = _lookup(plain, model=model, method="keras-loop")
        found = ratios(model, "gradcam", lambda b, basis, loop=loop: _speed(loop, basis)
                       if loop else None)
        ok = any(w >= need for _, w, _ in found)
        out.append(f"- Grad-CAM >= {need:g}x the per-image loop on {model}: "
                   f"{verdict(ok, found)} at the best batch size ({text(found)})")
    for model in MODELS:
        found = ratios(model, "gradcam", lambda b, basis, model=model: (
            _speed(x, basis) if (x := _lookup(plain, model=model, method="xplique", batch=b))
            else None))
        ok = bool(found) and all(w > 1 for _, w, _ in found)
        out.append(f"- Grad-CAM faster than xplique on {model}: {verdict(ok, found)} "
                   f"({text(found) or 'xplique could not run'})")
    for method, limit in (("gradcam", 1.3), ("cam", 1.1)):
        for model in MODELS:
            found = ratios(model, method, lambda b, basis, model=model: floor_ips(
                rows, model, b, basis), invert=True)
            ok = bool(found) and all(w <= limit for _, w, _ in found)
            out.append(f"- {method} within {limit}x of the predict floor on {model}: "
                       f"{verdict(ok, found)} (time / floor: {text(found)})")
    memory = [r for r in rows if r["kind"] == "memory" and r.get("status") == "ok"]
    sizes = sorted({r["images"] for r in memory})
    ours = {n: _lookup(memory, method="gradcam", images=n) for n in sizes}
    floor = {n: _lookup(memory, method="floor-compiled", images=n) for n in sizes}
    if sizes and ours[sizes[-1]]:
        big, small = sizes[-1], sizes[0]
        mine = ours[big]["peak_above_model_mb"]
        bare = floor[big]["peak_above_model_mb"] if floor[big] else float("nan")
        growth = mine - ours[small]["peak_above_model_mb"] if ours[small] else float("nan")
        out.append(
            f"- memory for {big} images (batch_size {ours[big]['batch']}) under 100 MB above "
            f"the model: {'met' if mine - bare < 100 else 'MISSED'} when 'the model' includes "
            f"the forward pass of one batch ({mine - bare:+.0f} MB vs the bare forward pass); "
            f"MISSED in the literal sense (peak {mine:.0f} MB above model + inputs, the bare "
            f"forward pass alone needs {bare:.0f}); growth from {small} to {big} images: "
            f"{growth:+.0f} MB (the {big} heatmaps themselves are "
            f"{ours[big]['output_mb']:.0f} MB)"
        )
    return "\n".join(out)


def report(rows: list[dict[str, Any]]) -> str:
    parts = []
    for model in MODELS:
        if any(r["model"] == model and r["kind"] == "speed" for r in rows):
            parts.append(f"### {model}\n\n{speed_table(rows, model)}\n")
    if any(r["kind"] == "memory" for r in rows):
        parts.append(f"### Memory\n\n{memory_table(rows)}\n")
    parts.append(f"### Targets\n\n{targets_report(rows)}\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = _status_meminfo()
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": mem, "python": platform.python_version()}


def _status_meminfo() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 1 and 8, fewer images and repeats")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSONL results file (default benchmarks/out/explain_speed"
                             "[.quick].jsonl)")
    parser.add_argument("--report", action="store_true", help="only print the tables")
    parser.add_argument("--retry-failed", action="store_true",
                        help="rerun cases recorded as failed")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory cases")
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA variants")
    parser.add_argument("--redo-noisy", type=float, default=None, metavar="SHARE",
                        help="rerun cases during which other processes used more than this "
                             "share of the CPU (median over repeats, e.g. 0.15)")
    parser.add_argument("--only", default=None,
                        help="run only the cases whose description has all these words "
                             "(e.g. 'vgg16 xplique b=8')")
    parser.add_argument("--interleaved", action="store_true",
                        help="issue 15's table: every method in one process per model, "
                             "repeat by repeat (results in out/explain_speed_interleaved.jsonl)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of --interleaved")
    parser.add_argument("--redo", action="store_true", help="run --interleaved again")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="models of --interleaved (comma-separated)")
    parser.add_argument("--_case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_interleaved", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._case is not None:
        _child(args._case)
        return 0
    if args._interleaved is not None:
        _child_interleaved(args._interleaved)
        return 0
    if args.interleaved:
        target = args.out or OUT_DIR / "explain_speed_interleaved.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        return main_interleaved(target, args.repeats, 32, args.redo,
                                tuple(m.strip() for m in args.models.split(",")))

    out = args.out or OUT_DIR / ("explain_speed.quick.jsonl" if args.quick
                                 else "explain_speed.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.report:
        print(report(latest(read_jsonl(out))))
        return 0

    cases = plan(args.quick, memory=not args.no_memory, xla=not args.no_xla)
    if args.only:
        words = args.only.split()
        cases = [c for c in cases if all(w in describe(c).split() for w in words)]
    done = {case_key(r): r for r in read_jsonl(out)
            if (r.get("status") == "ok" or not args.retry_failed)
            and not (args.redo_noisy is not None and noisy(r, args.redo_noisy))}
    log = out.with_suffix(".log")
    print(f"machine: {machine()}", flush=True)
    print(f"{len(cases)} cases, results in {out} (log {log})", flush=True)
    start = time.perf_counter()
    for index, case in enumerate(cases, start=1):
        tag = f"[{index:2d}/{len(cases)}] {describe(case)}"
        if case_key(case) in done:
            print(f"{tag}  skip (done)", flush=True)
            continue
        began = time.perf_counter()
        result = spawn(case, log)
        result["wall_s"] = time.perf_counter() - began
        with out.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
        if result.get("status") == "ok":
            detail = (f"{result['images_per_s']:8.2f} img/s  peak +"
                      f"{result['peak_above_model_mb']:.0f} MB")
        else:
            detail = f"could not run: {result.get('error')}"
        print(f"{tag}  {detail}  [{result['wall_s']:.0f} s, total "
              f"{time.perf_counter() - start:.0f} s]", flush=True)
    print()
    print(report(latest(read_jsonl(out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
