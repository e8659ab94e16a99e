"""cxrexplain: chest X-ray classifiers that explain themselves.

Load X-rays (PNG, JPEG, 16-bit, DICOM), wrap a Keras model as a :class:`Classifier`, explain
its decisions with CAM and Grad-CAM and their relatives, draw the heatmaps over the X-ray and
score them against radiologists' boxes and lung masks.

``import cxrexplain`` loads every public name (and so TensorFlow, and registers the models'
Keras custom objects), except in the ``cxrexplain`` command itself (the console script or
``python -m cxrexplain``): there the names other than ``__version__`` and the errors load the
first time one is used (PEP 562), so that ``cxrexplain --help`` imports no TensorFlow.

Every explainer of :func:`explainers` is exported under its class name (``cx.GradCAM``), so a
new method needs no change here. ``cxrexplain.overlay``, the drawing package's former name, is
a deprecated alias of :mod:`cxrexplain.drawing` (``cx.overlay`` is the function), and
``cxrexplain.demo``, ``cxrexplain.train_command`` and ``cxrexplain.audit_command`` are
deprecated aliases of the command's modules they became (:mod:`cxrexplain.cli`).

Example:
    >>> import cxrexplain as cx
    >>> cx.__version__  # doctest: +ELLIPSIS
    '...'
    >>> cx.GradCAM.__name__, cx.overlay.__name__
    ('GradCAM', 'overlay')
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
import warnings
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

# bound at once, also in the command (light modules: no TensorFlow)
from cxrexplain._version import __version__ as __version__
from cxrexplain.errors import CxrExplainError as CxrExplainError
from cxrexplain.errors import ImageLoadError as ImageLoadError
from cxrexplain.errors import InvalidInputError as InvalidInputError
from cxrexplain.errors import MissingDependencyError as MissingDependencyError
from cxrexplain.errors import ModelLoadError as ModelLoadError
from cxrexplain.errors import ModelStructureError as ModelStructureError

if TYPE_CHECKING:  # what a static checker sees: the names the table below binds
    from cxrexplain import data as data
    from cxrexplain import distributed as distributed
    from cxrexplain import lungs as lungs
    from cxrexplain import metrics as metrics
    from cxrexplain import models as models
    from cxrexplain import synthetic as synthetic
    from cxrexplain import training as training
    from cxrexplain.auditing import AuditReport as AuditReport
    from cxrexplain.auditing import AuditRule as AuditRule
    from cxrexplain.auditing import audit as audit
    from cxrexplain.classifier import Classifier as Classifier
    from cxrexplain.classifier import Prediction as Prediction
    from cxrexplain.drawing import colorize as colorize
    from cxrexplain.drawing import draw_box as draw_box
    from cxrexplain.drawing import draw_mask as draw_mask
    from cxrexplain.drawing import overlay as overlay
    from cxrexplain.drawing import plot_explanations as plot_explanations
    from cxrexplain.drawing import plot_feature_maps as plot_feature_maps
    from cxrexplain.drawing import save_figure as save_figure
    from cxrexplain.drawing import save_overlay as save_overlay
    from cxrexplain.evaluate import ExplainerEvaluation as ExplainerEvaluation
    from cxrexplain.evaluate import evaluate_explainers as evaluate_explainers
    from cxrexplain.explain import *  # noqa: F403 (the bases, explainers() and every method)
    from cxrexplain.io import load_image as load_image
    from cxrexplain.io import load_images as load_images

_MODULE = ""
"""In :data:`_EXPORTS`: the module itself, under its last dotted name (``cx.data``)."""

_EXPLAINERS = "*"
"""In :data:`_EXPORTS`: every explainer the registry holds, under its class name."""

_EXPORTS: dict[str, tuple[str, ...]] = {
    "cxrexplain._version": ("__version__",),
    "cxrexplain.errors": ("CxrExplainError", "ImageLoadError", "InvalidInputError",
                          "MissingDependencyError", "ModelLoadError", "ModelStructureError"),
    "cxrexplain.data": (_MODULE,),
    "cxrexplain.distributed": (_MODULE,),
    "cxrexplain.lungs": (_MODULE,),
    "cxrexplain.metrics": (_MODULE,),
    "cxrexplain.models": (_MODULE,),
    "cxrexplain.synthetic": (_MODULE,),
    "cxrexplain.training": (_MODULE,),
    "cxrexplain.auditing": ("AuditReport", "AuditRule", "audit"),
    "cxrexplain.classifier": ("Classifier", "Prediction"),
    "cxrexplain.evaluate": ("ExplainerEvaluation", "evaluate_explainers"),
    "cxrexplain.explain": ("Explainer", "Explanation", "InputExplainer", "LayerExplainer",
                           "explainers", "get_explainer", _EXPLAINERS),
    "cxrexplain.io": ("load_image", "load_images"),
    "cxrexplain.drawing": ("colorize", "draw_box", "draw_mask", "overlay", "plot_explanations",
                           "plot_feature_maps", "save_figure", "save_overlay"),
}
"""The facade, in one table: each module and the public names it gives ``cxrexplain``.

