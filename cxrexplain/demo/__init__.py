"""Deprecated alias: the demo moved to :mod:`cxrexplain.cli.demo.report` (``cxrexplain demo``).

The same objects, so ``from cxrexplain.demo import run_demo`` keeps working. (A package rather
than a module, so that git follows the move of ``demo.py`` when edits to it are merged.)

Example:
    >>> import cxrexplain.cli.demo.report as moved
    >>> run_demo is moved.run_demo
    True
"""

from cxrexplain.cli.demo.report import DemoSettings, run_demo

__all__ = ["DemoSettings", "run_demo"]
