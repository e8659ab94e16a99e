"""Explainers: the CAM family, perturbation methods, one pipeline and one registry.

Two kinds share one base (:class:`Explainer`): a :class:`LayerExplainer` makes its map from a
target layer (the CAM family), an :class:`InputExplainer` works on the input pixels
(perturbation and input-gradient methods). Each method is one module of this package whose
class sets ``name``: the class registers itself when its module is imported, and this package
imports every module it holds whose name does not start with ``_``. So a method is one file:
:func:`explainers` lists it, in the order of the classes' ``order`` (then name),
:func:`get_explainer` finds it by name or alias, this package and ``cxrexplain`` export it
under its class name, and the first line of its class docstring is its one-line summary
(``cls.__doc__.splitlines()[0]``, for help texts such as the command's ``--method``).

Static tools (type checkers, the API reference) cannot follow that discovery: they see the
methods through the ``TYPE_CHECKING`` block below, one star import per method module, and the
package's names through its star imports (``__all__`` is set at run time only);
``tests/test_explain.py`` checks that the block lists every method module.

Example:
    >>> import cxrexplain as cx
    >>> list(cx.explainers())[:7]
    ['cam', 'gradcam', 'gradcampp', 'hirescam', 'layercam', 'scorecam', 'occlusion']
    >>> {name: cls.__doc__.splitlines()[0] for name, cls in cx.explainers().items()}["cam"]
    'Class activation map: final Dense weights times the features before global pooling.'
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, cast

from cxrexplain.explain import _registry
from cxrexplain.explain.base import *  # noqa: F403 (Explainer, Explanation, Targets)
from cxrexplain.explain.kinds import *  # noqa: F403 (InputExplainer, LayerExplainer)

if TYPE_CHECKING:  # what static tools see of the methods: one line each (run time: below)
    from cxrexplain.explain.ablationcam import *  # noqa: F403
    from cxrexplain.explain.attention_rollout import *  # noqa: F403
    from cxrexplain.explain.cam import *  # noqa: F403
    from cxrexplain.explain.deeplift import *  # noqa: F403
    from cxrexplain.explain.eigencam import *  # noqa: F403
    from cxrexplain.explain.gradcam import *  # noqa: F403
    from cxrexplain.explain.gradcam_pp import *  # noqa: F403
    from cxrexplain.explain.gradient_input import *  # noqa: F403
    from cxrexplain.explain.guided_backprop import *  # noqa: F403
    from cxrexplain.explain.guided_gradcam import *  # noqa: F403
    from cxrexplain.explain.hirescam import *  # noqa: F403
    from cxrexplain.explain.integrated_gradients import *  # noqa: F403
    from cxrexplain.explain.layercam import *  # noqa: F403
    from cxrexplain.explain.lrp import *  # noqa: F403
    from cxrexplain.explain.occlusion import *  # noqa: F403
    from cxrexplain.explain.rise import *  # noqa: F403
    from cxrexplain.explain.saliency import *  # noqa: F403
    from cxrexplain.explain.scorecam import *  # noqa: F403
    from cxrexplain.explain.smooth_ig import *  # noqa: F403
    from cxrexplain.explain.smoothgrad import *  # noqa: F403
    from cxrexplain.explain.xgradcam import *  # noqa: F403


def explainers() -> dict[str, type[Explainer]]:  # noqa: F405 (from base)
    """The explainer classes by registry name (a new dict each call), in a fixed order.

    The order is each class's ``order`` (CAM, Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM,
    Score-CAM and occlusion first, as they were added), then the registry name. The first
    line of a class's docstring is its one-line summary (``cls.__doc__``), for help texts.

    Example:
        >>> explainers()["gradcam"].__name__
        'GradCAM'
        >>> explainers()["hirescam"].__doc__.splitlines()[0]
        'High-resolution CAM: gradient times activation, summed over channels.'
    """
    return {cls.name: cast("type[Explainer]", cls)  # noqa: F405
            for cls in _registry.registered()}


def get_explainer(name: str) -> type[Explainer]:  # noqa: F405 (from base)
    """The explainer class for a name, case-insensitive, with aliases (``"gradcam++"``).

    Raises:
        InvalidInputError: Unknown name; the message lists the known ones.

    Example:
        >>> get_explainer("Grad-CAM++").__name__
        'GradCAMPlusPlus'
    """
    return cast("type[Explainer]", _registry.lookup(name))  # noqa: F405


def _public_names() -> list[str]:
    """Import every public module of this package (methods register themselves), bind the
    methods defined in it under their class names, and return the package's public names:
    those of the modules star-imported above, then the methods in ``explainers()`` order."""
    for module in pkgutil.iter_modules(__path__):  # noqa: F405 (the package's own)
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    methods = [cls for cls in explainers().values() if cls.__module__.startswith(f"{__name__}.")]
    globals().update({cls.__name__: cls for cls in methods})
    shared = [name for part in ("base", "kinds")
              for name in importlib.import_module(f"{__name__}.{part}").__all__]
    return [*shared, "explainers", "get_explainer", *(cls.__name__ for cls in methods)]


# set through globals(): static tools, which cannot run the discovery, then take the names
# the star imports above give
globals()["__all__"] = _public_names()
