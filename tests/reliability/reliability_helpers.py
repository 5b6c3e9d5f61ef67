"""Helpers of the reliability suite: the real proxy on a loopback port, raw sockets, bodies.

The proxy runs exactly as `caproute serve` runs it (uvicorn, its lifespan, the server
flavour `serve_proxy` would pick), in a background thread; requests to it are written
byte by byte on raw sockets where the point is a malformed request, so no client
library normalises them first.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from caproute import embedded_registry, save_snapshot
from caproute._proxy import ProxyConfig
from caproute.testing import FakeAnthropic
from routed_sdk import routed_sdk_client
from running_proxy import RunningProxy
from running_proxy import raw_request as raw_request  # re-exported for the suite
from running_proxy import wait_until as wait_until  # re-exported for the suite

API_KEY = "sk-ant-api03-RELIABILITY-caller-key-0123456789"
"""The callers' key in these tests: shaped like a real one, so masking applies to it."""

HI = [{"role": "user", "content": "hi"}]


def proxy_for(fake: FakeAnthropic, **options: Any) -> RunningProxy:
    """A proxy in front of `fake` (not started: use it as a context manager)."""
    options.setdefault("body_timeout", 5.0)
    return RunningProxy(ProxyConfig(upstream=fake.url, **options))


@contextlib.contextmanager
def snapshot_proxy(fake: FakeAnthropic, folder: Path) -> Iterator[tuple[RunningProxy, Path]]:
    """A running proxy in front of `fake` routing on a snapshot file it polls for changes
    (written in `folder`, the embedded registry to start with); yields both."""
    snapshot = folder / "registry.json"
    save_snapshot(embedded_registry(), snapshot)
    with proxy_for(fake, snapshot=snapshot, poll_interval=0.02) as proxy:
        yield proxy, snapshot


def replace_and_see_refused(proxy: RunningProxy, snapshot: Path, staging: Path) -> None:
    """Put `staging` in the place of `snapshot` (an atomic replace, as a cron job would do
    it) and wait until the proxy has refused to load it."""
    staging.replace(snapshot)
    wait_until(lambda: proxy.metric('caproute_proxy_snapshot_reloads_total{result="error"}') == 1)


# -- raw HTTP ------------------------------------------------------------------------------


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """A raw HTTP/1.1 request with ``Connection: close``, built by hand."""
    lines = [f"{method} {path} HTTP/1.1", "Host: caproute.test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


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
    return RawAnswer(
        raw_request(proxy.port, http_request("POST", path, all_headers, body), timeout=10.0)
    )


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


# -- clients on every library path -------------------------------------------------------

LIBRARY_PATHS = ("wrap", "wrap-transport", "middleware", "transport")
"""Every way into caproute from the SDK: `wrap()` (the middleware where the SDK has the
hook), `wrap(via="transport")`, ``Anthropic(middleware=[...])``, a routed http client."""


def sdk_client(
    path: str, fake: FakeAnthropic, router: Any, *, is_async: bool = False, **options: Any
) -> Any:
    """An SDK client whose requests go through caproute along `path`, to `fake`."""
    options = {"base_url": fake.url, "api_key": API_KEY, **options}
    return routed_sdk_client(path, router, is_async=is_async, **options)
