"""Routing transports with real httpx2 and httpx clients against the fake API on loopback."""

from __future__ import annotations

import json
import logging
import time
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest
from sdk_helpers import EFFORT_MAX, HI, PDF_BLOCK

from caproute import AsyncRoutingTransport, LiveRouter, Policy, Registry, RoutingTransport
from caproute._core import body as _body
from caproute._core.decision import Decision
from caproute._core.wire import parse_betas
from caproute._http.transports import (
    _call_headers,
    async_httpx_transport,
    httpx_transport,
)
from caproute.testing import FakeAnthropic, make_model

MODELS = [
    make_model("claude-big-2", max_tokens=128_000),
    make_model(
        "claude-small-1",
        unsupported=["effort.max", "effort.xhigh", "pdf_input", "thinking.enabled"],
        max_tokens=8192,
    ),
]
REGISTRY = Registry.from_models(MODELS)
KEY = "test-key-h4a"
# Needs a reroute (no pdf_input on claude-small-1).
WITH_PDF = {
    "model": "claude-small-1",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": [PDF_BLOCK, {"type": "text", "text": "summarise"}]}],
}
FLAVOURS = [pytest.param(httpx2, id="httpx2"), pytest.param(httpx, id="httpx")]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": MODELS, "api_key": KEY}


def routed(module: ModuleType, router: Any, inner: Any = None, *, is_async: bool = False) -> Any:
    if module is httpx2:
        cls: Any = AsyncRoutingTransport if is_async else RoutingTransport
        return cls(inner, router=router)
    factory = async_httpx_transport if is_async else httpx_transport
    return factory(inner, router=router)


def client(module: ModuleType, fake: FakeAnthropic, transport: Any = None) -> Any:
    return module.Client(base_url=fake.url, headers=fake.headers(), transport=transport)


def async_client(module: ModuleType, fake: FakeAnthropic, transport: Any = None) -> Any:
    return module.AsyncClient(base_url=fake.url, headers=fake.headers(), transport=transport)


class Recording:
    """An inner transport that remembers what it was handed, then sends it for real."""

    def __init__(self, module: ModuleType) -> None:
        self.inner = module.HTTPTransport()
        self.requests: list[Any] = []
        self.body_was_read: list[bool] = []

    def handle_request(self, request: Any) -> Any:
        self.requests.append(request)
        self.body_was_read.append(hasattr(request, "_content"))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def caproute_headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("caproute-")}


@pytest.mark.parametrize("module", FLAVOURS)
def test_without_caproute_the_fake_refuses(module: ModuleType, fake: FakeAnthropic) -> None:
    with client(module, fake) as plain:
        for body in (EFFORT_MAX, WITH_PDF):
            response = plain.post("/v1/messages", json=body)
            assert response.status_code == 400, body
            assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("module", FLAVOURS)
def test_adjusts_and_reroutes_with_headers_and_decision(
    module: ModuleType, fake: FakeAnthropic
) -> None:
    seen: list[Decision] = []
    router = LiveRouter(REGISTRY, on_decision=seen.append)
    with client(module, fake, routed(module, router)) as http:
        adjusted = http.post("/v1/messages", json=EFFORT_MAX)
        rerouted = http.post("/v1/messages", json=WITH_PDF)
    assert adjusted.status_code == 200
    assert caproute_headers(adjusted) == {
        "caproute-outcome": "adjusted",
        "caproute-model": "claude-small-1",
        "caproute-requested-model": "claude-small-1",
        "caproute-changes": "output_config.effort: max -> high",
    }
    assert adjusted.extensions["caproute_decision"] is seen[0]
    assert fake.requests[0].body["output_config"] == {"effort": "high"}
    assert rerouted.status_code == 200
    assert rerouted.headers["caproute-outcome"] == "rerouted"
    assert rerouted.headers["caproute-model"] == "claude-big-2"
    assert rerouted.json()["model"] == "claude-big-2"
    assert [d.outcome for d in seen] == ["adjusted", "rerouted"]


@pytest.mark.parametrize("module", FLAVOURS)
@pytest.mark.anyio
async def test_async_clients_route_too(module: ModuleType, fake: FakeAnthropic) -> None:
    router = LiveRouter(REGISTRY)
    async with async_client(module, fake, routed(module, router, is_async=True)) as http:
        adjusted = await http.post("/v1/messages", json=EFFORT_MAX)
        rerouted = await http.post("/v1/messages", json=WITH_PDF)
        listing = await http.get("/v1/models")
    assert adjusted.status_code == 200
    assert adjusted.headers["caproute-outcome"] == "adjusted"
    assert rerouted.headers["caproute-model"] == "claude-big-2"
    assert listing.status_code == 200
    assert "caproute-outcome" not in listing.headers


