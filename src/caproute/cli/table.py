"""The model table of ``caproute models`` and ``caproute demo``, drawn with rich.

One row per model: id, name, lifecycle, context window (CTX), max output (OUT), a FLAGS
column with one letter per yes/no capability (like ``ls -l`` permissions), then the
capabilities with sub-keys (server tools, context edits, effort levels, thinking types)
as the names of what is supported. The three states stay visible: a letter or a name
means supported, ``-`` unsupported, ``?`` unknown (``+?``: the rest unknown).

**Fitting a width.** The first layout whose natural width fits is used:

1. every column, lists spelled out;
2. without NAME (the id says the same);
3. fully supported lists shrunk to ``all``;
4. stacked: MODEL, LIFECYCLE, CTX, OUT and FLAGS in columns, and the four lists on an
   indented line under each model, wrapped at the width (the columns need 58).

Narrower than that, rich shrinks and folds the columns: no line is ever wider than the
width asked for.

**What the app learned.** Models the latest list left out (still routed until the API
confirms them retired) and tombstones (known to be unavailable) follow the listed ones
with lifecycle ``unlisted``; a value that comes from a fact learned from the API's
answers carries a ``*``. Both are listed with their reasons under the table. Expired
facts are listed as expired and marked nowhere (a running app has dropped them).

**Terminal or not.** On a terminal: a bold header over a ``─`` rule, unusable models
dimmed, ``*`` in colour (``NO_COLOR`` is honoured). Anywhere else (a pipe, a file):
plain ASCII, no escape codes, no trailing spaces, and unless a width is given the
natural width, so each model stays on one line for ``grep``.

This module imports rich, so only CLI commands import it, inside the command.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .._core.learned_facts import LearnedFact
from .._core.registry import Registry

__all__ = ["print_registry", "render_registry"]

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
    "x code execution (programmatic tool calls)."
)
STATES_LEGEND = "- unsupported, ? unknown, +? the rest unknown, all = every known level/type."
LEARNED_MARK = "*"
LEARNED_LEGEND = f"{LEARNED_MARK} learned from the API's answers (listed below)."
UNLISTED = "unlisted"
UNLISTED_LEGEND = f"{UNLISTED}: left out of the latest list, kept and routed as retired (below)."


@dataclass(frozen=True, slots=True)
class _ListColumn:
    """A capability with sub-keys, shown as the names of its supported leaves."""

    header: str
    label: str
    """Its name on the stacked layout's detail line."""
    prefix: str
    """Dotted path of the parent node, e.g. ``thinking.types``."""
    parent: str
    """The node whose ``supported`` flag switches the whole capability."""
    leaves: tuple[tuple[str, str], ...]
    """(key, display name) of the leaves the API documents, in display order."""


