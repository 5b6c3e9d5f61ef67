"""Routing transports for httpx2 (the SDK 1.x/2.x stack) and httpx (SDK 0.x and others).

A transport sits under an HTTP client and sees every request it sends, after the
client has built it (headers, timeouts) and before any socket is touched; wrapping the
client's own transport keeps its connection pool, proxies and keep-alive settings.
`RoutingTransport` / `AsyncRoutingTransport` wrap an inner transport and:

* route ``POST …/v1/messages``, ``…/v1/messages/count_tokens`` and
  ``…/v1/messages/batches`` (each ``requests[].params``) through a `LiveRouter` and
  the response-driven flow (`caproute._runtime.drive`);
* pass every other request through untouched, body unread (uploads, batch results,
  model listings stream through as they are);
* forward the ORIGINAL request object when routing changed nothing, and otherwise
  rebuild it once: new JSON (compact, serialised once), the stale ``Content-Length`` /
  ``Transfer-Encoding`` dropped so the client computes a fresh one, ``extensions``
  (where the client keeps the timeouts) carried over;
* add the ``caproute-*`` headers (`Decision.header_values`) and
  ``response.extensions["caproute_decision"]`` to every routed response, and never
  buffer a success body, so SSE streams reach the caller event by event.

httpx and httpx2 share one API, so there is one translation (`_Routing`, its sync and
async halves) to and from the shared adapter (`caproute._runtime.drive`), and thin
classes per library. A caller's ``caproute-*`` request headers are dropped (they are
caproute's own names; the proxy drops them too). httpx is optional: its classes are built
on first use by `httpx_transport_classes()`.

These transports never retry by themselves: the SDK's retry loop sits above them and
calls them once per attempt; the only extra sends are the flow's bounded
response-driven hops.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import httpx2

from .._core import body as _body
from .._core.body import BodyRefused
from .._core.wire import CAPROUTE_PREFIX, endpoint_for, parse_betas
from .._logs import protect
from .._runtime import drive as adapter
from .._runtime.live import DecisionHook, LiveRouter, RegistryInput, router_or_live
from .._runtime.otel import ClientTracing

if TYPE_CHECKING:
    import httpx

    from .._core.policy import Policy

__all__ = [
    "AsyncRoutingTransport",
    "RoutingTransport",
    "async_httpx_transport",
    "httpx_transport",
    "httpx_transport_classes",
]

# Headers describing the old body; the rebuilt request gets fresh ones.
_BODY_HEADERS: Final = frozenset({b"content-length", b"transfer-encoding"})
# After reading (and decoding) an error body, these no longer describe it.
_ENCODING_HEADERS: Final = frozenset({b"content-length", b"transfer-encoding", b"content-encoding"})
_OWN_PREFIX: Final = CAPROUTE_PREFIX.encode()

_logger = protect(logging.getLogger("caproute"))


class _Routing:
    """The translation between httpx / httpx2 objects and `adapter.drive`, for every flavour."""

    _http: ModuleType  # httpx2 or httpx: the module whose Request/Response we build
    _new_inner: Callable[[], Any]  # the inner transport made when none is given
    _tracing: ClientTracing | None = None
    """The SDK client's tracing settings, set by `wrap` (None: the defaults)."""

    def __init__(
        self,
        inner: Any = None,
        *,
        router: LiveRouter | None = None,
        registry: RegistryInput = None,
        policy: Policy | str | Path | None = None,
        on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
    ) -> None:
        self._inner = inner if inner is not None else self._new_inner()
        self._router = router_or_live(router, registry, policy, on_decision)

    @property
    def router(self) -> LiveRouter:
        """The router deciding for this transport (a `LiveRouter` unless you passed one)."""
        return self._router

    def _prepared(self, request: Any) -> tuple[Any, Any]:
        """`request` without caller-set ``caproute-*`` headers (caproute's own names,
        never forwarded upstream), and the endpoint it is routed as (`None`: pass it
        through, body unread)."""
        raw = request.headers.raw
        for key, _ in raw:  # a loop, not any(): no generator per request
            if key.lower().startswith(_OWN_PREFIX):
                break
        else:
            return request, endpoint_for(request.method, request.url.path)
        kept = [(k, v) for k, v in raw if not k.lower().startswith(_OWN_PREFIX)]
        request = self._http.Request(
            request.method,
            request.url,
            headers=kept,
            stream=request.stream,
            extensions=request.extensions,
        )
        return request, endpoint_for(request.method, request.url.path)

    def _parsed(self, request: Any, endpoint: Any, content: bytes) -> tuple[Any, Any]:
        """``(call, request)``: the call to drive and the request to forward for it.

        The call is `None` (after reporting a passthrough) for a body that is not a JSON
        object, or the local answer (a response) for a body caproute can't forward
        safely (`caproute._core.body`). The request is the caller's own, except when its
        body had a duplicate key: then it is rebuilt from what caproute read.
        """
        try:
            return self._call(request, endpoint, content)
        except BodyRefused as refused:
            return self.answer(
                request, adapter.local_answer(self._router, refused, self._tracing)
            ), None

    def _call(
        self, request: Any, endpoint: Any, content: bytes
    ) -> tuple[adapter.ParsedCall | None, Any]:
        headers = request.headers
        api_version, betas, retry, coding = _call_headers(headers)
        codings: tuple[str, ...] = ()
        if coding is not None:  # rare: a compressed request body
            codings = _body.parse_codings(coding)
            if codings:
                content = _body.decode(content, codings, _body.DECODED_LIMITS[endpoint])
        body, duplicate = _body.parse(content)
        if not isinstance(body, dict):
            adapter.report_passthrough(
                self._router, "the request body is not a JSON object", self._tracing
            )
            return None, request
        if duplicate is not None:
            # Forward what caproute read, so the upstream can't read another request.
            _logger.warning(
                "caproute: the request body repeats the key %s; forwarding it as read "
                "(the last value of each key)",
                duplicate,
            )
            request = self._rebuilt(request, _body.encode(_body.dumps(body), codings))
        return adapter.ParsedCall(body, endpoint, api_version, betas, headers, retry), request

    def _outgoing(self, request: Any, send: adapter.Forward) -> Any:
        """The request to send for `send`: the original one when nothing changed.

        Raises:
            adapter.Unsent: The routed body can't be built (caproute's error: nothing was sent).
        """
        if not send.changed:
            return request
        try:
            content = _body.dumps(send.body)
            coding = request.headers.get("content-encoding")
            if coding is not None:
                # The caller compressed its body: send the routed one compressed alike.
                content = _body.encode(content, _body.parse_codings(coding))
            return self._rebuilt(request, content)
        except Exception as exc:
            raise adapter.Unsent from exc

    def _rebuilt(self, request: Any, content: bytes) -> Any:
        """`request` with another body (its length headers dropped, recomputed)."""
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in _BODY_HEADERS]
        return self._http.Request(
            request.method,
            request.url,
            headers=headers,
            content=content,
            extensions=request.extensions,
        )

    def _buffered(self, response: Any, content: bytes) -> adapter.Sent:
        """What `adapter.drive` reads of an upstream answer whose (decoded) body was read: the
        body put back as a buffered response equivalent to `response`."""
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _ENCODING_HEADERS]
        buffered = self._http.Response(
            response.status_code,
            headers=headers,
            content=content,
            request=response.request if _has_request(response) else None,
            extensions=response.extensions,
        )
        return adapter.Sent(buffered, buffered, response.status_code, content)

    def answer(self, request: Any, local: adapter.Local) -> Any:
        """A local answer, as a response to `request` (API-shaped, never retried)."""
        return adapter.local_response(self._http, request, local)


