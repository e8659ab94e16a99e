"""The swap test: does the decision change when the outside of the lungs is another film's?

Each film keeps its lungs (the mask grown by the audit's margin) and takes everything outside
them from a donor film (:func:`cxrexplain.lungs.swap_surroundings`); the classifier decides on
the originals and on the composites, one batched pass each. A model that reads the lungs keeps
its decisions; one that leans on markers, text or collimation outside them follows the donor.
With labels, each donor is a film of another class, so a shortcut tied to the class moves
with the surroundings and shows as a drop in accuracy. ``donor_class="same"`` is the control:
donors of the film's own class carry no other class's shortcut, so what still flips there is
the composite itself (its seams, the donor's lung tissue beyond the film's lungs) and the
decisions' fragility; the gap between the two flip rates is what the surroundings' class
does.

Example:
    >>> import cxrexplain as cx
    >>> test = cx.metrics.swap_test(clf, data.images, lungs=data.lung_masks, seed=0)
    >>> test.n, 0.0 <= test.flip_rate.mean <= 1.0
    (8, True)
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrexplain._checks import check_int, check_number, describe
from cxrexplain._files import atomic_write_text
from cxrexplain._tables import json_number
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import ImageSource
from cxrexplain.lungs.geometry import DEFAULT_MARGIN, MAX_MARGIN
from cxrexplain.lungs.source import empty_masks, lung_source
from cxrexplain.lungs.swap import swap_surroundings
from cxrexplain.metrics.bootstrap import Interval, bootstrap_ci

__all__ = ["DONOR_CLASSES", "SwapTest", "check_labels", "swap_test"]

DONOR_CLASSES = ("other", "same")
"""``swap_test``'s ``donor_class``: donors of another class (the test) or the same (control)."""


