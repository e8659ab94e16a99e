"""NORMAL vs PNEUMONIA with shafayet98's softmax CNN and its RMSprop recipe, explained by Grad-CAM.

``four_block_cnn`` is four conv/pool blocks -> Flatten -> Dropout -> Dense 512 -> Dense 264
-> Dense 2 (softmax). ``cx.models.compile_for(model, "four_block_cnn")`` compiles it as its
project did: RMSprop at 1e-3 and cross-entropy (sparse here, for integer labels: the same
values as the project's one-hot categorical cross-entropy). Run from a checkout:

    python examples/pneumonia_softmax_rmsprop.py --quick    # smoke test, under a minute
    python examples/pneumonia_softmax_rmsprop.py            # 128 px, 25 epochs: ~2 min, 2 cores
"""

from __future__ import annotations

from _common import datasets, parse, parser, pick, split

import cxrexplain as cx

CLASSES = ["NORMAL", "PNEUMONIA"]


def main() -> None:
    args = parse(parser(__doc__, __file__))
    files = cx.data.list_images(args.data, classes=CLASSES)
    train_files, val_files, test_files = split(files, seed=args.seed, quick=args.quick)
    # the project augmented with shifts, shear and zoom; pass augment=True for the library's
    # milder default (small rotation, zoom, shift, brightness, contrast; never a flip)
    train, val, test = datasets([train_files, val_files, test_files], size=args.size,
                                seed=args.seed, batch_size=args.batch)

    model = cx.models.build("four_block_cnn", input_shape=(args.size, args.size, 1),
                            num_classes=2)
    cx.models.compile_for(model, "four_block_cnn")
    print(f"optimizer {type(model.optimizer).__name__}, learning rate "
          f"{float(model.optimizer.learning_rate):g}, loss {type(model.loss).__name__}")
    history = cx.training.fit(model, train, val, epochs=args.epochs, class_weight="balanced",
                              seed=args.seed, verbose=2)
    best = min(range(len(history.epoch)), key=lambda e: history.history["val_loss"][e])
    print(f"best epoch {best + 1}: val_accuracy {history.history['val_accuracy'][best]:.4f}")
    clf = cx.Classifier(model, class_names=CLASSES)

    report = cx.training.evaluate(clf, test)
    print(report.to_text())
    cx.save_figure(report.plot(), args.out / "report.png")
    (args.out / "report.md").write_text(report.to_markdown() + "\n")

    # Grad-CAM at the last conv block, differentiating the class score before the softmax
    shown = pick(test_files, per_class=3)
    exp = cx.GradCAM(clf).explain(shown)
    print(f"Grad-CAM at layer {exp.layer}")
    cx.save_figure(cx.plot_explanations(shown, [exp], class_names=CLASSES),
                   args.out / "gradcam_grid.png")
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
