"""Find the fenced code blocks of a Markdown file, with the markers on the lines before them.

A block is a fence (three or more backticks or tildes), an info string whose first word
is the language, and the lines up to the closing fence. HTML comments on the lines
directly above the fence are markers:

* ``<!-- not-run: reason -->``: the block is not executed; the reason is required;
* ``<!-- file: NAME -->``: the block's text is written to NAME (in the working
  directory the file's blocks run in) before the blocks after it run, so a page can
  show a policy file and then use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-run|file)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block."""

    path: Path
    line: int
    """1-based line of the opening fence."""
    language: str
    text: str
    not_run: str | None
    """The reason given in a ``not-run`` marker ('' when the marker has none)."""
    file: str | None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of `path`, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence = opening["fence"]
        indent = len(opening["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        not_run, file = _markers(lines, index)
        language = (opening["info"].split() or [""])[0].lower()
        found.append(Block(path, index + 1, language, "\n".join(body) + "\n", not_run, file))
        index = end + 1
    return found


def _markers(lines: list[str], fence_index: int) -> tuple[str | None, str | None]:
    not_run: str | None = None
    file: str | None = None
    above = fence_index - 1
    while above >= 0 and (marker := _MARKER.match(lines[above])) is not None:
        if marker["kind"] == "not-run":
            not_run = marker["value"] or ""
        else:
            file = marker["value"] or None
        above -= 1
    return not_run, file
