"""``cxrexplain demo``: train a CAM model on synthetic phantoms, explain, score, report.

The work is :func:`cxrexplain.cli.demo.report.run_demo` (also ``cxrexplain.demo.run_demo``),
imported when the subcommand runs.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["demo", "--quick", "--out", "demo-out"])  # doctest: +SKIP
    wrote demo-out/index.html
    0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrexplain.cli._subcommand import Subcommand

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("cxrexplain-demo"),
                        help="output folder (default: cxrexplain-demo)")
    parser.add_argument("--quick", action="store_true", help="smaller and faster (a smoke test)")
    parser.add_argument("--seed", type=int, default=0)


def _run(args: argparse.Namespace) -> int:
    from cxrexplain.cli.demo.report import run_demo

    report = run_demo(args.out, quick=args.quick, seed=args.seed)
    print(f"wrote {report}")
    return 0


COMMAND = Subcommand(
    name="demo",
    help="train a CAM model on synthetic phantoms, explain and score it, write an HTML report",
    add_arguments=_add_arguments, run=_run, order=10)
