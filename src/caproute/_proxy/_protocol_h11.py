"""uvicorn's h11 protocol with caproute's limits (see `caproute._proxy._protocol_limits`).

Imported only when the proxy is served on h11 (no httptools): it imports uvicorn and h11.
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._limits import raw_error
from ._protocol_limits import LimitsMixin, Refuse


class LimitedH11(LimitsMixin, H11Protocol):  # type: ignore[misc]
    """uvicorn's h11 protocol with caproute's limits.

    h11 itself bounds the head (``h11_max_incomplete_event_size``, set to the same
    limit, which uvicorn answers with a plain 400); the count here catches it first
    with a 431. The header count is checked by the application for this parser.
    """

    def send_400_response(self, msg: str) -> None:
        """A malformed request (API-shaped), or h11's own head limit (431)."""
        if self._refused:
            return
        if self._head_size > self.limits.max_header_bytes:  # h11: "buffer too long"
            answer = self._too_large("request headers are larger than", "bytes", "header_bytes")
        else:
            answer = raw_error(400, "Bad Request", "invalid_request_error", msg)
        self._refuse(answer)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        reading_head = self.conn.their_state is h11.IDLE
        if reading_head:
            self._head_started(len(data))
        super().data_received(data)
        if self._refused:
            return
        if self.conn.their_state is not h11.IDLE:
            self._head_done()
        elif reading_head:
            try:
                self._check_head_size()
            except Refuse as refusal:
                self._refuse(refusal.answer)
