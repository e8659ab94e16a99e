"""Boxes and masks of the films of a records table, stored compactly, masks decoded on demand.

A collection annotates few of its films, so a :class:`~cxrexplain.data.Records` keeps, per
finding, only the annotated films:

* :class:`FilmBoxes`: one row per box, ``film`` (its film's index in the table) and ``boxes``
  ``(B, 4)`` ``(x, y, width, height)`` in the film's own pixels, top-left origin (the
  project's convention, :mod:`cxrexplain.data.boxes`);
* :class:`FilmMasks`: one entry per mask, ``film`` and a *mask code*: anything with a
  ``shape`` ``(height, width)`` and a ``decode()`` returning that ``(H, W)`` bool mask
  (:class:`MaskCode`). A code is small (a run-length code, polygons), so a table of 12,000
  SIIM films holds no pixels until masks are asked for. Two codes here:

  - :class:`RunLength`: COCO's uncompressed run lengths, alternating runs of 0 and 1 starting
    with 0, column-major (``order="F"``, COCO and SIIM) or row-major;
  - :class:`Polygons`: polygons in pixel coordinates, filled by OpenCV.

Example:
    >>> mask = np.zeros((3, 4), bool); mask[1, 1:3] = True
    >>> code = RunLength.from_mask(mask)
    >>> code.counts, code.shape
    ((4, 1, 2, 1, 4), (3, 4))
    >>> bool((code.decode() == mask).all())
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from cxrexplain._arrays import as_boxes
from cxrexplain.data.shapes import polygon_mask
from cxrexplain.errors import InvalidInputError

__all__ = ["FilmBoxes", "FilmMasks", "MaskCode", "Polygons", "RunLength", "take_rows"]


@runtime_checkable
class MaskCode(Protocol):
    """A mask stored small, decoded on demand: a ``shape`` and a ``decode()``."""

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the decoded mask."""
        ...  # pragma: no cover

    def decode(self) -> np.ndarray:
        """The ``(height, width)`` bool mask."""
        ...  # pragma: no cover


def _check_shape(shape: Any, name: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: expected (height, width), got {shape!r}") from None
    if height <= 0 or width <= 0:
        raise InvalidInputError(f"{name}: expected a positive (height, width), got {shape!r}")
    return height, width


@dataclass(frozen=True)
class RunLength:
    """A mask as COCO's uncompressed run lengths.

    Attributes:
        counts: Alternating run lengths of 0s and 1s, starting with 0s (a mask starting with
            a 1 has a first count of 0). They may cover fewer pixels than the mask (the rest
            is 0), never more.
        shape: ``(height, width)``.
        order: ``"F"``: the runs go down the columns (COCO, SIIM); ``"C"``: along the rows.

    Example:
        >>> RunLength((1, 1), (2, 2)).decode().astype(int).tolist()  # column-major
        [[0, 0], [1, 0]]
        >>> RunLength((1, 1), (2, 2), order="C").decode().astype(int).tolist()
        [[0, 1], [0, 0]]
    """

    counts: tuple[int, ...]
    shape: tuple[int, int]
    order: Literal["F", "C"] = "F"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _check_shape(self.shape, "shape"))
        counts = tuple(int(c) for c in self.counts)
        if any(c < 0 for c in counts) or sum(counts) > self.shape[0] * self.shape[1]:
            raise InvalidInputError(
                f"counts: expected non-negative run lengths covering at most "
                f"{self.shape[0]} x {self.shape[1]} pixels, got {sum(counts)} pixels"
                + (" (a negative run)" if any(c < 0 for c in counts) else ""))
        if self.order not in ("F", "C"):
            raise InvalidInputError(f"order: expected 'F' or 'C', got {self.order!r}")
        object.__setattr__(self, "counts", counts)

    def decode(self) -> np.ndarray:
        """The ``(height, width)`` bool mask."""
        height, width = self.shape
        flat = np.zeros(height * width, bool)
        runs = np.repeat(np.arange(len(self.counts)) % 2 == 1, self.counts)
        flat[:len(runs)] = runs
        return flat.reshape((height, width), order=self.order)

    @classmethod
    def from_mask(cls, mask: np.ndarray, order: Literal["F", "C"] = "F") -> RunLength:
        """The run lengths of a 2-D mask (anything non-zero is inside)."""
        array = np.asarray(mask)
        if array.ndim != 2:
            raise InvalidInputError(f"mask: expected a 2-D mask, got shape {array.shape}")
        flat = array.astype(bool).reshape(-1, order=order)
        edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
        bounds = np.concatenate([[0], edges, [flat.size]])
        counts = np.diff(bounds).tolist()
        if flat.size and flat[0]:
            counts = [0, *counts]
        return cls(tuple(int(c) for c in counts), (array.shape[0], array.shape[1]), order)


