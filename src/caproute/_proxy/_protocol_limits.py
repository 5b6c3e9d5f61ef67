"""The limits caproute adds to uvicorn's HTTP protocols (see `caproute._proxy._limits`).

`LimitsMixin` holds what both limited protocol classes share
(`caproute._proxy._protocol_h11`, `caproute._proxy._protocol_httptools`); each reads its
limits from the ``limits`` argument its factory was given (``functools.partial`` of
the class, which `caproute._proxy._server` passes as uvicorn's ``http``: picklable, so
worker processes get it too) and counts each refusal in the served app's metrics.
Imported only when the proxy is served.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._limits import ProtocolLimits, raw_error

LINGER = 1.0
"""Seconds a refused connection is drained before it is closed (see `_refuse`)."""

_TOO_LARGE = (431, "Request Header Fields Too Large", "invalid_request_error")


class Refuse(Exception):
    """Raised inside a parser callback: stop parsing, answer this and close."""

    def __init__(self, answer: bytes) -> None:
        super().__init__("request refused by a protocol limit")
        self.answer = answer


class LimitsMixin:
    """The limit bookkeeping shared by both protocol classes, and their shared overrides
    (construction, a new connection, a lost one).

    The host class calls `_head_started` with every read that arrives while a request
    head is being read, `_check_head_size` after parsing it if the head is still
    incomplete, `_head_done` when a head is complete, and `_refuse` to answer and
    close. (The attributes declared below come from uvicorn's h11 protocol for
    `LimitedH11`, which `tests/proxy/test_proxy_uvicorn_internals.py` checks, and from
    `LimitedHttpTools` itself.)
    """

    config: Any
    connections: set[Any]
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    timeout_keep_alive: float
    timeout_keep_alive_task: asyncio.TimerHandle | None
    logger: Any

    def __init__(self, *args: Any, limits: ProtocolLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._head_size = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._linger: asyncio.TimerHandle | None = None
        self._pending: bytes | None = None
        """A refusal raised inside a parser callback (uvicorn may catch the error first)."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._limit_new_connection()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)  # type: ignore[misc]

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
            raise Refuse(
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
