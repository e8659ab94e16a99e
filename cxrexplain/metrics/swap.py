"""The swap test: does the decision change when the outside of the lungs is another film's?

Each film keeps its lungs (the mask grown by the audit's margin) and takes everything outside
them from a donor film (:func:`cxrexplain.lungs.swap_surroundings`); the classifier decides on
the originals and on the composites, one batched pass each. A model that reads the lungs keeps
its decisions; one that leans on markers, text or collimation outside them follows the donor.
With labels, each donor is a film of another class, so a shortcut tied to the class moves
with the surroundings and shows as a drop in accuracy.

Example:
    >>> import cxrexplain as cx
    >>> test = cx.metrics.swap_test(clf, data.images, lungs=data.lung_masks, seed=0)
    >>> test.n, 0.0 <= test.flip_rate.mean <= 1.0
    (8, True)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cxrexplain._checks import check_int, check_number, describe
from cxrexplain.classifier import Classifier
from cxrexplain.errors import InvalidInputError
from cxrexplain.io import ImageSource
from cxrexplain.lungs.geometry import DEFAULT_MARGIN, MAX_MARGIN
from cxrexplain.lungs.masks import match_masks
from cxrexplain.lungs.segmenter import LungSegmenter
from cxrexplain.lungs.swap import swap_surroundings
from cxrexplain.metrics._checks import as_masks
from cxrexplain.metrics.bootstrap import Interval, bootstrap_ci

__all__ = ["SwapTest", "swap_test"]


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
        text = (f"swap test ({self.n} films): flip rate {rate.mean:.2f} "
                f"[{rate.low:.2f}, {rate.high:.2f}]")
        if self.accuracy is not None and self.swapped_accuracy is not None:
            text += (f"; accuracy {self.accuracy.mean:.2f} -> {self.swapped_accuracy.mean:.2f}"
                     f" (drop {self.accuracy_drop:.2f})")
        return text

    def __str__(self) -> str:
        return self.summary()


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
) -> SwapTest:
    """Swap everything outside each film's lungs for another film's and compare decisions.

    The films are prepared at the classifier's input size (:meth:`Classifier.prepare`); each
    keeps its lungs, grown by ``margin`` as the audit grows them, and takes its surroundings
    from a donor (:func:`cxrexplain.lungs.swap_surroundings`). Donors are drawn with
    ``numpy.random.default_rng(seed)``, uniformly among the films **of another class** when
    ``labels`` are given, else among the **other** films (never the film itself). The
    decisions are the classifier's own rule (argmax, or its threshold for two classes) on
    the originals and on the composites, one batched pass each.

    Args:
        classifier: A :class:`~cxrexplain.Classifier` or a ``keras.Model``.
        films: Anything :func:`cxrexplain.load_images` accepts (at least two films).
        lungs: A :class:`~cxrexplain.lungs.LungSegmenter` (or its ``.keras`` file; it segments
            the prepared films), an ``(N, H, W)`` mask array, a list of 2-D mask arrays or
            mask files, or a folder of masks matched to film paths by name. Masks go through
            the one mask rule and are resized (nearest) to the input size.
        labels: None, or one class per film (index or class name): then donors come from
            another class and the accuracies are reported.
        seed: Seed of the donor draw and of the bootstrap (>= 0).
        margin: The lungs' dilation, a share of the larger side in [0, 0.5].
        n_resamples: Bootstrap resamples of the intervals.
        batch_size: Films per forward pass.

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
    if isinstance(films, Iterable) and not isinstance(
            films, (np.ndarray, str, bytes, bytearray, memoryview)):
        films = list(films)  # read twice: prepared, and matched to a folder of masks
    batch = clf.prepare(films)
    count = len(batch)
    if count < 2:
        raise InvalidInputError(
            f"films: the swap test needs at least two films (each takes another's "
            f"surroundings), got {count}"
        )
    truth = None if labels is None else _labels(clf, labels, count)
    masks = _lung_masks(lungs, films, batch, batch_size)
    donors = _draw_donors(truth, count, seed)
    composites = swap_surroundings(batch, masks, batch[donors], margin=margin)
    original = np.asarray(clf._decision(clf._probabilities(batch, batch_size=batch_size)),
                          np.int64)
    probabilities = clf._probabilities(composites, batch_size=batch_size)
    swapped = np.asarray(clf._decision(probabilities), np.int64)
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
    )


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


def _labels(clf: Classifier, labels: Any, count: int) -> np.ndarray:
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


def _lung_masks(lungs: Any, films: Any, batch: np.ndarray, batch_size: int) -> np.ndarray:
    """``(N, H, W)`` bool lung masks of the prepared films ``batch``; none empty."""
    count, height, width = batch.shape[:3]
    size = (height, width)
    if isinstance(lungs, (str, os.PathLike)):
        path = Path(os.fspath(lungs))
        if path.suffix == ".keras":
            lungs = LungSegmenter.load(path)
        elif path.is_dir():
            lungs = _matched(path, films)
        else:
            lungs = [path]
    if isinstance(lungs, keras.Model):
        lungs = LungSegmenter(lungs)
    if isinstance(lungs, LungSegmenter):
        masks = np.asarray(lungs.segment(batch, size=size, batch_size=batch_size))
        names = "the segmenter found no lung pixel"
    else:
        if not isinstance(lungs, (np.ndarray, list, tuple)):
            raise InvalidInputError(
                "lungs: expected a LungSegmenter, a lungs .keras file, an (N, H, W) mask "
                "array, a list of mask arrays or files or a folder of masks, got "
                f"{describe(lungs)}"
            )
        if isinstance(lungs, np.ndarray) and lungs.ndim == 2:
            lungs = lungs[None]
        found = len(lungs)
        if found != count:
            raise InvalidInputError(
                f"lungs: expected one mask per film, got {found} masks for {count} films"
            )
        masks = as_masks(lungs, count=count, size=size, name="lungs")
        names = "no lung pixel"
    empty = np.flatnonzero(~masks.reshape(count, -1).any(axis=1))
    if len(empty):
        raise InvalidInputError(
            f"lungs: {len(empty)} mask(s) are empty ({names}), at positions "
            f"{', '.join(map(str, empty[:10].tolist()))}"
            + (" ..." if len(empty) > 10 else "")
        )
    return masks


def _matched(folder: Path, films: Any) -> list[Path]:
    items = [films] if isinstance(films, (str, os.PathLike)) else films
    if isinstance(items, np.ndarray) or not all(
        isinstance(i, (str, os.PathLike)) for i in items
    ):
        raise InvalidInputError(
            "lungs: a folder of masks is matched by file name and needs film paths; with "
            "arrays, give an (N, H, W) mask array"
        )
    try:
        return match_masks([Path(os.fspath(i)) for i in items], folder)
    except InvalidInputError as err:  # its messages say masks: the argument is lungs
        raise InvalidInputError("lungs: " + str(err).removeprefix("masks: ")) from err