@pytest.mark.parametrize("module", FLAVOURS)
def test_rebuilt_requests_get_a_fresh_length_and_keep_their_extensions(
    module: ModuleType, fake: FakeAnthropic
) -> None:
    inner = Recording(module)
    timeout = module.Timeout(7.0, connect=3.0)
    with client(module, fake, routed(module, LiveRouter(REGISTRY), inner)) as http:
        original = http.build_request("POST", "/v1/messages", json=EFFORT_MAX, timeout=timeout)
        response = http.send(original)
    assert response.status_code == 200
    [sent] = inner.requests
    assert sent is not original
    assert sent.headers["content-length"] == str(len(sent.content))
    assert int(original.headers["content-length"]) != len(sent.content)
    assert sent.extensions["timeout"] == original.extensions["timeout"]
    assert sent.headers["x-api-key"] == KEY
    assert json.loads(sent.content)["output_config"] == {"effort": "high"}
    assert b", " not in sent.content  # compact JSON, serialised once


@pytest.mark.parametrize("module", FLAVOURS)
def test_unchanged_requests_are_forwarded_as_the_same_object(
    module: ModuleType, fake: FakeAnthropic
) -> None:
    inner = Recording(module)
    plain = {"model": "claude-big-2", "max_tokens": 10, "messages": HI}
    with client(module, fake, routed(module, LiveRouter(REGISTRY), inner)) as http:
        original = http.build_request("POST", "/v1/messages", json=plain)
        response = http.send(original)
    assert response.headers["caproute-outcome"] == "unchanged"
    assert inner.requests == [original]


@pytest.mark.parametrize("module", FLAVOURS)
def test_other_traffic_passes_through_with_its_body_unread(
    module: ModuleType, fake: FakeAnthropic
) -> None:
    inner = Recording(module)
    seen: list[Decision] = []
    with client(
        module, fake, routed(module, LiveRouter(REGISTRY, on_decision=seen.append), inner)
    ) as http:
        models = http.get("/v1/models")
        chunks = iter([b'{"requests":', b"[]}"])
        upload = http.post("/v1/messages/batches/msgbatch_x/cancel", content=chunks)
    assert models.status_code == 200
    assert "caproute-outcome" not in models.headers
    assert upload.status_code == 404  # unknown batch: the fake answered, untouched
    # The streamed upload reached the inner transport still unread (a GET has no body).
    assert inner.body_was_read[1] is False
    assert seen == []


@pytest.mark.parametrize("module", FLAVOURS)
def test_a_body_that_is_not_json_is_forwarded_and_reported(
    module: ModuleType, fake: FakeAnthropic
) -> None:
    seen: list[Decision] = []
    with client(
        module, fake, routed(module, LiveRouter(REGISTRY, on_decision=seen.append))
    ) as http:
        response = http.post("/v1/messages", content=b"not json")
    assert response.status_code == 400  # the API's verdict, not ours
    assert [d.outcome for d in seen] == ["passthrough"]


@pytest.mark.parametrize("module", FLAVOURS)
def test_version_and_betas_are_read_from_the_headers(
    module: ModuleType, fake: FakeAnthropic
) -> None:
    body = {"model": "claude-big-2", "max_tokens": 10, "temperature": 0.5, "messages": HI}
    headers = {"anthropic-version": "2026-10-21", "anthropic-beta": "a-1, b-2"}
    with client(module, fake) as plain:
        assert plain.post("/v1/messages", json=body, headers=headers).status_code == 400
    with client(module, fake, routed(module, LiveRouter(REGISTRY))) as http:
        response = http.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200
    assert "temperature" in response.headers["caproute-changes"]
    assert "temperature" not in fake.requests[-1].body
    assert fake.requests[-1].headers["anthropic-beta"] == "a-1, b-2"


@pytest.mark.parametrize("module", FLAVOURS)
def test_count_tokens_is_routed(module: ModuleType, fake: FakeAnthropic) -> None:
    body = {"model": "claude-small-1", "output_config": {"effort": "max"}, "messages": HI}
    with client(module, fake) as plain:
        assert plain.post("/v1/messages/count_tokens", json=body).status_code == 400
    with client(module, fake, routed(module, LiveRouter(REGISTRY))) as http:
        response = http.post("/v1/messages/count_tokens", json=body)
    assert response.status_code == 200
    assert response.json()["input_tokens"] > 0
    assert response.headers["caproute-outcome"] == "adjusted"


