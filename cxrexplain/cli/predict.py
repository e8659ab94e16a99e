"""``cxrexplain predict``: the label and each class's probability per image.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["predict", "--json", "pneumonia.keras", "a.png"])  # doctest: +ELLIPSIS
    {"image": "a.png", "label": "...", "probability": ..., "error": ""}
    0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrexplain.cli._options import load_classifier
from cxrexplain.cli._subcommand import Subcommand

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a .keras file saved by cxrexplain")
    parser.add_argument("images", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--batch-size", type=int, default=32)


def _run(args: argparse.Namespace) -> int:
    from cxrexplain.batch import predict_rows
    from cxrexplain.io import find_images

    classifier = load_classifier(args.model)
    rows = predict_rows(classifier, find_images(args.images), batch_size=args.batch_size)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    names = classifier.class_names
    width = max(len(r["image"]) for r in rows)
    print(f"{'image':<{width}}  {'label':<12}" + "".join(f"  {n[:12]:>12}" for n in names))
    for row in rows:
        if row["error"]:
            print(f"{row['image']:<{width}}  error: {row['error']}")
            continue
        print(f"{row['image']:<{width}}  {row['label']:<12}"
              + "".join(f"  {row[n]:>12.4f}" for n in names))
    return 0


COMMAND = Subcommand(name="predict", help="label and probabilities per image",
                     add_arguments=_add_arguments, run=_run, order=30)
