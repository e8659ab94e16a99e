"""Griffe extension for the docs build: reST bits in Google-style docstrings become Markdown.

cxrexplain's docstrings are Google style but cross-reference with Sphinx roles
(``:class:`~cxrexplain.Classifier```, ``:func:`overlay```, ``:meth:`save```) and a few use
reST simple tables. mkdocstrings renders docstrings as Markdown, where both would show up as
literal text. Once the package is loaded, this extension rewrites every docstring:

* a role becomes an *optional* mkdocs-autorefs cross-reference: a link when the target is
  documented on the site, plain code otherwise (never a warning, so a new role in a docstring
  cannot break ``mkdocs build --strict``). Targets are resolved like Sphinx does, from the
  docstring's own scope outwards (class, module, package), then as an absolute path; aliases
  (``cxrexplain.Classifier``) resolve to where the object is documented
  (``cxrexplain.classifier.Classifier``). ``~`` keeps only the last name as the title;
  functions and methods get ``()``.
* a reST simple table (``====  ====`` borders) becomes a Markdown table;
* an ``Example:`` section header becomes ``Examples:``, the name Griffe's Google parser knows
  (otherwise the doctests would render as nested block quotes).

Only the docs build uses this file (``mkdocs.yml``: plugins -> mkdocstrings -> python ->
options -> extensions); the package and its docstrings are unchanged.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|mod|data|attr|exc|obj|const|type|attribute|function|"
    r"method|module|exception):`(?P<body>[^`]+)`"
)
_EXPLICIT = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$")
_CALLABLE_ROLES = {"func", "meth", "function", "method"}
_EXAMPLE_HEADER = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_BORDER = re.compile(r"^(?P<indent>\s*)=+(?:\s+=+)+\s*$")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles and reST simple tables in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        for obj in _walk(pkg):
            docstring = obj.docstring
            if docstring is None or not docstring.value:
                continue
            text = _tables_to_markdown(docstring.value)
            text = _EXAMPLE_HEADER.sub(r"\g<indent>Examples:", text)
            docstring.value = _ROLE.sub(lambda m, o=obj: _reference(m, o, loader), text)


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _walk(member)


# ------------------------------------------------------------------------------ roles
def _reference(match: re.Match[str], owner: griffe.Object, loader: griffe.GriffeLoader) -> str:
    role, body = match["role"], match["body"].strip()
    explicit = _EXPLICIT.match(body)
    title: str | None = None
    if explicit:
        title, body = explicit["title"], explicit["target"].strip()
    short = body.startswith("~")
    target = body.lstrip("~").lstrip(".").rstrip("()")
    if title is None:
        title = target.rsplit(".", 1)[-1] if short else target
        if role in _CALLABLE_ROLES:
            title += "()"
    identifier = _resolve(target, owner, loader) or target
    return (f'<autoref identifier="{html.escape(identifier, quote=True)}" optional>'
            f"<code>{html.escape(title)}</code></autoref>")


def _resolve(target: str, owner: griffe.Object, loader: griffe.GriffeLoader) -> str | None:
    """The documented path of ``target`` seen from ``owner``'s scope, or None."""
    scopes: list[griffe.Object] = []
    scope: griffe.Object | None = owner if (owner.is_class or owner.is_module) else owner.parent
    while scope is not None:
        scopes.append(scope)
        scope = scope.parent
    candidates = [f"{s.path}.{target}" for s in scopes] + [target]
    for candidate in candidates:
        found = _lookup(candidate, loader)
        if found is not None:
            return found
    return None


def _lookup(path: str, loader: griffe.GriffeLoader) -> str | None:
    try:
        obj = loader.modules_collection[path]
    except (KeyError, ValueError, AttributeError, griffe.AliasResolutionError,
            griffe.CyclicAliasError):
        return None
    if obj.is_alias:
        try:
            return str(obj.final_target.path)
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return str(obj.target_path)
    return str(obj.path)


# ------------------------------------------------------------------------------ tables
def _tables_to_markdown(text: str) -> str:
    """Convert reST simple tables (border, header, border, rows, border) to Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        border = _BORDER.match(lines[i])
        end = _table_end(lines, i) if border else None
        if border is None or end is None:
            out.append(lines[i])
            i += 1
            continue
        spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[i])]
        second = next(j for j in range(i + 1, end + 1) if _BORDER.match(lines[j]))
        header = [_cells(line, spans) for line in lines[i + 1 : second]]
        body = [_cells(line, spans) for line in lines[second + 1 : end] if line.strip()]
        indent = border["indent"]
        head = [" ".join(parts).strip() for parts in zip(*header, strict=True)] if header \
            else [""] * len(spans)
        if out and out[-1].strip():
            out.append("")
        out.append(indent + "| " + " | ".join(head) + " |")
        out.append(indent + "|" + "---|" * len(spans))
        out.extend(indent + "| " + " | ".join(c.replace("|", r"\|") for c in row) + " |"
                   for row in body)
        if end + 1 < len(lines) and lines[end + 1].strip():
            out.append("")
        i = end + 1
    return "\n".join(out)


def _table_end(lines: list[str], start: int) -> int | None:
    """Index of the closing border of a simple table starting at ``start`` (3 borders)."""
    borders = [j for j in range(start, len(lines)) if _BORDER.match(lines[j])]
    if len(borders) < 3 or borders[0] != start:
        return None
    for j in range(start, borders[2]):
        if not lines[j].strip():
            return None
    return borders[2]


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    """Split a table line into cells at the border's column starts (last column to the end)."""
    starts = [begin for begin, _ in spans] + [len(line)]
    return [line[starts[k] : starts[k + 1]].strip() for k in range(len(spans))]
