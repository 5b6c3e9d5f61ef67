"""How one warm, unchanged request travels through caproute's modules inside the proxy.

`sys.setprofile` sees every Python call; a call from one caproute module into another
is a crossing of their boundary. The request is split where the upstream's answer
arrives (the network edge, `CappedErrorBodies.handle_async_request` returning it):
before that it goes *in*, after it comes back *out*. The bound: each boundary is
crossed at most once each way (docs/architecture.md draws the path).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from types import FrameType
from typing import Any

import httpx2
from proxy_helpers import API_KEY

from caproute import ProxyConfig, create_proxy_app
from caproute.testing import FakeAnthropic

BODY = json.dumps(
    {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
).encode()

EDGE = ("caproute._proxy._limits", "handle_async_request")
"""The innermost caproute frame: the upstream's answer comes back through its return."""

Crossing = tuple[str, str, str]


def _module(frame: FrameType | None) -> str | None:
    """The caproute module `frame` or its nearest caproute caller runs in."""
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("caproute.") and not name.startswith("caproute.testing"):
            return str(name)
        frame = frame.f_back
    return None


async def _request(app: Any, crossings: list[tuple[Crossing, str]] | None) -> int:
    """Send one request through `app`; record its crossings when a list is given."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"proxy"),
            (b"content-type", b"application/json"),
            (b"x-api-key", API_KEY.encode()),
            (b"anthropic-version", b"2023-06-01"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
    }
    messages = [{"type": "http.request", "body": BODY, "more_body": False}]
    done = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    way = ["in"]
    seen: dict[int, FrameType] = {}  # frames kept alive, so an id is never reused

    def profile(frame: FrameType, event: str, arg: object) -> None:
        name = frame.f_globals.get("__name__", "")
        if not name.startswith("caproute.") or name.startswith("caproute.testing"):
            return
        if event == "return":
            if (name, frame.f_code.co_name) == EDGE and isinstance(arg, httpx2.Response):
                way[0] = "out"
            return
        if event != "call" or seen.get(id(frame)) is frame:
            return  # not a call, or a coroutine resuming
        seen[id(frame)] = frame
        caller = _module(frame.f_back)
        if crossings is not None and caller is not None and caller != name:
            crossings.append(((caller, name, way[0]), frame.f_code.co_name))

    sys.setprofile(profile if crossings is not None else None)
    try:
        await app(scope, receive, send)
    finally:
        sys.setprofile(None)
        done.set()
    return int(sent[0]["status"])


def crossings_of_one_warm_request(fake: FakeAnthropic) -> list[tuple[Crossing, str]]:
    """The crossings of the fourth unchanged request to a pass-through proxy."""

    async def run() -> list[tuple[Crossing, str]]:
        app = create_proxy_app(ProxyConfig(upstream=fake.url))
        try:
            for _ in range(3):  # the caller's registry fetched, connections pooled
                assert await _request(app, None) == 200
            crossings: list[tuple[Crossing, str]] = []
            assert await _request(app, crossings) == 200
            return crossings
        finally:
            await app.aclose()

    return asyncio.run(run())


def test_a_warm_request_crosses_each_module_boundary_once_each_way(fake: FakeAnthropic) -> None:
    crossings = crossings_of_one_warm_request(fake)
    counts = Counter(pair for pair, _ in crossings)
    over = {pair for pair, count in counts.items() if count > 1}

    assert over == set(), {
        pair: [function for seen, function in crossings if seen == pair] for pair in over
    }
    proxy = [pair for pair in counts if "_proxy" in pair[0] or "_proxy" in pair[1]]
    assert proxy, "the profile saw no proxy module"
    assert ("caproute._proxy._app", "caproute._proxy._relay", "out") in counts