LIST_COLUMNS: tuple[_ListColumn, ...] = (
    _ListColumn(
        "TOOLS",
        "tools",
        "server_tools",
        "server_tools",
        (("code_execution", "code"), ("web_search", "search")),
    ),
    _ListColumn(
        "EDITS",
        "edits",
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
        "effort",
        (("low", "low"), ("medium", "med"), ("high", "high"), ("xhigh", "xhigh"), ("max", "max")),
    ),
    _ListColumn(
        "THINKING",
        "thinking",
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

MAIN_COLUMNS = ("MODEL", "NAME", "LIFECYCLE", "CTX", "OUT", "FLAGS")
_RIGHT_ALIGNED = frozenset({"CTX", "OUT"})
_STACKED_COLUMNS = ("MODEL", "LIFECYCLE", "CTX", "OUT", "FLAGS")

PLAIN_BOX = box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)
"""The plain look: the header over a row of dashes, nothing else, ASCII only."""

_MARK_STYLE = "bold yellow"
_UNUSABLE_STYLE = "dim"


# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    """One model's cells by column header (list columns both ways), and whether the
    model can't be used (retired or unlisted: dimmed on a terminal)."""

    cells: Mapping[str, Text]
    collapsed: Mapping[str, Text]
    unusable: bool

    def get(self, header: str, *, collapse: bool) -> Text:
        return (self.collapsed if collapse else self.cells)[header]


def _rows(registry: Registry) -> list[_Row]:
    """Listed models first (the API's order), then the unlisted ones and the tombstones."""
    return [_row(registry, model_id) for model_id in _all_ids(registry)]


def _all_ids(registry: Registry) -> tuple[str, ...]:
    return (*registry.ids, *registry.unlisted, *registry.tombstones)


def _row(registry: Registry, model_id: str) -> _Row:
    info = registry.get(model_id)
    assert info is not None  # ids and tombstones always resolve
    marked = {_column_of(key) for key in registry.learned_keys(model_id)}
    unlisted = model_id not in registry.ids
    lifecycle = UNLISTED if unlisted else (registry.lifecycle(model_id) or "?")
    flags = registry.capability_flags(model_id)
    plain = {
        "MODEL": model_id,
        "NAME": _short_name(info.display_name),
        "LIFECYCLE": lifecycle,
        "CTX": _tokens(info.max_input_tokens),
        "OUT": _tokens(info.max_tokens),
        "FLAGS": "".join(_flag_mark(flags.get(path), letter) for path, letter in FLAGS),
    }
    cells = {k: _cell(v, k in marked) for k, v in plain.items()}
    collapsed = dict(cells)
    for column in LIST_COLUMNS:
        learned = column.header in marked
        cells[column.header] = _cell(_list_cell(flags, column, collapse=False), learned)
        collapsed[column.header] = _cell(_list_cell(flags, column, collapse=True), learned)
    return _Row(cells, collapsed, unlisted or lifecycle == "retired")


def _column_of(key: str) -> str:
    """The column a learned key's value shows in (MODEL for keys no column shows)."""
    if key == "lifecycle":
        return "LIFECYCLE"
    if key == "max_tokens":
        return "OUT"
    for path, _ in FLAGS:
        if key == path or key.startswith(f"{path}."):
            return "FLAGS"
    for column in LIST_COLUMNS:
        if key == column.parent or key.startswith(f"{column.parent}."):
            return column.header
    return "MODEL"


def _cell(value: str, learned: bool) -> Text:
    text = Text(value)
    if learned:
        text.append(LEARNED_MARK, style=_MARK_STYLE)
    return text


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


# -- layouts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Look:
    """Terminal or plain: the box and the styles."""

    terminal: bool

    def table(self, *, show_header: bool = True) -> Table:
        return Table(
            box=box.SIMPLE_HEAD if self.terminal else PLAIN_BOX,
            show_edge=False,
            show_header=show_header,
            pad_edge=False,
            padding=(0, 1, 0, 0),  # + the column divider: two spaces between columns
            header_style="bold" if self.terminal else "",
            highlight=False,
        )

    def row_style(self, row: _Row) -> str:
        return _UNUSABLE_STYLE if self.terminal and row.unusable else ""


def _wide_table(rows: Sequence[_Row], look: _Look, *, with_name: bool, collapse: bool) -> Table:
    headers = [h for h in MAIN_COLUMNS if with_name or h != "NAME"]
    headers += [column.header for column in LIST_COLUMNS]
    table = look.table()
    for header in headers:
        table.add_column(header, justify="right" if header in _RIGHT_ALIGNED else "left")
    for row in rows:
        cells = [row.get(h, collapse=collapse) for h in headers]
        table.add_row(*cells, style=look.row_style(row))
    return table


def _stacked(rows: Sequence[_Row], look: _Look) -> Group:
    """Five columns, the four lists on an indented, wrapped line under each model.

    Rich tables have no cells spanning columns, so each model is a one-row table with
    the same fixed column widths as the header table, followed by its detail line.
    """
    widths = {
        h: max(len(h), *(row.cells[h].cell_len for row in rows)) if rows else len(h)
        for h in _STACKED_COLUMNS
    }

    def table(show_header: bool) -> Table:
        table = look.table(show_header=show_header)
        for h in _STACKED_COLUMNS:
            justify: JustifyMethod = "right" if h in _RIGHT_ALIGNED else "left"
            table.add_column(h, justify=justify, width=widths[h], overflow="fold")
        return table

    parts: list[RenderableType] = [table(show_header=True)]
    for row in rows:
        line = table(show_header=False)
        line.add_row(*(row.cells[h] for h in _STACKED_COLUMNS), style=look.row_style(row))
        details = Text("  ").join(
            Text.assemble(f"{column.label}:", row.cells[column.header]) for column in LIST_COLUMNS
        )
        details.stylize(look.row_style(row))
        parts += [line, Padding(details, (0, 0, 0, 2))]
    return Group(*parts)


_WIDE_LAYOUTS = ((True, False), (False, False), (False, True))
"""(with NAME, lists collapsed to ``all``), widest first."""


def _table_for(
    rows: Sequence[_Row], look: _Look, console: Console, width: int | None
) -> RenderableType:
    for with_name, collapse in _WIDE_LAYOUTS:
        table = _wide_table(rows, look, with_name=with_name, collapse=collapse)
        if width is None or _natural_width(console, table) <= width:
            return table
    return _stacked(rows, look)


def _natural_width(console: Console, renderable: RenderableType) -> int:
    return Measurement.get(console, console.options.update_width(1_000_000), renderable).maximum


# -- what the app learned -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FactLine:
    model: str
    key: str
    value: str
    learned: str
    expires: str
    reason: str
    expired: bool


def _fact_lines(registry: Registry, facts: Sequence[LearnedFact], now: float) -> list[_FactLine]:
    lines = []
    for fact in facts:
        expired = fact.expires_at <= now
        if expired:
            expires = f"expired {_span(now - fact.expires_at)} ago"
        elif fact.key not in registry.learned_keys(fact.model):
            expires = "overridden by live data"
        else:
            expires = f"expires in {_span(fact.expires_at - now)}"
        learned = f"{_span(now - fact.learned_at)} ago"
        value = _fact_value(fact.value)
        lines.append(
            _FactLine(fact.model, fact.key, value, learned, expires, fact.reason or "-", expired)
        )
    return lines


_MIN_REASON_WIDTH = 30
"""Narrower than this, the reason column would wrap a word or two per line: the facts
are then listed one per paragraph instead of as a table."""


def _facts(lines: Sequence[_FactLine], look: _Look, console: Console, width: int) -> RenderableType:
    """The learned facts as a table, or as paragraphs when the table won't fit."""

    def table(with_reason: bool) -> Table:
        table = look.table()
        for header in ("MODEL", "KEY", "VALUE", "LEARNED", "STATUS"):
            table.add_column(header, no_wrap=True)
        if with_reason:
            table.add_column("REASON", overflow="fold")
        for line in lines:
            cells = [line.model, line.key, line.value, line.learned, line.expires]
            style = _UNUSABLE_STYLE if look.terminal and line.expired else ""
            table.add_row(*cells, *([line.reason] if with_reason else []), style=style)
        return table

    if _natural_width(console, table(with_reason=False)) + 2 + _MIN_REASON_WIDTH <= width:
        return table(with_reason=True)
    paragraphs: list[RenderableType] = []
    for line in lines:
        style = _UNUSABLE_STYLE if look.terminal and line.expired else ""
        head = f"{line.model}  {line.key} = {line.value}"
        body = f"learned {line.learned}, {line.expires}: {line.reason}"
        paragraphs.append(Text(head, style=style))
        paragraphs.append(Padding(Text(body, style=style), (0, 0, 0, 2)))
    return Group(*paragraphs)


def _tombstones(tombstones: Mapping[str, str]) -> Group:
    """Why each unlisted model is kept, one paragraph per reason (a refresh drops many
    models for the same reason), naming its models."""
    by_reason: dict[str, list[str]] = {}
    for model_id, reason in tombstones.items():
        by_reason.setdefault(reason, []).append(model_id)
    parts: list[RenderableType] = []
    for reason, model_ids in by_reason.items():
        parts += [Text(f"{reason}:"), Padding(Text(", ".join(model_ids)), (0, 0, 0, 2))]
    return Group(*parts)


def _fact_value(value: bool | int | str) -> str:
    if isinstance(value, bool):
        return "supported" if value else "unsupported"
    return str(value)


def _span(seconds: float) -> str:
    """A duration the way people say it: 45s, 12m, 5h, 3d."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


# -- output ---------------------------------------------------------------------------------


def render_registry(
    registry: Registry,
    *,
    width: int | None = None,
    heading: str | None = None,
    terminal: bool = False,
    now: float | None = None,
) -> str:
    """The heading, the table, its legend and what the app learned, as text.

    Args:
        registry: What to show (tombstones and learned facts included).
        width: Fit every line to this many columns; `None`: the natural width.
        heading: The first line(s); default says how many models and from where.
        terminal: Style for a terminal (colours, ``─``) instead of plain ASCII.
        now: Unix time for ages and expiry (default: the clock).
    """
    now = time.time() if now is None else now
    live_facts = [fact for fact in registry.learned if fact.expires_at > now]
    if len(live_facts) != len(registry.learned):
        shown = registry.with_learned(live_facts)  # what a running app routes with now
    else:
        shown = registry
    look = _Look(terminal)
    rows = _rows(shown)
    # Measuring needs a console; its width is set once the layout is known.
    console = _console(io.StringIO(), width or 1_000_000, terminal)
    table = _table_for(rows, look, console, width)
    if width is None:
        width = max(80, _natural_width(console, table))
    console = _console(io.StringIO(), width, terminal)
    if heading is None:
        heading = describe(registry, now)
    parts: list[RenderableType] = [Text(heading), Text(""), table, Text("")]
    legend = [FLAGS_LEGEND, STATES_LEGEND]
    marked = any(shown.learned_keys(model_id) for model_id in _all_ids(shown))
    if marked:
        legend.append(LEARNED_LEGEND)
    if shown.tombstones or shown.unlisted:
        legend.append(UNLISTED_LEGEND)
    parts += [Text(line) for line in legend]
    if registry.learned:
        title = f"Learned from the API's answers ({len(registry.learned)}):"
        lines = _fact_lines(shown, registry.learned, now)
        parts += [Text(""), Text(title), _facts(lines, look, console, width)]
    if shown.unlisted:
        title = (
            f"Not in the latest list ({len(shown.unlisted)}), kept and routed until the "
            "API confirms them retired:"
        )
        parts += [Text(""), Text(title), _tombstones(shown.unlisted)]
    if shown.tombstones:
        title = f"No longer listed ({len(shown.tombstones)}), kept and routed as retired:"
        parts += [Text(""), Text(title), _tombstones(shown.tombstones)]
    console.print(Group(*parts))
    file = console.file
    assert isinstance(file, io.StringIO)
    return "".join(line.rstrip() + "\n" for line in file.getvalue().splitlines())


def describe(registry: Registry, now: float | None = None) -> str:
    """``22 models from embedded (lineup of 2026-11-26)``, with the tombstones counted."""
    count = f"{len(registry)} model{'' if len(registry) == 1 else 's'}"
    if unlisted := len(registry.tombstones) + len(registry.unlisted):
        count += f" (+{unlisted} no longer listed)"
    return f"{count} from {registry.source.describe(now)}"


def print_registry(
    registry: Registry,
    *,
    width: int | None = None,
    heading: str | None = None,
    file: TextIO | None = None,
) -> None:
    """Print `render_registry` to `file` (default stdout), styled when it is a terminal.

    Without `width`, a terminal's own width is used; anything else gets the natural
    width (one line per model).
    """
    out = file if file is not None else sys.stdout
    probe = Console(file=out)
    terminal = probe.is_terminal
    if width is None and terminal:
        width = probe.width
    out.write(render_registry(registry, width=width, heading=heading, terminal=terminal))
    out.flush()


def _console(file: io.StringIO, width: int, terminal: bool) -> Console:
    return Console(
        file=file,
        width=width,
        force_terminal=terminal,
        no_color=None if terminal else True,  # None: rich reads NO_COLOR
        color_system="auto" if terminal else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
        legacy_windows=False,
    )
