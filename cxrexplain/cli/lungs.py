"""``cxrexplain lungs train``: train a lung U-Net on films and their lung masks.

``lungs`` groups the lung segmenter's subcommands (``train`` today); the work is
:func:`cxrexplain.lungs.train`.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["lungs", "train", "--images", "cxr/COVID", "--masks", "masks",
    ...       "--out", "lungs.keras", "--epochs", "1"])  # doctest: +SKIP
    wrote lungs.keras (input 256x256, 5 films)
    0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrexplain.cli._subcommand import Subcommand
from cxrexplain.errors import InvalidInputError

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="lungs_command", metavar="COMMAND", required=True)
    train = commands.add_parser("train", help="train a lung U-Net on films and their lung masks")
    train.add_argument("--images", type=Path, required=True, help="folder of films")
    train.add_argument("--masks", type=Path, required=True,
                       help="folder of binary masks (255 or 1 = lung), matched to the films by "
                       "relative path or file name")
    train.add_argument("--out", type=Path, required=True,
                       help="where to save the segmenter (.keras)")
    train.add_argument("--image-size", type=int, default=256)
    train.add_argument("--epochs", type=int, help="default: about 5,000 films shown")
    train.add_argument("--validation-split", type=float, default=0.2)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--checkpoint-dir", type=Path,
                       help="checkpoint folder (default: OUT without .keras + '-ckpt')")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its checkpoint")
    train.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
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


COMMAND = Subcommand(name="lungs", help="lung segmentation: lungs train",
                     add_arguments=_add_arguments, run=_train, order=70)
