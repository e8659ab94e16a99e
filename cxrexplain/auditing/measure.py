"""The audit's per-film numbers, kept at their old import path.

The lung share, the border share and the peak are lung rules and live in
:mod:`cxrexplain.lungs.shares` (the margin and the band in :mod:`cxrexplain.lungs.geometry`),
where the training callback reads them too; this module re-exports them for code that
imports ``cxrexplain.auditing.measure``.

Example:
    >>> from cxrexplain.auditing.measure import measure
    >>> from cxrexplain.lungs.shares import measure as the_rule
    >>> measure is the_rule
    True
"""

from __future__ import annotations

from cxrexplain.lungs.geometry import BORDER_FRACTION, DEFAULT_MARGIN, border_band, dilate
from cxrexplain.lungs.shares import Measures, measure

__all__ = ["BORDER_FRACTION", "DEFAULT_MARGIN", "Measures", "border_band", "dilate", "measure"]
