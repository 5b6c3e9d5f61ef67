"""Name look-ups that never strand a request (issue 16, item 6).

A request naming a model the list doesn't show (here: aliases only
``GET /v1/models/{alias}`` resolves) is looked up before it is routed. The alias
names a model without ``effort.max``, and every request asks for it: resolved, the
request is adjusted and accepted; sent unresolved, the fake refuses it (400). So what
reached the fake tells whether each request waited for its look-up.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import anyio
import pytest
from lifetime_helpers import HI, KEY, Proxied, Wrapped, effort_max, messages_sent

import caproute
from caproute import LiveRouter, Registry
from caproute._exceptions import RegistryHTTPError, RegistryUnavailableError
from caproute._registry.fetch import AsyncRegistryFetcher, RegistryFetcher
from caproute.testing import FakeAnthropic, make_model

BIG, SMALL, GONE = "claude-lu-big-2", "claude-lu-small-1", "claude-lu-gone-1"
ALIAS = "claude-lu-mini-latest"
MANY = [f"claude-lu-alias-{i}" for i in range(16)]


def lineup() -> list[dict[str, Any]]:
    return [
        make_model(BIG, line="lu"),
        make_model(SMALL, line="lu", unsupported=["effort.max"]),
        # Retired: the list hides it, its messages answer 404, its record says so.
        make_model(GONE, line="lu", lifecycle="retired"),
    ]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    aliases = {ALIAS: SMALL, **dict.fromkeys(MANY, SMALL)}
    return {"models": lineup(), "aliases": aliases, "api_key": KEY}


def looked_up(fake: FakeAnthropic, name: str) -> int:
    """``GET /v1/models/{name}`` requests the fake received (that exact path)."""
    return sum(1 for r in fake.requests if r.path == f"/v1/models/{name}")


def none_refused(fake: FakeAnthropic, mark: int) -> bool:
    """No body with effort ``max`` went to the small model (the fake would refuse it)."""
    return all(b.get("output_config") != {"effort": "max"} for b in messages_sent(fake, mark))


def test_concurrent_threads_for_one_unlisted_name_wait_for_one_look_up(
    fake: FakeAnthropic,
) -> None:
    path = Wrapped(fake)
    fake.faults.add(f"/v1/models/{ALIAS}", delay=0.3)  # every request arrives meanwhile
    start = threading.Barrier(8)

    def one(_: int) -> int:
        start.wait()
        return path.create(**effort_max(ALIAS))

    mark = len(fake.requests)
    try:
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(8)))
    finally:
        path.close()
    assert statuses == [200] * 8
    assert looked_up(fake, ALIAS) == 1
    assert len(messages_sent(fake, mark)) == 8 and none_refused(fake, mark)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("fetcher_kind", ["async", "sync"])
async def test_concurrent_tasks_for_one_unlisted_name_wait_for_one_look_up(
    fake: FakeAnthropic, fetcher_kind: str
) -> None:
    options: Any = {
        "api_key": KEY,
        "base_url": fake.url,
        "cache_file": False,
        "background": False,
        "initial": Registry.from_models([]),
    }
    if fetcher_kind == "async":
        fetcher: Any = AsyncRegistryFetcher(**options)
        await fetcher.refresh()
    else:  # a sync fetcher under an async client: its look-ups run in worker threads
        fetcher = RegistryFetcher(**options)
        fetcher.refresh()
    router = LiveRouter(fetcher)
    fake.faults.add(f"/v1/models/{ALIAS}", delay=0.3)
    bare = anthropic.AsyncAnthropic(base_url=fake.url, api_key=KEY, max_retries=0)
    client = caproute.wrap(bare, router=router)
    mark = len(fake.requests)

    async def one() -> int:
        raw = await client.messages.with_raw_response.create(**effort_max(ALIAS))
        return raw.status_code

    statuses: list[int] = []

    async def record() -> None:
        statuses.append(await one())

    try:
        async with anyio.create_task_group() as tasks:  # asyncio and trio alike
            for _ in range(10):
                tasks.start_soon(record)
    finally:
        await client.close()
        await bare.close()
    assert statuses == [200] * 10
    assert looked_up(fake, ALIAS) == 1
    assert len(messages_sent(fake, mark)) == 10 and none_refused(fake, mark)


def test_many_names_at_once_for_one_proxy_caller_are_all_kept(fake: FakeAnthropic) -> None:
    path = Proxied(fake)
    fake.faults.add("/v1/models/claude-lu-alias-*", delay=0.2, times=None)
    try:
        assert path.create(model=BIG, max_tokens=10, messages=HI) == 200  # the caller's list
        mark = len(fake.requests)
        names = [name for name in MANY for _ in range(4)]
        with ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(lambda name: path.create(**effort_max(name)), names))
        assert statuses == [200] * len(names)
        assert [looked_up(fake, name) for name in MANY] == [1] * len(MANY)
        assert none_refused(fake, mark)
        # Every answer was kept: later requests need no look-up at all.
        fake.faults.clear()
        mark = len(fake.requests)
        assert all(path.create(**effort_max(name)) == 200 for name in MANY)
        assert fake.count("/v1/models", method="GET") == fake.count("/v1/models")
        assert [looked_up(fake, name) for name in MANY] == [1] * len(MANY)
        assert none_refused(fake, mark)
    finally:
        path.close()


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_look_up_the_models_api_failed_is_retried_after_a_short_back_off(
    fake: FakeAnthropic,
) -> None:
    clock = ManualClock()
    wrapped = Wrapped(fake)
    router = LiveRouter(wrapped.fetcher, clock=clock)
    client = caproute.wrap(wrapped.bare, router=router)
    fake.faults.add(f"/v1/models/{ALIAS}", status=503, x_should_retry=False)
    # The look-up fails: the request goes out unresolved (and the fake refuses it).
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**effort_max(ALIAS))
    assert looked_up(fake, ALIAS) == 1
    clock.now = 0.999  # within the back-off: not asked again
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**effort_max(ALIAS))
    assert looked_up(fake, ALIAS) == 1
    clock.now = 1.0  # the back-off is over: asked again on this request, and resolved
    mark = len(fake.requests)
    raw = client.messages.with_raw_response.create(**effort_max(ALIAS))
    assert raw.status_code == 200 and raw.headers["caproute-outcome"] == "adjusted"
    assert looked_up(fake, ALIAS) == 2 and none_refused(fake, mark)
    client.close()
    wrapped.close()


@pytest.mark.parametrize("which", ["wrap", "proxy"])
def test_a_404_for_a_name_never_resolved_triggers_one_look_up(
    fake: FakeAnthropic, which: str
) -> None:
    path = Wrapped(fake) if which == "wrap" else Proxied(fake)
    try:
        assert path.create(model=BIG, max_tokens=10, messages=HI) == 200
        # The look-up before sending fails, so the retired name goes out as it is.
        fake.faults.add(f"/v1/models/{GONE}", status=503, x_should_retry=False)
        mark = len(fake.requests)
        assert path.create(model=GONE, max_tokens=10, messages=HI) == 200
        assert [(r.method, r.path, r.model) for r in fake.requests[mark:]] == [
            ("GET", f"/v1/models/{GONE}", None),  # 503
            ("POST", "/v1/messages", GONE),  # 404: retired
            ("GET", f"/v1/models/{GONE}", None),  # its record: retired, line "lu"
            ("POST", "/v1/messages", BIG),  # rerouted by its line, same call
        ]
        # Known now: rerouted by its line before sending.
        mark = len(fake.requests)
        assert path.create(model=GONE, max_tokens=10, messages=HI) == 200
        assert [(r.method, r.path) for r in fake.requests[mark:]] == [("POST", "/v1/messages")]
    finally:
        path.close()


class FailingModelsApi:
    """A sync fetcher whose ``GET /v1/models/{name}`` fails the first `failures` times."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.registry = Registry.from_models([make_model(BIG, line="lu")])
        self.failures, self.error, self.asked = failures, error, 0

    def current(self) -> Registry:
        return self.registry

    def refresh(self) -> Registry:
        return self.registry

    def retrieve(self, name: str, *, max_wait: float | None = None) -> None:
        self.asked += 1
        if self.asked <= self.failures:
            raise self.error


def test_the_back_off_doubles_per_failure_and_an_answer_ends_it() -> None:
    clock = ManualClock()
    models_api = FailingModelsApi(3, RegistryUnavailableError("the Models API kept failing"))
    router = LiveRouter(models_api, clock=clock)
    asked_at = []
    for now in [0.0, 0.5, 1.0, 2.5, 3.0, 6.9, 7.0, 8.0, 66.9, 67.0]:
        clock.now = now
        before = models_api.asked
        router.look_up("claude-lu-nowhere", max_wait=1.0)
        if models_api.asked > before:
            asked_at.append(now)
    # Failures at 0, 1 and 3 (back-offs of 1, 2 and 4 s), an answer at 7: then a minute.
    assert asked_at == [0.0, 1.0, 3.0, 7.0, 67.0]


def test_a_refused_look_up_is_not_retried_soon() -> None:
    clock = ManualClock()
    models_api = FailingModelsApi(5, RegistryHTTPError(403, "forbidden"))
    router = LiveRouter(models_api, clock=clock)
    for now in [0.0, 1.0, 30.0, 59.9]:
        clock.now = now
        router.look_up("claude-lu-nowhere", max_wait=1.0)
    assert models_api.asked == 1
