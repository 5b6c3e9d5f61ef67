"""The model table of ``caproute models`` and ``caproute demo``: a registry as text.

One row per model: id, name, lifecycle, context window (CTX), max output (OUT), then one column
per capability. The six yes/no capabilities share a compact FLAGS column, one letter
per capability (like ``ls -l`` permissions), so the table fits 120 columns; the
capabilities with sub-keys (server tools, context edits, effort levels, thinking
types) list what is supported, spelled out. The three states stay visible: a letter
or name means supported, ``-`` unsupported, ``?`` unknown (``+?``: the rest unknown).

When the table is wider than the terminal it degrades in a fixed order: first the
NAME column goes (the id says the same), then fully supported lists shrink to
``all``. Nothing here does IO; the CLI prints the returned text.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ._core.registry import ModelInfo, Registry

__all__ = ["render_table"]

# (dotted path, letter) for the FLAGS column, in display order.
FLAGS: tuple[tuple[str, str], ...] = (
    ("batch", "b"),
    ("citations", "c"),
    ("image_input", "i"),
    ("pdf_input", "p"),
    ("structured_outputs", "s"),
    ("code_execution", "x"),
)
FLAGS_LEGEND = (
    "CTX context window, OUT max output (tokens). "
    "FLAGS: b batch, c citations, i image input, p PDF input, s structured outputs, "
    "x code execution (programmatic tool calls)"
)
STATES_LEGEND = "- unsupported, ? unknown, +? the rest unknown, all = every known level/type"


@dataclass(frozen=True, slots=True)
class _ListColumn:
    """A capability with sub-keys, shown as the names of its supported leaves."""

    header: str
    prefix: str
    """Dotted path of the parent node, e.g. ``thinking.types``."""
    parent: str
    """The node whose ``supported`` flag switches the whole capability."""
    leaves: tuple[tuple[str, str], ...]
    """(key, display name) of the leaves the API documents, in display order."""


LIST_COLUMNS: tuple[_ListColumn, ...] = (
    _ListColumn(
        "TOOLS",
        "server_tools",
        "server_tools",
        (("code_execution", "code"), ("web_search", "search")),
    ),
    _ListColumn(
        "EDITS",
        "context_management",
        "context_management",
        (
            ("clear_thinking_20251015", "think"),
            ("clear_tool_uses_20250919", "tools"),
            ("compact_20260112", "compact"),
        ),
    ),
    _ListColumn(
        "EFFORT",
        "effort",
        "effort",
        (("low", "low"), ("medium", "med"), ("high", "high"), ("xhigh", "xhigh"), ("max", "max")),
    ),
    _ListColumn(
        "THINKING",
        "thinking.types",
        "thinking",
        (
            ("adaptive", "adaptive"),
            ("enabled", "enabled"),
            ("disabled", "disabled"),
            ("between_tools", "between_tools"),
        ),
    ),
)

_RIGHT_ALIGNED = frozenset({"CTX", "OUT"})
_GAP = "  "


def render_table(registry: Registry, *, width: int = 120) -> str:
    """The registry as an aligned text table (no trailing newline), fitted to `width`."""
    layouts = ((True, False), (False, False), (True, True), (False, True))
    lines: list[str] = []
    for with_name, collapse in layouts:
        lines = _render(registry, with_name=with_name, collapse=collapse)
        if max(map(len, lines)) <= width:
            break
    return "\n".join(lines)


def legend(*, width: int = 120) -> str:
    """The lines explaining the columns and the state marks, wrapped to `width`."""
    return "\n".join(textwrap.fill(text, width) for text in (FLAGS_LEGEND, STATES_LEGEND))


def _render(registry: Registry, *, with_name: bool, collapse: bool) -> list[str]:
    headers = ["MODEL", "NAME", "LIFECYCLE", "CTX", "OUT", "FLAGS"]
    headers += [column.header for column in LIST_COLUMNS]
    rows = [_row(registry, info, collapse=collapse) for info in registry]
    if not with_name:
        headers.pop(1)
        rows = [row[:1] + row[2:] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    align: list[Callable[[str, int], str]] = [
        str.rjust if header in _RIGHT_ALIGNED else str.ljust for header in headers
    ]

    def line(cells: Sequence[str]) -> str:
        padded = (fit(cell, w) for fit, cell, w in zip(align, cells, widths, strict=True))
        return _GAP.join(padded).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *map(line, rows)]


def _row(registry: Registry, info: ModelInfo, *, collapse: bool) -> list[str]:
    flags = registry.capability_flags(info.id)
    return [
        info.id,
        _short_name(info.display_name),
        info.lifecycle or "?",
        _tokens(info.max_input_tokens),
        _tokens(info.max_tokens),
        "".join(_flag_mark(flags.get(path), letter) for path, letter in FLAGS),
        *(_list_cell(flags, column, collapse=collapse) for column in LIST_COLUMNS),
    ]


def _short_name(display_name: str | None) -> str:
    if not display_name:
        return "?"
    return display_name.removeprefix("Claude ")


def _tokens(count: int | None) -> str:
    """Token counts the way the docs write them: 1M, 200K, 128K."""
    if count is None:
        return "?"
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1000 and count % 1000 == 0:
        return f"{count // 1000}K"
    return f"{count:,}"


def _flag_mark(flag: bool | None, letter: str) -> str:
    if flag is None:
        return "?"
    return letter if flag else "-"


def _list_cell(flags: Mapping[str, bool | None], column: _ListColumn, *, collapse: bool) -> str:
    """Supported leaf names of one capability, or ``-`` / ``?`` / ``all``."""
    if flags.get(column.parent) is False:
        return "-"
    known = dict(column.leaves)
    prefix = f"{column.prefix}."
    children = [path.removeprefix(prefix) for path in flags if path.startswith(prefix)]
    # Leaves the API may add later (effort.ultra) are listed too, after the known ones.
    extra = [key for key in children if "." not in key and key not in known]
    states = {key: flags.get(f"{prefix}{key}") for key in [*known, *extra]}
    supported = [known.get(key, key) for key, state in states.items() if state is True]
    unknown = any(states[key] is None for key in known)
    if not supported:
        return "?" if unknown else "-"
    if collapse and all(state is True for state in states.values()):
        return "all"
    return ",".join(supported) + ("+?" if unknown else "")
