"""Numbers and tables in reports (private): NaN as "n/a" or null, one Markdown and HTML table.

Example:
    >>> print(markdown_table(["method", "score"], [["cam", format_number(0.51234, 3)],
    ...                                           ["blob", format_number(float("nan"))]]))
    | method | score |
    |---|---:|
    | cam | 0.512 |
    | blob | n/a |
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["MISSING", "format_number", "html_table_rows", "json_number", "markdown_table",
           "nanmean"]

MISSING = "n/a"
"""How a missing value (None or NaN) is shown."""


def format_number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals, or :data:`MISSING` for None or NaN."""
    if value is None or math.isnan(float(value)):
        return MISSING
    return f"{float(value):.{digits}f}"


def json_number(value: Any) -> float | None:
    """A float for JSON: None for None or NaN (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def nanmean(values: Any) -> float:
    """The mean of the values that are not NaN; NaN when none are."""
    finite = [float(v) for v in values if not math.isnan(float(v))]
    return sum(finite) / len(finite) if finite else float("nan")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
                   numeric: Sequence[bool] | None = None) -> str:
    """A Markdown table; numeric columns (default: all but the first) align right."""
    right = list(numeric) if numeric is not None else [False] + [True] * (len(header) - 1)
    rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> tuple[str, str]:
    """The ``<tr>`` of the header cells and the ``<tr>`` rows of the body, escaped."""
    head = "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in header) + "</tr>"
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                     for row in rows)
    return head, body
