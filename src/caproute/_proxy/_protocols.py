"""uvicorn's HTTP protocols with caproute's limits (see `caproute._proxy._limits`).

Module-level classes, so a uvicorn config naming them can be sent to worker processes
(``--workers``). They read their limits from the uvicorn config's ``caproute_limits``
attribute and count each refusal in the served app's metrics.
Imported only when the proxy is served: it imports uvicorn and its parsers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._limits import ProtocolLimits, raw_error

LINGER = 1.0
"""Seconds a refused connection is drained before it is closed (see `_refuse`)."""

_TOO_LARGE = (431, "Request Header Fields Too Large", "invalid_request_error")


class _Refuse(Exception):
    """Raised inside a parser callback: stop parsing, answer this and close."""

    def __init__(self, answer: bytes) -> None:
        super().__init__("request refused by a protocol limit")
        self.answer = answer


class _LimitsMixin:
    """The limit bookkeeping shared by both protocol classes.

    The host class calls `_head_started` with every read that arrives while a request
    head is being read, `_check_head_size` after parsing it if the head is still
    incomplete, `_head_done` when a head is complete, and `_refuse` to answer and
    close. (Attributes come from uvicorn's protocol classes.)
    """

    config: Any
    connections: set[Any]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    timeout_keep_alive: float
    timeout_keep_alive_task: asyncio.TimerHandle | None
    logger: Any

    def _init_limits(self) -> None:
        self.limits: ProtocolLimits = getattr(self.config, "caproute_limits", ProtocolLimits())
        self._head_size = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._linger: asyncio.TimerHandle | None = None
        self._pending: bytes | None = None
        """A refusal raised inside a parser callback (uvicorn may catch the error first)."""

    def _limit_new_connection(self) -> bool:
        """At connection time: refuse it when over the limit, else arm the idle timer."""
        if len(self.connections) > self.limits.max_connections:
            self._count("connections")
            self._refuse(
                raw_error(503, "Service Unavailable", "overloaded_error", "too many connections")
            )
            return False
        # uvicorn arms its keep-alive timer only after a response: a connection that
        # never sends a byte would be held forever.
        handler = self.timeout_keep_alive_handler  # type: ignore[attr-defined]
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, handler)
        return True

    def _head_started(self, size: int) -> None:
        """Bytes arrived while a head is being read (some may be its body's)."""
        self._head_size += size
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def _check_head_size(self) -> None:
        """After parsing a read: the head is still incomplete, is it already too big?"""
        if self._head_size > self.limits.max_header_bytes:
            raise _Refuse(
                self._too_large("request headers are larger than", "bytes", "header_bytes")
            )

    def _head_done(self) -> None:
        self._head_size = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing():
            return
        self._count("header_timeout")
        seconds = f"{self.limits.header_timeout:g}"
        self._refuse(
            raw_error(
                408,
                "Request Timeout",
                "timeout_error",
                f"request headers not received within {seconds}s",
            )
        )

    def _too_large(self, what: str, unit: str, limit_name: str) -> bytes:
        self._count(limit_name)
        limit = getattr(self.limits, f"max_{limit_name}")
        self._pending = raw_error(*_TOO_LARGE, f"{what} {limit} {unit}")
        return self._pending

    def _refuse(self, answer: bytes) -> None:
        """Answer and close, lingering: read and discard what the caller still sends.

        Closing a socket with unread input makes the kernel send a reset, which can
        destroy the answer before the caller reads it (a caller still sending its
        oversized head would see "connection reset" instead of the 431). So the
        write side is shut first and the rest is drained for at most `LINGER` seconds.
        """
        self._refused = True
        self._head_done()
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
            self._linger = self.loop.call_later(LINGER, transport.close)
        else:  # pragma: no cover - TLS transports can't half-close
            transport.close()

    def _count(self, limit: str) -> None:
        # The app this protocol serves (built in this process, worker or not) counts it.
        metrics = getattr(getattr(self, "app", None), "metrics", None)
        record = getattr(metrics, "record_limit", None)
        if record is not None:
            record(limit)

    def _stop_timers(self) -> None:
        self._head_done()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None


class LimitedH11(_LimitsMixin, H11Protocol):  # type: ignore[misc]
    """uvicorn's h11 protocol with caproute's limits.

    h11 itself bounds the head (``h11_max_incomplete_event_size``, set to the same
    limit, which uvicorn answers with a plain 400); the count here catches it first
    with a 431. The header count is checked by the application for this parser.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_limits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._limit_new_connection()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

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
            except _Refuse as refusal:
                self._refuse(refusal.answer)


def protocol_class(http: str) -> type[asyncio.Protocol]:
    """The limited uvicorn protocol class for ``"httptools"`` or ``"h11"``.

    The httptools one lives in its own module, imported only when chosen, so a server
    on h11 never loads the httptools parser.
    """
    if http == "httptools":
        from ._protocols_httptools import LimitedHttpTools

        return LimitedHttpTools
    return LimitedH11
