"""Helpers of the reliability suite: the real proxy on a loopback port, raw sockets, bodies.

The proxy runs exactly as `caproute serve` runs it (uvicorn, its lifespan, the server
flavour `serve_proxy` would pick), in a background thread; requests to it are written
byte by byte on raw sockets where the point is a malformed request, so no client
library normalises them first.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import uvicorn

from caproute._proxy import ProxyApp, ProxyConfig, create_proxy_app
from caproute._proxy._server import server_flavour, uvicorn_config
from caproute.testing import FakeAnthropic

API_KEY = "sk-ant-api03-RELIABILITY-caller-key-0123456789"
"""The callers' key in these tests: shaped like a real one, so masking applies to it."""

HI = [{"role": "user", "content": "hi"}]


class RunningProxy:
    """`caproute serve` in a thread (the real uvicorn server and lifespan)."""

    def __init__(
        self,
        config: ProxyConfig,
        *,
        app: Callable[[ProxyConfig], ProxyApp] = create_proxy_app,
        **uvicorn_options: Any,
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.config = replace(config, port=self.port)
        self.app: ProxyApp = app(self.config)
        self.http, self.loop = server_flavour()
        options = {"log_config": None, "http": self.http, **uvicorn_options}
        self._server = uvicorn.Server(uvicorn_config(self.config, self.app, **options))
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        if self.loop == "uvloop":
            import uvloop

            uvloop.run(self._server.serve(sockets=[self._sock]))
        else:
            asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> RunningProxy:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("proxy did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> RunningProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def metric(self, selector: str) -> float:
        """The sum of the samples `selector` picks, e.g. ``name{label="value"}`` (0 if
        none): labels not named are summed over. Waits for requests in flight first."""
        from prometheus_client.parser import text_string_to_metric_families

        wait_until(lambda: self.app.metrics.in_flight == 0)
        name, _, rest = selector.partition("{")
        wanted = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        exposition = self.app.metrics.render().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items())
        )


def proxy_for(fake: FakeAnthropic, **options: Any) -> RunningProxy:
    """A proxy in front of `fake` (not started: use it as a context manager)."""
    options.setdefault("body_timeout", 5.0)
    return RunningProxy(ProxyConfig(upstream=fake.url, **options))


# -- raw HTTP ------------------------------------------------------------------------------


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A raw HTTP/1.1 request with ``Connection: close``, built by hand."""
    lines = [f"{method} {path} HTTP/1.1", "Host: caproute.test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def raw_exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send `data` on a fresh socket and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


class RawAnswer:
    """An HTTP/1.1 answer read off a socket: status, headers, (de-chunked) body."""

    def __init__(self, data: bytes) -> None:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.headers.get("transfer-encoding") == "chunked":
            self.body = _dechunk(rest)
        else:
            self.body = rest

    def json(self) -> Any:
        return json.loads(self.body)


def _dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)


def raw_post(
    proxy: RunningProxy,
    path: str,
    body: bytes,
    *,
    api_key: str = API_KEY,
    headers: dict[str, str] | None = None,
) -> RawAnswer:
    """POST `body` to the proxy on a raw socket, as an SDK would (key, version, JSON)."""
    all_headers = {
        "x-api-key": api_key,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        **(headers or {}),
    }
    return RawAnswer(raw_exchange(proxy.port, http_request("POST", path, all_headers, body)))


# -- bodies --------------------------------------------------------------------------------


def deep_json(depth: int) -> bytes:
    """A Messages body with a value nested `depth` arrays deep in ``metadata``."""
    return (
        b'{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}],'
        b'"metadata":{"x":' + b"[" * depth + b"]" * depth + b"}}"
    )


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def deflated(data: bytes) -> bytes:
    return zlib.compress(data)


def compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


# -- clients on every library path -------------------------------------------------------

LIBRARY_PATHS = ("wrap", "wrap-transport", "middleware", "transport")
"""Every way into caproute from the SDK: `wrap()` (the middleware where the SDK has the
hook), `wrap(via="transport")`, ``Anthropic(middleware=[...])``, a routed http client."""


def sdk_client(
    path: str, fake: FakeAnthropic, router: Any, *, is_async: bool = False, **options: Any
) -> Any:
    """An SDK client whose requests go through caproute along `path`, to `fake`."""
    import anthropic

    import caproute

    sdk_class = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    options = {"base_url": fake.url, "api_key": API_KEY, "max_retries": 0, **options}
    if path == "wrap":
        return caproute.wrap(sdk_class(**options), router=router)
    if path == "wrap-transport":
        return caproute.wrap(sdk_class(**options), router=router, via="transport")
    if path == "middleware":
        return sdk_class(middleware=[caproute.middleware(router=router)], **options)
    if path == "transport":
        factory = caproute.routed_async_http_client if is_async else caproute.routed_http_client
        # The SDK's own HTTP library: httpx for 0.x, httpx2 for 1.x and 2.x.
        flavour = "httpx" if anthropic.__version__.startswith("0.") else "httpx2"
        return sdk_class(http_client=factory(router=router, flavour=flavour), **options)
    raise AssertionError(f"unknown path {path!r}")
