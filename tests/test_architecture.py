"""The layout is the architecture: which part of caproute may import which.

caproute is a sans-IO core with shells around it, and its folders say so. Each top-level
part has a layer; a module may import its own part and any part on a lower layer, never
one on its own layer or above. So the core imports no shell, the runtime imports no
shell, and a shell reaches another shell only from above (``wrap()`` and the proxy drive
the HTTP adapter; the command line drives everything).

::

    layer 6  caproute (the package's face), __main__ entry points
    layer 5  cli
    layer 4  _wrap, _proxy                  entry points that compose the shells below
    layer 3  _http, _batch, testing         shells: the SDK's HTTP path, batches, the fake API
    layer 2  _runtime                       the live router, the flow's drivers, logs, tracing
    layer 1  _registry                      fetchers, snapshots, policy files
    layer 0  _core, _exceptions, _logs, _types, _version   (the core and what it shares)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import caproute

PACKAGE = Path(caproute.__file__).parent

LAYERS: dict[str, int] = {
    "_core": 0,
    "_exceptions": 0,
    "_logs": 0,
    "_types": 0,
    "_version": 0,
    "_registry": 1,
    "_runtime": 2,
    "_http": 3,
    "_batch": 3,
    "testing": 3,
    "_wrap": 4,
    "_proxy": 4,
    "cli": 5,
    "": 6,  # caproute/__init__.py
}


BASE: frozenset[str] = frozenset({"_core", "_exceptions", "_logs", "_types", "_version"})
"""Layer 0 is one part: the core raises caproute's exceptions and uses its shared types."""


def _part(module: list[str]) -> str:
    """The top-level part a module belongs to (``""`` for the package itself)."""
    return module[1] if len(module) > 1 else ""


def _same_part(here: str, there: str) -> bool:
    return here == there or {here, there} <= BASE


def _modules() -> Iterator[tuple[Path, list[str]]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["caproute", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, parts


def _imports(path: Path, module: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Every caproute module `path` imports (at any depth, TYPE_CHECKING included)."""
    package = module if path.name == "__init__.py" else module[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    yield node.lineno, base + node.module.split(".")
                else:
                    for alias in node.names:
                        yield node.lineno, [*base, alias.name]
            elif node.module and node.module.split(".")[0] == "caproute":
                yield node.lineno, node.module.split(".")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "caproute":
                    yield node.lineno, alias.name.split(".")


def test_every_part_has_a_layer() -> None:
    parts = {_part(module) for _, module in _modules()}
    assert parts - {"__main__"} == set(LAYERS), "a new top-level part needs a layer here"


def test_no_part_imports_its_own_layer_or_one_above() -> None:
    offenders = []
    for path, module in _modules():
        if module[-1] == "__main__":
            continue  # `python -m …` entry points run the command line
        here = _part(module)
        for line, target in _imports(path, module):
            there = _part(target)
            if _same_part(here, there) or there == "__main__":
                continue
            if LAYERS[there] >= LAYERS[here]:
                where = path.relative_to(PACKAGE.parent)
                offenders.append(
                    f"{where}:{line} ({here or 'caproute'}) imports {'.'.join(target)}"
                )
    assert offenders == []


def test_the_graph_reader_sees_the_imports_it_checks() -> None:
    """The rule above is only as good as the reader: it must see relative, absolute and
    function-level imports, or the test passes on a broken layout."""
    imported = {
        (".".join(module), ".".join(target[:2]))
        for path, module in _modules()
        for _, target in _imports(path, module)
    }
    assert ("caproute._http.middleware", "caproute._runtime") in imported  # relative
    assert ("caproute._wrap.client", "caproute._wrap") in imported  # function-level `from . import`
    assert ("caproute.cli", "caproute._logs") in imported  # inside a function


MAX_LINES = 600
TABLES: frozenset[str] = frozenset()
"""Modules allowed past `MAX_LINES` because they are declarative tables (none today)."""


def test_no_module_is_over_600_lines() -> None:
    """A module that long mixes concerns: split it by concern (tables excepted)."""
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path, _ in _modules()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
        and str(path.relative_to(PACKAGE)) not in TABLES
    }
    assert long == {}
