"""The ``cxrexplain`` command.

Subcommands (``demo``, ``train``, ``predict``, ``explain``, ``evaluate``) arrive with the
features they drive; ``cxrexplain --version`` and ``cxrexplain --help`` work now.

Exit codes: 0 success, 2 usage error, 1 a :class:`~cxrexplain.CxrExplainError` (its one-line
message, no traceback unless ``--debug``).

Example:
    >>> from cxrexplain.cli import main
    >>> main(["--version"])  # doctest: +SKIP
    cxrexplain 0.1.0
    0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cxrexplain._version import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cxrexplain`` command."""
    parser = argparse.ArgumentParser(
        prog="cxrexplain",
        description=(
            "Chest X-ray classifiers that explain themselves: train, predict, explain with "
            "CAM / Grad-CAM and relatives, and evaluate the explanations."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cxrexplain {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks of errors"
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cxrexplain`` command; returns the exit code.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 1 for a library error, 2 for a usage error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    parser.print_usage(sys.stderr)  # pragma: no cover - no subcommands yet
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
