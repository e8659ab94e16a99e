"""Deprecated alias: the demo moved to :mod:`cxrexplain.cli.demo.report` (``cxrexplain demo``).

The same objects, so ``from cxrexplain.demo import run_demo`` keeps working.

Example:
    >>> import cxrexplain.cli.demo.report as moved
    >>> run_demo is moved.run_demo
    True
"""

import warnings

from cxrexplain.cli.demo.report import DemoSettings, run_demo

warnings.warn(
    "cxrexplain.demo is deprecated; import from cxrexplain.cli.demo.report",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["DemoSettings", "run_demo"]
