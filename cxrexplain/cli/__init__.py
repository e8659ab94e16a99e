"""The ``cxrexplain`` command: one module (or package) of this package per subcommand.

``demo``, ``train``, ``predict``, ``explain``, ``evaluate``, ``audit``, ``lungs train`` and
``methods`` are found, not listed: :func:`build_parser` walks this package with
:func:`pkgutil.iter_modules` and adds the :class:`~cxrexplain.cli._subcommand.Subcommand`
that each public module binds to ``COMMAND``, ordered by its ``order``. Adding a subcommand
is adding one file (see ``_subcommand.py``).

The parser and ``--help`` / ``--version`` import no TensorFlow or Keras: this module imports
only ``cxrexplain._version``, ``cxrexplain._quiet`` and ``cxrexplain.errors``, and the
subcommand modules import what their work needs inside their ``run`` functions.
TensorFlow's and absl's C++ log lines are off unless ``--debug`` is given or the user set
``TF_CPP_MIN_LOG_LEVEL``.

Exit codes: 0 success, 2 usage error, 1 a :class:`~cxrexplain.CxrExplainError` (its one-line
message, no traceback unless ``--debug``), 3 ``audit`` flagged the model.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["predict", "pneumonia.keras", "a.png", "b.png"])
    image  label  NORMAL  PNEUMONIA
    a.png  ...
    b.png  ...
    0
    >>> main(["predict", "pneumonia.keras", "missing.png"])  # the message goes to stderr
    1
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import MutableMapping, Sequence

from cxrexplain._quiet import stderr_silenced
from cxrexplain._version import __version__
from cxrexplain.cli._subcommand import Run, Subcommand
from cxrexplain.errors import CxrExplainError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cxrexplain`` command, with every subcommand found."""
    parser = argparse.ArgumentParser(
        prog="cxrexplain",
        description=(
            "Chest X-ray classifiers that explain themselves: train, predict, explain with "
            "CAM / Grad-CAM and relatives, and evaluate the explanations."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cxrexplain {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks of errors and TensorFlow's log lines")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _subcommands():
        command.install(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cxrexplain`` command; returns the exit code.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when None.

    Returns:
        0 on success, 1 for a library error, 2 for a usage error, 3 for a flagged audit.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    run: Run = args.run
    try:
        _import_tensorflow(quiet=_prepare_environment(args.debug))
        return run(args)
    except CxrExplainError as err:
        if args.debug:
            raise
        print(f"cxrexplain: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover
        print("cxrexplain: interrupted", file=sys.stderr)
        return 130


def _subcommands() -> list[Subcommand]:
    """The ``COMMAND`` of every public module of this package, in help order.

    Raises:
        TypeError: A public module without a ``Subcommand`` named ``COMMAND``, or two
            subcommands of one name (mistakes in the package, not in the user's input).
    """
    found: dict[str, Subcommand] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        name = f"{__name__}.{module.name}"
        command = getattr(importlib.import_module(name), "COMMAND", None)
        if not isinstance(command, Subcommand):
            raise TypeError(f"{name}: a subcommand module binds a Subcommand to COMMAND")
        if command.name in found:
            raise TypeError(f"{name}: a second subcommand named {command.name!r}")
        found[command.name] = command
    return sorted(found.values(), key=lambda c: (c.order, c.name))


# ------------------------------------------------------------------- TensorFlow's log lines
def _prepare_environment(debug: bool,
                         environ: MutableMapping[str, str] | None = None) -> bool:
    """Quiet TensorFlow's C++ logging before TensorFlow is imported; True when quieted.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` and ``GRPC_VERBOSITY=ERROR`` unless ``debug`` or the user
    set ``TF_CPP_MIN_LOG_LEVEL`` (then nothing changes). ``TF_ENABLE_ONEDNN_OPTS`` is never
    touched: it changes the numbers.
    """
    env = os.environ if environ is None else environ
    if debug or "TF_CPP_MIN_LOG_LEVEL" in env:
        return False
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.setdefault("GRPC_VERBOSITY", "ERROR")
    return True


def _import_tensorflow(quiet: bool) -> None:
    """Import TensorFlow and Keras now; with ``quiet``, the file descriptor 2 goes to the null
    device meanwhile (absl writes the lines logged before ``absl::InitializeLog()``, such as
    oneDNN's and the cuda stubs', straight to it, whatever ``TF_CPP_MIN_LOG_LEVEL`` says)."""
    if "tensorflow" in sys.modules:
        return
    with stderr_silenced() if quiet else contextlib.nullcontext():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