@dataclass(frozen=True)
class Polygons:
    """A mask as polygons in pixel coordinates, filled on demand (OpenCV ``fillPoly``).

    Attributes:
        polygons: Each an ``(P, 2)`` array of ``(x, y)`` vertices (P >= 3); their union is
            the mask. Each polygon is filled with its outline, a vertex in the pixel
            ``(floor(x), floor(y))`` (CheXlocalize's rule; :mod:`cxrexplain.data.shapes`).
        shape: ``(height, width)``.

    Example:
        >>> square = Polygons(([[1, 1], [3, 1], [3, 3], [1, 3]],), (5, 5))
        >>> int(square.decode().sum())
        9
    """

    polygons: tuple[np.ndarray, ...]
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _check_shape(self.shape, "shape"))
        checked = []
        for i, points in enumerate(self.polygons):
            array = np.asarray(points, np.float64)
            if array.ndim != 2 or array.shape[1] != 2 or len(array) < 3 or not np.isfinite(
                    array).all():
                raise InvalidInputError(
                    f"polygons[{i}]: expected at least three finite (x, y) points, got shape "
                    f"{array.shape}")
            checked.append(array)
        object.__setattr__(self, "polygons", tuple(checked))

    def decode(self) -> np.ndarray:
        """The ``(height, width)`` bool mask."""
        return polygon_mask(self.polygons, self.shape)


