"""The core must stay sans-IO: no HTTP, no retries, no caches, no clocks, no files."""

from __future__ import annotations

import ast
from pathlib import Path

import caproute._core as core

CORE_DIR = Path(core.__file__).parent

FORBIDDEN_MODULES = {
    "httpx",
    "httpx2",
    "httpcore",
    "tenacity",
    "cachetools",
    "anyio",
    "asyncio",
    "socket",
    "threading",
    "time",
    "os",
    "pathlib",
    "io",
    "urllib",
    "anthropic",
    "uvicorn",
    "subprocess",
    "random",
}
FORBIDDEN_CALLS = {"open", "input", "print"}
FORBIDDEN_ATTRS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today")}


def _core_files() -> list[Path]:
    files = sorted(CORE_DIR.rglob("*.py"))
    assert files, "no core modules found"
    return files


def test_core_imports_no_io_modules() -> None:
    offenders = []
    for path in _core_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN_MODULES:
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


def test_core_calls_no_clock_or_file_functions() -> None:
    offenders = []
    for path in _core_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                offenders.append(f"{path.name}:{node.lineno} calls {func.id}()")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in FORBIDDEN_ATTRS
            ):
                offenders.append(f"{path.name}:{node.lineno} calls {func.value.id}.{func.attr}()")
    assert offenders == []


def test_core_imports_nothing_from_the_shells() -> None:
    allowed_parents = {"_exceptions", "_types", "_version"}
    offenders = []
    for path in _core_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                top = (node.module or "").split(".")[0]
                if top not in allowed_parents:
                    offenders.append(f"{path.name}:{node.lineno} imports ..{node.module}")
    assert offenders == []
