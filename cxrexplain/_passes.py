"""Compiled passes shared by everything built on one model (private).

Tracing a ``tf.function`` costs from a fifth of a second (a small CNN) to seconds (VGG16), and
the one-line pattern ``cx.GradCAM(clf).explain(batch)`` builds a new explainer on every call.
So a traced pass is stored with its model, under a key that names everything its graph depends
on (the method and its settings, the target layer, the output head, the input signature), and
every explainer, classifier or metric built on the same model finds it there.

The store maps each model to its passes through a :class:`weakref.WeakKeyDictionary`: it never
keeps a model alive, and dropping the model drops its passes. A traced concrete function holds
the model's variables but not the model object, so an entry does not keep its own key alive
(``tests/test_passes.py`` checks both). It is a memo, like :func:`functools.lru_cache`: what it
returns depends only on the model and the key.

Example:
    >>> import keras
    >>> from cxrexplain._passes import shared, traced
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> first = shared(model, ("double",), lambda: model.count_params() * 2)
    >>> shared(model, ("double",), lambda: -1) == first, traced(model)
    (True, 1)
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["shared", "traced"]

T = TypeVar("T")

_STORE: weakref.WeakKeyDictionary[Any, dict[Hashable, Any]] = weakref.WeakKeyDictionary()
_LOCK = threading.RLock()


def shared(model: Any, key: Hashable, build: Callable[[], T]) -> T:
    """The value stored for ``(model, key)``, built (once) by ``build()`` when missing.

    Args:
        model: The model the value belongs to (held weakly).
        key: Everything else the value depends on.
        build: Makes the value; it must not hold a strong reference to ``model``.

    Returns:
        The stored value.
    """
    with _LOCK:
        passes = _STORE.setdefault(model, {})
        if key not in passes:
            passes[key] = build()
        return passes[key]  # type: ignore[no-any-return]


def traced(model: Any) -> int:
    """How many values are stored for ``model`` (0 for a model never used)."""
    with _LOCK:
        return len(_STORE.get(model, {}))
