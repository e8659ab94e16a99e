"""Deprecated alias: moved to :mod:`cxrexplain.cli.audit.to_folder` (``cxrexplain audit``).

The same objects, so ``from cxrexplain.audit_command import audit_to_folder`` keeps working.

Example:
    >>> import cxrexplain.cli.audit.to_folder as moved
    >>> audit_to_folder is moved.audit_to_folder
    True
"""

import warnings

from cxrexplain.cli.audit.to_folder import FLAGGED_EXIT_CODE, audit_to_folder

warnings.warn(
    "cxrexplain.audit_command is deprecated; import from cxrexplain.cli.audit.to_folder",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["FLAGGED_EXIT_CODE", "audit_to_folder"]
