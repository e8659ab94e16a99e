"""Reading speed of the readers with geometry on the real annotation files (issue 24).

Times, in one process after one warm-up read, the median of ``--repeats`` (default 5) reads of

* ``read_vindr`` on VinDr-CXR's ``train.csv.gz`` (67,914 rows, 15,000 films), each merge
  (``union``, ``majority``, ``unanimous``); the goal is < 2 s on 2 cores;
* ``read_siim`` on SIIM-ACR's ``train-rle.csv.gz`` (12,954 rows, 12,047 films, masks kept as
  run lengths, boxes from the runs);
* ``read_chexlocalize`` on CheXlocalize's sample (both JSON files);
* decoding SIIM's 2,669 pneumothorax films' masks at 1024 x 1024, 200 films at a time (what a
  user decoding the whole set pays).

The files are read from ``../shared/data/formats`` (never copied). No image is opened.

Usage::

    python benchmarks/reader_speed_geometry.py            # ~1 min on 2 cores
    python benchmarks/reader_speed_geometry.py --repeats 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "formats"


def median_seconds(work: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """Run ``work`` once (warm-up), then ``repeats`` times: the median wall time and all wall
    times; the median CPU time of the process is printed too (it does not grow with the load
    of a shared machine)."""
    work()
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        work()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(f"  (CPU time median {statistics.median(cpu):.3f} s; load average "
          f"{os.getloadavg()[0]:.1f})")
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import cxrexplain as cx

    print(f"{os.cpu_count()} CPUs; files under {FORMATS}")
    vindr = FORMATS / "vindr" / "train.csv.gz"
    for merge in ("union", "majority", "unanimous"):
        median, times = median_seconds(
            lambda m=merge: cx.data.read_vindr(vindr, images=FORMATS, merge=m), args.repeats)
        print(f"read_vindr merge={merge}: median {median:.3f} s "
              f"({', '.join(f'{t:.3f}' for t in times)})")
    siim = FORMATS / "siim" / "train-rle.csv.gz"
    median, times = median_seconds(lambda: cx.data.read_siim(siim, images=FORMATS),
                                   args.repeats)
    print(f"read_siim: median {median:.3f} s ({', '.join(f'{t:.3f}' for t in times)})")
    folder = FORMATS / "chexlocalize"
    median, times = median_seconds(lambda: cx.data.read_chexlocalize(
        folder / "gt_annotations_val.json", folder / "gt_segmentations_val.json",
        images=folder), args.repeats)
    print(f"read_chexlocalize (sample): median {median:.3f} s")
    recs = cx.data.read_siim(siim, images=FORMATS)
    positive = np.flatnonzero(recs.targets[:, 0] == 1)
    start = time.perf_counter()
    pixels = 0
    for chunk in np.array_split(positive, max(1, len(positive) // 200)):
        pixels += int(recs.subset(chunk).masks("Pneumothorax").sum())
    print(f"SIIM masks: {len(positive)} films decoded at 1024 x 1024 in "
          f"{time.perf_counter() - start:.1f} s ({pixels} mask pixels)")


if __name__ == "__main__":
    main()
