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
from sdk_helpers import BIG, IMAGE_BLOCK, PATHS, PDF_BLOCK, SMALL, Call, Cell, opened, resolve

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


def create(client: Any) -> Any:
    return client.messages.create


def beta_create(client: Any) -> Any:
    return client.beta.messages.create


def count_tokens(client: Any) -> Any:
    return client.messages.count_tokens


BETA = "context-management-2025-06-27"
REROUTES = {
    "messages": (create, PDF_REQUEST, "/v1/messages"),
    # `client.beta.messages` sends `anthropic-beta` per call; SDK 0.x also appends
    # `?beta=true` to the path.
    "beta-messages": (beta_create, {**PDF_REQUEST, "betas": [BETA]}, "/v1/messages"),
    "count_tokens": (
        count_tokens,
        {"model": SMALL, "messages": PDF_REQUEST["messages"]},
        "/v1/messages/count_tokens",
    ),
}


@pytest.mark.parametrize(("call", "body", "endpoint"), REROUTES.values(), ids=REROUTES)
async def test_reroute_where_the_bare_sdk_gets_400(
    sdk: Cell, call: Call, body: dict[str, Any], endpoint: str
) -> None:
    error = await sdk.bare_400(call, **body)
    assert "pdf" in str(error).lower()

    answer = await sdk.routed_call(call, **body)

    if call is count_tokens:
        assert answer.input_tokens > 0
    else:
        assert answer.model == BIG
    sent = sdk.fake.requests[-1]
    assert (sent.path, sent.model) == (endpoint, BIG)
    assert sent.headers.get("anthropic-beta") == (",".join(body.get("betas", [])) or None)
    assert [d.outcome for d in sdk.decisions] == ["rerouted"]


async def test_adjustments_from_extra_body_where_the_bare_sdk_gets_400(sdk: Cell) -> None:
    await sdk.bare_400(create, **ADJUST_REQUEST)

    message = await sdk.routed_call(create, **ADJUST_REQUEST)

    sent = sdk.fake.requests[-1].body
    assert message.model == SMALL
    assert sent["max_tokens"] == 8192
    assert sent["output_config"]["effort"] not in ("max", None)
    assert sdk.decisions[-1].outcome == "adjusted"
    assert {c.path for c in sdk.decisions[-1].changes} == {"max_tokens", "output_config.effort"}


async def test_sampling_params_under_api_version_2026_10_21(sdk: Cell) -> None:
    request: dict[str, Any] = {
        "model": SMALL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hello"}],
        "extra_headers": {"anthropic-version": "2026-10-21"},
        "extra_body": {"temperature": 0.2},
    }
    await sdk.bare_400(create, **request)

    await sdk.routed_call(create, **request)

    assert "temperature" not in sdk.fake.requests[-1].body


async def test_streaming_reroute(sdk: Cell) -> None:
    await sdk.bare_400(create, stream=True, **PDF_REQUEST)

    async with opened(sdk.routed()) as client:
        stream = await resolve(client.messages.create(stream=True, **PDF_REQUEST))
        events = await collect(stream)

    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert events[0].message.model == BIG
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text


async def test_streaming_response_headers_come_before_the_events(sdk: Cell) -> None:
    async with opened(sdk.routed()) as client:
        manager = client.messages.with_streaming_response.create(stream=True, **PDF_REQUEST)
        if sdk.is_async:
            async with manager as response:
                model_header = response.headers["caproute-model"]
                lines = [line async for line in response.iter_lines()]
        else:
            with manager as response:
                model_header = response.headers["caproute-model"]
                lines = list(response.iter_lines())

    assert model_header == BIG
    assert "event: message_start" in lines and "event: message_stop" in lines


async def test_batch_items_are_routed(sdk: Cell) -> None:
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

    bare = await run_batch(sdk.bare())
    assert {key: result.type for key, result in bare.items()} == {
        "pdf": "errored",
        "too-long": "errored",
    }
    assert bare["pdf"].error.error.type == "invalid_request_error"

    routed = await run_batch(sdk.routed())

    assert {key: result.type for key, result in routed.items()} == {
        "pdf": "succeeded",
        "too-long": "succeeded",
    }
    assert routed["pdf"].message.model == BIG
    batch_decision = next(d for d in sdk.decisions if d.items)
    assert {key: d.outcome for key, d in batch_decision.items} == {
        "pdf": "rerouted",
        "too-long": "adjusted",
    }


async def test_local_refusal_is_the_usual_bad_request_error(sdk: Cell) -> None:
    request = {
        "model": SMALL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [IMAGE_BLOCK]}],
    }
    await sdk.bare_400(create, **request)
    sdk.fake.reset()

    with pytest.raises(anthropic.BadRequestError) as caught:
        await sdk.routed_call(create, **request)

    error = caught.value
    assert error.status_code == 400
    assert error.body["error"]["type"] == "invalid_request_error"
    assert error.body["error"]["message"].startswith("caproute: ")
    assert "image_input" in error.body["error"]["message"]
    assert error.response.headers["caproute-outcome"] == "rejected"
    assert sdk.fake.count("/v1/messages") == 0, "a refused request must not go upstream"
    assert [d.outcome for d in sdk.decisions] == ["rejected"]


async def test_raw_response_carries_the_decision_headers(sdk: Cell) -> None:
    async with opened(sdk.routed()) as client:
        raw = await resolve(client.messages.with_raw_response.create(**PDF_REQUEST))
        message = await resolve(raw.parse())

    assert raw.headers["caproute-outcome"] == "rerouted"
    assert raw.headers["caproute-model"] == BIG == message.model
    assert raw.headers["caproute-requested-model"] == SMALL
    assert raw.headers["caproute-changes"].startswith("model: ")
    assert raw.http_response.extensions["caproute_decision"] is sdk.decisions[-1]
    assert "request-id" in raw.headers  # the API's own headers are still there
