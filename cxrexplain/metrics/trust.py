"""Trust tests of saliency maps (Arun et al., Radiology: AI 2021): repeatability, reproducibility.

A map one can trust should not depend on the accident of one training run. Arun et al. compare
the maps of the same films under two models with the structural similarity index (SSIM,
:func:`cxrexplain.metrics.ssim`):

* **repeatability**: two models of the *same* architecture trained again (another seed);
* **reproducibility**: two models of *different* architectures trained on the same data;

each beside the baseline they use, :func:`pair_baseline`: the SSIM of one model's maps of
*random pairs of films*, what two unrelated maps score. A method whose repeatability is not
clearly above that baseline draws maps that say more about the run than about the film. The
randomization check (:func:`cxrexplain.metrics.randomization_check`) is the third test: maps
that survive re-initialising the model say little about the model.
:func:`cxrexplain.evaluate_explainers` reports all three per method with intervals
(``repeat=``, ``reproduce=``).

Example:
    >>> import numpy as np
    >>> from cxrexplain.metrics import pair_baseline, repeatability
    >>> rng = np.random.default_rng(0)
    >>> maps = rng.random((4, 16, 16))
    >>> repeatability(maps, maps).tolist()
    [1.0, 1.0, 1.0, 1.0]
    >>> bool(pair_baseline(maps, seed=0).mean() < 0.2)  # unrelated noise: near 0
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrexplain._arrays import as_heatmaps, resize_heatmaps
from cxrexplain._checks import check_int
from cxrexplain.errors import InvalidInputError
from cxrexplain.metrics.similarity import ssim

__all__ = ["pair_baseline", "repeatability", "reproducibility"]


def repeatability(maps_a: Any, maps_b: Any) -> np.ndarray:
    """SSIM of two models' maps of the same films: the same architecture, trained twice.

    Args:
        maps_a: ``(N, H, W)`` maps of the first model (e.g. ``exp.heatmaps``).
        maps_b: ``(N, H', W')`` maps of the second model for the same films and classes; when
            their size differs they are resized bilinearly to ``maps_a``'s.

    Returns:
        ``(N,)`` float64 SSIM in [-1, 1] (1: the same map).

    Raises:
        InvalidInputError: Not one map per film in each stack, maps smaller than 7 x 7, NaN.

    Example:
        >>> a = np.zeros((1, 8, 8)); a[0, 2:5, 2:5] = 1.0
        >>> b = np.zeros((1, 16, 16)); b[0, 4:10, 4:10] = 1.0  # the same map at twice the size
        >>> bool(repeatability(a, b)[0] > 0.9)
        True
    """
    return _paired_ssim(maps_a, maps_b)


def reproducibility(maps_a: Any, maps_b: Any) -> np.ndarray:
    """SSIM of two models' maps of the same films: two architectures on the same data.

    The same computation as :func:`repeatability` (maps of another input size are resized to
    ``maps_a``'s); the name records which question the two models answer.

    Args:
        maps_a: ``(N, H, W)`` maps of the first model.
        maps_b: ``(N, H', W')`` maps of the other architecture for the same films and classes.

    Returns:
        ``(N,)`` float64 SSIM in [-1, 1].

    Raises:
        InvalidInputError: As :func:`repeatability`.

    Example:
        >>> a = np.random.default_rng(1).random((2, 12, 12))
        >>> reproducibility(a, a[:, ::-1]).shape
        (2,)
    """
    return _paired_ssim(maps_a, maps_b)


def pair_baseline(maps: Any, *, seed: int = 0) -> np.ndarray:
    """SSIM of each film's map with the map of another film (Arun et al.'s random pairs).

    The partners are a random derangement of the films (no film is paired with itself), so the
    score says how alike two maps of *different* films are: the floor that repeatability and
    reproducibility must clear.

    Args:
        maps: ``(N, H, W)`` maps of one model, N >= 2.
        seed: Seed of the pairing.

    Returns:
        ``(N,)`` float64 SSIM in [-1, 1].

    Raises:
        InvalidInputError: Fewer than two maps, maps smaller than 7 x 7, NaN.

    Example:
        >>> same = np.tile(np.eye(8)[None], (3, 1, 1))  # every film the same map
        >>> pair_baseline(same).tolist()
        [1.0, 1.0, 1.0]
    """
    stack = as_heatmaps(maps, "maps")
    check_int(seed, "seed", minimum=0)
    count = stack.shape[0]
    if count < 2:
        raise InvalidInputError(f"maps: random pairs need at least two maps, got {count}")
    order = np.random.default_rng(seed).permutation(count)
    partner = np.empty(count, np.int64)
    partner[order] = np.roll(order, -1)  # a single cycle through the shuffled films
    return ssim(stack, stack[partner])


def _paired_ssim(maps_a: Any, maps_b: Any) -> np.ndarray:
    a = as_heatmaps(maps_a, "maps_a")
    b = as_heatmaps(maps_b, "maps_b")
    if a.shape[0] != b.shape[0]:
        raise InvalidInputError(
            f"maps_a, maps_b: one map per film in each, got {a.shape[0]} and {b.shape[0]}")
    if b.shape[1:] != a.shape[1:]:
        b = resize_heatmaps(b, (a.shape[1], a.shape[2]))
    return ssim(a, b)
