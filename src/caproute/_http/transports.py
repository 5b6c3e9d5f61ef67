"""Routing transports for httpx2 (the SDK 1.x/2.x stack) and httpx (SDK 0.x and others).

A transport sits under an HTTP client and sees every request it sends, after the
client has built it (headers, timeouts) and before any socket is touched; wrapping the
client's own transport keeps its connection pool, proxies and keep-alive settings.
`RoutingTransport` / `AsyncRoutingTransport` wrap an inner transport and:

* route ``POST …/v1/messages``, ``…/v1/messages/count_tokens`` and
  ``…/v1/messages/batches`` (each ``requests[].params``) through a `LiveRouter` and
  the response-driven flow of `caproute._runtime.drive`;
* pass every other request through untouched, body unread (uploads, batch results,
  model listings stream through as they are);
* forward the ORIGINAL request object when routing changed nothing, and otherwise
  rebuild it once: new JSON (compact, serialised once), the stale ``Content-Length`` /
  ``Transfer-Encoding`` dropped so the client computes a fresh one, ``extensions``
  (where the client keeps the timeouts) carried over;
* add the ``caproute-*`` headers (`Decision.header_values`) and
  ``response.extensions["caproute_decision"]`` to every routed response, and never
  buffer a success body, so SSE streams reach the caller event by event.

httpx and httpx2 share one API, so there is one implementation (`_Routing` plus the
two drivers) and thin classes per library. httpx is optional: its classes are built
on first use by `httpx_transport_classes()`.

These transports never retry by themselves: the SDK's retry loop sits above them and
calls them once per attempt; the only extra sends are the flow's bounded
response-driven hops.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import httpx2

from .._core import body as _body
from .._core.body import BodyRefused, internal_error_message, refused_decision
from .._core.decision import Decision
from .._core.secrets import redact_decision
from .._core.wire import error_body
from .._runtime.drive import (
    READS_BODY_ON,
    Call,
    Reply,
    Send,
    append_decision_headers,
    decision_header_entries,
    drive,
    drive_async,
    endpoint_for,
    error_of,
    parse_betas,
    passthrough,
    refusal_body,
    reply_for,
)
from .._runtime.live import DecisionHook, LiveRouter, RegistryInput, router_or_live
from .._runtime.logs import protect
from .._runtime.otel import ClientTracing, client_tracing

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

_logger = protect(logging.getLogger("caproute"))


class _Hops:
    """One routed call's state while `drive` runs it (the `request` the shell is given).

    `in_io` tells an error of the inner transport (the caller's to handle, as without
    caproute) from an error of routing itself (answered locally, API-shaped).
    """

    __slots__ = ("request", "in_io", "response")

    def __init__(self, request: Any) -> None:
        self.request = request
        self.in_io = False
        self.response: Any = None
        """The last upstream response, released if routing fails after it."""


class _Routing:
    """The request/response plumbing shared by every flavour and both drivers."""

    _http: ModuleType  # httpx2 or httpx: the module whose Request/Response we build
    _inner: Any
    _router: LiveRouter
    _tracing: ClientTracing | None = None
    """The SDK client's tracing settings, set by `wrap` (None: the defaults)."""

    @property
    def router(self) -> LiveRouter:
        """The router deciding for this transport (a `LiveRouter` unless you passed one)."""
        return self._router

    def _call(self, request: Any, endpoint: Any, content: bytes) -> tuple[Call | None, Any]:
        """The parsed call and the request to forward for it.

        The call is `None` (after reporting a passthrough) for a body that is not a JSON
        object. The request is the caller's own, except when its body had a duplicate
        key: then it is rebuilt from what caproute read (see `caproute._core.body`).

        Raises:
            BodyRefused: A body that can't be forwarded safely (`caproute._core.body`).
        """
        headers = request.headers
        api_version, betas, retry, coding = _call_headers(headers)
        codings: tuple[str, ...] = ()
        if coding is not None:  # rare: a compressed request body
            codings = _body.parse_codings(coding)
            if codings:
                content = _body.decode(content, codings, _body.DECODED_LIMITS[endpoint])
        body, duplicate = _body.parse(content)
        if not isinstance(body, dict):
            self._router.report(passthrough("the request body is not a JSON object"))
            return None, request
        if duplicate is not None:
            # Forward what caproute read, so the upstream can't read another request.
            _logger.warning(
                "caproute: the request body repeats the key %s; forwarding it as read "
                "(the last value of each key)",
                duplicate,
            )
            request = self._rebuilt(request, _body.encode(_body.dumps(body), codings))
        return Call(body, endpoint, api_version, betas, headers, retry), request

    def _outgoing(self, request: Any, send: Send) -> Any:
        """The request to send for `send`: the original one when nothing changed."""
        if not send.changed:
            return request
        content = _body.dumps(send.body)
        coding = request.headers.get("content-encoding")
        if coding is not None:
            # The caller compressed its body: send the routed one compressed alike.
            content = _body.encode(content, _body.parse_codings(coding))
        return self._rebuilt(request, content)

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

    def _buffered(self, response: Any, content: bytes) -> Any:
        """A response equivalent to `response`, whose (decoded) body is `content`."""
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _ENCODING_HEADERS]
        return self._http.Response(
            response.status_code,
            headers=headers,
            content=content,
            request=response.request if _has_request(response) else None,
            extensions=response.extensions,
        )

    def _refuse(self, hops: _Hops, decision: Decision) -> Any:
        """The local API-shaped 400 for a request the policy rejects."""
        decision = redact_decision(decision)
        return self._local(hops.request, 400, refusal_body(decision), decision)

    def _local(self, request: Any, status: int, content: bytes, decision: Decision) -> Any:
        """An answer caproute gives itself, API-shaped (nothing was sent upstream)."""
        decision = redact_decision(decision)
        headers = {
            "content-type": "application/json",
            # Retrying cannot change caproute's verdict; tell the SDK not to.
            "x-should-retry": "false",
            **decision.header_values(),
        }
        return self._http.Response(
            status,
            headers=headers,
            content=content,
            request=request,
            extensions={"caproute_decision": decision},
        )

    def _refused_body(self, request: Any, refused: BodyRefused) -> Any:
        """The local answer for a body caproute can't forward safely."""
        decision = refused_decision(refused.message)
        self._router.report(decision)
        return self._local(
            request, refused.status, error_body(refused.error_type, refused.message), decision
        )

    def _failed(self, hops: _Hops, exc: Exception) -> Any:
        """The local 500 for an error in routing itself (a caproute bug): never a crash,
        never a retry (the same body would fail the same way), the traceback logged."""
        _logger.error(
            "caproute: routing failed with %s; answering 500, nothing sent upstream",
            type(exc).__name__,
            exc_info=exc,
        )
        message = internal_error_message(exc)
        decision = refused_decision(message)
        self._router.report(decision)
        return self._local(hops.request, 500, error_body("api_error", message), decision)

    def _deliver(self, response: Any, decision: Decision) -> Any:
        """`response` with the decision attached (``caproute-*`` headers, extension)."""
        decision = redact_decision(decision)  # itself, unless it quotes a key
        headers = response.headers
        if not append_decision_headers(headers, decision_header_entries(decision)):
            _add_headers(headers, decision.header_values())
        # Copy rather than mutate: a transport may hand out a read-only mapping.
        response.extensions = {**response.extensions, "caproute_decision": decision}
        return response


