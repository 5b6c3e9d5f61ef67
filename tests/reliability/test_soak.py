"""Soak: 64 threads and 64 tasks at once; nothing lost, duplicated, mixed up or leaked.

Each request carries a unique id (in ``metadata.user_id``) and the fake answers with
that id, so every response can be matched to its request. Per round, 64 threads (one
shared sync client) and 64 asyncio tasks (one shared async client) each send
`PER_WORKER` requests at the same time, through `caproute.wrap` and through the proxy
(pass-through mode: it reads the Models API with the caller's key). Then:

* every response carries its own request's id (nothing mixed up);
* the fake received every id exactly once (nothing lost, nothing duplicated);
* the Models API was read at most once per registry window (the TTL), however many
  requests found the registry stale at the same moment (single flight);
* resident memory after the last round is within a small margin of that after the
  first (memory flat: nothing accumulates per request).

The CI form runs 3 rounds of 3 requests per worker (1,152 requests per path, ~20 s
for both); ``CAPROUTE_SOAK=1`` runs 12 rounds of 25 (38,400 per path, minutes).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest
from reliability_helpers import API_KEY, RunningProxy

import caproute
from caproute import LiveRouter
from caproute._proxy import ProxyConfig, create_proxy_app
from caproute._registry.fetch import AsyncRegistryFetcher, RegistryFetcher
from caproute.testing import FakeAnthropic

SOAK = bool(os.environ.get("CAPROUTE_SOAK"))
ROUNDS = 12 if SOAK else 3
PER_WORKER = 25 if SOAK else 3
THREADS = TASKS = 64
WINDOW = 0.5
"""The registry TTL: the Models API may be read once per window, no more."""
MEMORY_MARGIN = 24 * 1024 * 1024
# uvicorn (the fake, the proxy) closes a connection idle for 5 s; a client reusing it at
# that moment gets a reset. Clients here let idle connections go after 2 s instead.
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=2)


def sdk_options(base_url: str, api_key: str, *, is_async: bool = False) -> dict[str, Any]:
    http_client = (
        anthropic.DefaultAsyncHttpxClient(limits=LIMITS)
        if is_async
        else anthropic.DefaultHttpxClient(limits=LIMITS)
    )
    return {"base_url": base_url, "api_key": api_key, "max_retries": 0, "http_client": http_client}


def echo_id(body: dict[str, Any], model_id: str) -> str:
    return f"answer to {body['metadata']['user_id']} from {model_id}"


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": API_KEY, "reply": echo_id}


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def body_for(request_id: str, i: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "metadata": {"user_id": request_id},
        "messages": [{"role": "user", "content": f"request {request_id}"}],
    }
    if i % 2:
        body["output_config"] = {"effort": "max"}  # adjusted by caproute on every path
    return body


class Round:
    """One round: threads and tasks sending at once; results collected per request id."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.answers: dict[str, str] = {}
        self.lock = threading.Lock()

    def record(self, request_id: str, message: Any, outcome: str, expected: str) -> None:
        assert outcome == expected, (request_id, outcome)
        with self.lock:
            assert request_id not in self.answers  # each request answered once
            self.answers[request_id] = message.content[0].text

    def run(self, sync_client: Any, async_client_factory: Callable[[], Any]) -> None:
        barrier = threading.Barrier(THREADS + 1)
        errors: list[BaseException] = []

        def worker(t: int) -> None:
            try:
                barrier.wait(30)
                create = sync_client.messages.with_raw_response.create
                for i in range(PER_WORKER):
                    request_id = f"r{self.number}-t{t}-{i}"
                    raw = create(**body_for(request_id, i))
                    expected = "adjusted" if i % 2 else "unchanged"
                    self.record(request_id, raw.parse(), raw.headers["caproute-outcome"], expected)
            except BaseException as exc:
                errors.append(exc)

        async def tasks() -> None:
            client = async_client_factory()

            async def task(k: int) -> None:
                create = client.messages.with_raw_response.create
                for i in range(PER_WORKER):
                    request_id = f"r{self.number}-a{k}-{i}"
                    raw = await create(**body_for(request_id, i))
                    expected = "adjusted" if i % 2 else "unchanged"
                    message = await raw.parse()
                    self.record(request_id, message, raw.headers["caproute-outcome"], expected)

            async with client:
                barrier.wait(30)
                await asyncio.gather(*(task(k) for k in range(TASKS)))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        try:
            asyncio.run(tasks())
        except BaseException:
            barrier.abort()  # threads still waiting to start give up instead of hanging
            raise
        finally:
            for thread in threads:
                thread.join(60)
        if errors:
            raise errors[0]

    def check(self, fake: FakeAnthropic) -> None:
        expected = THREADS * PER_WORKER + TASKS * PER_WORKER
        assert len(self.answers) == expected
        for request_id, text in self.answers.items():  # nothing mixed up
            assert text.startswith(f"answer to {request_id} from "), (request_id, text)
        received = Counter(
            r.body["metadata"]["user_id"]
            for r in fake.requests
            if r.path == "/v1/messages" and isinstance(r.body, dict)
        )
        assert set(received) == set(self.answers)  # nothing lost, nothing invented
        assert max(received.values()) == 1  # nothing sent twice


