"""The anthropic SDK middleware: routing inside the SDK's own request pipeline.

The SDK (``anthropic`` ≥ 0.108, including 1.x and 2.x) runs client-level middleware
once per HTTP attempt, inside its retry loop, with an ``APIRequest`` whose JSON body is
already a dict, and hands back the raw ``APIResponse`` even for 4xx/5xx. That makes it
a natural place to route: no body parsing, no HTTP library in sight (it works the same
on 0.x, built on httpx, and on 1.x/2.x, built on httpx2). Measured on SDK 2.14
(docs/performance.md), an empty SDK middleware is nearly free, so this path costs what
routing costs, like the transport, minus the transport's JSON decode of the body.

Routing, refusing and delivering are the shared adapter's (`caproute._runtime.drive`);
this module only translates the SDK's objects to and from it:

* the call: ``APIRequest.json`` (merged with 0.x's ``extra_body``) and its headers;
  a caller's ``caproute-*`` request headers are dropped (set to the SDK's ``Omit``);
* sending: forward the ORIGINAL ``APIRequest`` object when routing changed nothing,
  else ``request.copy(body=routed)``, through ``call_next``;
* a local answer (a refusal, an error in routing): raise the SDK's own error for it
  (``BadRequestError``, or the class its ``error_code`` names, as the SDK would) over a
  synthetic response shaped like the API's, so callers get the error they already
  handle and nothing goes upstream;
* the delivered response carries the ``caproute-*`` headers and
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, NoReturn, TypeVar

from .._core.wire import CAPROUTE_PREFIX, endpoint_for, parse_betas
from .._runtime import drive as adapter
from .._runtime.live import DecisionHook, LiveRouter, RegistryInput, router_or_live
from .._runtime.otel import ClientTracing

if TYPE_CHECKING:
    import anthropic
    from anthropic import APIRequest, APIResponse, AsyncAPIResponse, AsyncCallNext, CallNext

    from .._core.policy import Policy

# `RoutingMiddleware` is built on first access (module `__getattr__`), hence the noqa.
__all__ = ["RoutingMiddleware", "middleware"]  # noqa: F822

_CallNextT = TypeVar("_CallNextT")

# Every API version before 2026-10-21 is 2023-06-01; SDKs older than 2.0 send it.
_LEGACY_API_VERSION: Final = "2023-06-01"

# The SDK's error class for the answers caproute gives itself (by name: the SDK is
# imported only when a middleware is made). An ``error_code`` class the installed SDK
# lacks falls back to the status's, which is what that SDK raises for it too.
_ERROR_CODE_CLASSES: Final = {
    "organization_url_fetch_disabled": "OrganizationURLFetchDisabledError"
}
_STATUS_CLASSES: Final = {400: "BadRequestError", 500: "InternalServerError"}


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


class _Driver(NamedTuple):
    """Translates the SDK's ``APIRequest`` / ``APIResponse`` to and from `adapter.drive`.

    An error in routing itself (a caproute bug; a body nested deeper than the stack)
    never escapes as a raw exception: the caller gets the SDK's own API error, with
    ``x-should-retry: false`` (the same body would fail the same way again), and the
    traceback goes to the ``caproute`` logger. Errors of sending (``call_next``) pass
    through untouched, as without caproute.
    """

    router: LiveRouter
    api_version: str
    """The ``anthropic-version`` of a call that sets none."""
    tracing: ClientTracing | None = None
    """The client's tracing settings, when `wrap` knows the client (else defaults)."""
    client_version: str | None = None
    """The client's configured ``anthropic-version`` (`wrap`'s middleware only)."""

    @property
    def follows_client(self) -> bool:
        """Made by `wrap` for a client: a copy of it gets one for its own version."""
        return self.tracing is not None

    def handle(self, request: APIRequest, call_next: CallNext) -> APIResponse[Any]:
        request = _without_caproute_headers(request)
        call = self._call(request)
        if call is None:
            return call_next(request)
        return adapter.drive(self.router, call, _SYNC_SHELL, (request, call_next), self.tracing)

    async def handle_async(
        self, request: APIRequest, call_next: AsyncCallNext
    ) -> AsyncAPIResponse[Any]:
        request = _without_caproute_headers(request)
        call = self._call(request)
        if call is None:
            return await call_next(request)
        return await adapter.drive_async(
            self.router, call, _ASYNC_SHELL, (request, call_next), self.tracing
        )

    def _call(self, request: APIRequest) -> adapter.ParsedCall | None:
        """The call to route, or `None` for a request to pass through untouched."""
        try:
            return self._parsed(request)
        except Exception as exc:  # a caproute bug: the SDK's error, API-shaped
            _raise_local(request, adapter.local_answer(self.router, exc, self.tracing))

    def _parsed(self, request: APIRequest) -> adapter.ParsedCall | None:
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
            adapter.report_passthrough(
                self.router, "the request body is not a JSON object", self.tracing
            )
            return None
        headers = _plain_headers(request.headers)
        betas = headers.get("anthropic-beta")
        return adapter.ParsedCall(  # positional: keyword arguments cost more on this hot path
            body,
            endpoint,
            headers.get("anthropic-version", self.api_version),
            parse_betas([betas]) if betas else (),
            headers,
            getattr(request, "retries_taken", 0),
        )


