"""Quick start: load chest X-rays, wrap a Keras model as a Classifier, predict, save and reload.

Run from a checkout (reads real X-rays from ../shared/data/cxr when present, else makes
stand-in arrays):

    python examples/quickstart.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import keras
import numpy as np

import cxrexplain as cx

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cxr"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of class subfolders")
    parser.add_argument("--size", type=int, default=128, help="model input size")
    args = parser.parse_args()

    paths = sorted(args.data.glob("*/*.png"))[::200] if args.data.is_dir() else []
    if paths:
        images = cx.load_images(paths, size=args.size)
        print(f"loaded {len(paths)} X-rays from {args.data}: {images.shape} {images.dtype}")
    else:
        images = np.random.default_rng(0).random((4, args.size, args.size, 1), np.float32)
        print(f"no data at {args.data}; using random stand-in images {images.shape}")

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((args.size, args.size, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    clf = cx.Classifier(model, class_names=["COVID", "NORMAL", "PNEUMONIA"])
    print(clf)
    for source, prediction in zip(paths or range(len(images)), clf.predict(images), strict=True):
        name = source.name if isinstance(source, Path) else f"image {source}"
        probs = ", ".join(f"{k} {v:.2f}" for k, v in prediction.probabilities.items())
        print(f"  {name}: {prediction.label} ({probs})  [untrained model]")

    with tempfile.TemporaryDirectory() as folder:
        saved = clf.save(Path(folder) / "model.keras")
        again = cx.Classifier.load(saved)
        same = np.allclose(again.predict_proba(images), clf.predict_proba(images), atol=1e-6)
        print(f"saved and reloaded {saved.name}: class names {again.class_names}, same "
              f"predictions: {same}")


if __name__ == "__main__":
    main()
