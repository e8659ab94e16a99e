"""The registry of explainers: every concrete class with a ``name`` adds itself (private).

:class:`~cxrexplain.explain.base.Explainer` calls :func:`register` from ``__init_subclass__``
for each subclass that sets its own ``name``, so a method is listed as soon as its module is
imported; the package ``cxrexplain.explain`` imports every one of its public modules. The
order of :func:`explainers` is each class's ``order``, then its name; a name is found by
:func:`get_explainer` under its registry name or one of its ``aliases``, case-insensitively.

Example:
    >>> from cxrexplain.explain import explainers, get_explainer
    >>> list(explainers())[:3]
    ['cam', 'gradcam', 'gradcampp']
    >>> get_explainer("Grad-CAM++").__name__
    'GradCAMPlusPlus'
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

from cxrexplain._checks import describe
from cxrexplain.errors import InvalidInputError

if TYPE_CHECKING:
    from cxrexplain.explain.base import Explainer

__all__ = ["explainers", "get_explainer"]

_REGISTRY: dict[str, type[Explainer]] = {}
_LOCK = threading.Lock()
_NAME = re.compile(r"[a-z][a-z0-9_+\-]*\Z")


def register(cls: type[Explainer]) -> None:
    """Add ``cls`` under ``cls.name`` and its ``cls.aliases`` (called by ``__init_subclass__``).

    A class defined again by the same module under the same name (a module reloaded)
    replaces its former self.

    Raises:
        InvalidInputError: A name or alias that is not lower case (letters, digits, ``_``,
            ``+``, ``-``), or that another class has already taken.
    """
    spellings = (cls.name, *cls.aliases)
    for spelling in spellings:
        if not isinstance(spelling, str) or not _NAME.match(spelling):
            raise InvalidInputError(
                f"{cls.__qualname__}.name/aliases: expected lower-case names such as "
                f"'gradcam', got {describe(spelling)}"
            )
    with _LOCK:
        for other in _REGISTRY.values():
            if _same_class(other, cls):
                continue
            taken = {other.name, *other.aliases} & set(spellings)
            if taken:
                raise InvalidInputError(
                    f"{cls.__qualname__}.name: {sorted(taken)} already names "
                    f"{other.__module__}.{other.__qualname__}"
                )
        for key, other in list(_REGISTRY.items()):
            if _same_class(other, cls):
                del _REGISTRY[key]
        _REGISTRY[cls.name] = cls


def explainers() -> dict[str, type[Explainer]]:
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
    with _LOCK:
        ordered = sorted(_REGISTRY.values(), key=lambda cls: (cls.order, cls.name))
    return {cls.name: cls for cls in ordered}


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
    registry = explainers()
    for cls in registry.values():
        if key == cls.name or key in cls.aliases:
            return cls
    raise InvalidInputError(f"method: unknown explainer {name!r}; known: {sorted(registry)}")


def _same_class(a: type, b: type) -> bool:
    """The same class statement run again (its module reloaded)."""
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__
