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

Private names it relies on, each because there is no public way (checked loudly by
tests/integration/test_wrap_sdk_internals.py; HTTP-client ones in `http_clients`):
``client._client`` (the HTTP client the SDK sends with: its transport is what gets
wrapped), ``_strict_response_validation`` (the SDK's copy drops it), ``_custom_headers``
/ ``_credential_headers`` (the configured ``anthropic-version``; the public
``default_headers`` runs platform detection), ``_open_telemetry`` (the client's
``open_telemetry=False``), ``_add_client_headers`` (whether middleware sees the default
headers, anthropic 2.17+).

`routed_http_client` / `routed_async_http_client` (in `http_clients`, named here too)
hand out routed clients with the SDK's defaults for libraries that take an HTTP client.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import httpx2

from .._registry import policy_files as _policy_io
from .._runtime.live import DecisionHook, LiveRouter, RegistryInput, router_or_live
from .._runtime.otel import ClientTracing
from .frameworks import Framework, framework_of
from .http_clients import (
    client_copy,
    is_async_client,
    module_of,
    routed_async_http_client,
    routed_http_client,
)

if TYPE_CHECKING:
    from .._core.policy import Policy

__all__ = ["routed_async_http_client", "routed_http_client", "wrap"]

ClientT = TypeVar("ClientT")


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
    is_async = is_async_client(http_client)
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
            client = with_options(http_client=client_copy(http_client, None, release))
        routed_client: ClientT = client.with_middleware(routing)  # type: ignore[attr-defined]
        if not _requests_carry_client_headers(routed_client):
            # SDK 0.x / 1.x: middleware can't see the client's default headers, so the
            # copies of this client must get a middleware for their own version.
            routed_client.__class__ = _version_following_class(cast(Any, type(routed_client)))
    else:
        copy = client_copy(http_client, live, release, tracing)
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
    if module_of(http_client) is httpx2:
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
