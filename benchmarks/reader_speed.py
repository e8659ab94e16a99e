"""How fast the readers of the public collections read their real annotation files.

Issue 24's goal: NIH's whole ``Data_Entry_2017_v2020.csv`` (112,120 rows) and VinDr-CXR's
``train.csv`` (67,914 rows) each read in under 2 s on 2 cores. Each reader reads its file in
``../shared/data/formats`` five times; the script prints the median and the fastest read
(wall-clock seconds), the median CPU time of the process (less sensitive to other work on a
shared machine), and the table. Nothing is written.

Usage::

    python benchmarks/reader_speed.py            # ~1 min on 2 cores
    python benchmarks/reader_speed.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cxrexplain as cx

FORMATS = Path(__file__).resolve().parents[2] / "shared" / "data" / "formats"


def readers() -> dict[str, Callable[[], cx.data.Records]]:
    nih = FORMATS / "nih"
    rsna = FORMATS / "rsna"
    return {
        "read_nih (Data_Entry, 112,120 rows)": lambda: cx.data.read_nih(
            nih / "Data_Entry_2017_v2020.csv.gz"),
        "read_nih + BBox_List (984 boxes)": lambda: cx.data.read_nih(
            nih / "Data_Entry_2017_v2020.csv.gz", boxes=nih / "BBox_List_2017.csv.gz"),
        "read_rsna (30,227 rows)": lambda: cx.data.read_rsna(
            rsna / "stage_2_train_labels.csv.zip"),
        "read_rsna + nih_matches": lambda: cx.data.read_rsna(
            rsna / "stage_2_train_labels.csv.zip", nih_matches=rsna / "nih_matches.csv"),
        "read_chexpert (223,414 rows)": lambda: cx.data.read_chexpert(
            FORMATS / "chexpert" / "train.csv.gz"),
        "read_covid_collection (673 rows)": lambda: cx.data.read_covid_collection(
            FORMATS / "cohen" / "metadata.csv"),
        "read_vindr union (67,914 rows)": lambda: cx.data.read_vindr(
            FORMATS / "vindr" / "train.csv.gz", images=FORMATS),
        "read_vindr majority": lambda: cx.data.read_vindr(
            FORMATS / "vindr" / "train.csv.gz", images=FORMATS, merge="majority"),
        "read_siim (12,954 rows)": lambda: cx.data.read_siim(
            FORMATS / "siim" / "train-rle.csv.gz", images=FORMATS),
        "read_chexlocalize (sample, both files)": lambda: cx.data.read_chexlocalize(
            FORMATS / "chexlocalize" / "gt_annotations_val.json",
            FORMATS / "chexlocalize" / "gt_segmentations_val.json"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'reader':40s} {'median s':>9s} {'best s':>7s} {'CPU s':>6s}  table")
    for name, read in readers().items():
        times, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            recs = read()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        print(f"{name:40s} {statistics.median(times):9.2f} {min(times):7.2f} "
              f"{statistics.median(cpu):6.2f}  {recs!r:.50}")


if __name__ == "__main__":
    main()
