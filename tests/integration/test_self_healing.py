"""Self-healing and capability-aware fallback, end to end: the real SDK, `wrap()`, the fake.

The fake's catalogue changes while the router still holds the old registry, a model
is retired under it, or a model is overloaded; every test counts what actually
reached the fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from sdk_helpers import EFFORT_MAX, HI

import caproute
from caproute import LiveRouter
from caproute._registry.fetch import AsyncRegistryFetcher, RegistryFetcher
from caproute.testing import FakeAnthropic, make_model

MODELS = [
    make_model("claude-big-2", max_tokens=128_000),
    make_model("claude-small-1", max_tokens=8192),
]
KEY = "test-key-heal"
PLAIN: dict[str, Any] = {"model": "claude-small-1", "max_tokens": 100, "messages": HI}


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": MODELS, "api_key": KEY}


class RetryHint(httpx2.BaseTransport):
    """Adds ``retry-after-ms: 1`` to 529s, as an API hint would: the SDK's retries then
    wait a millisecond instead of its 0.5 s+ backoff, and the test stays fast."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        if response.status_code == 529:
            response.headers["retry-after-ms"] = "1"
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def fetcher(fake: FakeAnthropic) -> Iterator[RegistryFetcher]:
    """A live registry fetcher that has read the fake's catalogue once."""
    with RegistryFetcher(
        api_key=KEY, base_url=fake.url, cache_file=False, background=False
    ) as live:
        live.refresh()
        yield live


def messages_sent(fake: FakeAnthropic, since: int = 0) -> list[str | None]:
    """The model of every ``/v1/messages`` request the fake received after request `since`."""
    return [r.model for r in fake.requests[since:] if r.path == "/v1/messages"]


def test_a_capability_lost_mid_run_is_learned_from_the_refusal(
    fake: FakeAnthropic, fetcher: RegistryFetcher
) -> None:
    with caproute.wrap(fake.client(), registry=fetcher) as client:
        assert client.messages.create(**EFFORT_MAX).model == "claude-small-1"

        fake.update_model("claude-small-1", unsupported=["effort.max"])
        with fake.client() as plain, pytest.raises(anthropic.BadRequestError):
            plain.messages.create(**EFFORT_MAX)  # the fake now refuses it
        mark = len(fake.requests)

        raw = client.messages.with_raw_response.create(**EFFORT_MAX)
        assert raw.parse().model == "claude-small-1"
        assert raw.headers["caproute-changes"] == "output_config.effort: max -> xhigh"
        # The 400 (registry still said 'max' was fine), then the adjusted retry.
        assert messages_sent(fake, mark) == ["claude-small-1", "claude-small-1"]
        decision = raw.http_response.extensions["caproute_decision"]
        assert decision.extra["attempt"] == 2
        assert "learned effort.max" in decision.extra["cause"]

        # Learned: the next call is adjusted before it is sent.
        mark = len(fake.requests)
        client.messages.create(**EFFORT_MAX)
        assert messages_sent(fake, mark) == ["claude-small-1"]


def test_a_retired_model_is_marked_and_routed_around(
    fake: FakeAnthropic, fetcher: RegistryFetcher
) -> None:
    router = LiveRouter(fetcher)
    with caproute.wrap(fake.client(), router=router) as client:
        fake.retire("claude-small-1")
        raw = client.messages.with_raw_response.create(**PLAIN)
        assert raw.parse().model == "claude-big-2"
        assert raw.headers["caproute-outcome"] == "rerouted"
        assert messages_sent(fake) == ["claude-small-1", "claude-big-2"]
        assert router.retired == frozenset({"claude-small-1"})

        mark = len(fake.requests)
        client.messages.create(**PLAIN)
        assert messages_sent(fake, mark) == ["claude-big-2"]  # no second 404


def sdk_client(fake: FakeAnthropic, max_retries: int) -> anthropic.Anthropic:
    return fake.client(max_retries=max_retries, http_client=httpx2.Client(transport=RetryHint()))


def test_an_overloaded_model_falls_back_to_the_next_candidate(fake: FakeAnthropic) -> None:
    registry = caproute.Registry.from_models(MODELS)
    with caproute.wrap(sdk_client(fake, max_retries=2), registry=registry) as client:
        fake.overload("claude-small-1")
        raw = client.messages.with_raw_response.create(**PLAIN)
        assert raw.parse().model == "claude-big-2"
        assert raw.headers["caproute-model"] == "claude-big-2"
        assert messages_sent(fake) == ["claude-small-1", "claude-big-2"]

        # While it cools down, calls go straight to the fallback: no 529 round trip.
        mark = len(fake.requests)
        client.messages.create(**PLAIN)
        assert messages_sent(fake, mark) == ["claude-big-2"]


def test_when_everything_is_overloaded_the_sdk_retries_do_not_multiply(
    fake: FakeAnthropic,
) -> None:
    registry = caproute.Registry.from_models(MODELS)
    max_retries = 2
    with caproute.wrap(sdk_client(fake, max_retries), registry=registry) as client:
        fake.overload("claude-small-1")
        fake.overload("claude-big-2")
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(**PLAIN)
    assert caught.value.status_code == 529
    sent = messages_sent(fake)
    # One fallback on the first attempt; each SDK retry then sends once.
    assert sent == ["claude-small-1", "claude-big-2", "claude-small-1", "claude-small-1"]
    assert len(sent) == (max_retries + 1) + 1


def test_fallback_on_from_the_policy(fake: FakeAnthropic) -> None:
    policy = caproute.Policy.from_text("defaults:\n  fallback_on: [503]\n")
    fake.overload("claude-small-1", status=503)
    registry = caproute.Registry.from_models(MODELS)
    with caproute.wrap(fake.client(), registry=registry, policy=policy) as client:
        assert client.messages.create(**PLAIN).model == "claude-big-2"
    mark = len(fake.requests)
    with (
        caproute.wrap(fake.client(), registry=registry) as client,
        pytest.raises(anthropic.InternalServerError),
    ):
        client.messages.create(**PLAIN)
    assert messages_sent(fake, mark) == ["claude-small-1"]


def test_wrap_reads_the_lineup_from_the_clients_own_endpoint(fake: FakeAnthropic) -> None:
    # No registry given: wrap() builds a fetcher from the client's base URL and key,
    # so a model the offline snapshot has never heard of is learnt on the first 400.
    fake.update_model("claude-small-1", unsupported=["effort.max", "effort.xhigh"])
    with caproute.wrap(fake.client()) as client:
        raw = client.messages.with_raw_response.create(**EFFORT_MAX)
    assert raw.headers["caproute-changes"] == "output_config.effort: max -> high"
    assert fake.count("/v1/models") >= 1


@pytest.mark.anyio
async def test_async_self_healing(fake: FakeAnthropic) -> None:
    async with AsyncRegistryFetcher(
        api_key=KEY, base_url=fake.url, cache_file=False, background=False
    ) as live:
        await live.refresh()
        router = LiveRouter(live)
        async with caproute.wrap(fake.async_client(), router=router) as client:
            fake.update_model("claude-small-1", unsupported=["effort.max"])
            raw = await client.messages.with_raw_response.create(**EFFORT_MAX)
            assert raw.headers["caproute-changes"] == "output_config.effort: max -> xhigh"
            fake.retire("claude-small-1")
            message = await client.messages.create(**PLAIN)
            assert message.model == "claude-big-2"
    assert messages_sent(fake) == [
        "claude-small-1",
        "claude-small-1",
        "claude-small-1",
        "claude-big-2",
    ]
