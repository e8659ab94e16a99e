"""cxrexplain: chest X-ray classifiers that explain themselves.

Load X-rays (PNG, JPEG, 16-bit, DICOM), wrap a Keras model as a :class:`Classifier`, explain
its decisions with CAM and Grad-CAM and their relatives, draw the heatmaps over the X-ray and
score them against radiologists' boxes and lung masks.

Example:
    >>> import cxrexplain as cx
    >>> cx.__version__  # doctest: +ELLIPSIS
    '...'
"""

from __future__ import annotations

from cxrexplain import data, lungs, metrics, models, synthetic, training
from cxrexplain._version import __version__
from cxrexplain.auditing import AuditReport, AuditRule, audit
from cxrexplain.classifier import Classifier, Prediction
from cxrexplain.errors import (
    CxrExplainError,
    ImageLoadError,
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
    ModelStructureError,
)
from cxrexplain.evaluate import ExplainerEvaluation, evaluate_explainers
from cxrexplain.explain import (
    CAM,
    Explainer,
    Explanation,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    explainers,
    get_explainer,
)
from cxrexplain.io import load_image, load_images
from cxrexplain.overlay import (
    colorize,
    draw_box,
    draw_mask,
    overlay,
    plot_explanations,
    plot_feature_maps,
    save_figure,
    save_overlay,
)

__all__ = [
    "AuditReport",
    "AuditRule",
    "CAM",
    "Classifier",
    "CxrExplainError",
    "Explainer",
    "ExplainerEvaluation",
    "Explanation",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "ImageLoadError",
    "InvalidInputError",
    "LayerCAM",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelStructureError",
    "Prediction",
    "ScoreCAM",
    "__version__",
    "audit",
    "colorize",
    "data",
    "draw_box",
    "draw_mask",
    "evaluate_explainers",
    "explainers",
    "get_explainer",
    "load_image",
    "load_images",
    "lungs",
    "metrics",
    "models",
    "overlay",
    "plot_explanations",
    "plot_feature_maps",
    "save_figure",
    "save_overlay",
    "synthetic",
    "training",
]
