"""The ASGI app embedded in-process (``httpx2.ASGITransport``) over a mock upstream.

These cover what a loopback fake can't produce: a compressed upstream answer, both as
a raw stream and as a body an inner layer already read.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest

from caproute import ProxyConfig, create_proxy_app

PAYLOAD = json.dumps({"data": [{"id": "claude-x"}], "has_more": False}).encode()


class _GzipStream(httpx2.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield gzip.compress(PAYLOAD)


async def streamed_gzip(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(
        200,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        stream=_GzipStream(),
    )


async def already_read_gzip(request: httpx2.Request) -> httpx2.Response:
    # Response(content=...) is read (and decoded) at construction, like a body the
    # routing flow inspected.
    return httpx2.Response(
        200,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        content=gzip.compress(PAYLOAD),
    )


def client_for(handler: object) -> httpx2.AsyncClient:
    app = create_proxy_app(
        ProxyConfig(upstream="https://upstream.invalid/base"),
        inner_transport=httpx2.MockTransport(handler),  # type: ignore[arg-type]
    )
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url="http://proxy")


@pytest.mark.anyio
async def test_raw_upstream_bytes_keep_their_encoding() -> None:
    async with client_for(streamed_gzip) as client:
        response = await client.get("/v1/models", headers={"accept-encoding": "gzip"})

    assert response.headers["content-encoding"] == "gzip"
    assert response.content == PAYLOAD  # the client decoded what the upstream encoded


@pytest.mark.anyio
async def test_a_body_read_by_an_inner_layer_is_sent_decoded() -> None:
    async with client_for(already_read_gzip) as client:
        response = await client.get("/v1/models")

    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(len(PAYLOAD))
    assert response.content == PAYLOAD


@pytest.mark.anyio
async def test_upstream_path_prefix_is_kept() -> None:
    seen: list[str] = []

    async def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(200, json={})

    async with client_for(record) as client:
        await client.get("/v1/models?limit=2")

    assert seen == ["https://upstream.invalid/base/v1/models?limit=2"]


class _CutMidEvent(httpx2.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"event: message_start\ndata: {}\n\n"
        yield b'event: content_block_delta\ndata: {"type": "content_bl'
        raise httpx2.ReadError("connection reset")


async def stream_cut_mid_event(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_CutMidEvent()
    )


@pytest.mark.anyio
async def test_stream_cut_inside_an_event_ends_with_a_separate_error_event() -> None:
    async with client_for(stream_cut_mid_event) as client:
        response = await client.post("/v1/messages", content=b"not json")

    events = response.text.split("\n\n")
    assert events[0] == "event: message_start\ndata: {}"
    assert events[1] == 'event: content_block_delta\ndata: {"type": "content_bl'
    assert events[2].startswith("event: error\ndata: ")
    error = json.loads(events[2].split("data: ", 1)[1])
    assert error["error"] == {
        "type": "api_error",
        "message": "caproute: upstream stream ended unexpectedly",
    }


@pytest.mark.anyio
async def test_upstream_cookies_are_not_replayed_to_the_next_callers_request() -> None:
    # The proxy is shared by many callers: nothing one upstream answer sets may ride
    # along on another caller's request.
    seen: list[str | None] = []

    async def set_cookie(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers.get("cookie"))
        return httpx2.Response(200, headers={"set-cookie": "session=caller-a; Path=/"}, json={})

    async with client_for(set_cookie) as client:
        first = await client.get("/v1/models")
        client.cookies.clear()  # the second caller has no cookie of its own
        await client.get("/v1/models")

    assert first.headers["set-cookie"] == "session=caller-a; Path=/"  # passed through
    assert seen == [None, None]


@pytest.mark.anyio
async def test_upstream_requests_carry_the_configured_timeouts() -> None:
    seen: list[object] = []

    async def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.extensions.get("timeout"))
        return httpx2.Response(200, json={})

    app = create_proxy_app(
        ProxyConfig(upstream="https://upstream.invalid", connect_timeout=3, read_timeout=7),
        inner_transport=httpx2.MockTransport(record),
    )
    transport = httpx2.ASGITransport(app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://proxy") as client:
        await client.get("/v1/models")

    assert seen == [{"connect": 3, "read": 7, "write": 7, "pool": 3}]


@pytest.mark.anyio
async def test_the_answer_ends_before_the_upstream_response_is_closed() -> None:
    # Closing hands the upstream connection back to the pool, which takes a while: a
    # chunked answer is only complete with its last message, so that goes out first.
    events: list[str] = []

    class _Recorded(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"event: message_stop\ndata: {}\n\n"

        async def aclose(self) -> None:
            events.append("upstream closed")

    async def stream(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Recorded()
        )

    app = create_proxy_app(
        ProxyConfig(upstream="https://upstream.invalid"),
        inner_transport=httpx2.MockTransport(stream),
    )
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    done = anyio.Event()

    async def receive() -> dict[str, object]:
        if requests:
            return requests.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            events.append("answer complete")
            done.set()

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/models",
        "raw_path": b"/v1/models",
        "query_string": b"",
        "headers": [(b"host", b"proxy")],
    }
    await app(scope, receive, send)
    await app.aclose()

    assert events == ["answer complete", "upstream closed"]


MESSAGE_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "hello"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 11, "output_tokens": 7},
}
STREAM_EVENTS = (
    b'event: message_start\ndata: {"type": "message_start", "message": {"usage": '
    b'{"input_tokens": 13, "output_tokens": 1, "cache_read_input_tokens": 5}}}\n\n'
    + b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
    b'"delta": {"type": "text_delta", "text": "hi"}}\n\n'
    * 50
    + b'event: message_delta\ndata: {"type": "message_delta", "usage": {"output_tokens": 9}}\n\n'
    + b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
)


class _Chunks(httpx2.AsyncByteStream):
    def __init__(self, data: bytes, size: int) -> None:
        self._pieces = [data[i : i + size] for i in range(0, len(data), size)]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


async def gzip_messages(request: httpx2.Request) -> httpx2.Response:
    # What the API may send any client whose Accept-Encoding allows it (the Python
    # SDK's HTTP client asks for gzip by default): a compressed answer, in pieces.
    streaming = json.loads(request.content).get("stream", False)
    body, kind = (
        (STREAM_EVENTS, "text/event-stream")
        if streaming
        else (
            json.dumps(MESSAGE_ANSWER).encode(),
            "application/json",
        )
    )
    return httpx2.Response(
        200,
        headers={"content-type": kind, "content-encoding": "gzip", "request-id": "req_gz"},
        stream=_Chunks(gzip.compress(body), 37),
    )


@pytest.mark.anyio
async def test_compressed_answers_pass_unchanged_and_their_tokens_are_counted() -> None:
    app = create_proxy_app(
        ProxyConfig(upstream="https://upstream.invalid"),
        inner_transport=httpx2.MockTransport(gzip_messages),  # type: ignore[arg-type]
    )
    request = {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app), base_url="http://proxy"
    ) as client:
        plain = await client.post("/v1/messages", json=request, headers={"x-api-key": "k"})
        streamed = await client.post(
            "/v1/messages", json={**request, "stream": True}, headers={"x-api-key": "k"}
        )
    metrics = app.metrics.render().decode()

    assert plain.headers["content-encoding"] == "gzip"
    assert plain.json() == MESSAGE_ANSWER
    assert streamed.content == STREAM_EVENTS
    from proxy_helpers import metric_value

    assert metric_value(metrics, 'caproute_proxy_tokens_total{kind="input"}') == 11 + 13
    assert metric_value(metrics, 'caproute_proxy_tokens_total{kind="output"}') == 7 + 9
    assert metric_value(metrics, 'caproute_proxy_tokens_total{kind="cache_read"}') == 5


@pytest.mark.anyio
async def test_an_unreachable_upstream_is_logged_with_the_models_of_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def unreachable(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectTimeout("no route")

    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    caplog.set_level("INFO", logger="caproute.access")
    async with client_for(unreachable) as client:
        answer = await client.post(
            "/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
        )

    assert answer.status_code == 504
    (line,) = [r.getMessage() for r in caplog.records if r.name == "caproute.access"]
    assert "outcome=failed" in line
    assert "requested=claude-sonnet-4-5" in line
    assert "model=claude-sonnet-4-5" in line
