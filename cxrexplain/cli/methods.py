"""``cxrexplain methods``: the registered explainers, a line each (name and summary).

The names are what ``--method`` of ``explain`` and ``audit`` and ``--methods`` of
``evaluate`` take; each summary is the first line of the explainer class's docstring
(:func:`cxrexplain.explain.explainers`, in its order). The registry imports TensorFlow, so
the list is read when the subcommand runs, not when a parser is built.

Example:
    >>> from cxrexplain.cli import main
    >>> main(["methods"])  # doctest: +ELLIPSIS
    cam        Class activation map: ...
    gradcam    Gradient-weighted class activation map: ...
    ...
    0
"""

from __future__ import annotations

import argparse
import json

from cxrexplain.cli._subcommand import Subcommand

__all__ = ["COMMAND"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="one JSON object {name: summary} instead of a table")


def _run(args: argparse.Namespace) -> int:
    from cxrexplain.explain import explainers

    summaries = {name: _summary(cls.__doc__) for name, cls in explainers().items()}
    if args.json:
        print(json.dumps(summaries, indent=1))
        return 0
    width = max(len(name) for name in summaries)
    for name, summary in summaries.items():
        print(f"{name:<{width}}  {summary}".rstrip())
    return 0


def _summary(doc: str | None) -> str:
    """The first line of a docstring ("" without one).

    Example:
        >>> _summary("  Grad-CAM: gradients.\\n\\n  More.")
        'Grad-CAM: gradients.'
    """
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


COMMAND = Subcommand(
    name="methods",
    help="list the explainers (the names --method and --methods take) with a summary each",
    add_arguments=_add_arguments, run=_run, order=80)
