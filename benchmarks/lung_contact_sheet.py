"""Contact sheet of lung masks on films that have none (issue 13).

Segments 12 NORMAL and 12 PNEUMONIA films of ``../shared/data/cxr`` (no masks exist for them)
with a segmenter trained on COVID lung masks (``benchmarks/out/lung_dice_cv/fold_0.keras`` by
default: since issue 23 four fifths of all 405 masks) and draws each mask's contour on its
film, 6 films a row, into
``docs/images/lung_contact_sheet.png``. The films are picked evenly through each sorted folder
(a fixed, not a hand-picked, choice).

    python benchmarks/lung_contact_sheet.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cxr"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lungs", type=Path,
                        default=ROOT / "benchmarks" / "out" / "lung_dice_cv" / "fold_0.keras")
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" /
                        "lung_contact_sheet.png")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cxrexplain as cx

    seg = cx.lungs.LungSegmenter.load(args.lungs)
    films = []
    for name in ("NORMAL", "PNEUMONIA"):
        paths = sorted((DATA / name).glob("*.png"))
        picks = np.linspace(0, len(paths) - 1, args.per_class).round().astype(int)
        films += [(name, paths[i]) for i in picks]
    masks = seg.segment([p for _, p in films])
    tiles = []
    for (name, path), mask in zip(films, masks, strict=True):
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        tile = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, (0, 255, 255), 2)
        cv2.putText(tile, f"{name[:4]} {path.stem[-10:]}", (4, 250), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (0, 255, 255), 1, cv2.LINE_AA)
        cv2.putText(tile, f"{len(contours)} region(s), {mask.mean():.0%}", (4, 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    rows = [np.hstack(tiles[i : i + 6]) for i in range(0, len(tiles), 6)]
    sheet = np.vstack(rows)
    sheet = cv2.resize(sheet, (sheet.shape[1] * 3 // 4, sheet.shape[0] * 3 // 4),
                       interpolation=cv2.INTER_AREA)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image  # a 128-colour PNG: a third of the size, the same picture

    rgb = cv2.cvtColor(sheet, cv2.COLOR_BGR2RGB)
    Image.fromarray(rgb).quantize(colors=128).save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(tiles)} films)")
    for (name, path), mask in zip(films, masks, strict=True):
        print(f"{name:9s} {path.name:24s} lung share of film {mask.mean():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
