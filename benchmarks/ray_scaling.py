"""Ray Data scaling: 1 against 2 Ray workers explaining 2,000 films, and memory per worker.

Issue 17. A folder of symbolic links to the shared X-rays (the 886 films linked in turn up to
2,000, at native size, 256 px) is explained with Grad-CAM by the 224 px ``cam_cnn``
(``cx.models.build("cam_cnn", input_shape=(224, 224, 1), num_classes=3)``, initial weights:
speed does not depend on training). Each configuration runs in a fresh process and a fresh
local Ray (``num_cpus`` = the machine's cores):

* ``ray_1`` and ``ray_2``: 1 and 2 Ray actors of 1 CPU each. Each actor sizes TensorFlow's
  intra-op and inter-op pools to its 1 CPU (:class:`cxrexplain.distributed.Explain` does this
  by default; the table shows what the actors reported), so two actors on two cores do not
  fight over them. Two parts, each timed on its own:

  - *end to end*: :func:`cxrexplain.distributed.explain_dataset` as a user calls it (Ray
    start, actors loading the model, reading, explaining, Parquet written, Ray shut down);
  - *measured*: the same pipeline with a subclass of ``Explain`` that adds each batch's
    process id, finishing time and the process's peak RSS (``ru_maxrss``) to its rows: the
    steady rate (films finished after every actor's first batch, over that time) and the peak
    RSS of each actor.
* ``local_2threads``: no Ray, the ``Explain`` callable in this process with TensorFlow's two
  threads, batches of 32 (what one process gets from the two cores), for comparison.

Results are appended one JSON line per configuration to ``benchmarks/out/ray_scaling.jsonl``;
a rerun skips the configurations already there (``--redo`` runs them again), then writes the
section "Ray Data scaling (issue 17)" of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/ray_scaling.py            # ~6 min on 2 cores
    python benchmarks/ray_scaling.py --report   # the table from the results so far
    python benchmarks/ray_scaling.py --redo --gpus-per-worker 1   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _results import linked_films, machine, read_jsonl, untrained_cam_cnn, write_section

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = OUT / "ray_scaling.jsonl"
WORK = OUT / "ray_scaling"
SIZE = 224
BATCH = 32
HEATMAP = 64
CONFIGS = ("ray_1", "ray_2", "local_2threads")
HEADING = "## Ray Data scaling (issue 17)"


def make_folder(count: int) -> Path:
    """``WORK/films_<count>``: ``count`` links to the shared films, 500 per sub-folder."""
    return linked_films(WORK / f"films_{count}", count, per_folder=500)


def make_model() -> Path:
    return untrained_cam_cnn(WORK / "cam_cnn_224.keras", SIZE)


# ------------------------------------------------------------------ one configuration
def run_ray(workers: int, folder: Path, model: Path, gpus: float = 0.0) -> dict[str, Any]:
    """Both parts of a Ray configuration (in this fresh process)."""
    import numpy as np

    import cxrexplain as cx
    from cxrexplain.distributed import Explain, read_results
    from cxrexplain.distributed._ray import quiet_data_context, ray_session

    films = [os.path.abspath(p) for p in cx.distributed.list_films(folder)]
    end_to_end = WORK / f"parquet_e2e_{workers}"
    shutil.rmtree(end_to_end, ignore_errors=True)
    start = time.perf_counter()
    summary = cx.distributed.explain_dataset(
        films, model, method="gradcam", out=end_to_end, concurrency=workers, num_cpus=1,
        num_gpus=gpus, batch_size=BATCH, heatmap_size=HEATMAP, progress=False)
    e2e_s = time.perf_counter() - start

    class MeasuredExplain(Explain):
        """``Explain`` that adds the process id, the time and the peak RSS to each batch."""

        def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
            out = super().__call__(batch)
            count = len(out["error"])
            out["pid"] = np.full(count, os.getpid(), np.int64)
            out["done_at"] = np.full(count, time.time(), np.float64)
            out["rss_mb"] = np.full(
                count, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, np.float64)
            out["threads"] = np.full(count, self.threads or 0, np.int64)
            return out

    measured = WORK / f"parquet_measured_{workers}"
    shutil.rmtree(measured, ignore_errors=True)
    options = {"model": str(model), "method": "gradcam", "heatmap_size": HEATMAP,
               "batch_size": BATCH}
    start, start_epoch = time.perf_counter(), time.time()
    with ray_session(None) as ray, quiet_data_context(ray, progress=False):
        ray_up = time.perf_counter() - start
        items = [{"index": i, "path": p} for i, p in enumerate(films)]
        blocks = max(len(items) // (BATCH * 8), 2 * workers)
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            MeasuredExplain, fn_constructor_kwargs=options,
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1, batch_size=BATCH,
            **({"num_gpus": gpus} if gpus else {}))
        dataset.write_parquet(str(measured))
        cpus = ray.cluster_resources().get("CPU", 0)
    measured_s = time.perf_counter() - start
    table = read_results(measured, columns=["pid", "done_at", "rss_mb", "threads", "error"])
    pids = sorted(set(table["pid"].tolist()))
    first_done = max(float(table["done_at"][table["pid"] == p].min()) for p in pids)
    last_done = float(table["done_at"].max())
    after = int((table["done_at"] > first_done).sum())
    steady = after / (last_done - first_done) if last_done > first_done else float("nan")
    per_worker = [{"pid": p, "films": int((table["pid"] == p).sum()),
                   "peak_rss_mb": float(table["rss_mb"][table["pid"] == p].max()),
                   "threads": int(table["threads"][table["pid"] == p].max())} for p in pids]
    return {
        "config": f"ray_{workers}", "workers": workers, "films": len(films),
        "gpus_per_worker": gpus,
        "cluster_cpus": cpus, "e2e_s": e2e_s, "e2e_films_per_s": len(films) / e2e_s,
        "e2e_rows": summary.rows, "e2e_errors": summary.errors, "e2e_files": summary.files,
        "measured_s": measured_s, "ray_start_s": ray_up,
        "steady_films_per_s": steady, "steady_s_per_film": 1 / steady,
        "all_first_batches_done_after_s": first_done - start_epoch,
        "per_worker": per_worker, "errors": int(sum(1 for e in table["error"] if e)),
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_local(folder: Path, model: Path) -> dict[str, Any]:
    """The ``Explain`` callable in this process, TensorFlow's default (2) threads."""
    import numpy as np

    import cxrexplain as cx
    from cxrexplain.distributed import Explain

    explain = Explain(str(model), method="gradcam", heatmap_size=HEATMAP, batch_size=BATCH)
    films = np.array([str(p) for p in cx.distributed.list_films(folder)], object)
    explain({"path": films[:BATCH]})  # warm-up: traces the pass
    start = time.perf_counter()
    errors = 0
    for i in range(0, len(films), BATCH):
        out = explain({"path": films[i : i + BATCH]})
        errors += sum(1 for e in out["error"] if e)
    seconds = time.perf_counter() - start
    import tensorflow as tf

    return {"config": "local_2threads", "workers": 1, "films": len(films),
            "steady_films_per_s": len(films) / seconds, "steady_s_per_film": seconds / len(films),
            "seconds": seconds, "errors": errors,
            "threads": {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
                        "inter": tf.config.threading.get_inter_op_parallelism_threads()},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ------------------------------------------------------------------------------ report
def report(rows: list[dict[str, Any]]) -> str:
    by = {r["config"]: r for r in rows}
    lines = [
        "| configuration | end to end (Ray start, actors, Parquet) | steady rate | "
        "per-film cost | peak RSS per worker | TF threads per worker |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for key in ("ray_1", "ray_2"):
        if key not in by:
            continue
        r = by[key]
        rss = ", ".join(f"{w['peak_rss_mb']:.0f}" for w in r["per_worker"])
        threads = ", ".join(str(w["threads"] or "default") for w in r["per_worker"])
        films = ", ".join(str(w["films"]) for w in r["per_worker"])
        lines.append(
            f"| {r['workers']} Ray worker{'s' if r['workers'] > 1 else ''} x 1 CPU "
            f"(films per worker: {films}) | {r['e2e_s']:.1f} s = "
            f"{r['e2e_films_per_s']:.1f} films/s | **{r['steady_films_per_s']:.1f} films/s** | "
            f"{1000 * r['steady_s_per_film']:.1f} ms | {rss} MB | intra = inter = {threads} |")
    if "local_2threads" in by:
        r = by["local_2threads"]
        lines.append(
            f"| no Ray: `Explain` in one process, TensorFlow's threads | - | "
            f"{r['steady_films_per_s']:.1f} films/s | {1000 * r['steady_s_per_film']:.1f} ms | "
            f"{r['peak_rss_mb']:.0f} MB | intra {r['threads']['intra'] or 'default (2)'}, "
            f"inter {r['threads']['inter'] or 'default (2)'} |")
    if "ray_1" in by and "ray_2" in by:
        gain = by["ray_2"]["steady_films_per_s"] / by["ray_1"]["steady_films_per_s"]
        e2e = by["ray_2"]["e2e_films_per_s"] / by["ray_1"]["e2e_films_per_s"]
        lines.append(f"| 2 workers / 1 worker | {e2e:.2f}x | **{gain:.2f}x** | | | |")
    return "\n".join(lines)


def section(rows: list[dict[str, Any]]) -> str:
    first = rows[0] if rows else {}
    by = {r["config"]: r for r in rows}
    notes = ""
    if {"ray_1", "ray_2", "local_2threads"} <= set(by):
        one, two = by["ray_1"], by["ray_2"]
        rate = {k: by[k]["steady_films_per_s"] for k in by}
        notes = (
            f"Here two workers reached {rate['ray_2'] / rate['ray_1']:.2f}x one worker's steady "
            f"rate, and {rate['ray_2'] / rate['local_2threads']:.2f}x what one process gets "
            "from both cores with TensorFlow's own threads "
            f"({rate['local_2threads'] / rate['ray_1']:.2f}x one thread): on one "
            "small machine Ray adds nothing, its point is the machines past this one. Short of "
            "2x because the two cores also run Ray's own processes (the raylet, the object "
            "store, the driver, the Parquet writes) and other jobs on this shared machine; the "
            "two actors also started apart "
            "(films per worker above). Ray's fixed cost is a few seconds per run (a local Ray "
            f"started in {one['ray_start_s']:.1f} s; each actor imports TensorFlow and loads "
            "the model before its first batch, all first batches done after "
            f"{two['all_first_batches_done_after_s']:.0f} s with two actors), which is why the "
            "end-to-end rate on 2,000 films is below the steady rate; on 100,000 films it is "
            "noise.")
    return "\n".join([
        HEADING, "",
        "Command:", "", "```bash", "source /work/venv/bin/activate",
        "python benchmarks/ray_scaling.py            # 3 configurations, each in a fresh "
        "process",
        "python benchmarks/ray_scaling.py --report   # the table from "
        "benchmarks/out/ray_scaling.jsonl", "```", "",
        f"**Machine.** {first.get('machine', machine())}; shared with other jobs. Ray "
        f"{first.get('ray', '?')}, a local cluster of {first.get('cluster_cpus', 2):.0f} CPUs. "
        "No GPU was measured (none was lent to this task); see "
        "[the cluster guide](../docs/guides/cluster.md) for how to measure one.", "",
        f"**What runs.** Grad-CAM of the 224 px `cam_cnn` (3 classes, initial weights) on "
        f"{first.get('films', 2000):,} films (links to the 886 shared 256 px films, in turn), "
        f"batches of {BATCH}, a {HEATMAP}x{HEATMAP} `heatmap` column and the 224 px "
        "`heatmap_png`, written to Parquet. *End to end*: `explain_dataset` as called, Ray "
        "start to Ray shut down. *Steady rate*: films finished after every worker's first "
        "batch, over that time (the actors' own clocks). *Peak RSS*: each actor's "
        "`ru_maxrss` (TensorFlow and cxrexplain imported, the model, the compiled Grad-CAM "
        f"pass of a batch of {BATCH} at 224 px: the activations and their gradients dominate, "
        "so it shrinks with `batch_size`).", "",
        report(rows), "",
        "**Threads.** Each actor asks Ray for 1 CPU and sizes TensorFlow's intra-op and "
        "inter-op pools to it (`Explain(threads=None)`: the CPUs Ray assigned; the table shows "
        "what the actors reported), so two actors on the 2 cores use one core each instead of "
        "four threads fighting over two. On a 2-core machine two workers can at best double "
        "one 1-thread worker, and only because of that limit. " + notes,
    ])


# --------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--redo", action="store_true")
    parser.add_argument("--films", type=int, default=2000)
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="GPUs per Ray worker (a GPU machine; default 0: CPU only)")
    parser.add_argument("--config", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.config:  # one configuration, in the fresh process the parent started
        folder, model = make_folder(args.films), make_model()
        if args.config == "local_2threads":
            result = run_local(folder, model)
        else:
            result = run_ray(int(args.config.split("_")[1]), folder, model,
                             args.gpus_per_worker)
        import ray

        result.update(machine=machine(), ray=ray.__version__)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    rows = read_jsonl(RESULTS) if RESULTS.is_file() else []
    if args.report:
        print(report(rows))
        return 0
    done = {r["config"] for r in rows} if not args.redo else set()
    rows = [r for r in rows if r["config"] in done]
    make_folder(args.films)
    make_model()
    for config in CONFIGS:
        if config in done:
            print(f"{config}: done", flush=True)
            continue
        print(f"{config}: running", flush=True)
        child = subprocess.run([sys.executable, __file__, "--config", config, "--films",
                                str(args.films), "--gpus-per-worker",
                                str(args.gpus_per_worker)],
                               capture_output=True, text=True, check=False)
        lines = [x for x in child.stdout.splitlines() if x.startswith("RESULT ")]
        if child.returncode != 0 or not lines:
            print(child.stdout[-3000:], child.stderr[-3000:], sep="\n", flush=True)
            return 1
        result = json.loads(lines[-1].removeprefix("RESULT "))
        rows.append(result)
        OUT.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
        print(f"{config}: {json.dumps(result)}", flush=True)
    print(report(rows))
    write_section(HERE / "RESULTS.md", HEADING, section(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
