"""Score every explainer side by side on the radiologists' pneumonia boxes.

Trains a ``cam_cnn`` on NORMAL vs PNEUMONIA (or loads one with ``--model FILE.keras``), keeping
the 22 films of ``boxes.csv`` out of training, then runs ``cx.evaluate_explainers`` with every
explainer on them: pointing game on the boxes, deletion and insertion AUC, the randomization
check, and two model-blind baselines (a random map, a centred Gaussian). A method that does not
beat the centred Gaussian on the pointing game is not localising anything. Run from a checkout:

    python examples/compare_explainers.py --quick    # smoke test on 8 boxed films
    python examples/compare_explainers.py            # 128 px, 25 epochs: ~4 min, 2 cores
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from _common import datasets, parse, parser, split

import cxrexplain as cx

CLASSES = ["NORMAL", "PNEUMONIA"]


def main() -> None:
    p = parser(__doc__, __file__)
    p.add_argument("--model", type=Path,
                   help="a saved Classifier (.keras) to load instead of training one; it should "
                   "not have seen the boxed films")
    args = parse(p)
    with (args.data / "boxes.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))  # image,finding,x,y,width,height (256 px films)
    boxed = [str(args.data / row["image"]) for row in rows]

    if args.model:
        clf = cx.Classifier.load(args.model)
        args.size = clf.input_size[0]
    else:
        files = cx.data.list_images(args.data, classes=CLASSES)
        parts = split(files, seed=args.seed, quick=args.quick,
                      exclude=[Path(b).name for b in boxed])  # boxed films stay unseen
        train, val, test = datasets(parts, size=args.size, seed=args.seed,
                                    batch_size=args.batch)
        model = cx.models.build("cam_cnn", input_shape=(args.size, args.size, 1),
                                num_classes=2)
        cx.models.compile_for(model, "cam_cnn")
        cx.training.fit(model, train, val, epochs=args.epochs, class_weight="balanced",
                        seed=args.seed, verbose=2)
        clf = cx.Classifier(model, class_names=CLASSES)
        print(cx.training.evaluate(clf, test).to_text())
        clf.save(args.out / "model.keras")  # reuse with --model

    # the boxes are in pixels of the 256 px films: scale them to the model's input size
    film_boxes = np.array([[float(r[k]) for k in ("x", "y", "width", "height")] for r in rows])
    boxes = film_boxes * args.size / 256
    # cam, gradcam, ..., xgradcam: those that apply to a CNN (not attention rollout)
    methods: list[str | cx.Explainer] = [
        name for name, cls in cx.explainers().items() if cls.applies_to(clf)]
    methods[methods.index("rise")] = cx.RISE(clf, samples=500)  # 4000 masks: 4000 passes a film
    scored = 8 if args.quick else len(boxed)  # Score-CAM runs the model once per channel
    table = cx.evaluate_explainers(
        clf, methods, boxed[:scored], targets="PNEUMONIA", boxes=boxes[:scored],
        steps=10 if args.quick else 20, randomization_layers=1 if args.quick else 3,
        progress=True)
    print(f"\n{table.images} boxed pneumonia films, explaining PNEUMONIA\n")
    print(table.to_markdown())
    (args.out / "explainers.md").write_text(table.to_markdown())
    (args.out / "explainers.json").write_text(table.to_json())

    # every method on the first four boxed films (drawn at 256 px), the box on each panel
    shown = boxed[:4]
    explanations = [(cx.get_explainer(m)(clf) if isinstance(m, str) else m).explain(
        shown, targets="PNEUMONIA") for m in methods]
    figure = cx.plot_explanations(shown, explanations, class_names=CLASSES,
                                  boxes=film_boxes[:4])
    cx.save_figure(figure, args.out / "comparison.png")
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