def _add_headers(headers: Any, values: dict[str, str]) -> None:
    """Add the ``caproute-*`` headers (the path for non-ASCII values, see `_deliver`).

    Appended to the multi-dict's list like `append_decision_headers` does (with the
    latin-1 encoding header values allow) when no ``caproute-*`` header is there yet,
    else ``Headers.update``.
    """
    entries = getattr(headers, "_list", None)
    if isinstance(entries, list) and not any(
        entry[1].startswith(b"caproute-") for entry in entries
    ):
        entries.extend((k.encode(), k.encode(), v.encode("latin-1")) for k, v in values.items())
        return
    headers.update(values)


def _call_headers(headers: Any) -> tuple[str | None, tuple[str, ...], int, str | None]:
    """``anthropic-version`` (as ``headers.get`` gives it), the parsed betas, the SDK's
    ``x-stainless-retry-count`` (0 when absent or not a number) and the
    ``content-encoding`` (`None` when absent, the usual case).

    ``Headers.get`` / ``get_list`` each rescan the list and work out the headers'
    encoding (~1.5 µs together); one pass over the raw entries gives the same strings
    whenever the values found are ASCII (any encoding decodes them alike), which they
    are in practice. Anything else goes through the public API.
    """
    entries = getattr(headers, "_list", None)
    # The layout httpx and httpx2 use: (raw key, lower-cased key, value), all bytes.
    if isinstance(entries, list) and (not entries or isinstance(entries[0][1], bytes)):
        versions: tuple[bytes, ...] = ()  # tuples: usually one version, no beta
        betas: tuple[bytes, ...] = ()
        codings: tuple[bytes, ...] = ()
        retry = b""
        for entry in entries:
            key = entry[1]
            if key == b"anthropic-version":
                versions += (entry[2],)
            elif key == b"anthropic-beta":
                betas += (entry[2],)
            elif key == b"x-stainless-retry-count":
                retry = entry[2]
            elif key == b"content-encoding":
                codings += (entry[2],)
        try:
            # `Headers.get` joins repeated values with ", ".
            version = b", ".join(versions).decode("ascii") if versions else None
            retries = _retry_count(retry.decode("ascii")) if retry else 0
            coding = b", ".join(codings).decode("ascii") if codings else None
            if not betas:
                return version, (), retries, coding
            return version, parse_betas([b.decode("ascii") for b in betas]), retries, coding
        except UnicodeDecodeError:
            pass
    return (
        headers.get("anthropic-version"),
        parse_betas(headers.get_list("anthropic-beta")),
        _retry_count(headers.get("x-stainless-retry-count")),
        headers.get("content-encoding"),
    )


