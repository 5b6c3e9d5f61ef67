"""`wrap(client)`: the same SDK client, with every Messages request routed.

`wrap` returns ``client.with_options(http_client=routed)``, the SDK's own way to copy
a client with one option changed, so the result has the original's class, methods,
types, retries, timeouts, headers and ``with_options`` (``http_client=`` and
``with_options`` exist on every SDK version, 0.x included), plus the one setting the
SDK's copy drops (``_strict_response_validation``). ``routed`` is a copy of the
client's own HTTP client object (same class, so a subclass's ``send`` still runs; same
settings) whose transport, and each mounted proxy transport, is a routing transport
wrapping the ORIGINAL client's transport. Wrapping instead of rebuilding keeps
everything that lives in the transport: the connection pool (shared with the original
client), the SDK's TCP keep-alive socket options, proxies from the environment, TLS
settings, and any custom transport the caller installed.

Which path: ``via="auto"`` (the default) takes the routing transport. It was chosen by
measured transparency: the SDK's own test suite, run with every client wrapped
(``make test-sdk-suite``, docs/sdk.md), fails fewer tests on the transport path, because
installing any middleware at all (even one that only calls ``call_next``) changes what
the SDK does (a ``cast_to=httpx2.Response`` call returns a 4xx instead of raising, among
others; docs/sdk.md). ``via="middleware"`` takes the SDK middleware (0.108 and later),
which is cheaper for large bodies: it gets the request body as the dict the SDK is
about to serialise, where the transport decodes the JSON it was given (about 1 ms per
2 MB, docs/performance.md). Both add the ``caproute-*`` response headers and report
every decision.

Closing. What `wrap` creates for a client it also releases: when neither `registry`
nor `router` is given, the routed copy gets its own HTTP client (on the middleware
path too) whose transport, once closed, stops the registry fetcher `wrap` made
(``close()``, or ``aclose()`` cancelling a refresh under way) and the router's own
fetcher. So ``routed.close()``, ``with routed:`` and ``async with routed:`` end the
background refreshes. A fetcher or router the caller passed in is never touched: it
may serve other clients.

`routed_http_client` / `routed_async_http_client` hand out routed clients with the
SDK's defaults for libraries that take an HTTP client.
"""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import httpx2

from .._http.transports import AsyncRoutingTransport, RoutingTransport, httpx_transport_classes
from .._registry import policy_files as _policy_io
from .._runtime.live import DecisionHook, LiveRouter, RegistryInput, router_or_live
from .._runtime.otel import ClientTracing
from .frameworks import Framework, framework_of

if TYPE_CHECKING:
    from .._core.policy import Policy

__all__ = ["routed_async_http_client", "routed_http_client", "wrap"]

ClientT = TypeVar("ClientT")

Flavour = Literal["httpx2", "httpx"]

# The SDK's defaults (anthropic `_constants.py`), used for clients we create from scratch.
_DEFAULT_TIMEOUT_S = 600.0
_DEFAULT_CONNECT_TIMEOUT_S = 5.0
_DEFAULT_MAX_CONNECTIONS = 1000
_DEFAULT_MAX_KEEPALIVE = 100


