"""The (image, channel) pairs of the channel-wise CAMs (private).

Score-CAM and Ablation-CAM weight each channel of the target layer by a pass of the model
per (image, channel) pair: the input masked by the channel's map, or the layer with the
channel zeroed. Both choose the pairs alike (each image's top channels by mean activation,
all by default) and score them in chunks that bound the memory; this module is that choice
and that loop, written once.

Example:
    >>> import numpy as np
    >>> acts = np.zeros((2, 1, 1, 3), np.float32)
    >>> acts[0, 0, 0] = [1, 3, 2]
    >>> acts[1, 0, 0] = [5, 4, 6]
    >>> top_channel_pairs(acts, 2)
    (array([0, 0, 1, 1], dtype=int32), array([1, 2, 2, 0], dtype=int32))
    >>> score_pairs(lambda i, c: (10 * i + c).astype(np.float32), *top_channel_pairs(acts, 2),
    ...             chunk=3)
    array([ 1.,  2., 12., 10.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cxrexplain._checks import check_int

__all__ = ["check_max_channels", "score_pairs", "top_channel_pairs"]


def check_max_channels(value: int | None) -> int | None:
    """``None`` (every channel) or a positive count."""
    return None if value is None else check_int(value, "max_channels")


def top_channel_pairs(activations: np.ndarray, max_channels: int | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Image-major pairs ``(pair_image, pair_channel)``: each image's ``max_channels``
    channels of largest mean activation, largest first (ties: lower index first); every
    channel when ``max_channels`` is ``None``."""
    maps = np.asarray(activations, np.float32)
    count, channels = maps.shape[0], maps.shape[-1]
    keep = channels if max_channels is None else min(max_channels, channels)
    order = np.argsort(-maps.mean(axis=(1, 2)), axis=1, kind="stable")[:, :keep]
    return (np.repeat(np.arange(count, dtype=np.int32), keep),
            order.reshape(-1).astype(np.int32))


def score_pairs(score: Callable[[np.ndarray, np.ndarray], object], pair_image: np.ndarray,
                pair_channel: np.ndarray, *, chunk: int) -> np.ndarray:
    """``score(images, channels)`` of every pair, ``chunk`` pairs per call, as float32."""
    parts = [np.asarray(score(pair_image[start:start + chunk],
                              pair_channel[start:start + chunk]), np.float32)
             for start in range(0, len(pair_image), chunk)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
