"""Measure explanations: pointing game, energy in a mask, deletion/insertion, randomization.

Example:
    >>> import numpy as np
    >>> import cxrexplain as cx
    >>> heat = np.ones((1, 8, 8)); lungs = np.zeros((1, 8, 8), bool); lungs[0, :, :4] = True
    >>> cx.metrics.energy_in_mask(heat, lungs).tolist()
    [0.5]
"""

from __future__ import annotations

from cxrexplain.metrics.localisation import PointingResult, energy_in_mask, pointing_game
from cxrexplain.metrics.perturbation import (
    PerturbationCurves,
    deletion_auc,
    insertion_auc,
    perturbation_curves,
)
from cxrexplain.metrics.randomization import RandomizationResult, randomization_check, spearman

__all__ = [
    "PerturbationCurves",
    "PointingResult",
    "RandomizationResult",
    "deletion_auc",
    "energy_in_mask",
    "insertion_auc",
    "perturbation_curves",
    "pointing_game",
    "randomization_check",
    "spearman",
]
