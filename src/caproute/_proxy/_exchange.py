"""One request's record, and the two ways a request ends early.

`Exchange` is filled in as the request goes (by the app, the request reader and the
answer relay) and read at the end by the metrics and the access log. `LocalAnswer`
is raised wherever the proxy decides to answer itself (an API-shaped error);
`ClientGone` where the caller turns out to have left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._core.decision import Decision
    from ._callers import Credential


class LocalAnswer(Exception):
    """The proxy answers the request itself with an API-shaped error."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        close: bool = False,
        limit: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.close = close
        self.limit = limit
        """The resource limit that refused the request, if one did (metrics)."""


class ClientGone(Exception):
    """The caller disconnected; there is nobody left to answer."""


@dataclass(slots=True)
class Exchange:
    """What one request did: filled in as it goes, read by metrics and the access log."""

    method: str
    path: str
    started: float
    status: int = 0
    outcome: str = "local"
    decision: Decision | None = None
    headers_sent_at: float | None = None
    body_expected: int | None = None
    """The response's ``Content-Length``, when it has one."""
    body_sent: int = 0
    body_read: bool = False
    """The request body was read to its end."""
    finished: bool = False
    """The last response message went out."""
    disconnected: bool = False
    """The server reported the caller gone (possibly after it had everything)."""
    upstream_broke: bool = False
    cut: str | None = None
    """Why the proxy ended the request itself (``shutdown``: the drain ran out)."""
    appendable_sse: bool = False
    """The answer under way is a plain event stream an ``error`` event can close."""
    last_chunk: bytes = b"\n\n"
    """The last body chunk sent (does it end an event?)."""
    registry: str | None = None
    """Pass-through mode: ``caller`` or ``shared (why)``, the registry routed on."""
    credential: Credential | None = None
    """The caller's credential, lent to its registry's refreshes for this request only."""
    tokens: dict[str, int] | None = None
    """Token usage the answer reported."""
    request_id: str | None = None
    """The upstream's ``request-id`` (what Anthropic support asks for), if it sent one."""
    requested_model: str | None = None
    """The model asked for: the decision's (set by `settle`), else read from the request
    when no decision came back (the upstream could not be reached)."""
    sent_model: str | None = None
    """The model the request went to (as `requested_model`)."""
    client_left: bool = False
    """The caller left before the response was complete (set by `settle`)."""

    def settle(self) -> None:
        """Once the request is over: fill in what the metrics and the access log read."""
        decision = self.decision
        if decision is not None:
            self.requested_model, self.sent_model = decision.requested_model, decision.model
        # With a Content-Length the caller may close as soon as it has every byte,
        # while the proxy still waits for the upstream's end of stream: not a dropout.
        self.client_left = (
            self.disconnected
            and not self.finished
            and (self.body_expected is None or self.body_sent < self.body_expected)
        )
