"""Keeping third-party output off the terminal (private): the one place that silences stderr.

TensorFlow's absl (lines logged before ``absl::InitializeLog()``) and Ray's raylet write
straight to file descriptor 2, past Python's ``sys.stderr``; redirecting the descriptor is the
only way to keep them quiet. Used by the command (while TensorFlow is imported) and by
:mod:`cxrexplain.distributed` (while Ray starts and stops). Imports only the standard library.

Example:
    >>> import sys
    >>> with stderr_silenced():
    ...     print("not shown", file=sys.stderr)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["stderr_silenced"]


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to the null device within the block (restored on exit)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable file descriptor 2: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
