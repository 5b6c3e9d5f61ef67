"""/v1/messages (JSON and SSE), count_tokens and Message Batches, read by the real SDK."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import pytest
from fake_api_helpers import error_of

from caproute.testing import FakeAnthropic, make_model

HI = [{"role": "user", "content": "hi"}]
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}


def test_sdk_parses_a_message(fake: FakeAnthropic, sdk: anthropic.Anthropic) -> None:
    reply = sdk.messages.create(model="claude-full-2", max_tokens=50, messages=HI)
    assert reply.id.startswith("msg_")
    assert (reply.type, reply.role, reply.model) == ("message", "assistant", "claude-full-2")
    assert reply.stop_reason == "end_turn"
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "Hello from claude-full-2."
    assert reply.usage.input_tokens >= 1
    assert reply.usage.output_tokens >= 1


def test_answer_names_the_canonical_model_for_an_alias(
    fake: FakeAnthropic, sdk: anthropic.Anthropic
) -> None:
    reply = sdk.messages.create(model="claude-old-1", max_tokens=50, messages=HI)
    assert reply.model == "claude-old-1-20250101"
    assert fake.requests[-1].model == "claude-old-1"  # recorded as sent


def test_max_tokens_zero_warms_the_cache_without_output(http: httpx.Client) -> None:
    sent = {"model": "claude-full-2", "max_tokens": 0, "messages": HI}
    answer = http.post("/v1/messages", json=sent).json()
    assert answer["content"] == []
    assert answer["stop_reason"] == "max_tokens"


def test_reply_text_is_configurable() -> None:
    models = [make_model("claude-a-1")]
    with FakeAnthropic(models=models, reply="fixed") as fake:
        with fake.client() as client:
            reply = client.messages.create(model="claude-a-1", max_tokens=5, messages=HI)
        assert reply.content[0].text == "fixed"

    def echo(body: dict[str, Any], model_id: str) -> str:
        return f"{model_id} got {body['messages'][-1]['content']}"

    with FakeAnthropic(models=models, reply=echo) as fake:
        with fake.client() as client:
            reply = client.messages.create(model="claude-a-1", max_tokens=5, messages=HI)
        assert reply.content[0].text == "claude-a-1 got hi"


def test_sdk_parses_the_sse_stream(fake: FakeAnthropic, sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model="claude-full-2", max_tokens=50, messages=HI) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds
    assert final.content[0].text == "Hello from claude-full-2."
    assert final.stop_reason == "end_turn"


def test_raw_sse_event_sequence(http: httpx.Client) -> None:
    sent = {"model": "claude-full-2", "max_tokens": 50, "messages": HI, "stream": True}
    with http.stream("POST", "/v1/messages", json=sent) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_")
        names = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    deltas = names.count("content_block_delta")
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert deltas == 3  # "Hello ", "from ", "claude-full-2."


def test_stream_delay_separates_first_byte_from_the_end(fake: FakeAnthropic) -> None:
    fake.stream_delay = 0.05
    sent = {"model": "claude-full-2", "max_tokens": 50, "messages": HI, "stream": True}
    started = time.perf_counter()
    with httpx.stream("POST", f"{fake.url}/v1/messages", json=sent, headers=fake.headers()) as r:
        lines = r.iter_lines()
        first = next(lines)
        first_byte_s = time.perf_counter() - started
        rest = list(lines)
    total_s = time.perf_counter() - started
    assert first == "event: message_start"
    assert total_s >= 7 * 0.05  # 8 events, a pause between each
    assert first_byte_s < total_s - 5 * 0.05  # the first event is not held back
    assert "event: message_stop" in rest


def test_validation_errors_come_before_the_stream_starts(
    fake: FakeAnthropic, sdk: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(
            model="claude-bare-1",
            max_tokens=50,
            messages=[{"role": "user", "content": [IMAGE]}],
            stream=True,
        )
    assert "messages.0.content.0: image input is not supported" in caught.value.message
    assert caught.value.status_code == 400


def test_sdk_count_tokens(fake: FakeAnthropic, sdk: anthropic.Anthropic) -> None:
    counted = sdk.messages.count_tokens(model="claude-full-2", messages=HI)
    assert counted.input_tokens >= 1
    longer = sdk.messages.count_tokens(
        model="claude-full-2", messages=[{"role": "user", "content": "word " * 400}]
    )
    assert longer.input_tokens > counted.input_tokens


@pytest.mark.anyio
async def test_async_sdk_messages_stream_and_count(fake: FakeAnthropic) -> None:
    async with fake.async_client() as client:
        await _async_messages_stream_and_count(client)


async def _async_messages_stream_and_count(client: anthropic.AsyncAnthropic) -> None:
    reply = await client.messages.create(model="claude-full-2", max_tokens=50, messages=HI)
    assert reply.content[0].text == "Hello from claude-full-2."
    async with client.messages.stream(model="claude-full-2", max_tokens=50, messages=HI) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == reply.content[0].text
    counted = await client.messages.count_tokens(model="claude-full-2", messages=HI)
    assert counted.input_tokens >= 1
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(model="claude-nope", max_tokens=5, messages=HI)


# -- batches ---------------------------------------------------------------------------------


def _item(custom_id: str, **params: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": {"max_tokens": 50, "messages": HI, **params}}


MIXED_BATCH = [
    _item("ok", model="claude-full-2"),
    _item("image-on-bare", model="claude-bare-1", messages=[{"role": "user", "content": [IMAGE]}]),
    _item("no-batch-capability", model="claude-bare-1"),
    _item("streaming", model="claude-full-2", stream=True),
    _item("unknown-model", model="claude-nope-1"),
]


def test_sdk_batch_lifecycle_and_results(fake: FakeAnthropic, sdk: anthropic.Anthropic) -> None:
    batches = sdk.messages.batches
    created = batches.create(requests=MIXED_BATCH)
    assert created.id.startswith("msgbatch_")
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 5
    assert created.results_url is None

    ended = batches.retrieve(created.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at is not None
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (1, 4)
    assert ended.results_url == f"{fake.url}/v1/messages/batches/{created.id}/results"

    results = {line.custom_id: line.result for line in batches.results(created.id)}
    assert results["ok"].type == "succeeded"
    assert results["ok"].message.model == "claude-full-2"
    errors = {
        cid: (r.error.error.type, r.error.error.message)
        for cid, r in results.items()
        if r.type == "errored"
    }
    assert errors["image-on-bare"][0] == "invalid_request_error"
    assert "image input" in errors["image-on-bare"][1]
    assert "Message Batches" in errors["no-batch-capability"][1]
    assert errors["streaming"][1].startswith("stream:")
    assert errors["unknown-model"][0] == "not_found_error"


def test_sdk_batch_list_cancel_and_delete(fake: FakeAnthropic, sdk: anthropic.Anthropic) -> None:
    batches = sdk.messages.batches
    first = batches.create(requests=[_item("a", model="claude-full-2")])
    second = batches.create(requests=[_item("b", model="claude-full-2")])
    assert [b.id for b in batches.list(limit=1)] == [second.id, first.id]  # newest first, paged

    canceling = batches.cancel(second.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    ended = batches.retrieve(second.id)
    assert (ended.processing_status, ended.request_counts.canceled) == ("ended", 1)
    assert [r.result.type for r in batches.results(second.id)] == ["canceled"]

    with pytest.raises(anthropic.BadRequestError):
        batches.delete(first.id)  # still processing
    batches.retrieve(first.id)
    assert batches.delete(first.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        batches.retrieve(first.id)


@pytest.mark.anyio
async def test_async_sdk_batches(fake: FakeAnthropic) -> None:
    async with fake.async_client() as client:
        created = await client.messages.batches.create(requests=MIXED_BATCH)
        await client.messages.batches.retrieve(created.id)
        results = await client.messages.batches.results(created.id)
        kinds = sorted([line.result.type async for line in results])
    assert kinds == ["errored"] * 4 + ["succeeded"]


@pytest.mark.parametrize(
    ("requests", "fragment"),
    [
        ([], "requests:"),
        ("nope", "requests:"),
        ([{"custom_id": "bad id!", "params": {}}], "requests.0.custom_id"),
        ([_item("a", model="claude-full-2"), _item("a", model="claude-full-2")], "duplicate"),
        ([{"custom_id": "x", "params": "nope"}], "requests.0.params"),
    ],
)
def test_batch_shape_errors_reject_the_whole_batch(
    http: httpx.Client, requests: Any, fragment: str
) -> None:
    status, error_type, message = error_of(
        http.post("/v1/messages/batches", json={"requests": requests})
    )
    assert (status, error_type) == (400, "invalid_request_error")
    assert fragment in message


def test_batch_results_before_the_end_are_400(http: httpx.Client) -> None:
    created = http.post(
        "/v1/messages/batches", json={"requests": [_item("a", model="claude-full-2")]}
    )
    batch_id = created.json()["id"]
    assert error_of(http.get(f"/v1/messages/batches/{batch_id}/results"))[0] == 400
    assert error_of(http.get("/v1/messages/batches/msgbatch_nope"))[:2] == (404, "not_found_error")