_Exchange = tuple["APIRequest", _CallNextT]
"""What `adapter.drive` hands the shells: the request and the rest of the SDK's chain."""


class _Shell:
    """What both shells share: a local answer is the SDK's error, raised."""

    def answer(self, exchange: _Exchange[Any], local: adapter.Local) -> NoReturn:
        _raise_local(exchange[0], local)


class _SyncShell(_Shell):
    """The IO of `adapter.drive` for a sync client: ``call_next`` sends, the SDK's objects carry."""

    def send(self, exchange: _Exchange[CallNext], action: adapter.Forward) -> adapter.Sent:
        sent = _sent(exchange[1](_outgoing(exchange[0], action)))
        if sent.status in adapter.READS_BODY_ON and sent.response is not None:
            return sent._replace(content=sent.response.read())
        return sent


class _AsyncShell(_Shell):
    """The IO of `adapter.drive_async` for an async client."""

    async def send(
        self, exchange: _Exchange[AsyncCallNext], action: adapter.Forward
    ) -> adapter.Sent:
        sent = _sent(await exchange[1](_outgoing(exchange[0], action)))
        if sent.status in adapter.READS_BODY_ON and sent.response is not None:
            return sent._replace(content=await sent.response.aread())
        return sent


def _sent(response: Any) -> adapter.Sent:
    """What `adapter.drive` reads of the SDK's answer, body not read yet."""
    # Another middleware further in may answer with an already-parsed value instead of
    # an ``APIResponse``; there is no status to react to then: a success.
    http_response = getattr(response, "http_response", None)
    if http_response is None:
        return adapter.Sent(response, None, 200, None)
    return adapter.Sent(response, http_response, http_response.status_code, None)


_SYNC_SHELL: Final = _SyncShell()
_ASYNC_SHELL: Final = _AsyncShell()


def _without_caproute_headers(request: APIRequest) -> APIRequest:
    """`request`, minus any ``caproute-*`` header the caller set: those are caproute's
    own names (its response headers, the proxy's controls) and never go upstream.

    A header set to the SDK's ``Omit`` is removed from what the client merges in too.
    """
    headers = request.headers
    for name in headers:  # a loop, not a comprehension: no extra frame per request
        if name.lower().startswith(CAPROUTE_PREFIX):
            break
    else:
        return request
    import anthropic

    own = [name for name in headers if name.lower().startswith(CAPROUTE_PREFIX)]

    return request.copy(headers={**headers, **dict.fromkeys(own, anthropic.Omit())})


def _body_of(request: APIRequest) -> Any:
    """The JSON body the SDK will send: ``request.json`` plus 0.x's unmerged ``extra_body``."""
    body = request.json
    extra = request.options.extra_json
    if extra is None:  # always on SDK 2.x, which merged it before the chain
        return body
    if body is None:
        return _without_omitted(extra)
    if isinstance(body, Mapping):
        # The SDK's own merge (`_merge_mappings`): shallow, `extra_body` wins, `Omit` drops.
        return _without_omitted({**body, **extra})
    return body


