"""A fact lasts as long as it is true: sequences through `wrap` (SDK 2.x) and the proxy.

* A list that keeps claiming what the API refuses: one refusal reaches the fake, then
  none across refresh after refresh (each restating the same record).
* A catalogue that changes the record for the fact's key: the fact ends with the
  change, and the next request tries again.
* The TTL: a fact ends at its expiry (not a tick before), and a cache file's expired
  facts are not adopted on load.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from lifetime_helpers import (
    HI,
    KEY,
    WORDINGS,
    Path_,
    Proxied,
    Wording,
    effort_max,
    messages_sent,
    paths,
    refusal,
    refuse_next,
)

from caproute import LiveRouter, Registry, RegistrySource, Support
from caproute._registry.fetch import RegistryFetcher
from caproute.testing import FakeAnthropic, make_model

BIG, SMALL = "claude-lt-big-2", "claude-lt-small-1"


def lineup() -> list[dict[str, Any]]:
    """What the Models API lists: both models claim every capability."""
    return [
        make_model(BIG, line="lt", max_tokens=64_000),
        make_model(SMALL, line="lt", max_tokens=8192),
    ]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": lineup(), "api_key": KEY}


@pytest.fixture(params=["wrap", "proxy"])
def path(request: pytest.FixtureRequest, fake: FakeAnthropic) -> Iterator[Path_]:
    yield from paths(fake, request.param)


def as_sent(request: dict[str, Any]) -> dict[str, Any]:
    """The wire body of an SDK call's keywords (``extra_body`` merged in)."""
    extra = request.get("extra_body", {})
    return {**{k: v for k, v in request.items() if k != "extra_body"}, **extra}


def listed(fake: FakeAnthropic, model: str) -> dict[str, Any]:
    return next(m for m in fake.models() if m["id"] == model)


@pytest.mark.parametrize("wording", WORDINGS)
def test_a_list_that_keeps_claiming_what_the_api_refuses_costs_one_refusal(
    fake: FakeAnthropic, path: Path_, wording: Wording
) -> None:
    request = effort_max(SMALL)
    refused = refusal(
        as_sent(request), make_model(SMALL, unsupported=["effort.max"]), wording=wording
    )
    refuse_next(fake, "/v1/messages", refused)

    # Step 1: the API refuses what the list claims; learned, and the same call goes on.
    mark = len(fake.requests)
    assert path.create(**request) == 200
    efforts = [b.get("output_config") for b in messages_sent(fake, mark)]
    assert len(efforts) == 2 and efforts[0] == {"effort": "max"}
    assert efforts[1] != {"effort": "max"}

    # Steps 2-4: refresh after refresh, the list still says `supported: true`.
    for _ in range(3):
        lists = fake.count("/v1/models")
        path.refresh()
        assert fake.count("/v1/models") > lists
        assert listed(fake, SMALL)["capabilities"]["effort"]["max"] == {"supported": True}
        mark = len(fake.requests)
        assert path.create(**request) == 200
        sent = messages_sent(fake, mark)
        assert len(sent) == 1, "a refusal reached the API again"
        assert sent[0]["model"] == SMALL and sent[0].get("output_config") != {"effort": "max"}

    # No collateral change: the other model keeps its effort, content intact.
    mark = len(fake.requests)
    assert path.create(**effort_max(BIG)) == 200
    assert messages_sent(fake, mark) == [as_sent(effort_max(BIG))]


