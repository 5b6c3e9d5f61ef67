"""The SDK's wire paths through caproute, as a demanding user drives them.

Runs in all three SDK generations (2.x here, 1.x with ``make test-sdk1``, 0.x with
``make test-sdk0``), sync and async, through every way into caproute (`PATHS`):
the streaming helper and ``stream=True`` (an ``error`` event after the 200, a 400, 404
or 529 on a streamed call going through the learning/fallback flow), ``count_tokens``
and batches on the beta namespace, raw and streaming responses, ``extra_headers`` /
``extra_body`` / ``extra_query``, a per-request ``timeout``, the SDK's own retries with
caproute's one fallback, ``with_options`` / ``copy`` on a routed client, and async
clients under trio.

Each scenario is checked against what the fake received, not against caproute's own
report alone.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
from sdk_helpers import API_KEY, PATHS, PDF_BLOCK, Cell, opened, resolve

import caproute
from caproute import Decision
from caproute._registry.fetch import AsyncRegistryFetcher
from caproute.testing import FakeAnthropic, make_model

pytestmark = [pytest.mark.anyio]
sync_and_async = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
every_path = pytest.mark.parametrize("path", PATHS)

NEW, OLD, HAIKU = "claude-sonnet-9", "claude-sonnet-8", "claude-haiku-9"
HI = [{"role": "user", "content": "Hello"}]
PDF_MESSAGES = [{"role": "user", "content": [PDF_BLOCK, {"type": "text", "text": "Summarise"}]}]
PDF_REQUEST: dict[str, Any] = {"model": HAIKU, "max_tokens": 100, "messages": PDF_MESSAGES}
"""Needs `pdf_input`, which HAIKU lacks: rerouted (to NEW, the newest that has it)."""
BETA = "context-management-2025-06-27"


def lineup() -> list[dict[str, Any]]:
    """Two sonnets (a price class with a fallback) and a haiku without PDFs."""
    return [
        make_model(NEW, line="sonnet"),
        make_model(OLD, line="sonnet"),
        make_model(HAIKU, line="haiku", max_tokens=8192, unsupported=["pdf_input"]),
    ]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": lineup(), "api_key": API_KEY}


def sent(fake: FakeAnthropic, mark: int = 0) -> list[str | None]:
    """The model of every ``/v1/messages`` request the fake received after `mark`."""
    return [r.model for r in fake.requests[mark:] if r.path == "/v1/messages"]


async def collect(iterable: Any) -> list[Any]:
    if hasattr(iterable, "__aiter__"):
        return [item async for item in iterable]
    return list(iterable)


async def final_message(client: Any, *, beta: bool = False, **request: Any) -> Any:
    """``messages.stream(...)``: the helper's final message, after reading its text."""
    messages = client.beta.messages if beta else client.messages
    manager = messages.stream(**request)
    if hasattr(manager, "__aenter__"):
        async with manager as stream:
            text = "".join([chunk async for chunk in stream.text_stream])
            message = await stream.get_final_message()
    else:
        with manager as stream:
            text = "".join(stream.text_stream)
            message = stream.get_final_message()
    assert text
    return message


# -- streaming ----------------------------------------------------------------------------------


@every_path
@sync_and_async
async def test_the_stream_helper_is_routed(sdk: Cell, fake: FakeAnthropic) -> None:
    async with opened(sdk.routed()) as client:
        message = await final_message(client, **PDF_REQUEST)
        beta_message = await final_message(client, beta=True, betas=[BETA], **PDF_REQUEST)

    assert message.model == beta_message.model == NEW
    assert sent(fake) == [NEW, NEW]
    assert fake.requests[-1].headers["anthropic-beta"] == BETA


@every_path
@sync_and_async
async def test_an_error_event_after_the_200_reaches_the_caller_as_without_caproute(
    sdk: Cell, fake: FakeAnthropic
) -> None:
    request = {"model": NEW, "max_tokens": 100, "messages": HI}

    async def stream_error(client: Any) -> anthropic.APIStatusError:
        fake.faults.add("/v1/messages", stream_error="overloaded_error")
        async with opened(client):
            stream = await resolve(client.messages.create(stream=True, **request))
            with pytest.raises(anthropic.APIStatusError) as caught:
                await collect(stream)
        return caught.value

    bare = await stream_error(sdk.bare())
    mark = len(fake.requests)
    routed = await stream_error(sdk.routed())

    assert type(routed) is type(bare)
    assert routed.body["error"]["type"] == bare.body["error"]["type"] == "overloaded_error"
    # The stream was accepted: nothing is re-sent, the error is the caller's to handle.
    assert sent(fake, mark) == [NEW]


