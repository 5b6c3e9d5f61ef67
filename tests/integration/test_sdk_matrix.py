"""The real anthropic SDK through every caproute path, against the strict fake API.

Runs in both SDK generations (2.x here, 0.x with ``make test-sdk0``), sync and async,
through `wrap()`, ``wrap(via="middleware")``, the middleware and a routed HTTP client.
Each test sends a request that needs caproute (a reroute, an adjustment, a refusal)
and first shows that the same request, sent without caproute, fails with the fake's 400.
"""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from sdk_helpers import BIG, IMAGE_BLOCK, PATHS, PDF_BLOCK, SMALL, opened, resolve

from caproute import Decision
from caproute.testing import FakeAnthropic

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"]),
    pytest.mark.parametrize("path", PATHS),
]

PDF_REQUEST: dict[str, Any] = {
    "model": SMALL,
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": [PDF_BLOCK, {"type": "text", "text": "Summarise"}]}],
}
"""Needs `pdf_input`, which SMALL lacks: must be rerouted to BIG."""

ADJUST_REQUEST: dict[str, Any] = {
    "model": SMALL,
    "max_tokens": 20_000,
    "messages": [{"role": "user", "content": "Hello"}],
    # Through `extra_body`: SDK 0.x hands these to middleware outside `request.json`.
    "extra_body": {"output_config": {"effort": "max"}},
}
"""SMALL has no effort `max` and allows 8,192 tokens: must be adjusted, not rerouted."""


async def collect(iterable: Any) -> list[Any]:
    """Every item of a sync or async iterable (an SSE stream, batch results)."""
    if hasattr(iterable, "__aiter__"):
        return [item async for item in iterable]
    return list(iterable)


async def expect_fake_400(client: Any, call: Any, **request: Any) -> anthropic.BadRequestError:
    """The fake rejects `request` (sent without caproute) with an API 400."""
    async with opened(client):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await resolve(call(client)(**request))
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert not caught.value.body["error"]["message"].startswith("caproute")
    return caught.value


def create(client: Any) -> Any:
    return client.messages.create


async def test_reroute_where_the_bare_sdk_gets_400(
    path: str,
    is_async: bool,
    routed_client: Any,
    bare_client: Any,
    fake: FakeAnthropic,
    decisions: list[Decision],
) -> None:
    error = await expect_fake_400(bare_client(is_async=is_async), create, **PDF_REQUEST)
    assert "pdf" in str(error).lower()

    async with opened(routed_client(path, is_async=is_async)) as client:
        message = await resolve(client.messages.create(**PDF_REQUEST))

    assert message.model == BIG
    assert fake.requests[-1].model == BIG
    assert [d.outcome for d in decisions] == ["rerouted"]


async def test_beta_endpoint_calls_are_routed(
    path: str, is_async: bool, routed_client: Any, bare_client: Any, fake: FakeAnthropic
) -> None:
    # `client.beta.messages` sends `anthropic-beta` per call; SDK 0.x also appends
    # `?beta=true` to the path.
    request = {**PDF_REQUEST, "betas": ["context-management-2025-06-27"]}

    def beta_create(client: Any) -> Any:
        return client.beta.messages.create

    await expect_fake_400(bare_client(is_async=is_async), beta_create, **request)

    async with opened(routed_client(path, is_async=is_async)) as client:
        message = await resolve(client.beta.messages.create(**request))

    assert message.model == BIG
    assert fake.requests[-1].headers["anthropic-beta"] == "context-management-2025-06-27"


async def test_adjustments_from_extra_body_where_the_bare_sdk_gets_400(
    path: str,
    is_async: bool,
    routed_client: Any,
    bare_client: Any,
    fake: FakeAnthropic,
    decisions: list[Decision],
) -> None:
    await expect_fake_400(bare_client(is_async=is_async), create, **ADJUST_REQUEST)

    async with opened(routed_client(path, is_async=is_async)) as client:
        message = await resolve(client.messages.create(**ADJUST_REQUEST))

    sent = fake.requests[-1].body
    assert message.model == SMALL
    assert sent["max_tokens"] == 8192
    assert sent["output_config"]["effort"] not in ("max", None)
    assert decisions[-1].outcome == "adjusted"
    assert {c.path for c in decisions[-1].changes} == {"max_tokens", "output_config.effort"}


async def test_sampling_params_under_api_version_2026_10_21(
    path: str, is_async: bool, routed_client: Any, bare_client: Any, fake: FakeAnthropic
) -> None:
    request: dict[str, Any] = {
        "model": SMALL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hello"}],
        "extra_headers": {"anthropic-version": "2026-10-21"},
        "extra_body": {"temperature": 0.2},
    }
    await expect_fake_400(bare_client(is_async=is_async), create, **request)

    async with opened(routed_client(path, is_async=is_async)) as client:
        await resolve(client.messages.create(**request))

    assert "temperature" not in fake.requests[-1].body