def _retry_count(value: str | None) -> int:
    """The SDK's retry count header as a number (0 when absent or malformed)."""
    return int(value) if value is not None and value.isdigit() else 0


def _close(response: Any) -> None:
    if response is not None:
        response.close()


async def _aclose(response: Any) -> None:
    if response is not None:
        await response.aclose()


def _has_request(response: Any) -> bool:
    try:
        response.request  # noqa: B018 - the property raises when no request is attached
    except RuntimeError:
        return False
    return True


class _SyncRouting(_Routing):
    """The sync driver of the routing flow."""

    def handle_request(self, request: Any) -> Any:
        """Route a Messages request (or pass anything else through) and return the response."""
        endpoint = endpoint_for(request.method, request.url.path)
        if endpoint is None:
            return self._inner.handle_request(request)
        try:
            call, request = self._call(request, endpoint, request.read())
        except BodyRefused as refused:
            return self._refused_body(request, refused)
        if call is None:
            return self._inner.handle_request(request)
        hops = _Hops(request)
        token = None if self._tracing is None else client_tracing.set(self._tracing)
        try:
            return drive(self._router, call, self, hops)
        except BodyRefused as refused:
            _close(hops.response)
            return self._refused_body(request, refused)
        except Exception as exc:
            if hops.in_io:
                raise  # the inner transport's error: the client handles it as always
            _close(hops.response)
            return self._failed(hops, exc)
        finally:
            if token is not None:
                client_tracing.reset(token)

    def _hop(self, hops: _Hops, action: Send) -> tuple[Any, Reply]:
        outgoing = self._outgoing(hops.request, action)
        hops.in_io = True
        hops.response, reply = self._inspect(self._inner.handle_request(outgoing))
        hops.in_io = False
        return hops.response, reply

    def _release(self, response: Any) -> None:
        response.close()  # releases its connection

    def _inspect(self, response: Any) -> tuple[Any, Reply]:
        if response.status_code not in READS_BODY_ON:
            return response, reply_for(response.status_code)
        content = response.read()
        response.close()
        return self._buffered(response, content), Reply(response.status_code, *error_of(content))

    def close(self) -> None:
        """Close the inner transport."""
        self._inner.close()


