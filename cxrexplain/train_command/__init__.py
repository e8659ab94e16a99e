"""Deprecated alias: moved to :mod:`cxrexplain.cli.train.from_folder` (``cxrexplain train``).

The same objects, so ``from cxrexplain.train_command import train_from_folder`` keeps
working. (A package rather than a module, so that git follows the move of
``train_command.py`` when edits to it are merged.)

Example:
    >>> import cxrexplain.cli.train.from_folder as moved
    >>> train_from_folder is moved.train_from_folder
    True
"""

from cxrexplain.cli.train.from_folder import train_from_folder

__all__ = ["train_from_folder"]
