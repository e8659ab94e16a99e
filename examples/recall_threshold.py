"""Choose the pneumonia threshold that misses no pneumonia (a recall-first rule).

Maltanno/Phase4_Project lowered its decision threshold to 0.05 so that every pneumonia film was
caught. Here the threshold is chosen on validation data with
``cx.training.threshold_for_recall(recall=1.0)``: the highest threshold at which every validation
pneumonia is flagged. The test report before and after shows what that costs in false alarms. The
model is a binary CNN with one sigmoid unit (``cam_cnn`` with ``head="sigmoid"``, 128 px like that
project); a feature-map grid of its first conv block shows what the network computes. Run from a
checkout:

    python examples/recall_threshold.py --quick    # smoke test, under a minute
    python examples/recall_threshold.py            # 128 px, 25 epochs: ~2 min, 2 cores
"""

from __future__ import annotations

from pathlib import Path

from _common import datasets, parse, parser, split

import cxrexplain as cx

CLASSES = ["NORMAL", "PNEUMONIA"]  # the positive class must be second (class index 1)


def summary(report: cx.training.EvaluationReport) -> str:
    return (f"recall {report.sensitivity['PNEUMONIA']:.3f}, specificity "
            f"{report.specificity['PNEUMONIA']:.3f}, accuracy {report.accuracy:.3f}")


def main() -> None:
    p = parser(__doc__, __file__)
    p.add_argument("--recall", type=float, default=1.0, help="recall to reach on validation")
    p.add_argument("--layer", default="block1_relu", help="layer of the feature-map grid")
    args = parse(p)
    files = cx.data.list_images(args.data, classes=CLASSES)
    train_files, val_files, test_files = split(files, seed=args.seed, quick=args.quick)
    train, val, test = datasets([train_files, val_files, test_files], size=args.size,
                                seed=args.seed, batch_size=args.batch)

    model = cx.models.build("cam_cnn", input_shape=(args.size, args.size, 1), num_classes=2,
                            head="sigmoid")
    cx.models.compile_for(model, "cam_cnn")  # Adam 1e-3; binary cross-entropy for the sigmoid
    cx.training.fit(model, train, val, epochs=args.epochs, class_weight="balanced",
                    seed=args.seed, verbose=2)
    clf = cx.Classifier(model, class_names=CLASSES)

    before = cx.training.evaluate(clf, test)  # threshold None: p(PNEUMONIA) >= 0.5
    threshold = cx.training.threshold_for_recall(clf, val, positive="PNEUMONIA",
                                                 recall=args.recall)
    after = cx.training.evaluate(clf, test)  # clf.threshold is now the chosen one
    print(f"threshold for recall {args.recall} on {len(val_files)} validation films: "
          f"{threshold:.4f}")
    print(f"test at threshold 0.5000: {summary(before)}")
    print(f"test at threshold {threshold:.4f}: {summary(after)}")
    print(after.to_text())
    cx.save_figure(before.plot(), args.out / "report_default.png")
    cx.save_figure(after.plot(), args.out / "report_threshold.png")
    clf.save(args.out / "pneumonia.keras")  # the threshold is saved with the model

    # the first conv block's activations for one held-out pneumonia film
    film = test_files.paths[test_files.labels.index(1)]
    prediction = clf.predict(film)
    print(f"feature maps of {Path(film).name}: predicted {prediction.label}, p(PNEUMONIA) "
          f"{prediction.probabilities['PNEUMONIA']:.3f}")
    cx.save_figure(cx.plot_feature_maps(clf, film, args.layer, max_maps=32),
                   args.out / "feature_maps.png")
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
