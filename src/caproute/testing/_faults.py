"""Fault injection: make the fake misbehave the way the real API sometimes does.

Faults are queued per path and consumed in order, one per matching request, so a
test can script "429, then 500, then success" for `/v1/models` and assert that the
client retried exactly that often. A path ending in ``*`` matches by prefix.

Persistent overload (every inference request for one model answers 529 until
cleared) is separate: it is state of the catalogue, not a one-shot event.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fault", "FaultQueue"]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour. Fields combine: ``delay`` runs first, then the rest.

    With none of ``status``, ``malformed`` and ``truncated`` set the request is
    answered normally (after ``delay``).
    """

    status: int | None = None
    """Answer with this HTTP status and an API-shaped error body."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. ``{"retry-after": "2"}``)."""
    body: Any = None
    """Replace the error body: a dict/list is sent as JSON, str/bytes as they are."""
    error_type: str | None = None
    """The ``error.type`` of the error body (default: derived from ``status``)."""
    message: str | None = None
    """The ``error.message`` of the error body."""
    delay: float = 0.0
    """Seconds to wait before answering (a slow server)."""
    malformed: bool = False
    """Answer 200 with a body that is not valid JSON."""
    truncated: bool = False
    """Send the real answer but close the connection halfway (also cuts an SSE stream)."""
    x_should_retry: bool | None = None
    """Add ``x-should-retry: true|false``, the hint the SDK obeys before status rules."""
    stream_error: str | None = None
    """For a streamed answer: send an SSE ``error`` event of this type after the first delta."""
    method: str | None = None
    """Only match requests with this HTTP method (default: any)."""


@dataclass
class _Entry:
    fault: Fault
    remaining: int | None  # None = forever (until cleared)


class FaultQueue:
    """Per-path FIFO queues of `Fault`, safe to use from the test and server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Entry]] = {}

    def add(
        self,
        path: str,
        fault: Fault | None = None,
        *,
        times: int | None = 1,
        **fields: Any,
    ) -> Fault:
        """Queue a fault for requests to `path`.

        Args:
            path: Exact request path (``/v1/models``), or a prefix ending in ``*``
                (``/v1/models*`` also matches ``/v1/models/claude-x``).
            fault: A ready-made `Fault`; otherwise one is built from `fields`.
            times: How many requests it applies to; ``None`` = until `clear`.
            **fields: `Fault` fields (``status=429, headers={"retry-after": "2"}``).

        Returns:
            The queued fault.
        """
        if fault is None:
            fault = Fault(**fields)
        elif fields:
            raise TypeError("pass either a Fault or its fields, not both")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for 'until cleared')")
        with self._lock:
            self._queues.setdefault(path, deque()).append(_Entry(fault, times))
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Consume the next fault for this request, if any (called by the server)."""
        with self._lock:
            for key, queue in self._queues.items():
                if not _path_matches(key, path):
                    continue
                for entry in queue:
                    if entry.fault.method is not None and entry.fault.method.upper() != method:
                        continue
                    if entry.remaining is not None:
                        entry.remaining -= 1
                        if entry.remaining == 0:
                            queue.remove(entry)
                    return entry.fault
        return None

    def pending(self, path: str | None = None) -> int:
        """How many queued faults are left (for `path`, or in total); forever-faults count 1."""
        with self._lock:
            queues = [q for k, q in self._queues.items() if path is None or k == path]
            return sum(len(q) for q in queues)

    def clear(self, path: str | None = None) -> None:
        """Drop queued faults (for `path`, or all)."""
        with self._lock:
            if path is None:
                self._queues.clear()
            else:
                self._queues.pop(path, None)


def _path_matches(key: str, path: str) -> bool:
    if key.endswith("*"):
        return path.startswith(key[:-1])
    return key == path