async def test_streaming_reroute(
    path: str, is_async: bool, routed_client: Any, bare_client: Any, fake: FakeAnthropic
) -> None:
    await expect_fake_400(bare_client(is_async=is_async), create, stream=True, **PDF_REQUEST)

    async with opened(routed_client(path, is_async=is_async)) as client:
        stream = await resolve(client.messages.create(stream=True, **PDF_REQUEST))
        events = await collect(stream)

    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert events[0].message.model == BIG
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text


async def test_streaming_response_headers_come_before_the_events(
    path: str, is_async: bool, routed_client: Any, fake: FakeAnthropic
) -> None:
    async with opened(routed_client(path, is_async=is_async)) as client:
        manager = client.messages.with_streaming_response.create(stream=True, **PDF_REQUEST)
        if is_async:
            async with manager as response:
                model_header = response.headers["caproute-model"]
                lines = [line async for line in response.iter_lines()]
        else:
            with manager as response:
                model_header = response.headers["caproute-model"]
                lines = list(response.iter_lines())

    assert model_header == BIG
    assert "event: message_start" in lines and "event: message_stop" in lines


async def test_count_tokens_reroute(
    path: str,
    is_async: bool,
    routed_client: Any,
    bare_client: Any,
    fake: FakeAnthropic,
    decisions: list[Decision],
) -> None:
    request = {"model": SMALL, "messages": PDF_REQUEST["messages"]}

    def count_tokens(client: Any) -> Any:
        return client.messages.count_tokens

    await expect_fake_400(bare_client(is_async=is_async), count_tokens, **request)

    async with opened(routed_client(path, is_async=is_async)) as client:
        counted = await resolve(client.messages.count_tokens(**request))

    assert counted.input_tokens > 0
    assert fake.requests[-1].path == "/v1/messages/count_tokens"
    assert fake.requests[-1].model == BIG
    assert decisions[-1].outcome == "rerouted"


async def test_batch_items_are_routed(
    path: str,
    is_async: bool,
    routed_client: Any,
    bare_client: Any,
    fake: FakeAnthropic,
    decisions: list[Decision],
) -> None:
    adjust = {k: v for k, v in ADJUST_REQUEST.items() if k != "extra_body"}
    requests = [
        {"custom_id": "pdf", "params": PDF_REQUEST},
        {"custom_id": "too-long", "params": adjust},
    ]

    async def run_batch(client: Any) -> dict[str, Any]:
        async with opened(client):
            batch = await resolve(client.messages.batches.create(requests=requests))
            await resolve(client.messages.batches.retrieve(batch.id))  # the fake ends it here
            results = await collect(await resolve(client.messages.batches.results(batch.id)))
        return {r.custom_id: r.result for r in results}

    bare = await run_batch(bare_client(is_async=is_async))
    assert {key: result.type for key, result in bare.items()} == {
        "pdf": "errored",
        "too-long": "errored",
    }
    assert bare["pdf"].error.error.type == "invalid_request_error"

    routed = await run_batch(routed_client(path, is_async=is_async))

    assert {key: result.type for key, result in routed.items()} == {
        "pdf": "succeeded",
        "too-long": "succeeded",
    }
    assert routed["pdf"].message.model == BIG
    batch_decision = next(d for d in decisions if d.items)
    assert {key: d.outcome for key, d in batch_decision.items} == {
        "pdf": "rerouted",
        "too-long": "adjusted",
    }


async def test_local_refusal_is_the_usual_bad_request_error(
    path: str,
    is_async: bool,
    routed_client: Any,
    bare_client: Any,
    fake: FakeAnthropic,
    decisions: list[Decision],
) -> None:
    request = {
        "model": SMALL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [IMAGE_BLOCK]}],
    }
    await expect_fake_400(bare_client(is_async=is_async), create, **request)
    fake.reset()

    async with opened(routed_client(path, is_async=is_async)) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await resolve(client.messages.create(**request))

    error = caught.value
    assert error.status_code == 400
    assert error.body["error"]["type"] == "invalid_request_error"
    assert error.body["error"]["message"].startswith("caproute: ")
    assert "image_input" in error.body["error"]["message"]
    assert error.response.headers["caproute-outcome"] == "rejected"
    assert fake.count("/v1/messages") == 0, "a refused request must not go upstream"
    assert [d.outcome for d in decisions] == ["rejected"]


async def test_raw_response_carries_the_decision_headers(
    path: str, is_async: bool, routed_client: Any, fake: FakeAnthropic, decisions: list[Decision]
) -> None:
    async with opened(routed_client(path, is_async=is_async)) as client:
        raw = await resolve(client.messages.with_raw_response.create(**PDF_REQUEST))
        message = await resolve(raw.parse())

    assert raw.headers["caproute-outcome"] == "rerouted"
    assert raw.headers["caproute-model"] == BIG == message.model
    assert raw.headers["caproute-requested-model"] == SMALL
    assert raw.headers["caproute-changes"].startswith("model: ")
    assert raw.http_response.extensions["caproute_decision"] is decisions[-1]
    assert "request-id" in raw.headers  # the API's own headers are still there
