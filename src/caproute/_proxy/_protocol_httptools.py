"""uvicorn's httptools protocol behind caproute's limits (see `caproute._proxy._protocol_limits`).

Composition, not a subclass: `LimitedHttpTools` makes uvicorn's `HttpToolsProtocol` as
uvicorn's server would (the constructor uvicorn's ``http`` setting documents for a
protocol class) and hands it every read, after running the read through a parser of
its own (httptools, the same C parser) that counts the head's fields and bytes. So
nothing of uvicorn's protocol but its asyncio.Protocol methods is used. The second
parse costs ~4 µs per request, 0.6 % of a loopback round trip (ARCH-NOTES).

In a module of its own so that only a server that uses httptools imports it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ._limits import ProtocolLimits, raw_error
from ._protocol_limits import LimitsMixin, Refuse

logger = logging.getLogger("uvicorn.error")


class LimitedHttpTools(LimitsMixin, asyncio.Protocol):
    """uvicorn's httptools protocol, each read checked against caproute's limits first.

    Args:
        config: uvicorn's (loaded) config.
        server_state: uvicorn's server state (its ``connections``).
        app_state: The lifespan state.
        _loop: The event loop (as uvicorn passes it).
        limits: caproute's protocol limits.
    """

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ProtocolLimits,
    ) -> None:
        super().__init__(limits=limits)
        self._inner = HttpToolsProtocol(
            config=config, server_state=server_state, app_state=app_state, _loop=_loop
        )
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.connections = server_state.connections
        self.timeout_keep_alive = config.timeout_keep_alive
        self.timeout_keep_alive_task: asyncio.TimerHandle | None = None
        self.logger = logger
        self._parser = httptools.HttpRequestParser(self)
        self._in_head = True
        self._head_fields = 0
        self._head_field_bytes = 0
        self._unchecked = False
        """An upgrade request stopped the parser: the rest goes to uvicorn unchecked."""

    # -- asyncio.Protocol: caproute's checks, then uvicorn's protocol ------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._inner.connection_made(self.transport)
        self._limit_new_connection()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        self._cancel_idle_timer()
        self._inner.connection_lost(exc)

    def eof_received(self) -> None:
        self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def data_received(self, data: bytes) -> None:
        """Count the head in `data`; refuse it over a limit, else hand `data` to uvicorn."""
        if self._refused:
            return
        self._cancel_idle_timer()
        if not self._unchecked:
            try:
                if self._in_head:
                    self._head_started(len(data))
                self._parser.feed_data(data)
                if self._in_head:
                    self._check_head_size()
            except Refuse as refusal:
                self._refuse(refusal.answer)
                return
            except httptools.HttpParserUpgrade:
                self._unchecked = True  # no WebSocket endpoints: uvicorn says so (ws="none")
            except httptools.HttpParserError:
                if self._pending is not None:  # a limit hit inside a parser callback
                    self._refuse(self._pending)
                    return
                self.logger.warning("Invalid HTTP request received.")
                message = "Invalid HTTP request received."
                self._refuse(raw_error(400, "Bad Request", "invalid_request_error", message))
                return
        self._inner.data_received(data)

    def timeout_keep_alive_handler(self) -> None:
        """A new connection sent nothing within the keep-alive timeout: close it."""
        self.timeout_keep_alive_task = None
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_idle_timer(self) -> None:
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    # -- the counting parser's callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_fields = 0
        self._head_field_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        if self._head_fields > self.limits.max_header_count:
            raise Refuse(self._too_large("more request headers than", "headers", "header_count"))
        self._grow(len(name) + len(value) + 4)

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

    def on_message_complete(self) -> None:
        self._in_head = True
