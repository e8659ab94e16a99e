"""``cxrexplain evaluate``: score explanations against boxes, masks and the model itself.

The work is :func:`cxrexplain.evaluate_explainers`; this module reads the ``--boxes`` CSV
(in each image file's pixels, scaled here to the model's input) and the ``--masks`` folder.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["evaluate", "pneumonia.keras", "cxr/NORMAL", "--methods", "cam",
    ...       "--steps", "2", "--format", "json"])  # doctest: +SKIP
    {"images": 5, ...}
    0
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from cxrexplain.cli._options import METHODS_HINT, check_methods, load_classifier, target
from cxrexplain.cli._subcommand import Subcommand
from cxrexplain.errors import InvalidInputError

__all__ = ["COMMAND"]

Box = tuple[float, float, float, float]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path)
    parser.add_argument("data_dir", type=Path, help="folder of images")
    parser.add_argument("--boxes", type=Path,
                        help="CSV of image,finding,x,y,width,height in image pixels")
    parser.add_argument("--masks", type=Path, help="folder of masks named like the images")
    parser.add_argument("--methods", default="cam,gradcam,gradcampp,hirescam,layercam",
                        help=f"comma-separated explainer names ({METHODS_HINT})")
    parser.add_argument("--target", help="class to explain (default: predicted)")
    parser.add_argument("--limit", type=int, help="at most this many images")
    parser.add_argument("--steps", type=int, default=20, help="deletion/insertion steps")
    parser.add_argument("--reference", default="centre_gaussian",
                        help="row the gaps are measured to (a method or baseline), or "
                             "numbers such as 'pointing_game=0.6' (comma-separated); "
                             "'none' for no gaps")
    parser.add_argument("--format", choices=["markdown", "json"], default="markdown")


def _run(args: argparse.Namespace) -> int:
    methods = check_methods([m.strip() for m in args.methods.split(",") if m.strip()],
                            "--methods")
    reference = _reference(args.reference)
    from cxrexplain.evaluate import evaluate_explainers
    from cxrexplain.io import find_images, load_image

    classifier = load_classifier(args.model)
    paths = find_images(args.data_dir)
    boxes_by_name = _read_boxes(args.boxes) if args.boxes else None
    if boxes_by_name is not None:
        paths = [p for p in paths if p.name in boxes_by_name]
    if args.masks:
        paths = [p for p in paths if (args.masks / p.name).is_file()]
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        raise InvalidInputError("data_dir: no images (with boxes or masks, if given) to score")
    size = classifier.input_size
    scaled_boxes = None
    if boxes_by_name is not None:
        scaled_boxes = []
        for path in paths:
            height, width = load_image(path).shape[:2]
            sy, sx = (size[0] / height, size[1] / width) if size else (1.0, 1.0)
            scaled_boxes.append([[x * sx, y * sy, w * sx, h * sy]
                                 for x, y, w, h in boxes_by_name[path.name]])
    masks = None
    if args.masks:
        import numpy as np

        target_size = size or load_image(paths[0]).shape[:2]
        masks = np.stack([load_image(args.masks / p.name, size=target_size)[..., 0] > 0.5
                          for p in paths])
    table = evaluate_explainers(classifier, methods, paths, targets=target(args.target),
                                boxes=scaled_boxes, masks=masks, steps=args.steps,
                                progress=args.format == "markdown", reference=reference)
    print(table.to_json() if args.format == "json" else table.to_markdown())
    return 0


def _reference(text: str) -> str | dict[str, float] | None:
    """``--reference``: a row name, ``metric=value`` pairs, or ``none``.

    Example:
        >>> _reference("none"), _reference("gradcam"), _reference("pointing_game=0.6")
        (None, 'gradcam', {'pointing_game': 0.6})
    """
    if text.strip().lower() == "none":
        return None
    if "=" not in text:
        return text.strip()
    values: dict[str, float] = {}
    for item in text.split(","):
        metric, _, value = item.partition("=")
        try:
            values[metric.strip()] = float(value)
        except ValueError:
            raise InvalidInputError(
                f"--reference: expected metric=number pairs such as 'pointing_game=0.6', "
                f"got {item.strip()!r}") from None
    return values


def _read_boxes(path: Path) -> dict[str, list[Box]]:
    """``--boxes``: each image file name's boxes ``(x, y, width, height)``."""
    if not path.is_file():
        raise InvalidInputError(f"--boxes: no such file '{path}'")
    boxes: dict[str, list[Box]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        needed = {"image", "x", "y", "width", "height"}
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise InvalidInputError(
                f"--boxes: '{path}' needs the columns {sorted(needed)}, has {reader.fieldnames}"
            )
        for row in reader:
            try:
                box = (float(row["x"]), float(row["y"]), float(row["width"]),
                       float(row["height"]))
            except ValueError as err:
                raise InvalidInputError(f"--boxes: bad number in row {row}") from err
            boxes.setdefault(Path(row["image"]).name, []).append(box)
    return boxes


COMMAND = Subcommand(
    name="evaluate",
    help="score explanations: pointing game, mask energy, deletion/insertion",
    add_arguments=_add_arguments, run=_run, order=50)
