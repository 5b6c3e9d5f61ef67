"""Resource limits: what one caller, or many, can make the proxy hold.

Three places, each enforced where the cost arises:

* **The HTTP server** (`caproute._proxy._protocol_limits`: uvicorn's
  protocols with limits added). Before any request reaches the application, so
  before authentication: the request head's size (431), its header count (431), the
  time a caller takes to send a head once it starts (408), how long a connection may
  sit idle, a new one included (closed), and the number of open connections (503,
  then closed). uvicorn itself has none of these for its httptools parser (a 256 MB
  header was read whole) and only a keep-alive timer armed *after* a first response.
  Answers are API-shaped JSON errors with ``connection: close``, so SDKs raise their
  usual exceptions (and retry 408/503).
* **The JSON parse** (`json_values_over`): parsing costs up to ~30 times a body's size
  in Python objects when the body is made of tiny values, so a routed body may hold
  at most ``max_json_values`` values (default: a value per 32 bytes of the body-size
  limit, ~80 MB of objects at most); a body with more is answered 413 before it is
  parsed. The count is a byte scan, only for bodies big enough to matter.
* **Upstream error bodies** (`CappedErrorBodies`): the routing flow reads 400/404
  bodies to choose its next step. Under the routing transport this wrapper reads at
  most ``max_error_body_bytes`` of one (decompressing gzip/deflate with the same
  bound); a bigger one is not read any further: the flow gets an empty-bodied stand-in
  (nothing to act on, so it delivers it with its decision), which carries the unread
  answer in its extensions (`UNREAD`), and the proxy streams that to the caller as the
  upstream sent it.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import httpx2

from ._responses import error_body


@dataclass(frozen=True, slots=True)
class ProtocolLimits:
    """The limits the HTTP protocol classes enforce (read from the uvicorn config)."""

    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100
    header_timeout: float = 10.0
    max_connections: int = 1024


def raw_error(status: int, phrase: str, error_type: str, message: str) -> bytes:
    """A complete HTTP/1.1 error response (API-shaped JSON) that closes the connection."""
    body = error_body(error_type, message)
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n"
    )
    if status == 503:
        head += "retry-after: 1\r\n"
    return head.encode("ascii") + b"\r\n" + body


# -- the JSON parse budget ---------------------------------------------------------------------

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def json_values_over(body: bytes, limit: int) -> int | None:
    """The number of JSON values in `body` when it is over `limit`, else `None`.

    Values are counted as containers plus commas outside strings, plus one: the
    objects a parse would create (keys repeat and are shared by the parser). The
    common case is cheap: a body shorter than `limit` bytes can't exceed it, and a
    count of the raw bytes (a few ms for 32 MiB) is an upper bound; only a body whose
    raw count is over the limit has its strings blanked out and is counted exactly
    (`exact_json_values`, up to ~0.7 s for a pathological 32 MiB body: async callers
    run that part in a worker thread, see `json_values_over_async`).
    """
    if not _may_be_over(body, limit):
        return None
    exact = exact_json_values(body)
    return exact if exact > limit else None


async def json_values_over_async(body: bytes, limit: int) -> int | None:
    """`json_values_over`, with the exact recount off the event loop."""
    if not _may_be_over(body, limit):
        return None
    import anyio.to_thread

    exact = await anyio.to_thread.run_sync(exact_json_values, body)
    return exact if exact > limit else None


def _may_be_over(body: bytes, limit: int) -> bool:
    """The cheap upper bound: can `body` hold more than `limit` values at all?"""
    if len(body) <= limit:
        return False
    return body.count(b"{") + body.count(b"[") + body.count(b",") + 1 > limit


def exact_json_values(body: bytes) -> int:
    """Containers plus commas outside strings, plus one (blocking: a regex over `body`).

    Counted between the strings through a `memoryview`, one gap at a time: blanking the
    strings out with `re.sub` would build a second body-sized copy of a body the proxy
    is about to refuse.
    """
    view = memoryview(body)
    count = 1
    start = 0
    for match in _STRING.finditer(body):
        gap = view[start : match.start()].tobytes()
        count += gap.count(b"{") + gap.count(b"[") + gap.count(b",")
        start = match.end()
    tail = view[start:].tobytes()
    return count + tail.count(b"{") + tail.count(b"[") + tail.count(b",")


# -- upstream error bodies -----------------------------------------------------------------


UNREAD: Final = "caproute_unread_answer"
"""The response extension holding an upstream error answer too big to read for routing
(set by `CappedErrorBodies` on its stand-in): the answer to relay as it was sent."""


class _Prefixed(httpx2.AsyncByteStream):
    """The bytes already read, then the rest of the upstream stream, unread until asked."""

    def __init__(self, head: list[bytes], rest: AsyncIterator[bytes], source: httpx2.Response):
        self._head = head
        self._rest = rest
        self._source = source

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._head:
            yield chunk
        self._head = []
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._source.aclose()


class CappedErrorBodies(httpx2.AsyncBaseTransport):
    """Read upstream 400/404 bodies (the ones the routing flow reads) up to a limit.

    Args:
        inner: The transport doing the IO.
        limit: Most bytes of an error body read, before and after decompression.
        statuses: The statuses the routing flow reads bodies of.
    """

    def __init__(
        self, inner: httpx2.AsyncBaseTransport, *, limit: int, statuses: frozenset[int]
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._statuses = statuses

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send; a 400/404 comes back either read (small) or as an unread stand-in (`UNREAD`).

        An error of the inner transport carries the request it was sending (so the app
        can tell which model could not be reached)."""
        try:
            response = await self._inner.handle_async_request(request)
        except httpx2.RequestError as exc:
            exc.request = request
            raise
        if response.status_code not in self._statuses:
            return response
        stream = response.stream
        assert isinstance(stream, httpx2.AsyncByteStream)
        chunks: list[bytes] = []
        size = 0
        rest = stream.__aiter__()
        async for chunk in rest:
            chunks.append(chunk)
            size += len(chunk)
            if size > self._limit:
                return _stand_in(
                    _rebuilt(response, request, _Prefixed(chunks, rest, response)), request
                )
        raw = b"".join(chunks)
        decoded = _decode(raw, response.headers.get("content-encoding", ""), self._limit)
        if decoded is None:
            await response.aclose()
            return _stand_in(_rebuilt(response, request, httpx2.ByteStream(raw)), request)
        await response.aclose()
        return with_body(response, decoded, request=request)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()