@every_path
@sync_and_async
async def test_a_streamed_call_is_healed_after_a_404(
    sdk: Cell, fake: FakeAnthropic, decisions: list[Decision]
) -> None:
    fake.retire(NEW)  # caproute's registry still lists it
    request = {"model": NEW, "max_tokens": 100, "messages": HI}
    async with opened(sdk.routed()) as client:
        message = await final_message(client, **request)
        events = await collect(await resolve(client.messages.create(stream=True, **request)))

    assert message.model == OLD
    assert events[0].message.model == OLD and events[-1].type == "message_stop"
    assert sent(fake) == [NEW, OLD, OLD]  # learned: the second call goes straight there


@every_path
@sync_and_async
async def test_a_streamed_call_learns_from_an_attributable_400(
    sdk: Cell, fake: FakeAnthropic
) -> None:
    fake.update_model(NEW, unsupported=["effort.max"])  # caproute's registry disagrees
    request: dict[str, Any] = {
        "model": NEW,
        "max_tokens": 100,
        "messages": HI,
        "extra_body": {"output_config": {"effort": "max"}},
    }
    async with opened(sdk.bare()) as bare:
        with pytest.raises(anthropic.BadRequestError):
            await resolve(bare.messages.create(stream=True, **request))

    mark = len(fake.requests)
    async with opened(sdk.routed()) as client:
        events = await collect(await resolve(client.messages.create(stream=True, **request)))

    assert events[-1].type == "message_stop"
    efforts = [r.body["output_config"]["effort"] for r in fake.requests[mark:]]
    assert efforts[0] == "max" and efforts[1] != "max" and len(efforts) == 2


@every_path
@sync_and_async
async def test_a_streamed_call_falls_back_once_on_529(sdk: Cell, fake: FakeAnthropic) -> None:
    fake.overload(NEW)
    async with opened(sdk.routed()) as client:
        message = await final_message(client, model=NEW, max_tokens=100, messages=HI)

    assert message.model == OLD
    assert sent(fake) == [NEW, OLD]


# -- count_tokens, batches, raw responses ----------------------------------------------------


@every_path
@sync_and_async
async def test_beta_count_tokens_and_batches_are_routed(
    sdk: Cell, fake: FakeAnthropic, decisions: list[Decision]
) -> None:
    async with opened(sdk.routed()) as client:
        counted = await resolve(
            client.beta.messages.count_tokens(betas=[BETA], model=HAIKU, messages=PDF_MESSAGES)
        )
        batch = await resolve(
            client.beta.messages.batches.create(
                betas=[BETA], requests=[{"custom_id": "pdf", "params": PDF_REQUEST}]
            )
        )
        await resolve(client.beta.messages.batches.retrieve(batch.id, betas=[BETA]))
        results = await collect(
            await resolve(client.beta.messages.batches.results(batch.id, betas=[BETA]))
        )

    assert counted.input_tokens > 0
    count_request = next(r for r in fake.requests if r.path == "/v1/messages/count_tokens")
    assert count_request.model == NEW
    assert BETA in count_request.headers["anthropic-beta"].split(",")
    assert [r.result.type for r in results] == ["succeeded"]
    assert results[0].result.message.model == NEW
    assert {key: d.outcome for key, d in next(d for d in decisions if d.items).items} == {
        "pdf": "rerouted"
    }


@every_path
@sync_and_async
async def test_raw_and_streaming_responses_of_every_routed_endpoint(
    sdk: Cell, fake: FakeAnthropic
) -> None:
    async with opened(sdk.routed()) as client:
        raw_count = await resolve(
            client.messages.with_raw_response.count_tokens(model=HAIKU, messages=PDF_MESSAGES)
        )
        counted = await resolve(raw_count.parse())
        manager = client.messages.with_streaming_response.create(**PDF_REQUEST)
        if sdk.is_async:
            async with manager as response:
                header = response.headers["caproute-model"]
                message = await response.parse()
        else:
            with manager as response:
                header = response.headers["caproute-model"]
                message = response.parse()

    assert raw_count.headers["caproute-outcome"] == "rerouted"
    assert counted.input_tokens > 0
    assert header == message.model == NEW


# -- per-call options -----------------------------------------------------------------------------


@every_path
@sync_and_async
async def test_extra_query_headers_and_body_reach_the_api_around_routing(
    sdk: Cell, fake: FakeAnthropic, decisions: list[Decision]
) -> None:
    async with opened(sdk.routed()) as client:
        message = await resolve(
            client.messages.create(
                **PDF_REQUEST,
                extra_query={"trace": "abc"},
                extra_headers={"X-Trace-Id": "abc", "anthropic-beta": BETA},
                extra_body={"metadata": {"user_id": "u-1"}},
            )
        )

    received = fake.requests[-1]
    assert message.model == received.model == NEW
    assert decisions[-1].outcome == "rerouted"
    assert received.query["trace"] == ["abc"]
    assert received.headers["x-trace-id"] == "abc"
    assert received.headers["anthropic-beta"] == BETA
    assert received.body["metadata"] == {"user_id": "u-1"}