def take_rows(film: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a ``film`` column sorted ascending, the rows of the films at ``indices``, in order.

    Returns:
        ``(rows, new_film)``: the row positions into the old table, and each row's position
        in ``indices`` (its film's index in the subset; a film taken twice has its rows
        twice).

    Example:
        >>> take_rows(np.array([0, 2, 2, 3]), np.array([2, 0, 2]))
        (array([1, 2, 0, 1, 2]), array([0, 0, 1, 2, 2]))
    """
    starts = np.searchsorted(film, indices, side="left")
    ends = np.searchsorted(film, indices, side="right")
    counts = ends - starts
    new_film = np.repeat(np.arange(len(indices)), counts)
    offsets = np.repeat(starts - (np.cumsum(counts) - counts), counts)
    rows = offsets + np.arange(int(counts.sum()))
    return rows.astype(np.int64), new_film.astype(np.int64)


def _films(film: Any, count: int, name: str) -> np.ndarray:
    array = np.asarray(film)
    if array.size == 0:
        return np.zeros(0, np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise InvalidInputError(f"{name}: expected a 1-D array of film indices, got "
                                f"{array.dtype} of shape {array.shape}")
    if count >= 0 and ((array < 0).any() or (array >= count).any()):
        raise InvalidInputError(f"{name}: film indices must lie in [0, {count}), got "
                                f"{int(array.min())} .. {int(array.max())}")
    return array.astype(np.int64)


@dataclass(frozen=True)
class FilmBoxes:
    """The boxes of one finding: a film index and an ``(x, y, width, height)`` row per box.

    Rows are kept sorted by film (stable: a film's boxes keep their order).

    Example:
        >>> found = FilmBoxes(np.array([2, 0]), np.array([[5, 5, 2, 2], [1, 1, 3, 3]]))
        >>> found.film.tolist(), [b.tolist() for b in found.per_film(3)]
        ([0, 2], [[[1.0, 1.0, 3.0, 3.0]], [], [[5.0, 5.0, 2.0, 2.0]]])
    """

    film: np.ndarray
    boxes: np.ndarray

    def __post_init__(self) -> None:
        film = _films(self.film, -1, "film")
        boxes = (as_boxes(self.boxes, "boxes") if np.asarray(self.boxes).size
                 else np.zeros((0, 4)))
        if len(film) != len(boxes):
            raise InvalidInputError(
                f"boxes: {len(boxes)} boxes for {len(film)} film indices")
        order = np.argsort(film, kind="stable")
        object.__setattr__(self, "film", film[order])
        object.__setattr__(self, "boxes", boxes[order])

    @classmethod
    def from_lists(cls, per_film: Sequence[Any], name: str = "boxes") -> FilmBoxes:
        """From one entry per film: None, one box, or an ``(M, 4)`` array (``(0, 4)``: none).

        Example:
            >>> FilmBoxes.from_lists([None, [1, 2, 3, 4]]).film.tolist()
            [1]
        """
        films: list[int] = []
        rows: list[np.ndarray] = []
        for i, entry in enumerate(per_film):
            if entry is None or np.asarray(entry).size == 0:
                continue
            boxes = as_boxes(entry, f"{name}[{i}]")
            films.extend([i] * len(boxes))
            rows.append(boxes)
        return cls(np.asarray(films, np.int64),
                   np.concatenate(rows) if rows else np.zeros((0, 4)))

    def per_film(self, count: int) -> list[np.ndarray]:
        """One ``(M, 4)`` float64 array per film of ``count`` (``(0, 4)`` without boxes)."""
        bounds = np.searchsorted(self.film, np.arange(count + 1))
        return [self.boxes[bounds[i]:bounds[i + 1]] for i in range(count)]

    def take(self, indices: np.ndarray) -> FilmBoxes:
        """The boxes of the films at ``indices`` (renumbered by their position there)."""
        rows, film = take_rows(self.film, indices)
        return FilmBoxes(film, self.boxes[rows])

    def shift(self, offset: int) -> FilmBoxes:
        """The same boxes with every film index moved by ``offset`` (to pool tables)."""
        return FilmBoxes(self.film + offset, self.boxes)


@dataclass(frozen=True)
class FilmMasks:
    """The masks of one finding: a film index and a :class:`MaskCode` per mask.

    A film may have several masks (their union is its mask). Kept sorted by film.

    Example:
        >>> found = FilmMasks(np.array([1]), (RunLength((0, 4), (2, 2)),))
        >>> found.film.tolist(), found.codes[0].decode().all()
        ([1], np.True_)
    """

    film: np.ndarray
    codes: tuple[Any, ...] = field(default=())

    def __post_init__(self) -> None:
        film = _films(self.film, -1, "film")
        codes = tuple(self.codes)
        if len(film) != len(codes):
            raise InvalidInputError(f"masks: {len(codes)} mask codes for {len(film)} films")
        for i, code in enumerate(codes):
            if not isinstance(code, MaskCode):
                raise InvalidInputError(
                    f"masks[{i}]: expected a mask code (RunLength, Polygons or anything with "
                    f"shape and decode()), got {type(code).__name__}")
        order = np.argsort(film, kind="stable")
        object.__setattr__(self, "film", film[order])
        object.__setattr__(self, "codes", tuple(codes[i] for i in order))

    @classmethod
    def from_lists(cls, per_film: Sequence[Any]) -> FilmMasks:
        """From one entry per film: None, a mask code, or a list of codes."""
        films: list[int] = []
        codes: list[Any] = []
        for i, entry in enumerate(per_film):
            if entry is None:
                continue
            many = entry if isinstance(entry, (list, tuple)) else [entry]
            films.extend([i] * len(many))
            codes.extend(many)
        return cls(np.asarray(films, np.int64), tuple(codes))

    def take(self, indices: np.ndarray) -> FilmMasks:
        """The masks of the films at ``indices`` (renumbered by their position there)."""
        rows, film = take_rows(self.film, indices)
        return FilmMasks(film, tuple(self.codes[int(r)] for r in rows))

    def shift(self, offset: int) -> FilmMasks:
        """The same masks with every film index moved by ``offset`` (to pool tables)."""
        return FilmMasks(self.film + offset, self.codes)
