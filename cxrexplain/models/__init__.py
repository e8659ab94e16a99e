"""Reference model builders, one module per family, behind one registry.

``build(name, input_shape=..., num_classes=...)`` builds any of them; ``available()`` lists
them with the seed project each follows; ``compile_for(model, task)`` compiles a model with its
seed's settings and ``compile_recommended`` with ours. ``with_lung_focus(model, segmenter)``
wraps any classifier so that it sees only the lungs (:mod:`cxrexplain.models.lung_focus`).

=====================  ==========================================================  =========
name                   architecture                                                two classes
=====================  ==========================================================  =========
``cam_cnn``            Conv3x3+BN+ReLU(+MaxPool) x4 -> GAP -> Dropout -> Dense      2 softmax
``seed_binary_cnn``    seed 2: 2 conv/pool blocks, Flatten -> Dense 128            1 sigmoid
``seed_softmax_cnn``   seed 3: 4 conv/pool blocks, Flatten -> Dense 512 -> 264      2 softmax
``seed_proposed_cnn``  seed 4: 5 convs, exact dilated max pooling, Dense 128       2 softmax
``dense_baseline``     seed 5: Flatten -> Dense 128 -> Dense 64                    1 sigmoid
``vgg16``, ``vgg19``   seed 4: backbone -> GAP -> Dropout -> Dense                  2 softmax
``resnet50``           seed 4: backbone -> GAP -> Dropout -> Dense                  2 softmax
``mobilenet_v2``       seed 4: backbone -> GAP -> Dropout -> Dense                  2 softmax
``densenet121``        CheXNet: backbone -> GAP -> Dropout -> Dense                 1 sigmoid
``vgg19_finetune``     seed 5: VGG19 with block5 trainable -> GAP -> Dense          1 sigmoid
``lung_unet``          U-Net, 4 down / 4 up, sigmoid lung mask (no classes)        mask
=====================  ==========================================================  =========

Example:
    >>> import cxrexplain as cx
    >>> model = cx.models.build("cam_cnn", input_shape=(224, 224, 1), num_classes=2)
    >>> model.output_shape
    (None, 2)
"""

from __future__ import annotations

from cxrexplain.models import cam_cnn as _cam_cnn
from cxrexplain.models import lung_unet as _lung_unet
from cxrexplain.models import seed_cnns as _seed_cnns
from cxrexplain.models import seed_dense as _seed_dense
from cxrexplain.models import transfer as _transfer
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

del _cam_cnn, _lung_unet, _seed_cnns, _seed_dense, _transfer  # imported to register their builders

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
