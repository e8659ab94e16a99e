"""Describe the public API as text: every name in ``__all__`` with its signature.

``python tests/api_snapshot.py > tests/public_api.json`` writes the description that
``tests/test_public_api.py`` pins; do it only when the API changes on purpose, with a
CHANGELOG entry (and a deprecated alias for anything renamed).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

MODULES = [
    "cxrexplain",
    "cxrexplain.auditing",
    "cxrexplain.audit_command",
    "cxrexplain.batch",
    "cxrexplain.classifier",
    "cxrexplain.cli",
    "cxrexplain.cli.audit.to_folder",
    "cxrexplain.cli.demo.report",
    "cxrexplain.cli.train.from_folder",
    "cxrexplain.data",
    "cxrexplain.demo",
    "cxrexplain.distributed",
    "cxrexplain.errors",
    "cxrexplain.evaluate",
    "cxrexplain.explain",
    "cxrexplain.explain.layers",
    "cxrexplain.io",
    "cxrexplain.lungs",
    "cxrexplain.metrics",
    "cxrexplain.models",
    "cxrexplain.drawing",
    "cxrexplain.synthetic",
    "cxrexplain.train_command",
    "cxrexplain.training",
]


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "<no signature>"


def describe(obj: Any) -> list[str]:
    """One line for a function, a line per public member for a class."""
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            bases = ", ".join(base.__name__ for base in obj.__bases__)
            return [f"exception({bases})"]
        lines = [f"class{_signature(obj)}"]
        for name, member in sorted(vars(obj).items()):
            if name.startswith("_"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                lines.append(f"  .{name}: property")
            elif inspect.isfunction(member):
                lines.append(f"  .{name}{_signature(member)}")
        return lines
    if inspect.ismodule(obj):
        return [f"module {obj.__name__}"]
    if callable(obj):
        return [f"def{_signature(obj)}"]
    return [f"value: {type(obj).__name__}"]


def snapshot() -> dict[str, list[str]]:
    """``{"module.name": [lines]}`` for every name in each public module's ``__all__``."""
    result: dict[str, list[str]] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            result[f"{module_name}.{name}"] = describe(getattr(module, name))
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(snapshot(), indent=1, sort_keys=True))
