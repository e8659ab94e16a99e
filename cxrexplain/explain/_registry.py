"""The registry of explainers: every concrete class with a ``name`` adds itself (private).

:class:`~cxrexplain.explain.base.Explainer` calls :func:`register` from ``__init_subclass__``
for each subclass that sets its own ``name``, so a method is listed as soon as its module is
imported; the package ``cxrexplain.explain`` imports every one of its public modules. The
order of :func:`registered` is each class's ``order``, then its name; :func:`lookup` finds a
class under its registry name or one of its ``aliases``, case-insensitively. The public faces
are :func:`cxrexplain.explain.explainers` and :func:`cxrexplain.explain.get_explainer`. The
registry reads only what :class:`Registered` names, so it imports nothing of ``base``, which
imports it.

Example:
    >>> [cls.name for cls in registered()][:3]
    ['cam', 'gradcam', 'gradcampp']
    >>> lookup("Grad-CAM++").__name__
    'GradCAMPlusPlus'
"""

from __future__ import annotations

import re
import threading
from typing import ClassVar, Protocol

from cxrexplain._checks import describe
from cxrexplain.errors import InvalidInputError

__all__: list[str] = []


class Registered(Protocol):
    """What the registry reads of a class."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]]
    order: ClassVar[int]


_REGISTRY: dict[str, type[Registered]] = {}
_LOCK = threading.Lock()
_NAME = re.compile(r"[a-z][a-z0-9_+\-]*\Z")


def register(cls: type[Registered]) -> None:
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


def registered() -> list[type[Registered]]:
    """The registered classes in a fixed order: each class's ``order``, then its name."""
    with _LOCK:
        return sorted(_REGISTRY.values(), key=lambda cls: (cls.order, cls.name))


def lookup(name: str) -> type[Registered]:
    """The class registered under ``name`` or one of its aliases, case-insensitively.

    Raises:
        InvalidInputError: ``name`` is not a string, or is unknown; the message lists the
            known names.
    """
    if not isinstance(name, str):
        raise InvalidInputError(
            f"method: expected an explainer name such as 'gradcam', got {describe(name)}"
        )
    key = name.strip().lower()
    classes = registered()
    for cls in classes:
        if key == cls.name or key in cls.aliases:
            return cls
    raise InvalidInputError(
        f"method: unknown explainer {name!r}; known: {sorted(cls.name for cls in classes)}")


def _same_class(a: type, b: type) -> bool:
    """The same class statement run again (its module reloaded)."""
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__
