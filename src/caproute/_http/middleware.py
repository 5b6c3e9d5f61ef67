"""The anthropic SDK middleware: routing inside the SDK's own request pipeline.

The SDK (``anthropic`` ≥ 0.108, including 1.x and 2.x) runs client-level middleware
once per HTTP attempt, inside its retry loop, with an ``APIRequest`` whose JSON body is
already a dict, and hands back the raw ``APIResponse`` even for 4xx/5xx. That makes it
a natural place to route: no body parsing, no HTTP library in sight (it works the same
on 0.x, built on httpx, and on 1.x/2.x, built on httpx2). Measured on SDK 2.14
(docs/performance.md), an empty SDK middleware is nearly free, so this path costs what
routing costs, like the transport, minus the transport's JSON decode of the body.

The decision loop is `caproute._runtime.drive.routing_flow` (shared with the transports); this
module only drives it with the SDK's objects:

* ``Send``: forward the request, the ORIGINAL ``APIRequest`` object when routing
  changed nothing, else ``request.copy(body=routed)``;
* ``Refresh``: refresh the registry (awaited in ``handle_async``);
* ``Refuse``: raise the SDK's own ``BadRequestError`` over a synthetic 400 shaped like
  the API's, so callers get the error they already handle and nothing goes upstream;
* the last response gets the ``caproute-*`` headers and
  ``http_response.extensions["caproute_decision"]``; callers reach them through
  ``client.messages.with_raw_response.create(...)``, parsed calls through the
  ``on_decision`` hook.

The client's *default* headers: anthropic 2.17 and later merge them into
``APIRequest.headers`` before the chain, so the client's ``anthropic-version`` and
default betas are seen. Older SDKs merge them after the chain; there the
``anthropic-version`` is the request's own header if the call set one, else the value
given to `middleware(api_version=...)` (`wrap` reads the client's), else the version
the installed SDK sends by default, and betas in the client's ``default_headers`` are
not seen.

SDK 0.x keeps ``extra_body`` out of ``APIRequest.json`` (it merges it while building
the HTTP request, after the middleware), whereas 2.x merges it before. Fields passed
that way are routed too: the body routed here is the merge, done as the SDK does it.

``anthropic`` is imported only when a middleware is created (`middleware()`), so
``import caproute`` stays light; `RoutingMiddleware` is built on first access.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Generic, NoReturn, TypeVar

from .._core.body import error_body, internal_error_message, refused_decision
from .._core.decision import Decision
from .._core.secrets import redact_decision
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
    import anthropic
    from anthropic import APIRequest, APIResponse, AsyncAPIResponse
    from anthropic._middleware import AsyncCallNext, CallNext

    from .._core.policy import Policy

# `RoutingMiddleware` is built on first access (module `__getattr__`), hence the noqa.
__all__ = ["RoutingMiddleware", "middleware"]  # noqa: F822

_ResponseT = TypeVar("_ResponseT")
_CallNextT = TypeVar("_CallNextT")

_logger = protect(logging.getLogger("caproute"))

# Every API version before 2026-10-21 is 2023-06-01; SDKs older than 2.0 send it.
_LEGACY_API_VERSION: Final = "2023-06-01"


def middleware(
    *,
    policy: Policy | str | Path | None = None,
    registry: RegistryInput = None,
    on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
    router: LiveRouter | None = None,
    api_version: str | None = None,
) -> anthropic.Middleware:
    """A caproute middleware for ``anthropic.Anthropic`` / ``AsyncAnthropic`` (SDK ≥ 0.108).

    Works with sync and async clients alike::

        client = anthropic.Anthropic(middleware=[caproute.middleware(policy="routing.yaml")])
        client = existing.with_middleware(caproute.middleware())

    Args:
        policy: A `Policy`, a policy file path, or `None` for the defaults.
        registry: A `Registry` or a registry fetcher (default: the best offline snapshot).
        on_decision: Hook(s) receiving every `Decision` (the way to see decisions of
            parsed calls such as ``client.messages.create(...)``).
        router: A shared `LiveRouter` instead of `policy` / `registry` / `on_decision`.
        api_version: The ``anthropic-version`` the client sends when a call sets none.
            Default: the installed SDK's default. Set it when the client overrides the
            version in ``default_headers``, which middleware cannot see.

    Returns:
        A `RoutingMiddleware` (an ``anthropic.Middleware``).

    Raises:
        TypeError: Both `router` and `policy` / `registry` / `on_decision` were given.
        ImportError: The anthropic SDK is not installed.
    """
    router = router_or_live(router, registry, policy, on_decision)
    driver = _Driver(router, api_version or _sdk_default_api_version())
    return _middleware_class()(driver)


def client_middleware(
    router: LiveRouter, api_version: str | None, tracing: ClientTracing | None
) -> anthropic.Middleware:
    """The middleware `wrap` installs on a client it knows: `api_version` is the one the
    client was configured with (`None`: the SDK's default), `tracing` its
    ``open_telemetry`` option; copies of the client re-make it for their own version
    (``follows_client``)."""
    driver = _Driver(router, api_version or _sdk_default_api_version(), tracing, api_version)
    return _middleware_class()(driver)


def __getattr__(name: str) -> Any:
    # `RoutingMiddleware` subclasses `anthropic.Middleware`, so it is built on first use.
    if name == "RoutingMiddleware":
        return _middleware_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _middleware_class() -> Callable[[_Driver], anthropic.Middleware]:
    import anthropic

    class RoutingMiddleware(anthropic.Middleware):
        """Routes every Messages request of the client it is installed on.

        Create it with `caproute.middleware(...)`. It implements both ``handle`` (sync
        clients) and ``handle_async`` (async clients), so one instance serves both.
        """

        def __init__(self, driver: _Driver) -> None:
            self._driver = driver

        @property
        def router(self) -> LiveRouter:
            """The router deciding for this middleware."""
            return self._driver.router

        @property
        def follows_client(self) -> bool:
            """Made by `wrap` for a client: a copy of it gets one for its own version."""
            return self._driver.follows_client

        @property
        def api_version(self) -> str | None:
            """The client's configured ``anthropic-version`` (`wrap`'s middleware only)."""
            return self._driver.client_version

        @property
        def tracing(self) -> ClientTracing | None:
            """The client's tracing settings (`wrap`'s middleware only)."""
            return self._driver.tracing

        def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[Any]:
            """Route `request`, send it (and any response-driven hops) via `call_next`."""
            return self._driver.handle(request, call_next)

        async def handle_async(
            self, request: APIRequest, call_next: AsyncCallNext
        ) -> AsyncAPIResponse[Any]:
            """The async twin of `handle`."""
            return await self._driver.handle_async(request, call_next)

        def __repr__(self) -> str:
            return f"RoutingMiddleware({self._driver.router!r})"

    RoutingMiddleware.__module__ = __name__
    return RoutingMiddleware


class _Hop(Generic[_CallNextT]):
    """One call's state while `drive` runs it: what the shells send with, and whether
    an exception comes from sending (the SDK's to handle) or from caproute itself."""

    __slots__ = ("request", "call_next", "in_io", "answered")

    def __init__(self, request: APIRequest, call_next: _CallNextT) -> None:
        self.request = request
        self.call_next = call_next
        self.in_io = False
        self.answered = False
        """caproute raised its own API error (a refusal): let it through as it is."""


class _Driver:
    """Drives the routing flow with the SDK's ``APIRequest`` / ``APIResponse``.

    An error in routing itself (a caproute bug; a body nested deeper than the stack)
    never escapes as a raw exception: the caller gets the SDK's own API error, with
    ``x-should-retry: false`` (the same body would fail the same way again), and the
    traceback goes to the ``caproute`` logger. Errors of sending (``call_next``) pass
    through untouched, as without caproute.
    """

    def __init__(
        self,
        router: LiveRouter,
        api_version: str,
        tracing: ClientTracing | None = None,
        client_version: str | None = None,
    ) -> None:
        self.router = router
        self._api_version = api_version
        self.tracing = tracing
        """The client's tracing settings, when `wrap` knows the client (else defaults)."""
        self.follows_client = tracing is not None
        self.client_version = client_version

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[Any]:
        token = None if self.tracing is None else client_tracing.set(self.tracing)
        try:
            call = self._guarded_call(request)
            if call is None:
                return call_next(request)
            hop = _Hop(request, call_next)
            try:
                return drive(self.router, call, _SyncShell(), hop)
            except Exception as exc:
                if hop.in_io or hop.answered:
                    raise
                self._fail(request, exc)
        finally:
            if token is not None:
                client_tracing.reset(token)

    async def handle_async(
        self, request: APIRequest, call_next: AsyncCallNext
    ) -> AsyncAPIResponse[Any]:
        token = None if self.tracing is None else client_tracing.set(self.tracing)
        try:
            call = self._guarded_call(request)
            if call is None:
                return await call_next(request)
            hop = _Hop(request, call_next)
            try:
                return await drive_async(self.router, call, _AsyncShell(), hop)
            except Exception as exc:
                if hop.in_io or hop.answered:
                    raise
                self._fail(request, exc)
        finally:
            if token is not None:
                client_tracing.reset(token)

    def _guarded_call(self, request: APIRequest) -> Call | None:
        try:
            return self._call(request)
        except Exception as exc:
            self._fail(request, exc)

    def _fail(self, request: APIRequest, exc: Exception) -> NoReturn:
        _logger.error(
            "caproute: routing failed with %s; nothing sent upstream",
            type(exc).__name__,
            exc_info=exc,
        )
        message = internal_error_message(exc)
        decision = refused_decision(message)
        self.router.report(decision)
        if isinstance(exc, RecursionError):
            _raise_local(request, 400, error_body("invalid_request_error", message), decision)
        _raise_local(request, 500, error_body("api_error", message), decision)

    def _call(self, request: APIRequest) -> Call | None:
        """The call to route, or `None` for a request to pass through untouched."""
        # The SDK's `url` is the path (``/v1/messages``, 0.x beta calls add ``?beta=true``),
        # or a full URL if the caller gave one; both end with the endpoint's path.
        options = request.options  # every `APIRequest` property reads it: read it once
        url = options.url
        path = url.partition("?")[0] if "?" in url else url
        endpoint = endpoint_for(options.method.upper(), path)
        if endpoint is None:
            return None
        body = _body_of(request)
        if not isinstance(body, dict):
            self.router.report(passthrough("the request body is not a JSON object"))
            return None
        headers = _plain_headers(request.headers)
        betas = headers.get("anthropic-beta")
        return Call(  # positional: keyword arguments cost more on this hot path
            body,
            endpoint,
            headers.get("anthropic-version", self._api_version),
            parse_betas([betas]) if betas else (),
            headers,
            getattr(request, "retries_taken", 0),
        )


class _SyncShell:
    """The IO of `drive` for a sync client: ``call_next`` sends, the SDK's objects carry."""

    def _hop(self, hop: _Hop[CallNext], action: Send) -> tuple[Any, Reply]:
        outgoing = _outgoing(hop.request, action)
        hop.in_io = True
        response = hop.call_next(outgoing)
        reply = _reply(response)
        hop.in_io = False
        return response, reply

    def _release(self, response: Any) -> None:
        _http_response(response).close()

    def _refuse(self, hop: _Hop[CallNext], decision: Decision) -> NoReturn:
        hop.answered = True
        _refuse(hop.request, decision)

    def _deliver(self, response: Any, decision: Decision) -> Any:
        return _deliver(response, decision)


class _AsyncShell:
    """The IO of `drive_async` for an async client."""

    async def _hop(self, hop: _Hop[AsyncCallNext], action: Send) -> tuple[Any, Reply]:
        outgoing = _outgoing(hop.request, action)
        hop.in_io = True
        response = await hop.call_next(outgoing)
        reply = await _areply(response)
        hop.in_io = False
        return response, reply

    async def _release(self, response: Any) -> None:
        await _http_response(response).aclose()

    def _refuse(self, hop: _Hop[AsyncCallNext], decision: Decision) -> NoReturn:
        hop.answered = True
        _refuse(hop.request, decision)

    def _deliver(self, response: Any, decision: Decision) -> Any:
        return _deliver(response, decision)


def _body_of(request: APIRequest) -> Any:
    """The JSON body the SDK will send: ``request.json`` plus 0.x's unmerged ``extra_body``."""
    body = request.json
    extra = request.options.extra_json
    if extra is None:
        return body
    if body is None:
        return _without_omitted(extra)
    if isinstance(body, Mapping):
        # The SDK's own merge (`_merge_mappings`): shallow, `extra_body` wins, `Omit` drops.
        return _without_omitted({**body, **extra})
    return body


def _without_omitted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    from anthropic._types import Omit

    return {k: v for k, v in mapping.items() if not isinstance(v, Omit)}


def _plain_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """The call's own headers, lower-cased, without the SDK's ``Omit`` markers."""
    return {k.lower(): v for k, v in headers.items() if isinstance(v, str)}


def _outgoing(request: APIRequest, send: Send) -> APIRequest:
    """The request for `send`: the caller's own object when routing changed nothing."""
    if not send.changed:
        # The SDK merges any 0.x `extra_body` itself, exactly as we did to route it.
        return request
    routed = request.copy(body=send.body)
    # `send.body` already contains the merged `extra_body`; merging it again would
    # bring back the values routing changed or removed.
    routed.options.extra_json = None
    return routed


def _http_response(response: Any) -> Any:
    """The httpx / httpx2 response inside an SDK ``APIResponse``."""
    return response.http_response


def _status(response: Any) -> int:
    # Another middleware further in may answer with an already-parsed value instead of
    # an ``APIResponse``; there is no status to react to then: treat it as a success.
    http_response = getattr(response, "http_response", None)
    return 200 if http_response is None else int(http_response.status_code)


def _reply(response: Any) -> Reply:
    """What the flow needs to know; the body is read only for the statuses it inspects."""
    # `_status`, inlined: this runs for every routed response.
    http_response: Any = getattr(response, "http_response", None)
    status = 200 if http_response is None else int(http_response.status_code)
    if status not in READS_BODY_ON:
        return reply_for(status)
    return Reply(status, *error_of(http_response.read()))


async def _areply(response: Any) -> Reply:
    status = _status(response)
    if status not in READS_BODY_ON:
        return reply_for(status)
    return Reply(status, *error_of(await _http_response(response).aread()))


def _deliver(response: _ResponseT, decision: Decision) -> _ResponseT:
    """Attach the decision to the response the SDK gets back."""
    http_response = getattr(response, "http_response", None)
    if http_response is not None:
        decision = redact_decision(decision)  # itself, unless it quotes a key
        headers = http_response.headers
        if not append_decision_headers(headers, decision_header_entries(decision)):
            # Item by item: `Headers.update` first builds a whole `Headers` of the new
            # ones, which doubles the cost.
            for name, value in decision.header_values().items():
                headers[name] = value
        # Copy rather than mutate: a transport may hand out a shared or read-only mapping.
        http_response.extensions = {**http_response.extensions, "caproute_decision": decision}
    return response


def _refuse(request: APIRequest, decision: Decision) -> NoReturn:
    """Raise what the SDK raises for an API 400, built from caproute's local answer.

    The SDK turns an error response into ``BadRequestError(f"Error code: 400 - {body}",
    response=..., body=...)``; we build the same over a synthetic response of the SDK's
    HTTP library (httpx for 0.x, httpx2 for 1.x/2.x), with the ``caproute-*`` headers.
    Raising (rather than returning a response) needs no SDK client object, and the SDK
    passes a non-retryable ``APIStatusError`` from middleware straight to the caller.
    """
    decision = redact_decision(decision)
    _raise_local(request, 400, refusal_body(decision), decision)


def _raise_local(request: APIRequest, status: int, content: bytes, decision: Decision) -> NoReturn:
    """Raise the SDK's error for `status` over a local API-shaped answer (see `_refuse`)."""
    import anthropic

    decision = redact_decision(decision)
    http = _sdk_http_module()
    headers = {
        "content-type": "application/json",
        "x-should-retry": "false",  # caproute's verdict will not change on a retry
        **decision.header_values(),
    }
    response = http.Response(
        status,
        headers=headers,
        content=content,
        request=http.Request(request.method, request.url),
        extensions={"caproute_decision": decision},
    )
    body = json.loads(content)
    error_class = anthropic.BadRequestError if status == 400 else anthropic.InternalServerError
    raise error_class(f"Error code: {status} - {body}", response=response, body=body)


@functools.cache
def _sdk_http_module() -> ModuleType:
    """httpx2 for SDK 1.x/2.x, httpx for 0.x: the library of the SDK's own HTTP client."""
    import importlib

    import anthropic

    # The public `DefaultHttpxClient` is a `Client` of whichever library the SDK uses.
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if issubclass(anthropic.DefaultHttpxClient, module.Client):
            return module
    raise TypeError("anthropic.DefaultHttpxClient is neither an httpx2 nor an httpx Client")


@functools.cache
def _sdk_default_api_version() -> str:
    """The ``anthropic-version`` the installed SDK sends by default."""
    from anthropic import _constants

    # SDK 2.x names it (2026-10-21); 0.x and 1.x hard-code 2023-06-01 in the client.
    version = getattr(_constants, "ANTHROPIC_API_VERSION", _LEGACY_API_VERSION)
    return str(version)
