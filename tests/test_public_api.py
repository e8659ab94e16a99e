"""The public API is a promise: every name in ``__all__`` with its signature is pinned.

When the API changes on purpose, regenerate ``tests/public_api.json`` with
``python tests/api_snapshot.py > tests/public_api.json`` and say so in CHANGELOG.md.
"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest
from api_snapshot import MODULES, snapshot

PINNED = json.loads((Path(__file__).with_name("public_api.json")).read_text())


def test_no_public_name_removed_or_changed() -> None:
    current = snapshot()
    removed = sorted(set(PINNED) - set(current))
    assert not removed, f"public names removed: {removed}"
    changed = {k: (PINNED[k], current[k]) for k in PINNED if PINNED[k] != current[k]}
    assert not changed, f"public signatures changed: {json.dumps(changed, indent=1)}"


def test_no_unpinned_public_name() -> None:
    added = sorted(set(snapshot()) - set(PINNED))
    assert not added, f"new public names are not pinned in public_api.json: {added}"


@pytest.mark.parametrize("module_name", MODULES)
def test_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.__all__ lists missing {name}"


def test_design_names_are_exported() -> None:
    import cxrexplain as cx

    for name in ["load_image", "load_images", "Classifier", "Prediction", "CxrExplainError",
                 "ImageLoadError", "InvalidInputError", "ModelStructureError", "ModelLoadError",
                 "__version__"]:
        assert name in cx.__all__


def test_a_type_checker_sees_the_facade() -> None:
    """``__all__`` of ``cxrexplain`` is derived from one table at run time; a type checker reads
    the imports at the top of ``cxrexplain/__init__.py`` and under ``if TYPE_CHECKING:``, and
    the explainers through its star import of ``cxrexplain.explain`` (whose own static block
    ``tests/test_explain.py`` checks). Both views hold the same names."""
    import cxrexplain as cx
    import cxrexplain.explain

    tree = ast.parse(Path(cx.__file__).read_text())
    blocks = [tree.body, *(node.body for node in tree.body if isinstance(node, ast.If)
                           and ast.unparse(node.test) == "TYPE_CHECKING")]
    static: set[str] = set()
    for statement in (s for block in blocks for s in block):
        if isinstance(statement, ast.ImportFrom) and statement.module != "__future__":
            for alias in statement.names:
                if alias.name == "*":
                    assert statement.module == "cxrexplain.explain"
                    static |= set(cxrexplain.explain.__all__)
                elif (statement.module or "").startswith("cxrexplain"):
                    static.add(alias.asname or alias.name)
    assert set(cx.__all__) <= static, sorted(set(cx.__all__) - static)
    extra = static - set(cx.__all__)
    assert extra <= {"Targets"}, sorted(extra)  # the star import's one name not re-exported
    assert cx.__all__ == sorted(cx.__all__)
    for name in cx.__all__:
        assert getattr(cx, name) is not None