def _without_omitted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    import anthropic

    return {k: v for k, v in mapping.items() if not isinstance(v, anthropic.Omit)}


def _plain_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """The call's own headers, lower-cased, without the SDK's ``Omit`` markers."""
    return {k.lower(): v for k, v in headers.items() if isinstance(v, str)}


def _outgoing(request: APIRequest, send: adapter.Forward) -> APIRequest:
    """The request for `send`: the caller's own object when routing changed nothing.

    Raises:
        adapter.Unsent: Building the routed copy failed (caproute's error: nothing was sent).
    """
    if not send.changed:
        # The SDK merges any 0.x `extra_body` itself, exactly as we did to route it.
        return request
    try:
        routed = request.copy(body=send.body)
    except Exception as exc:
        raise adapter.Unsent from exc
    if routed.options.extra_json is not None:
        # SDK 0.x only (docs/architecture.md, "other libraries' internals"): `send.body`
        # already contains the merged `extra_body`; merging it again would bring back
        # the values routing changed or removed, and no public API drops it.
        routed.options.extra_json = None
    return routed


def _raise_local(request: APIRequest, local: adapter.Local) -> NoReturn:
    """Raise what the SDK raises for an API error answer, built from caproute's own.

    We build the SDK's error over a synthetic response of the SDK's HTTP library
    (httpx for 0.x, httpx2 for 1.x/2.x), with the ``caproute-*`` headers. Raising
    (rather than returning a response) needs no SDK client object, and the SDK passes
    a non-retryable ``APIStatusError`` from middleware straight to the caller. The
    class is the one the SDK raises for that answer (`_sdk_error_class`).
    """
    http = _sdk_http_module()
    response = adapter.local_response(http, http.Request(request.method, request.url), local)
    body = json.loads(local.content)
    error_class = _sdk_error_class(local.status, body)
    raise error_class(f"Error code: {local.status} - {body}", response=response, body=body)


def _sdk_error_class(status: int, body: Any) -> type[anthropic.APIStatusError]:
    """The SDK's class for an error answer: by ``error.details.error_code`` where the
    installed SDK has a class for it (2.x: ``OrganizationURLFetchDisabledError``), else
    by status, as the SDK's own ``APIStatusError`` mapping does for caproute's answers."""
    import anthropic

    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    code = details.get("error_code") if isinstance(details, dict) else None
    named = getattr(anthropic, _ERROR_CODE_CLASSES.get(code, ""), None) if code else None
    if isinstance(named, type) and issubclass(named, anthropic.APIStatusError):
        return named
    return getattr(anthropic, _STATUS_CLASSES.get(status, "APIStatusError"))  # type: ignore[no-any-return]


@functools.cache
def _sdk_http_module() -> ModuleType:
    """httpx2 for SDK 1.x/2.x, httpx for 0.x: the library of the SDK's own HTTP client."""
    import anthropic
    import httpx2

    # The public `DefaultHttpxClient` is a `Client` of whichever library the SDK uses.
    if issubclass(anthropic.DefaultHttpxClient, httpx2.Client):
        return httpx2
    import httpx

    return httpx


@functools.cache
def _sdk_default_api_version() -> str:
    """The ``anthropic-version`` the installed SDK sends by default.

    Read from the SDK's private ``_constants`` (docs/architecture.md, "other libraries'
    internals"): the public way, a client's ``default_headers``, builds an HTTP client
    and runs the SDK's platform detection, ~0.2 s (~0.9 s the first time) at `wrap` /
    `middleware()` time, blocking, where the SDK itself defers it to the first request.
    """
    from anthropic import _constants

    # SDK 2.x names it (2026-10-21); 0.x and 1.x hard-code 2023-06-01 in the client.
    version = getattr(_constants, "ANTHROPIC_API_VERSION", _LEGACY_API_VERSION)
    return str(version)
