"""The import rules of ARCHITECTURE.md, measured: layers, no cycles, a low ``lungs/``.

Every module's imports are read statically with :mod:`ast` (also those inside functions and
under ``if TYPE_CHECKING:``), and turned into two graphs: between modules, and between the
package's *units* (its top-level modules and sub-packages: ``cxrexplain/io.py`` is ``io``,
``cxrexplain/lungs/focus.py`` is ``lungs``). The facade ``cxrexplain/__init__.py`` re-exports
everything and is not a unit; importing a name from it is a failure here.

:data:`LAYERS` is the table of ARCHITECTURE.md: a unit imports only units of its own layer or
below, the unit graph has no cycle, and a unit that is not in the table fails (a new package
must be placed). String imports (``importlib.import_module("cxrexplain....")``) that reach a
higher layer are the documented late resolutions of :data:`LATE`, and no others.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cxrexplain"
ROOT = "cxrexplain"

LAYERS: dict[int, frozenset[str]] = {
    0: frozenset({"errors", "_version", "_files", "_stats", "_tables", "_quiet"}),
    1: frozenset({"_checks", "_keras_utils", "_passes", "_arrays", "_resumable"}),
    2: frozenset({"io", "synthetic", "_model_file"}),
    3: frozenset({"classifier", "data", "lungs"}),
    4: frozenset({"models", "explain"}),
    5: frozenset({"drawing", "metrics"}),
    6: frozenset({"training", "evaluate", "batch"}),
    7: frozenset({"auditing"}),
    8: frozenset({"distributed"}),
    # the command (the cxrexplain/cli/ package)
    9: frozenset({"cli", "__main__"}),
}
LAYER_OF = {unit: layer for layer, units in LAYERS.items() for unit in units}

LOW_LUNGS_MAY_NOT_IMPORT = frozenset({"explain", "drawing", "metrics", "auditing", "training"})

LATE: dict[tuple[str, str], str] = {
    ("lungs", "training"): "cx.lungs.train and the loss names, resolved on first use "
                           "(lungs/__init__.py __getattr__)",
    ("_model_file", "models"): "the custom Keras layers registered before a model file loads",
}
"""(unit, higher unit) -> why: string imports that run back up, on purpose."""


# ------------------------------------------------------------------------------ reading
def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def unit_of(module: str) -> str:
    """``cxrexplain.lungs.focus`` -> ``lungs``; the facade ``cxrexplain`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _resolve(module: str, node: ast.ImportFrom, *, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_in(tree: ast.AST, module: str, *, is_package: bool = False
               ) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import statement in ``tree`` (any depth).

    ``from cxrexplain.a import b`` imports ``cxrexplain.a.b`` when that is a module, else
    ``cxrexplain.a``; ``from cxrexplain import Name`` (a facade name) yields ``cxrexplain``.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node, is_package=is_package)
            if source != ROOT and not source.startswith(ROOT + "."):
                continue
            for alias in node.names:
                child = f"{source}.{alias.name}"
                yield (child if child in MODULES else source), node.lineno


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """The imports of one module of the package (see :func:`imports_in`)."""
    path = MODULES[module]
    yield from imports_in(ast.parse(path.read_text(encoding="utf-8")), module,
                          is_package=path.name == "__init__.py")


def string_imports_of(module: str) -> Iterator[tuple[str, int]]:
    """String constants that name a module of the package (``"cxrexplain.models"``)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and node.value in MODULES and node.value != ROOT):
            yield node.value, node.lineno


def _with_parents(module: str) -> list[str]:
    """Importing ``cxrexplain.a.b`` runs ``cxrexplain/a/__init__.py`` too (not the facade)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts) + 1)]


MODULE_GRAPH: dict[str, set[str]] = {
    module: {m for target, _ in imports_of(module) for m in _with_parents(target)} - {module}
    for module in MODULES
}


def _unit_edges() -> dict[tuple[str, str], list[str]]:
    """``(unit, imported unit) -> ["module:line -> imported", ...]`` (units differ)."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module in MODULES:
        if module == ROOT:
            continue  # the facade re-exports everything
        for target, line in imports_of(module):
            if unit_of(target) != unit_of(module):
                edges.setdefault((unit_of(module), unit_of(target)), []).append(
                    f"{module}:{line} -> {target}")
    return edges


UNIT_EDGES = _unit_edges()


def _graph(edges: dict[tuple[str, str], list[str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
    return graph


def upward(edges: dict[tuple[str, str], list[str]]) -> dict[str, list[str]]:
    """The edges from a lower layer to a higher one, with where they are."""
    return {f"{src} ({LAYER_OF[src]}) -> {dst} ({LAYER_OF[dst]})": where
            for (src, dst), where in edges.items()
            if src in LAYER_OF and dst in LAYER_OF and LAYER_OF[src] < LAYER_OF[dst]}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def closure(start: list[str]) -> set[str]:
    """Every module that importing ``start`` imports, statically (the facade left out)."""
    seen: set[str] = set()
    todo = [m for s in start for m in _with_parents(s)]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(MODULE_GRAPH.get(module, ()))
    return seen


LUNG_MODULES = sorted(m for m in MODULES if unit_of(m) == "lungs")


# ------------------------------------------------------------------------------ the rules
def test_the_reader_sees_imports_in_functions_and_under_type_checking() -> None:
    source = textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from cxrexplain.explain import Explanation
        def late():
            import cxrexplain.metrics.localisation
            from cxrexplain.drawing import pixels
            from ..training import fit
        from cxrexplain import Classifier
        import numpy
    """)
    seen = {t for t, _ in imports_in(ast.parse(source), "cxrexplain.lungs.probe")}
    assert seen == {"cxrexplain.explain", "cxrexplain.metrics.localisation",
                    "cxrexplain.drawing.pixels", "cxrexplain.training.fit", "cxrexplain"}


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(m) for m in MODULES} - {""}
    unplaced = sorted(units - set(LAYER_OF))
    assert not unplaced, (
        f"units without a layer (place them in LAYERS here and in ARCHITECTURE.md): {unplaced}")


def test_nothing_imports_names_from_the_facade() -> None:
    offenders = [f"{module}:{line}" for module in MODULES if module != ROOT
                 for target, line in imports_of(module) if target == ROOT]
    assert not offenders, f"import from the defining module, not the facade: {offenders}"


def test_lungs_import_nothing_above_models() -> None:
    bad = {edge: where for edge, where in UNIT_EDGES.items()
           if edge[0] == "lungs" and edge[1] in LOW_LUNGS_MAY_NOT_IMPORT | {"models", "data"}}
    assert not bad, f"lungs/ must stay below models/: {bad}"


def test_the_unit_graph_has_no_cycle() -> None:
    assert _cycles(_graph(UNIT_EDGES)) == []


def test_no_module_imports_another_that_imports_it_back() -> None:
    """Module to module, import statement by statement (``auditing/report.py`` and
    ``auditing/html.py`` once imported each other, one of them inside a function)."""
    graph = {m: {t for t, _ in imports_of(m)} - {m, ROOT} for m in MODULES if m != ROOT}
    assert _cycles(graph) == []


def test_imports_go_down_the_layers() -> None:
    assert upward(UNIT_EDGES) == {}


def test_string_imports_up_the_layers_are_the_documented_ones() -> None:
    found = {(unit_of(module), unit_of(target))
             for module in MODULES if module != ROOT
             for target, _ in string_imports_of(module)
             if unit_of(target) != unit_of(module)
             and LAYER_OF.get(unit_of(module), 99) < LAYER_OF.get(unit_of(target), -1)}
    assert found == set(LATE)


def test_the_checks_fail_on_an_upward_import_and_a_loop() -> None:
    """The checks above can fail: lungs importing training is upward, and a loop."""
    edges = dict(UNIT_EDGES)
    edges[("lungs", "training")] = ["cxrexplain.lungs.x:1 -> cxrexplain.training"]
    assert list(upward(edges)) == ["lungs (3) -> training (6)"]
    assert any({"lungs", "training"} <= set(c) for c in _cycles(_graph(edges)))


def test_importing_lungs_reaches_nothing_above_models_statically() -> None:
    reached = {unit_of(m) for m in closure(LUNG_MODULES)}
    assert not reached & (LOW_LUNGS_MAY_NOT_IMPORT | {"models", "data", "classifier"}), reached


def test_importing_lungs_loads_nothing_above_models() -> None:
    """In a fresh interpreter, with the facade left out (it loads every public name in a
    library import): ``import cxrexplain.lungs`` loads no higher package, and ``train``
    then resolves to the training side."""
    code = textwrap.dedent(f"""
        import sys, types
        package = types.ModuleType("cxrexplain")
        package.__path__ = [{str(PACKAGE)!r}]
        sys.modules["cxrexplain"] = package  # the package without running its facade
        import cxrexplain.lungs
        print(sorted({{m.split(".")[1] for m in sys.modules if m.startswith("cxrexplain.")}}))
        from cxrexplain.training.segmenter import train_segmenter
        print(cxrexplain.lungs.train is train_segmenter)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=300)
    loaded_line, lazy_line = result.stdout.strip().splitlines()[-2:]
    loaded = set(ast.literal_eval(loaded_line))
    assert "lungs" in loaded
    assert not loaded & (LOW_LUNGS_MAY_NOT_IMPORT | {"models", "data"}), loaded
    assert lazy_line == "True"


@pytest.mark.parametrize("unit", sorted(LOW_LUNGS_MAY_NOT_IMPORT))
def test_the_higher_units_exist(unit: str) -> None:
    """The names checked above are real units (a rename would make the checks vacuous)."""
    assert any(unit_of(m) == unit for m in MODULES)
