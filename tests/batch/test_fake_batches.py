"""The fake's batch lifecycle, through the real anthropic SDK and raw HTTP."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import anthropic
import httpx2
import pytest
from batch_helpers import item

from caproute.testing import FakeAnthropic


@pytest.fixture
def sdk(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with fake.client() as client:
        yield client


def _requests(count: int, prefix: str = "r") -> list[dict[str, object]]:
    return [item(f"{prefix}{n}") for n in range(count)]


def test_processing_takes_its_time_and_counts_move(
    fake: FakeAnthropic, sdk: anthropic.Anthropic
) -> None:
    fake.batches.configure(processing_s=0.4)
    created = sdk.messages.batches.create(requests=_requests(10))  # type: ignore[arg-type]
    assert created.request_counts.processing == 10
    time.sleep(0.2)
    halfway = sdk.messages.batches.retrieve(created.id)
    assert halfway.processing_status == "in_progress" and halfway.results_url is None
    assert 0 < halfway.request_counts.succeeded < 10
    assert halfway.request_counts.processing == 10 - halfway.request_counts.succeeded
    time.sleep(0.25)
    ended = sdk.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.request_counts.succeeded == 10
    assert len(list(sdk.messages.batches.results(created.id))) == 10


def test_errored_and_expired_shares_are_deterministic(
    fake: FakeAnthropic, sdk: anthropic.Anthropic
) -> None:
    def outcomes() -> dict[str, str]:
        fake.reset()
        fake.batches.configure(errored=0.2, expired=0.1, seed=42)
        batch = sdk.messages.batches.create(requests=_requests(200))  # type: ignore[arg-type]
        sdk.messages.batches.retrieve(batch.id)
        return {r.custom_id: r.result.type for r in sdk.messages.batches.results(batch.id)}

    first = outcomes()
    assert first == outcomes()  # same seed, same fates
    counts = Counter(first.values())
    assert 20 < counts["errored"] < 60 and 5 < counts["expired"] < 40
    errored = next(r for r in _results(fake, sdk) if r.result.type == "errored")
    assert errored.result.error.error.type == "api_error"  # type: ignore[union-attr]

    # The same custom_id sent again draws again: a retry can succeed.
    again = sdk.messages.batches.create(requests=_requests(200))  # type: ignore[arg-type]
    sdk.messages.batches.retrieve(again.id)
    second = {r.custom_id: r.result.type for r in sdk.messages.batches.results(again.id)}
    assert second != first


def _results(fake: FakeAnthropic, sdk: anthropic.Anthropic) -> list[object]:
    (batch_id,) = fake.batches.ids()
    return list(sdk.messages.batches.results(batch_id))


def test_invalid_requests_error_with_the_apis_reason_and_are_never_drawn(
    fake: FakeAnthropic, sdk: anthropic.Anthropic
) -> None:
    fake.batches.configure(expired=1.0)
    bad = item("bad", "claude-nobatch-1")
    batch = sdk.messages.batches.create(requests=[item("ok"), bad])  # type: ignore[list-item]
    sdk.messages.batches.retrieve(batch.id)
    results = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    assert results["ok"].type == "expired"
    assert results["bad"].type == "errored"
    assert "Message Batches" in results["bad"].error.error.message  # type: ignore[union-attr]


def test_items_no_model_runs_in_a_batch_error(
    fake: FakeAnthropic, sdk: anthropic.Anthropic
) -> None:
    # As the Message Batches API documents: a batch item is never streamed, and a batch
    # never bills a user profile.
    streamed = item("streamed", stream=True)
    billed = item("billed", billing_policy={"type": "billing_policy", "bill_to": "user_profile"})
    batch = sdk.messages.batches.create(requests=[item("ok"), streamed, billed])  # type: ignore[list-item]
    sdk.messages.batches.retrieve(batch.id)
    results = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    assert results["ok"].type == "succeeded"
    assert results["streamed"].type == "errored" and results["billed"].type == "errored"
    assert "billing_policy" in results["billed"].error.error.message  # type: ignore[union-attr]


def test_cancel_mid_processing_keeps_what_was_done(
    fake: FakeAnthropic, sdk: anthropic.Anthropic
) -> None:
    fake.batches.configure(processing_s=0.5)
    batch = sdk.messages.batches.create(requests=_requests(20))  # type: ignore[arg-type]
    time.sleep(0.25)
    canceling = sdk.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    ended = sdk.messages.batches.retrieve(batch.id)
    counts = ended.request_counts
    assert ended.processing_status == "ended"
    assert 0 < counts.succeeded < 20 and counts.succeeded + counts.canceled == 20
    kinds = [r.result.type for r in sdk.messages.batches.results(batch.id)]
    assert kinds == ["succeeded"] * counts.succeeded + ["canceled"] * counts.canceled


def test_list_pages_newest_first(fake: FakeAnthropic) -> None:
    with httpx2.Client(base_url=fake.url, headers=fake.headers()) as http:
        ids = [
            http.post("/v1/messages/batches", json={"requests": _requests(1, f"b{n}")}).json()["id"]
            for n in range(5)
        ]
        first = http.get("/v1/messages/batches", params={"limit": 2}).json()
        second = http.get(
            "/v1/messages/batches", params={"limit": 2, "after_id": first["last_id"]}
        ).json()
    assert [b["id"] for b in first["data"] + second["data"]] == ids[::-1][:4]
    assert first["has_more"] and second["has_more"]
    assert fake.batches.ids() == ids
    assert fake.batches.custom_ids(ids[0]) == ["b00"]


def test_configure_checks_and_reset_restores(fake: FakeAnthropic) -> None:
    for bad in ({"errored": 1.5}, {"expired": -0.1}, {"errored": 0.6, "expired": 0.6}):
        with pytest.raises(ValueError):
            fake.batches.configure(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fake.batches.configure(processing_s=-1)
    fake.batches.configure(processing_s=3)
    assert fake.batches.processing_s == 3
    fake.reset()
    assert fake.batches.processing_s == 0


def test_items_are_validated_when_processed_not_when_created(
    fake: FakeAnthropic, sdk: anthropic.Anthropic
) -> None:
    # The API checks each item's params when it processes the batch: creation accepts
    # items that are invalid (or become invalid) and each comes back errored, with the
    # error the Messages API would give, as `MessageBatchErroredResult`.
    effort = item("effort", "claude-small-1", output_config={"effort": "high"})
    no_model = {"custom_id": "empty", "params": {}}
    batch = sdk.messages.batches.create(requests=[item("ok"), effort, no_model])  # type: ignore[list-item]
    assert batch.request_counts.processing == 3  # accepted, nothing judged yet
    fake.update_model("claude-small-1", unsupported=["effort.high"])  # before processing
    sdk.messages.batches.retrieve(batch.id)
    results = {r.custom_id: r.result for r in sdk.messages.batches.results(batch.id)}
    assert results["ok"].type == "succeeded"
    errored = results["effort"]
    assert isinstance(errored, anthropic.types.messages.MessageBatchErroredResult)
    assert errored.error.type == "error" and errored.error.request_id
    assert errored.error.error.type == "invalid_request_error"
    assert errored.error.error.message == (
        "output_config.effort 'high' is not supported on this model."
    )
    # The same body sent to POST /v1/messages gets the same answer.
    with pytest.raises(anthropic.BadRequestError) as single:
        sdk.messages.create(
            **item("x", "claude-small-1", output_config={"effort": "high"})["params"]
        )  # type: ignore[call-overload]
    assert single.value.body["error"]["message"] == errored.error.error.message  # type: ignore[index]
    assert results["empty"].error.error.message == "model: Field required"  # type: ignore[union-attr]
