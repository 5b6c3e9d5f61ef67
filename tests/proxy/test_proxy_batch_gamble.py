"""Batches never gamble through the proxy (issue 16, item 5).

``POST /v1/messages/batches`` through `caproute serve` (the real server, in front of the
fake, which validates each item only when it processes the batch): a creation with an
item only a model of unknown support could take is refused by the proxy with the API's
400 shape, and nothing reaches the fake; with the policy's opt-in it is sent; a batch
whose items all have a known model goes out byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from proxy_helpers import API_KEY, RunningProxy, sdk_client, start_proxy

from caproute.testing import FakeAnthropic, make_model

OLD, PLAIN = "claude-old-1", "claude-plain-2"
"""`OLD`'s listing says nothing about PDFs (the fake reads that as unsupported, caproute
as unknown); `PLAIN` is known not to read them."""
PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
}


def item(custom_id: str, model: str, *content: dict[str, Any]) -> dict[str, Any]:
    text = [{"type": "text", "text": "Summarise."}]
    messages = [{"role": "user", "content": [*content, *text]}]
    return {
        "custom_id": custom_id,
        "params": {"model": model, "max_tokens": 64, "messages": messages},
    }


HELLO, ONLY_OLD, PLAIN_HELLO = item("hello", OLD), item("pdf", OLD, PDF), item("plain", PLAIN)


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    models = [make_model(OLD, omit=["pdf_input"]), make_model(PLAIN, unsupported=["pdf_input"])]
    return {"models": models, "api_key": API_KEY}


@pytest.fixture(scope="module")
def proxy(fake_anthropic_server: FakeAnthropic) -> Iterator[RunningProxy]:
    running = start_proxy(fake_anthropic_server)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def allowing(
    fake_anthropic_server: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningProxy]:
    policy = Path(tmp_path_factory.mktemp("policy")) / "policy.yaml"
    policy.write_text("version: 1\ndefaults:\n  allow_unknown_in_batches: true\n")
    running = start_proxy(fake_anthropic_server, policy=policy)
    yield running
    running.stop()


def posted(fake: FakeAnthropic) -> list[bytes]:
    return [
        r.wire_body
        for r in fake.requests
        if r.method == "POST" and r.path == "/v1/messages/batches"
    ]


def create(
    proxy: RunningProxy, requests: list[dict[str, Any]]
) -> anthropic.types.messages.MessageBatch:
    client = sdk_client(proxy.url)
    return client.messages.batches.create(requests=requests)  # type: ignore[arg-type]


def test_an_item_only_a_model_of_unknown_support_could_take_is_refused_by_the_proxy(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        create(proxy, [HELLO, ONLY_OLD])
    error = caught.value
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert error.body["error"]["type"] == "invalid_request_error"
    message = str(error.body["error"]["message"])
    assert "[pdf]" in message and f"{OLD}: pdf_input: support unknown" in message
    assert "allow_unknown_in_batches: true" in message
    assert posted(fake) == []


def test_with_the_policy_opt_in_the_proxy_sends_it(
    fake: FakeAnthropic, proxy: RunningProxy, allowing: RunningProxy
) -> None:
    with pytest.raises(anthropic.BadRequestError):
        create(proxy, [ONLY_OLD])
    batch = create(allowing, [HELLO, ONLY_OLD])
    client = sdk_client(allowing.url)
    client.messages.batches.retrieve(batch.id)  # the fake ends a batch when retrieved
    types = {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}
    assert types == {"hello": "succeeded", "pdf": "errored"}  # the API judged it
    [sent] = posted(fake)
    assert json.loads(sent)["requests"] == [HELLO, ONLY_OLD]


def test_a_batch_whose_items_all_have_a_known_model_goes_out_byte_for_byte(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    with pytest.raises(anthropic.BadRequestError):
        create(proxy, [ONLY_OLD])
    data = json.dumps({"requests": [HELLO, PLAIN_HELLO]}).encode()
    headers = {
        "x-api-key": API_KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    with httpx.Client() as http:
        answer = http.post(f"{proxy.url}/v1/messages/batches", content=data, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["caproute-outcome"] == "unchanged"
    assert posted(fake) == [data]
