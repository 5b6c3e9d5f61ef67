"""The public surface: one table (`caproute._EXPORTS`) drives `__all__`, the lazy
loader and, checked here, the imports type checkers read; public classes say `caproute`."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pydantic

import caproute

INIT = Path(caproute.__file__)


def type_checking_imports() -> dict[str, str]:
    """name -> module of every import under ``if TYPE_CHECKING:`` in caproute/__init__.py,
    each written ``Name as Name`` (what marks a re-export for a strict type checker)."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    guarded = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(guarded) == 1
    found: dict[str, str] = {}
    for statement in guarded[0].body:
        assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
        for alias in statement.names:
            assert alias.asname == alias.name, f"{alias.name}: write `{alias.name} as {alias.name}`"
            assert alias.name not in found, f"{alias.name} imported twice"
            found[alias.name] = "." * statement.level + (statement.module or "")
    return found


def test_all_is_the_table_sorted_and_resolvable() -> None:
    assert caproute.__all__ == sorted([*caproute._EXPORTS, "__version__"])
    for name in caproute.__all__:
        assert getattr(caproute, name) is not None, name
    assert dir(caproute) == caproute.__all__


def test_the_type_checking_imports_are_the_table() -> None:
    assert type_checking_imports() == caproute._EXPORTS


def test_every_name_in_the_table_is_where_the_table_says() -> None:
    for name, module_name in caproute._EXPORTS.items():
        module = importlib.import_module(module_name, "caproute")
        assert getattr(module, name) is getattr(caproute, name), name


def test_unknown_attribute_raises() -> None:
    try:
        caproute.DoesNotExist  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "DoesNotExist" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_no_dead_export() -> None:
    # Refusals are API-shaped 400s; no exception class of that name is raised or exported.
    assert "RoutingRefused" not in caproute.__all__
    assert not hasattr(caproute, "RoutingRefused")


# Every defining module imported first (the worst order: the classes exist before
# caproute's loader has seen them), then the names read through caproute, last first.
MODULE_OF_PUBLIC_CLASSES = """
import importlib, json, sys, typing
import caproute
for module_name in sorted(set(caproute._EXPORTS.values()), reverse=True):
    importlib.import_module(module_name, "caproute")
modules, unresolved = {}, []
for name in sorted(caproute._EXPORTS, reverse=True):
    value = getattr(caproute, name)
    if isinstance(value, type):
        modules[name] = value.__module__
        try:
            typing.get_type_hints(value)
        except Exception as exc:
            unresolved.append(f"{name}: {exc!r}")
print(json.dumps({"modules": modules, "unresolved": unresolved}))
"""


def test_public_classes_report_caproute_as_their_module_whatever_the_import_order() -> None:
    out = subprocess.run(
        [sys.executable, "-c", MODULE_OF_PUBLIC_CLASSES], capture_output=True, text=True, check=True
    )
    seen = json.loads(out.stdout)
    modules = seen["modules"]
    assert len(modules) > 30  # the classes are there (the table holds ~60 names)
    assert modules == dict.fromkeys(modules, "caproute")
    # Their type hints still resolve (they were written in the private modules).
    assert seen["unresolved"] == []
    # And in this process, whichever test imported what before.
    for name in caproute.__all__:
        value = getattr(caproute, name)
        if isinstance(value, type):
            assert value.__module__ == "caproute", name


def test_tools_that_read_type_hints_still_can() -> None:
    # pydantic reads a dataclass's field types in the namespace of its `__module__`.
    adapter = pydantic.TypeAdapter(caproute.Decision)
    decision = caproute.Decision("unchanged", "claude-a", "claude-a")
    assert adapter.validate_python(decision) is decision
    assert all(not isinstance(f.type, str) for f in dataclasses.fields(caproute.Decision))


def test_import_is_light() -> None:
    code = (
        "import sys, caproute; "
        "heavy = [m for m in ('pydantic', 'httpx', 'httpx2', 'anthropic', 'yaml', 'tenacity', "
        "'rich') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
