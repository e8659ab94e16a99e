"""Deprecated alias: moved to :mod:`cxrexplain.cli.audit.to_folder` (``cxrexplain audit``).

The same objects, so ``from cxrexplain.audit_command import audit_to_folder`` keeps working.
(A package rather than a module, so that git follows the move of ``audit_command.py`` when
edits to it are merged.)

Example:
    >>> import cxrexplain.cli.audit.to_folder as moved
    >>> audit_to_folder is moved.audit_to_folder
    True
"""

from cxrexplain.cli.audit.to_folder import FLAGGED_EXIT_CODE, audit_to_folder

__all__ = ["FLAGGED_EXIT_CODE", "audit_to_folder"]
