"""Where the lungs come from: one ``lungs=`` argument, turned into masks batch by batch.

:func:`lung_source` reads what the audit (:func:`cxrexplain.audit`), the swap test
(:func:`cxrexplain.metrics.swap_test`) and ``cxrexplain audit`` accept as ``lungs=`` (a
:class:`~cxrexplain.lungs.LungSegmenter` or its ``.keras`` file, a Keras lung-mask model, an
``(N, H, W)`` mask array, a list of 2-D mask arrays or mask files, or a folder of masks
matched to the film paths by name) and gives a :class:`LungSource`, which hands out the masks
of a batch of loaded films. The distributed audit reads its ``lungs`` column through it too.

One rule differs between its users, the **size rule** (``sizes=``):

* ``"film"`` (the audit): a mask must have its film's size as loaded; a mask of another size
  is taken for a mask of another film and refused. The masks are then resized (nearest) to
  the explanation's size.
* ``"resize"`` (the swap test, which works on films already resized to the classifier's
  input): a mask of any size is resized (nearest neighbour, :mod:`cxrexplain._arrays`) to the
  size asked for.

Every mask goes through the one mask rule of :mod:`cxrexplain._arrays`; the masks of an array
are checked for emptiness when the source is made, those of files when they are read.

Example:
    >>> import numpy as np
    >>> from cxrexplain.lungs.source import lung_source
    >>> masks = np.zeros((2, 8, 8), bool); masks[:, 2:6, 2:6] = True
    >>> films = [np.zeros((8, 8, 1), np.float32)] * 2
    >>> lung_source(masks, None, 2).masks(0, films, (4, 4)).sum(axis=(1, 2)).tolist()
    [4, 4]
    >>> lung_source(masks, None, 2, sizes="resize").masks(0, [np.zeros((16, 16, 1))] * 2,
    ...                                                  (16, 16)).shape
    (2, 16, 16)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np

from cxrexplain._checks import check_choice, describe, first_line
from cxrexplain.errors import CxrExplainError, InvalidInputError
from cxrexplain.lungs.masks import binary_masks, match_masks, read_masks
from cxrexplain.lungs.segmenter import LungSegmenter

__all__ = ["SIZE_RULES", "LungSource", "SizeRule", "empty_masks", "lung_source"]

SizeRule = Literal["film", "resize"]
"""``"film"``: masks of their film's size; ``"resize"``: masks of any size (module docs)."""

SIZE_RULES: tuple[SizeRule, ...] = ("film", "resize")


class LungSource:
    """Lung masks for batches of loaded films, from a segmenter, arrays or mask files.

    Args:
        segmenter: A lung segmenter (masks of any film).
        masks: ``(N, H, W)`` bool masks, or a list of 2-D bool masks (of any sizes with
            ``sizes="resize"``), one per film.
        paths: Mask files, one per film.
        sizes: The size rule (module docs).

    Example:
        >>> src = LungSource(masks=np.ones((3, 4, 4), bool))
        >>> src.count(), src.masks(1, [np.zeros((4, 4, 1))], (2, 2)).shape
        (3, (1, 2, 2))
    """

    def __init__(self, *, segmenter: LungSegmenter | None = None,
                 masks: np.ndarray | Sequence[np.ndarray] | None = None,
                 paths: Sequence[Path] | None = None, sizes: SizeRule = "film") -> None:
        self.segmenter = segmenter
        self.array = masks
        self.paths = None if paths is None else list(paths)
        self.sizes: SizeRule = check_choice(sizes, "sizes", SIZE_RULES)

    def with_sizes(self, sizes: SizeRule) -> LungSource:
        """The same masks under another size rule (the audit's source, for the swap test)."""
        return LungSource(segmenter=self.segmenter, masks=self.array, paths=self.paths,
                          sizes=sizes)

    def count(self) -> int | None:
        """How many masks it holds (None: a segmenter, any number)."""
        if self.array is not None:
            return len(self.array)
        return None if self.paths is None else len(self.paths)

    def masks(self, start: int, films: Sequence[np.ndarray], size: tuple[int, int]
              ) -> np.ndarray:
        """``(n, *size)`` bool masks of the films ``start .. start + n`` (loaded films).

        Raises:
            InvalidInputError: Under the ``"film"`` rule a mask whose size is not its
                film's; a mask file that is empty.
            ImageLoadError: A mask file cannot be read.
        """
        if self.segmenter is not None:
            return np.stack(self.segmenter.segment_loaded(list(films), size=size))
        if self.array is not None:
            chosen = list(self.array[start : start + len(films)])
            names = [f"lungs[{start + i}]" for i in range(len(films))]
        else:
            assert self.paths is not None
            files = self.paths[start : start + len(films)]
            chosen = list(read_masks(files, name="lungs"))
            names = [f"lungs '{p}'" for p in files]
        out = []
        for name, mask, film in zip(names, chosen, films, strict=True):
            if self.sizes == "film" and mask.shape != film.shape[:2]:
                raise InvalidInputError(
                    f"{name}: the mask is {mask.shape[0]}x{mask.shape[1]} but its film is "
                    f"{film.shape[0]}x{film.shape[1]}; give masks of the films' size"
                )
            if not mask.any():
                raise InvalidInputError(f"{name}: the mask is empty (no lung pixel)")
            out.append(mask)
        return np.stack([binary_masks(m, size=size, name="lungs")[0] for m in out])


