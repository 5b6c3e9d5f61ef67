"""LiveRouter: the registry source, policy swaps, what it learns from answers, reporting."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from caproute import LiveRouter, Policy, Registry, RegistrySource, Support
from caproute._core.decision import Decision
from caproute._core.flow import MarkOverloaded, MarkRetired, Refresh, Resolve, fallback_statuses
from caproute._registry.fetch import AsyncRegistryFetcher, RegistryFetcher
from caproute._runtime.memory import MAX_NAMES_ASKED, RESOLVE_INTERVAL_S
from caproute.testing import FakeAnthropic, make_model


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Async routers must hold under trio too: async SDK clients run under either."""
    return str(request.param)


MODELS = [
    make_model("claude-big-2", max_tokens=128_000),
    make_model("claude-small-1", unsupported=["effort.max", "pdf_input"], max_tokens=8192),
]
REGISTRY = Registry.from_models(MODELS)
PLAIN = {
    "model": "claude-small-1",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}
EFFORT_MAX = {**PLAIN, "output_config": {"effort": "max"}}
KEY = "sk-ant-secret-123"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": MODELS, "api_key": KEY}


def test_unchanged_body_is_the_same_object_and_reported_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Decision] = []
    router = LiveRouter(REGISTRY, on_decision=seen.append)
    with caplog.at_level(logging.DEBUG, logger="caproute"):
        result = router.route(PLAIN)
    assert result.body is PLAIN
    assert result.decision.outcome == "unchanged"
    assert seen == [result.decision]
    [record] = [r for r in caplog.records if r.name == "caproute"]
    assert record.levelno == logging.DEBUG
    assert record.caproute_decision is result.decision  # type: ignore[attr-defined]


def test_adjustments_are_logged_at_info_without_keys_or_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = LiveRouter(REGISTRY)
    body = {**EFFORT_MAX, "messages": [{"role": "user", "content": "top secret words"}]}
    with caplog.at_level(logging.INFO, logger="caproute"):
        result = router.route(body, headers={"x-api-key": KEY, "authorization": f"Bearer {KEY}"})
    assert result.decision.outcome == "adjusted"
    assert body["output_config"] == {"effort": "max"}  # the input is never mutated
    [record] = [r for r in caplog.records if r.name == "caproute"]
    assert record.levelno == logging.INFO
    assert "output_config.effort" in record.getMessage()
    assert KEY not in caplog.text and "top secret" not in caplog.text
    assert KEY not in repr(result.decision) and KEY not in repr(router)


def test_a_failing_hook_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(decision: Decision) -> None:
        raise RuntimeError("hook bug")

    seen: list[Decision] = []
    router = LiveRouter(REGISTRY, on_decision=[broken, seen.append])
    result = router.route(PLAIN)
    assert seen == [result.decision]
    assert "hook" in caplog.text and "hook bug" in caplog.text


def test_set_policy_swaps_atomically_and_a_bad_file_keeps_the_old_one(tmp_path: Path) -> None:
    router = LiveRouter(REGISTRY)
    assert router.route(EFFORT_MAX).decision.outcome == "adjusted"
    strict = tmp_path / "strict.yaml"
    strict.write_text("defaults:\n  on_unsupported: reject\n")
    router.set_policy(strict)
    assert router.route(EFFORT_MAX).decision.outcome == "rejected"
    broken = tmp_path / "broken.yaml"
    broken.write_text("defaults:\n  on_unsupportd: reject\n")
    with pytest.raises(Exception, match="broken.yaml:2"):
        router.set_policy(broken)
    assert router.route(EFFORT_MAX).decision.outcome == "rejected"
    router.set_policy(None)
    assert router.route(EFFORT_MAX).decision.outcome == "adjusted"


def test_a_retired_model_is_routed_around_from_then_on() -> None:
    router = LiveRouter(REGISTRY)
    router.carry_out(MarkRetired("claude-small-1", "404 not_found_error from claude-small-1"))
    decision = router.route(PLAIN).decision
    assert decision.outcome == "rerouted"
    assert decision.model == "claude-big-2"
    assert router.retired == frozenset({"claude-small-1"})
    assert "404" in (decision.candidates[0].reason or "")


