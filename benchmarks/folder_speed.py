"""Explaining a folder of 10,000 films: flat memory, and throughput against in-memory batches.

Issue 15. A folder of symbolic links to the shared X-rays (each of the 886 films linked
about 11 times, at native size) is explained with ``cxrexplain explain``:

* **memory**: the command's peak RSS (the kernel's ``ru_maxrss`` of the child process) on the
  first 1,000 links and on all 10,000; the goal is < 50 MB apart;
* **throughput**: in one process, timed side by side (alternating, median of the repeats),
  the engine of the command (:func:`cxrexplain.batch.explain_to_folder`: read, explain, draw,
  write PNGs and the CSV) on 1,000 films against explaining the same 1,000 films already in
  memory as ``(32, H, W, 1)`` batches (``explainer.explain(batch)``, nothing read or written).
  The goal is a ratio <= 1.2.

The model is ``cx.models.build("cam_cnn", input_shape=(224, 224, 1), num_classes=3)`` with its
initial weights (speed does not depend on training), saved under ``benchmarks/out``. Results
are appended to ``benchmarks/out/folder_speed.jsonl`` one line per part; a rerun skips the
parts already there (``--redo`` runs them again).

Usage::

    python benchmarks/folder_speed.py            # ~10 min on 2 cores
    python benchmarks/folder_speed.py --report   # print the results so far
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _results import linked_films, machine, read_jsonl, untrained_cam_cnn

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = OUT / "folder_speed.jsonl"
WORK = OUT / "folder_speed"
SIZE = 224
BATCH = 32


def make_folder(count: int) -> Path:
    """``WORK/films_<count>``: ``count`` links to the shared films, 1,000 per sub-folder."""
    return linked_films(WORK / f"films_{count}", count, per_folder=1000)


def make_model() -> Path:
    return untrained_cam_cnn(WORK / "cam_cnn_224.keras", SIZE)


def command_memory(count: int) -> dict[str, Any]:
    """Run ``cxrexplain explain`` on ``count`` films in a child process; its peak RSS."""
    folder = make_folder(count)
    model = make_model()
    out = WORK / f"explained_{count}"
    shutil.rmtree(out, ignore_errors=True)
    command = ["cxrexplain", "explain", str(model), str(folder), "--out", str(out),
               "--method", "gradcam", "--batch-size", str(BATCH), "--no-progress"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    stderr = child.stderr.read() if child.stderr else ""
    if status != 0:
        raise SystemExit(f"cxrexplain explain failed ({status}): {stderr[-2000:]}")
    rows = (out / "predictions.csv").read_text().splitlines()
    overlays = sum(1 for _ in (out / "overlays").rglob("*.png"))
    shutil.rmtree(out, ignore_errors=True)
    return {"part": f"command_{count}", "films": count, "peak_rss_mb": usage.ru_maxrss / 1024,
            "wall_s": wall, "films_per_s_end_to_end": count / wall, "csv_rows": len(rows) - 1,
            "overlays": overlays}


def throughput(count: int, repeats: int, threads: int | None = None) -> dict[str, Any]:
    """The folder engine vs in-memory batches on the same films, alternating, in-process.

    ``threads`` limits TensorFlow's intra-op threads (None: its default, every core), to show
    what the reader and writer threads gain when the model leaves a core free for them.
    """
    import numpy as np
    import tensorflow as tf

    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    import cxrexplain as cx
    from cxrexplain.batch import explain_to_folder

    folder = make_folder(count)
    clf = cx.Classifier.load(make_model())
    paths = cx.io.find_images(folder)
    started = time.perf_counter()
    films = clf.prepare(paths)  # (count, 224, 224, 1) float32, loaded once
    load_s = time.perf_counter() - started
    explainer = cx.GradCAM(clf)
    explainer.explain(films[:BATCH])  # trace once; both sides then share the pass

    def in_memory() -> None:
        for start in range(0, count, BATCH):
            cx.GradCAM(clf).explain(films[start : start + BATCH], batch_size=BATCH)

    def from_folder() -> None:
        out = WORK / "explained_throughput"
        shutil.rmtree(out, ignore_errors=True)
        explain_to_folder(clf, paths, out, method="gradcam", batch_size=BATCH, progress=False)

    times: dict[str, list[float]] = {"in_memory": [], "folder": []}
    for repeat in range(repeats):
        order = [("in_memory", in_memory), ("folder", from_folder)]
        for name, run in order if repeat % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
            print(f"  repeat {repeat + 1}/{repeats} {name:9s} {times[name][-1]:6.1f} s",
                  flush=True)
    shutil.rmtree(WORK / "explained_throughput", ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    # each repeat runs the two back to back: the ratio within a repeat shares its load
    pairs = [f / m for f, m in zip(times["folder"], times["in_memory"], strict=True)]
    part = f"throughput_{count}" + ("" if threads is None else f"_threads{threads}")
    return {"part": part, "films": count, "repeats": repeats, "tf_threads": threads,
            "times_s": times,
            "median_s": medians, "films_per_s": {k: count / v for k, v in medians.items()},
            "ratio_per_repeat": pairs, "ratio_folder_to_memory": statistics.median(pairs),
            "load_to_memory_s": load_s, "cpu_user_s": resource.getrusage(
                resource.RUSAGE_SELF).ru_utime, "films_shape": list(np.shape(films))}


def report(rows: list[dict[str, Any]]) -> str:
    by = {r["part"]: r for r in rows}
    lines = ["| part | films | result |", "|---|---:|---|"]
    for key in ("command_1000", "command_10000"):
        if key in by:
            r = by[key]
            lines.append(f"| `cxrexplain explain` peak RSS | {r['films']} | "
                         f"{r['peak_rss_mb']:.0f} MB ({r['wall_s']:.0f} s end to end, "
                         f"{r['films_per_s_end_to_end']:.1f} films/s; {r['csv_rows']} CSV rows, "
                         f"{r['overlays']} overlays) |")
    if "command_1000" in by and "command_10000" in by:
        gap = by["command_10000"]["peak_rss_mb"] - by["command_1000"]["peak_rss_mb"]
        lines.append(f"| peak RSS, 10,000 minus 1,000 | | **{gap:+.1f} MB** (goal < 50) |")
    for key in sorted(k for k in by if k.startswith("throughput_")):
        r = by[key]
        fps = r["films_per_s"]
        each = ", ".join(f"{x:.2f}" for x in r.get("ratio_per_repeat", []))
        threads = r.get("tf_threads")
        setting = "TensorFlow's default threads" if threads is None else (
            f"TensorFlow limited to {threads} thread")
        lines.append(f"| folder engine vs in-memory batches, {setting} (median of "
                     f"{r['repeats']} back-to-back pairs, alternating order) | {r['films']} | "
                     f"{fps['folder']:.1f} vs {fps['in_memory']:.1f} films/s (medians); time "
                     f"ratio per pair {each}: median **{r['ratio_folder_to_memory']:.2f}x** "
                     "(goal <= 1.2) |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--redo", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--films", type=int, default=10_000)
    parser.add_argument("--tf-threads", type=int, default=None,
                        help="also measure the throughput with TensorFlow on this many threads")
    args = parser.parse_args()
    rows = read_jsonl(RESULTS) if RESULTS.is_file() else []
    if args.report:
        print(report(rows))
        return 0
    done = {r["part"] for r in rows} if not args.redo else set()
    print(f"machine: {machine()}", flush=True)
    parts = [("command_1000", lambda: command_memory(1000)),
             (f"command_{args.films}", lambda: command_memory(args.films)),
             ("throughput_1000", lambda: throughput(1000, args.repeats))]
    if args.tf_threads is not None:
        parts.append((f"throughput_1000_threads{args.tf_threads}",
                      lambda: throughput(1000, args.repeats, args.tf_threads)))
    for name, run in parts:
        if name in done:
            print(f"{name}: done", flush=True)
            continue
        print(f"{name}: running", flush=True)
        result = {**run(), "machine": machine()}
        rows.append(result)
        OUT.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
        print(f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'times_s'})}",
              flush=True)
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
