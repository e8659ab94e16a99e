"""Deprecated: the module is now :mod:`cxrexplain.models.dense_baseline`.

``dense_baseline`` taken from here is the same builder, with a ``DeprecationWarning``.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     from cxrexplain.models.seed_dense import dense_baseline
    >>> dense_baseline((32, 32, 1), 2).name
    'dense_baseline'
"""

from __future__ import annotations

import warnings
from typing import Any

from cxrexplain.models import dense_baseline as _module

__all__: list[str] = []  # the old name is served, with a warning, by __getattr__


def __getattr__(name: str) -> Any:
    if name == "dense_baseline":
        warnings.warn("cxrexplain.models.seed_dense is deprecated; use "
                      "cxrexplain.models.dense_baseline", DeprecationWarning, stacklevel=2)
        return _module.dense_baseline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
