"""The one records table every reader returns: films, labels, metadata, boxes and masks.

A :class:`Records` holds, for ``N`` films:

* ``paths``: each film's file (a reader joins the names of its CSV to ``images=``; files are
  not looked at when reading: :meth:`Records.missing` lists the absent ones, and
  :meth:`Records.dataset` refuses a table with absent files, naming them);
* ``class_names`` and ``targets``: float32 ``(N, K)``, 1 positive, 0 negative, **NaN
  unknown** (not read, or an uncertain label a reader's policy leaves out);
* metadata: ``patient``, ``view`` (``"PA"``, ``"AP"``, ``"LATERAL"``, ``"LL"``, ...,
  ``""`` unknown; :mod:`cxrexplain.data._columns`), ``sex`` (``"F"``, ``"M"``, ``""``),
  ``age`` (years, NaN unknown), ``source`` (the collection), ``sizes`` (each film's original
  ``(height, width)``, the frame of its boxes; 0 unknown), and ``metadata``: any further
  columns a reader keeps; :meth:`Records.column` returns any of them by name;
* per finding, boxes (``(x, y, width, height)`` in the film's own pixels) and masks, kept as
  small codes and decoded on demand (:mod:`cxrexplain.data.annotations`).

It plugs into what exists: :meth:`~Records.files` gives single-label
:class:`~cxrexplain.data.LabeledFiles` (for :func:`~cxrexplain.data.k_folds`, which also takes
a table directly and then groups by patient), :meth:`~Records.dataset` a ``tf.data`` pipeline
(the one of :func:`~cxrexplain.data.from_files`) with multi-label targets,
:meth:`~Records.boxes` and :meth:`~Records.masks` the arguments of
:func:`cxrexplain.evaluate_explainers`, and :meth:`~Records.column` the groups of
:func:`cxrexplain.audit`.

Example:
    >>> recs = Records(["a.png", "b.png", "c.png"], ["Effusion", "Mass"],
    ...                [[1, 0], [0, np.nan], [0, 1]], view=["PA", "ap", ""],
    ...                boxes={"Mass": [None, None, [10, 20, 30, 40]]})
    >>> len(recs), recs.view.tolist(), recs.counts()
    (3, ['PA', 'AP', ''], {'Effusion': 1, 'Mass': 1})
    >>> [b.shape for b in recs.boxes("Mass")]
    [(0, 4), (0, 4), (1, 4)]
    >>> recs.subset([2, 0]).paths
    ('c.png', 'a.png')
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tensorflow as tf

from cxrexplain._arrays import resize_masks
from cxrexplain._checks import check_channels, check_int, check_size, describe
from cxrexplain._files import atomic_write_text
from cxrexplain.data._columns import as_strings, normalise_sex, normalise_view
from cxrexplain.data.annotations import FilmBoxes, FilmMasks
from cxrexplain.data.augment import Augmentation
from cxrexplain.data.files import LabeledFiles
from cxrexplain.data.pipeline import augmentation_of, check_image_size, pipeline
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import load_image

__all__ = ["BUILT_IN_COLUMNS", "Records"]

_LOG = logging.getLogger("cxrexplain.data")

BUILT_IN_COLUMNS = ("path", "patient", "view", "sex", "age", "source")
"""The columns every table has (:meth:`Records.column`); ``metadata`` adds others."""

_SHOWN_MISSING = 5


class Records:
    """Films with multi-label targets, metadata, and boxes and masks per finding.

    Args:
        paths: The films' files.
        class_names: The classes (columns of ``targets``), unique names.
        targets: ``(N, K)`` numbers: 1 positive, 0 negative, NaN unknown (None when there
            are no classes: an ``(N, 0)`` table).
        patient: Each film's patient (group folds by it); default ``""`` (unknown).
        view: Each film's view, normalised (``"ap"``, ``"AP Supine"`` -> ``"AP"``; the
            module docs); default ``""``.
        sex: Normalised to ``"F"``, ``"M"`` or ``""``; default ``""``.
        age: Years (NaN unknown); default NaN.
        source: The collection of each film (one string for all, or one per film);
            default ``""``.
        sizes: Each film's original ``(height, width)``, the frame its boxes are in
            (``(N, 2)``, or one ``(height, width)`` for all; 0 unknown: the file's own size is
            read when boxes are rescaled). Default unknown.
        metadata: Further columns, ``{name: one value per film}`` (strings or numbers).
        boxes: Per finding, the films' boxes: a :class:`~cxrexplain.data.annotations.FilmBoxes`
            or one entry per film (None, one box or an ``(M, 4)`` array).
        masks: Per finding, the films' masks: a
            :class:`~cxrexplain.data.annotations.FilmMasks` or one entry per film (None, a
            mask code such as :class:`~cxrexplain.data.RunLength`, or a list of codes).

    Raises:
        InvalidInputError: Lengths that differ from the number of paths, targets that are
            not 0, 1 or NaN, duplicate class names, a metadata name that is a built-in
            column, or malformed boxes or masks.

    Example:
        >>> recs = Records(["a.png", "b.png"], ["COVID"], [[1], [0]], patient=["p1", "p2"],
        ...                age=[61, np.nan], source="cohen")
        >>> recs.column("patient").tolist(), recs.age.tolist(), recs.source.tolist()
        (['p1', 'p2'], [61.0, nan], ['cohen', 'cohen'])
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        class_names: Sequence[str],
        targets: Any = None,
        *,
        patient: Sequence[str] | np.ndarray | None = None,
        view: Sequence[str] | np.ndarray | None = None,
        sex: Sequence[str] | np.ndarray | None = None,
        age: Any = None,
        source: str | Sequence[str] | np.ndarray | None = None,
        sizes: Any = None,
        metadata: Mapping[str, Any] | None = None,
        boxes: Mapping[str, FilmBoxes | Sequence[Any]] | None = None,
        masks: Mapping[str, FilmMasks | Sequence[Any]] | None = None,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)):
            raise InvalidInputError("paths: expected a list of files, got one path")
        self.paths: tuple[str, ...] = tuple(
            p if isinstance(p, str) else os.fspath(p) for p in paths)
        count = len(self.paths)
        self.class_names: tuple[str, ...] = _check_class_names(class_names)
        self.targets: np.ndarray = _check_targets(targets, count, len(self.class_names))
        self.patient: np.ndarray = self._strings(patient, "patient")
        self.view: np.ndarray = normalise_view(self._strings(view, "view"))
        self.sex: np.ndarray = normalise_sex(self._strings(sex, "sex"))
        self.age: np.ndarray = self._numbers(age, "age")
        self.source: np.ndarray = self._strings(
            [source] * count if isinstance(source, str) else source, "source")
        self.sizes: np.ndarray = _check_sizes(sizes, count)
        self.metadata: dict[str, np.ndarray] = {
            str(name): self._column(values, f"metadata['{name}']")
            for name, values in (metadata or {}).items()}
        clash = [name for name in self.metadata if name in BUILT_IN_COLUMNS]
        if clash:
            raise InvalidInputError(
                f"metadata: '{clash[0]}' is a built-in column; pass it as {clash[0]}=")
        self._boxes: dict[str, FilmBoxes] = {
            str(name): _film_boxes(found, count, f"boxes['{name}']")
            for name, found in (boxes or {}).items()}
        self._masks: dict[str, FilmMasks] = {
            str(name): _film_masks(found, count, f"masks['{name}']")
            for name, found in (masks or {}).items()}
        for array in (self.targets, self.patient, self.view, self.sex, self.age, self.source,
                      self.sizes, *self.metadata.values()):
            array.flags.writeable = False

    # --- columns -------------------------------------------------------------------------

    def _strings(self, values: Any, name: str) -> np.ndarray:
        if values is None:
            return as_strings([""] * len(self.paths))
        if isinstance(values, str):
            raise InvalidInputError(f"{name}: expected one value per film, got one string")
        if isinstance(values, np.ndarray) and values.dtype.kind == "U":
            array = values
        else:
            listed = list(values)
            plain = set(map(type, listed)) <= {str}
            array = as_strings(listed if plain else [_text(v) for v in listed])
        self._check_length(array, name)
        return array

    def _numbers(self, values: Any, name: str) -> np.ndarray:
        if values is None:
            return np.full(len(self.paths), np.nan)
        try:
            array = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{name}: expected numbers, got {describe(values)}") from None
        self._check_length(array, name)
        return array

    def _column(self, values: Any, name: str) -> np.ndarray:
        array = np.asarray(values)
        if array.dtype.kind in "biuf":
            array = array.astype(np.float64).reshape(-1)
        else:
            array = self._strings(np.asarray(values, object).reshape(-1), name)
        return array

    def _check_length(self, array: np.ndarray, name: str) -> None:
        if array.shape != (len(self.paths),):
            raise InvalidInputError(
                f"{name}: expected one value per film ({len(self.paths)}), got shape "
                f"{array.shape}")

    @property
    def columns(self) -> tuple[str, ...]:
        """The names :meth:`column` knows: the built-in ones, then ``metadata``'s."""
        return (*BUILT_IN_COLUMNS, *self.metadata)

    def column(self, name: str) -> np.ndarray:
        """A column by name: ``"path"``, ``"patient"``, ``"view"``, ``"sex"``, ``"age"``,
        ``"source"`` or a ``metadata`` name (the audit groups by these).

        Raises:
            InvalidInputError: An unknown name; the message lists the known ones.

        Example:
            >>> Records(["a.png"], [], metadata={"site": ["Bethesda"]}).column("site").tolist()
            ['Bethesda']
        """
        if name == "path":
            return as_strings(self.paths)
        if name in BUILT_IN_COLUMNS:
            value: np.ndarray = getattr(self, name)
            return value
        if name in self.metadata:
            return self.metadata[name]
        raise InvalidInputError(
            f"column: no column '{name}'; the table has {', '.join(self.columns)}")

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        notes = [f"{len(self)} films", f"{len(self.class_names)} classes"]
        if self._boxes:
            notes.append("boxes: " + ", ".join(
                f"{name} ({len(found.boxes)})" for name, found in self._boxes.items()))
        if self._masks:
            notes.append("masks: " + ", ".join(
                f"{name} ({len(found.codes)})" for name, found in self._masks.items()))
        sources = sorted(set(self.source.tolist()) - {""})
        if sources:
            notes.append("source: " + ", ".join(sources))
        return f"Records({'; '.join(notes)})"

    def counts(self) -> dict[str, int]:
        """Positive films per class (unknown targets not counted).

        Example:
            >>> Records(["a", "b"], ["x", "y"], [[1, np.nan], [1, 0]]).counts()
            {'x': 2, 'y': 0}
        """
        positives = (self.targets == 1).sum(axis=0)
        return {name: int(n) for name, n in zip(self.class_names, positives, strict=True)}

    # --- boxes and masks -----------------------------------------------------------------

    @property
    def findings_with_boxes(self) -> tuple[str, ...]:
        """The findings that have boxes, in the order the reader gave them."""
        return tuple(self._boxes)

    @property
    def findings_with_masks(self) -> tuple[str, ...]:
        """The findings that have masks, in the order the reader gave them."""
        return tuple(self._masks)

    def box_table(self, finding: str) -> FilmBoxes:
        """The stored boxes of one finding (film index and box per row).

        Raises:
            InvalidInputError: The finding has no boxes.
        """
        return self._boxes[self._finding(finding, self._boxes, "boxes")]

    def mask_table(self, finding: str) -> FilmMasks:
        """The stored masks of one finding (film index and mask code per row).

        Raises:
            InvalidInputError: The finding has no masks.
        """
        return self._masks[self._finding(finding, self._masks, "masks")]

    def _finding(self, finding: str, found: Mapping[str, Any], what: str) -> str:
        if finding in found:
            return finding
        have = ", ".join(repr(name) for name in found) or "none"
        raise InvalidInputError(
            f"finding: no {what} for {finding!r}; findings with {what}: {have}")

    def boxes(self, finding: str | None = None, *,
              size: int | tuple[int, int] | None = None) -> list[np.ndarray]:
        """Each film's ``(M, 4)`` ``(x, y, width, height)`` boxes (``(0, 4)`` without any).

        Args:
            finding: One finding (:attr:`findings_with_boxes`), or None for all pooled.
            size: None for the film's own pixels, or an output size (int or
                ``(height, width)``): the boxes rescaled from each film's ``sizes`` (read
                from its file where unknown) to the pixels of a film resized to it, as a
                model sees it (:func:`cxrexplain.evaluate_explainers`' ``boxes=``).

        Raises:
            InvalidInputError: An unknown finding. With ``size``, an unreadable film whose
                size is unknown raises :class:`~cxrexplain.ImageLoadError`.

        Example:
            >>> recs = Records(["a.png"], [], sizes=(1024, 1024),
            ...                boxes={"Mass": [[512, 256, 100, 50]]})
            >>> recs.boxes("Mass", size=256)[0].tolist()
            [[128.0, 64.0, 25.0, 12.5]]
        """
        count = len(self)
        if finding is None:
            tables = list(self._boxes.values())
            pooled = FilmBoxes(
                np.concatenate([t.film for t in tables]) if tables else np.zeros(0, np.int64),
                np.concatenate([t.boxes for t in tables]) if tables else np.zeros((0, 4)))
        else:
            pooled = self.box_table(finding)
        per_film = pooled.per_film(count)
        if size is None:
            return per_film
        target = check_size(size, "size")
        boxed = np.unique(pooled.film)
        frames = self._frames(boxed)
        for film, (height, width) in zip(boxed.tolist(), frames, strict=True):
            scale = np.array([target[1] / width, target[0] / height] * 2)
            per_film[film] = per_film[film] * scale
        return per_film

    def _frames(self, films: np.ndarray) -> list[tuple[int, int]]:
        """``(height, width)`` of the films at ``films``: ``sizes``, or read from the file."""
        frames = []
        for film in films.tolist():
            height, width = (int(v) for v in self.sizes[film])
            if height <= 0 or width <= 0:
                height, width = load_image(self.paths[film]).shape[:2]
            frames.append((height, width))
        return frames

    def annotated(self, finding: str | None = None) -> np.ndarray:
        """``(N,)`` bool: the films with a box or a mask (of ``finding``, or of any).

        Example:
            >>> Records(["a", "b"], [], boxes={"Mass": [None, [1, 1, 2, 2]]}).annotated().tolist()
            [False, True]
        """
        found = np.zeros(len(self), bool)
        tables: list[tuple[str, FilmBoxes | FilmMasks]] = [*self._boxes.items(),
                                                           *self._masks.items()]
        for name, table in tables:
            if finding is None or name == finding:
                found[table.film] = True
        if finding is not None and finding not in self._boxes and finding not in self._masks:
            self._finding(finding, {**self._boxes, **self._masks}, "boxes or masks")
        return found

    def masks(self, finding: str | None = None, *,
              size: int | tuple[int, int] | None = None) -> np.ndarray:
        """The films' masks of a finding, decoded now: ``(N, H, W)`` bool.

        A film's several masks are united; a film without one gets an all-False mask. Decode
        a :meth:`subset` for large tables (12,000 SIIM masks at 1024 x 1024 are 12 GB).

        Args:
            finding: One finding (:attr:`findings_with_masks`), or None for all pooled.
            size: The output size (int or ``(height, width)``; masks resize by the nearest
                neighbour). None keeps the native size, which all films must then share
                (the masks' and the known ``sizes``).

        Raises:
            InvalidInputError: An unknown finding, or no ``size`` while the native sizes
                differ or are unknown.

        Example:
            >>> from cxrexplain.data import RunLength
            >>> recs = Records(["a.png", "b.png"], [],
            ...                masks={"Pneumothorax": [RunLength((2, 2), (2, 2)), None]})
            >>> recs.masks("Pneumothorax").astype(int).tolist()
            [[[0, 1], [0, 1]], [[0, 0], [0, 0]]]
            >>> recs.masks("Pneumothorax", size=4).shape
            (2, 4, 4)
        """
        tables = list(self._masks.values()) if finding is None else [self.mask_table(finding)]
        entries = [(int(f), code) for table in tables
                   for f, code in zip(table.film.tolist(), table.codes, strict=True)]
        target = None if size is None else check_size(size, "size")
        if target is None:
            shapes = {tuple(code.shape) for _, code in entries}
            known = self.sizes[(self.sizes > 0).all(axis=1)]
            shapes |= {(int(h), int(w)) for h, w in np.unique(known, axis=0)} if len(
                known) else set()
            if len(shapes) != 1:
                found = ", ".join(f"{h}x{w}" for h, w in sorted(shapes)) or "none known"
                raise InvalidInputError(
                    f"size: the films' native sizes differ or are unknown ({found}); pass "
                    "size=(height, width)")
            target = next(iter(shapes))
        assert target is not None
        out = np.zeros((len(self), *target), bool)
        for film, code in entries:
            mask = np.asarray(code.decode(), bool)
            if mask.shape != target:
                mask = resize_masks(mask[None], target)[0]
            out[film] |= mask
        return out

    # --- tables ---------------------------------------------------------------------------

    def subset(self, indices: Iterable[int] | np.ndarray) -> Records:
        """The films at ``indices`` (ints, in that order, or an ``(N,)`` bool mask).

        Example:
            >>> recs = Records(["a", "b", "c"], ["x"], [[1], [0], [1]],
            ...                boxes={"x": [[0, 0, 1, 1], None, [2, 2, 1, 1]]})
            >>> part = recs.subset(recs.targets[:, 0] == 1)
            >>> part.paths, [len(b) for b in part.boxes("x")]
            (('a', 'c'), [1, 1])
        """
        picked = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if picked.dtype == bool:
            if picked.shape != (len(self),):
                raise InvalidInputError(
                    f"indices: a bool mask needs one value per film ({len(self)}), got shape "
                    f"{picked.shape}")
            picked = np.flatnonzero(picked)
        if picked.size == 0:
            picked = np.zeros(0, np.int64)
        if picked.ndim != 1 or not np.issubdtype(picked.dtype, np.integer):
            raise InvalidInputError(f"indices: expected film indices, got {describe(indices)}")
        if picked.size and (picked.min() < -len(self) or picked.max() >= len(self)):
            raise InvalidInputError(
                f"indices: out of range for {len(self)} films ({int(picked.min())} .. "
                f"{int(picked.max())})")
        picked = picked % max(len(self), 1)
        return Records(
            [self.paths[i] for i in picked.tolist()], self.class_names, self.targets[picked],
            patient=self.patient[picked], view=self.view[picked], sex=self.sex[picked],
            age=self.age[picked], source=self.source[picked], sizes=self.sizes[picked],
            metadata={name: values[picked] for name, values in self.metadata.items()},
            boxes={name: found.take(picked) for name, found in self._boxes.items()},
            masks={name: found.take(picked) for name, found in self._masks.items()},
        )

    def __add__(self, other: Records) -> Records:
        """Pool two tables: classes united (a class one table lacks is unknown, NaN, in it),
        metadata united (blank or NaN where a table lacks a column), boxes and masks kept.

        Example:
            >>> a = Records(["a.png"], ["COVID"], [[1]], source="cohen")
            >>> b = Records(["b.png"], ["Mass"], [[0]], source="NIH")
            >>> pooled = a + b
            >>> pooled.class_names, pooled.targets.tolist(), pooled.source.tolist()
            (('COVID', 'Mass'), [[1.0, nan], [nan, 0.0]], ['cohen', 'NIH'])
        """
        if not isinstance(other, Records):
            return NotImplemented
        names = (*self.class_names, *(n for n in other.class_names if n not in self.class_names))
        targets = np.full((len(self) + len(other), len(names)), np.nan, np.float32)
        for offset, part in ((0, self), (len(self), other)):
            columns = [names.index(n) for n in part.class_names]
            targets[offset:offset + len(part), columns] = part.targets
        metadata = {}
        for name in (*self.metadata, *(n for n in other.metadata if n not in self.metadata)):
            metadata[name] = _pool_column(self.metadata.get(name), len(self),
                                          other.metadata.get(name), len(other))
        return Records(
            self.paths + other.paths, names, targets,
            patient=np.concatenate([self.patient, other.patient]),
            view=np.concatenate([self.view, other.view]),
            sex=np.concatenate([self.sex, other.sex]),
            age=np.concatenate([self.age, other.age]),
            source=np.concatenate([self.source, other.source]),
            sizes=np.concatenate([self.sizes, other.sizes]),
            metadata=metadata,
            boxes=_pool_tables(self._boxes, other._boxes, len(self)),
            masks=_pool_tables(self._masks, other._masks, len(self)),
        )

    def missing(self) -> tuple[str, ...]:
        """The films whose file does not exist (in table order).

        Example:
            >>> Records(["xray.png", "gone.png"], []).missing()
            ('gone.png',)
        """
        return tuple(path for path in self.paths if not os.path.isfile(path))

    def check_files(self) -> None:
        """Raise unless every film's file exists.

        Raises:
            InvalidInputError: Some files are absent; the message gives how many and the
                first few.
        """
        absent = self.missing()
        if absent:
            shown = ", ".join(f"'{p}'" for p in absent[:_SHOWN_MISSING])
            more = f" and {len(absent) - _SHOWN_MISSING} more" if len(
                absent) > _SHOWN_MISSING else ""
            raise InvalidInputError(
                f"records: {len(absent)} of {len(self)} films have no file: {shown}{more}; "
                "check images= (or drop them: recs.subset(...) of the others)")

    # --- bridges to the rest of the library ------------------------------------------------

    def files(self, classes: Sequence[str] | None = None, *, none: str | None = None,
              ambiguous: Literal["error", "drop"] = "error") -> LabeledFiles:
        """Single-label files: each film's one positive class.

        Args:
            classes: The classes to use, in label order (default all).
            none: A class name for films with no positive among ``classes`` (appended to the
                classes when it is not one of them); None: such films are ambiguous.
            ambiguous: What to do with a film with several positives (or none, without
                ``none``): ``"error"`` raises naming it, ``"drop"`` leaves it out (logged).

        Returns:
            :class:`~cxrexplain.data.LabeledFiles` (for ``k_folds``, ``from_files``).

        Raises:
            InvalidInputError: An unknown class, or an ambiguous film with
                ``ambiguous="error"``.

        Example:
            >>> recs = Records(["a", "b", "c"], ["COVID", "PNEUMONIA"],
            ...                [[1, 0], [0, 1], [0, 0]])
            >>> files = recs.files(none="NORMAL")
            >>> files.class_names, files.labels
            (('COVID', 'PNEUMONIA', 'NORMAL'), (0, 1, 2))
        """
        chosen = tuple(self.class_names if classes is None else classes)
        unknown = [c for c in chosen if c not in self.class_names]
        if unknown:
            raise InvalidInputError(
                f"classes: {unknown[0]!r} is not a class; the table's classes: "
                f"{', '.join(self.class_names)}")
        if ambiguous not in ("error", "drop"):
            raise InvalidInputError(f"ambiguous: expected 'error' or 'drop', got {ambiguous!r}")
        positive = self.targets[:, [self.class_names.index(c) for c in chosen]] == 1
        hits = positive.sum(axis=1)
        label = np.argmax(positive, axis=1) if len(chosen) else np.zeros(len(self), np.int64)
        names = chosen
        if none is not None:
            if none not in names:
                names = (*names, none)
            label = np.where(hits == 0, names.index(none), label)
            keep = hits <= 1
        else:
            keep = hits == 1
        if not keep.all():
            first = int(np.flatnonzero(~keep)[0])
            why = (f"{int(hits[first])} positive classes" if hits[first] else
                   "no positive class (pass none='NORMAL' or the like)")
            if ambiguous == "error":
                raise InvalidInputError(
                    f"records: {int((~keep).sum())} films are not single-label, e.g. "
                    f"'{self.paths[first]}' has {why}; pass ambiguous='drop' or choose classes=")
            _LOG.info("files: %d films not single-label left out", int((~keep).sum()))
        kept = np.flatnonzero(keep)
        return LabeledFiles(tuple(self.paths[i] for i in kept.tolist()),
                            tuple(int(v) for v in label[kept]), names)

    def groups(self, column: str = "patient") -> dict[str, str]:
        """A mapping from each film's path to its value of ``column`` (``k_folds``' groups).

        Raises:
            InvalidInputError: A film without a value (blank), or a path listed twice with
                two values.

        Example:
            >>> Records(["a.png", "b.png"], [], patient=["p1", "p1"]).groups()
            {'a.png': 'p1', 'b.png': 'p1'}
        """
        values = self.column(column)
        mapping: dict[str, str] = {}
        for path, value in zip(self.paths, values.tolist(), strict=True):
            text = _text(value)
            if text == "":
                raise InvalidInputError(f"groups: film '{path}' has no {column}")
            if mapping.setdefault(path, text) != text:
                raise InvalidInputError(
                    f"groups: film '{path}' is listed twice with two {column} values")
        return mapping

    def dataset(
        self,
        image_size: int | tuple[int, int],
        *,
        batch_size: int = 32,
        channels: int = 1,
        shuffle: bool = False,
        augment: bool | Augmentation = False,
        flip: bool = False,
        cache: bool | str | os.PathLike[str] = True,
        seed: int = 0,
        unknown: float = 0.0,
        boxes: str | bool | None = None,
    ) -> tf.data.Dataset:
        """A batched ``tf.data`` dataset of ``(images, targets)`` for a multi-label model.

        The pipeline is :func:`~cxrexplain.data.from_files`' (decoding, cache, shuffle,
        augmentation, prefetch); targets are float32 ``(batch, K)``. For a single-label
        (softmax) model use ``cx.data.from_files(recs.files(), ...)`` instead.

        Args:
            image_size: Output size, int or ``(height, width)``.
            batch_size: Films per batch.
            channels: 1 or 3.
            shuffle: Reshuffle every epoch (seeded).
            augment: As :func:`~cxrexplain.data.from_files`.
            flip: As :func:`~cxrexplain.data.from_files`.
            cache: As :func:`~cxrexplain.data.from_files`.
            seed: Seed of the shuffle and augmentation.
            unknown: The target given for an unknown (NaN) label (a loss cannot take NaN);
                0.0 by default (the usual "not mentioned = negative").
            boxes: A finding, or True for all findings pooled: the films' box masks travel
                with them as in :func:`~cxrexplain.data.from_files` (``{"images", "boxes"}``
                inputs), rescaled from each film's ``sizes``.

        Returns:
            The dataset, with ``class_names``, ``file_paths`` and ``labels`` (the targets,
            unknown filled) attributes.

        Raises:
            InvalidInputError: Films without a file (how many, the first few), no films, or
                a bad argument.

        Example:
            >>> recs = Records(["cxr/COVID/00.png", "cxr/NORMAL/01.png"], ["COVID", "Mass"],
            ...                [[1, np.nan], [0, 0]])
            >>> images, targets = next(iter(recs.dataset(32, batch_size=2)))
            >>> images.shape, targets.numpy().tolist()
            (TensorShape([2, 32, 32, 1]), [[1.0, 0.0], [0.0, 0.0]])
        """
        size = check_image_size(image_size)
        check_channels(channels)
        check_int(batch_size, "batch_size")
        if not len(self):
            raise InvalidInputError("records: the table has no films")
        if not isinstance(unknown, (int, float)) or not np.isfinite(unknown):
            raise InvalidInputError(f"unknown: expected a finite number, got {unknown!r}")
        transform = augmentation_of(augment, flip)
        self.check_files()
        film_boxes = None
        if boxes is not None and boxes is not False:
            film_boxes = self.boxes(None if boxes is True else str(boxes), size=size)
        targets = np.where(np.isnan(self.targets), np.float32(unknown), self.targets).astype(
            np.float32)
        dataset = pipeline(list(self.paths), targets, size=size, channels=channels,
                           batch_size=batch_size, shuffle=shuffle, transform=transform,
                           cache=cache, seed=seed, film_boxes=film_boxes, boxes_at_size=True)
        dataset.class_names = list(self.class_names)
        dataset.file_paths = list(self.paths)
        dataset.labels = targets
        if film_boxes is not None:
            dataset.box_counts = np.array([len(b) for b in film_boxes], np.int64)
        return dataset

    # --- writing --------------------------------------------------------------------------

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per film: ``path``, each class (1.0, 0.0 or NaN), the built-in and
        metadata columns.

        Example:
            >>> Records(["a.png"], ["Mass"], [[1]], sex=["F"]).to_rows()[0]["sex"]
            'F'
        """
        columns: list[tuple[str, list[Any]]] = [("path", list(self.paths))]
        columns += [(name, self.targets[:, k].astype(float).tolist())
                    for k, name in enumerate(self.class_names)]
        columns += [(name, self.column(name).tolist()) for name in self.columns[1:]]
        names = [name for name, _ in columns]
        return [dict(zip(names, values, strict=True))
                for values in zip(*(v for _, v in columns), strict=True)]

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as a CSV (atomically): ``path``, the classes (1, 0, blank for
        unknown), ``patient, view, sex, age, source`` and the metadata columns. Boxes go to
        :meth:`to_boxes_csv`. :func:`~cxrexplain.data.read_csv` reads it back.

        Example:
            >>> recs = Records(["a.png"], ["Mass"], [[np.nan]], age=[61])
            >>> print(recs.to_csv("table.csv").read_text().strip())
            path,Mass,patient,view,sex,age,source
            a.png,,,,,61,
        """
        rows = self.to_rows()
        header = list(rows[0]) if rows else ["path", *self.class_names, *self.columns[1:]]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(row[name]) for name in header])
        return atomic_write_text(path, out.getvalue())

    def to_boxes_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the boxes as ``image,finding,x,y,width,height`` rows in each film's own
        pixels (the format of :func:`~cxrexplain.data.read_boxes`), atomically.

        Example:
            >>> recs = Records(["a.png"], [], boxes={"Mass": [[1, 2, 3, 4]]})
            >>> print(recs.to_boxes_csv("boxes.csv").read_text().strip())
            image,finding,x,y,width,height
            a.png,Mass,1,2,3,4
        """
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["image", "finding", "x", "y", "width", "height"])
        for name, found in self._boxes.items():
            for film, box in zip(found.film.tolist(), found.boxes.tolist(), strict=True):
                writer.writerow([self.paths[film], name, *(_cell(v) for v in box)])
        return atomic_write_text(path, out.getvalue())


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return ""
    return str(value)


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        return f"{float(value):g}" if float(value).is_integer() else repr(float(value))
    return str(value)


def _check_class_names(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise InvalidInputError(
            f"class_names: expected a list of non-empty names, got {describe(names)}")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"class_names: names must be unique, got {list(names)}")
    return tuple(names)


def _check_targets(targets: Any, count: int, classes: int) -> np.ndarray:
    if targets is None:
        if classes:
            raise InvalidInputError(f"targets: expected ({count}, {classes}) targets, got None")
        return np.zeros((count, 0), np.float32)
    try:
        array = np.asarray(targets, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"targets: expected numbers, got {describe(targets)}") from None
    if array.size == 0:
        array = array.reshape(count, classes)
    if array.shape != (count, classes):
        raise InvalidInputError(
            f"targets: expected shape ({count}, {classes}) (films, classes), got {array.shape}")
    bad = ~(np.isnan(array) | (array == 0) | (array == 1))
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidInputError(
            f"targets: expected 1 (positive), 0 (negative) or NaN (unknown), got "
            f"{array[row, col]} at film {row}, class {col}")
    return array


def _check_sizes(sizes: Any, count: int) -> np.ndarray:
    if sizes is None:
        return np.zeros((count, 2), np.int64)
    array = np.asarray(sizes)
    if array.shape == (2,):
        array = np.broadcast_to(array, (count, 2))
    if array.shape != (count, 2) or not np.issubdtype(array.dtype, np.number):
        raise InvalidInputError(
            f"sizes: expected ({count}, 2) (height, width) per film, or one pair, got shape "
            f"{array.shape}")
    if (array < 0).any():
        raise InvalidInputError("sizes: expected sizes >= 0 (0: unknown)")
    return np.array(array, np.int64)


def _film_boxes(found: FilmBoxes | Sequence[Any], count: int, name: str) -> FilmBoxes:
    if isinstance(found, FilmBoxes):
        table = found
    elif isinstance(found, Sequence) and not isinstance(found, str) and len(found) == count:
        table = FilmBoxes.from_lists(found, name)
    else:
        raise InvalidInputError(
            f"{name}: expected FilmBoxes or one entry per film ({count}), got "
            f"{describe(found)}")
    if len(table.film) and int(table.film.max()) >= count:
        raise InvalidInputError(f"{name}: a film index {int(table.film.max())} >= {count} films")
    return table


def _film_masks(found: FilmMasks | Sequence[Any], count: int, name: str) -> FilmMasks:
    if isinstance(found, FilmMasks):
        table = found
    elif isinstance(found, Sequence) and not isinstance(found, str) and len(found) == count:
        table = FilmMasks.from_lists(found)
    else:
        raise InvalidInputError(
            f"{name}: expected FilmMasks or one entry per film ({count}), got "
            f"{describe(found)}")
    if len(table.film) and int(table.film.max()) >= count:
        raise InvalidInputError(f"{name}: a film index {int(table.film.max())} >= {count} films")
    return table


def _pool_column(first: np.ndarray | None, first_count: int, second: np.ndarray | None,
                 second_count: int) -> np.ndarray:
    numeric = all(part is None or part.dtype.kind == "f" for part in (first, second))
    parts = []
    for part, count in ((first, first_count), (second, second_count)):
        if part is None:
            part = np.full(count, np.nan) if numeric else as_strings([""] * count)
        elif not numeric and part.dtype.kind == "f":
            part = as_strings([_text(v) for v in part.tolist()])
        parts.append(part)
    return np.concatenate(parts)


def _pool_tables(first: Mapping[str, Any], second: Mapping[str, Any],
                 offset: int) -> dict[str, Any]:
    pooled: dict[str, Any] = dict(first)
    for name, table in second.items():
        moved = table.shift(offset)
        if name in pooled:
            kind = type(table)
            if kind is FilmBoxes:
                moved = FilmBoxes(np.concatenate([pooled[name].film, moved.film]),
                                  np.concatenate([pooled[name].boxes, moved.boxes]))
            else:
                moved = FilmMasks(np.concatenate([pooled[name].film, moved.film]),
                                  pooled[name].codes + moved.codes)
        pooled[name] = moved
    return pooled
