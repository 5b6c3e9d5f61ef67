"""The proxy's per-caller registry follows the fetcher's rules: one back-off after a
failure, one rate limit for background refreshes, no credential held.

Driven directly (no proxy) over `httpx2.MockTransport` with a fake clock.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx2
import pytest

from caproute import Policy, Registry
from caproute._proxy._callers import CallerRegistries, CallerRegistry, Credential, lend
from caproute._registry.fetch_async import AsyncRegistryFetcher
from caproute._registry.fetch_state import FAILURE_BACKOFF, MIN_BACKGROUND_INTERVAL
from caproute.testing import make_model

KEY = "sk-ant-caller-0123456789-SECRET"
START = 1_795_000_000.0
SHARED = Registry.from_models([make_model("claude-shared-1")])


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class ModelsApi:
    """``GET /v1/models`` answering `status` (200: one model), recording the keys sent."""

    def __init__(self) -> None:
        self.status = 400
        self.keys: list[str | None] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.keys.append(request.headers.get("x-api-key"))
        if self.status != 200:
            error = {"type": "invalid_request_error", "message": "no"}
            return httpx2.Response(self.status, json={"type": "error", "error": error})
        data: list[Any] = [make_model("claude-own-1")]
        return httpx2.Response(200, json={"data": data, "has_more": False})


def callers_over(api: ModelsApi, clock: Clock) -> CallerRegistries:
    return CallerRegistries(
        upstream="https://upstream.test",
        inner=httpx2.MockTransport(lambda request: httpx2.Response(500)),
        shared=lambda: SHARED,
        policy=Policy.default(),
        router_logger=logging.getLogger("tests.callers"),
        on_decision=lambda decision: None,
        fetch_transport=httpx2.MockTransport(api),
        clock=clock,
        wall_clock=clock,
    )


async def ready(callers: CallerRegistries) -> CallerRegistry:
    credential = Credential(KEY, bearer=False)
    entry = callers.lookup(credential)
    if entry.pending:
        await entry.ready(credential)
    return entry


@pytest.mark.anyio
async def test_a_caller_registry_is_a_fetcher_that_holds_no_credential() -> None:
    callers = callers_over(ModelsApi(), Clock())
    entry = await ready(callers)
    assert isinstance(entry, AsyncRegistryFetcher)
    assert KEY not in repr(entry._credentials.secrets())
    assert entry._credentials.secrets() == ()
    await callers.aclose()


@pytest.mark.anyio
async def test_a_failed_fetch_backs_off_as_long_as_any_fetchers() -> None:
    api, clock = ModelsApi(), Clock()
    callers = callers_over(api, clock)
    entry = await ready(callers)
    assert api.keys == [KEY]  # the first fetch, with the key the request lent
    assert entry.last_error is not None
    assert entry.source == "shared (first fetch pending)"
    assert entry.registry.ids == SHARED.ids

    api.status = 200
    clock.now += FAILURE_BACKOFF - 1
    await ready(callers)
    assert api.keys == [KEY]  # still backing off
    clock.now += 1
    entry = await ready(callers)
    assert api.keys == [KEY, KEY]
    assert entry.source == "caller"
    assert "claude-own-1" in entry.registry
    assert entry.last_error is None
    await callers.aclose()


@pytest.mark.anyio
async def test_refreshes_asked_for_are_rate_limited_as_any_fetchers() -> None:
    api, clock = ModelsApi(), Clock()
    api.status = 200
    callers = callers_over(api, clock)
    entry = await ready(callers)
    assert len(api.keys) == 1
    assert entry.refresh_in_background() is False  # no credential lent: nothing to send
    credential = Credential(KEY, bearer=False)
    with lend(credential):
        # The first fetch, made on the request's path, does not count.
        assert entry.refresh_in_background() is True
    await _settled(entry)
    assert len(api.keys) == 2
    with lend(credential):
        assert entry.refresh_in_background() is False  # within the interval
    clock.now += MIN_BACKGROUND_INTERVAL
    with lend(credential):
        assert entry.refresh_in_background() is True
    await _settled(entry)
    assert api.keys == [KEY, KEY, KEY]
    await callers.aclose()


async def _settled(entry: CallerRegistry) -> None:
    """Wait for the entry's fetch under way, if any."""
    flight = entry._flight
    if flight is not None:
        await flight  # type: ignore[misc]
