"""Whether obsflow's task package defines a task, read from its source: nothing is imported to check.

A recipe file names its tasks as ``obsflow_tasks.<module>:<Class>``; importing the module to see whether the class
is there would run whatever the module runs. Its source is parsed instead.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGE = "obsflow_tasks"


def _module_source(module: str) -> Path | None:
    spec = importlib.util.find_spec(PACKAGE)  # a top-level package is located, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*module.split(".")[1:])
    found = [f for f in (base.parent / f"{base.name}.py", base / "__init__.py") if f.is_file()]
    return found[0] if found else None


def defines(entrypoint: str) -> bool:
    """``obsflow_tasks.<module>:<Class>`` names a class its module defines or imports at its top level."""
    module, _, name = entrypoint.partition(":")
    if module.split(".")[0] != PACKAGE:
        return False
    source = _module_source(module)
    if source is None:
        return False
    names = set()
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return name in names