def test_an_overloaded_model_cools_down_but_is_used_when_nothing_else_fits() -> None:
    clock = Clock()
    router = LiveRouter(REGISTRY, clock=clock, overload_cooldown_s=30)
    router.carry_out(MarkOverloaded("claude-small-1"))
    assert router.cooling == frozenset({"claude-small-1"})
    assert router.route(PLAIN).decision.model == "claude-big-2"
    # Also excluding the other candidate must not turn into a refusal.
    assert router.route(PLAIN, exclude=["claude-big-2"]).decision.model == "claude-small-1"
    clock.now += 31
    assert router.route(PLAIN).decision.model == "claude-small-1"
    assert router.cooling == frozenset()


def test_learned_facts_steer_routing_until_they_expire() -> None:
    wall = Clock()
    router = LiveRouter(REGISTRY, wall_clock=wall, learned_ttl_s=600)
    assert (
        router.route(
            {**PLAIN, "model": "claude-big-2", "output_config": {"effort": "max"}}
        ).decision.outcome
        == "unchanged"
    )
    fact = router.learn("claude-big-2", "effort.max", False, "a 400 named effort.max")
    assert (fact.learned_at, fact.expires_at) == (1000.0, 1600.0)
    adjusted = router.route({**PLAIN, "model": "claude-big-2", "output_config": {"effort": "max"}})
    assert adjusted.decision.outcome == "adjusted"
    assert adjusted.body["output_config"] == {"effort": "xhigh"}
    assert router.registry.learned_keys("claude-big-2") == frozenset({"effort.max"})
    wall.now += 601
    assert router.learned == ()
    again = router.route({**PLAIN, "model": "claude-big-2", "output_config": {"effort": "max"}})
    assert again.decision.outcome == "unchanged"


def test_only_a_change_of_the_live_record_ends_a_learned_fact() -> None:
    wall = Clock()
    router = LiveRouter(REGISTRY, wall_clock=wall)
    router.learn("claude-big-2", "effort.max", False, "a 400 named effort.max")
    newer = REGISTRY.with_source(RegistrySource("live", fetched_at=wall.now + 5))
    # A newer live list restating the record the fact was learned against: in force.
    assert newer.with_learned(router.learned).supports("claude-big-2", "effort.max") is (
        Support.UNSUPPORTED
    )
    # A newer live list whose record for the key changed: the fact is over.
    changed = Registry.from_models(
        [
            make_model("claude-big-2", max_tokens=128_000, unsupported=["effort.max"]),
            make_model("claude-small-1", max_tokens=8192, unsupported=["effort.max"]),
        ],
        source=RegistrySource("live", fetched_at=wall.now + 5),
    )
    laid = changed.with_learned(router.learned)
    assert laid.ended == router.learned
    assert laid.learned_keys("claude-big-2") == frozenset()


def test_a_router_with_another_policy_shares_what_either_learns() -> None:
    clock = Clock()
    router = LiveRouter(REGISTRY, clock=clock, wall_clock=clock)
    pinned = router.with_policy(
        Policy.model_validate({"routes": [{"name": "pinned", "candidates": ["claude-big-2"]}]})
    )
    big_max = {**PLAIN, "model": "claude-big-2", "output_config": {"effort": "max"}}
    assert pinned.policy is not router.policy
    assert pinned.route(PLAIN).decision.model == "claude-big-2"  # its own policy
    assert router.route(PLAIN).decision.model == "claude-small-1"

    pinned.learn("claude-big-2", "effort.max", False, "a 400 named effort.max")
    assert router.route(big_max).decision.outcome == "adjusted"  # learned by the other
    router.carry_out(MarkOverloaded("claude-small-1"))
    assert pinned.cooling == frozenset({"claude-small-1"})
    assert router.route(PLAIN).decision.model == "claude-big-2"
    router.carry_out(MarkRetired("claude-big-2", "404 not_found_error from claude-big-2"))
    assert pinned.retired == frozenset({"claude-big-2"})
    assert [f.key for f in pinned.learned] == [f.key for f in router.learned]


