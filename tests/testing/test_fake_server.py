"""The fake as a server: start/stop, auth, headers, recording, sizes, the pytest plugin."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from fake_api_helpers import API_KEY, error_of

from caproute.testing import FakeAnthropic, make_model

HELLO = {
    "model": "claude-full-2",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


def test_starts_fast_on_loopback_and_stops_cleanly() -> None:
    started = time.perf_counter()
    fake = FakeAnthropic(models=[make_model("claude-a-1")])
    with fake:
        startup_s = time.perf_counter() - started
        assert fake.url == f"http://127.0.0.1:{fake.port}"
        assert httpx.get(f"{fake.url}/v1/models", headers=fake.headers()).status_code == 200
        stopping = time.perf_counter()
    shutdown_s = time.perf_counter() - stopping
    assert startup_s < 0.5
    assert shutdown_s < 0.5
    with pytest.raises(RuntimeError, match="not running"):
        fake.url  # noqa: B018
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", fake._port or 0))


def test_close_does_not_wait_for_a_slow_answer() -> None:
    with FakeAnthropic(models=[make_model("claude-a-1")]) as fake:
        fake.faults.add("/v1/models", delay=30)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{fake.url}/v1/models", headers=fake.headers(), timeout=0.05)
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 0.5


def test_can_restart_after_close() -> None:
    fake = FakeAnthropic(models=[make_model("claude-a-1")])
    for _ in range(2):
        with fake:
            assert httpx.get(f"{fake.url}/v1/models", headers=fake.headers()).status_code == 200


@pytest.mark.anyio
async def test_async_with_form() -> None:
    async with FakeAnthropic(models=[make_model("claude-a-1")]) as fake:
        url, headers = fake.url, fake.headers()
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            assert (await client.get("/v1/models")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": API_KEY}, {"authorization": f"Bearer {API_KEY}"}],
    ids=["x-api-key", "bearer"],
)
def test_auth_accepts_the_key_either_way(fake: FakeAnthropic, headers: dict[str, str]) -> None:
    headers = {**headers, "anthropic-version": "2023-06-01"}
    response = httpx.get(f"{fake.url}/v1/models", headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}, {"authorization": API_KEY}],
    ids=["none", "wrong-x-api-key", "wrong-bearer", "not-bearer"],
)
def test_auth_rejects_missing_or_wrong_key(fake: FakeAnthropic, headers: dict[str, str]) -> None:
    headers = {**headers, "anthropic-version": "2023-06-01"}
    response = httpx.post(f"{fake.url}/v1/messages", json=HELLO, headers=headers)
    assert error_of(response)[:2] == (401, "authentication_error")
    assert API_KEY not in response.text


def test_no_api_key_configured_means_no_auth() -> None:
    with FakeAnthropic(models=[make_model("claude-a-1")]) as fake:
        response = httpx.get(f"{fake.url}/v1/models", headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200


def test_anthropic_version_is_required(fake: FakeAnthropic) -> None:
    missing = httpx.post(f"{fake.url}/v1/messages", json=HELLO, headers={"x-api-key": API_KEY})
    assert error_of(missing)[:2] == (400, "invalid_request_error")
    assert "anthropic-version" in error_of(missing)[2]
    unknown = httpx.post(
        f"{fake.url}/v1/messages",
        json=HELLO,
        headers={"x-api-key": API_KEY, "anthropic-version": "1999-01-01"},
    )
    assert error_of(unknown)[0] == 400


def test_unknown_paths_are_404_with_api_shaped_body(http: httpx.Client) -> None:
    response = http.get("/v1/nope")
    assert error_of(response)[:2] == (404, "not_found_error")
    assert http.delete("/v1/models").status_code == 404


def test_every_answer_has_a_unique_request_id(http: httpx.Client) -> None:
    ids = {http.get("/v1/models").headers["request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(i.startswith("req_") for i in ids)


def test_invalid_json_body_is_a_400(http: httpx.Client) -> None:
    json_type = {"content-type": "application/json"}
    response = http.post("/v1/messages", content=b"{nope", headers=json_type)
    assert error_of(response)[:2] == (400, "invalid_request_error")
    assert http.post("/v1/messages", json=[1, 2]).status_code == 400


def _padded_hello(total_bytes: int) -> bytes:
    """HELLO as JSON, padded with an unknown field to exactly `total_bytes`."""
    head = json.dumps(HELLO)[:-1].encode() + b', "padding": "'
    return head + b"x" * (total_bytes - len(head) - 2) + b'"}'


def test_body_over_32_mib_is_413(http: httpx.Client) -> None:
    limit = 32 * 1024 * 1024
    json_type = {"content-type": "application/json"}
    too_big = http.post("/v1/messages", content=_padded_hello(limit + 1), headers=json_type)
    assert error_of(too_big)[:2] == (413, "request_too_large")
    at_limit = http.post("/v1/messages", content=_padded_hello(limit), headers=json_type)
    assert at_limit.status_code == 200


def test_requests_are_recorded(fake: FakeAnthropic, http: httpx.Client) -> None:
    http.get("/v1/models", params={"limit": 2, "lifecycle[]": ["active", "retired"]})
    beta = {"Anthropic-Beta": "a"}
    http.post("/v1/messages", json={**HELLO, "model": "claude-bare-1"}, headers=beta)
    http.post("/v1/messages/count_tokens", json={"model": "claude-full-2", "messages": []})
    first, second, third = fake.requests
    assert (first.method, first.path, first.body, first.model) == ("GET", "/v1/models", None, None)
    assert first.query == {"limit": ["2"], "lifecycle[]": ["active", "retired"]}
    assert second.model == "claude-bare-1"
    assert second.body["max_tokens"] == 16
    assert second.headers["anthropic-beta"] == "a"  # names are lower-cased
    assert API_KEY not in repr(second)
    assert third.path == "/v1/messages/count_tokens"
    assert fake.count("/v1/messages") == 2
    assert fake.count("/v1/messages", method="get") == 0
    assert fake.count() == 3


def test_reset_restores_the_constructed_state(fake: FakeAnthropic, http: httpx.Client) -> None:
    fake.retire("claude-full-2")
    fake.overload("claude-bare-1")
    fake.faults.add("/v1/models", status=500)
    fake.stream_delay = 1.0
    http.get("/v1/models/claude-full-2")
    fake.reset()
    assert fake.requests == []
    assert fake.faults.pending() == 0
    assert fake.stream_delay == 0.0
    assert http.get("/v1/models").json()["first_id"] == "claude-full-2"
    assert http.post("/v1/messages", json={**HELLO, "model": "claude-bare-1"}).status_code == 200


def test_default_catalogue_is_not_empty() -> None:
    with FakeAnthropic() as fake:
        models = fake.models()
        listed = httpx.get(f"{fake.url}/v1/models?limit=1000", headers=fake.headers()).json()
    assert models
    assert {m["id"] for m in listed["data"]} <= {m["id"] for m in models}


def test_pytest_plugin_fixture(fake_anthropic: FakeAnthropic) -> None:
    with fake_anthropic.client() as client:
        model = next(iter(client.models.list())).id
        reply = client.messages.create(
            model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert reply.model == model
    assert fake_anthropic.count("/v1/messages") == 1
    assert "test-key" not in repr(fake_anthropic)
