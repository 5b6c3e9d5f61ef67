"""The proxy as a pure ASGI application: forward, route, stream back, count.

One `ProxyApp` serves every connection of one process. Per request it:

1. answers ``/caproute/*`` itself (health, registry, metrics): on the
   ``--admin-listen`` address only, and with the ``--admin-token`` only, when set
   (health's bare status stays public for probes); the admin address serves nothing
   else;
2. refuses more headers than ``max_header_count`` (431; the httptools server refuses
   them earlier, this covers the h11 fallback), then, in own-key mode, checks the
   caller's local token (constant time) → 401 otherwise;
3. reads the body with a size cap (checked as bytes arrive, and up front from
   ``Content-Length``) and a deadline → 413 / 408 API-shaped errors; a routed body
   with more JSON values than ``max_json_values`` is 413 before it is parsed;
4. builds the upstream request from the *configured* upstream plus the request's
   path and query; the ``Host`` header and an absolute-form target are ignored, so
   the proxy can't be made to relay anywhere else;
5. picks the router: in pass-through mode the caller's own (its credential's
   registry, see `caproute._proxy._callers`), in own-key mode the proxy's; a
   ``caproute-route`` / ``caproute-bypass`` header (when enabled) picks a route or
   no routing;
6. hands the request straight to that router's async routing transport (no
   ``httpx2.AsyncClient`` in between, see `ProxyApp._send_upstream`): Messages
   endpoints are routed (``caproute-*`` headers come back), the rest passes through;
7. streams the answer back unbuffered, raw bytes as the upstream encoded them,
   reading token usage on the way; from sending to the last byte it watches for the
   caller leaving, and then abandons the upstream request at once;
8. counts the outcome and writes one access-log line.

Why no framework: the proxy needs three ASGI messages and nothing a router or
request object would add, and pure ASGI keeps the overhead per request small (the
target is under a millisecond added at p50, see ``docs/performance.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx2

from .._core import body as _body
from .._core.decision import Decision
from .._core.secrets import mask_known
from .._runtime.drive import endpoint_for
from .._runtime.live import LiveRouter
from .._version import __version__
from ._asgi import Message, Receive, Scope, Send
from ._callers import CallerRegistries, Credential, RouterSet, lend, presented_credential
from ._config import ProxyConfig
from ._headers import (
    Headers,
    controls,
    downstream_response_headers,
    presented_token,
    token_matches,
    upstream_request_headers,
)
from ._limits import UnreadErrorBody, json_values_over_async, with_body
from ._logging import ACCESS_FIELDS, CUT_ON_PURPOSE
from ._metrics import ProxyMetrics
from ._reload import FileWatcher
from ._responses import send_bytes, send_error, send_json, sse_error_event
from ._usage import UsageMeter

access_logger = logging.getLogger("caproute.access")
logger = logging.getLogger("caproute.proxy")

LOCAL_PREFIX = "/caproute/"
_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")


class _LocalAnswer(Exception):
    """The proxy answers the request itself with an API-shaped error."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        close: bool = False,
        limit: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.close = close
        self.limit = limit
        """The resource limit that refused the request, if one did (metrics)."""


class _ClientGone(Exception):
    """The caller disconnected; there is nobody left to answer."""


