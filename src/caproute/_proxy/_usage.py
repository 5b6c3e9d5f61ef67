"""Token counts from the answers the proxy relays, read on the way through.

A Messages answer reports its ``usage``: in a JSON body at its top level, in a stream
in the ``message_start`` event (input tokens, cache reads and writes) and in
``message_delta`` events (cumulative output tokens; newer API versions repeat the
input counts there too). `UsageMeter` is fed each chunk the proxy forwards and never
holds the stream back:

* **SSE**: lines are split as they pass; only the ``data:`` line of a
  ``message_start`` / ``message_delta`` event is parsed (a few hundred bytes, twice
  per stream). Content deltas, the bulk of a stream, are skipped by one ``find``
  per chunk. A partial line is carried to the next chunk, at most `MAX_LINE` bytes.
* **JSON**: the chunks are kept (references, not copies) up to `MAX_JSON` bytes and
  parsed once at the end; a bigger body is not counted.
* **Compressed answers** (``Content-Encoding: gzip`` or ``deflate``, which the API
  may send to any client that accepts it, as the Python SDK's HTTP client does by
  default) are decompressed on the side, in steps of at most `MAX_STEP` bytes so a
  compression bomb costs time but never memory; the caller still gets the bytes as
  sent. Other codings (``br``, ``zstd``, several stacked) are not counted.

Counts are what the upstream reported, per chosen model: ``input``,
``output``, ``cache_read`` and ``cache_creation`` (input tokens).
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Final

MAX_JSON: Final = 1 << 20
"""Largest JSON answer parsed for its usage."""
MAX_LINE: Final = 1 << 16
"""Longest SSE line carried over between chunks (usage events are far smaller)."""
MAX_STEP: Final = 1 << 16
"""Most bytes decompressed at once (see the module docstring)."""
_WBITS: Final = {b"gzip": 31, b"x-gzip": 31, b"deflate": 15}

_KINDS: Final = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_input_tokens", "cache_read"),
    ("cache_creation_input_tokens", "cache_creation"),
)
_WANTED_EVENTS: Final = (b"message_start", b"message_delta")


class UsageMeter:
    """Collects one answer's token usage from the chunks that pass through.

    Args:
        content_type: The answer's ``Content-Type``.
        encoding: Its ``Content-Encoding`` (``identity`` when it has none).
    """

    __slots__ = ("_carry", "_chunks", "_event", "_inflater", "_mode", "_size", "tokens")

    def __init__(self, content_type: bytes, *, encoding: bytes = b"identity") -> None:
        self.tokens: dict[str, int] = {}
        """Token kind → count, as reported (filled by `feed` and `finish`)."""
        self._mode = "off"
        coding = encoding.strip().lower()
        self._inflater: Any = None
        if coding in _WBITS:
            self._inflater = zlib.decompressobj(_WBITS[coding])
        elif coding not in (b"identity", b""):
            return  # a coding not read here: nothing is counted
        if content_type.startswith(b"text/event-stream"):
            self._mode = "sse"
        elif content_type.startswith(b"application/json"):
            self._mode = "json"
        self._chunks: list[bytes] = []
        self._size = 0
        self._carry = b""
        self._event = b""

    def feed(self, chunk: bytes) -> None:
        """One chunk of the body, as forwarded (as encoded)."""
        if self._inflater is None or self._mode == "off":
            self._read(chunk)
            return
        try:
            data = self._inflater.decompress(chunk, MAX_STEP)
            while data:
                self._read(data)
                if self._mode == "off" or not self._inflater.unconsumed_tail:
                    break
                data = self._inflater.decompress(self._inflater.unconsumed_tail, MAX_STEP)
        except zlib.error:
            self._mode = "off"
            self._chunks = []

    def _read(self, chunk: bytes) -> None:
        if self._mode == "sse":
            self._sse(chunk)
        elif self._mode == "json":
            self._size += len(chunk)
            if self._size > MAX_JSON:
                self._mode = "off"
                self._chunks = []
            else:
                self._chunks.append(chunk)

    def finish(self) -> dict[str, int]:
        """The counts, once the body is complete."""
        if self._mode == "json" and self._chunks:
            try:
                document = json.loads(b"".join(self._chunks))
            except ValueError:
                document = None
            if isinstance(document, dict):
                self._take(document.get("usage"))
        self._chunks = []
        return self.tokens

    def _sse(self, chunk: bytes) -> None:
        data = self._carry + chunk if self._carry else chunk
        if not self._event and not any(name in data for name in _WANTED_EVENTS):
            # Nothing to read here (a content delta): keep only the unfinished last
            # line, in case an event name starts there.
            cut = data.rfind(b"\n")
            self._carry = data[cut + 1 :] if cut >= 0 else data
            if len(self._carry) > MAX_LINE:
                self._carry = b""
            return
        lines = data.split(b"\n")
        self._carry = lines.pop()
        if len(self._carry) > MAX_LINE:
            self._carry = b""
        for raw in lines:
            line = raw.rstrip(b"\r")
            if line.startswith(b"event:"):
                name = line[6:].strip()
                self._event = name if name in _WANTED_EVENTS else b""
            elif not line:
                self._event = b""
            elif self._event and line.startswith(b"data:"):
                self._data(line[5:])

    def _data(self, payload: bytes) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        if event.get("type") == "message_start" and isinstance(event.get("message"), dict):
            self._take(event["message"].get("usage"))
        elif event.get("type") == "message_delta":
            self._take(event.get("usage"))

    def _take(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key, kind in _KINDS:
            value = usage.get(key)
            # Later reports are cumulative: they replace earlier ones.
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self.tokens[kind] = value
