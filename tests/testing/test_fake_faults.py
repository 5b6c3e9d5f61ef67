"""Fault injection: scripted error statuses, slow, malformed and truncated answers, overload."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import pytest
from fake_api_helpers import error_of

from caproute.testing import FakeAnthropic, Fault

HELLO = {
    "model": "claude-full-2",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (408, "timeout_error"),
        (409, "conflict_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_status_faults_have_api_shaped_bodies(
    fake: FakeAnthropic, http: httpx.Client, status: int, error_type: str
) -> None:
    fake.faults.add("/v1/models", status=status, headers={"retry-after": "2"})
    response = http.get("/v1/models")
    assert error_of(response)[:2] == (status, error_type)
    assert response.headers["retry-after"] == "2"
    assert http.get("/v1/models").status_code == 200  # consumed


def test_faults_are_consumed_in_order_per_path(fake: FakeAnthropic, http: httpx.Client) -> None:
    fake.faults.add("/v1/models", status=429, times=2)
    fake.faults.add("/v1/models", status=500)
    fake.faults.add("/v1/messages", status=529)
    assert http.post("/v1/messages", json=HELLO).status_code == 529
    statuses = [http.get("/v1/models").status_code for _ in range(4)]
    assert statuses == [429, 429, 500, 200]
    assert fake.faults.pending() == 0


def test_fault_until_cleared_prefix_and_method(fake: FakeAnthropic, http: httpx.Client) -> None:
    fake.faults.add("/v1/models*", status=503, times=None, method="GET")
    assert http.get("/v1/models").status_code == 503
    assert http.get("/v1/models/claude-full-2").status_code == 503
    assert http.get("/v1/models/claude-full-2").status_code == 503
    assert http.post("/v1/models").status_code == 404  # method does not match: normal answer
    fake.faults.clear("/v1/models*")
    assert http.get("/v1/models").status_code == 200


def test_fault_body_and_error_overrides(fake: FakeAnthropic, http: httpx.Client) -> None:
    fake.faults.add("/v1/models", status=400, error_type="billing_error", message="pay up")
    fake.faults.add("/v1/models", Fault(status=502, body=b"<html>bad gateway</html>"))
    fake.faults.add("/v1/models", status=500, body={"custom": True})
    assert error_of(http.get("/v1/models")) == (400, "billing_error", "pay up")
    gateway = http.get("/v1/models")
    assert (gateway.status_code, gateway.text) == (502, "<html>bad gateway</html>")
    assert http.get("/v1/models").json() == {"custom": True}
    with pytest.raises(TypeError):
        fake.faults.add("/v1/models", Fault(status=500), status=429)
    with pytest.raises(ValueError, match="times"):
        fake.faults.add("/v1/models", status=500, times=0)


def test_x_should_retry_header_steers_the_sdk(fake: FakeAnthropic) -> None:
    fake.faults.add("/v1/messages", status=500, x_should_retry=False)
    with fake.client(max_retries=3) as client:
        with pytest.raises(anthropic.InternalServerError):
            client.messages.create(**HELLO)
        assert fake.count("/v1/messages") == 1  # the hint stopped the retries

        fast = {"retry-after-ms": "1"}
        fake.faults.add("/v1/messages", status=400, x_should_retry=True, headers=fast)
        assert client.messages.create(**HELLO).model == "claude-full-2"
    assert fake.count("/v1/messages") == 3  # a 400 retried because the server said so


def test_sdk_retries_rate_limits_then_succeeds(fake: FakeAnthropic) -> None:
    fake.faults.add("/v1/models", status=429, headers={"retry-after-ms": "1"}, times=2)
    with fake.client(max_retries=2) as client:
        models = [m.id for m in client.models.list()]
    assert models[0] == "claude-full-2"
    assert fake.count("/v1/models") == 3


def test_delay_slows_an_otherwise_normal_answer(fake: FakeAnthropic, http: httpx.Client) -> None:
    fake.faults.add("/v1/models", delay=0.2)
    started = time.perf_counter()
    response = http.get("/v1/models")
    assert time.perf_counter() - started >= 0.2
    assert response.status_code == 200
    fake.faults.add("/v1/models", delay=0.3)
    with pytest.raises(httpx.ReadTimeout):
        http.get("/v1/models", timeout=0.05)


def test_malformed_answer_is_200_with_invalid_json(fake: FakeAnthropic, http: httpx.Client) -> None:
    fake.faults.add("/v1/models", malformed=True)
    response = http.get("/v1/models")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_truncated_answer_drops_the_connection_mid_body(
    fake: FakeAnthropic, http: httpx.Client
) -> None:
    fake.faults.add("/v1/models", truncated=True)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/v1/models")
    assert http.get("/v1/models").status_code == 200  # the next request is served


def test_truncated_stream_is_cut_after_some_events(fake: FakeAnthropic, http: httpx.Client) -> None:
    fake.faults.add("/v1/messages", truncated=True)
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/messages", json={**HELLO, "stream": True}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        lines.extend(response.iter_lines())
    assert "event: message_start" in lines
    assert "event: message_stop" not in lines


def test_truncated_stream_fails_the_sdk(fake: FakeAnthropic, sdk: anthropic.Anthropic) -> None:
    fake.faults.add("/v1/messages", truncated=True)
    with (
        pytest.raises(Exception, match="(?i)peer closed|incomplete"),
        sdk.messages.stream(**HELLO) as stream,
    ):
        stream.get_final_message()


def test_stream_error_event_after_http_200(fake: FakeAnthropic, sdk: anthropic.Anthropic) -> None:
    fake.faults.add("/v1/messages", stream_error="overloaded_error")
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk.messages.stream(**HELLO) as stream,
    ):
        stream.get_final_message()
    assert "overloaded_error" in str(caught.value)


def test_overload_is_persistent_per_model_until_cleared(
    fake: FakeAnthropic, http: httpx.Client
) -> None:
    fake.overload("claude-old-1")  # an alias of claude-old-1-20250101
    old = {**HELLO, "model": "claude-old-1-20250101", "max_tokens": 5}
    for _ in range(2):
        assert error_of(http.post("/v1/messages", json=old))[:2] == (529, "overloaded_error")
    assert http.post("/v1/messages", json=HELLO).status_code == 200  # other models are fine
    count = {"model": "claude-old-1-20250101", "messages": HELLO["messages"]}
    assert http.post("/v1/messages/count_tokens", json=count).status_code == 200
    fake.overload("claude-full-2", status=503)
    assert http.post("/v1/messages", json=HELLO).status_code == 503
    fake.clear_overload("claude-old-1-20250101")
    assert http.post("/v1/messages", json=old).status_code == 200
    fake.clear_overload()
    assert http.post("/v1/messages", json=HELLO).status_code == 200
