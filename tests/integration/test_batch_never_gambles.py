"""Batches never gamble through `caproute.wrap` (issue 16, item 5), on SDK 2.x.

`client.messages.batches.create(...)` goes through the same core flow as a single
request (the SDK middleware or the transport). The fake validates each item only when
it processes the batch, as the API does, and reads a capability its catalogue leaves
out as unsupported; caproute reads the same absence as unknown. A batch creation with
an item only such a model could take is refused locally (nothing reaches the fake)
unless the policy opts in; a model known to take the item is preferred; a batch whose
items all have a known model goes out as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import anthropic
import pytest

import caproute
from caproute import Policy, Registry
from caproute.testing import FakeAnthropic, make_model

OLD, PLAIN, READER = "claude-old-1", "claude-plain-2", "claude-reader-3"
"""`OLD`'s listing says nothing about PDFs; `PLAIN` is known not to read them;
`READER` (in the `clear` catalogue only) is known to."""
KEY = "sk-ant-test-never-gambles"
PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
}
ALLOW = Policy.from_text("defaults:\n  allow_unknown_in_batches: true\n")
GAMBLER = Policy.from_text("defaults:\n  unknown: supported\n")
Via = Literal["middleware", "transport"]


def params(model: str, *content: dict[str, Any]) -> dict[str, Any]:
    text = [{"type": "text", "text": "Summarise."}]
    return {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [*content, *text]}],
    }


HELLO = {"custom_id": "hello", "params": params(OLD)}
ONLY_OLD = {"custom_id": "pdf", "params": params(OLD, PDF)}
PLAIN_HELLO = {"custom_id": "plain", "params": params(PLAIN)}


@pytest.fixture(scope="module")
def vague() -> Iterator[FakeAnthropic]:
    models = [make_model(OLD, omit=["pdf_input"]), make_model(PLAIN, unsupported=["pdf_input"])]
    with FakeAnthropic(models=models, api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def clear() -> Iterator[FakeAnthropic]:
    models = [
        make_model(OLD, omit=["pdf_input"]),
        make_model(PLAIN, unsupported=["pdf_input"]),
        make_model(READER),
    ]
    with FakeAnthropic(models=models, api_key=KEY) as fake:
        yield fake


@pytest.fixture(params=["middleware", "transport"])
def via(request: pytest.FixtureRequest) -> Via:
    value: Via = request.param
    return value


def routed(fake: FakeAnthropic, via: Via, policy: Policy | None = None) -> anthropic.Anthropic:
    fake.reset()
    plain = anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)
    registry = Registry.from_models(fake.models())
    return caproute.wrap(plain, via=via, registry=registry, policy=policy)


def posted(fake: FakeAnthropic) -> list[list[dict[str, Any]]]:
    """The items of every batch creation that reached the fake."""
    return [
        r.body["requests"]
        for r in fake.requests
        if r.method == "POST" and r.path == "/v1/messages/batches" and isinstance(r.body, dict)
    ]


def results(client: anthropic.Anthropic, requests: list[dict[str, Any]]) -> dict[str, str]:
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    client.messages.batches.retrieve(batch.id)  # the fake ends a batch when retrieved
    return {r.custom_id: r.result.type for r in client.messages.batches.results(batch.id)}


def test_an_item_only_a_model_of_unknown_support_could_take_is_refused_locally(
    vague: FakeAnthropic, via: Via
) -> None:
    client = routed(vague, via)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.batches.create(requests=[HELLO, ONLY_OLD])  # type: ignore[list-item]
    error = caught.value
    assert error.status_code == 400
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert error.body["error"]["type"] == "invalid_request_error"
    message = str(error.body["error"]["message"])
    assert "[pdf]" in message and "[hello]" not in message
    assert f"{OLD}: pdf_input: support unknown" in message
    assert "allow_unknown_in_batches: true" in message
    assert error.response.headers["caproute-outcome"] == "rejected"
    assert posted(vague) == []  # nothing reached the API


def test_with_the_policy_opt_in_it_is_sent_and_the_api_judges_it(
    vague: FakeAnthropic, via: Via
) -> None:
    with pytest.raises(anthropic.BadRequestError):
        routed(vague, via).messages.batches.create(requests=[ONLY_OLD])  # type: ignore[list-item]
    client = routed(vague, via, ALLOW)
    assert results(client, [HELLO, ONLY_OLD]) == {"hello": "succeeded", "pdf": "errored"}
    assert posted(vague) == [[HELLO, ONLY_OLD]]  # as the caller wrote them


def test_a_model_known_to_take_the_item_is_chosen_even_under_unknown_supported(
    clear: FakeAnthropic, via: Via
) -> None:
    client = routed(clear, via, GAMBLER)
    assert results(client, [ONLY_OLD]) == {"pdf": "succeeded"}
    [[item]] = posted(clear)
    assert item["params"]["model"] == READER


def test_a_batch_whose_items_all_have_a_known_model_goes_out_unchanged(
    vague: FakeAnthropic, via: Via
) -> None:
    client = routed(vague, via)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[ONLY_OLD])  # type: ignore[list-item]
    # The same client, a batch nothing is unknown about: sent as the caller wrote it.
    raw = client.messages.batches.with_raw_response.create(
        requests=[HELLO, PLAIN_HELLO]  # type: ignore[list-item]
    )
    assert raw.headers["caproute-outcome"] == "unchanged"
    assert posted(vague) == [[HELLO, PLAIN_HELLO]]
