"""Routing transports for httpx2 (the SDK 1.x/2.x stack) and httpx (SDK 0.x and others).

A transport sits under an HTTP client and sees every request it sends, after the
client has built it (headers, timeouts) and before any socket is touched; wrapping the
client's own transport keeps its connection pool, proxies and keep-alive settings.
`RoutingTransport` / `AsyncRoutingTransport` wrap an inner transport and:

* route ``POST …/v1/messages``, ``…/v1/messages/count_tokens`` and
  ``…/v1/messages/batches`` (each ``requests[].params``) through a `LiveRouter` and
  the response-driven flow of `caproute._flow`;
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
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import httpx2

from ._core.decision import Decision
from ._flow import (
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
from ._live import DecisionHook, LiveRouter, RegistryInput, router_or_live

if TYPE_CHECKING:
    import httpx

    from ._core.policy import Policy

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


class _Routing:
    """The request/response plumbing shared by every flavour and both drivers."""

    _http: ModuleType  # httpx2 or httpx: the module whose Request/Response we build
    _inner: Any
    _router: LiveRouter

    @property
    def router(self) -> LiveRouter:
        """The router deciding for this transport (a `LiveRouter` unless you passed one)."""
        return self._router

    def _call(self, request: Any, endpoint: Any, content: bytes) -> Call | None:
        """The parsed call, or `None` (after reporting a passthrough) if not a JSON object."""
        try:
            # JSON request bodies are UTF-8 (RFC 8259 §8.1): decoding directly skips
            # json's encoding sniffing; anything else still gets json's own detection.
            body = _loads_text(content.decode())
        except UnicodeDecodeError:
            body = _loads_or_none(content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._router.report(passthrough("the request body is not a JSON object"))
            return None
        headers = request.headers
        api_version, betas, retry = _call_headers(headers)
        return Call(body, endpoint, api_version, betas, headers, retry)

    def _outgoing(self, request: Any, send: Send) -> Any:
        """The request to send for `send`: the original one when nothing changed."""
        if not send.changed:
            return request
        content = json.dumps(send.body, separators=(",", ":")).encode()
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

    def _refuse(self, request: Any, decision: Decision) -> Any:
        """The local API-shaped 400 for a request the policy rejects."""
        headers = {
            "content-type": "application/json",
            # Retrying cannot change the policy's verdict; tell the SDK not to.
            "x-should-retry": "false",
            **decision.header_values(),
        }
        return self._http.Response(
            400,
            headers=headers,
            content=refusal_body(decision),
            request=request,
            extensions={"caproute_decision": decision},
        )

    def _deliver(self, response: Any, decision: Decision) -> Any:
        """`response` with the decision attached (``caproute-*`` headers, extension)."""
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


def _call_headers(headers: Any) -> tuple[str | None, tuple[str, ...], int]:
    """``anthropic-version`` (as ``headers.get`` gives it), the parsed betas and the SDK's
    ``x-stainless-retry-count`` (0 when absent or not a number).

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
        retry = b""
        for entry in entries:
            key = entry[1]
            if key == b"anthropic-version":
                versions += (entry[2],)
            elif key == b"anthropic-beta":
                betas += (entry[2],)
            elif key == b"x-stainless-retry-count":
                retry = entry[2]
        try:
            # `Headers.get` joins repeated values with ", ".
            version = b", ".join(versions).decode("ascii") if versions else None
            retries = _retry_count(retry.decode("ascii")) if retry else 0
            if not betas:
                return version, (), retries
            return version, parse_betas([b.decode("ascii") for b in betas]), retries
        except UnicodeDecodeError:
            pass
    return (
        headers.get("anthropic-version"),
        parse_betas(headers.get_list("anthropic-beta")),
        _retry_count(headers.get("x-stainless-retry-count")),
    )


def _retry_count(value: str | None) -> int:
    """The SDK's retry count header as a number (0 when absent or malformed)."""
    return int(value) if value is not None and value.isdigit() else 0


# What `json.loads`'s default decoder scans with, unwrapped (typeshed omits the attribute).
_SCAN_ONCE: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads_text(text: str) -> Any:
    """``json.loads(text)``, about 1 µs sooner for a body without surrounding whitespace.

    `json.loads` reaches the C scanner through three Python frames and two whitespace
    regex matches; a body the SDK serialised starts at its first character and ends at
    its last, so the scanner is called directly. Anything else (leading or trailing
    whitespace, trailing data, invalid JSON) goes through `json.loads` itself, which
    gives the same value or raises the same error as before.
    """
    try:
        value, end = _SCAN_ONCE(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


def _loads_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


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
        call = self._call(request, endpoint, request.read())
        if call is None:
            return self._inner.handle_request(request)
        return drive(self._router, call, self, request)

    def _hop(self, request: Any, action: Send) -> tuple[Any, Reply]:
        return self._inspect(self._inner.handle_request(self._outgoing(request, action)))

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
        call = self._call(request, endpoint, await request.aread())
        if call is None:
            return await self._inner.handle_async_request(request)
        return await drive_async(self._router, call, self, request)

    async def _hop(self, request: Any, action: Send) -> tuple[Any, Reply]:
        response = await self._inner.handle_async_request(self._outgoing(request, action))
        return await self._inspect(response)

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
