"""Transfer builders: a Keras Applications backbone under a GAP -> Dropout -> Dense head.

Every model here is ``image -> [gray_to_rgb] -> preprocess -> <backbone> -> gap -> dropout ->
predictions``:

* ``gray_to_rgb`` (1-channel inputs only): ``keras.layers.Concatenate`` of the gray channel
  three times, so gray films feed an RGB backbone without the user converting them;
* ``preprocess``: :class:`~cxrexplain.models.layers.ImagenetPreprocessing`, the backbone's own
  input scaling for [0, 1] images (``caffe`` for VGG/ResNet, ``tf`` for MobileNetV2, ``torch``
  for DenseNet), so ``weights="imagenet"`` sees what it was trained on;
* the backbone, a nested ``keras.Model`` (``include_top=False``), named ``vgg16``, ``vgg19``,
  ``resnet50``, ``mobilenet_v2`` or ``densenet121`` (explainers find ``vgg16/block5_conv3``);
* ``gap`` -> ``dropout`` -> ``predictions``: the head CAM needs.

Options shared by every transfer builder:

* ``weights``: ``None`` (the default; nothing is downloaded), ``"imagenet"`` (passed to Keras,
  which downloads the backbone weights once), or a local file: a whole-model weights file, or
  a backbone-only file such as Keras' ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``
  (the offline way to start from ImageNet weights);
* ``freeze=True``: the whole backbone is frozen (its BatchNormalization layers then run in
  inference mode, Keras' rule for non-trainable layers); only the head trains;
* ``trainable_from``: a backbone layer name or index; the layers before it are frozen, it and
  the layers after it train (``"block5_conv1"`` fine-tunes VGG's last block);
* ``dropout``: the head's dropout rate; ``head``: see below.

Every backbone needs images of at least 32x32 pixels (Keras Applications' limit).

Output rules: ``vgg16``, ``vgg19``, ``resnet50`` and ``mobilenet_v2`` follow SaraElwatany's
study (softmax: ``num_classes`` softmax units, also for two classes); ``densenet121`` (CheXNet)
and ``vgg19_finetune`` (Maltanno/Phase4_Project) follow sigmoid projects (``num_classes=2``
gives one sigmoid unit).

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("vgg16", input_shape=(64, 64, 1), num_classes=2, freeze=True)
    >>> [layer.name for layer in model.layers]
    ['image', 'gray_to_rgb', 'preprocess', 'vgg16', 'gap', 'dropout', 'predictions']
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from cxrexplain._checks import first_line
from cxrexplain.errors import InvalidInputError, ModelLoadError
from cxrexplain.models._common import (
    Head,
    InputShape,
    check_input_shape,
    check_rate,
    classifier_output,
)
from cxrexplain.models.layers import ImagenetPreprocessing
from cxrexplain.models.registry import register

__all__ = [
    "BACKBONES",
    "MIN_BACKBONE_SIZE",
    "densenet121",
    "mobilenet_v2",
    "resnet50",
    "set_trainable",
    "transfer_model",
    "vgg16",
    "vgg19",
    "vgg19_finetune",
]

MIN_BACKBONE_SIZE = 32
"""Smallest height and width a Keras Applications backbone takes."""

Weights = str | Path | None


@dataclass(frozen=True)
class _Backbone:
    constructor: Callable[..., keras.Model]
    preprocessing: str


BACKBONES: dict[str, _Backbone] = {
    "vgg16": _Backbone(keras.applications.VGG16, "caffe"),
    "vgg19": _Backbone(keras.applications.VGG19, "caffe"),
    "resnet50": _Backbone(keras.applications.ResNet50, "caffe"),
    "mobilenet_v2": _Backbone(keras.applications.MobileNetV2, "tf"),
    "densenet121": _Backbone(keras.applications.DenseNet121, "torch"),
}
"""The backbones and their preprocessing mode."""


def transfer_model(
    backbone: str,
    input_shape: InputShape,
    num_classes: int,
    *,
    weights: Weights = None,
    freeze: bool = False,
    trainable_from: str | int | None = None,
    dropout: float = 0.3,
    head: Head = "auto",
    binary_sigmoid: bool = False,
    name: str | None = None,
    sigmoid_seed: bool | None = None,
) -> keras.Model:
    """Build ``image -> [gray_to_rgb] -> preprocess -> backbone -> gap -> dropout -> predictions``.

    Args:
        backbone: A key of :data:`BACKBONES`.
        input_shape: ``(height, width, channels)``, 1 or 3 channels, at least 32x32.
        num_classes: Number of classes.
        weights: ``None``, ``"imagenet"`` or a local weights file (whole model or backbone).
        freeze: Freeze the whole backbone.
        trainable_from: Backbone layer (name or index) from which layers train.
        dropout: Dropout rate of the head.
        head: ``"auto"``, ``"softmax"`` or ``"sigmoid"``.
        binary_sigmoid: Whether ``head="auto"`` gives one sigmoid unit for two classes.
        name: The model's name (default: the backbone's).
        sigmoid_seed: Deprecated alias of ``binary_sigmoid``.

    Returns:
        The functional model.

    Raises:
        InvalidInputError: Unknown backbone, too small an image, a bad option.
        ModelLoadError: The weights file fits neither the model nor the backbone.

    Example:
        >>> transfer_model("mobilenet_v2", (32, 32, 3), 3).output_shape
        (None, 3)
    """
    if sigmoid_seed is not None:
        warnings.warn("transfer_model(sigmoid_seed=...) is deprecated; use binary_sigmoid=",
                      DeprecationWarning, stacklevel=2)
        binary_sigmoid = sigmoid_seed
    if backbone not in BACKBONES:
        raise InvalidInputError(
            f"backbone: unknown {backbone!r}; available: {', '.join(BACKBONES)}"
        )
    model_name = name or backbone
    height, width, channels = check_input_shape(model_name, input_shape,
                                                min_size=MIN_BACKBONE_SIZE)
    rate = check_rate(dropout, "dropout")
    if not isinstance(freeze, bool):
        raise InvalidInputError(f"freeze: expected True or False, got {freeze!r}")
    spec = BACKBONES[backbone]
    local_file = None if weights is None or weights == "imagenet" else Path(weights)
    inputs = keras.Input((height, width, channels), name="image")
    x = inputs
    if channels == 1:
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    x = ImagenetPreprocessing(spec.preprocessing, name="preprocess")(x)
    base = spec.constructor(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=(height, width, 3),
        name=backbone,
    )
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(rate, name="dropout")(x)
    outputs = classifier_output(x, num_classes, head=head, binary_sigmoid=binary_sigmoid)
    model = keras.Model(inputs, outputs, name=model_name)
    if local_file is not None:
        _load_weights(model, base, local_file)
    set_trainable(base, freeze=freeze, trainable_from=trainable_from)
    return model


def set_trainable(
    backbone: keras.Model, *, freeze: bool = False, trainable_from: str | int | None = None
) -> None:
    """Freeze a backbone, or its layers before ``trainable_from``.

    Args:
        backbone: The nested backbone model.
        freeze: Freeze every layer.
        trainable_from: A layer name or index (negative counts from the end); the layers
            before it are frozen, the others trainable. ``None`` with ``freeze=False`` leaves
            every layer trainable.

    Raises:
        InvalidInputError: Both options given, or an unknown layer.

    Example:
        >>> model = cx.models.build("vgg16", input_shape=(32, 32, 3), num_classes=2)
        >>> set_trainable(model.get_layer("vgg16"), trainable_from="block5_conv1")
        >>> [layer.name for layer in model.get_layer("vgg16").layers if layer.trainable]
        ['block5_conv1', 'block5_conv2', 'block5_conv3', 'block5_pool']
    """
    if freeze and trainable_from is not None:
        raise InvalidInputError(
            "freeze/trainable_from: freeze=True freezes the whole backbone; pass one of them"
        )
    layers = list(backbone.layers)
    if freeze:
        backbone.trainable = False
        return
    backbone.trainable = True
    if trainable_from is None:
        return
    start = _layer_index(backbone, layers, trainable_from)
    for index, layer in enumerate(layers):
        layer.trainable = index >= start


def _layer_index(backbone: keras.Model, layers: list[Any], which: str | int) -> int:
    if isinstance(which, int) and not isinstance(which, bool):
        if not -len(layers) <= which < len(layers):
            raise InvalidInputError(
                f"trainable_from: index {which} is outside the {len(layers)} layers of "
                f"{backbone.name}"
            )
        return which % len(layers)
    if isinstance(which, str):
        names = [layer.name for layer in layers]
        if which in names:
            return names.index(which)
        shown = ", ".join([*names[:3], "...", *names[-3:]] if len(names) > 8 else names)
        raise InvalidInputError(
            f"trainable_from: no layer {which!r} in the {backbone.name} backbone ({shown})"
        )
    raise InvalidInputError(
        f"trainable_from: expected a layer name, an index or None, got {which!r}"
    )


def _load_weights(model: keras.Model, base: keras.Model, path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"weights: no such file '{path}'")
    errors = []
    for target in (model, base):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # Keras lists every unmatched layer
                target.load_weights(path)
            return
        except (ValueError, OSError, KeyError, TypeError) as err:
            errors.append(f"{target.name}: {first_line(err)}")
    raise ModelLoadError(
        f"weights: '{path}' fits neither the whole model nor its backbone ({'; '.join(errors)})"
    )


def _make(name: str, backbone: str, *, description: str, source: str, binary_sigmoid: bool,
          trainable_from: str | None = None) -> Callable[..., keras.Model]:
    """Create and register the builder ``name`` around :func:`transfer_model`."""

    def builder(
        input_shape: InputShape,
        num_classes: int,
        *,
        weights: Weights = None,
        freeze: bool = False,
        trainable_from: str | int | None = trainable_from,
        dropout: float = 0.3,
        head: Head = "auto",
    ) -> keras.Model:
        return transfer_model(
            backbone, input_shape, num_classes, weights=weights, freeze=freeze,
            trainable_from=trainable_from, dropout=dropout, head=head,
            binary_sigmoid=binary_sigmoid, name=name,
        )

    rule = "2 classes give one sigmoid unit" if binary_sigmoid else "softmax units"
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"""Build ``{name}``: {description}.

    Args:
        input_shape: ``(height, width, channels)``, 1 or 3 channels, at least 32x32.
        num_classes: Number of classes ({rule}).
        weights: ``None``, ``"imagenet"`` or a local weights file (whole model or backbone).
        freeze: Freeze the whole backbone.
        trainable_from: Backbone layer (name or index) from which layers train
            (default {trainable_from!r}).
        dropout: Dropout rate of the head.
        head: ``"auto"``, ``"softmax"`` or ``"sigmoid"``.

    Returns:
        The model ``{name}``.

    Example:
        >>> {name}((32, 32, 1), 2).name
        '{name}'
    """
    head_kind = "sigmoid" if binary_sigmoid else "softmax"
    return register(name, description=description, source=source, head=head_kind,
                    min_size=MIN_BACKBONE_SIZE, transfer=True)(builder)


_ELWATANY = ("SaraElwatany/Pneumonia-Detection-using-Deep-learning-Approach-and-using-Grad-CAM-"
             "for-Visualization")
vgg16 = _make(
    "vgg16", "vgg16", binary_sigmoid=False, source=f"{_ELWATANY}, VGG16 transfer",
    description="VGG16 backbone (ImageNet caffe preprocessing) -> GAP -> Dropout -> Dense",
)
vgg19 = _make(
    "vgg19", "vgg19", binary_sigmoid=False, source=f"{_ELWATANY}, VGG19 transfer",
    description="VGG19 backbone (ImageNet caffe preprocessing) -> GAP -> Dropout -> Dense",
)
resnet50 = _make(
    "resnet50", "resnet50", binary_sigmoid=False,
    source=f"{_ELWATANY}, ResNet50 (trained from scratch there)",
    description="ResNet50 backbone (ImageNet caffe preprocessing) -> GAP -> Dropout -> Dense",
)
mobilenet_v2 = _make(
    "mobilenet_v2", "mobilenet_v2", binary_sigmoid=False,
    source=f"{_ELWATANY}, MobileNetV2 transfer",
    description="MobileNetV2 backbone (inputs scaled to [-1, 1]) -> GAP -> Dropout -> Dense",
)
densenet121 = _make(
    "densenet121", "densenet121", binary_sigmoid=True,
    source="CheXNet (Rajpurkar et al. 2017): DenseNet121 with sigmoid outputs",
    description="DenseNet121 backbone (ImageNet torch preprocessing) -> GAP -> Dropout -> Dense",
)
vgg19_finetune = _make(
    "vgg19_finetune", "vgg19", binary_sigmoid=True, trainable_from="block5_conv1",
    source="Maltanno/Phase4_Project, fine-tuned VGG19",
    description="VGG19 backbone, only block5 trainable -> GAP -> Dropout -> Dense",
)
