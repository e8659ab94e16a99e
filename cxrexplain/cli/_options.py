"""The arguments several subcommands share: the model file, the class and the explainer.

The explainer registry (:func:`cxrexplain.explain.explainers`) imports TensorFlow, and
``cxrexplain <command> --help`` must not, so ``--method`` is a free string: its help names the
default and ``cxrexplain methods`` (which lists every registered explainer with its summary);
:func:`check_methods` checks the names against the registry when the command runs, before the
model is loaded.

Example:
    >>> target("PNEUMONIA"), target("1"), target(None)
    ('PNEUMONIA', 1, None)
    >>> check_methods(["gradcam", "Grad-CAM++"])
    ['gradcam', 'Grad-CAM++']
    >>> check_methods(["magic"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cxrexplain.errors.InvalidInputError: --method: unknown explainer 'magic'; known: cam, ...
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cxrexplain.errors import InvalidInputError

if TYPE_CHECKING:
    from cxrexplain.classifier import Classifier

__all__ = ["METHODS_HINT", "add_method", "check_methods", "load_classifier", "target"]

METHODS_HINT = "'cxrexplain methods' lists the explainers"
"""Where the ``--method`` help sends the user for the names (the registry needs TensorFlow)."""


def add_method(parser: argparse.ArgumentParser, *, default: str = "gradcam") -> None:
    """Add ``--method NAME``: an explainer name, checked when the command runs."""
    parser.add_argument("--method", default=default,
                        help=f"explainer name or alias (default: {default}; {METHODS_HINT})")


def check_methods(names: Sequence[str], option: str = "--method") -> list[str]:
    """``names`` unchanged when each is a registered explainer (or an alias of one).

    Raises:
        InvalidInputError: An unknown name; the message lists the registered ones.
    """
    from cxrexplain.explain import explainers, get_explainer

    for name in names:
        try:
            get_explainer(name)
        except InvalidInputError:
            raise InvalidInputError(
                f"{option}: unknown explainer {name!r}; known: {', '.join(explainers())} "
                f"({METHODS_HINT})") from None
    return list(names)


def target(value: str | None) -> str | int | None:
    """``--target``: a class index when all digits, else a class name; None stays None."""
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def load_classifier(path: Path) -> Classifier:
    """The classifier saved at ``path`` (:meth:`cxrexplain.Classifier.load`)."""
    from cxrexplain.classifier import Classifier

    return Classifier.load(path)