@pytest.mark.parametrize("wording", WORDINGS)
def test_a_change_of_the_record_ends_the_fact_and_the_next_request_tries_again(
    fake: FakeAnthropic, path: Path_, wording: Wording
) -> None:
    request = {"model": SMALL, "max_tokens": 6000, "messages": HI}
    refused = refusal(request, make_model(SMALL, max_tokens=4096), wording=wording)
    refuse_next(fake, "/v1/messages", refused)

    mark = len(fake.requests)
    assert path.create(**request) == 200
    assert [b["max_tokens"] for b in messages_sent(fake, mark)] == [6000, 4096]

    # The same record again (max_tokens 8192): the learned limit holds.
    path.refresh()
    mark = len(fake.requests)
    assert path.create(**request) == 200
    assert [b["max_tokens"] for b in messages_sent(fake, mark)] == [4096]

    # The record for the key changes (the limit was raised): the fact is over.
    fake.update_model(SMALL, max_tokens=16_384)
    path.refresh()
    mark = len(fake.requests)
    assert path.create(**request) == 200
    assert [b["max_tokens"] for b in messages_sent(fake, mark)] == [6000]


# -- the TTL, and what a cache file brings ------------------------------------------------


class WallClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


REGISTRY = Registry.from_models(lineup(), source=RegistrySource("live", fetched_at=1000.0))


@pytest.mark.parametrize(
    ("key", "value", "ttl"),
    [("effort.max", False, 6 * 3600.0), ("lifecycle", "retired", 7 * 86400.0)],
)
def test_a_learned_fact_ends_exactly_at_its_ttl(key: str, value: Any, ttl: float) -> None:
    wall = WallClock(2000.0)
    router = LiveRouter(REGISTRY, wall_clock=wall)
    fact = router.learn(SMALL, key, value, "a refusal")
    assert fact.expires_at == 2000.0 + ttl
    wall.now = fact.expires_at - 0.001
    assert router.learned == (fact,) and router.registry.learned_keys(SMALL) == {key}
    wall.now = fact.expires_at
    assert router.learned == () and router.registry.learned_keys(SMALL) == frozenset()
    wall.now = fact.expires_at + 0.001
    assert router.learned == ()


def test_expired_facts_in_a_cache_file_are_not_adopted_on_load(
    tmp_path: Path, fake: FakeAnthropic
) -> None:
    now = 50_000.0
    old = REGISTRY.new_fact(SMALL, "effort.max", False, reason="a 400", now=now - 6 * 3600.0)
    edge = REGISTRY.new_fact(BIG, "effort.max", False, reason="a 400", now=now - 6 * 3600.0 + 1)
    assert not old.in_force(now) and edge.in_force(now)
    cache = tmp_path / "registry.json"
    cache.write_text(json.dumps(REGISTRY.with_learned([old, edge]).to_json()))

    fetcher = RegistryFetcher(api_key=KEY, base_url=fake.url, cache_path=cache, background=False)
    router = LiveRouter(fetcher, wall_clock=WallClock(now))
    # The first look at the registry loads the file and adopts what is still in force.
    assert router.registry.supports(SMALL, "effort.max") is Support.SUPPORTED
    assert router.registry.supports(BIG, "effort.max") is Support.UNSUPPORTED
    assert router.learned == (edge,)
    assert fake.count("/v1/") == 0  # all of it from the file


def test_through_the_proxy_each_credential_pays_at_most_one_refusal() -> None:
    other_key = "sk-ant-scenario-other-key-4567"
    with FakeAnthropic(models=lineup(), api_key=KEY, keys={other_key: [BIG, SMALL]}) as fake:
        first = Proxied(fake)
        second = anthropic.Anthropic(base_url=first.proxy.url, api_key=other_key, max_retries=0)
        request = effort_max(SMALL)
        refused = refusal(
            as_sent(request), make_model(SMALL, unsupported=["effort.max"]), wording="api"
        )
        try:
            for caller in (first.client, second):
                refuse_next(fake, "/v1/messages", refused)
                mark = len(fake.requests)
                caller.messages.create(**request)
                efforts = [b.get("output_config") for b in messages_sent(fake, mark)]
                assert efforts[0] == {"effort": "max"} and len(efforts) == 2
            first.refresh()
            first.refresh(other_key)
            for caller in (first.client, second):
                mark = len(fake.requests)
                caller.messages.create(**request)
                (sent,) = messages_sent(fake, mark)
                assert sent.get("output_config") != {"effort": "max"}
        finally:
            second.close()
            first.close()
