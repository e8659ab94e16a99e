"""Measure explanations: pointing game, energy in a mask, deletion/insertion, randomization.

The CXR-paper localisation protocol (Saporta et al. 2022, CheXlocalize; Arun et al. 2021):
:func:`binarize` (Otsu or a tuned threshold, probability gate), :func:`tune_threshold`,
:func:`iou`, :func:`hit_rate`, :func:`pixel_auprc`, :func:`boxes_to_masks`, and
:func:`bootstrap_ci` / :func:`paired_bootstrap_ci` for confidence intervals over images;
:func:`swap_test`, the counterfactual test of the decisions with the lungs' surroundings swapped;
Arun et al.'s trust tests :func:`repeatability`, :func:`reproducibility` and their floor
:func:`pair_baseline`.

Example:
    >>> import numpy as np
    >>> import cxrexplain as cx
    >>> heat = np.ones((1, 8, 8)); lungs = np.zeros((1, 8, 8), bool); lungs[0, :, :4] = True
    >>> cx.metrics.energy_in_mask(heat, lungs).tolist()
    [0.5]
"""

from __future__ import annotations

from cxrexplain.metrics.bootstrap import Interval, bootstrap_ci, paired_bootstrap_ci
from cxrexplain.metrics.boxes import boxes_to_masks
from cxrexplain.metrics.hits import hit_rate
from cxrexplain.metrics.localisation import PointingResult, energy_in_mask, pointing_game
from cxrexplain.metrics.overlap import iou
from cxrexplain.metrics.perturbation import (
    PerturbationCurves,
    deletion_auc,
    insertion_auc,
    perturbation_curves,
)
from cxrexplain.metrics.precision_recall import pixel_auprc
from cxrexplain.metrics.randomization import RandomizationResult, randomization_check, spearman
from cxrexplain.metrics.similarity import ssim
from cxrexplain.metrics.swap import SwapTest, swap_test
from cxrexplain.metrics.thresholding import binarize, tune_threshold
from cxrexplain.metrics.trust import pair_baseline, repeatability, reproducibility

__all__ = [
    "Interval",
    "PerturbationCurves",
    "PointingResult",
    "RandomizationResult",
    "SwapTest",
    "binarize",
    "bootstrap_ci",
    "boxes_to_masks",
    "deletion_auc",
    "energy_in_mask",
    "hit_rate",
    "insertion_auc",
    "iou",
    "pair_baseline",
    "paired_bootstrap_ci",
    "perturbation_curves",
    "pixel_auprc",
    "pointing_game",
    "randomization_check",
    "repeatability",
    "reproducibility",
    "spearman",
    "ssim",
    "swap_test",
    "tune_threshold",
]
