"""What a subcommand of ``cxrexplain`` declares: its name, help, arguments and run function.

Every public module (or package) of :mod:`cxrexplain.cli` is one subcommand and binds a
:class:`Subcommand` to the name ``COMMAND``; :func:`cxrexplain.cli.build_parser` finds them
with :func:`pkgutil.iter_modules`, so adding a subcommand is adding one file. A subcommand
module is imported for ``cxrexplain --help``, so at module level it imports only the standard
library, :mod:`cxrexplain.errors` and this package's private modules; TensorFlow, Keras,
OpenCV and the library are imported inside ``run``.

Example:
    >>> import argparse
    >>> def add_arguments(parser: argparse.ArgumentParser) -> None:
    ...     parser.add_argument("--name", default="world")
    >>> def run(args: argparse.Namespace) -> int:
    ...     print(f"hello {args.name}")
    ...     return 0
    >>> COMMAND = Subcommand(name="hello", help="say hello", add_arguments=add_arguments,
    ...                      run=run, order=90)
    >>> parser = argparse.ArgumentParser(prog="cxrexplain")
    >>> COMMAND.install(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["hello", "--name", "lungs"])
    >>> args.run(args)
    hello lungs
    0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Run", "Subcommand"]

Run = Callable[[argparse.Namespace], int]
"""A subcommand's work: the parsed arguments in, the exit code out."""


@dataclass(frozen=True)
class Subcommand:
    """One subcommand of ``cxrexplain``.

    Attributes:
        name: What the user types (``cxrexplain <name>``).
        help: One line, shown in ``cxrexplain --help`` and atop ``cxrexplain <name> --help``.
        add_arguments: Adds the subcommand's arguments to its parser (light: no TensorFlow).
        run: Does the work and returns the exit code; a
            :class:`~cxrexplain.CxrExplainError` it raises becomes exit code 1.
        order: The place in ``cxrexplain --help`` (ascending, then by name).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run
    order: int = 1000

    def install(self, commands: argparse._SubParsersAction[Any]) -> None:
        """Add this subcommand's parser to ``commands`` (``run`` becomes its default)."""
        parser: argparse.ArgumentParser = commands.add_parser(
            self.name, help=self.help, description=self.help)
        self.add_arguments(parser)
        parser.set_defaults(run=self.run)