@every_path
@sync_and_async
async def test_a_per_request_timeout_holds_on_a_routed_request(
    sdk: Cell, fake: FakeAnthropic
) -> None:
    fake.faults.add("/v1/messages", delay=3.0)
    async with opened(sdk.routed()) as client:
        with pytest.raises(anthropic.APITimeoutError):
            # Rerouted, so the request is rebuilt: the timeout must travel with it.
            await resolve(client.messages.create(**PDF_REQUEST, timeout=0.3))


@every_path
@sync_and_async
async def test_sdk_retries_and_the_one_fallback_stay_bounded(
    sdk: Cell, fake: FakeAnthropic
) -> None:
    # Overloaded whatever the model; `retry-after-ms` keeps the SDK's backoff short.
    fake.faults.add("/v1/messages", status=529, headers={"retry-after-ms": "1"}, times=None)
    client = sdk.routed(max_retries=2)
    async with opened(client):
        with pytest.raises(anthropic.APIStatusError) as caught:
            await resolve(client.messages.create(model=NEW, max_tokens=10, messages=HI))

    assert caught.value.status_code == 529
    # First attempt: NEW, then its one fallback; each SDK retry: one send.
    assert sent(fake)[:2] == [NEW, OLD]
    assert len(sent(fake)) == 4
    assert set(sent(fake)) == {NEW, OLD}


# -- copies of a routed client ----------------------------------------------------------------


@every_path
@sync_and_async
async def test_with_options_and_copy_keep_routing(sdk: Cell, fake: FakeAnthropic) -> None:
    async with opened(sdk.routed()) as client:
        for copy in (client.with_options(timeout=30.0, max_retries=1), client.copy()):
            message = await resolve(copy.messages.create(**PDF_REQUEST))
            assert message.model == NEW
    assert sent(fake) == [NEW, NEW]


# A middleware the caller installed itself can't see default headers: it routes for
# `middleware(api_version=...)` (docs/sdk.md, "What middleware cannot see").
@pytest.mark.parametrize("path", [p for p in PATHS if p != "middleware"])
@sync_and_async
async def test_a_copy_with_another_default_api_version_is_routed_for_it(
    sdk: Cell, fake: FakeAnthropic
) -> None:
    request: dict[str, Any] = {
        "model": NEW,
        "max_tokens": 100,
        "messages": HI,
        "extra_body": {"temperature": 0.5},  # a 400 under 2026-10-21
    }
    version = {"anthropic-version": "2026-10-21"}
    async with opened(sdk.routed()) as client:
        for copy in (
            client.with_options(default_headers=version),
            client.copy(default_headers=version),
        ):
            await resolve(copy.messages.create(**request))
            received = fake.requests[-1]
            assert received.headers["anthropic-version"] == "2026-10-21"
            assert "temperature" not in received.body


# -- trio ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["trio"])
@every_path
async def test_async_clients_under_trio(path: str, routed_client: Any, fake: FakeAnthropic) -> None:
    async with opened(routed_client(path, is_async=True)) as client:
        message = await resolve(client.messages.create(**PDF_REQUEST))
        streamed = await final_message(client, **PDF_REQUEST)
    assert message.model == streamed.model == NEW


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("via", ["transport", "middleware"])
async def test_wrap_with_its_own_registry_fetcher_under_any_async_library(
    via: str, fake: FakeAnthropic, anyio_backend: str
) -> None:
    # No `registry=` / `router=`: wrap makes an async fetcher reading the fake's own
    # lineup (the embedded snapshot knows none of these models).
    sdk = anthropic.AsyncAnthropic(base_url=fake.url, api_key=API_KEY, max_retries=0)
    async with caproute.wrap(sdk, via=via) as client:  # type: ignore[arg-type]
        message = await client.messages.create(**PDF_REQUEST)
        assert message.model == NEW
    assert fake.count("/v1/models") >= 1


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_an_async_fetcher_under_trio_shares_its_fetch_and_cancels_it_on_close(
    fake: FakeAnthropic,
) -> None:
    fake.faults.add("/v1/models", delay=5.0)
    fetcher = AsyncRegistryFetcher(api_key=API_KEY, base_url=fake.url, cache_file=False)
    # Two waiters give up; the one fetch they share keeps going.
    assert await fetcher.wait_live(0.1) is None
    assert await fetcher.wait_live(0.1) is None
    closing = time.monotonic()
    await fetcher.aclose()  # cancels the fetch under way rather than waiting 5 s for it
    assert time.monotonic() - closing < 4.0
    assert fake.count("/v1/models") == 1
