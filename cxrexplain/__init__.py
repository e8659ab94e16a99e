"""cxrexplain: chest X-ray classifiers that explain themselves.

Load X-rays (PNG, JPEG, 16-bit, DICOM), wrap a Keras model as a :class:`Classifier`, explain
its decisions with CAM and Grad-CAM and their relatives, draw the heatmaps over the X-ray and
score them against radiologists' boxes and lung masks.

``import cxrexplain`` loads every public name (and so TensorFlow, and registers the models'
Keras custom objects), except in the ``cxrexplain`` command itself (the console script or
``python -m cxrexplain``): there the names other than ``__version__`` and the errors load the
first time one is used (PEP 562), so that ``cxrexplain --help`` imports no TensorFlow.

Example:
    >>> import cxrexplain as cx
    >>> cx.__version__  # doctest: +ELLIPSIS
    '...'
    >>> cx.GradCAM.__name__
    'GradCAM'
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from typing import TYPE_CHECKING, Any

from cxrexplain._version import __version__
from cxrexplain.errors import (
    CxrExplainError,
    ImageLoadError,
    InvalidInputError,
    MissingDependencyError,
    ModelLoadError,
    ModelStructureError,
)

if TYPE_CHECKING:  # what a static checker sees: the names below, as an eager import binds them
    from cxrexplain import data, distributed, lungs, metrics, models, synthetic, training
    from cxrexplain.auditing import AuditReport, AuditRule, audit
    from cxrexplain.classifier import Classifier, Prediction
    from cxrexplain.evaluate import ExplainerEvaluation, evaluate_explainers
    from cxrexplain.explain import (
        CAM,
        Explainer,
        Explanation,
        GradCAM,
        GradCAMPlusPlus,
        HiResCAM,
        LayerCAM,
        Occlusion,
        ScoreCAM,
        explainers,
        get_explainer,
    )
    from cxrexplain.io import load_image, load_images
    from cxrexplain.drawing import (
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
    "Occlusion",
    "Prediction",
    "ScoreCAM",
    "__version__",
    "audit",
    "colorize",
    "data",
    "distributed",
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

# The lazily loaded names: module -> the names it gives the facade ("" = the sub-package
# itself), in the order of the former eager imports.
_LAZY: dict[str, tuple[str, ...]] = {
    "cxrexplain.data": ("",),
    "cxrexplain.distributed": ("",),
    "cxrexplain.lungs": ("",),
    "cxrexplain.metrics": ("",),
    "cxrexplain.models": ("",),
    "cxrexplain.synthetic": ("",),
    "cxrexplain.training": ("",),
    "cxrexplain.auditing": ("AuditReport", "AuditRule", "audit"),
    "cxrexplain.classifier": ("Classifier", "Prediction"),
    "cxrexplain.evaluate": ("ExplainerEvaluation", "evaluate_explainers"),
    "cxrexplain.explain": ("CAM", "Explainer", "Explanation", "GradCAM", "GradCAMPlusPlus",
                           "HiResCAM", "LayerCAM", "Occlusion", "ScoreCAM", "explainers",
                           "get_explainer"),
    "cxrexplain.io": ("load_image", "load_images"),
    "cxrexplain.drawing": ("colorize", "draw_box", "draw_mask", "overlay", "plot_explanations",
                           "plot_feature_maps", "save_figure", "save_overlay"),
}
_LAZY_NAMES = frozenset(
    module.rpartition(".")[2] if name == "" else name
    for module, names in _LAZY.items() for name in names
)


def _load_all() -> None:
    """Bind every lazily loaded public name in this module (imports TensorFlow)."""
    namespace = globals()
    for module_name, names in _LAZY.items():
        module = importlib.import_module(module_name)
        for name in names:
            if name == "":
                namespace[module_name.rpartition(".")[2]] = module
            else:
                namespace[name] = getattr(module, name)


_LOCK = threading.RLock()  # other threads wait while one loads; the loading one may re-enter
_loading = False

if not TYPE_CHECKING:  # at run time only, so that a checker still flags unknown names

    def __getattr__(name: str) -> Any:
        global _loading
        if name in _LAZY_NAMES:
            with _LOCK:
                if name not in globals() and not _loading:
                    _loading = True
                    try:
                        _load_all()
                    finally:
                        _loading = False
            if name in globals():
                return globals()[name]
            # asked for while loading (``from cxrexplain import data`` inside a module that
            # loads): the import system then imports the sub-module itself
        raise AttributeError(f"module 'cxrexplain' has no attribute '{name}'")

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))


class _Facade(types.ModuleType):
    """The package's module type: ``cx.overlay`` stays the function ``overlay`` (as the eager
    facade had it) when the sub-package ``cxrexplain.drawing`` is first imported on its own,
    which would otherwise bind the sub-package to that name."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (name == "overlay" and isinstance(value, types.ModuleType)
                and value.__name__ == "cxrexplain.drawing"):
            value = value.overlay
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade


def _is_the_command() -> bool:
    """True while this process is the ``cxrexplain`` command: the console script, or ``python
    -m cxrexplain`` (whose package is imported while ``sys.argv[0]`` is ``"-m"``)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 == "-m":
        orig = list(getattr(sys, "orig_argv", []))
        for i, arg in enumerate(orig):
            if arg.startswith("-m"):
                target = arg[2:] or (orig[i + 1] if i + 1 < len(orig) else "")
                return target.split(".")[0] == "cxrexplain"
        return True
    name = os.path.basename(argv0).lower()
    return name in {"cxrexplain", "cxrexplain.exe", "cxrexplain-script.py"}


if not _is_the_command():  # a library import: eager, as it always was
    _load_all()
