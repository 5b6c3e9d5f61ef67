"""The upstream's answer, streamed back to the caller, its token usage read on the way.

`relay` sends the answer unbuffered, raw bytes as the upstream encoded them, and
feeds each chunk to a `UsageMeter`. `cancelled_if_caller_leaves` watches, from
sending to the last byte, for the caller leaving, and then abandons the upstream
request at once. `cut_short` ends a request the server cancelled at the end of its
shutdown drain.

Token counts (`UsageMeter`): a Messages answer reports its ``usage``: in a JSON body
at its top level, in a stream in the ``message_start`` event (input tokens, cache
reads and writes) and in ``message_delta`` events (cumulative output tokens; newer API
versions repeat the input counts there too). The meter is fed each chunk the proxy
forwards and never holds the stream back:

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

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any, Final

import anyio
import httpx2

from ._asgi import Receive, Send
from ._config import ProxyConfig
from ._exchange import Exchange
from ._headers import Headers, downstream_response_headers
from ._limits import UNREAD, with_body
from ._logging import CUT_ON_PURPOSE
from ._responses import send_error, sse_error_event

logger = logging.getLogger("caproute.proxy")

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


async def relay(
    response: httpx2.Response,
    send: Send,
    exchange: Exchange,
    config: ProxyConfig,
    clock: Callable[[], float],
) -> None:
    """Stream `response` to the caller, recording in `exchange` what went out.

    Args:
        response: The upstream's answer (routed: with the decision attached).
        send: The ASGI send callable.
        exchange: The request's record.
        config: The read timeout (named when a stream goes silent); in own-key mode
            the key masked in error answers (`_masked`).
        clock: Monotonic seconds (when the headers went out).
    """
    unread: httpx2.Response | None = response.extensions.get(UNREAD)
    if unread is not None:
        # An error body too big to read for routing: the caller gets it as sent, with
        # the decision the request was sent under.
        decided = [(k, v) for k, v in response.headers.raw if k.startswith(b"caproute-")]
        await response.aclose()
        response = unread
        response.headers.update({k.decode(): v.decode("latin-1") for k, v in decided})
    if config.api_key is not None and response.status_code >= 400:
        response = await _masked(response, config.api_key, config.max_error_body_bytes)
    headers, body = _downstream(response)
    request_id = response.headers.get("request-id")
    if request_id:
        exchange.request_id = request_id[:128]
    if exchange.registry is not None:
        headers.append((b"caproute-registry", exchange.registry.encode("latin-1", "replace")))
    exchange.body_expected = _content_length(headers)
    exchange.status = response.status_code
    exchange.headers_sent_at = clock()
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    meter = _meter_for(response, headers, exchange)
    exchange.appendable_sse = _can_append_sse(headers)
    try:
        async for chunk in body:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                exchange.body_sent += len(chunk)
                exchange.last_chunk = chunk
                if meter is not None:
                    meter.feed(chunk)
    except httpx2.TransportError as exc:
        exchange.upstream_broke = True
        if isinstance(exc, httpx2.ReadTimeout):
            silent = config.read_timeout
            why = f"the upstream sent nothing for {silent:g}s (--read-timeout)"
        else:
            why = "upstream stream ended unexpectedly"
        logger.warning("%s (%s %s)", why, exchange.method, exchange.path)
        if not exchange.appendable_sse:
            # Headers are out and the body is incomplete: returning without the
            # final message makes the server close the connection, which is how
            # HTTP says "truncated" (Content-Length short / no last chunk).
            CUT_ON_PURPOSE.set(True)
            return
        tail = _sse_tail(exchange.last_chunk, "api_error", why)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        exchange.finished = True
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    exchange.finished = True
    if meter is not None:
        exchange.tokens = meter.finish()


async def _masked(response: httpx2.Response, secret: str, limit: int) -> httpx2.Response:
    """An error answer in own-key mode, with the proxy's key and any credential masked.

    The upstream may quote a prefix of the key it was sent (an authentication
    error does), and in own-key mode that key is the proxy's, which callers must
    never see: any 8-character run of it, a credential's value after its name and
    ``sk-ant-`` tokens are masked (`caproute._core.secrets.mask_known`). Error bodies are
    small; one larger than `limit` (``max_error_body_bytes``, by its declared length) is
    relayed unread, as the routing flow relays it.
    """
    from .._core.secrets import mask_known

    declared = response.headers.get("content-length")
    if declared is None or not declared.isdigit() or int(declared) > limit:
        return response
    content = await response.aread()
    text = content.decode("utf-8", "replace")
    masked = mask_known(text, (secret,))
    if masked == text:
        return response
    return with_body(response, masked.encode())


async def cut_short(exchange: Exchange, send: Send) -> None:
    """Answer or close a request the server cancelled at the end of its drain.

    Not started: a ``503 overloaded_error`` (SDKs retry it, on another replica
    behind a load balancer). A plain event stream: closed with an ``error`` event,
    as the API ends a stream it can't finish. Any other body: left unfinished, so
    the connection closes and the caller sees a truncated answer.
    """
    exchange.cut = "shutdown"
    logger.warning("shutdown timeout ran out: %s %s cut short", exchange.method, exchange.path)
    message = "the proxy is shutting down and could not finish this request; retry it"
    try:
        if exchange.headers_sent_at is None:
            await send_error(send, 503, "overloaded_error", message, close=True)
            return
        if exchange.appendable_sse and not exchange.finished:
            tail = _sse_tail(exchange.last_chunk, "overloaded_error", message)
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            exchange.finished = True
            return
    except Exception:  # the connection went first: nothing to tell anyone
        pass
    CUT_ON_PURPOSE.set(True)


@contextlib.contextmanager
def cancelled_if_caller_leaves(receive: Receive, exchange: Exchange) -> Iterator[None]:
    """Cancel the block (waiting for the upstream, streaming its answer) if the caller leaves.

    Then the upstream request is abandoned at once, not when its next chunk arrives
    (which may be minutes away for a long generation). The request body has been read,
    so the next ASGI message is `http.disconnect`: the caller left, or the server
    finished the response (by then the block is over and the watcher is cancelled).

    A bare asyncio task plus one anyio cancel scope rather than an anyio task group:
    the same cancellation semantics here at a third of the cost (a task group measured
    ~75 µs per request, see docs/performance.md). This ties the app to asyncio-based
    servers, which uvicorn is.
    """
    with anyio.CancelScope() as scope:
        watcher = asyncio.ensure_future(_next_disconnect(receive))

        def caller_left(done: asyncio.Future[None]) -> None:
            if not done.cancelled():
                exchange.disconnected = True
                scope.cancel()

        watcher.add_done_callback(caller_left)
        try:
            yield
        finally:
            watcher.remove_done_callback(caller_left)
            watcher.cancel()


async def _next_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _downstream(response: httpx2.Response) -> tuple[Headers, AsyncIterable[bytes]]:
    """Headers and body iterator for the caller.

    The normal case forwards the upstream's bytes exactly as encoded, with its
    ``Content-Encoding`` and ``Content-Length``. If an inner layer already read the
    body (the routing flow reads small 400/404 error bodies to choose its next step),
    the decoded content is sent instead, so the encoding header is dropped and the
    length recomputed: the body and its headers always agree.
    """
    headers = downstream_response_headers(response.headers.raw)
    if not response.is_stream_consumed:
        if isinstance(response.stream, httpx2.AsyncByteStream):
            # The transport's raw stream, not `response.aiter_raw()`: that one closes
            # the response as its last step, before handing back the end of the body,
            # and closing (the connection going back to httpcore's pool) took 0.1-0.3
            # ms here, by which a chunked answer's last, empty chunk (until which the
            # caller's answer is not complete) came late. The app closes the response
            # once the caller has everything.
            return headers, response.stream
        return headers, response.aiter_raw()
    content = response.content
    headers = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")]
    headers.append((b"content-length", str(len(content)).encode()))
    return headers, _once(content)


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


def _content_length(headers: Headers) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _can_append_sse(headers: Headers) -> bool:
    """An SSE ``error`` event can close a broken stream when the body is plain SSE."""
    values = dict(headers)
    return (
        values.get(b"content-type", b"").startswith(b"text/event-stream")
        and b"content-length" not in values
        and values.get(b"content-encoding", b"identity") == b"identity"
    )


def _sse_tail(last_chunk: bytes, error_type: str, message: str) -> bytes:
    """An ``error`` event closing a stream whose last chunk sent was `last_chunk`."""
    tail = sse_error_event(error_type, message)
    if not last_chunk.endswith(b"\n\n"):
        # The cut fell inside an event: end it first, or our event's lines would be
        # glued onto its last line.
        tail = b"\n\n" + tail
    return tail


def _meter_for(
    response: httpx2.Response, headers: Headers, exchange: Exchange
) -> UsageMeter | None:
    """A usage meter for a successful Messages answer (None for anything else)."""
    if response.status_code != 200 or exchange.decision is None:
        return None
    values = dict(headers)
    encoding = values.get(b"content-encoding", b"identity")
    return UsageMeter(values.get(b"content-type", b""), encoding=encoding)


# -- token usage ----------------------------------------------------------------------------


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