def wrap(
    client: ClientT,
    *,
    policy: Policy | str | Path | None = None,
    registry: RegistryInput = None,
    on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
    router: LiveRouter | None = None,
    via: Literal["auto", "transport", "middleware"] = "auto",
) -> ClientT:
    """A copy of an ``anthropic.Anthropic`` / ``AsyncAnthropic`` client that routes requests.

    Args:
        client: The SDK client (any ``anthropic`` ≥ 0.108, sync or async). It is not
            modified and keeps working unrouted.
        policy: A `Policy`, a policy file path, or `None` for the defaults.
        registry: A `Registry` or a registry fetcher. Default: a fetcher reading
            ``GET /v1/models`` from the client's own base URL with its credentials
            (starting from the offline snapshot, refreshed in the background).
        on_decision: Hook(s) receiving every `Decision`.
        router: A shared `LiveRouter` instead of `policy` / `registry` / `on_decision`.
        via: ``"auto"`` (default: the transport, the path the SDK's own test suite
            finds most transparent), ``"transport"`` (a routing transport under the client's
            HTTP client) or ``"middleware"`` (the SDK middleware).

    Returns:
        A client of the same class: same methods, types, retries, timeouts and
        ``with_options``. ``client.messages.with_raw_response.create(...)`` exposes the
        ``caproute-*`` headers.

    Raises:
        TypeError: `client` is not an anthropic SDK client.
    """
    # Framework objects first: they are recognised by class name without importing
    # anything, and ChatAnthropic has a `_client` of its own (an SDK client).
    framework = framework_of(client)
    if framework is not None:
        return _wrap_framework(client, framework, policy, registry, on_decision, router, via)
    http_client = getattr(client, "_client", None)
    with_options = getattr(client, "with_options", None)
    if http_client is None or with_options is None:
        raise TypeError(
            "expected an anthropic.Anthropic or AsyncAnthropic client, a LangChain "
            f"ChatAnthropic or a pydantic-ai AnthropicProvider / AnthropicModel, got {client!r}"
        )
    is_async = _is_async(http_client)
    made: Any = None
    owns_router = router is None and registry is None
    if owns_router:
        registry = made = _fetcher_for(client, is_async=is_async)
    live = router_or_live(router, registry, policy, on_decision)
    _policy_io.log_policy_warnings(policy, live.policy, None if owns_router else registry)
    if via == "auto":
        via = "transport"  # the measured most transparent path (module docstring)
    if via not in ("middleware", "transport"):
        raise ValueError(f"via must be 'auto', 'transport' or 'middleware', not {via!r}")
    # What wrap chose (a fetcher for this client, the router) ends with the routed copy.
    release = _release_for(live, made, is_async=is_async) if owns_router else None
    tracing = _client_tracing(client)
    bare = client
    if via == "middleware":
        from .._http.middleware import client_middleware

        routing = client_middleware(live, _client_api_version(client), tracing)
        if release is not None:
            client = with_options(http_client=_client_copy(http_client, None, release))
        routed_client: ClientT = client.with_middleware(routing)  # type: ignore[attr-defined]
        if not _requests_carry_client_headers(routed_client):
            # SDK 0.x / 1.x: middleware can't see the client's default headers, so the
            # copies of this client must get a middleware for their own version.
            routed_client.__class__ = _version_following_class(cast(Any, type(routed_client)))
    else:
        copy = _client_copy(http_client, live, release, tracing)
        routed_client = with_options(http_client=copy)
    _keep_strict_validation(routed_client, bare)
    return routed_client


def _keep_strict_validation(routed: Any, client: Any) -> None:
    """Carry ``_strict_response_validation`` over to the routed copy.

    The SDK's ``copy()`` / ``with_options()`` don't pass it on (it is a constructor
    argument only), so a client built with ``_strict_response_validation=True`` would
    silently stop raising ``APIResponseValidationError`` once wrapped.
    """
    strict = getattr(client, "_strict_response_validation", None)
    if isinstance(strict, bool):
        routed._strict_response_validation = strict


def _requests_carry_client_headers(client: Any) -> bool:
    """Whether the SDK hands middleware the client's default headers merged into
    ``APIRequest.headers`` (anthropic 2.17 and later: ``_add_client_headers``)."""
    return callable(getattr(client, "_add_client_headers", None))


