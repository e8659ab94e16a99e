"""What the example scripts share: their command-line options and a train/val/test split.

Not part of the library: copy what you need. Every script takes ``--data`` (a folder of class
folders, default ``../shared/data/cxr`` beside the checkout), ``--out`` (where figures go,
default ``examples-out/<script>``), ``--quick`` (a smoke test: few images, small inputs, few
epochs), ``--size``, ``--epochs`` and ``--seed``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf

import cxrexplain as cx

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cxr"
QUICK_PER_CLASS = 40  # images per class kept by --quick


def parser(doc: str | None, script: str, *, size: tuple[int, int] = (128, 64),
           epochs: tuple[int, int] = (25, 5)) -> argparse.ArgumentParser:
    """The options every example takes, with (full, --quick) defaults of size and epochs.

    Add the script's own options, then call :func:`parse`.
    """
    name = Path(script).stem
    first = (doc or name).strip().splitlines()[0]
    p = argparse.ArgumentParser(prog=f"{name}.py", description=first)
    p.add_argument("--data", type=Path, default=DATA, help="folder of class folders")
    p.add_argument("--out", type=Path, default=Path("examples-out") / name,
                   help="folder for figures and results")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: few images, small inputs, few epochs")
    p.add_argument("--size", type=int,
                   help=f"input size in pixels (default: {size[0]}, --quick {size[1]})")
    p.add_argument("--epochs", type=int,
                   help=f"training epochs (default: {epochs[0]}, --quick {epochs[1]})")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training")
    p.set_defaults(defaults={"size": size, "epochs": epochs})
    return p


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the options; fill in ``--size`` and ``--epochs``, make the ``--out`` folder."""
    args = p.parse_args()
    if not args.data.is_dir():
        p.error(f"no data folder at {args.data} (pass --data)")
    args.size = args.size or args.defaults["size"][args.quick]
    args.epochs = args.epochs or args.defaults["epochs"][args.quick]
    args.batch = 16 if args.quick else 32  # more steps per epoch on the small --quick set
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def split(files: cx.data.LabeledFiles, *, seed: int, quick: bool, test: float = 0.2,
          val: float = 0.15, exclude: Iterable[str] = ()
          ) -> tuple[cx.data.LabeledFiles, cx.data.LabeledFiles, cx.data.LabeledFiles]:
    """Stratified (train, validation, test) file lists; ``exclude``: file names kept out.

    ``test`` and ``val`` are shares of all files. With ``quick`` only
    ``QUICK_PER_CLASS`` random images of each class are used.
    """
    skip = set(exclude)
    keep = np.array([Path(p).name not in skip for p in files.paths])
    if quick:
        rng = np.random.default_rng(seed)
        chosen = np.zeros(len(files), bool)
        for label in range(len(files.class_names)):
            members = np.flatnonzero((files.label_array == label) & keep)
            chosen[rng.permutation(members)[:QUICK_PER_CLASS]] = True
        keep = chosen
    files = files.subset(np.flatnonzero(keep))
    rest, test_files = cx.data.stratified_split(files, test, seed=seed)
    train_files, val_files = cx.data.stratified_split(rest, val / (1 - test), seed=seed)
    for part, name in ((train_files, "train"), (val_files, "val"), (test_files, "test")):
        print(f"{name:5s} {len(part):4d} images {part.counts()}")
    return train_files, val_files, test_files


def datasets(parts: Iterable[cx.data.LabeledFiles], *, size: int, seed: int, batch_size: int = 32,
             channels: int = 1, augment: bool = False) -> list[tf.data.Dataset]:
    """``cx.data.from_files`` for (train, val, test): only the first is shuffled (augmented).

    Augmentation is off by default: on these few hundred films and 25 epochs it cost accuracy
    (cam_cnn, COVID vs PNEUMONIA, 128 px: test accuracy 0.79 with it, 0.95 without).
    """
    return [cx.data.from_files(part, image_size=size, channels=channels, batch_size=batch_size,
                               shuffle=i == 0, augment=augment and i == 0, seed=seed)
            for i, part in enumerate(parts)]


def pick(files: cx.data.LabeledFiles, per_class: int) -> list[str]:
    """The first ``per_class`` paths of every class, for figures."""
    labels = files.label_array
    return [files.paths[i] for c in range(len(files.class_names))
            for i in np.flatnonzero(labels == c)[:per_class]]