class _AsyncRouting(_Routing):
    """The async driver of the routing flow (same steps as `_SyncRouting`, awaited)."""

    async def handle_async_request(self, request: Any) -> Any:
        """Route a Messages request (or pass anything else through) and return the response."""
        endpoint = endpoint_for(request.method, request.url.path)
        if endpoint is None:
            return await self._inner.handle_async_request(request)
        try:
            call, request = self._call(request, endpoint, await request.aread())
        except BodyRefused as refused:
            return self._refused_body(request, refused)
        if call is None:
            return await self._inner.handle_async_request(request)
        hops = _Hops(request)
        token = None if self._tracing is None else client_tracing.set(self._tracing)
        try:
            return await drive_async(self._router, call, self, hops)
        except BodyRefused as refused:
            await _aclose(hops.response)
            return self._refused_body(request, refused)
        except Exception as exc:
            if hops.in_io:
                raise  # the inner transport's error: the client handles it as always
            await _aclose(hops.response)
            return self._failed(hops, exc)
        finally:
            if token is not None:
                client_tracing.reset(token)

    async def _hop(self, hops: _Hops, action: Send) -> tuple[Any, Reply]:
        outgoing = self._outgoing(hops.request, action)
        hops.in_io = True
        response = await self._inner.handle_async_request(outgoing)
        hops.response, reply = await self._inspect(response)
        hops.in_io = False
        return hops.response, reply

    async def _release(self, response: Any) -> None:
        await response.aclose()

    async def _inspect(self, response: Any) -> tuple[Any, Reply]:
        if response.status_code not in READS_BODY_ON:
            return response, reply_for(response.status_code)
        content = await response.aread()
        await response.aclose()
        return self._buffered(response, content), Reply(response.status_code, *error_of(content))

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

    def __init__(
        self,
        inner: httpx2.BaseTransport | None = None,
        *,
        router: LiveRouter | None = None,
        registry: RegistryInput = None,
        policy: Policy | str | Path | None = None,
        on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
    ) -> None:
        self._inner = inner if inner is not None else httpx2.HTTPTransport()
        self._router = router_or_live(router, registry, policy, on_decision)


class AsyncRoutingTransport(_AsyncRouting, httpx2.AsyncBaseTransport):
    """The async twin of `RoutingTransport` (inner default: ``httpx2.AsyncHTTPTransport``)."""

    _http = httpx2

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport | None = None,
        *,
        router: LiveRouter | None = None,
        registry: RegistryInput = None,
        policy: Policy | str | Path | None = None,
        on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
    ) -> None:
        self._inner = inner if inner is not None else httpx2.AsyncHTTPTransport()
        self._router = router_or_live(router, registry, policy, on_decision)


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

        def __init__(
            self,
            inner: httpx.BaseTransport | None = None,
            *,
            router: LiveRouter | None = None,
            registry: RegistryInput = None,
            policy: Policy | str | Path | None = None,
            on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
        ) -> None:
            self._inner = inner if inner is not None else httpx.HTTPTransport()
            self._router = router_or_live(router, registry, policy, on_decision)

    class AsyncHttpxRoutingTransport(_AsyncRouting, httpx.AsyncBaseTransport):
        """`AsyncRoutingTransport` for httpx clients."""

        _http = httpx

        def __init__(
            self,
            inner: httpx.AsyncBaseTransport | None = None,
            *,
            router: LiveRouter | None = None,
            registry: RegistryInput = None,
            policy: Policy | str | Path | None = None,
            on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
        ) -> None:
            self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
            self._router = router_or_live(router, registry, policy, on_decision)

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
