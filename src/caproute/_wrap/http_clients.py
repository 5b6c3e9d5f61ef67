"""The HTTP client objects `wrap` makes: a routed copy of a client's own HTTP client,
and new routed HTTP clients with the anthropic SDK's defaults.

`client_copy` copies the object itself (same class, so a subclass's ``send`` still runs;
same settings) and replaces only what must not be shared: the transport and each
mounted proxy transport become routing transports around the ORIGINAL ones (the pool,
socket options, proxies, TLS settings and any custom transport are kept), and the
headers, cookies and event hooks become copies, set through the client's public
setters. httpx2 (httpx for SDK 0.x) takes transports and mounts only in its
constructor and exposes neither, so ``_transport`` / ``_mounts`` are read and set
directly (tests/integration/test_wrap_sdk_internals.py checks them loudly).
"""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import httpx2

from .._http.transports import AsyncRoutingTransport, RoutingTransport, httpx_transport_classes
from .._runtime.live import DecisionHook, LiveRouter, RegistryInput, router_or_live
from .._runtime.otel import ClientTracing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._core.policy import Policy

__all__ = [
    "client_copy",
    "is_async_client",
    "module_of",
    "routed_async_http_client",
    "routed_copy",
    "routed_http_client",
]

Flavour = Literal["httpx2", "httpx"]

# The SDK's defaults (anthropic `_constants.py`), used for clients we create from scratch.
_DEFAULT_TIMEOUT_S = 600.0
_DEFAULT_CONNECT_TIMEOUT_S = 5.0
_DEFAULT_MAX_CONNECTIONS = 1000
_DEFAULT_MAX_KEEPALIVE = 100


def routed_copy(http_client: Any, router: LiveRouter) -> Any:
    """A client like `http_client` (httpx2 or httpx, sync or async) whose transports route.

    The copy shares the original's transports (and so its connection pool) and keeps a
    reference to the original, so the original being garbage-collected, whose SDK
    wrapper closes it in ``__del__``, never pulls the pool from under the copy.
    """
    return client_copy(http_client, router, None)


def client_copy(
    http_client: Any,
    router: LiveRouter | None,
    release: Callable[[], Any] | None,
    tracing: ClientTracing | None = None,
) -> Any:
    """`routed_copy` (no routing when `router` is None: the middleware routes), whose
    closing also calls `release` (once) after closing the transports; the routing
    transports annotate spans as the SDK client's `tracing` says."""
    module = module_of(http_client)
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
    # Headers, cookies and event hooks as copies, through the client's public setters
    # (each builds a new object), so changing them on one client leaves the other alone.
    copy.headers = http_client.headers
    for name in copy.headers.keys() - http_client.headers.keys():
        del copy.headers[name]  # a default the caller had removed stays removed
    copy.cookies = http_client.cookies
    copy.event_hooks = http_client.event_hooks
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


def is_async_client(http_client: Any) -> bool:
    return bool(isinstance(http_client, module_of(http_client).AsyncClient))


def module_of(http_client: Any) -> Any:
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