@dataclass(slots=True)
class _Exchange:
    """What one request did: filled in as it goes, read by metrics and the access log."""

    method: str
    path: str
    started: float
    status: int = 0
    outcome: str = "local"
    decision: Decision | None = None
    headers_sent_at: float | None = None
    body_expected: int | None = None
    """The response's ``Content-Length``, when it has one."""
    body_sent: int = 0
    body_read: bool = False
    """The request body was read to its end."""
    finished: bool = False
    """The last response message went out."""
    disconnected: bool = False
    """The server reported the caller gone (possibly after it had everything)."""
    upstream_broke: bool = False
    cut: str | None = None
    """Why the proxy ended the request itself (``shutdown``: the drain ran out)."""
    appendable_sse: bool = False
    """The answer under way is a plain event stream an ``error`` event can close."""
    last_chunk: bytes = b"\n\n"
    """The last body chunk sent (does it end an event?)."""
    registry: str | None = None
    """Pass-through mode: ``caller`` or ``shared (why)``, the registry routed on."""
    credential: Credential | None = None
    """The caller's credential, lent to its registry's refreshes for this request only."""
    tokens: dict[str, int] | None = None
    """Token usage the answer reported."""
    request_id: str | None = None
    """The upstream's ``request-id`` (what Anthropic support asks for), if it sent one."""

    @property
    def client_gone(self) -> bool:
        """The caller left before the response was complete."""
        if not self.disconnected or self.finished:
            return False
        # With a Content-Length the caller may close as soon as it has every byte,
        # while the proxy still waits for the upstream's end of stream: not a dropout.
        return self.body_expected is None or self.body_sent < self.body_expected


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
        # What `httpx2.AsyncClient` would attach to every request (see `_send_upstream`);
        # httpcore reads these per request, and without them it would wait forever.
        self._timeouts = httpx2.Timeout(
            connect=config.connect_timeout,
            read=config.read_timeout,
            write=config.read_timeout,
            pool=config.connect_timeout,
        ).as_dict()
        self._upstream = httpx2.URL(config.upstream_base)
        self._upstream_path = self._upstream.raw_path.split(b"?", 1)[0].rstrip(b"/")
        # Parsing a URL costs tens of µs and nearly every request targets one of a few
        # paths (/v1/messages above all); URLs are immutable, so they can be shared.
        self._upstream_url = functools.lru_cache(maxsize=512)(self._build_upstream_url)
        self._token = config.require_token.encode() if config.require_token else None
        self._admin_token = config.admin_token.encode() if config.admin_token else None
        admin = config.admin_address
        self._admin_port = admin[1] if admin is not None else None
        self._started_at = time.time()
        # Metrics label models only with names of the lineup every caller may see.
        self.metrics.lineup = lambda: self.router.registry

    @property
    def router(self) -> LiveRouter:
        """The proxy's own router (own-key mode; the shared registry in pass-through mode)."""
        return self.routes.router

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
        exchange = _Exchange(scope["method"], scope["path"], self._clock())

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.headers_sent_at = self._clock()
            await send(message)

        self.metrics.started()
        try:
            admin = self._on_admin_listener(scope)
            if exchange.path.startswith(LOCAL_PREFIX):
                await self._local(exchange, send_and_record, scope, admin=admin)
            elif admin:
                raise _LocalAnswer(
                    404,
                    "not_found_error",
                    "the admin address serves only /caproute/* (send API requests to "
                    "the main port)",
                )
            else:
                await self._forward(scope, receive, send_and_record, exchange)
        except _LocalAnswer as answer:
            if answer.limit is not None:
                self.metrics.record_limit(answer.limit)
            # An answer before the body was read (a wrong token, a POST to a local
            # endpoint) closes the connection: the unread body, or with `Expect:
            # 100-continue` its absence, would otherwise be read as the next request.
            unread = not exchange.body_read and _announces_body(scope["headers"])
            await send_error(
                send_and_record,
                answer.status,
                answer.error_type,
                answer.message,
                close=answer.close or unread,
            )
        except _ClientGone:
            exchange.disconnected = True
        except asyncio.CancelledError:
            # Nothing cancels a request's task but the server when the shutdown drain
            # (--shutdown-timeout) runs out: end the request the way an API client
            # understands, not with a traceback and a silently cut stream.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self._cut_by_shutdown(exchange, send_and_record)
        finally:
            self._account(exchange)
            self.metrics.ended()

    async def _cut_by_shutdown(self, exchange: _Exchange, send: Send) -> None:
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

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange
    ) -> None:
        headers: Headers = scope["headers"]
        if len(headers) > self.config.max_header_count:
            raise _LocalAnswer(
                431,
                "invalid_request_error",
                f"more request headers than {self.config.max_header_count}",
                close=True,
                limit="header_count",
            )
        self._authorize(headers)
        self._check_declared_length(headers)
        body = await self._read_body(receive)
        exchange.body_read = True
        endpoint = endpoint_for(exchange.method, exchange.path)
        if endpoint is not None and body:
            await self._check_json_values(_decoded(body, headers, self.config.max_body_bytes))
        request = httpx2.Request(
            exchange.method,
            self._upstream_url(self._upstream_target(scope)),
            headers=upstream_request_headers(headers, api_key=self.config.api_key),
            content=body or None,
            extensions={"timeout": self._timeouts},
        )
        transport = await self._transport_for(headers, exchange, routed=endpoint is not None)
        with _cancelled_if_caller_leaves(receive, exchange):
            credential, exchange.credential = exchange.credential, None
            with lend(credential):
                del credential
                # A box emptied on the way out (see `lend` for why not the object itself).
                box = [exchange]
                token = _EXCHANGE.set(box)
                try:
                    response = await self._send_upstream(transport, request, exchange)
                finally:
                    box.clear()
                    _EXCHANGE.reset(token)
            try:
                decision = response.extensions.get("caproute_decision") or exchange.decision
                exchange.decision = decision
                if exchange.outcome != "bypassed":
                    exchange.outcome = decision.outcome if decision else "forwarded"
                if self.config.api_key is not None and response.status_code >= 400:
                    response = await self._masked(response)
                await self._stream(response, send, exchange)
            finally:
                await response.aclose()

    async def _masked(self, response: httpx2.Response) -> httpx2.Response:
        """An error answer in own-key mode, with the proxy's key and any credential masked.

        The upstream may quote a prefix of the key it was sent (an authentication
        error does), and in own-key mode that key is the proxy's, which callers must
        never see: any 8-character run of it, a credential's value after its name and
        ``sk-ant-`` tokens are masked (`caproute._core.secrets.mask_known`). Error bodies are
        small; one larger than ``max_error_body_bytes`` (by its declared length) is
        relayed unread, as the routing flow relays it.
        """
        declared = response.headers.get("content-length")
        limit = self.config.max_error_body_bytes
        if declared is None or not declared.isdigit() or int(declared) > limit:
            return response
        content = await response.aread()
        text = content.decode("utf-8", "replace")
        masked = mask_known(text, (self.config.api_key or "",))
        if masked == text:
            return response
        return with_body(response, masked.encode())

    async def _transport_for(self, headers: Headers, exchange: _Exchange, *, routed: bool) -> Any:
        """The transport for this request: bypass, a forced route, the caller's or ours.

        Only a routed request (`routed`) needs the caller's registry: the Models, Files
        or batch-retrieval APIs pass through without fetching (and waiting for) one.
        """
        bypass, route = controls(headers)
        if bypass and self.config.allow_bypass:
            exchange.outcome = "bypassed"
            return self._inner
        routes = self.routes
        if self.callers is not None and routed:
            credential = presented_credential(headers)
            if credential is not None:
                exchange.credential = credential
                held = len(self.callers)
                caller = self.callers.lookup(credential)
                if caller.pending:  # a new caller, or stale data: fetch (or start to)
                    await caller.ready(credential)
                if len(self.callers) != held:
                    self.metrics.caller_registries.set(len(self.callers))
                exchange.registry = caller.source
                routes = caller.routes
        if route is not None and self.config.allow_route_header:
            try:
                return routes.for_route(route)
            except KeyError:
                names = [r.name for r in routes.router.policy.routes]
                from .._core.yaml_text import suggest as _suggest

                raise _LocalAnswer(
                    400,
                    "invalid_request_error",
                    f"caproute-route: the policy has no route {route!r}{_suggest(route, names)}",
                ) from None
        return routes.transport

    def _authorize(self, headers: Headers) -> None:
        if self._token is None:
            return
        if not token_matches(presented_token(headers), self._token):
            # Same wording whether the token is missing or wrong: no oracle.
            raise _LocalAnswer(401, "authentication_error", "a valid proxy token is required")

    def _check_declared_length(self, headers: Headers) -> None:
        # Refuse before reading a byte (and before `Expect: 100-continue` is honoured)
        # when the caller announces a body over the limit.
        for name, value in headers:
            if name == b"content-length" and value.isdigit():
                if int(value) > self.config.max_body_bytes:
                    raise self._too_large()
                return

    def _too_large(self) -> _LocalAnswer:
        limit = self.config.max_body_bytes
        return _LocalAnswer(
            413,
            "request_too_large",
            f"request body exceeds {limit} bytes",
            close=True,
            limit="body_bytes",
        )

    async def _check_json_values(self, body: bytes) -> None:
        limit = self.config.max_json_values
        found = await json_values_over_async(body, limit)
        if found is not None:
            raise _LocalAnswer(
                413,
                "request_too_large",
                f"request body holds about {found} JSON values, more than {limit} "
                "(each costs memory to read; see --max-json-values)",
                limit="json_values",
            )

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        limit = self.config.max_body_bytes
        # One deadline for the whole body, not per chunk: a client trickling a byte
        # at a time (slowloris) must not hold a request open forever.
        try:
            # asyncio's own timeout: the same deadline at a third of anyio.fail_after's
            # cost (~5 vs ~14 µs), and this runs for every request.
            async with asyncio.timeout(self.config.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise self._too_large()
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _LocalAnswer(
                408,
                "timeout_error",
                f"request body not received within {self.config.body_timeout:g}s",
                close=True,
                limit="body_timeout",
            ) from None

    def _build_upstream_url(self, target: bytes) -> httpx2.URL:
        return self._upstream.copy_with(raw_path=target)

    def _upstream_target(self, scope: Scope) -> bytes:
        """The upstream raw path + query: configured prefix + the request's own path."""
        if _DOT_SEGMENT.search(scope["path"]):
            # `/../` would let a caller climb out of the upstream's path prefix.
            raise _LocalAnswer(400, "invalid_request_error", "dot segments are not allowed")
        raw_path: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
        if not raw_path.startswith(b"/"):
            # Absolute-form target (RFC 9112 §3.2.2), as sent to forward proxies: only
            # its path is used; the authority in it never picks the destination.
            raw_path = urlsplit(raw_path).path
            if not raw_path.startswith(b"/"):
                raise _LocalAnswer(400, "invalid_request_error", "unsupported request target")
        query: bytes = scope.get("query_string", b"")
        target = self._upstream_path + raw_path
        return target + b"?" + query if query else target

    async def _send_upstream(
        self, transport: Any, request: httpx2.Request, exchange: _Exchange
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
        """
        try:
            response: httpx2.Response = await transport.handle_async_request(request)
        except UnreadErrorBody as unread:
            # An error body too big to read for routing: the caller gets it as sent,
            # with the decision the request was sent under.
            response = unread.response
            if exchange.decision is not None:
                response.headers.update(exchange.decision.header_values())
                response.extensions = {
                    **response.extensions,
                    "caproute_decision": exchange.decision,
                }
        except httpx2.TimeoutException:
            exchange.outcome = "failed"
            self.metrics.record_upstream_error("timeout")
            raise _LocalAnswer(504, "timeout_error", "upstream did not answer in time") from None
        except httpx2.TransportError as exc:
            exchange.outcome = "failed"
            self.metrics.record_upstream_error("unreachable")
            logger.warning("upstream unreachable: %s", type(exc).__name__)
            raise _LocalAnswer(502, "api_error", "upstream unreachable") from None
        return response

    # -- streaming the answer back --------------------------------------------------------

    async def _stream(self, response: httpx2.Response, send: Send, exchange: _Exchange) -> None:
        headers, body = _downstream(response)
        request_id = response.headers.get("request-id")
        if request_id:
            exchange.request_id = request_id[:128]
        if exchange.registry is not None:
            headers.append((b"caproute-registry", exchange.registry.encode("latin-1", "replace")))
        exchange.body_expected = _content_length(headers)
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
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
                silent = self.config.read_timeout
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

    # -- local endpoints ------------------------------------------------------------------

    def _on_admin_listener(self, scope: Scope) -> bool:
        """Whether the request came in on the ``--admin-listen`` address.

        Told by the local port the connection was accepted on (the two listeners'
        ports differ, `ProxyConfig` checks it)."""
        if self._admin_port is None:
            return False
        server = scope.get("server")
        return server is not None and server[1] == self._admin_port

    async def _local(self, exchange: _Exchange, send: Send, scope: Scope, *, admin: bool) -> None:
        """Answer ``/caproute/*``; who may read what is decided here.

        With ``--admin-listen`` the endpoints are served on that address; with
        ``--admin-token`` they need the token. Where either keeps a caller out,
        ``/caproute/health`` still answers its status alone (what liveness and
        readiness probes read), and the others are refused.
        """
        handlers = {
            "/caproute/health": self._health,
            "/caproute/registry": self._registry,
            "/caproute/metrics": self._metrics_page,
        }
        path = exchange.path.rstrip("/")
        handler = handlers.get(path)
        if handler is None:
            raise _LocalAnswer(404, "not_found_error", f"no such proxy endpoint: {exchange.path}")
        if exchange.method not in ("GET", "HEAD"):
            raise _LocalAnswer(405, "invalid_request_error", "proxy endpoints only answer GET")
        elsewhere = self._admin_port is not None and not admin
        allowed = not elsewhere and (
            self._admin_token is None
            or token_matches(presented_token(scope["headers"]), self._admin_token)
        )
        if allowed:
            await handler(send)
        elif path == "/caproute/health":
            await send_json(send, 200, {"status": self.health()["status"]})
        elif elsewhere:
            raise _LocalAnswer(
                404,
                "not_found_error",
                f"{path} is served on the admin address only (--admin-listen)",
            )
        else:
            # Same wording whether the token is missing or wrong: no oracle.
            raise _LocalAnswer(401, "authentication_error", "a valid admin token is required")

    async def _health(self, send: Send) -> None:
        await send_json(send, 200, self.health())

    def health(self) -> dict[str, Any]:
        """What ``/caproute/health`` answers: ``ok`` or ``degraded`` with the reasons."""
        registry = self.router.registry
        now = time.time()
        reasons: list[str] = []
        files: dict[str, Any] = {}
        for name, watcher in (("policy", self.policy_watcher), ("snapshot", self.registry_watcher)):
            if watcher is None:
                files[name] = None
                continue
            status = watcher.status
            files[name] = {
                "file": status.file,
                "loaded_at": _iso(status.loaded_at),
                "last_error": status.last_error,
            }
            if status.last_error is not None:
                reasons.append(f"{name} reload rejected, the previous {name} stays in force")
        stale_after = self.config.stale_after
        age = registry.source.age(now)
        # In pass-through mode the proxy's own registry is only the fallback: its age
        # matters when the operator provides it (--snapshot), not for the user cache.
        judged = self.config.own_key or self.config.snapshot is not None
        if judged and age is not None and age > stale_after:
            reasons.append(
                f"registry is {age:.0f}s old (stale after {stale_after:g}s): {registry.source.kind}"
            )
        document: dict[str, Any] = {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "version": __version__,
            "upstream": self.config.upstream_base,
            "mode": "own-key" if self.config.own_key else "pass-through",
            "uptime_s": round(now - self._started_at, 3),
            "pid": os.getpid(),
            "registry": {
                "source": registry.source.describe(now),
                "age_s": _round(age),
                "models": len(registry),
            },
            **files,
            "in_flight": self.metrics.in_flight,
        }
        if self.callers is not None:
            callers = self.callers.health(stale_after)
            document["callers"] = {
                "registries": callers.callers,
                "max": self.callers.max_registries,
                "live": callers.live,
                "denied": callers.denied,
                "oldest_age_s": _round(callers.oldest_age_s),
            }
            if callers.failing_and_stale:
                reasons.append(
                    f"{callers.failing_and_stale} caller registr"
                    f"{'y is' if callers.failing_and_stale == 1 else 'ies are'} older than "
                    f"{stale_after:g}s and can't be refreshed"
                )
                document["status"] = "degraded"
        return document

    async def _registry(self, send: Send) -> None:
        registry = self.router.registry
        now = time.time()
        await send_json(
            send,
            200,
            {
                "source": registry.source.to_dict(),
                "age_s": _round(registry.source.age(now)),
                "models": [info.to_api_dict() for info in registry.models],
                # What a later list left out (still routed), what is known to be gone,
                # and what the API's refusals taught.
                "unlisted": dict(registry.unlisted),
                "tombstones": dict(registry.tombstones),
                "learned": [fact.to_dict() for fact in registry.learned],
            },
        )

    async def _metrics_page(self, send: Send) -> None:
        if not self.config.metrics:
            raise _LocalAnswer(404, "not_found_error", "metrics are turned off (--no-metrics)")
        body = self.metrics.render()
        await send_bytes(send, 200, body, content_type=ProxyMetrics.CONTENT_TYPE.encode())

    # -- accounting -----------------------------------------------------------------------

    def _account(self, exchange: _Exchange) -> None:
        metrics = self.metrics
        decision = exchange.decision
        metrics.record_request(exchange.outcome, decision, exchange.status)
        if exchange.status >= 400 and exchange.outcome not in ("local", "failed", "rejected"):
            metrics.record_upstream_error(exchange.status)
        if exchange.client_gone:
            metrics.client_disconnects.inc()
        if exchange.headers_sent_at is not None:
            metrics.latency.observe(exchange.headers_sent_at - exchange.started)
        if exchange.tokens:
            metrics.record_tokens(decision.model if decision else None, exchange.tokens)
        if access_logger.isEnabledFor(logging.INFO):
            fields = _access_fields(exchange, self._clock())
            access_logger.info(_access_line(fields), extra={ACCESS_FIELDS: fields})


# -- helpers ------------------------------------------------------------------------------


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
            # caller's answer is not complete) came late. `_forward` closes the
            # response once the caller has everything.
            return headers, response.stream
        return headers, response.aiter_raw()
    content = response.content
    headers = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")]
    headers.append((b"content-length", str(len(content)).encode()))
    return headers, _once(content)


@contextlib.contextmanager
def _cancelled_if_caller_leaves(receive: Receive, exchange: _Exchange) -> Iterator[None]:
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


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


def _announces_body(headers: Headers) -> bool:
    """Whether a request says a body follows (``Content-Length`` > 0, or chunked)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


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


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@+-]+")


def _field(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    if _PLAIN_VALUE.fullmatch(text):
        return text
    # Quoted and escaped: a path or change list can't break the line (log injection).
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def _access_fields(exchange: _Exchange, now: float) -> dict[str, Any]:
    """One request's access-log fields (never a key, a query string or content)."""
    decision = exchange.decision
    changes = decision.header_values()["caproute-changes"] if decision else None
    fields: dict[str, Any] = {
        "method": exchange.method,
        "path": exchange.path,
        "status": exchange.status or None,
        "outcome": exchange.outcome,
        "requested": decision.requested_model if decision else None,
        "model": decision.model if decision else None,
        "changes": changes,
        "duration_ms": round((now - exchange.started) * 1000, 1),
    }
    if exchange.request_id is not None:
        fields["request_id"] = exchange.request_id
    if exchange.registry is not None and exchange.registry != "caller":
        fields["registry"] = exchange.registry
    if exchange.tokens:
        fields["tokens"] = exchange.tokens
    if exchange.client_gone:
        fields["client"] = "disconnected"
    if exchange.upstream_broke:
        fields["upstream"] = "broke"
    if exchange.cut is not None:
        fields["cut"] = exchange.cut
    return fields


def _access_line(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if key == "tokens":
            value = ",".join(f"{kind}:{count}" for kind, count in value.items())
        elif key == "duration_ms":
            value = f"{value:.1f}"
        parts.append(f"{key}={_field(value)}")
    return " ".join(parts)


def _meter_for(
    response: httpx2.Response, headers: Headers, exchange: _Exchange
) -> UsageMeter | None:
    """A usage meter for a successful Messages answer (None for anything else)."""
    if response.status_code != 200 or exchange.decision is None:
        return None
    values = dict(headers)
    encoding = values.get(b"content-encoding", b"identity")
    return UsageMeter(values.get(b"content-type", b""), encoding=encoding)


def _decoded(body: bytes, headers: Headers, limit: int) -> bytes:
    """The body the routing transport will parse: with a gzip/deflate ``content-encoding``
    undone (at most `limit` bytes), so the JSON budget counts what will be parsed. A body
    that doesn't decode is left as it is: the transport refuses it (`caproute._core.body`)."""
    values = [value.decode("latin-1") for name, value in headers if name == b"content-encoding"]
    if not values:
        return body
    try:
        codings = _body.parse_codings(", ".join(values))
        return _body.decode(body, codings, limit) if codings else body
    except _body.BodyRefused:
        return body


def _remember_decision(decision: Decision) -> None:
    """The routers' decision hook: the request's decision, for answers that carry none."""
    box = _EXCHANGE.get()
    if box:
        box[0].decision = decision


_EXCHANGE: ContextVar[list[_Exchange] | None] = ContextVar("caproute_proxy_exchange", default=None)


def _iso(timestamp: float) -> str | None:
    if not timestamp:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
