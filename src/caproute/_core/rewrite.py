"""Parameter edits as patches on the original body: copy-on-write, never a deep copy.

`apply_edits` returns a new body in which only the containers on the path to an edit
are (shallow) copies; everything else, in particular every message and content block
nobody edited, is the very same object as in the input. That keeps a 2 MB body with a
PDF as cheap to route as a small one, keeps the input unmutated (the caller, and the
SDK's retry loop, may reuse it), and makes "content blocks come out identical" an
identity check rather than a deep comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .decision import MISSING
from .request_needs import JSONPath

__all__ = ["apply_edits"]


def apply_edits(body: Mapping[str, Any], edits: Iterable[tuple[JSONPath, Any]]) -> dict[str, Any]:
    """A copy of `body` with each ``(path, value)`` applied; `MISSING` removes the target.

    Removals of list elements are applied last and from the highest index down, so the
    paths of all edits refer to the original body, whatever their order.

    Args:
        body: The original body; never modified.
        edits: ``(path, new value or MISSING)`` pairs, paths relative to `body`.

    Returns:
        The edited body (a new dict even when `edits` is empty).
    """
    root: dict[str, Any] = dict(body)
    fresh: set[int] = {id(root)}
    """Containers created here, safe to modify in place."""
    list_removals: list[JSONPath] = []
    for path, value in edits:
        if value is MISSING and isinstance(path[-1], int):
            list_removals.append(path)
            continue
        parent = _writable_parent(root, path, fresh)
        if value is MISSING:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
    for path in sorted(list_removals, key=_sort_key, reverse=True):
        parent = _writable_parent(root, path, fresh)
        del parent[path[-1]]
    return root


def _sort_key(path: JSONPath) -> tuple[tuple[int, int, str], ...]:
    """Orders paths element-wise without comparing an int with a str."""
    return tuple((0, k, "") if isinstance(k, int) else (1, 0, k) for k in path)


def _writable_parent(root: dict[str, Any], path: JSONPath, fresh: set[int]) -> Any:
    """The container holding `path`'s last key, copying the containers on the way."""
    node: Any = root
    for key in path[:-1]:
        child = node[key]
        if id(child) not in fresh:
            child = dict(child) if isinstance(child, dict) else list(child)
            fresh.add(id(child))
            node[key] = child
        node = child
    return node
