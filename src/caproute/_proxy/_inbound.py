"""The caller's request as the proxy reads it: limits, the local token, the body, the target.

`RequestReader.read` is the one step between the ASGI request and the upstream
request, in this order:

1. refuses more headers than ``max_header_count`` (431; the httptools server refuses
   them earlier, this covers the h11 fallback), then, in own-key mode, checks the
   caller's local token (constant time) → 401 otherwise;
2. reads the body with a size cap (checked as bytes arrive, and up front from
   ``Content-Length``) and a deadline → 413 / 408 API-shaped errors; a routed body
   with more JSON values than ``max_json_values`` is 413 before it is parsed;
3. builds the upstream request from the *configured* upstream plus the request's
   path and query; the ``Host`` header and an absolute-form target are ignored, so
   the proxy can't be made to relay anywhere else. Which headers travel is decided by
   `caproute._proxy._headers` (one pass, which also takes out the caller's
   ``caproute-bypass`` / ``caproute-route`` controls).

Every refusal is a `LocalAnswer`; a caller gone while its body arrives, `ClientGone`.
"""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx2

from .._core import body as _body
from .._runtime.drive import endpoint_for
from ._asgi import Receive, Scope
from ._config import ProxyConfig
from ._exchange import ClientGone, Exchange, LocalAnswer
from ._headers import Headers, presented_token, token_matches, upstream_request
from ._limits import json_values_over_async

_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")


@dataclass(slots=True)
class Inbound:
    """A caller's request, read and checked, ready to go upstream."""

    request: httpx2.Request
    """What to send upstream (the configured upstream's URL, end-to-end headers)."""
    routed: bool
    """A Messages endpoint: routed, so it needs the caller's registry."""
    bypass: bool
    """The caller sent ``caproute-bypass: 1`` (honoured only when enabled)."""
    route: str | None
    """The caller's ``caproute-route``, if any (honoured only when enabled)."""


class RequestReader:
    """Reads and checks callers' requests for one app (`read`); built once from the config."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        # What `httpx2.AsyncClient` would attach to every request (see
        # `ProxyApp._send_upstream`); httpcore reads these per request, and without them
        # it would wait forever.
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

    async def read(self, scope: Scope, receive: Receive, exchange: Exchange) -> Inbound:
        """The upstream request for `scope` (its body read from `receive`).

        Raises:
            LocalAnswer: A limit, the token or the target refuses the request.
            ClientGone: The caller left while its body arrived.
        """
        config = self.config
        headers: Headers = scope["headers"]
        if len(headers) > config.max_header_count:
            raise LocalAnswer(
                431,
                "invalid_request_error",
                f"more request headers than {config.max_header_count}",
                close=True,
                limit="header_count",
            )
        if self._token is not None and not token_matches(presented_token(headers), self._token):
            # Same wording whether the token is missing or wrong: no oracle.
            raise LocalAnswer(401, "authentication_error", "a valid proxy token is required")
        self._check_declared_length(headers)
        body = await self._read_body(receive)
        exchange.body_read = True
        routed = endpoint_for(exchange.method, exchange.path) is not None
        if routed and body:
            await self._check_json_values(_decoded(body, headers, config.max_body_bytes))
        forwarded, bypass, route = upstream_request(headers, api_key=config.api_key)
        request = httpx2.Request(
            exchange.method,
            self._upstream_url(self._upstream_target(scope)),
            headers=forwarded,
            content=body or None,
            extensions={"timeout": self._timeouts},
        )
        return Inbound(request, routed, bypass, route)

    def _check_declared_length(self, headers: Headers) -> None:
        # Refuse before reading a byte (and before `Expect: 100-continue` is honoured)
        # when the caller announces a body over the limit.
        for name, value in headers:
            if name == b"content-length" and value.isdigit():
                if int(value) > self.config.max_body_bytes:
                    raise self._too_large()
                return

    def _too_large(self) -> LocalAnswer:
        limit = self.config.max_body_bytes
        return LocalAnswer(
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
            raise LocalAnswer(
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
                        raise ClientGone
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise self._too_large()
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise LocalAnswer(
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
            raise LocalAnswer(400, "invalid_request_error", "dot segments are not allowed")
        raw_path: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
        if not raw_path.startswith(b"/"):
            # Absolute-form target (RFC 9112 §3.2.2), as sent to forward proxies: only
            # its path is used; the authority in it never picks the destination.
            raw_path = urlsplit(raw_path).path
            if not raw_path.startswith(b"/"):
                raise LocalAnswer(400, "invalid_request_error", "unsupported request target")
        query: bytes = scope.get("query_string", b"")
        target = self._upstream_path + raw_path
        return target + b"?" + query if query else target


def announces_body(headers: Headers) -> bool:
    """Whether a request says a body follows (``Content-Length`` > 0, or chunked)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


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
