"""Reading lung masks: the one mask rule, nearest-neighbour resizing, matching files to films.

Every mask, from a file or an array, goes through the one mask rule of
:mod:`cxrexplain._arrays` (the same rule for the audit, the metrics, the drawing and the
training callback):

* ``bool``: as it is;
* floating point: probabilities, lung where the value is >= 0.5 (a soft mask of 0.3 is empty);
* integers: a label image, lung above half of the mask's largest value (0/1, 0/255 and 16-bit
  masks agree, and JPEG-compressed masks whose background is not exactly zero); an all-zero
  mask is empty.

Mask files are read at their stored integer type (:func:`cxrexplain.io.load_mask`), so a PNG
of 0/1 values is read as 0/1 and takes the integer rule.

Example:
    >>> import numpy as np
    >>> from cxrexplain.lungs.masks import binary_masks
    >>> binary_masks(np.array([[[0, 1], [1, 1]]]), size=(4, 4)).sum()
    np.int64(12)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrexplain._arrays import as_masks
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import find_images, load_masks

__all__ = ["binary_masks", "match_masks", "read_masks"]


def binary_masks(masks: Any, *, size: tuple[int, int] | None = None,
                 name: str = "masks") -> np.ndarray:
    """``(N, H, W)`` bool masks from an array of masks, resized (nearest) to ``size``.

    Args:
        masks: ``(N, H, W)`` or ``(N, H, W, 1)`` numbers (bool, 0/1, 0/255, probabilities),
            or one ``(H, W)`` mask; read by the mask rule (module docs).
        size: ``(height, width)`` to resize to, or None to keep the size.
        name: The argument's name, for messages.

    Returns:
        A bool array.

    Raises:
        InvalidInputError: Not numbers, or a shape that is not a stack of 2-D masks.

    Example:
        >>> binary_masks(np.array([[0, 255], [0, 255]], np.uint8)).tolist()
        [[[False, True], [False, True]]]
    """
    return as_masks(masks, size=size, name=name)


def read_masks(sources: Any, *, size: tuple[int, int] | None = None,
               name: str = "masks") -> list[np.ndarray] | np.ndarray:
    """Masks from files or arrays as bool arrays (files at their stored type, module docs).

    Args:
        sources: A list of mask files (any format :func:`cxrexplain.load_image` reads) or of
            2-D arrays, or an ``(N, H, W)`` array.
        size: Resize every mask to ``(height, width)`` (nearest neighbour); then the result
            is one ``(N, H, W)`` array. None: each mask at its own size, as a list.
        name: The argument's name, for messages.

    Returns:
        ``(N, H, W)`` bool when ``size`` is given or an array was given, else a list of 2-D
        bool arrays.

    Raises:
        ImageLoadError: A file cannot be read.
        InvalidInputError: No masks, or a malformed one.

    Example:
        >>> read_masks([np.eye(4), np.ones((2, 2))], size=(2, 2)).shape
        (2, 2, 2)
    """
    if isinstance(sources, np.ndarray) and sources.ndim >= 3:
        return binary_masks(sources, size=size, name=name)
    masks = load_masks(sources, size=size, name=name)
    return np.stack(masks) if size is not None else masks


def match_masks(images: Sequence[Path], mask_dir: str | os.PathLike[str], *,
                image_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The mask file of each image in ``mask_dir``.

    A mask matches an image when it has the same path relative to the two folders, or
    failing that the same file name anywhere under ``mask_dir``; either may differ in the
    suffix (``a.jpg`` and ``a.png``) and the mask may end in ``_mask`` (``a_mask.png``, the
    Shenzhen set's naming).

    Args:
        images: The image files.
        mask_dir: The folder of masks (searched recursively).
        image_root: The folder the images' relative paths start from (default: their common
            parent).

    Returns:
        One mask path per image, in order.

    Raises:
        InvalidInputError: ``mask_dir`` is not a folder, an image has no mask, or a name
            fits two masks (the message lists up to ten such images).

    Example:
        >>> [p.name for p in match_masks([Path("x/a.png")], "masks")]  # doctest: +SKIP
        ['a_mask.png']
    """
    folder = Path(os.fspath(mask_dir))
    if not folder.is_dir():
        raise InvalidInputError(f"masks: '{folder}' is not a folder of mask files")
    masks = find_images(folder)
    if image_root is not None:
        root = Path(os.fspath(image_root))
    else:
        root = Path(os.path.commonpath([str(p.parent.absolute()) for p in images])) if images \
            else folder
    by_relative: dict[tuple[str, ...], list[Path]] = {}
    by_name: dict[str, list[Path]] = {}
    for mask in masks:
        relative = mask.relative_to(folder)
        for stem in _stems(mask.stem):
            by_relative.setdefault((*relative.parent.parts, stem), []).append(mask)
            by_name.setdefault(stem, []).append(mask)
    matched: list[Path] = []
    missing: list[str] = []
    ambiguous: list[str] = []
    for image in images:
        try:
            parts = image.absolute().relative_to(root).parent.parts
        except ValueError:
            parts = ()
        found = by_relative.get((*parts, image.stem)) or by_name.get(image.stem) or []
        unique = sorted(set(found))
        if len(unique) == 1:
            matched.append(unique[0])
        elif not unique:
            missing.append(str(image))
        else:
            ambiguous.append(f"{image} ({', '.join(p.name for p in unique[:3])})")
    if missing or ambiguous:
        parts_text = []
        if missing:
            parts_text.append(f"{len(missing)} image(s) have no mask in '{folder}': "
                              + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
        if ambiguous:
            parts_text.append(f"{len(ambiguous)} image(s) match several masks: "
                              + ", ".join(ambiguous[:10]))
        raise InvalidInputError(
            "masks: " + "; ".join(parts_text) + " (a mask matches by relative path or file "
            "name, any image suffix, optionally ending in _mask)"
        )
    return matched


def _stems(stem: str) -> tuple[str, ...]:
    """The image stems a mask's stem can stand for: itself, and without a ``_mask`` ending."""
    for ending in ("_mask", "-mask", "_lungs", "_lung"):
        if stem.lower().endswith(ending) and len(stem) > len(ending):
            return stem, stem[: -len(ending)]
    return (stem,)
