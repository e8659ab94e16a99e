"""``cxrexplain explain``: overlay PNGs and a resumable predictions CSV, or Parquet on Ray.

The local engine is :func:`cxrexplain.batch.explain_to_folder`; ``--engine ray`` runs
:func:`cxrexplain.distributed.explain_dataset`.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["explain", "pneumonia.keras", "a.png", "b.png", "--out", "out",
    ...       "--no-progress"])
    wrote out/predictions.csv and overlays in out/overlays
    0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrexplain.cli._options import add_method, check_methods, load_classifier, target
from cxrexplain.cli._subcommand import Subcommand

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path)
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders")
    add_method(parser)
    parser.add_argument("--target",
                        help="class name or index to explain (default: predicted)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=0.4)
    parser.add_argument("--colormap", default="jet")
    parser.add_argument("--resume", action="store_true",
                        help="skip images already explained in OUT")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: overlays and a CSV, in this process (the default); ray: "
                        "Parquet files of maps and probabilities, on Ray Data (needs the "
                        "ray extra)")
    parser.add_argument("--address",
                        help="with --engine ray: the Ray cluster's address ('auto': the one "
                        "this machine belongs to; default: start a local Ray)")
    parser.add_argument("--workers", type=int,
                        help="with --engine ray: Ray actors (default: as many as fit)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="with --engine ray: GPUs per actor (default: 0)")


def _run(args: argparse.Namespace) -> int:
    check_methods([args.method])
    if args.engine == "ray":
        return _run_on_ray(args)
    from cxrexplain.batch import explain_to_folder
    from cxrexplain.io import find_images

    classifier = load_classifier(args.model)
    table = explain_to_folder(
        classifier, find_images(args.images), args.out, method=args.method,
        target=target(args.target), batch_size=args.batch_size, resume=args.resume,
        alpha=args.alpha, colormap=args.colormap, progress=not args.no_progress,
    )
    print(f"wrote {table} and overlays in {table.parent / 'overlays'}")
    return 0


def _run_on_ray(args: argparse.Namespace) -> int:
    from cxrexplain.distributed import explain_dataset

    summary = explain_dataset(
        [str(p) for p in args.images], args.model, method=args.method, out=args.out,
        address=args.address, concurrency=args.workers, num_gpus=args.gpus_per_worker,
        batch_size=args.batch_size, target=target(args.target), resume=args.resume,
        progress=not args.no_progress,
    )
    print(summary)
    return 0


COMMAND = Subcommand(name="explain", help="overlay PNGs and a predictions CSV",
                     add_arguments=_add_arguments, run=_run, order=40)
