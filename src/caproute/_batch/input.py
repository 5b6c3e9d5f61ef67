"""Reading a batch input file: JSONL, one ``{"custom_id", "params"}`` object per line.

The file is read as bytes, one line at a time, so its size never matters; each line
keeps its 1-based number and byte offset (a retry re-reads exactly the lines it needs).
`parse_line` checks one line the way the Message Batches API checks one request (as
its reference documents ``POST /v1/messages/batches``): a JSON object with a
``custom_id`` of 1–64 characters from ``[a-zA-Z0-9_-]`` and a ``params`` object,
nothing else. It also refuses ``params`` that is not a Messages body at all (no
``model``, ``messages`` or ``max_tokens``, e.g. ``{}``): the API accepts such an item
at creation and errors it only when the batch is processed, hours later, so it is a
bad line here like any malformed one. Uniqueness across the file is checked by the
caller, which keeps the ids on disk, not in memory.
`check_input` makes sure a job's input is still the file it was planned from.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from .._core.features import shape_problem
from .._exceptions import ConfigError
from .store import BatchStateError

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

__all__ = [
    "BatchInputError",
    "InputLine",
    "LineProblem",
    "check_input",
    "file_sha256",
    "parse_line",
    "read_lines",
]

CUSTOM_ID: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_SHOWN_PROBLEMS: Final = 20
"""How many bad lines the error message lists (all are kept on the exception)."""


@dataclass(frozen=True, slots=True)
class InputLine:
    """One non-blank line of the input file."""

    number: int
    """1-based line number."""
    offset: int
    """Byte offset of the line's first byte."""
    raw: bytes
    """The line without its line ending."""


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why one input line can't be submitted."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class BatchInputError(ConfigError):
    """The input file has bad lines; nothing was submitted.

    `problems` lists every one (line number and message); the message shows the first
    twenty as ``FILE:LINE: message``, like a compiler.
    """

    def __init__(self, path: str, problems: Sequence[LineProblem], *, total: int | None = None):
        self.path = path
        self.problems = tuple(problems)
        self.total = total if total is not None else len(self.problems)
        shown = [f"{path}:{p.line}: {p.message}" for p in self.problems[:_SHOWN_PROBLEMS]]
        more = self.total - len(shown)
        if more > 0:
            shown.append(f"... and {more} more bad line{'s' if more != 1 else ''}")
        count = f"{self.total} bad line{'s' if self.total != 1 else ''}"
        super().__init__(f"{path}: {count}, nothing submitted:\n" + "\n".join(shown))


def read_lines(path: Path, *, digest: Hash | None = None) -> Iterator[InputLine]:
    """Every non-blank line of `path`, with its number and byte offset.

    A UTF-8 byte order mark at the start of the file (Notepad and PowerShell write
    one) is not part of the first line: its offset starts after the mark, so a retry
    that re-reads the line by offset gets the same bytes.

    Args:
        path: The JSONL file.
        digest: Fed every byte of the file (line endings and blank lines included),
            so the caller gets the file's fingerprint from the same single read.
    """
    with path.open("rb") as stream:
        offset = 0
        for number, line in enumerate(stream, 1):
            if digest is not None:
                digest.update(line)
            start = len(codecs.BOM_UTF8) if number == 1 and line.startswith(codecs.BOM_UTF8) else 0
            stripped = line[start:].rstrip(b"\r\n")
            if stripped.strip():
                yield InputLine(number, offset + start, stripped)
            offset += len(line)


def parse_line(raw: bytes) -> tuple[str, dict[str, Any]] | str:
    """``(custom_id, params)`` of one line, or what is wrong with it (a message)."""
    if raw.startswith(codecs.BOM_UTF8):
        return "starts with a byte order mark (U+FEFF): only the file's first line may have one"
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except ValueError as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        column = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        return f"invalid JSON{column}: {msg}"
    if not isinstance(value, dict):
        return f"expected a JSON object, got {_kind(value)}"
    custom_id = value.get("custom_id")
    if custom_id is None:
        return "custom_id: missing"
    if not isinstance(custom_id, str):
        return f"custom_id: expected a string, got {_kind(custom_id)}"
    if not CUSTOM_ID.fullmatch(custom_id):
        return f"custom_id {custom_id[:80]!r}: must be 1-64 characters of a-z, A-Z, 0-9, _ and -"
    params = value.get("params")
    if params is None:
        return f"params: missing (custom_id {custom_id!r})"
    if not isinstance(params, dict):
        return f"params: expected a JSON object, got {_kind(params)} (custom_id {custom_id!r})"
    extra = sorted(set(value) - {"custom_id", "params"})
    if extra:
        keys = ", ".join(repr(k) for k in extra)
        plural = "s" if len(extra) > 1 else ""
        return f"unknown key{plural} {keys}: a line holds only custom_id and params"
    problem = shape_problem(params)
    if problem is not None:
        return f"params.{problem} (custom_id {custom_id!r}): not a Messages request"
    return custom_id, params


def _no_constants(name: str) -> NoReturn:
    # Python's json reads NaN and Infinity; the API's JSON parser does not.
    raise ValueError(f"{name} is not valid JSON")


_DECODER: Final = json.JSONDecoder(parse_constant=_no_constants)
"""One decoder for every line (`json.loads` with an option builds a new one per call)."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def check_input(path: Path, job: Mapping[str, Any]) -> None:
    """Make sure `path` is the very file the job was planned from.

    Raises:
        BatchStateError: It is missing or its content changed.
    """
    recorded = job["input"]
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BatchStateError(f"{path}: the job's input file can't be read: {exc}") from exc
    if size != recorded["size"] or file_sha256(path) != recorded["sha256"]:
        raise BatchStateError(
            f"{path} changed since the job was planned (sha256 {recorded['sha256'][:12]}…); "
            "a job's input must stay as it was"
        )