def soak(fake: FakeAnthropic, sync_client: Any, async_client_factory: Callable[[], Any]) -> None:
    started = time.monotonic()
    fetches = 0
    memory: list[int] = []
    for number in range(ROUNDS):
        fake.reset()
        this_round = Round(number)
        this_round.run(sync_client, async_client_factory)
        this_round.check(fake)
        fetches += fake.count("/v1/models")
        gc.collect()
        memory.append(resident_bytes())
    elapsed = time.monotonic() - started
    # One fetch per window at most (+1: the window the run started in), for each of
    # the two fetchers of the run (sync and async clients; the proxy has one).
    windows = math.ceil(elapsed / WINDOW) + 1
    assert fetches <= 2 * windows, (fetches, windows)
    assert fetches >= 1  # the registry did go stale and was refreshed
    print(
        f"{ROUNDS * 2 * THREADS * PER_WORKER} requests in {elapsed:.1f} s, {fetches} Models API "
        f"reads ({windows} windows); resident MiB per round: {[m >> 20 for m in memory]}"
    )
    assert memory[-1] - memory[0] < MEMORY_MARGIN, [m >> 20 for m in memory]


def test_soak_through_wrap(fake: FakeAnthropic) -> None:

    def fetcher(cls: type[Any]) -> Any:
        return cls(api_key=API_KEY, base_url=fake.url, ttl=WINDOW, cache_file=False)

    sync_fetcher = fetcher(RegistryFetcher)
    sync_fetcher.refresh()
    sync_client = caproute.wrap(
        anthropic.Anthropic(**sdk_options(fake.url, API_KEY)),
        router=LiveRouter(sync_fetcher),
    )
    async_fetcher = fetcher(AsyncRegistryFetcher)

    def async_client() -> Any:
        options = sdk_options(fake.url, API_KEY, is_async=True)
        return caproute.wrap(anthropic.AsyncAnthropic(**options), router=LiveRouter(async_fetcher))

    with sync_client:
        soak(fake, sync_client, async_client)
    sync_fetcher.close()


def test_soak_through_the_proxy(fake: FakeAnthropic) -> None:
    # Pass-through mode: the proxy reads the Models API with the caller's own key, one
    # registry per caller; here one caller, so at most one read per window.
    config = ProxyConfig(upstream=fake.url, registry_ttl=WINDOW)
    # The proxy's pool too must let idle connections to the fake go before the fake does
    # (its default expiry, 5 s, is uvicorn's keep-alive: a reused one can be reset).
    inner = httpx2.AsyncHTTPTransport(limits=LIMITS)
    with RunningProxy(config, app=lambda c: create_proxy_app(c, inner_transport=inner)) as proxy:
        with anthropic.Anthropic(**sdk_options(proxy.url, API_KEY)) as sync_client:
            soak(
                fake,
                sync_client,
                lambda: anthropic.AsyncAnthropic(**sdk_options(proxy.url, API_KEY, is_async=True)),
            )
        assert proxy.app.metrics.in_flight == 0
