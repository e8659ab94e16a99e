"""Training throughput (issue 5): images per second of ``cx.training.fit``, with and without
mixed precision and XLA, measured side by side in one run.

Runs unchanged on a CPU-only machine and on a GPU machine: on a GPU, ``mixed_precision="auto"``
and ``jit_compile="auto"`` switch both on, and this benchmark measures each switch on its own
against plain float32. On a CPU, ``mixed_float16`` is emulated (slow) and XLA's CPU
convolutions do not use oneDNN: the figures say what a user would get by forcing them there.

Each (model, configuration, round) runs in a fresh Python process (a dtype policy and XLA
state are process-wide): build the model, make the images (synthetic phantoms, so the benchmark
needs no data), one warm-up epoch (tracing, compilation), then ``--epochs`` timed epochs; the
figure is the median epoch's images per second. Configurations are interleaved round by round
(A B C D, A B C D, ...) so that drift in the machine's load hits all of them alike; the table
gives the median over rounds and the ratio to float32 without XLA measured in the same rounds.
Results go one JSON line per (model, configuration, round) to
``benchmarks/out/fit_speed.jsonl``; a rerun skips what is there. The table is written as the
section ``## Training throughput (issue 5)`` of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/fit_speed.py                    # cam_cnn and mobilenet_v2, 3 rounds
    python benchmarks/fit_speed.py --models cam_cnn --rounds 5
    python benchmarks/fit_speed.py --quick            # smoke test (tiny, separate output)
    python benchmarks/fit_speed.py --report           # table from the results so far
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _results import machine, publish, read_jsonl

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
SECTION = "## Training throughput (issue 5)"
CONFIGS: dict[str, dict[str, bool]] = {
    "float32": {"mixed_precision": False, "jit_compile": False},
    "mixed_float16": {"mixed_precision": True, "jit_compile": False},
    "float32 + XLA": {"mixed_precision": False, "jit_compile": True},
    "mixed_float16 + XLA": {"mixed_precision": True, "jit_compile": True},
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["cam_cnn", "mobilenet_v2"])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=None,
                        help="default: all four on a GPU; on a CPU all but plain "
                             "mixed_float16 (emulated float16 convolutions: 0.5 img/s at 64 px "
                             "against 98 for float32 in a smoke run, a 94 s warm-up)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny and fast")
    parser.add_argument("--report", action="store_true", help="only write the table")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement as JSON
    args = parser.parse_args(argv)
    if args.configs is None:
        args.configs = list(CONFIGS) if _has_gpu() else [
            c for c in CONFIGS if c != "mixed_float16"]
    if args.quick:
        args.image_size, args.images, args.epochs, args.rounds = 64, 64, 1, 1
    tag = "quick" if args.quick else f"{args.image_size}px_{args.images}img_bs{args.batch_size}"
    args.jsonl = OUT / f"fit_speed_{tag}.jsonl"
    args.results_md = OUT / "fit_speed_quick.md" if args.quick else RESULTS
    return args


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# ---------------------------------------------------------------------------- one process
def measure(args: argparse.Namespace, model_name: str, config: str) -> dict[str, Any]:
    """Build, warm up and time ``fit`` in this process; return the figures."""
    import keras
    import numpy as np

    import cxrexplain as cx

    keras.utils.set_random_seed(0)
    size = args.image_size
    data = cx.synthetic.generate(args.images, size=size, seed=0)
    model = cx.models.build(model_name, input_shape=(size, size, 1), num_classes=2)
    cx.models.compile_recommended(model)
    import tensorflow as tf

    train = (tf.data.Dataset.from_tensor_slices((data.images, data.labels))
             .shuffle(args.images, seed=0).batch(args.batch_size).cache()
             .prefetch(tf.data.AUTOTUNE))

    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            times.append(time.perf_counter() - self.start)

    cpu0 = time.process_time()
    cx.training.fit(model, train, epochs=1 + args.epochs, class_weight=None,
                    callbacks=[Timer()], early_stopping_patience=None, reduce_lr_patience=None,
                    verbose=0, **CONFIGS[config])
    cpu = time.process_time() - cpu0
    timed = times[1:]
    seconds = statistics.median(timed)
    return {
        "model": model_name, "config": config, "image_size": size, "images": args.images,
        "batch_size": args.batch_size, "warmup_s": round(times[0], 3),
        "epoch_s": [round(t, 3) for t in timed], "images_per_second": args.images / seconds,
        "cpu_s_total": round(cpu, 2),
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "finite": bool(np.isfinite(model.predict(data.images[:4], verbose=0)).all()),
    }


# ------------------------------------------------------------------------------- driver
def run_all(args: argparse.Namespace) -> None:
    args.jsonl.parent.mkdir(parents=True, exist_ok=True)
    have = {(r["model"], r["config"], r["round"]) for r in read_jsonl(args.jsonl)}
    for round_ in range(args.rounds):
        for model_name in args.models:
            for config in args.configs:
                key = (model_name, config, round_)
                if key in have:
                    continue
                print(f"round {round_ + 1}/{args.rounds}: {model_name}, {config} ...",
                      end=" ", flush=True)
                command = [sys.executable, __file__, "--one", json.dumps([model_name, config]),
                           "--image-size", str(args.image_size), "--images", str(args.images),
                           "--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
                if result.returncode != 0 or not lines:
                    tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                    record = {"model": model_name, "config": config, "error": " | ".join(tail)}
                    print("failed:", record["error"][:300], flush=True)
                else:
                    record = json.loads(lines[-1])
                    print(f"{record['images_per_second']:.1f} img/s", flush=True)
                record["round"] = round_
                with args.jsonl.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")


def report(args: argparse.Namespace) -> str:
    everything = read_jsonl(args.jsonl)
    records = [r for r in everything if "error" not in r]
    failed = [r for r in everything if "error" in r]
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    device = sorted({r["device"] for r in records}) or ["?"]
    lines = [
        SECTION, "",
        f"`python benchmarks/fit_speed.py{' --quick' if args.quick else ''}"
        f"{'' if args.quick else f' --image-size {args.image_size} --images {args.images}'}` "
        f"(results as of {when}; `--models`/`--rounds` to run more); "
        f"{machine()}; device used by TensorFlow: {', '.join(device)}.", "",
        f"`cx.training.fit` on {args.images} synthetic phantoms of {args.image_size}x"
        f"{args.image_size}x1 per epoch, batch {args.batch_size}, `compile_recommended` "
        "(AdamW), one warm-up epoch then "
        f"{args.epochs} timed epochs per process; each row is the median over its rounds "
        "(configurations interleaved round by round, a fresh process per measurement). "
        "*x float32* is the ratio to plain float32 of the same model in the same round, then "
        "the median.", "",
        "| model | configuration | rounds | images/s (median) | range | x float32 "
        "| warm-up epoch (s) |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for model_name in args.models:
        base = {r["round"]: r["images_per_second"] for r in records
                if r["model"] == model_name and r["config"] == "float32"}
        for config in args.configs:
            rows = [r for r in records if r["model"] == model_name and r["config"] == config]
            if not rows:
                continue
            speeds = [r["images_per_second"] for r in rows]
            ratios = [r["images_per_second"] / base[r["round"]] for r in rows
                      if r["round"] in base]
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
            warm = statistics.median(r["warmup_s"] for r in rows)
            lines.append(
                f"| {model_name} | {config} | {len(rows)} | {statistics.median(speeds):.1f} | "
                f"{min(speeds):.1f}-{max(speeds):.1f} | {ratio} | {warm:.1f} |")
    if "mixed_float16" not in args.configs:
        lines += ["", "Plain `mixed_float16` (without XLA) is left out on a CPU: in the smoke run "
                  "(`--quick`, 64 px, 64 images) it trained at 0.5 img/s against 98 for float32, "
                  "after a 94 s warm-up, as TensorFlow's CPU kernels emulate float16 "
                  "convolutions. On a GPU every configuration runs; `fit` picks mixed "
                  "precision and XLA there by default."]
    if failed:
        lines += ["", "Failed measurements: " + "; ".join(
            f"{r['model']} {r['config']}: {r['error'][:200]}" for r in failed)]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.one:
        model_name, config = json.loads(args.one)
        print(json.dumps(measure(args, model_name, config)), flush=True)
        return 0
    if not args.report:
        run_all(args)
    publish(args.results_md, SECTION, report(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
