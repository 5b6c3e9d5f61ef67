"""Closing a wrapped client stops the registry fetcher `wrap` made for it, and only that.

Runs in both SDK generations (2.x here, 0.x with ``make test-sdk0``), sync and async,
on the transport and the middleware path. The fetcher `wrap` makes is recorded by
wrapping `caproute._wrap.client._fetcher_for` (the real one still builds it), so the tests can
ask it, through its public methods, whether it would still refresh.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import anthropic
import pytest
from sdk_helpers import SMALL, resolve

import caproute
from caproute._registry.fetch import AsyncRegistryFetcher, RegistryFetcher
from caproute._registry.snapshot import user_cache_path
from caproute._wrap import client as _wrap
from caproute.testing import FakeAnthropic

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("via", ["transport", "middleware"])]
sync_and_async = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])

REQUEST: dict[str, Any] = {
    "model": SMALL,
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Hello"}],
}


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The registry fetchers `wrap` makes, in order."""
    fetchers: list[Any] = []
    real = _wrap._fetcher_for

    def recording(client: Any, *, is_async: bool) -> Any:
        fetcher = real(client, is_async=is_async)
        fetchers.append(fetcher)
        return fetcher

    monkeypatch.setattr(_wrap, "_fetcher_for", recording)
    return fetchers


def sdk_client(fake: FakeAnthropic, *, is_async: bool) -> Any:
    sdk_class = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return sdk_class(base_url=fake.url, api_key=fake.api_key, max_retries=0)


def registry_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("caproute-registry")}


def refresh_tasks() -> set[asyncio.Task[Any]]:
    """Background refreshes of async fetchers still running (named like the threads)."""
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("caproute-registry")}


async def start_refresh_if_stale(fetcher: Any) -> None:
    """What every routed request does first: read the fetcher, which starts a background
    refresh (a thread, or a task) when its data is not fresh."""
    await resolve(fetcher.current())


async def wait_for_refreshes() -> None:
    for thread in registry_threads():
        thread.join(timeout=10)
    if tasks := refresh_tasks():
        await asyncio.wait(tasks, timeout=10)


@sync_and_async
async def test_with_exit_stops_the_fetcher_wrap_made(
    is_async: bool, via: str, fake: FakeAnthropic, made: list[Any]
) -> None:
    routed = caproute.wrap(sdk_client(fake, is_async=is_async), via=via)
    if is_async:
        async with routed as client:
            message = await client.messages.create(**REQUEST)
    else:
        with routed as client:
            message = client.messages.create(**REQUEST)
    assert message.model == SMALL
    (fetcher,) = made
    assert isinstance(fetcher, AsyncRegistryFetcher if is_async else RegistryFetcher)
    assert fetcher.background is False
    await wait_for_refreshes()
    assert not registry_threads() and not refresh_tasks()


@sync_and_async
async def test_a_closed_client_starts_no_refresh(
    is_async: bool, via: str, fake: FakeAnthropic, made: list[Any]
) -> None:
    # Control: a wrapped client still open refreshes its stale data in the background.
    open_client = caproute.wrap(sdk_client(fake, is_async=is_async), via=via)
    await start_refresh_if_stale(made[0])
    await wait_for_refreshes()
    assert fake.count("/v1/models", method="GET") == 1
    await resolve(open_client.close())

    fake.reset()
    closed = caproute.wrap(sdk_client(fake, is_async=is_async), via=via)
    await resolve(closed.close())
    before = registry_threads()
    await start_refresh_if_stale(made[1])  # stale: nothing fetched yet
    assert registry_threads() == before and not refresh_tasks()
    assert made[1].refresh_in_background() is False
    assert fake.count("/v1/models") == 0


@sync_and_async
async def test_closing_twice_releases_once(
    is_async: bool, via: str, fake: FakeAnthropic, made: list[Any]
) -> None:
    routed = caproute.wrap(sdk_client(fake, is_async=is_async), via=via)
    await resolve(routed.close())
    await resolve(routed.close())
    assert made[0].background is False


@sync_and_async
async def test_a_fetcher_or_router_the_caller_passed_keeps_running(
    is_async: bool, via: str, fake: FakeAnthropic, made: list[Any]
) -> None:
    fetcher_class = AsyncRegistryFetcher if is_async else RegistryFetcher
    options = {"base_url": fake.url, "api_key": fake.api_key}
    shared_fetcher = fetcher_class(**options)
    fetcher_of_router = fetcher_class(**options)
    router = caproute.LiveRouter(fetcher_of_router)
    with_fetcher = caproute.wrap(
        sdk_client(fake, is_async=is_async), registry=shared_fetcher, via=via
    )
    with_router = caproute.wrap(sdk_client(fake, is_async=is_async), router=router, via=via)
    for client in (with_fetcher, with_router):
        message = await resolve(client.messages.create(**REQUEST))
        assert message.model == SMALL
        await resolve(client.close())
    assert made == []  # wrap made none: it had one
    assert shared_fetcher.background is True and fetcher_of_router.background is True
    # The router still serves other clients after one of them closed.
    another = caproute.wrap(sdk_client(fake, is_async=is_async), router=router, via=via)
    assert (await resolve(another.messages.create(**REQUEST))).model == SMALL
    await resolve(another.close())
    await wait_for_refreshes()
    if is_async:
        await shared_fetcher.aclose()
        await fetcher_of_router.aclose()


async def test_async_exit_cancels_a_refresh_under_way(
    via: str, fake: FakeAnthropic, made: list[Any]
) -> None:
    # Async only: a thread can't be cancelled (a sync refresh under way ends on its own).
    fake.faults.add("/v1/models", delay=5.0)
    async with caproute.wrap(sdk_client(fake, is_async=True), via=via):
        assert made[0].refresh_in_background() is True
        await asyncio.sleep(0.2)  # the refresh is waiting for the slow answer
        started = time.monotonic()
    assert time.monotonic() - started < 2.0
    assert not refresh_tasks()
    assert not user_cache_path(fake.url).exists()  # the cancelled fetch saved nothing