@functools.cache
def _version_following_class(cls: Any) -> type[Any]:
    """A subclass of an SDK client class (made once per class) whose ``copy`` /
    ``with_options`` (and so ``with_middleware``) give copies whose routing middleware
    knows *their* default ``anthropic-version``.

    For SDKs whose middleware can't see the client's default headers (before 2.17):
    `wrap` hands the middleware the version read once from the client, and a copy made
    with ``with_options(default_headers={"anthropic-version": ...})`` would keep that
    middleware, routing for the old version (a 1.x client moved to 2026-10-21 would keep
    its ``temperature`` and get a 400). The copy gets a middleware for its own version
    (the same router) in the same place in the chain. A method on a class, not a
    closure on the instance: ``inspect.signature`` and ``vars()`` stay the SDK's.
    """
    sdk_copy = cls.copy

    @functools.wraps(sdk_copy)
    def copy(self: Any, *args: Any, **kwargs: Any) -> Any:
        new = sdk_copy(self, *args, **kwargs)
        version = _client_api_version(new)
        chain = tuple(getattr(new, "middleware", ()))
        if any(_stale_routing(entry, version) for entry in chain):
            from .._http.middleware import client_middleware

            new = sdk_copy(new, middleware=[
                client_middleware(e.router, version, e.tracing) if _stale_routing(e, version) else e
                for e in chain
            ])  # fmt: skip
        return new

    namespace = {"copy": copy, "with_options": copy, "__module__": cls.__module__,
                 "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}  # fmt: skip
    return type(cls.__name__, (cls,), namespace)


def _stale_routing(entry: Any, version: str | None) -> bool:
    """A routing middleware `wrap` made, for another ``anthropic-version`` than `version`."""
    return bool(getattr(entry, "follows_client", False)) and entry.api_version != version


def _release_for(live: LiveRouter, made: Any, *, is_async: bool) -> Callable[[], Any]:
    """Stops what `wrap` created for one client: the fetcher it made (if any) and the
    fetcher the router made from the environment (`LiveRouter.close`).

    For an async client it returns a coroutine function: `AsyncRegistryFetcher.aclose`
    also cancels a refresh under way.
    """
    if is_async:

        async def release_async() -> None:
            try:
                if made is not None:
                    await made.aclose()
            finally:
                live.close()

        return release_async

    def release() -> None:
        try:
            if made is not None:
                made.close()
        finally:
            live.close()

    return release


def _wrap_framework(
    obj: ClientT,
    framework: Framework,
    policy: Policy | str | Path | None,
    registry: RegistryInput,
    on_decision: DecisionHook | Sequence[DecisionHook] | None,
    router: LiveRouter | None,
    via: Literal["auto", "transport", "middleware"],
) -> ClientT:
    """A routed copy of a framework object: its anthropic client(s) wrapped.

    One router serves every client inside the copy (LangChain's sync and async
    clients), so what one learns (a retired model, a refreshed registry) the other
    uses; a registry fetcher, unless given, reads the client's own endpoint.
    """
    routed: Any
    if framework == "langchain":
        from . import langchain

        sync_client, _ = langchain.sdk_clients(obj)
        if router is None and registry is None:
            registry = _fetcher_for(sync_client, is_async=False)
        live = router_or_live(router, registry, policy, on_decision)
        routed = langchain.routed_copy(obj, lambda c: wrap(c, router=live, via=via))
        return cast(ClientT, routed)

    from . import pydantic_ai

    def route_client(client: Any) -> Any:
        return wrap(client, policy=policy, registry=registry, on_decision=on_decision,
                    router=router, via=via)  # fmt: skip

    if framework == "pydantic_ai_provider":
        routed = pydantic_ai.routed_provider(obj, route_client)
    else:
        routed = pydantic_ai.routed_model(obj, route_client)
    return cast(ClientT, routed)


def _client_api_version(client: Any) -> str | None:
    """The ``anthropic-version`` the client sends by default.

    Middleware before SDK 2.17 sees only per-call headers, so the version a client was
    configured with is read here once: the client's own header settings
    (``default_headers=`` / profile headers), else `None` (the SDK generation's
    default, which `middleware()` knows). Not ``client.default_headers``: that property
    also runs the SDK's platform detection, synchronously (on the event loop for an
    async client), which the SDK itself defers; and it holds the credentials.
    """
    for attribute in ("_custom_headers", "_credential_headers"):
        headers = getattr(client, attribute, None)
        if not isinstance(headers, Mapping):
            continue
        for name, value in headers.items():
            if isinstance(name, str) and name.lower() == "anthropic-version":
                return value if isinstance(value, str) else None
    return None


def _client_tracing(client: Any) -> ClientTracing:
    """What the client's ``open_telemetry`` option (anthropic 2.x) says: whether it
    traces (``False`` turns its spans off). SDKs without the option: tracing on."""
    options = getattr(client, "_open_telemetry", None)
    if not isinstance(options, Mapping):
        return ClientTracing(enabled=True)
    traces = options.get("traces")
    enabled = not (isinstance(traces, Mapping) and traces.get("enabled") is False)
    return ClientTracing(enabled)


def routed_copy(http_client: Any, router: LiveRouter) -> Any:
    """A client like `http_client` (httpx2 or httpx, sync or async) whose transports route.

    The copy shares the original's transports (and so its connection pool) and keeps a
    reference to the original, so the original being garbage-collected, whose SDK
    wrapper closes it in ``__del__``, never pulls the pool from under the copy.
    """
    return _client_copy(http_client, router, None)


def _client_copy(
    http_client: Any,
    router: LiveRouter | None,
    release: Callable[[], Any] | None,
    tracing: ClientTracing | None = None,
) -> Any:
    """`routed_copy` (no routing when `router` is None: the middleware routes), whose
    closing also calls `release` (once) after closing the transports; the routing
    transports annotate spans as the SDK client's `tracing` says."""
    module = _module_of(http_client)
    is_async = isinstance(http_client, module.AsyncClient)
    wrap_transport: Callable[[Any], Any] = (
        (lambda inner: inner)
        if router is None
        else _transport_factory(module, is_async, router, tracing)
    )
    transport = wrap_transport(http_client._transport)
    if release is not None:
        transport = _releasing_classes(module)[is_async](transport, release)
    # A copy of the object itself, not a new `Client`: a subclass's own behaviour (an
    # overridden `send`, attributes its `__init__` set) is kept, and no constructor
    # signature is assumed. Only what must not be shared is replaced.
    copy = object.__new__(_copy_class(cast(Any, type(http_client))))
    copy.__dict__.update(http_client.__dict__)
    copy._transport = transport
    copy._mounts = {
        pattern: None if mounted is None else wrap_transport(mounted)
        for pattern, mounted in http_client._mounts.items()
    }
    copy._headers = http_client.headers.copy()
    copy._cookies = module.Cookies(http_client.cookies)
    copy._event_hooks = {name: list(hooks) for name, hooks in http_client.event_hooks.items()}
    copy._caproute_original = http_client
    return copy


@functools.cache
def _copy_class(cls: Any) -> type[Any]:
    """`cls`, or for a class that closes itself when garbage-collected (the SDK's
    ``SyncHttpxClientWrapper`` / ``AsyncHttpxClientWrapper``) a subclass that doesn't.

    The copy shares the original's transports: collecting the routed SDK client must not
    close the pool the original client still uses (dropping a ``with_options`` copy of
    an SDK client closes nothing either). ``close()`` still closes it, as the SDK's does.
    """
    if getattr(cls, "__del__", None) is None:
        return cast("type[Any]", cls)
    namespace = {"__del__": _keep_open, "__module__": cls.__module__,
                 "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}  # fmt: skip
    return type(cls.__name__, (cls,), namespace)


def _keep_open(self: Any) -> None:
    """Collected: close nothing (see `_copy_class`)."""


class _ReleaseOnClose:
    """The routed copy's own transport: sends through `inner`; closing it closes `inner`,
    then calls `release` (once), which stops what `wrap` created for the client.

    The HTTP client closes its transport on ``close()``/``aclose()`` and on ``with``
    exit, which is what the SDK client's ``close()`` and ``with`` exit call.
    """

    def __init__(self, inner: Any, release: Callable[[], Any]) -> None:
        self._inner = inner
        self._release: Callable[[], Any] | None = release

    def _take_release(self) -> Callable[[], Any] | None:
        release, self._release = self._release, None
        return release


class _Releasing(_ReleaseOnClose):
    """The sync transport of `_ReleaseOnClose`."""

    def handle_request(self, request: Any) -> Any:
        """Send through the inner transport."""
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Close the inner transport, then release (once)."""
        try:
            self._inner.close()
        finally:
            if (release := self._take_release()) is not None:
                release()


class _AsyncReleasing(_ReleaseOnClose):
    """The async transport of `_ReleaseOnClose` (`release` is a coroutine function)."""

    async def handle_async_request(self, request: Any) -> Any:
        """Send through the inner transport."""
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the inner transport, then release (once)."""
        try:
            await self._inner.aclose()
        finally:
            if (release := self._take_release()) is not None:
                await cast("Callable[[], Awaitable[None]]", release)()


@functools.cache
def _releasing_classes(module: Any) -> tuple[type[Any], type[Any]]:
    """(sync, async) `_Releasing` transports of `module` (httpx2, or httpx for SDK 0.x)."""
    sync_cls = type("ReleasingTransport", (_Releasing, module.BaseTransport), {})
    async_cls = type("AsyncReleasingTransport", (_AsyncReleasing, module.AsyncBaseTransport), {})
    return sync_cls, async_cls


def routed_http_client(
    *,
    policy: Policy | str | Path | None = None,
    registry: RegistryInput = None,
    on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
    router: LiveRouter | None = None,
    flavour: Flavour = "httpx2",
    **client_options: Any,
) -> Any:
    """A new sync HTTP client (``httpx2.Client``, or ``httpx.Client`` with ``flavour="httpx"``)
    that routes Messages requests, with the anthropic SDK's defaults.

    Defaults, as the SDK's ``DefaultHttpxClient``: timeout 600 s (connect 5 s), 1000
    connections / 100 keep-alive, redirects followed, TCP keep-alive probes. Transport
    options (``verify``, ``cert``, ``http1``, ``http2``, ``limits``, ``trust_env``) go
    to the inner transport, everything else to the client.

    Example:
        >>> anthropic.Anthropic(http_client=routed_http_client(policy="routing.yaml"))
    """
    return _new_client(
        flavour, False, router_or_live(router, registry, policy, on_decision), client_options
    )


def routed_async_http_client(
    *,
    policy: Policy | str | Path | None = None,
    registry: RegistryInput = None,
    on_decision: DecisionHook | Sequence[DecisionHook] | None = None,
    router: LiveRouter | None = None,
    flavour: Flavour = "httpx2",
    **client_options: Any,
) -> Any:
    """The async twin of `routed_http_client` (``httpx2.AsyncClient`` / ``httpx.AsyncClient``)."""
    return _new_client(
        flavour, True, router_or_live(router, registry, policy, on_decision), client_options
    )


def _fetcher_for(client: Any, *, is_async: bool) -> Any:
    """A registry fetcher talking to the client's own API endpoint with its credentials.

    Refreshes then read the same lineup the client's requests go to (a gateway, a
    regional endpoint, a test server). Without credentials there is nothing to fetch
    with, and the offline registry is used.
    """
    api_key = getattr(client, "api_key", None)
    auth_token = getattr(client, "auth_token", None)
    if not (isinstance(api_key, str) and api_key) and not (
        isinstance(auth_token, str) and auth_token
    ):
        return None
    from .._registry.fetch import AsyncRegistryFetcher, RegistryFetcher

    http_client = client._client
    # Lend the fetcher the client's transport (its pool, proxies, TLS settings) when it
    # is an httpx2 one; the fetcher's own short-lived clients add the fetch timeout.
    transport: Any = None
    if _module_of(http_client) is httpx2:
        lent = _LentAsyncTransport if is_async else _LentTransport
        transport = lent(http_client._transport)
    options: dict[str, Any] = {
        "api_key": api_key if isinstance(api_key, str) else None,
        "auth_token": auth_token if isinstance(auth_token, str) else None,
        "base_url": str(client.base_url),
        "transport": transport,
    }
    return AsyncRegistryFetcher(**options) if is_async else RegistryFetcher(**options)


class _LentTransport(httpx2.BaseTransport):
    """Another client's transport, lent out: closing the borrower leaves it open.

    The registry fetcher closes the client it makes after every fetch; closing the
    transport itself would close the connection pool the SDK client is still using.
    """

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send through the lent transport."""
        return self._inner.handle_request(request)


class _LentAsyncTransport(httpx2.AsyncBaseTransport):
    """The async twin of `_LentTransport`."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send through the lent transport."""
        return await self._inner.handle_async_request(request)


def _is_async(http_client: Any) -> bool:
    return bool(isinstance(http_client, _module_of(http_client).AsyncClient))


def _module_of(http_client: Any) -> Any:
    if isinstance(http_client, httpx2.Client | httpx2.AsyncClient):
        return httpx2
    httpx = sys.modules.get("httpx")  # not imported: then it can't be an httpx client
    if httpx is not None and isinstance(http_client, httpx.Client | httpx.AsyncClient):
        return httpx
    raise TypeError(f"expected an httpx2 or httpx client, got {type(http_client).__name__}")


def _transport_factory(
    module: Any, is_async: bool, router: LiveRouter, tracing: ClientTracing | None = None
) -> Any:
    if module is httpx2:
        cls: Any = AsyncRoutingTransport if is_async else RoutingTransport
    else:
        sync_cls, async_cls = httpx_transport_classes()
        cls = async_cls if is_async else sync_cls

    def make(inner: Any) -> Any:
        transport = cls(inner, router=router)
        transport._tracing = tracing
        return transport

    return make


def _keepalive_socket_options() -> list[tuple[int, int, int]]:
    # The SDK's DefaultHttpxClient sets these so idle connections behind NATs and load
    # balancers are probed instead of silently dropped.
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5), ("TCP_KEEPIDLE", 60)):
        if (flag := getattr(socket, name, None)) is not None:
            options.append((socket.IPPROTO_TCP, flag, value))
    return options


