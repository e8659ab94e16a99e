"""The ``cxrexplain`` command: ``demo``, ``train``, ``predict``, ``explain``, ``evaluate``,
``audit``, ``lungs train``.

The parser and ``--help`` / ``--version`` import no TensorFlow or Keras (this module imports
only ``cxrexplain._version``, ``cxrexplain._quiet`` and ``cxrexplain.errors``; each command
imports what it needs).
TensorFlow's and absl's C++ log lines are off unless ``--debug`` is given or the user set
``TF_CPP_MIN_LOG_LEVEL``.

Exit codes: 0 success, 2 usage error, 1 a :class:`~cxrexplain.CxrExplainError` (its one-line
message, no traceback unless ``--debug``), 3 ``audit`` flagged the model.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["predict", "pneumonia.keras", "a.png", "b.png"])
    image  label  NORMAL  PNEUMONIA
    a.png  ...
    b.png  ...
    0
    >>> main(["predict", "pneumonia.keras", "missing.png"])  # the message goes to stderr
    1
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from cxrexplain._quiet import stderr_silenced
from cxrexplain._version import __version__
from cxrexplain.errors import CxrExplainError, InvalidInputError

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cxrexplain`` command."""
    parser = argparse.ArgumentParser(
        prog="cxrexplain",
        description=(
            "Chest X-ray classifiers that explain themselves: train, predict, explain with "
            "CAM / Grad-CAM and relatives, and evaluate the explanations."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cxrexplain {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks of errors and TensorFlow's log lines")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="train a CAM model on synthetic phantoms, explain and score it, "
        "write an HTML report")
    demo.add_argument("--out", type=Path, default=Path("cxrexplain-demo"),
                      help="output folder (default: cxrexplain-demo)")
    demo.add_argument("--quick", action="store_true", help="smaller and faster (a smoke test)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    train = commands.add_parser(
        "train", help="train a reference model on a class-folder or Kaggle chest_xray layout")
    train.add_argument("data_dir", type=Path)
    train.add_argument("--model", default="cam_cnn", help="builder name (default: cam_cnn)")
    train.add_argument("--out", type=Path, required=True, help="where to save MODEL.keras")
    train.add_argument("--image-size", type=int, default=224)
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--classes", help="comma-separated class folders (default: all)")
    train.add_argument("--validation-split", type=float, default=0.2)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--lungs", type=Path,
                       help="a lungs .keras file (cxrexplain lungs train): train a lung-focused "
                       "model, the segmenter frozen inside it")
    train.add_argument("--lung-mode", choices=["mask", "inverse"],
                       help="with --lungs: mask (only the lungs visible, the default) or "
                       "inverse (only what lies outside them: the shortcut-strength check)")
    train.add_argument("--explain-every", type=int, metavar="N",
                       help="explain validation films with Grad-CAM after every N epochs: "
                       "OUT.explanations/epoch_001.png ... and TensorBoard logs there")
    train.add_argument("--explain-images", type=int, default=8, metavar="K",
                       help="with --explain-every: how many validation films (default: 8)")
    train.set_defaults(run=_train)

    predict = commands.add_parser("predict", help="label and probabilities per image")
    predict.add_argument("model", type=Path, help="a .keras file saved by cxrexplain")
    predict.add_argument("images", nargs="+", type=Path, help="image files or folders")
    predict.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.set_defaults(run=_predict)

    explain = commands.add_parser("explain", help="overlay PNGs and a predictions CSV")
    explain.add_argument("model", type=Path)
    explain.add_argument("images", nargs="+", type=Path, help="image files or folders")
    explain.add_argument("--method", default="gradcam",
                         help="cam, gradcam, gradcampp, hirescam, layercam, scorecam or "
                              "occlusion")
    explain.add_argument("--target", help="class name or index to explain (default: predicted)")
    explain.add_argument("--out", type=Path, required=True, help="output folder")
    explain.add_argument("--batch-size", type=int, default=16)
    explain.add_argument("--alpha", type=float, default=0.4)
    explain.add_argument("--colormap", default="jet")
    explain.add_argument("--resume", action="store_true",
                         help="skip images already explained in OUT")
    explain.add_argument("--no-progress", action="store_true")
    explain.add_argument("--engine", choices=["local", "ray"], default="local",
                         help="local: overlays and a CSV, in this process (the default); ray: "
                         "Parquet files of maps and probabilities, on Ray Data (needs the "
                         "ray extra)")
    explain.add_argument("--address",
                         help="with --engine ray: the Ray cluster's address ('auto': the one "
                         "this machine belongs to; default: start a local Ray)")
    explain.add_argument("--workers", type=int,
                         help="with --engine ray: Ray actors (default: as many as fit)")
    explain.add_argument("--gpus-per-worker", type=float, default=0.0,
                         help="with --engine ray: GPUs per actor (default: 0)")
    explain.set_defaults(run=_explain)

    evaluate = commands.add_parser(
        "evaluate", help="score explanations: pointing game, mask energy, deletion/insertion")
    evaluate.add_argument("model", type=Path)
    evaluate.add_argument("data_dir", type=Path, help="folder of images")
    evaluate.add_argument("--boxes", type=Path,
                          help="CSV of image,finding,x,y,width,height in image pixels")
    evaluate.add_argument("--masks", type=Path, help="folder of masks named like the images")
    evaluate.add_argument("--methods", default="cam,gradcam,gradcampp,hirescam,layercam",
                          help="comma-separated explainer names")
    evaluate.add_argument("--target", help="class to explain (default: predicted)")
    evaluate.add_argument("--limit", type=int, help="at most this many images")
    evaluate.add_argument("--steps", type=int, default=20, help="deletion/insertion steps")
    evaluate.add_argument("--reference", default="centre_gaussian",
                          help="row the gaps are measured to (a method or baseline), or "
                               "numbers such as 'pointing_game=0.6' (comma-separated); "
                               "'none' for no gaps")
    evaluate.add_argument("--format", choices=["markdown", "json"], default="markdown")
    evaluate.set_defaults(run=_evaluate)

    audit = commands.add_parser(
        "audit", help="where the model looks across a data set, against the lungs; exit "
        "code 3 when flagged")
    audit.add_argument("model", type=Path, help="a .keras classifier saved by cxrexplain")
    audit.add_argument("images", nargs="+", type=Path, help="image files or folders")
    audit.add_argument("--lungs", type=Path, required=True,
                       help="a lungs .keras file (cxrexplain lungs train) or a folder of masks "
                       "named like the images")
    audit.add_argument("--out", type=Path, required=True,
                       help="output folder: index.html, audit.csv, audit.json")
    audit.add_argument("--groups", choices=["folder"],
                       help="also summarise per parent folder (one per hospital or source)")
    audit.add_argument("--method", default="gradcam", help="explainer name (default: gradcam)")
    audit.add_argument("--target", help="class name or index to explain (default: predicted)")
    audit.add_argument("--batch-size", type=int, default=32)
    audit.add_argument("--resume", action="store_true",
                       help="keep the films already in OUT/audit.csv and audit the rest")
    audit.add_argument("--no-progress", action="store_true")
    audit.set_defaults(run=_audit)

    lungs = commands.add_parser("lungs", help="lung segmentation: lungs train")
    lung_commands = lungs.add_subparsers(dest="lungs_command", metavar="COMMAND",
                                         required=True)
    lungs_train = lung_commands.add_parser(
        "train", help="train a lung U-Net on films and their lung masks")
    lungs_train.add_argument("--images", type=Path, required=True, help="folder of films")
    lungs_train.add_argument("--masks", type=Path, required=True,
                             help="folder of binary masks (255 or 1 = lung), matched to the "
                             "films by relative path or file name")
    lungs_train.add_argument("--out", type=Path, required=True,
                             help="where to save the segmenter (.keras)")
    lungs_train.add_argument("--image-size", type=int, default=256)
    lungs_train.add_argument("--epochs", type=int, help="default: about 5,000 films shown")
    lungs_train.add_argument("--validation-split", type=float, default=0.2)
    lungs_train.add_argument("--seed", type=int, default=0)
    lungs_train.add_argument("--checkpoint-dir", type=Path,
                             help="checkpoint folder (default: OUT without .keras + '-ckpt')")
    lungs_train.add_argument("--resume", action="store_true",
                             help="continue an interrupted run from its checkpoint")
    lungs_train.set_defaults(run=_lungs_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cxrexplain`` command; returns the exit code.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 1 for a library error, 2 for a usage error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    run: Command = args.run
    try:
        _import_tensorflow(quiet=_prepare_environment(args.debug))
        return run(args)
    except CxrExplainError as err:
        if args.debug:
            raise
        print(f"cxrexplain: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        print("cxrexplain: interrupted", file=sys.stderr)
        return 130


# ------------------------------------------------------------------- TensorFlow's log lines
def _prepare_environment(debug: bool,
                         environ: MutableMapping[str, str] | None = None) -> bool:
    """Quiet TensorFlow's C++ logging before TensorFlow is imported; True when quieted.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` and ``GRPC_VERBOSITY=ERROR`` unless ``debug`` or the user
    set ``TF_CPP_MIN_LOG_LEVEL`` (then nothing changes). ``TF_ENABLE_ONEDNN_OPTS`` is never
    touched: it changes the numbers.
    """
    env = os.environ if environ is None else environ
    if debug or "TF_CPP_MIN_LOG_LEVEL" in env:
        return False
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.setdefault("GRPC_VERBOSITY", "ERROR")
    return True


def _import_tensorflow(quiet: bool) -> None:
    """Import TensorFlow and Keras now; with ``quiet``, the file descriptor 2 goes to the null
    device meanwhile (absl writes the lines logged before ``absl::InitializeLog()``, such as
    oneDNN's and the cuda stubs', straight to it, whatever ``TF_CPP_MIN_LOG_LEVEL`` says)."""
    if "tensorflow" in sys.modules:
        return
    with stderr_silenced() if quiet else contextlib.nullcontext():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


# -------------------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
    from cxrexplain.demo import run_demo

    report = run_demo(args.out, quick=args.quick, seed=args.seed)
    print(f"wrote {report}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from cxrexplain.train_command import train_from_folder

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if args.lung_mode is not None and args.lungs is None:
        raise InvalidInputError("--lung-mode: needs --lungs (a lung segmenter's .keras file)")
    report = train_from_folder(
        args.data_dir, model_name=args.model, out=args.out, image_size=args.image_size,
        epochs=args.epochs, batch_size=args.batch_size, classes=classes,
        validation_split=args.validation_split, seed=args.seed, lungs=args.lungs,
        lung_mode=args.lung_mode or "mask", explain_every=args.explain_every,
        explain_images=args.explain_images,
    )
    print(report)
    return 0


def _load(path: Path) -> Any:
    from cxrexplain.classifier import Classifier

    return Classifier.load(path)


def _predict(args: argparse.Namespace) -> int:
    from cxrexplain.batch import predict_rows
    from cxrexplain.io import find_images

    classifier = _load(args.model)
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


def _explain(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        return _explain_on_ray(args)
    from cxrexplain.batch import explain_to_folder
    from cxrexplain.io import find_images

    classifier = _load(args.model)
    table = explain_to_folder(
        classifier, find_images(args.images), args.out, method=args.method,
        target=_target(args.target), batch_size=args.batch_size, resume=args.resume,
        alpha=args.alpha, colormap=args.colormap, progress=not args.no_progress,
    )
    print(f"wrote {table} and overlays in {table.parent / 'overlays'}")
    return 0


def _explain_on_ray(args: argparse.Namespace) -> int:
    from cxrexplain.distributed import explain_dataset

    summary = explain_dataset(
        [str(p) for p in args.images], args.model, method=args.method, out=args.out,
        address=args.address, concurrency=args.workers, num_gpus=args.gpus_per_worker,
        batch_size=args.batch_size, target=_target(args.target), resume=args.resume,
        progress=not args.no_progress,
    )
    print(summary)
    return 0


def _reference(text: str) -> str | dict[str, float] | None:
    """``--reference``: a row name, ``metric=value`` pairs, or ``none``."""
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


def _evaluate(args: argparse.Namespace) -> int:
    from cxrexplain.evaluate import evaluate_explainers
    from cxrexplain.io import find_images, load_image

    classifier = _load(args.model)
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
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    table = evaluate_explainers(classifier, methods, paths, targets=_target(args.target),
                                boxes=scaled_boxes, masks=masks, steps=args.steps,
                                progress=args.format == "markdown",
                                reference=_reference(args.reference))
    print(table.to_json() if args.format == "json" else table.to_markdown())
    return 0


def _audit(args: argparse.Namespace) -> int:
    from cxrexplain.audit_command import FLAGGED_EXIT_CODE, audit_to_folder
    from cxrexplain.io import find_images

    classifier = _load(args.model)
    if not args.lungs.exists():
        raise InvalidInputError(f"--lungs: no such file or folder '{args.lungs}'")
    report = audit_to_folder(
        classifier, find_images(args.images), args.lungs, args.out, method=args.method,
        target=_target(args.target), groups=args.groups, batch_size=args.batch_size,
        resume=args.resume, progress=not args.no_progress,
    )
    verdict = "FLAGGED" if report.flagged else "not flagged"
    print(f"{verdict}: {report.reason}")
    print(f"wrote {args.out / 'index.html'}, {args.out / 'audit.csv'}, "
          f"{args.out / 'audit.json'}")
    return FLAGGED_EXIT_CODE if report.flagged else 0


def _lungs_train(args: argparse.Namespace) -> int:
    from cxrexplain.io import find_images
    from cxrexplain.lungs import match_masks, train

    if args.out.suffix != ".keras":
        raise InvalidInputError(f"--out: expected a file name ending in .keras, got '{args.out}'")
    images = find_images(args.images)
    masks = match_masks(images, args.masks, image_root=args.images)
    checkpoint = args.checkpoint_dir or args.out.with_name(args.out.stem + "-ckpt")
    segmenter = train(images, masks, image_size=args.image_size, epochs=args.epochs,
                      validation_split=args.validation_split, seed=args.seed,
                      checkpoint_dir=checkpoint, resume=args.resume, verbose=2)
    path = segmenter.save(args.out)
    print(f"wrote {path} (input {segmenter.input_size[0]}x{segmenter.input_size[1]}, "
          f"{len(images)} films)")
    return 0


def _target(value: str | None) -> str | int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _read_boxes(path: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    if not path.is_file():
        raise InvalidInputError(f"--boxes: no such file '{path}'")
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
