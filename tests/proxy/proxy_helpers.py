"""Helpers: the real proxy (uvicorn on a loopback port, in a thread) and small clients."""

from __future__ import annotations

import json
from typing import Any

import anthropic

from caproute._proxy import ProxyConfig
from caproute.testing import FakeAnthropic
from running_proxy import Flavour, RunningProxy
from running_proxy import free_port as free_port  # re-exported for the suite
from running_proxy import metric_value as metric_value
from running_proxy import raw_request as raw_request
from running_proxy import read_until_closed as read_until_closed
from running_proxy import wait_until as wait_until

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


"""uvicorn's ``(http, loop)`` implementations: ``("h11", "asyncio")`` is the fallback."""

FLAVOURS: list[Flavour] = [("h11", "asyncio"), ("httptools", "uvloop")]


def start_proxy(
    fake: FakeAnthropic, *, flavour: Flavour | None = None, **options: Any
) -> RunningProxy:
    """A proxy in front of `fake`, started (stop it with `.stop()`)."""
    options.setdefault("body_timeout", 5.0)
    return RunningProxy(ProxyConfig(upstream=fake.url, **options), flavour).start()


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