def _new_client(
    flavour: Flavour, is_async: bool, router: LiveRouter, options: dict[str, Any]
) -> Any:
    if flavour == "httpx2":
        module: Any = httpx2
    elif flavour == "httpx":
        import httpx

        module = httpx
    else:
        raise ValueError(f"flavour must be 'httpx2' or 'httpx', not {flavour!r}")
    transport_options: dict[str, Any] = {
        key: options.pop(key)
        for key in ("verify", "cert", "http1", "http2", "limits", "trust_env")
        if key in options
    }
    transport_options.setdefault(
        "limits",
        module.Limits(
            max_connections=_DEFAULT_MAX_CONNECTIONS,
            max_keepalive_connections=_DEFAULT_MAX_KEEPALIVE,
        ),
    )
    transport_options["socket_options"] = _keepalive_socket_options()
    options.setdefault(
        "timeout", module.Timeout(_DEFAULT_TIMEOUT_S, connect=_DEFAULT_CONNECT_TIMEOUT_S)
    )
    options.setdefault("follow_redirects", True)
    inner_cls = module.AsyncHTTPTransport if is_async else module.HTTPTransport
    transport = _transport_factory(module, is_async, router)(inner_cls(**transport_options))
    client_cls = module.AsyncClient if is_async else module.Client
    return client_cls(transport=transport, **options)
