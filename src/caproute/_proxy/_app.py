"""The proxy as a pure ASGI application: forward, route, stream back, count.

One `ProxyApp` serves every connection of one process. Per request it:

1. answers ``/caproute/*`` itself (`caproute._proxy._admin`: health, registry,
   metrics, and who may read them); the ``--admin-listen`` address serves nothing else;
2. reads and checks the request (`caproute._proxy._inbound`: header count, local
   token, body size and deadline, JSON budget, upstream target) into the upstream
   request;
3. picks the transport: in pass-through mode the caller's own router (its
   credential's registry, see `caproute._proxy._callers`), in own-key mode the
   proxy's; a ``caproute-route`` / ``caproute-bypass`` header (when enabled) picks a
   route or no routing;
4. hands the request straight to that router's async routing transport (no
   ``httpx2.AsyncClient`` in between, see `ProxyApp._send_upstream`): Messages
   endpoints are routed, the rest passes through. The routing decision comes back
   with the answer (``response.extensions["caproute_decision"]``), nowhere else;
5. streams the answer back (`caproute._proxy._relay`), watching for the caller
   leaving, and then abandons the upstream request at once;
6. counts the outcome (`caproute._proxy._metrics`) and writes one access-log line
   (`caproute._proxy._logging`).

Why no framework: the proxy needs three ASGI messages and nothing a router or
request object would add, and pure ASGI keeps the overhead per request small (the
target is under a millisecond added at p50, see ``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx2

from .._runtime.live import LiveRouter
from ._admin import PREFIX, AdminEndpoints
from ._asgi import Message, Receive, Scope, Send
from ._callers import CallerRegistries, RouterSet, lend
from ._config import ProxyConfig
from ._exchange import ClientGone, Exchange, LocalAnswer
from ._inbound import Inbound, RequestReader, announces_body
from ._logging import log_access
from ._metrics import ProxyMetrics
from ._relay import cancelled_if_caller_leaves, cut_short, relay
from ._reload import FileWatcher
from ._responses import send_error

logger = logging.getLogger("caproute.proxy")


class ProxyApp:
    """The ASGI application behind `caproute serve` (build it with `create_proxy_app`).

    Args:
        config: What to forward where, limits and timeouts.
        routes: The proxy's own router and routing transport: every request in
            own-key mode, requests without a usable credential in pass-through mode.
            Its registry and policy are what ``/caproute/health`` and
            ``/caproute/registry`` report.
        inner: The transport under the routing layer (what ``caproute-bypass`` uses).
        callers: Pass-through mode: the per-caller registries and routers.
        policy_watcher: Reloads the policy file, if one is configured.
        registry_watcher: Re-reads a shared snapshot file, if one is configured.
        metrics: The counters to update (default: new ones).
        on_close: Called by `aclose()` (e.g. to stop the registry fetcher).
        clock: Monotonic seconds (latencies).
    """

    def __init__(
        self,
        config: ProxyConfig,
        *,
        routes: RouterSet,
        inner: httpx2.AsyncBaseTransport,
        callers: CallerRegistries | None = None,
        policy_watcher: FileWatcher | None = None,
        registry_watcher: FileWatcher | None = None,
        metrics: ProxyMetrics | None = None,
        on_close: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config
        self.routes = routes
        self.callers = callers
        self.metrics = metrics or ProxyMetrics()
        self.policy_watcher = policy_watcher
        self.registry_watcher = registry_watcher
        self._inner = inner
        self._on_close = on_close
        self._clock = clock
        self._reader = RequestReader(config)
        self.admin = AdminEndpoints(
            config,
            router=lambda: self.router,
            callers=callers,
            policy_watcher=policy_watcher,
            registry_watcher=registry_watcher,
            metrics=self.metrics,
        )
        # Metrics label models only with names of the lineup every caller may see.
        self.metrics.lineup = lambda: self.router.registry

    @property
    def router(self) -> LiveRouter:
        """The proxy's own router (own-key mode; the shared registry in pass-through mode)."""
        return self.routes.router

    def health(self) -> dict[str, Any]:
        """What ``/caproute/health`` answers: ``ok`` or ``degraded`` with the reasons."""
        return self.admin.health()

    # -- ASGI entry point -----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (``http`` or ``lifespan``)."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets: the Anthropic API has none
            await send({"type": "websocket.close", "code": 1003})

    async def aclose(self) -> None:
        """Close the upstream transport and its connections."""
        if self.callers is not None:
            await self.callers.aclose()
        await self._inner.aclose()
        if self._on_close is not None:
            self._on_close()

    # -- lifespan: background tasks -------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        from ._signals import sighup_handler

        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with anyio.create_task_group() as tasks:
            for watcher in (self.policy_watcher, self.registry_watcher):
                if watcher is not None:
                    tasks.start_soon(watcher.run)
            with sighup_handler(self._on_sighup):
                await send({"type": "lifespan.startup.complete"})
                message = await receive()  # lifespan.shutdown, after in-flight requests
            tasks.cancel_scope.cancel()
        await self.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    def _on_sighup(self) -> None:
        logger.info("SIGHUP: reloading")
        if self.policy_watcher is not None:
            self.policy_watcher.reload()
        if self.registry_watcher is not None:
            self.registry_watcher.reload()

    # -- one HTTP request -----------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        clock = self._clock
        exchange = Exchange(scope["method"], scope["path"], clock())

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.headers_sent_at = clock()
            await send(message)

        metrics = self.metrics
        metrics.started()
        try:
            # Told by the local port the connection was accepted on.
            port = self.admin.admin_port
            admin = port is not None and (scope.get("server") or (None, None))[1] == port
            if exchange.path.startswith(PREFIX):
                await self.admin.answer(scope, send_and_record, admin=admin)
            elif admin:
                raise LocalAnswer(
                    404,
                    "not_found_error",
                    "the admin address serves only /caproute/* (send API requests to "
                    "the main port)",
                )
            else:
                await self._forward(scope, receive, send, exchange)
        except LocalAnswer as answer:
            if answer.limit is not None:
                metrics.record_limit(answer.limit)
            # An answer before the body was read (a wrong token, a POST to a local
            # endpoint) closes the connection: the unread body, or with `Expect:
            # 100-continue` its absence, would otherwise be read as the next request.
            unread = not exchange.body_read and announces_body(scope["headers"])
            await send_error(
                send_and_record,
                answer.status,
                answer.error_type,
                answer.message,
                close=answer.close or unread,
            )
        except ClientGone:
            exchange.disconnected = True
        except asyncio.CancelledError:
            # Nothing cancels a request's task but the server when the shutdown drain
            # (--shutdown-timeout) runs out: end the request the way an API client
            # understands, not with a traceback and a silently cut stream.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await cut_short(exchange, send_and_record)
        finally:
            exchange.settle()
            metrics.ended(exchange)
            log_access(exchange, clock())

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, exchange: Exchange
    ) -> None:
        """Read, route and send the request upstream, and relay the answer (which records
        in `exchange` when its headers went out, as `send_and_record` does elsewhere)."""
        inbound = await self._reader.read(scope, receive, exchange)
        transport = await self._transport_for(scope, inbound, exchange)
        with cancelled_if_caller_leaves(receive, exchange):
            credential, exchange.credential = exchange.credential, None
            with lend(credential):
                del credential
                response = await self._send_upstream(transport, inbound.request, exchange)
            try:
                decision = response.extensions.get("caproute_decision")
                exchange.decision = decision
                if exchange.outcome != "bypassed":
                    exchange.outcome = decision.outcome if decision else "forwarded"
                await relay(response, send, exchange, self.config, self._clock)
            finally:
                await response.aclose()

    async def _transport_for(self, scope: Scope, inbound: Inbound, exchange: Exchange) -> Any:
        """The transport for this request: bypass, a forced route, the caller's or ours.

        Only a routed request needs the caller's registry: the Models, Files or
        batch-retrieval APIs pass through without fetching (and waiting for) one.
        """
        if inbound.bypass and self.config.allow_bypass:
            exchange.outcome = "bypassed"
            return self._inner
        routes = self.routes
        callers = self.callers
        if callers is not None and inbound.routed:
            caller = await callers.routes_for(scope["headers"])
            if caller is not None:
                exchange.credential = caller.credential
                if caller.fetched:  # entries come and go only with a new caller or a
                    self.metrics.caller_registries.set(len(callers))  # refused key
                exchange.registry = caller.source
                routes = caller.routes
        route = inbound.route
        if route is not None and self.config.allow_route_header:
            try:
                return routes.for_route(route)
            except KeyError:
                names = [r.name for r in routes.router.policy.routes]
                from .._core.yaml_text import suggest as _suggest

                raise LocalAnswer(
                    400,
                    "invalid_request_error",
                    f"caproute-route: the policy has no route {route!r}{_suggest(route, names)}",
                ) from None
        return routes.transport

    async def _send_upstream(
        self, transport: Any, request: httpx2.Request, exchange: Exchange
    ) -> httpx2.Response:
        """Hand the request to the routing transport directly.

        ``httpx2.AsyncClient.send`` would add nothing the proxy wants and cost 10-20 µs per
        request: auth flows, redirects (off), event hooks, URL merging, and a cookie
        jar storing whatever cookies upstream answers set (never sent again, but state
        shared by every caller, which a proxy has no use for). Its other jobs are
        done here: the timeouts travel in the request's extensions and the request
        carries only the headers built from the caller's. (Without a client, nothing
        reads proxy variables or ``.netrc`` from the environment either, which the
        client had to be told not to do: the configuration alone decides where
        requests go and what they carry.)

        No answer means no decision came back: the models are read from the request
        and from what was being sent (`CappedErrorBodies` gives its request to the
        error), for the metrics and the access line.
        """
        try:
            response: httpx2.Response = await transport.handle_async_request(request)
        except httpx2.TransportError as exc:
            exchange.outcome = "failed"
            exchange.requested_model = _model_of(request)
            exchange.sent_model = _model_of(_request_of(exc)) or exchange.requested_model
            if isinstance(exc, httpx2.TimeoutException):
                self.metrics.record_upstream_error("timeout")
                raise LocalAnswer(504, "timeout_error", "upstream did not answer in time") from None
            self.metrics.record_upstream_error("unreachable")
            logger.warning("upstream unreachable: %s", type(exc).__name__)
            raise LocalAnswer(502, "api_error", "upstream unreachable") from None
        return response


def _request_of(error: httpx2.TransportError) -> httpx2.Request | None:
    try:
        return error.request
    except RuntimeError:  # no request attached
        return None


def _model_of(request: httpx2.Request | None) -> str | None:
    """The ``model`` a Messages request body names (the failure path only)."""
    if request is None or not request.url.path.endswith(("/messages", "/count_tokens")):
        return None
    try:
        model = json.loads(request.content).get("model")
    except (ValueError, AttributeError, httpx2.RequestNotRead):
        return None
    return model if isinstance(model, str) else None
