"""NORMAL vs PNEUMONIA with doguilmak's small binary CNN (one sigmoid unit), explained by Grad-CAM.

``two_block_cnn`` is two conv/pool blocks -> Flatten -> Dense 128 -> Dense 1 (sigmoid),
compiled with its project's recipe (Adam, binary cross-entropy) by ``cx.models.compile_for``.
Unlike that project, which scored its model on the training folder, this script evaluates on a
held-out test split. Its Flatten head rules CAM out; Grad-CAM needs no particular head. Run
from a checkout:

    python examples/pneumonia_binary_cnn.py --quick    # smoke test, under a minute
    python examples/pneumonia_binary_cnn.py            # 128 px, 25 epochs: ~1 min, 2 cores
"""

from __future__ import annotations

from pathlib import Path

from _common import datasets, parse, parser, pick, split

import cxrexplain as cx

CLASSES = ["NORMAL", "PNEUMONIA"]  # PNEUMONIA second: the sigmoid unit is its probability


def main() -> None:
    args = parse(parser(__doc__, __file__))
    files = cx.data.list_images(args.data, classes=CLASSES)
    train_files, val_files, test_files = split(files, seed=args.seed, quick=args.quick)
    # the project fed 64x64 RGB copies of gray films; one gray channel carries the same pixels
    train, val, test = datasets([train_files, val_files, test_files], size=args.size,
                                seed=args.seed, batch_size=args.batch)

    model = cx.models.build("two_block_cnn", input_shape=(args.size, args.size, 1),
                            num_classes=2)
    cx.models.compile_for(model, "two_block_cnn")  # Adam 1e-3, binary cross-entropy
    print(cx.models.recipe_for("two_block_cnn").notes)
    cx.training.fit(model, train, val, epochs=args.epochs, class_weight="balanced",
                    seed=args.seed, verbose=2)
    clf = cx.Classifier(model, class_names=CLASSES)  # threshold None: p(PNEUMONIA) >= 0.5

    report = cx.training.evaluate(clf, test)  # held-out films, never seen in training
    print(report.to_text())
    cx.save_figure(report.plot(), args.out / "report.png")

    # Grad-CAM of held-out films: the sigmoid's logit for PNEUMONIA, its negative for NORMAL
    shown = pick(test_files, per_class=3)
    exp = cx.GradCAM(clf).explain(shown)
    print(f"Grad-CAM at layer {exp.layer}; explained classes {exp.target_names}")
    cx.save_figure(cx.plot_explanations(shown, [exp], class_names=CLASSES),
                   args.out / "gradcam_grid.png")
    for path, heatmap in zip(shown, exp.heatmaps, strict=True):
        cx.save_overlay(args.out / "overlays" / Path(path).name, path, heatmap)
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
