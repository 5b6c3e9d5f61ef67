"""The real proxy in a background thread, for the proxy and reliability suites.

`caproute serve` as it runs (uvicorn, its lifespan, the server flavour `serve_proxy`
would pick unless told otherwise) on a loopback port bound before the server starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn

from caproute._proxy import ProxyApp, ProxyConfig, create_proxy_app
from caproute._proxy._server import server_flavour, uvicorn_config

Flavour = tuple[str, str]
"""uvicorn's (HTTP parser, event loop)."""


class RunningProxy:
    """`caproute serve` in a background thread: the real uvicorn server and lifespan.

    Args:
        config: The proxy's configuration (its port is replaced by the bound one).
        flavour: uvicorn's HTTP parser and event loop (default: the fastest installed).
        app: Builds the ASGI app from the config (tests inject an inner transport).
        uvicorn_options: More `uvicorn.Config` keywords.
    """

    def __init__(
        self,
        config: ProxyConfig,
        flavour: Flavour | None = None,
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
        self.http, self.loop = flavour or server_flavour()
        options = {"log_config": None, "http": self.http, **uvicorn_options}
        self._server = uvicorn.Server(uvicorn_config(self.config, self.app, **options))
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
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("proxy did not start")
            self._thread.join(0.005)
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
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items())
    )


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition` (server-side bookkeeping finishes just after the caller is answered)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


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


def free_port() -> int:
    """A loopback port free right now (for a process that binds it itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_health(url: str, process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Wait until the `process` serving at `url` answers ``/caproute/health`` with a 200
    (it must not exit meanwhile)."""
    import httpx2

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx2.get(f"{url}/caproute/health").status_code == 200:
                return
        except httpx2.TransportError:
            pass
        assert process.poll() is None, f"caproute serve exited: {process.communicate()[0]}"
        assert time.monotonic() < deadline, "caproute serve did not come up"
        time.sleep(0.05)


@contextlib.contextmanager
def serve_process(
    *args: str, log: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``caproute serve --port PORT ARGS`` as a real process, output (stdout and stderr)
    in `log`; yields its URL once ``/caproute/health`` answers, or as soon as the
    process exits (a start-up error: read `log`). SIGTERM on the way out."""
    import httpx2

    port = port or free_port()
    command = [sys.executable, "-m", "caproute", "serve", "--port", str(port), *args]
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=environ, text=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while process.poll() is None:
            try:
                httpx2.get(f"{url}/caproute/health")
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "caproute serve did not come up"
                time.sleep(0.05)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