def test_a_flood_of_made_up_names_asks_the_models_api_a_bounded_number_of_times() -> None:
    class Fetcher:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def current(self) -> Registry:
            return REGISTRY

        def refresh(self) -> Registry:
            return REGISTRY

        def retrieve(self, model: str, *, max_wait: float | None = None) -> None:
            self.asked.append(model)

    clock = Clock()
    fetcher = Fetcher()
    router = LiveRouter(fetcher, clock=clock)
    for n in range(MAX_NAMES_ASKED + 50):
        router.carry_out(Resolve((f"made-up-{n}",), "unknown"))
    router.carry_out(Resolve(("made-up-0",), "unknown"))  # asked a moment ago
    assert len(fetcher.asked) == MAX_NAMES_ASKED
    assert len(set(fetcher.asked)) == MAX_NAMES_ASKED
    clock.now += RESOLVE_INTERVAL_S + 1
    router.carry_out(Resolve(("made-up-0",), "unknown"))
    assert fetcher.asked[-1] == "made-up-0" and len(fetcher.asked) == MAX_NAMES_ASKED + 1


def test_fallback_statuses_follow_the_matching_route() -> None:
    policy = Policy.from_text(
        "defaults:\n  fallback_on: [429]\n"
        "routes:\n  - name: big\n    match: {model: claude-big-*}\n    fallback_on: ['5xx']\n"
    )
    router = LiveRouter(REGISTRY, policy=policy)
    big = router.route({**PLAIN, "model": "claude-big-2"}).decision
    small = router.route(PLAIN).decision
    assert big.route == "big"
    assert {529, 500, 503} <= fallback_statuses(policy, big)
    assert 429 not in fallback_statuses(policy, big)
    assert fallback_statuses(policy, small) == frozenset({529, 429})
    assert fallback_statuses(Policy.default(), small) == frozenset({529})


def test_without_a_fetcher_nothing_refreshes() -> None:
    router = LiveRouter(REGISTRY)
    assert not router.can_refresh
    assert router.refresh() is False


def test_refresh_reads_new_data_and_is_rate_limited(
    fake: FakeAnthropic, request: pytest.FixtureRequest
) -> None:
    clock = Clock()
    fetcher = RegistryFetcher(api_key=KEY, base_url=fake.url, cache_file=False, background=False)
    request.addfinalizer(fetcher.close)
    router = LiveRouter(fetcher, clock=clock, min_refresh_interval_s=10)
    assert router.can_refresh
    assert router.route(EFFORT_MAX).decision.outcome == "passthrough"  # offline data: unknown
    assert router.refresh() is True
    assert router.route(EFFORT_MAX).decision.outcome == "adjusted"
    assert router.refresh() is False  # within the interval: skipped
    clock.now += 11
    assert router.refresh() is True
    assert fake.count("/v1/models") == 2


def test_a_failed_refresh_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    fetcher = RegistryFetcher(  # no credentials: refresh() raises ConfigError
        base_url="http://127.0.0.1:9", cache_file=False, background=False
    )
    router = LiveRouter(fetcher)
    assert router.refresh() is False
    assert "registry refresh failed" in caplog.text


@pytest.mark.anyio
async def test_async_fetcher(fake: FakeAnthropic, caplog: pytest.LogCaptureFixture) -> None:
    async with AsyncRegistryFetcher(
        api_key=KEY, base_url=fake.url, cache_file=False, background=False
    ) as fetcher:
        router = LiveRouter(fetcher)
        assert router.refresh() is False  # sync code can't drive it: logged, skipped
        offline = (await router.aview()).engine.registry
        assert "can't refresh from sync code" in caplog.text
        assert "claude-small-1" not in offline
        assert await router.arefresh() is True
        assert "claude-small-1" in router.registry
        assert router.route(EFFORT_MAX).decision.outcome == "adjusted"