``__all__`` and the loader are derived from it; the modules load in this order."""


def _exports(module: types.ModuleType, names: tuple[str, ...]) -> dict[str, Any]:
    """The public names one row of :data:`_EXPORTS` binds, and their values."""
    bound: dict[str, Any] = {}
    for name in names:
        if name == _MODULE:
            bound[module.__name__.rpartition(".")[2]] = module
        elif name == _EXPLAINERS:
            bound.update({cls.__name__: cls for cls in module.explainers().values()})
        else:
            bound[name] = getattr(module, name)
    return bound


def _load_all() -> None:
    """Bind every public name and ``__all__`` (imports TensorFlow)."""
    bound: dict[str, Any] = {}
    for module_name, names in _EXPORTS.items():
        bound.update(_exports(importlib.import_module(module_name), names))
    globals().update(bound, __all__=sorted(bound))


def _is_the_command() -> bool:
    """True while this process is the ``cxrexplain`` command: its console script, or ``python
    -m cxrexplain`` (whose package is imported while ``sys.argv[0]`` is still ``"-m"``)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 != "-m":
        return PurePath(argv0).stem.lower() in {"cxrexplain", "cxrexplain-script"}
    args = [*sys.orig_argv, ""]
    flag = next((i for i, arg in enumerate(args) if arg.startswith("-m")), None)
    if flag is None:
        return True
    target = args[flag][2:] or args[flag + 1]
    return target.split(".")[0] == __name__


def _deprecated_alias(old: str, new: str, *, bind: bool = True) -> None:
    """Make ``import old`` and ``from old import name`` reach the module ``new`` (imported on
    first use, with a DeprecationWarning). With ``bind`` the alias is also this package's
    attribute (``cxrexplain.demo.run_demo`` after ``import cxrexplain.demo``); without it
    nothing is bound, so a public name of the same spelling (``cx.overlay``) stays."""
    alias = types.ModuleType(old, f"Deprecated alias of {new}.")

    def __getattr__(name: str) -> Any:  # noqa: N807 (PEP 562)
        if name.startswith("__") and name != "__all__":
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    def __dir__() -> list[str]:  # noqa: N807 (PEP 562)
        return dir(importlib.import_module(new))

    vars(alias).update(__getattr__=__getattr__, __dir__=__dir__)
    # in sys.modules before anyone imports it: the import system then returns it as it is and
    # does not set it as this package's attribute
    sys.modules.setdefault(old, alias)
    if bind:
        globals()[old.rpartition(".")[2]] = sys.modules[old]


_deprecated_alias(f"{__name__}.overlay", f"{__name__}.drawing", bind=False)
_deprecated_alias(f"{__name__}.demo", f"{__name__}.cli.demo.report")
_deprecated_alias(f"{__name__}.train_command", f"{__name__}.cli.train.from_folder")
_deprecated_alias(f"{__name__}.audit_command", f"{__name__}.cli.audit.to_folder")

_LOCK = threading.RLock()  # other threads wait while one loads; the loading one may re-enter
_loading = False

if not TYPE_CHECKING:  # at run time only, so that a checker still flags unknown names

    def __getattr__(name: str) -> Any:
        """PEP 562, in the command: the first public name asked for loads them all."""
        global _loading
        if name == "__all__" or not name.startswith("_"):
            with _LOCK:
                if "__all__" not in globals() and not _loading:
                    _loading = True
                    try:
                        _load_all()
                    finally:
                        _loading = False
            if name in globals():
                return globals()[name]
            # asked for while loading (``from cxrexplain import x`` in a module that loads):
            # the import system then imports the sub-module itself
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__getattr__("__all__")))

if not _is_the_command():  # a library import: eager, as it always was
    _load_all()
