"""The published class activation map formulas in plain NumPy: the reference the explainers are
held to, by ``tests/test_explain.py`` and by ``benchmarks/map_agreement.py``.

Independent of cxrexplain on purpose: nothing here imports it (nor TensorFlow or Keras). The
caller takes the target layer's activations ``a`` and the gradients ``g`` of the target score
(the logit, before any softmax) with respect to them by its own means; for Score-CAM it passes
its own upsampling and forward pass. ``a`` and ``g`` are ``(n, h, w, k)``; every map returned is
``(n, h, w)`` with the final ReLU applied, except Eigen-CAM's projection, returned before it
(its sign is the SVD's choice, which the caller compares up to sign).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Array = np.ndarray


def divide_or_zero(num: Array, den: Array) -> Array:
    """``num / den``, 0 where ``den`` is 0."""
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def weighted_map(a: Array, weights: Array) -> Array:
    """``ReLU(sum_k weights_k A_k)`` for per-image channel weights ``(n, k)``."""
    return np.maximum(np.einsum("nhwk,nk->nhw", a, weights), 0.0)


def gradcam(a: Array, g: Array) -> Array:
    """Selvaraju et al. 2017, eq. 1-2: ``ReLU(sum_k mean_ij(g_k) A_k)``."""
    return weighted_map(a, g.mean(axis=(1, 2)))


def gradcampp_alpha(a: Array, g: Array) -> Array:
    """Chattopadhay et al. 2018, the closed-form alpha with the exponential score (the exp
    factor cancels in alpha and scales every weight of an image alike):
    ``alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)``, 0 where the denominator is 0."""
    total = a.sum(axis=(1, 2), keepdims=True)
    return divide_or_zero(g**2, 2 * g**2 + total * g**3)


def gradcampp(a: Array, g: Array) -> Array:
    """Grad-CAM++: ``ReLU(sum_k w_k A_k)`` with ``w_k = sum_ij alpha relu(g)``."""
    return weighted_map(a, (gradcampp_alpha(a, g) * np.maximum(g, 0)).sum(axis=(1, 2)))


def hirescam(a: Array, g: Array) -> Array:
    """Draelos and Carin 2020: ``ReLU(sum_k g_k * A_k)``, location-wise."""
    return np.maximum((g * a).sum(axis=-1), 0.0)


def layercam(a: Array, g: Array) -> Array:
    """Jiang et al. 2021: ``ReLU(sum_k relu(g_k) * A_k)``, location-wise."""
    return np.maximum((np.maximum(g, 0) * a).sum(axis=-1), 0.0)


GRADIENT_FORMULAS: dict[str, Callable[[Array, Array], Array]] = {
    "gradcam": gradcam, "gradcampp": gradcampp, "hirescam": hirescam, "layercam": layercam}


def cam(a: Array, kernel: Array, targets: Sequence[int] | Array) -> Array:
    """Zhou et al. 2016: ``ReLU(sum_k W_k,c A_k)`` with ``W`` the ``(k, classes)`` kernel of the
    Dense layer after global average pooling and ``c`` each image's target."""
    return np.maximum(np.einsum("nhwk,kn->nhw", a, kernel[:, np.asarray(targets)]), 0.0)


def scorecam(a: Array, images: Array, targets: Sequence[int] | Array,
             probabilities: Callable[[Array], Array], upsample: Callable[[Array], Array],
             *, epsilon: float = 0.0) -> Array:
    """Wang et al. 2020, with the authors' softmax weights: each channel of image i upsampled
    to the input (``upsample``: ``(h, w, k)`` to ``(H, W, k)``), min-max scaled to a mask in
    [0, 1], and weighted by the target's probability on the masked image (``probabilities``:
    a ``(k, H, W, c)`` float32 batch to ``(k, classes)``).

    ``epsilon=0``: ``(x - min) / (max - min)``, and a constant channel gets mask 0 and weight
    0; ``epsilon > 0``: ``(x - min) / (max - min + epsilon)`` everywhere (tf-keras-vis)."""
    n, h, w, _ = a.shape
    maps = np.zeros((n, h, w))
    for i in range(n):
        up = upsample(a[i])
        low, high = up.min(axis=(0, 1)), up.max(axis=(0, 1))
        if epsilon:
            masks = (up - low) / (high - low + epsilon)
        else:
            masks = divide_or_zero(up - low, np.broadcast_to(high - low, up.shape))
        masked = images[i][None] * np.moveaxis(masks, -1, 0)[..., None]  # (k, H, W, c)
        weights = np.asarray(probabilities(masked.astype(np.float32)), np.float64)[:, targets[i]]
        if not epsilon:
            weights = np.where(high - low > 0, weights, 0.0)
        maps[i] = np.maximum(a[i] @ weights, 0.0)
    return maps


def eigencam_projection(a: Array) -> Array:
    """Muhammad and Yeasin 2020, as pytorch-grad-cam's ``get_2d_projection`` computes it: per
    image, NaN set to 0, the ``(h*w, k)`` activations minus their mean over locations,
    projected on the first right-singular vector of that matrix; ``(n, h, w)`` before ReLU."""
    a = np.nan_to_num(np.asarray(a, np.float64), nan=0.0, posinf=np.inf, neginf=-np.inf)
    n, h, w, k = a.shape
    maps = np.zeros((n, h, w))
    for i in range(n):
        rows = a[i].reshape(h * w, k)
        rows = rows - rows.mean(axis=0)
        _, _, vt = np.linalg.svd(rows, full_matrices=True)
        maps[i] = (rows @ vt[0, :]).reshape(h, w)
    return maps


def numpy_dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Brute force: a pixel is in when a mask pixel lies within ``radius`` (Euclidean)."""
    height, width = mask.shape
    out = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius:
                continue
            shifted = np.zeros_like(mask)
            shifted[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = \
                mask[max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
            out |= shifted
    return out