@dataclass(frozen=True)
class SwapTest:
    """What the swap test found, film by film and overall.

    Attributes:
        n: The number of films.
        flip_rate: The share of films whose decision changed, with its 95 % percentile
            bootstrap interval over films.
        accuracy: Accuracy on the original films (None without labels).
        swapped_accuracy: Accuracy on the swapped films (None without labels).
        accuracy_drop: ``accuracy.mean - swapped_accuracy.mean`` (None without labels).
        original: ``(N,)`` the decisions on the original films.
        swapped: ``(N,)`` the decisions on the swapped films.
        donors: ``(N,)`` the film whose surroundings each film received.
        probabilities_swapped: ``(N, K)`` the class probabilities on the swapped films.
        class_names: The classifier's class names.
        labels: ``(N,)`` the films' classes, or None.
        seed: The seed of the donor draw and of the bootstrap.
        margin: The lungs' dilation.
        donor_class: ``"other"`` (donors of another class, or any other film without
            labels) or ``"same"`` (donors of the film's own class: the control).
    """

    n: int
    flip_rate: Interval
    accuracy: Interval | None
    swapped_accuracy: Interval | None
    accuracy_drop: float | None
    original: np.ndarray
    swapped: np.ndarray
    donors: np.ndarray
    probabilities_swapped: np.ndarray
    class_names: tuple[str, ...]
    labels: np.ndarray | None = None
    seed: int = 0
    margin: float = DEFAULT_MARGIN
    donor_class: str = "other"

    @property
    def flipped(self) -> np.ndarray:
        """``(N,)`` bool: whether each film's decision changed."""
        changed: np.ndarray = self.original != self.swapped
        return changed

    def summary(self) -> str:
        """One line: the flip rate and, with labels, the accuracies.

        Example:
            >>> swap_test(clf, data.images, lungs=data.lung_masks).summary()
            'swap test (8 films): flip rate ...'
        """
        rate = self.flip_rate
        control = ", same-class donors" if self.donor_class == "same" else ""
        text = (f"swap test ({self.n} films{control}): flip rate {rate.mean:.2f} "
                f"[{rate.low:.2f}, {rate.high:.2f}]")
        if self.accuracy is not None and self.swapped_accuracy is not None:
            text += (f"; accuracy {self.accuracy.mean:.2f} -> {self.swapped_accuracy.mean:.2f}"
                     f" (drop {self.accuracy_drop:.2f})")
        return text

    def __str__(self) -> str:
        return self.summary()

    def rows(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One dict per film: what :meth:`to_csv` writes and :meth:`as_dict` lists.

        Args:
            names: The films' names (paths); None: their positions.

        Example:
            >>> list(swap_test(clf, data.images, lungs=data.lung_masks).rows()[0])[:6]
            ['image', 'label', 'decision', 'swapped_decision', 'flipped', 'donor']
        """
        names = [str(i) for i in range(self.n)] if names is None else [str(n) for n in names]
        classes = self.class_names
        out = []
        for i in range(self.n):
            donor = int(self.donors[i])
            row: dict[str, Any] = {
                "image": names[i],
                "label": "" if self.labels is None else classes[int(self.labels[i])],
                "decision": classes[int(self.original[i])],
                "swapped_decision": classes[int(self.swapped[i])],
                "flipped": bool(self.original[i] != self.swapped[i]),
                "donor": donor, "donor_image": names[donor],
            }
            for c, name in enumerate(classes):
                row[f"p_swapped_{name}"] = float(self.probabilities_swapped[i, c])
            out.append(row)
        return out

    def to_csv(self, path: str | os.PathLike[str], names: Sequence[str] | None = None
               ) -> Path:
        """Write :meth:`rows` as a CSV file (atomically); returns its path.

        Example:
            >>> test = swap_test(clf, data.images, lungs=data.lung_masks)
            >>> test.to_csv("swap.csv").read_text().splitlines()[0]  # doctest: +ELLIPSIS
            'image,label,decision,swapped_decision,flipped,donor,donor_image,p_swapped_...'
        """
        rows = self.rows(names)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return atomic_write_text(Path(os.fspath(path)), buffer.getvalue())

    def as_dict(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """The test as JSON-ready values (NaN as None); :meth:`from_dict` reads it back.

        Example:
            >>> test = swap_test(clf, data.images, lungs=data.lung_masks, labels=data.labels)
            >>> back = SwapTest.from_dict(test.as_dict())
            >>> back.flip_rate == test.flip_rate, bool((back.donors == test.donors).all())
            (True, True)
        """
        def interval(value: Interval | None) -> dict[str, float | None] | None:
            return None if value is None else {k: json_number(v)
                                               for k, v in value._asdict().items()}

        return {"n": self.n, "seed": self.seed, "margin": self.margin,
                "donor_class": self.donor_class,
                "labels": self.labels is not None, "class_names": list(self.class_names),
                "flip_rate": interval(self.flip_rate), "accuracy": interval(self.accuracy),
                "swapped_accuracy": interval(self.swapped_accuracy),
                "accuracy_drop": json_number(self.accuracy_drop), "films": self.rows(names)}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> SwapTest:
        """A test from :meth:`as_dict`'s values (as read back from JSON).

        Raises:
            InvalidInputError: A document that is not a swap test's.
        """
        def interval(value: Any) -> Interval | None:
            if value is None:
                return None
            return Interval(*(float("nan") if value[k] is None else float(value[k])
                              for k in Interval._fields))

        try:
            classes = tuple(str(c) for c in document["class_names"])
            index = {name: i for i, name in enumerate(classes)}
            films = list(document["films"])
            flip_rate = interval(document["flip_rate"])
            if flip_rate is None:
                raise TypeError("flip_rate is null")
            drop = document["accuracy_drop"]
            return cls(
                n=int(document["n"]), flip_rate=flip_rate,
                accuracy=interval(document["accuracy"]),
                swapped_accuracy=interval(document["swapped_accuracy"]),
                accuracy_drop=None if drop is None else float(drop),
                original=np.array([index[f["decision"]] for f in films], np.int64),
                swapped=np.array([index[f["swapped_decision"]] for f in films], np.int64),
                donors=np.array([int(f["donor"]) for f in films], np.int64),
                probabilities_swapped=np.array(
                    [[f[f"p_swapped_{c}"] for c in classes] for f in films], np.float32
                ).reshape(len(films), len(classes)),
                class_names=classes,
                labels=np.array([index[f["label"]] for f in films], np.int64)
                if document["labels"] else None,
                seed=int(document["seed"]), margin=float(document["margin"]),
                donor_class=str(document.get("donor_class", "other")))
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInputError(
                f"document: not a swap test's values ({type(err).__name__}: {err})"
            ) from err


def swap_test(
    classifier: Classifier | keras.Model,
    films: ImageSource | Iterable[ImageSource],
    *,
    lungs: Any,
    labels: Any = None,
    seed: int = 0,
    margin: float = DEFAULT_MARGIN,
    n_resamples: int = 1000,
    batch_size: int = 32,
    donor_class: str = "other",
) -> SwapTest:
    """Swap everything outside each film's lungs for another film's and compare decisions.

    The films are prepared at the classifier's input size (:meth:`Classifier.prepare`); each
    keeps its lungs, grown by ``margin`` as the audit grows them, and takes its surroundings
    from a donor (:func:`cxrexplain.lungs.swap_surroundings`). Donors are drawn with
    ``numpy.random.default_rng(seed)``, uniformly among the films **of another class** when
    ``labels`` are given, else among the **other** films (never the film itself). The
    decisions are the classifier's own rule (argmax, or its threshold for two classes) on
    the originals and on the composites. The films are read ``batch_size`` at a time (each
    batch's donors read with it), so memory stays flat however many films there are.

    Args:
        classifier: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        films: Anything :func:`cxrexplain.load_images` accepts (at least two films).
        lungs: A :class:`~cxrexplain.lungs.LungSegmenter` (or its ``.keras`` file; it segments
            the prepared films), an ``(N, H, W)`` mask array, a list of 2-D mask arrays or
            mask files, or a folder of masks matched to film paths by name
            (:func:`cxrexplain.lungs.source.lung_source`, size rule ``"resize"``). Masks go
            through the one mask rule and are resized (nearest) to the input size.
        labels: None, or one class per film (index or class name): then donors come from
            another class and the accuracies are reported.
        seed: Seed of the donor draw and of the bootstrap (>= 0).
        margin: The lungs' dilation, a share of the larger side in [0, 0.5].
        n_resamples: Bootstrap resamples of the intervals.
        batch_size: Films per forward pass.
        donor_class: ``"other"`` (the test) or ``"same"`` (the control: each donor of the
            film's own class, among the other films; needs labels and two films a class).

    Returns:
        :class:`SwapTest`.

    Raises:
        InvalidInputError: Fewer than two films, masks not one per film or empty (the message
            names their positions), labels not one per film or all of one class, bad
            ``seed``, ``margin``, ``n_resamples`` or ``batch_size``.
        ImageLoadError: A film or mask file cannot be read.

    Example:
        >>> test = swap_test(clf, data.images, lungs=data.lung_masks, labels=data.labels)
        >>> bool((data.labels[test.donors] != data.labels).all())
        True
    """
    clf = classifier if isinstance(classifier, Classifier) else Classifier(classifier)
    seed = check_int(seed, "seed", minimum=0)
    check_number(margin, "margin", low=0.0, high=MAX_MARGIN)
    check_int(n_resamples, "n_resamples")
    check_int(batch_size, "batch_size")
    items = _film_items(films)
    count = len(items)
    if count < 2:
        raise InvalidInputError(
            f"films: the swap test needs at least two films (each takes another's "
            f"surroundings), got {count}"
        )
    if donor_class not in DONOR_CLASSES:
        raise InvalidInputError(
            f"donor_class: expected 'other' or 'same', got {describe(donor_class)}")
    truth = None if labels is None else check_labels(clf, labels, count)
    if donor_class == "same" and truth is None:
        raise InvalidInputError("donor_class: 'same' draws donors of each film's own class; "
                                "give labels")
    paths = ([Path(os.fspath(i)) for i in items]
             if all(isinstance(i, (str, os.PathLike)) for i in items) else None)
    source = lung_source(lungs, paths, count, sizes="resize")
    donors = (_draw_same_class_donors(truth, seed) if donor_class == "same" and truth is not None
              else _draw_donors(truth, count, seed))
    original = np.empty(count, np.int64)
    swapped = np.empty(count, np.int64)
    probabilities = np.empty((count, clf.num_classes), np.float32)
    for start in range(0, count, batch_size):
        rows = slice(start, min(start + batch_size, count))
        batch = clf.prepare(items[rows])
        masks = source.masks(start, list(batch), (batch.shape[1], batch.shape[2]))
        if source.segmenter is not None:
            error = empty_masks(masks, start, what="the segmenter found no lung pixel")
            if error is not None:
                raise error
        given = donors[rows]
        donor_films = clf.prepare(items[given] if isinstance(items, np.ndarray)
                                  else [items[d] for d in given])
        composites = swap_surroundings(batch, masks, donor_films, margin=margin)
        original[rows] = clf._decision(clf._probabilities(batch, batch_size=batch_size))
        probabilities[rows] = clf._probabilities(composites, batch_size=batch_size)
        swapped[rows] = clf._decision(probabilities[rows])
    accuracy = swapped_accuracy = None
    drop = None
    if truth is not None:
        accuracy = bootstrap_ci(original == truth, n_resamples=n_resamples, seed=seed)
        swapped_accuracy = bootstrap_ci(swapped == truth, n_resamples=n_resamples, seed=seed)
        drop = accuracy.mean - swapped_accuracy.mean
    return SwapTest(
        n=count,
        flip_rate=bootstrap_ci(original != swapped, n_resamples=n_resamples, seed=seed),
        accuracy=accuracy,
        swapped_accuracy=swapped_accuracy,
        accuracy_drop=drop,
        original=original,
        swapped=swapped,
        donors=donors,
        probabilities_swapped=probabilities,
        class_names=tuple(clf.class_names),
        labels=truth,
        seed=seed,
        margin=float(margin),
        donor_class=donor_class,
    )


def _film_items(films: Any) -> np.ndarray | list[Any]:
    """The films as a 4-D array or a list, each read batch by batch."""
    if isinstance(films, np.ndarray):
        return films if films.ndim == 4 else [films]
    if isinstance(films, (str, os.PathLike, bytes, bytearray, memoryview)) or not isinstance(
            films, Iterable):
        return [films]
    return list(films)


def _draw_donors(labels: np.ndarray | None, count: int, seed: int) -> np.ndarray:
    """Each film's donor: uniform among the films of another label (None: any other film).

    One draw for all films: film ``i`` draws ``r`` in ``0 .. m_i - 1``, ``m_i`` the number
    of films outside its group, and takes the ``r``-th of them in the films' order sorted
    by group (stable).

    Example:
        >>> _draw_donors(np.array([0, 0, 1, 1]), 4, 0).tolist()
        [3, 3, 1, 0]
    """
    groups = np.arange(count) if labels is None else np.asarray(labels, np.int64)
    order = np.argsort(groups, kind="stable")
    values, first, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    if labels is not None and len(values) < 2:
        raise InvalidInputError(
            f"labels: every film is of class {int(values[0])}; the swap test draws each "
            "film's donor from another class, so give films of at least two classes (or "
            "labels=None for any other film)"
        )
    where = np.searchsorted(values, groups)
    start, size = first[where], sizes[where]
    picks = np.random.default_rng(seed).integers(0, count - size)
    position = np.where(picks < start, picks, picks + size)
    donors: np.ndarray = order[position].astype(np.int64)
    return donors


def _draw_same_class_donors(labels: np.ndarray, seed: int) -> np.ndarray:
    """Each film's donor: uniform among the *other* films of its own class.

    Example:
        >>> _draw_same_class_donors(np.array([0, 1, 0, 1, 0]), 0).tolist()
        [4, 3, 4, 1, 2]
    """
    groups = np.asarray(labels, np.int64)
    order = np.argsort(groups, kind="stable")
    values, first, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    if (sizes < 2).any():
        alone = [int(v) for v, n in zip(values, sizes, strict=True) if n < 2]
        raise InvalidInputError(
            f"labels: class {alone} has one film; same-class donors need two films a class")
    where = np.searchsorted(values, groups)
    rank = np.empty(len(groups), np.int64)
    rank[order] = np.arange(len(groups)) - np.repeat(first, sizes)  # place within its class
    picks = np.random.default_rng(seed).integers(0, sizes[where] - 1)
    position = first[where] + np.where(picks < rank, picks, picks + 1)  # never itself
    donors: np.ndarray = order[position].astype(np.int64)
    return donors


def check_labels(clf: Classifier, labels: Any, count: int) -> np.ndarray:
    """``(count,)`` class indices from one label (index or class name) per film.

    Raises:
        InvalidInputError: Not one label per film, or an unknown class (the messages say
            ``labels``).

    Example:
        >>> check_labels(clf, ["PNEUMONIA", 0], 2).tolist()
        [1, 0]
    """
    if isinstance(labels, (str, bytes)) or np.ndim(labels) == 0:
        raise InvalidInputError(
            f"labels: expected one class (index or name) per film, got {describe(labels)}"
        )
    try:
        return clf.target_indices(labels, count).astype(np.int64)
    except InvalidInputError as err:  # its messages say targets: the argument is labels
        raise InvalidInputError(
            "labels: " + str(err).removeprefix("targets: ").replace("target", "label")
        ) from err
