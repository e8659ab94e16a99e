"""``cxrexplain train``: train a reference model on a class-folder or Kaggle layout.

The work is :func:`cxrexplain.cli.train.from_folder.train_from_folder` (also
``cxrexplain.train_command.train_from_folder``), imported when the subcommand runs.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["train", "chest_xray", "--out", "m.keras", "--image-size", "32",
    ...       "--epochs", "1"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrexplain.cli._subcommand import Subcommand
from cxrexplain.errors import InvalidInputError

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", default="cam_cnn", help="builder name (default: cam_cnn)")
    parser.add_argument("--out", type=Path, required=True, help="where to save MODEL.keras")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--classes", help="comma-separated class folders (default: all)")
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lungs", type=Path,
                        help="a lungs .keras file (cxrexplain lungs train): train a "
                        "lung-focused model, the segmenter frozen inside it")
    # the library's cxrexplain.lungs.focus.MODES, spelled out: --help imports no TensorFlow
    # (tests/test_train_lungs.py checks that the two agree)
    parser.add_argument("--lung-mode", choices=["mask", "inverse", "crop"],
                        help="with --lungs: mask (only the lungs visible, the default), "
                        "inverse (only what lies outside them: the shortcut-strength check) "
                        "or crop (the lungs' box stretched to the whole frame: their position "
                        "and size carry nothing)")
    parser.add_argument("--explain-every", type=int, metavar="N",
                        help="explain validation films with Grad-CAM after every N epochs: "
                        "OUT.explanations/epoch_001.png ... and TensorBoard logs there")
    parser.add_argument("--explain-images", type=int, default=8, metavar="K",
                        help="with --explain-every: how many validation films (default: 8)")


def _run(args: argparse.Namespace) -> int:
    if args.lung_mode is not None and args.lungs is None:
        raise InvalidInputError("--lung-mode: needs --lungs (a lung segmenter's .keras file)")
    from cxrexplain.cli.train.from_folder import train_from_folder

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    report = train_from_folder(
        args.data_dir, model_name=args.model, out=args.out, image_size=args.image_size,
        epochs=args.epochs, batch_size=args.batch_size, classes=classes,
        validation_split=args.validation_split, seed=args.seed, lungs=args.lungs,
        lung_mode=args.lung_mode or "mask", explain_every=args.explain_every,
        explain_images=args.explain_images,
    )
    print(report)
    return 0


COMMAND = Subcommand(
    name="train",
    help="train a reference model on a class-folder or Kaggle chest_xray layout",
    add_arguments=_add_arguments, run=_run, order=20)
