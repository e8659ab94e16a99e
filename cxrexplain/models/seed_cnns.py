"""Deprecated: the module is now :mod:`cxrexplain.models.small_cnns`.

Its old builder functions are the renamed ones, each with a ``DeprecationWarning`` when it is
taken from here: ``seed_binary_cnn`` is ``two_block_cnn``, ``seed_softmax_cnn`` is
``four_block_cnn`` and ``seed_proposed_cnn`` is ``five_block_cnn``.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     from cxrexplain.models.seed_cnns import seed_binary_cnn
    >>> seed_binary_cnn((64, 64, 3), 2).name
    'two_block_cnn'
"""

from __future__ import annotations

import warnings
from typing import Any

from cxrexplain.models import small_cnns

__all__: list[str] = []  # the old names are served, with a warning, by __getattr__

_RENAMED = {"seed_binary_cnn": "two_block_cnn", "seed_softmax_cnn": "four_block_cnn",
            "seed_proposed_cnn": "five_block_cnn"}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        new = _RENAMED[name]
        warnings.warn(f"cxrexplain.models.seed_cnns.{name} is deprecated; use "
                      f"cxrexplain.models.small_cnns.{new}", DeprecationWarning, stacklevel=2)
        return getattr(small_cnns, new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