@pytest.mark.anyio
async def test_arefresh_runs_a_sync_fetcher_off_the_event_loop(fake: FakeAnthropic) -> None:
    with RegistryFetcher(
        api_key=KEY, base_url=fake.url, cache_file=False, background=False
    ) as fetcher:
        router = LiveRouter(fetcher)
        assert await router.arefresh() is True
        assert "claude-small-1" in (await router.aview()).engine.registry


def test_default_source_is_live_only_with_credentials(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not LiveRouter().can_refresh
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    router = LiveRouter()
    try:
        assert router.can_refresh
        assert router.refresh() is True
        assert "claude-small-1" in router.registry
    finally:
        router.close()


def test_registry_and_fetcher_are_exclusive(fake: FakeAnthropic) -> None:
    fetcher = RegistryFetcher(api_key=KEY, base_url=fake.url, cache_file=False)
    with pytest.raises(TypeError):
        LiveRouter(REGISTRY, fetcher=fetcher)
    with pytest.raises(ValueError):
        LiveRouter(REGISTRY, max_attempts=0)


class _AsyncStubFetcher:
    """An async fetcher that counts its calls (no network)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.calls = 0

    async def current(self) -> Registry:
        self.calls += 1
        return self.registry

    async def refresh(self) -> Registry:
        self.calls += 1
        return self.registry


@pytest.mark.anyio
async def test_an_async_fetcher_is_only_ever_awaited() -> None:
    # `filterwarnings = error`: a coroutine created and never awaited would fail this.
    fetcher = _AsyncStubFetcher(REGISTRY)
    router = LiveRouter(fetcher)
    offline = router.registry  # sync read: the start-up data, current() not called
    assert fetcher.calls == 0
    assert "claude-small-1" not in offline
    assert router.route(PLAIN).decision.outcome == "passthrough"  # unknown offline
    assert fetcher.calls == 0
    assert (await router.aview()).engine.registry is REGISTRY
    assert fetcher.calls == 1
    assert router.registry is REGISTRY
    assert router.route(EFFORT_MAX).decision.outcome == "adjusted"


class _MinimalSyncSource:
    """A source written before the interface: ``current`` and ``refresh`` only."""

    def current(self) -> Registry:
        return REGISTRY

    def refresh(self) -> Registry:
        return REGISTRY


def test_a_minimal_source_gets_the_operations_it_lacks_as_ones_that_do_nothing() -> None:
    router = LiveRouter(_MinimalSyncSource())
    view = router.view()
    assert view.engine.registry is REGISTRY
    assert not view.can_resolve  # no `retrieve`: the flow never asks to resolve
    assert not view.can_wait  # no `may_go_live`: never waits for a first fetch
    router.carry_out(Refresh("cold start"))  # no `wait_live`: returns at once
    assert router.look_up("claude-unknown-9", max_wait=1) is False
    router.learn("claude-small-1", "parameters.top_k", False, "test")  # nothing to save


class _SlowSyncFetcher:
    """A sync fetcher whose refresh blocks for a while and records its thread."""

    def __init__(self) -> None:
        self.refresh_thread: int | None = None

    def current(self) -> Registry:
        return REGISTRY

    def refresh(self) -> Registry:
        self.refresh_thread = threading.get_ident()
        time.sleep(0.2)
        return REGISTRY


@pytest.mark.anyio
async def test_arefresh_runs_a_blocking_sync_refresh_in_a_worker_thread() -> None:
    fetcher = _SlowSyncFetcher()
    router = LiveRouter(fetcher)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        assert await router.arefresh() is True
        tg.cancel_scope.cancel()
    assert fetcher.refresh_thread is not None
    assert fetcher.refresh_thread != threading.get_ident()
    assert ticks >= 5  # the event loop kept running during the 0.2 s refresh


def test_cold_start_waits_for_the_first_live_fetch(fake: FakeAnthropic) -> None:
    with RegistryFetcher(api_key=KEY, base_url=fake.url, cache_file=False) as fetcher:
        router = LiveRouter(fetcher, cold_start_wait_s=5)
        view = router.view()  # starts the background fetch
        assert not view.live
        assert view.can_wait
        router.carry_out(Refresh("cold start"))
        after = router.view()
        assert after.live
        assert not after.can_wait
        assert "claude-small-1" in after.engine.registry


def test_no_cold_start_wait_without_credentials_or_after_a_failure(
    fake: FakeAnthropic,
) -> None:
    assert not LiveRouter(REGISTRY).view().can_wait
    fake.faults.add("/v1/models", status=500, x_should_retry=False)
    with RegistryFetcher(
        api_key=KEY, base_url=fake.url, cache_file=False, background=False
    ) as fetcher:
        router = LiveRouter(fetcher)
        assert router.view().can_wait
        router.carry_out(Refresh("cold start"))  # the fetch fails: back-off starts
        assert not router.view().can_wait
        assert fake.count("/v1/models") == 1


def test_learned_facts_are_saved_with_the_cache_and_adopted_at_start(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    cache = tmp_path / "registry.json"
    with RegistryFetcher(api_key=KEY, base_url=fake.url, cache_path=cache) as fetcher:
        fetcher.refresh()
        first = LiveRouter(fetcher)
        first.learn("claude-big-2", "effort.max", False, "a 400 named effort.max")
    assert "effort.max" in cache.read_text()
    with RegistryFetcher(
        api_key=KEY, base_url=fake.url, cache_path=cache, background=False
    ) as fetcher:
        second = LiveRouter(fetcher)
        assert [(f.model, f.key) for f in second.learned] == []  # not read yet
        body = {**PLAIN, "model": "claude-big-2", "output_config": {"effort": "max"}}
        assert second.route(body).decision.outcome == "adjusted"
        assert [(f.model, f.key) for f in second.learned] == [("claude-big-2", "effort.max")]


def test_with_the_models_api_down_one_fetch_per_back_off_window_and_a_bounded_wait(
    fake: FakeAnthropic,
) -> None:
    # Every Models API call fails (5xx); the fetcher gives up after a short retry budget.
    fake.faults.add("/v1/models*", status=503, times=None)
    fetcher = RegistryFetcher(
        api_key=KEY, base_url=fake.url, cache_file=False, max_retry_time=0.3, jitter=lambda: 0.0
    )
    router = LiveRouter(fetcher, cold_start_wait_s=2.0)
    refusal = "output_config.effort 'max' is not supported on this model."
    fake.faults.add("/v1/messages", status=400, message=refusal, times=None)
    started = time.monotonic()
    for _ in range(5):
        # Each call sees a learnable 400 (which asks for a background refresh).
        with pytest.raises(Exception):  # noqa: B017 - the upstream 400, whatever its class
            _send(router, fake, EFFORT_MAX)
    elapsed = time.monotonic() - started
    fetches_in_window = fake.count("/v1/models")
    assert elapsed < 2.0 + 1.0  # at most one bounded cold-start wait, never one per call
    assert 1 <= fetches_in_window <= 3  # the first (retried) attempt only: back-off holds
    assert not router.view().can_wait  # the failure's back-off: no further waits


def _send(router: LiveRouter, fake: FakeAnthropic, body: dict[str, Any]) -> None:
    import httpx2

    from caproute import RoutingTransport

    transport = RoutingTransport(httpx2.HTTPTransport(), router=router)
    with httpx2.Client(base_url=fake.url, headers=fake.headers(), transport=transport) as http:
        http.post("/v1/messages", json=body).raise_for_status()


def test_a_closed_fetcher_is_never_waited_for(fake: FakeAnthropic) -> None:
    fetcher = RegistryFetcher(api_key=KEY, base_url=fake.url, cache_file=False)
    router = LiveRouter(fetcher)
    assert router.view().can_wait
    fetcher.close()
    assert not router.view().can_wait
    assert fetcher.wait_live(1.0) is None
    assert fake.count("/v1/models") <= 1  # at most the fetch the first view started
