"""Transfer learning with a Keras Applications backbone, explained by Grad-CAM inside it.

Builds ``backbone -> global average pooling -> Dropout -> Dense`` (SaraElwatany's VGG16, VGG19,
ResNet50 and MobileNetV2 models) for NORMAL vs PNEUMONIA. The backbone is a nested Keras model, so
Grad-CAM is pointed at its last convolutional block by path (``"vgg16/block5_conv3"``) and compared
with CAM, which weighs the backbone's output by the Dense weights. For MobileNetV2 and ResNet50
that block is the backbone's output and the two maps agree (the Grad-CAM/CAM identity of a GAP ->
Dense head); VGG's block5_conv3 lies before its last max pooling, at twice CAM's resolution.
Weights are random by default (nothing is downloaded); ``--weights imagenet`` lets Keras download
ImageNet weights, or pass a local ``*_notop.h5`` file. Run from a checkout:

    python examples/transfer_learning_gradcam.py --quick    # MobileNetV2, 96 px, 3 epochs
    python examples/transfer_learning_gradcam.py            # 128 px, 20 epochs: ~2-3 min
    python examples/transfer_learning_gradcam.py --backbone vgg16 --weights imagenet
"""

from __future__ import annotations

import keras
from _common import datasets, parse, parser, pick, split

import cxrexplain as cx

CLASSES = ["NORMAL", "PNEUMONIA"]
LAST_CONV = {  # the last convolutional block's output inside each backbone
    "vgg16": "vgg16/block5_conv3",
    "vgg19": "vgg19/block5_conv4",
    "resnet50": "resnet50/conv5_block3_out",
    "mobilenet_v2": "mobilenet_v2/out_relu",
}


def main() -> None:
    p = parser(__doc__, __file__, size=(128, 96), epochs=(20, 3))  # 96 px: 3x3 maps
    p.add_argument("--backbone", choices=sorted(LAST_CONV), default="mobilenet_v2")
    p.add_argument("--weights", default=None,
                   help="'imagenet' (downloads) or a local weights file; default: random")
    p.add_argument("--freeze", action="store_true", help="train the head only (with --weights)")
    args = parse(p)
    files = cx.data.list_images(args.data, classes=CLASSES)
    train_files, val_files, test_files = split(files, seed=args.seed, quick=args.quick)
    train, val, test = datasets([train_files, val_files, test_files], size=args.size,
                                seed=args.seed, batch_size=args.batch)

    # gray films go in as they are: the model repeats them to RGB and applies the
    # backbone's own ImageNet preprocessing to the [0, 1] pixels
    model = cx.models.build(args.backbone, input_shape=(args.size, args.size, 1),
                            num_classes=2, weights=args.weights, freeze=args.freeze)
    # From random weights, BatchNorm's running statistics (momentum 0.99 to 0.999 in Keras
    # Applications, made for long ImageNet runs) lag far behind a short run, and the model
    # predicts the same for every film: let them follow faster, and re-estimate them at the end.
    norms = [] if args.weights else [layer for layer in model.get_layer(args.backbone).layers
                                     if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.9
    # SaraElwatany's rates (1e-6 or 1e-5) suit pretrained weights; from random ones we use 1e-3
    rate = 1e-3 if args.weights is None else None
    cx.models.compile_for(model, args.backbone, learning_rate=rate)
    cx.training.fit(model, train, val, epochs=args.epochs, class_weight="balanced",
                    seed=args.seed, verbose=2)
    if norms:  # running statistics := those of ~64 training films under the final weights
        for layer in norms:
            layer.momentum = 0.0
        model(cx.load_images(train_files.paths[:: max(1, len(train_files) // 64)],
                             size=args.size), training=True)
        for layer in norms:
            layer.momentum = 0.9
    clf = cx.Classifier(model, class_names=CLASSES)

    report = cx.training.evaluate(clf, test)
    print(report.to_text())
    cx.save_figure(report.plot(), args.out / "report.png")

    # Grad-CAM at the backbone's last conv layer (a nested path) next to CAM on the same model
    shown = pick(test_files, per_class=3)
    gradcam = cx.GradCAM(clf, layer=LAST_CONV[args.backbone]).explain(shown)
    cam = cx.CAM(clf).explain(shown, targets=gradcam.targets)
    print(f"Grad-CAM at {gradcam.layer} ({gradcam.raw.shape[1]}x{gradcam.raw.shape[2]}), "
          f"CAM at {cam.layer} ({cam.raw.shape[1]}x{cam.raw.shape[2]})")
    agree = cx.metrics.spearman(gradcam.heatmaps, cam.heatmaps)
    print(f"rank correlation of the two maps per image: {agree.round(3).tolist()}")
    figure = cx.plot_explanations(shown, [gradcam, cam], class_names=CLASSES,
                                  titles=[f"Grad-CAM {gradcam.layer}", f"CAM {cam.layer}"])
    cx.save_figure(figure, args.out / "gradcam_vs_cam.png")
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
