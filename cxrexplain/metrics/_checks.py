"""How the metrics read masks (private): arrays or mask files, by the one mask rule.

Maps are read with :func:`cxrexplain._arrays.as_heatmaps` and resized with
:func:`cxrexplain._arrays.resize_heatmaps`; masks come through :func:`as_masks` below, which
adds mask files to what :func:`cxrexplain._arrays.as_masks` reads (files at their stored
type, :func:`cxrexplain.io.load_masks`), so every metric reads a mask as the audit does.

Example:
    >>> import numpy as np
    >>> as_masks(np.array([[0, 255], [0, 255]], np.uint8), 1, (2, 4)).tolist()
    [[[False, False, True, True], [False, False, True, True]]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrexplain.errors import InvalidInputError
from cxrexplain.io import load_masks

__all__ = ["as_masks"]


def as_masks(masks: Any, count: int | None = None, size: tuple[int, int] | None = None,
             name: str = "masks") -> np.ndarray:
    """``(N, H, W)`` bool masks from an array or a list of arrays or mask files.

    Args:
        masks: ``(N, H, W)`` or ``(N, H, W, 1)`` numbers, one ``(H, W)`` mask, or a list of
            2-D arrays or mask files.
        count: The number of masks expected (None: any).
        size: ``(height, width)`` to resize to (nearest neighbour); None: their own size,
            which must then be one size.
        name: The argument's name, for messages.

    Raises:
        ImageLoadError: A mask file cannot be read.
        InvalidInputError: Not masks, not ``count`` of them, or of several sizes without
            ``size``.
    """
    read = load_masks(masks, count=count, size=size, name=name)
    shapes = sorted({mask.shape for mask in read})
    if len(shapes) > 1:
        raise InvalidInputError(
            f"{name}: the masks differ in size ({', '.join(map(str, shapes[:4]))}); give "
            "masks of one size"
        )
    return np.stack(read)
