"""Helpers: the real proxy (uvicorn on a loopback port, in a thread) and small clients."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anthropic
import uvicorn

from caproute._proxy import ProxyApp, ProxyConfig, create_proxy_app
from caproute._proxy._server import server_flavour, uvicorn_config
from caproute.testing import FakeAnthropic

API_KEY = "sk-test-caller-key"

_open_clients: list[anthropic.Anthropic] = []


def sdk_client(base_url: str, api_key: str = API_KEY) -> anthropic.Anthropic:
    """An SDK client without retries; closed after the test by `close_sdk_clients`."""
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
    _open_clients.append(client)
    return client


def close_sdk_clients() -> None:
    while _open_clients:
        _open_clients.pop().close()


Flavour = tuple[str, str]
"""uvicorn's ``(http, loop)`` implementations: ``("h11", "asyncio")`` is the fallback."""

FLAVOURS: list[Flavour] = [("h11", "asyncio"), ("httptools", "uvloop")]


class RunningProxy:
    """`caproute serve` in a background thread: the real uvicorn server and lifespan.

    `flavour` picks uvicorn's HTTP parser and event loop (default: what `serve_proxy`
    would pick, the fastest installed).
    """

    def __init__(self, config: ProxyConfig, flavour: Flavour | None = None) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.config = replace(config, port=self.port)
        self.app: ProxyApp = create_proxy_app(self.config)
        self.http, self.loop = flavour or server_flavour()
        settings = uvicorn_config(self.config, self.app, log_config=None, http=self.http)
        self._server = uvicorn.Server(settings)
        self._thread = threading.Thread(target=self._run, daemon=True)

    @classmethod
    def for_upstream(cls, upstream: str, **options: Any) -> RunningProxy:
        """A started proxy in front of `upstream`."""
        return cls(ProxyConfig(upstream=upstream, **options)).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        # Server.serve() runs in whatever loop it is given, so the loop is chosen here.
        if self.loop == "uvloop":
            import uvloop

            uvloop.run(self._server.serve(sockets=[self._sock]))
        else:
            asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> RunningProxy:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            self._thread.join(0.01)
        raise RuntimeError("proxy did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def metric(self, selector: str) -> float:
        """The sum of the samples `selector` picks, e.g. ``name{label="value"}`` (0 if none).

        Labels not named are summed over. Waits for requests in flight first: a
        request is counted just after its last byte went out, which can be just after
        the caller has read it.
        """
        wait_until(lambda: self.app.metrics.in_flight == 0)
        return metric_value(self.app.metrics.render().decode(), selector)


def metric_value(exposition: str, selector: str) -> float:
    """Sum the samples of a Prometheus text exposition that `selector` matches."""
    from prometheus_client.parser import text_string_to_metric_families

    name, _, rest = selector.partition("{")
    wanted = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                total += sample.value
    return total


def start_proxy(
    fake: FakeAnthropic, *, flavour: Flavour | None = None, **options: Any
) -> RunningProxy:
    """A proxy in front of `fake`, started (stop it with `.stop()`)."""
    options.setdefault("body_timeout", 5.0)
    return RunningProxy(ProxyConfig(upstream=fake.url, **options), flavour).start()


def raw_request(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes to the proxy and read the answer until the server closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def json_body_of(answer: bytes) -> Any:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def http_request(
    method: str, path: str, headers: dict[str, str], body: bytes = b"", *, target: str | None = None
) -> bytes:
    """A raw HTTP/1.1 request (``Connection: close``), built by hand so it can be malformed."""
    lines = [f"{method} {target or path} HTTP/1.1"]
    if not any(name.lower() == "host" for name in headers):
        lines.append("Host: caproute.test")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
    return head + body


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll `condition` (server-side bookkeeping finishes just after the caller is answered)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
