"""Fault injection: the Models API misbehaves while traffic flows; no request notices.

For the length of the run the fake's Models API answers every other request with 500,
429 or 529, or only after a slow pause (`CYCLE`). Meanwhile 2,000
Messages requests go through `caproute.wrap` (1,000 from 16 threads on a sync client,
1,000 from 16 tasks on an async one) and 2,000 through the proxy (pass-through mode: it
reads the Models API with the caller's key), with a registry TTL short enough that the
registry is refetched many times during the run. The SDK clients don't retry (``max_retries=0``):
a request that failed would show.

What must hold: every request succeeds, adjusted requests are adjusted, the Models API
was really asked (and really failed) during the run, and no request waits for it.

``CAPROUTE_SOAK=1`` runs five times as many requests.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
from reliability_helpers import API_KEY, HI, RunningProxy

import caproute
from caproute import LiveRouter
from caproute._proxy import ProxyConfig
from caproute._registry.fetch import AsyncRegistryFetcher, RegistryFetcher
from caproute.testing import FakeAnthropic

SCALE = 5 if os.environ.get("CAPROUTE_SOAK") else 1
REQUESTS = 2_000 * SCALE
WORKERS = 16
TTL = 0.25
"""Seconds the registry stays fresh: refetched in the background many times per run."""
SLOW = 2.0
"""A slow Models API answer: far longer than any Messages request takes here (the
slowest of 2,000 under this load is ~0.5 s), so a request that waited for one shows."""
FAULTS = 3_000 * SCALE
"""Models API answers scripted (far more than a run asks for; the rest is dropped)."""

PLAIN = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI}
# claude-haiku-4-5 has no effort levels: the fake answers 400 unless caproute strips it.
NEEDS_FIX = {**PLAIN, "output_config": {"effort": "max"}}


# Every other answer misbehaves: a failure of each kind, or a slow answer.
CYCLE = ("500", "ok", "slow", "ok", "429", "ok", "529", "ok")


def break_models_api(fake: FakeAnthropic, count: int) -> list[str]:
    """Queue `count` Models API answers following `CYCLE`; returns them in order."""
    script = [CYCLE[i % len(CYCLE)] for i in range(count)]
    for answer in script:
        if answer == "slow":
            fake.faults.add("/v1/models*", delay=SLOW)
        elif answer == "429":
            fake.faults.add("/v1/models*", status=429, headers={"retry-after-ms": "20"})
        elif answer != "ok":
            fake.faults.add("/v1/models*", status=int(answer))
        else:
            fake.faults.add("/v1/models*")  # a normal answer
    return script


def one_call(create: Callable[..., Any], i: int) -> tuple[float, str]:
    body = NEEDS_FIX if i % 3 == 0 else PLAIN
    started = time.perf_counter()
    response = create(**body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    outcome = response.headers["caproute-outcome"]
    assert outcome == ("adjusted" if body is NEEDS_FIX else "unchanged"), outcome
    return elapsed, outcome


def assert_undisturbed(
    latencies: list[float], fake: FakeAnthropic, script: list[str], pending_before: int
) -> None:
    assert len(latencies) == REQUESTS
    # The Models API was asked during the run and misbehaved as scripted: failures of
    # each kind and slow answers...
    answered = script[: pending_before - fake.faults.pending("/v1/models*")]
    assert len(answered) >= 3, answered  # a failure, a success and a slow answer at least
    # ...and no request waited for it.
    assert max(latencies) < SLOW, max(latencies)


def test_wrap_serves_every_request_while_the_models_api_fails(fake: FakeAnthropic) -> None:
    half = REQUESTS // 2
    fetcher = RegistryFetcher(api_key=API_KEY, base_url=fake.url, ttl=TTL, cache_file=False)
    fetcher.refresh()  # live data first; from here on the Models API misbehaves
    script = break_models_api(fake, FAULTS)
    pending = fake.faults.pending("/v1/models*")
    sync_client = caproute.wrap(
        anthropic.Anthropic(base_url=fake.url, api_key=API_KEY, max_retries=0),
        router=LiveRouter(fetcher),
    )
    with sync_client, ThreadPoolExecutor(WORKERS) as pool:
        create = sync_client.messages.with_raw_response.create
        sync_results = list(pool.map(lambda i: one_call(create, i), range(half)))

    async def async_half() -> list[tuple[float, str]]:
        async_fetcher = AsyncRegistryFetcher(
            api_key=API_KEY, base_url=fake.url, ttl=TTL, cache_file=False, initial=fetcher.current()
        )
        client = caproute.wrap(
            anthropic.AsyncAnthropic(base_url=fake.url, api_key=API_KEY, max_retries=0),
            router=LiveRouter(async_fetcher),
        )
        create = client.messages.with_raw_response.create
        gate = asyncio.Semaphore(WORKERS)

        async def call(i: int) -> tuple[float, str]:
            async with gate:
                started = time.perf_counter()
                response = await create(**(NEEDS_FIX if i % 3 == 0 else PLAIN))
                assert response.status_code == 200
                return time.perf_counter() - started, response.headers["caproute-outcome"]

        async with client:
            return await asyncio.gather(*(call(i) for i in range(half)))

    async_results = asyncio.run(async_half())
    fetcher.close()

    assert [o for _, o in async_results].count("adjusted") == len(range(0, half, 3))
    assert_undisturbed([t for t, _ in sync_results + async_results], fake, script, pending)


def test_the_proxy_serves_every_request_while_the_models_api_fails(fake: FakeAnthropic) -> None:
    # Pass-through mode (the default): the proxy reads the Models API with the caller's
    # own key, and refreshes that caller's registry every TTL.
    config = ProxyConfig(upstream=fake.url, registry_ttl=TTL)
    with RunningProxy(config) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=0)
        with client, ThreadPoolExecutor(WORKERS) as pool:
            create = client.messages.with_raw_response.create
            one_call(create, 0)  # the caller's first request: its registry is fetched
            script = break_models_api(fake, FAULTS)
            pending = fake.faults.pending("/v1/models*")
            results = list(pool.map(lambda i: one_call(create, i), range(REQUESTS)))
        assert proxy.metric('caproute_proxy_requests_total{outcome="adjusted"}') == 1 + len(
            range(0, REQUESTS, 3)
        )
        assert proxy.metric("caproute_proxy_upstream_errors_total") == 0
        assert proxy.metric("caproute_proxy_requests_total") == 1 + REQUESTS
    assert_undisturbed([t for t, _ in results], fake, script, pending)
