"""Explainers: CAM, Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM, Score-CAM and occlusion, one base.

Example:
    >>> import cxrexplain as cx
    >>> sorted(cx.explainers())
    ['cam', 'gradcam', 'gradcampp', 'hirescam', 'layercam', 'occlusion', 'scorecam']
"""

from __future__ import annotations

from cxrexplain._checks import describe
from cxrexplain.errors import InvalidInputError
from cxrexplain.explain.base import Explainer, Explanation, Targets
from cxrexplain.explain.cam import CAM
from cxrexplain.explain.gradcam import GradCAM
from cxrexplain.explain.gradcam_pp import GradCAMPlusPlus
from cxrexplain.explain.hirescam import HiResCAM
from cxrexplain.explain.layercam import LayerCAM
from cxrexplain.explain.occlusion import Occlusion
from cxrexplain.explain.scorecam import ScoreCAM

__all__ = [
    "CAM",
    "Explainer",
    "Explanation",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "Occlusion",
    "ScoreCAM",
    "Targets",
    "explainers",
    "get_explainer",
]

_METHODS: tuple[type[Explainer], ...] = (CAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM,
                                         ScoreCAM, Occlusion)
_ALIASES = {"grad-cam": "gradcam", "gradcam++": "gradcampp", "gradcam_pp": "gradcampp",
            "gradcamplusplus": "gradcampp", "grad-cam++": "gradcampp", "score-cam": "scorecam",
            "layer-cam": "layercam", "hires-cam": "hirescam",
            "occlusion-sensitivity": "occlusion", "occlusion_sensitivity": "occlusion"}


def explainers() -> dict[str, type[Explainer]]:
    """The explainer classes by registry name (a new dict each call).

    Example:
        >>> explainers()["gradcam"].__name__
        'GradCAM'
    """
    return {method.name: method for method in _METHODS}


def get_explainer(name: str) -> type[Explainer]:
    """The explainer class for a name, case-insensitive, with aliases (``"gradcam++"``).

    Raises:
        InvalidInputError: Unknown name; the message lists the known ones.

    Example:
        >>> get_explainer("Grad-CAM++").__name__
        'GradCAMPlusPlus'
    """
    if not isinstance(name, str):
        raise InvalidInputError(
            f"method: expected an explainer name such as 'gradcam', got {describe(name)}"
        )
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    registry = explainers()
    if key not in registry:
        raise InvalidInputError(f"method: unknown explainer {name!r}; known: {sorted(registry)}")
    return registry[key]