_CALL_HEADERS: Final = {
    b"anthropic-version": 0,
    b"anthropic-beta": 1,
    b"x-stainless-retry-count": 2,
    b"content-encoding": 3,
}


def _call_headers(headers: Any) -> tuple[str | None, tuple[str, ...], int, str | None]:
    """``anthropic-version``, the parsed betas, the SDK's ``x-stainless-retry-count`` (0
    when absent or not a number) and the ``content-encoding`` (`None` when absent).

    Read as ``Headers.get`` / ``get_list`` read them (repeated values joined with ", ",
    decoded with ``Headers.encoding``), in one pass over the public ``Headers.raw``: a
    ``get`` per name would scan the list four times (~5 µs per request).
    """
    found: list[list[bytes]] = [[], [], [], []]
    for key, value in headers.raw:
        slot = _CALL_HEADERS.get(key.lower())
        if slot is not None:
            found[slot].append(value)
    versions, betas, retries, codings = found
    if not (versions or betas or retries or codings):
        return None, (), 0, None
    encoding = headers.encoding

    def joined(values: list[bytes]) -> str | None:
        return ", ".join(v.decode(encoding) for v in values) if values else None

    return (
        joined(versions),
        parse_betas([v.decode(encoding) for v in betas]) if betas else (),
        _retry_count(joined(retries)),
        joined(codings),
    )


def _retry_count(value: str | None) -> int:
    """The SDK's retry count header as a number (0 when absent or malformed)."""
    return int(value) if value is not None and value.isdigit() else 0


def _has_request(response: Any) -> bool:
    try:
        response.request  # noqa: B018 - the property raises when no request is attached
    except RuntimeError:
        return False
    return True


