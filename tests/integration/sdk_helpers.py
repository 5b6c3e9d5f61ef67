"""Shared constants and helpers of the SDK integration tests (fixtures are in conftest.py).

These tests run under both SDK generations: the current 2.x (built on httpx2, the main
environment) and a late 0.x (built on httpx, ``make test-sdk0`` / ``.venv-sdk0``). The
generation is read from ``anthropic.__version__`` and picks the HTTP library the routed
clients must be built with.

The lineup is small and chosen so that every forwarding path has something to do:

* ``claude-big-2``: everything but images, ``max_tokens`` up to 128,000;
* ``claude-small-1``: no PDFs, no effort ``max``, ``max_tokens`` up to 8,192.

So a PDF sent to ``claude-small-1`` must be rerouted, ``effort: max`` or ``max_tokens:
20000`` on ``claude-small-1`` must be adjusted, and an image has nowhere to go (a local
refusal). The fake rejects all of these with the API's 400 when caproute is not there.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import pytest

from caproute import Decision
from caproute.testing import FakeAnthropic, make_model
from routed_sdk import HTTP_FLAVOUR as HTTP_FLAVOUR  # re-exported for the suite

SDK_GENERATION = int(anthropic.__version__.split(".")[0])
_MAJOR, _MINOR = (int(part) for part in anthropic.__version__.split(".")[:2])
MIDDLEWARE_SEES_CLIENT_HEADERS = (_MAJOR, _MINOR) >= (2, 17)
"""Before anthropic 2.17 a middleware sees only the call's own headers: not the client's
default headers, nor its credentials (docs/sdk.md, "Per SDK generation")."""
"""0 for the httpx-based SDKs, 1 or 2 for the httpx2-based ones."""


API_KEY = "sk-ant-test-0123456789"

BIG = "claude-big-2"
SMALL = "claude-small-1"

PATHS = ("wrap", "wrap-middleware", "middleware", "transport")
"""Every way into caproute from the SDK:

* ``wrap``: `caproute.wrap(client)` (the routing transport under a copy of the client);
* ``wrap-middleware``: `caproute.wrap(client, via="middleware")`;
* ``middleware``: ``Anthropic(middleware=[caproute.middleware(...)])``;
* ``transport``: ``Anthropic(http_client=caproute.routed_http_client(...))``.
"""

PDF_BLOCK = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
}
HI = [{"role": "user", "content": "hi"}]
EFFORT_MAX: dict[str, Any] = {
    "model": SMALL,
    "max_tokens": 100,
    "output_config": {"effort": "max"},
    "messages": HI,
}
"""SMALL has no effort ``max``: the fake refuses this with a 400 unless it is adjusted."""
IMAGE_BLOCK = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
}


def lineup() -> list[dict[str, Any]]:
    """The fake's catalogue (newest first), as Models API dicts."""
    return [
        make_model(BIG, max_tokens=128_000, unsupported=["image_input"]),
        make_model(SMALL, max_tokens=8192, unsupported=["image_input", "pdf_input", "effort.max"]),
    ]


async def resolve(value: Any) -> Any:
    """Await `value` if the call was async: lets one test body drive both clients."""
    return await value if inspect.isawaitable(value) else value


@contextlib.asynccontextmanager
async def opened(client: Any) -> AsyncIterator[Any]:
    """Use a sync or async SDK client and close it afterwards, even when the test fails.

    An async client left open is closed by the garbage collector later, on an event loop
    that is gone by then, and that error would surface in an unrelated test.
    """
    try:
        yield client
    finally:
        await resolve(client.close())


Call = Callable[[Any], Any]
"""Picks the SDK method a test calls from a client (``lambda c: c.messages.create``)."""


@dataclass
class Cell:
    """One cell of the matrix: a path into caproute, sync or async, against the fake."""

    path: str
    is_async: bool
    fake: FakeAnthropic
    decisions: list[Decision]
    """What the routed clients reported, in order."""
    routed_client: Any
    bare_client: Any

    def routed(self, **options: Any) -> Any:
        """A new SDK client of this cell (`options` for its constructor), routed by caproute."""
        return self.routed_client(self.path, is_async=self.is_async, **options)

    def bare(self) -> Any:
        """The same SDK client without caproute."""
        return self.bare_client(is_async=self.is_async)

    async def routed_call(self, call: Call, **request: Any) -> Any:
        """`call` on a routed client, closed afterwards: what the SDK returned."""
        async with opened(self.routed()) as client:
            return await resolve(call(client)(**request))

    async def bare_400(self, call: Call, **request: Any) -> anthropic.BadRequestError:
        """The fake rejects `request` (sent without caproute) with an API 400."""
        async with opened(self.bare()) as client:
            with pytest.raises(anthropic.BadRequestError) as caught:
                await resolve(call(client)(**request))
        assert caught.value.body["error"]["type"] == "invalid_request_error"
        assert not caught.value.body["error"]["message"].startswith("caproute")
        return caught.value
