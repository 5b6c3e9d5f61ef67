"""The core must stay sans-IO: no HTTP, no retries, no caches, no clocks, no files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


# -- no hidden state -------------------------------------------------------------------------

MUTABLE_BUILDERS = {
    "dict",
    "list",
    "set",
    "bytearray",
    "defaultdict",
    "OrderedDict",
    "Counter",
    "deque",
    "ChainMap",
    "WeakKeyDictionary",
    "WeakValueDictionary",
    "WeakSet",
}
"""Calls that build a mutable container."""
MUTATING_METHODS = {
    "append",
    "extend",
    "insert",
    "add",
    "update",
    "setdefault",
    "pop",
    "popitem",
    "clear",
    "remove",
    "discard",
    "sort",
    "reverse",
    "appendleft",
    "extendleft",
    "__setitem__",
    "__delitem__",
}
"""Methods that change a container in place."""
PROCESS_CACHES = {"cache", "lru_cache"}
"""Decorators that keep a function's results for the life of the process."""


def _builds_mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        return name in MUTABLE_BUILDERS
    return False


def _is_final(annotation: ast.expr | None) -> bool:
    if isinstance(annotation, ast.Subscript):
        annotation = annotation.value
    if isinstance(annotation, ast.Attribute):
        return annotation.attr == "Final"
    return isinstance(annotation, ast.Name) and annotation.id == "Final"


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """The module's own statements, those under a module-level ``if``/``try`` included."""
    found: list[ast.stmt] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        stmt = todo.pop()
        found.append(stmt)
        if isinstance(stmt, ast.If | ast.Try):
            todo.extend(stmt.body)
            todo.extend(stmt.orelse)
            if isinstance(stmt, ast.Try):
                todo.extend(stmt.finalbody)
                for handler in stmt.handlers:
                    todo.extend(handler.body)
    return found


def _containers(tree: ast.Module) -> dict[str, ast.stmt]:
    """Module-level names bound to a freshly built mutable container."""
    bound: dict[str, ast.stmt] = {}
    for stmt in _module_level(tree):
        if isinstance(stmt, ast.Assign) and _builds_mutable(stmt.value):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    bound[target.id] = stmt
        elif (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and _builds_mutable(stmt.value)
        ):
            bound[stmt.target.id] = stmt
    return bound


def _local_names(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """Names a function binds itself (so they shadow a module-level one)."""
    args = function.args
    names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
    names.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of `scope`, not descending into the functions it defines."""
    found: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return found


def _mutated_name(node: ast.AST) -> ast.Name | None:
    """The name `node` changes in place (``x.append(…)``, ``x[k] = …``, ``del x[k]``)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MUTATING_METHODS
        and isinstance(node.func.value, ast.Name)
    ):
        return node.func.value
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign | ast.Delete):
        targets = list(node.targets)
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    for target in targets:
        if isinstance(target, ast.Subscript | ast.Attribute) and isinstance(target.value, ast.Name):
            return target.value
    return None


def _state_problems(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename=filename)
    name = Path(filename).name
    problems = [
        f"{name}:{node.lineno} declares global {', '.join(node.names)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Global)
    ]
    containers = _containers(tree)
    for bound, stmt in containers.items():
        if bound.startswith("__") and bound.endswith("__"):
            continue  # __all__, __slots__: read by Python, not state
        if not (isinstance(stmt, ast.AnnAssign) and _is_final(stmt.annotation)):
            problems.append(f"{name}:{stmt.lineno} binds {bound} to a mutable container, not Final")
    functions = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    ]
    scopes: list[tuple[ast.AST, set[str]]] = [(tree, set())]
    scopes += [(f, _local_names(f)) for f in functions]
    for scope, local in scopes:
        for node in _own_nodes(scope):
            target = _mutated_name(node)
            if target is not None and target.id in containers and target.id not in local:
                problems.append(f"{name}:{node.lineno} changes module-level {target.id}")
    for function in functions:
        if not isinstance(function, ast.Lambda):
            for decorator in function.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                called = (
                    target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                )
                if called in PROCESS_CACHES:
                    problems.append(f"{name}:{decorator.lineno} caches {function.name} per process")
        for default in (*function.args.defaults, *function.args.kw_defaults):
            if _builds_mutable(default):
                problems.append(f"{name}:{default.lineno} has a mutable default argument")
    return sorted(problems)


def test_core_keeps_no_module_level_state() -> None:
    """Module-level containers are constants (``Final``, never changed), nothing is
    ``global``: two routers in one process cannot see each other through the core."""
    problems = []
    for path in _core_files():
        problems += _state_problems(path.read_text(), str(path))
    assert problems == []


@pytest.mark.parametrize(
    "source",
    [
        "x = None\ndef f():\n    global x\n    x = 1\n",
        "SEEN = {}\n",
        "SEEN: dict[str, int] = {}\n",
        "SEEN = defaultdict(list)\n",
        "from typing import Final\nSEEN: Final = []\ndef f(v):\n    SEEN.append(v)\n",
        "from typing import Final\nSEEN: Final = {}\ndef f(k):\n    SEEN[k] = 1\n",
        "from typing import Final\nSEEN: Final = {}\nclass C:\n"
        "    def f(self):\n        del SEEN[1]\n",
        "def f(x=[]):\n    return x\n",
        "import functools\n@functools.lru_cache(maxsize=8)\ndef f(x):\n    return x\n",
        "from functools import cache\n@cache\ndef f(x):\n    return x\n",
    ],
)
def test_the_state_rule_catches_hidden_state(source: str) -> None:
    assert _state_problems(source, "m.py") != []


@pytest.mark.parametrize(
    "source",
    [
        "from typing import Final\nTABLE: Final = {'a': 1}\ndef f(k):\n    return TABLE[k]\n",
        "from typing import Final\nSEEN: Final = {}\ndef f(SEEN):\n    SEEN[1] = 2\n",
        "def f():\n    seen = {}\n    seen[1] = 2\n    return seen\n",
        "LIMIT = 3\nNAMES = ('a', 'b')\n",
    ],
)
def test_the_state_rule_allows_constants_and_locals(source: str) -> None:
    assert _state_problems(source, "m.py") == []


ID_ALLOWED = {"rewrite.py"}
"""Modules whose `id()` keys live only for one call (`apply_edits`' set of the
containers it created); a key kept longer can outlive its object and match another."""


def test_core_keys_nothing_by_id() -> None:
    offenders = []
    for path in _core_files():
        if path.name in ID_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Name) and func.id == "id":
                offenders.append(f"{path.name}:{node.lineno} calls id()")
    assert offenders == []
