"""How far float32 rounding may move what a model computes: the tolerance of a test that
compares two computations of the same numbers (another batch size, a compiled pass against an
eager call, a reloaded model, another process).

A float32 sum of n terms lies within ``n * eps`` of the exact sum, relative to the sum of the
terms' magnitudes (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 3.1:
``gamma_n``). A model's output is built from such sums along its path: each Conv2D or Dense
output sums its fan-in products (kernel size x input channels), each global average pooling
its h x w values. To first order the layers' relative errors add up, so the output lies within
``sum_depth(model) * eps`` of the exact one, relative to the magnitude of its terms. The
order of those sums, and so the rounding, may change from one computation to another (oneDNN
picks kernels by shape, so by batch size; a traced graph fuses what an eager call runs op by
op): two computations may differ by twice that bound.

A plain module, imported as ``from rounding import ...`` (as ``tiny_models``); no cxrexplain.
"""

from __future__ import annotations

import keras
import numpy as np

EPS32 = float(np.finfo(np.float32).eps)


def sum_depth(model: keras.layers.Layer) -> int:
    """How many float32 terms the model sums along its path, all layers together (nested
    models included)."""
    if isinstance(model, (keras.layers.Conv2D, keras.layers.Dense)):
        return int(np.prod(model.kernel.shape[:-1]))
    if isinstance(model, keras.layers.GlobalAveragePooling2D):
        return int(np.prod(model.input.shape[1:3]))
    return sum(sum_depth(layer) for layer in getattr(model, "layers", []))


def output_tolerance(model: keras.layers.Layer, magnitude: float = 1.0) -> float:
    """How far two float32 computations of one output of ``magnitude`` may differ:
    ``2 * sum_depth(model) * eps * magnitude`` (for probabilities, ``magnitude`` 1)."""
    return 2.0 * sum_depth(model) * EPS32 * magnitude