_BODY_HEADERS = (b"content-encoding", b"content-length", b"transfer-encoding")
"""The headers that describe a body as sent, wrong once it is replaced."""


def with_body(
    response: httpx2.Response, content: bytes, *, request: httpx2.Request | None = None
) -> httpx2.Response:
    """`response` with `content` as its (decoded) body: the status, the other headers
    and the extensions kept, the headers that described the old body dropped."""
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _BODY_HEADERS]
    return httpx2.Response(
        response.status_code,
        headers=headers,
        content=content,
        request=request,
        extensions=response.extensions,
    )


def _stand_in(unread: httpx2.Response, request: httpx2.Request) -> httpx2.Response:
    """An empty-bodied answer with `unread`'s status, carrying `unread` (see `UNREAD`)."""
    return httpx2.Response(
        unread.status_code,
        content=b"",
        request=request,
        extensions={**unread.extensions, UNREAD: unread},
    )


def _rebuilt(
    response: httpx2.Response, request: httpx2.Request, stream: httpx2.AsyncByteStream
) -> httpx2.Response:
    """`response` with its headers as sent and `stream` as its body."""
    return httpx2.Response(
        response.status_code,
        headers=response.headers.raw,
        stream=stream,
        request=request,
        extensions=response.extensions,
    )


def _decode(raw: bytes, encoding: str, limit: int) -> bytes | None:
    """`raw` decoded per ``Content-Encoding`` into at most `limit` bytes, else `None`."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    data = raw
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            wbits = 16 + zlib.MAX_WBITS
        elif coding == "deflate":
            wbits = zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS
        else:
            return None  # br, zstd...: not read for routing, passed through as sent
        decompressor = zlib.decompressobj(wbits)
        try:
            out = decompressor.decompress(data, limit + 1)
        except zlib.error:
            return None
        if len(out) > limit or decompressor.unconsumed_tail:
            return None
        data = out
    return data