@pytest.mark.parametrize("module", FLAVOURS)
def test_batch_items_are_routed_one_by_one(module: ModuleType, fake: FakeAnthropic) -> None:
    batch = {
        "requests": [
            {"custom_id": "effort", "params": EFFORT_MAX},
            {"custom_id": "pdf", "params": WITH_PDF},
        ]
    }

    def results(http: Any) -> dict[str, str]:
        created = http.post("/v1/messages/batches", json=batch)
        assert created.status_code == 200
        batch_id = created.json()["id"]
        http.get(f"/v1/messages/batches/{batch_id}")  # the fake ends a batch when retrieved
        lines = http.get(f"/v1/messages/batches/{batch_id}/results").text.splitlines()
        return {(doc := json.loads(line))["custom_id"]: doc["result"]["type"] for line in lines}

    with client(module, fake) as plain:
        assert results(plain) == {"effort": "errored", "pdf": "errored"}
    seen: list[Decision] = []
    with client(
        module, fake, routed(module, LiveRouter(REGISTRY, on_decision=seen.append))
    ) as http:
        assert results(http) == {"effort": "succeeded", "pdf": "succeeded"}
    [decision] = seen
    assert dict(decision.items)["pdf"].model == "claude-big-2"
    assert dict(decision.items)["effort"].outcome == "adjusted"


@pytest.mark.parametrize("module", FLAVOURS)
def test_a_rejected_request_is_answered_locally(module: ModuleType, fake: FakeAnthropic) -> None:
    strict = Policy.from_text("defaults:\n  on_unsupported: reject\n")
    with client(module, fake, routed(module, LiveRouter(REGISTRY, policy=strict))) as http:
        response = http.post("/v1/messages", json=EFFORT_MAX)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("caproute: ")
    assert response.headers["caproute-outcome"] == "rejected"
    assert response.headers["x-should-retry"] == "false"
    assert response.extensions["caproute_decision"].rejected
    assert fake.count("/v1/messages") == 0


STREAM_DELAY_S = 0.02


@pytest.mark.parametrize("module", FLAVOURS)
def test_streams_pass_through_unbuffered(module: ModuleType, fake: FakeAnthropic) -> None:
    fake.stream_delay = STREAM_DELAY_S
    body = {**EFFORT_MAX, "stream": True}
    with client(module, fake, routed(module, LiveRouter(REGISTRY))) as http:
        start = time.perf_counter()
        with http.stream("POST", "/v1/messages", json=body) as response:
            assert response.headers["caproute-outcome"] == "adjusted"
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("event:"))
            first_at = time.perf_counter() - start
            events = 1 + sum(1 for line in lines if line.startswith("event:"))
        total = time.perf_counter() - start
    assert first == "event: message_start"
    assert events >= 5
    # Unbuffered: the first event arrived while the fake was still pausing between the
    # others (buffering would deliver it only at the end, after every pause).
    assert first_at + STREAM_DELAY_S * (events - 2) <= total


@pytest.mark.parametrize("module", FLAVOURS)
@pytest.mark.anyio
async def test_async_streams_pass_through_unbuffered(
    module: ModuleType, fake: FakeAnthropic
) -> None:
    fake.stream_delay = STREAM_DELAY_S
    body = {**WITH_PDF, "stream": True}
    transport = routed(module, LiveRouter(REGISTRY), is_async=True)
    async with async_client(module, fake, transport) as http:
        start = time.perf_counter()
        async with http.stream("POST", "/v1/messages", json=body) as response:
            assert response.headers["caproute-model"] == "claude-big-2"
            lines = response.aiter_lines()
            async for line in lines:
                if line.startswith("event:"):
                    break
            first_at = time.perf_counter() - start
            events = 1 + len([line async for line in lines if line.startswith("event:")])
        total = time.perf_counter() - start
    assert events >= 5
    assert first_at + STREAM_DELAY_S * (events - 2) <= total


def test_router_and_its_settings_are_exclusive() -> None:
    with pytest.raises(TypeError):
        RoutingTransport(router=LiveRouter(REGISTRY), policy=Policy.default())
    transport = RoutingTransport(registry=REGISTRY)
    assert isinstance(transport.router, LiveRouter)
    transport.close()


