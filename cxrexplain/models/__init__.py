"""Reference model builders, one module per family, behind one registry.

``build(name, input_shape=..., num_classes=...)`` builds any of them; ``available()`` lists
them with the project (or paper) each follows; ``compile_for(model, task)`` compiles a model
with that project's settings and ``compile_recommended`` with ours. ``with_lung_focus(model,
segmenter)`` wraps any classifier so that it sees only the lungs
(:mod:`cxrexplain.models.lung_focus`).

====================  ================================================================  ===========
name                  architecture (the project it follows)                             two classes
====================  ================================================================  ===========
``cam_cnn``           Conv3x3+BN+ReLU(+MaxPool) x4 -> GAP -> Dropout -> Dense (Lovi07)  2 softmax
``two_block_cnn``     2 conv/pool blocks, Flatten -> Dense 128 (doguilmak)              1 sigmoid
``four_block_cnn``    4 conv/pool blocks, Flatten -> Dense 512 -> 264 (shafayet98)      2 softmax
``five_block_cnn``    5 convs, exact dilated max pooling, Dense 128 (SaraElwatany)      2 softmax
``dense_baseline``    Flatten -> Dense 128 -> Dense 64 (Maltanno)                       1 sigmoid
``vgg16``, ``vgg19``  backbone -> GAP -> Dropout -> Dense (SaraElwatany)                2 softmax
``resnet50``          backbone -> GAP -> Dropout -> Dense (SaraElwatany)                2 softmax
``mobilenet_v2``      backbone -> GAP -> Dropout -> Dense (SaraElwatany)                2 softmax
``densenet121``       backbone -> GAP -> Dropout -> Dense (CheXNet)                     1 sigmoid
``vgg19_finetune``    VGG19 with block5 trainable -> GAP -> Dense (Maltanno)            1 sigmoid
``lung_unet``         U-Net, 4 down / 4 up, sigmoid lung mask (no classes)              mask
====================  ================================================================  ===========

The former names ``seed_binary_cnn``, ``seed_softmax_cnn`` and ``seed_proposed_cnn`` still
build ``two_block_cnn``, ``four_block_cnn`` and ``five_block_cnn``, with a
``DeprecationWarning``; ``available()`` lists only the current names.

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(224, 224, 1), num_classes=2)
    >>> model.output_shape
    (None, 2)
"""

from __future__ import annotations

import importlib
import pkgutil

from cxrexplain.models.compile import (
    RECIPES,
    Recipe,
    compile_for,
    compile_recommended,
    metrics_for,
    recipe_for,
)
from cxrexplain.models.layers import DilatedMaxPooling2D, ImagenetPreprocessing
from cxrexplain.models.losses import SmoothedSparseCategoricalCrossentropy, loss_for
from cxrexplain.models.lung_focus import LungFocus, with_lung_focus
from cxrexplain.models.precision import is_mixed_precision, with_dtype_policy
from cxrexplain.models.registry import ModelInfo, available, build, dtype_policy_scope


def _import_families() -> None:
    """Import every public module of this package, in name order: a family module registers
    its builders (``@register``) when imported, so a new builder is one new module here (and
    its :data:`RECIPES` entry)."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_families()

__all__ = [
    "DilatedMaxPooling2D",
    "ImagenetPreprocessing",
    "LungFocus",
    "ModelInfo",
    "RECIPES",
    "Recipe",
    "SmoothedSparseCategoricalCrossentropy",
    "available",
    "build",
    "compile_for",
    "compile_recommended",
    "dtype_policy_scope",
    "is_mixed_precision",
    "loss_for",
    "metrics_for",
    "recipe_for",
    "with_dtype_policy",
    "with_lung_focus",
]
