"""Fault injection: make the fake misbehave the way the real API sometimes does.

Faults are queued per path and consumed in order, one per matching request, so a
test can script "429, then 500, then success" for `/v1/models` and assert that the
client retried exactly that often. A path ending in ``*`` matches by prefix.

Persistent overload (every inference request for one model answers 529 until
cleared) is separate: it is state of the catalogue, not a one-shot event. So are the
standing refusals of `Refusals` (``fake.refusals``): API-side behaviour that holds from
the moment a test turns it on, for every matching request, as the real API's does:

* ``fake.refusals.disable_url_fetch("sk-b")``: the organization behind key ``sk-b`` has
  URL sources off. A Messages request from that key with a URL image or document
  source, a ``web_fetch`` tool or ``mcp_servers`` gets the 400 of anthropic 2.17's
  ``OrganizationURLFetchDisabledError`` (``error.details.error_code`` =
  ``organization_url_fetch_disabled``); other keys are unaffected.
* ``fake.refusals.refuse_parameter("claude-x", "temperature")``: from now on the model
  refuses the parameter outright, "`temperature` is deprecated for this model." (the
  text users of claude-opus-4-7 quote; LiteLLM issue 26444), whatever its value.

Both take ``message=`` to word the refusal another way (tests generate wordings).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._wire import ApiError

__all__ = [
    "PARAMETER_REFUSALS",
    "URL_FETCH_DISABLED",
    "DetailedError",
    "Fault",
    "FaultQueue",
    "Refusals",
]

URL_FETCH_DISABLED = (
    "URL image and document sources, the web_fetch tool and mcp_servers have been "
    "turned off for this organization."
)
"""The fake's default message for ``organization_url_fetch_disabled``, after the class
docstring of ``OrganizationURLFetchDisabledError`` in anthropic 2.17 ("Anthropic has
turned off URL image and document sources, the `web_fetch` tool and `mcp_servers` for
the organization, so the request cannot use them.")."""

PARAMETER_REFUSALS: tuple[str, ...] = (
    "`{name}` is deprecated for this model.",  # the API's text, as LiteLLM #26444 quotes it
    "{name} is deprecated for this model.",  # the same through Bedrock (next-ai-draw-io#861)
    "{name} is deprecated in this model",  # as opencode-weave#41 quotes it
)
"""Real wordings of a model refusing a parameter it used to take (``{name}``)."""


class DetailedError(ApiError):
    """An `ApiError` whose body carries ``error.details`` (``error_code`` and friends)."""

    def __init__(
        self, status: int, message: str, details: Mapping[str, Any], error_type: str | None = None
    ) -> None:
        super().__init__(status, message, error_type)
        self.details = dict(details)


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
    error_code: str | None = None
    """Add ``error.details.error_code`` to the error body (SDK 2.x raises the matching
    class: ``image_dimensions_too_large`` → ``ImageDimensionsTooLargeError``)."""
    details: dict[str, Any] = field(default_factory=dict)
    """More ``error.details`` fields (``max_side_length_pixels``, ``paths``...)."""

    def error_details(self) -> dict[str, Any] | None:
        """The ``error.details`` object this fault adds, or `None`."""
        if self.error_code is None and not self.details:
            return None
        code = {"error_code": self.error_code} if self.error_code is not None else {}
        return {**code, **self.details}


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


class Refusals:
    """Standing API-side refusals (see the module docstring); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url_fetch_off: dict[str, str] = {}
        self._parameters: dict[tuple[str, str], str] = {}

    def disable_url_fetch(self, key: str, *, message: str = URL_FETCH_DISABLED) -> None:
        """Turn URL sources, ``web_fetch`` and ``mcp_servers`` off for `key`'s organization."""
        with self._lock:
            self._url_fetch_off[key] = message

    def refuse_parameter(
        self, model: str, name: str, *, message: str = PARAMETER_REFUSALS[0]
    ) -> None:
        """Make `model` (its canonical id) refuse the top-level parameter `name` from now
        on; `message` may use ``{name}``."""
        with self._lock:
            self._parameters[(model, name)] = message

    def clear(self) -> None:
        """Drop every standing refusal."""
        with self._lock:
            self._url_fetch_off.clear()
            self._parameters.clear()

    def check(self, key: str | None, model: str, body: Mapping[str, Any]) -> None:
        """Raise the refusal a Messages request from `key` to `model` gets, if any."""
        with self._lock:
            url_message = self._url_fetch_off.get(key) if key is not None else None
            refused = [(n, m) for (mid, n), m in self._parameters.items() if mid == model]
        if url_message is not None and _uses_url_fetch(body):
            details = {"error_code": "organization_url_fetch_disabled"}
            raise DetailedError(400, url_message, details, "invalid_request_error")
        for name, message in refused:
            if name in body:
                raise ApiError(400, message.format(name=name), "invalid_request_error")


def _uses_url_fetch(body: Mapping[str, Any]) -> bool:
    """URL sources anywhere in the content, a ``web_fetch`` tool, or ``mcp_servers``."""
    if body.get("mcp_servers"):
        return True
    tools = body.get("tools")
    if isinstance(tools, list) and any(
        isinstance(t, dict) and str(t.get("type", "")).startswith("web_fetch") for t in tools
    ):
        return True
    return _has_url_source(body.get("messages"))


def _has_url_source(node: Any) -> bool:
    if isinstance(node, dict):
        source = node.get("source")
        if isinstance(source, dict) and source.get("type") == "url":
            return True
        return any(_has_url_source(v) for v in node.values() if isinstance(v, list | dict))
    if isinstance(node, list):
        return any(_has_url_source(v) for v in node)
    return False


def _path_matches(key: str, path: str) -> bool:
    if key.endswith("*"):
        return path.startswith(key[:-1])
    return key == path