def lung_source(lungs: Any, paths: Sequence[Path] | None, count: int, *,
                sizes: SizeRule = "film",
                image_root: str | os.PathLike[str] | None = None) -> LungSource:
    """Turn a ``lungs=`` argument into a :class:`LungSource`.

    Args:
        lungs: A :class:`LungSegmenter` (or its ``.keras`` file), a Keras lung-mask model, an
            ``(N, H, W)`` mask array, a list of 2-D mask arrays or of mask files, a folder of
            masks matched to the film paths (:func:`cxrexplain.lungs.match_masks`), or a
            :class:`LungSource` (taken under the size rule ``sizes``).
        paths: The film paths (None for arrays).
        count: The number of films.
        sizes: The size rule (module docs).
        image_root: Where the films' relative paths start, for matching a folder of masks
            (default: the films' common parent).

    Returns:
        The :class:`LungSource`.

    Raises:
        InvalidInputError: A count that differs, empty masks, masks of several sizes under
            the ``"film"`` rule, or something else.

    Example:
        >>> lung_source(np.ones((2, 4, 4)), None, 2).count()
        2
    """
    check_choice(sizes, "sizes", SIZE_RULES)
    if isinstance(lungs, LungSource):
        return lungs.with_sizes(sizes)
    if isinstance(lungs, LungSegmenter):
        return LungSource(segmenter=lungs, sizes=sizes)
    if isinstance(lungs, keras.Model):
        try:
            return LungSource(segmenter=LungSegmenter(lungs), sizes=sizes)
        except CxrExplainError as err:
            raise InvalidInputError(f"lungs: {first_line(err)}") from err
    if isinstance(lungs, (str, os.PathLike)):
        path = Path(os.fspath(lungs))
        if path.is_dir():
            if paths is None:
                raise InvalidInputError(
                    "lungs: a folder of masks is matched by file name and needs film paths; "
                    "with arrays, give an (N, H, W) mask array"
                )
            try:
                return LungSource(paths=match_masks(paths, path, image_root=image_root),
                                  sizes=sizes)
            except InvalidInputError as err:  # its messages say masks: the argument is lungs
                raise InvalidInputError(
                    "lungs: " + str(err).removeprefix("masks: ")) from err
        if path.suffix == ".keras":
            return LungSource(segmenter=LungSegmenter.load(path), sizes=sizes)
        lungs = [path]
    if isinstance(lungs, np.ndarray):
        masks = binary_masks(lungs, name="lungs")
        _check_count(len(masks), count)
        _check_not_empty(list(masks))
        return LungSource(masks=masks, sizes=sizes)
    if isinstance(lungs, Iterable) and not isinstance(lungs, (bytes, bytearray)):
        items = list(lungs)
        if items and all(isinstance(i, (str, os.PathLike)) for i in items):
            _check_count(len(items), count)
            return LungSource(paths=[Path(os.fspath(i)) for i in items], sizes=sizes)
        if items and all(isinstance(i, np.ndarray) for i in items):
            if len({np.shape(i) for i in items}) == 1:
                return lung_source(np.stack(items), paths, count, sizes=sizes)
            if sizes == "film":
                raise InvalidInputError(
                    "lungs: the mask arrays differ in size; give one (N, H, W) array of the "
                    "films' size"
                )
            masks_list = [binary_masks(i, name=f"lungs[{k}]")[0] for k, i in enumerate(items)]
            _check_count(len(masks_list), count)
            _check_not_empty(masks_list)
            return LungSource(masks=masks_list, sizes=sizes)
    raise InvalidInputError(
        f"lungs: expected a LungSegmenter, a lungs .keras file, an (N, H, W) mask array, a "
        f"list of mask arrays or files or a folder of masks, got {describe(lungs)}"
    )


def empty_masks(masks: np.ndarray, start: int = 0, *, what: str = "no lung pixel"
                ) -> InvalidInputError | None:
    """The error for the empty masks among ``masks`` (positions from ``start``), or None.

    Example:
        >>> str(empty_masks(np.zeros((2, 2, 2), bool), 5))
        'lungs: 2 mask(s) are empty (no lung pixel), at positions 5, 6'
    """
    empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
    if not len(empty):
        return None
    return InvalidInputError(
        f"lungs: {len(empty)} mask(s) are empty ({what}), at positions "
        f"{', '.join(map(str, (empty[:10] + start).tolist()))}"
        + (" ..." if len(empty) > 10 else "")
    )


def _check_not_empty(masks: list[np.ndarray]) -> None:
    error = empty_masks(np.array([m.any() for m in masks])[:, None, None])
    if error is not None:
        raise error


def _check_count(masks: int, films: int) -> None:
    if masks != films:
        raise InvalidInputError(
            f"lungs: expected one mask per film, got {masks} masks for {films} films"
        )
