"""uvicorn's httptools protocol with caproute's limits (see `caproute._proxy._protocol_limits`).

In a module of its own so that only a server that uses httptools imports it.
"""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ._limits import raw_error
from ._protocol_limits import LimitsMixin, Refuse


class LimitedHttpTools(LimitsMixin, HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol with caproute's limits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_fields = 0
        self._head_field_bytes = 0

    def data_received(self, data: bytes) -> None:
        """uvicorn's (`tests/proxy/test_proxy_uvicorn_internals.py` pins the version it
        repeats), with the limits: a refusal raised inside a parser callback is answered
        as such, not logged as an invalid request."""
        if self._refused:
            return
        if self.timeout_keep_alive_task is not None:  # bytes came: not idle any more
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        try:
            if self._in_head:
                self._head_started(len(data))
            self.parser.feed_data(data)
            if self._in_head:
                self._check_head_size()
        except Refuse as refusal:
            self._refuse(refusal.answer)
        except httptools.HttpParserUpgrade:  # no WebSocket endpoints (ws="none")
            self.logger.warning("Unsupported upgrade request.")
        except httptools.HttpParserError:
            if self._pending is None:
                self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")

    def send_400_response(self, msg: str) -> None:
        """A malformed request, or a limit hit inside a parser callback: API-shaped."""
        if self._refused:
            return
        answer = self._pending or raw_error(400, "Bad Request", "invalid_request_error", msg)
        self._refuse(answer)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_fields = 0
        self._head_field_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        if self._head_fields > self.limits.max_header_count:
            raise Refuse(self._too_large("more request headers than", "headers", "header_count"))
        self._grow(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _grow(self, size: int) -> None:
        # The chunk count in `data_received` misses a head that arrives whole in
        # one big read; the parsed sizes catch it.
        self._head_field_bytes += size
        if self._head_field_bytes > self.limits.max_header_bytes:
            raise Refuse(
                self._too_large("request headers are larger than", "bytes", "header_bytes")
            )

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_done()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
