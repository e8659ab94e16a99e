"""Deprecated alias: moved to :mod:`cxrexplain.cli.train.from_folder` (``cxrexplain train``).

The same objects, so ``from cxrexplain.train_command import train_from_folder`` keeps
working.

Example:
    >>> import cxrexplain.cli.train.from_folder as moved
    >>> train_from_folder is moved.train_from_folder
    True
"""

import warnings

from cxrexplain.cli.train.from_folder import train_from_folder

warnings.warn(
    "cxrexplain.train_command is deprecated; import from cxrexplain.cli.train.from_folder",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["train_from_folder"]