def test_the_key_never_reaches_decisions_or_logs(
    fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Decision] = []
    router = LiveRouter(REGISTRY, on_decision=seen.append)
    with (
        caplog.at_level(logging.DEBUG, logger="caproute"),
        client(httpx2, fake, routed(httpx2, router)) as http,
    ):
        http.post("/v1/messages", json=EFFORT_MAX)
        http.post("/v1/messages", json=WITH_PDF, headers={"authorization": f"Bearer {KEY}"})
    assert len(seen) == 2
    for decision in seen:
        assert KEY not in repr(decision)
        assert KEY not in json.dumps(decision.to_dict())
        assert KEY not in decision.explain()
    assert caplog.records and KEY not in caplog.text


@pytest.mark.parametrize("http", [httpx2, httpx], ids=["httpx2", "httpx"])
@pytest.mark.parametrize(
    "raw",
    [
        [],
        [("Anthropic-Version", "2023-06-01")],
        [("anthropic-version", "a"), ("x-other", "é"), ("anthropic-version", "b")],
        [("anthropic-beta", "x-1, y-2"), ("anthropic-beta", "z-3"), ("anthropic-version", "v")],
        [("anthropic-beta", "caf\u00e9")],  # not ASCII: the public API decides
        [("X-Stainless-Retry-Count", "2"), ("anthropic-version", "v")],
        [("x-stainless-retry-count", "two")],  # not a number: 0
        [("x-stainless-retry-count", "1"), ("x-other", "\u00e9")],
        [("Content-Encoding", "gzip"), ("content-encoding", "deflate")],
    ],
)
def test_call_headers_read_as_the_headers_api_reads_them(
    http: ModuleType, raw: list[tuple[str, str]]
) -> None:
    headers = http.Headers([(k, v.encode("latin-1")) for k, v in raw])
    retry = headers.get("x-stainless-retry-count")
    expected = (
        headers.get("anthropic-version"),
        parse_betas(headers.get_list("anthropic-beta")),
        int(retry) if retry is not None and retry.isdigit() else 0,
        headers.get("content-encoding"),
    )
    assert _call_headers(headers) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"model":"m","max_tokens":1}',
        ' {"a": 1}',
        '{"a": 1}\n',
        "\t[1, 2]  ",
        '"text"',
        "3.5",
        "null",
        '{"a": 1} {"b": 2}',
        '{"a": 1}x',
        "",
        "   ",
        "{",
        '{"a": "\u00e9"}',
    ],
)
def test_the_body_parser_reads_what_json_loads_reads(text: str) -> None:
    # The transport's shortcut to json's scanner: the same value, or "not JSON" where
    # json.loads raises (such bodies are forwarded untouched).
    try:
        expected: Any = json.loads(text)
    except ValueError:
        assert _body.parse(text.encode()) == (_body.NOT_JSON, None)
    else:
        assert _body.parse(text.encode()) == (expected, None)


# -- whose error is it: building the request (caproute's) or sending it (the caller's) ------


@pytest.mark.parametrize("module", FLAVOURS)
def test_an_error_building_the_routed_request_is_answered_locally(
    module: ModuleType, fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(body: Any) -> bytes:
        raise TypeError("a bug while writing the routed body")

    monkeypatch.setattr(_body, "dumps", broken)
    decisions: list[Decision] = []
    recording = Recording(module)
    router = LiveRouter(REGISTRY, on_decision=decisions.append)
    with client(module, fake, routed(module, router, recording)) as http:
        response = http.post("/v1/messages", json=EFFORT_MAX)  # adjusted: re-serialised
    assert response.status_code == 500
    assert response.headers["x-should-retry"] == "false"
    assert "internal error while routing this request (TypeError)" in response.text
    assert recording.requests == []  # nothing went upstream
    assert decisions[-1].outcome == "rejected"


@pytest.mark.parametrize("module", FLAVOURS)
def test_an_error_of_sending_reaches_the_caller_untouched(module: ModuleType) -> None:
    class Unreachable:
        def handle_request(self, request: Any) -> Any:
            raise module.ConnectError("refused", request=request)

        def close(self) -> None:
            pass

    transport = routed(module, LiveRouter(REGISTRY), Unreachable())
    http = module.Client(base_url="http://127.0.0.1:9", transport=transport)
    with http, pytest.raises(module.ConnectError, match="refused"):
        http.post("/v1/messages", json={**EFFORT_MAX, "model": "claude-big-2"})