class _SyncRouting(_Routing):
    """The sync translation (`adapter.drive`)."""

    def handle_request(self, request: Any) -> Any:
        """Route a Messages request (or pass anything else through) and return the response."""
        request, endpoint = self._prepared(request)
        if endpoint is not None:
            call, request = self._parsed(request, endpoint, request.read())
            if isinstance(call, adapter.ParsedCall):
                return adapter.drive(self._router, call, self, request, self._tracing)
            if call is not None:
                return call  # answered locally
        return self._inner.handle_request(request)

    def send(self, request: Any, action: adapter.Forward) -> adapter.Sent:
        """Forward `action` through the inner transport (`adapter.drive`'s shell)."""
        response = self._inner.handle_request(self._outgoing(request, action))
        if response.status_code not in adapter.READS_BODY_ON:
            return adapter.Sent(response, response, response.status_code, None)
        return self._buffered(response, response.read())  # reading it to the end closes it

    def close(self) -> None:
        """Close the inner transport."""
        self._inner.close()


class _AsyncRouting(_Routing):
    """The async translation (`adapter.drive_async`)."""

    async def handle_async_request(self, request: Any) -> Any:
        """Route a Messages request (or pass anything else through) and return the response."""
        request, endpoint = self._prepared(request)
        if endpoint is None:
            return await self._inner.handle_async_request(request)
        call, request = self._parsed(request, endpoint, await request.aread())
        if isinstance(call, adapter.ParsedCall):
            return await adapter.drive_async(self._router, call, self, request, self._tracing)
        return call if call is not None else await self._inner.handle_async_request(request)

    async def send(self, request: Any, action: adapter.Forward) -> adapter.Sent:
        """Forward `action` through the inner transport (`adapter.drive_async`'s shell)."""
        response = await self._inner.handle_async_request(self._outgoing(request, action))
        if response.status_code not in adapter.READS_BODY_ON:
            return adapter.Sent(response, response, response.status_code, None)
        return self._buffered(response, await response.aread())

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()


class RoutingTransport(_SyncRouting, httpx2.BaseTransport):
    """An httpx2 transport that routes Messages requests before `inner` sends them.

    Args:
        inner: The transport that does the IO (default: a new ``httpx2.HTTPTransport``).
        router: A shared `LiveRouter`.
            Without one, a `LiveRouter` is built from `registry`, `policy` and
            `on_decision`.
        registry: A `Registry` or a registry fetcher (see `LiveRouter`).
        policy: A `Policy`, a policy file path, or `None` for the defaults.
        on_decision: Hook(s) receiving every `Decision`.

    Example:
        >>> client = httpx2.Client(transport=RoutingTransport(policy="routing.yaml"))
    """

    _http = httpx2
    _new_inner = httpx2.HTTPTransport


class AsyncRoutingTransport(_AsyncRouting, httpx2.AsyncBaseTransport):
    """The async twin of `RoutingTransport` (inner default: ``httpx2.AsyncHTTPTransport``)."""

    _http = httpx2
    _new_inner = httpx2.AsyncHTTPTransport


@functools.cache
def httpx_transport_classes() -> tuple[type[httpx.BaseTransport], type[httpx.AsyncBaseTransport]]:
    """The ``(sync, async)`` routing transport classes for the `httpx` library.

    Built on first call so that httpx stays optional (``pip install caproute[httpx]``);
    same constructor arguments as `RoutingTransport` / `AsyncRoutingTransport`.

    Raises:
        ImportError: httpx is not installed (with an install hint).
    """
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - httpx is in the dev environment
        raise ImportError("the httpx transports need httpx: pip install 'caproute[httpx]'") from exc

    class HttpxRoutingTransport(_SyncRouting, httpx.BaseTransport):
        """`RoutingTransport` for httpx clients (anthropic 0.x and other libraries)."""

        _http = httpx
        _new_inner = httpx.HTTPTransport

    class AsyncHttpxRoutingTransport(_AsyncRouting, httpx.AsyncBaseTransport):
        """`AsyncRoutingTransport` for httpx clients."""

        _http = httpx
        _new_inner = httpx.AsyncHTTPTransport

    for cls in (HttpxRoutingTransport, AsyncHttpxRoutingTransport):
        cls.__qualname__ = cls.__name__  # repr and tracebacks: no "<locals>" noise
    return HttpxRoutingTransport, AsyncHttpxRoutingTransport


def httpx_transport(
    inner: httpx.BaseTransport | None = None, **options: Any
) -> httpx.BaseTransport:
    """A routing transport for a sync `httpx` client (options as for `RoutingTransport`)."""
    sync_cls, _ = httpx_transport_classes()
    return sync_cls(inner, **options)  # type: ignore[call-arg]


def async_httpx_transport(
    inner: httpx.AsyncBaseTransport | None = None, **options: Any
) -> httpx.AsyncBaseTransport:
    """A routing transport for an async `httpx` client (options as for `AsyncRoutingTransport`)."""
    _, async_cls = httpx_transport_classes()
    return async_cls(inner, **options)  # type: ignore[call-arg]
