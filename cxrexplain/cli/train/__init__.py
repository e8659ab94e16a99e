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
                        help="a lungs .keras file (cxrexplain lungs train): alone, train "
                        "under the recommended explanation guide (lung term 0.2, background "
                        "swap, swap consistency; the saved model is plain); with --lung-mode, "
                        "a lung-focused model, the segmenter frozen inside it")
    # the library's cxrexplain.lungs.focus.MODES, spelled out: --help imports no TensorFlow
    # (tests/test_train_lungs.py checks that the two agree)
    parser.add_argument("--lung-mode", choices=["mask", "inverse", "crop"],
                        help="with --lungs: mask (only the lungs visible), "
                        "inverse (only what lies outside them: the shortcut-strength check) "
                        "or crop (the lungs' box stretched to the whole frame: their position "
                        "and size carry nothing)")
    parser.add_argument("--guide", metavar="TERMS",
                        help="explanation-guided training: lungs, boxes or lungs,boxes (a loss "
                        "on the model's CAM outside the lungs of --lungs / outside the boxes "
                        "of --boxes); --lungs then guides instead of masking, unless "
                        "--lung-mode is given too")
    # RECOMMENDED_WEIGHT of cxrexplain.training.guide, spelled out: --help imports no
    # TensorFlow (tests/test_train_lungs.py checks that the two agree)
    parser.add_argument("--guide-weight", type=float, default=0.2, metavar="W",
                        help="with --guide: the weight of each term (default: 0.2)")
    parser.add_argument("--swap", type=float, default=0.0, metavar="P",
                        help="background swap: with probability P a training film keeps its "
                        "lungs (--lungs) and takes its surroundings from another film")
    parser.add_argument("--swap-consistency", type=float, default=0.0, metavar="W",
                        help="with --swap: each film also enters with its swapped twin and the "
                        "loss adds W x the divergence of their predictions")
    parser.add_argument("--boxes", type=Path, metavar="CSV",
                        help="radiologists' boxes (image,x,y,width,height in the films' "
                        "pixels) for --guide boxes")
    parser.add_argument("--explain-every", type=int, metavar="N",
                        help="explain validation films with Grad-CAM after every N epochs: "
                        "OUT.explanations/epoch_001.png ... and TensorBoard logs there")
    parser.add_argument("--explain-images", type=int, default=8, metavar="K",
                        help="with --explain-every: how many validation films (default: 8)")


def _run(args: argparse.Namespace) -> int:
    if args.lung_mode is not None and args.lungs is None:
        raise InvalidInputError("--lung-mode: needs --lungs (a lung segmenter's .keras file)")
    guide = parse_terms(args.guide)
    from cxrexplain.cli.train.from_folder import train_from_folder

    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    report = train_from_folder(
        args.data_dir, model_name=args.model, out=args.out, image_size=args.image_size,
        epochs=args.epochs, batch_size=args.batch_size, classes=classes,
        validation_split=args.validation_split, seed=args.seed, lungs=args.lungs,
        lung_mode=args.lung_mode, explain_every=args.explain_every,
        explain_images=args.explain_images, guide=guide, guide_weight=args.guide_weight,
        swap=args.swap, boxes=args.boxes, consistency=args.swap_consistency,
    )
    print(report)
    return 0


def parse_terms(text: str | None) -> tuple[str, ...]:
    """``--guide``: comma-separated terms of :data:`cxrexplain.training.guide.GUIDE_TERMS`.

    Example:
        >>> parse_terms("lungs, boxes"), parse_terms(None)
        (('lungs', 'boxes'), ())
    """
    if text is None:
        return ()
    terms = tuple(t.strip().lower() for t in text.split(",") if t.strip())
    known = ("lungs", "boxes")  # GUIDE_TERMS; not imported: --help must not load TensorFlow
    unknown = [t for t in terms if t not in known]
    if unknown or not terms:
        raise InvalidInputError(
            f"--guide: expected lungs, boxes or lungs,boxes, got {text!r}")
    return terms


COMMAND = Subcommand(
    name="train",
    help="train a reference model on a class-folder or Kaggle chest_xray layout",
    add_arguments=_add_arguments, run=_run, order=20)
