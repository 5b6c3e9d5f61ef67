"""Raw sockets against the real proxy: malformed, oversized, slow, rude and hostile callers."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest
from proxy_helpers import (
    Flavour,
    RunningProxy,
    http_request,
    json_body_of,
    raw_request,
    read_until_closed,
    sdk_client,
    start_proxy,
    status_of,
    wait_until,
)

from caproute.testing import FakeAnthropic

HI = [{"role": "user", "content": "hi"}]
LIMIT = 4096


@pytest.fixture(scope="module")
def strict(fake_anthropic_server: FakeAnthropic, flavour: Flavour) -> Iterator[RunningProxy]:
    """A proxy with a small body limit and a short body deadline."""
    running = start_proxy(
        fake_anthropic_server, flavour=flavour, max_body_bytes=LIMIT, body_timeout=0.3
    )
    yield running
    running.stop()


def message_body(**extra: object) -> bytes:
    body = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": HI, **extra}
    return json.dumps(body).encode()


def post(fake: FakeAnthropic, body: bytes, **headers: str) -> bytes:
    return http_request(
        "POST",
        "/v1/messages",
        {
            **fake.headers(),
            "content-type": "application/json",
            "content-length": str(len(body)),
            "connection": "close",
            **headers,
        },
        body,
    )


# -- malformed and oversized bodies ----------------------------------------------------------


def test_malformed_json_is_passed_to_the_upstream_which_answers_400(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    answer = raw_request(proxy.port, post(fake, b'{"model": "claude-haiku-4-5", '))

    assert status_of(answer) == 400
    assert json_body_of(answer)["error"]["type"] == "invalid_request_error"
    assert fake.count("/v1/messages") == 1  # caproute did not invent an answer
    assert httpx.get(f"{proxy.url}/v1/models", headers=fake.headers()).status_code == 200


def test_declared_body_over_the_limit_is_413_before_reading_it(
    fake: FakeAnthropic, strict: RunningProxy
) -> None:
    request = http_request(
        "POST",
        "/v1/messages",
        {**fake.headers(), "content-length": str(LIMIT + 1), "content-type": "application/json"},
    )  # headers only: the proxy must answer without waiting for the body

    answer = raw_request(strict.port, request, timeout=2)

    assert status_of(answer) == 413
    assert json_body_of(answer)["error"]["type"] == "request_too_large"
    assert b"connection: close" in answer.lower()
    assert fake.count("/v1/messages") == 0


def test_chunked_body_growing_over_the_limit_is_413(
    fake: FakeAnthropic, strict: RunningProxy
) -> None:
    chunk = b"x" * 1024
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
    request = http_request(
        "POST",
        "/v1/messages",
        {**fake.headers(), "transfer-encoding": "chunked", "content-type": "application/json"},
        chunked,
    )

    answer = raw_request(strict.port, request)

    assert status_of(answer) == 413
    assert fake.count("/v1/messages") == 0


def test_sdk_sees_the_413_as_its_own_error_class(fake: FakeAnthropic, strict: RunningProxy) -> None:
    client = sdk_client(strict.url)

    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=32,
            messages=[{"role": "user", "content": "x" * (LIMIT * 2)}],
        )

    assert caught.value.status_code == 413


def test_slow_client_gets_408_and_others_are_served_meanwhile(
    fake: FakeAnthropic, strict: RunningProxy
) -> None:
    body = message_body()
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as slow:
        slow.sendall(post(fake, body)[: -len(body) + 5])  # headers and 5 bytes, then nothing
        # While the slow caller dawdles, another caller is served normally.
        other = httpx.get(f"{strict.url}/v1/models", headers=fake.headers())
        started = time.monotonic()
        answer = read_until_closed(slow)
        waited = time.monotonic() - started

    assert other.status_code == 200
    assert status_of(answer) == 408
    assert json_body_of(answer)["error"]["type"] == "timeout_error"
    assert waited < 2
    assert fake.count("/v1/messages") == 0


# -- streams cut short, from either side -----------------------------------------------------


def test_client_disconnecting_mid_stream_is_quiet_and_counted(
    fake: FakeAnthropic, proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    fake.stream_delay = 0.05
    before = proxy.metric("caproute_proxy_client_disconnects_total")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as rude:
        rude.sendall(post(fake, message_body(stream=True)))
        assert rude.recv(65536).startswith(b"HTTP/1.1 200")  # the stream has begun
    # The proxy notices at once, not when the upstream's next event arrives.
    wait_until(lambda: proxy.metric("caproute_proxy_client_disconnects_total") == before + 1)
    wait_until(lambda: proxy.app.metrics.in_flight == 0)

    assert httpx.get(f"{proxy.url}/v1/models", headers=fake.headers()).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_upstream_dying_mid_stream_ends_the_stream_with_an_error_event(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    fake.faults.add("/v1/messages", truncated=True)
    client = sdk_client(proxy.url)

    with (
        pytest.raises(anthropic.APIStatusError) as caught,  # the SDK's reaction to `error`
        client.messages.stream(model="claude-haiku-4-5", max_tokens=32, messages=HI) as stream,
    ):
        stream.until_done()

    assert "upstream stream ended unexpectedly" in str(caught.value)
    assert client.messages.create(model="claude-haiku-4-5", max_tokens=32, messages=HI).content


def test_upstream_dying_mid_json_body_truncates_the_answer(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    fake.faults.add("/v1/models", truncated=True)

    with pytest.raises(httpx.RemoteProtocolError):  # Content-Length short: visibly incomplete
        httpx.get(f"{proxy.url}/v1/models", headers=fake.headers())

    assert httpx.get(f"{proxy.url}/v1/models", headers=fake.headers()).status_code == 200


def test_unreachable_upstream_is_502(fake: FakeAnthropic) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    running = RunningProxy.for_upstream(f"http://127.0.0.1:{dead_port}")
    try:
        response = httpx.get(f"{running.url}/v1/models", headers=fake.headers())
        assert response.status_code == 502
        assert response.json()["error"]["type"] == "api_error"
        assert running.metric('caproute_proxy_upstream_errors_total{status="unreachable"}') == 1
    finally:
        running.stop()


# -- hostile requests ------------------------------------------------------------------------


def test_hop_by_hop_headers_are_dropped(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    request = http_request(
        "GET",
        "/v1/models",
        {
            **fake.headers(),
            "Connection": "close, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic dXNlcjpwYXNz",
            "X-Kept": "yes",
        },
    )

    assert status_of(raw_request(proxy.port, request)) == 200

    seen = fake.requests[-1].headers
    assert seen["x-kept"] == "yes"
    for dropped in ("x-secret-hop", "keep-alive", "te", "proxy-authorization"):
        assert dropped not in seen
    assert seen.get("connection", "keep-alive") != "close, X-Secret-Hop"


@pytest.mark.parametrize(
    "evil_value",
    [b"a\rX-Injected: 1", b"a\x00X-Injected: 1"],
    ids=["bare-cr", "nul"],
)
def test_control_characters_in_header_values_are_refused(
    fake: FakeAnthropic, proxy: RunningProxy, evil_value: bytes
) -> None:
    request = http_request("GET", "/v1/models", {**fake.headers(), "Connection": "close"})
    request = request.replace(b"\r\n\r\n", b"\r\nX-Evil: " + evil_value + b"\r\n\r\n")

    answer = raw_request(proxy.port, request)

    assert status_of(answer) == 400
    assert fake.requests == []
    assert httpx.get(f"{proxy.url}/v1/models", headers=fake.headers()).status_code == 200


def test_folded_header_never_becomes_a_second_header(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    request = http_request("GET", "/v1/models", {**fake.headers(), "Connection": "close"})
    folded = b"\r\nX-Evil: a\r\n X-Injected: 1\r\n\r\n"  # obs-fold (RFC 9112 §5.2)
    request = request.replace(b"\r\n\r\n", folded)

    status = status_of(raw_request(proxy.port, request))

    # RFC 9112 lets a server unfold (h11, uvicorn's default) or refuse (httptools): both
    # are safe; what must never happen is the fold turning into a header of its own.
    if status == 200:
        seen = fake.requests[-1].headers
        assert "x-injected" not in seen
        assert seen["x-evil"] == "a X-Injected: 1"
    else:
        assert status == 400
        assert fake.requests == []


def test_host_header_cannot_redirect_the_proxy(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    request = http_request(
        "GET", "/v1/models", {**fake.headers(), "Host": "evil.example", "Connection": "close"}
    )

    assert status_of(raw_request(proxy.port, request)) == 200

    assert fake.requests[-1].path == "/v1/models"
    assert fake.requests[-1].headers["host"] == fake.url.removeprefix("http://")


def test_absolute_form_target_cannot_redirect_the_proxy(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    request = http_request(
        "GET",
        "/v1/models",
        {**fake.headers(), "Host": "evil.example", "Connection": "close"},
        target="http://evil.example/v1/models?limit=2",
    )

    answer = raw_request(proxy.port, request)

    assert status_of(answer) == 200
    assert len(json_body_of(answer)["data"]) == 2
    assert fake.requests[-1].path == "/v1/models"
    assert fake.requests[-1].headers["host"] == fake.url.removeprefix("http://")


def test_concurrent_streams_do_not_interfere(fake: FakeAnthropic, proxy: RunningProxy) -> None:
    fake.stream_delay = 0.01
    client = sdk_client(proxy.url)
    texts: list[str] = []

    def one(model: str) -> None:
        with client.messages.stream(model=model, max_tokens=32, messages=HI) as stream:
            texts.append(stream.get_final_text())

    threads = [
        threading.Thread(target=one, args=(m,))
        for m in ("claude-haiku-4-5", "claude-sonnet-4-6") * 3
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(texts) == sorted(
        [f"Hello from {m}." for m in ("claude-haiku-4-5-20251001", "claude-sonnet-4-6")] * 3
    )


@pytest.mark.parametrize("path", ["/v1/../admin", "/v1/%2e%2e/admin", "/./v1/models"])
def test_dot_segments_are_refused(fake: FakeAnthropic, proxy: RunningProxy, path: str) -> None:
    request = http_request("GET", path, {**fake.headers(), "Connection": "close"})

    answer = raw_request(proxy.port, request)

    assert status_of(answer) == 400
    assert json_body_of(answer)["error"]["message"] == "caproute: dot segments are not allowed"
    assert fake.requests == []


def test_caller_leaving_while_the_upstream_thinks_abandons_the_request(
    fake: FakeAnthropic, proxy: RunningProxy
) -> None:
    fake.faults.add("/v1/messages", delay=2.0)  # a slow non-streaming answer
    before = proxy.metric("caproute_proxy_client_disconnects_total")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as impatient:
        impatient.sendall(post(fake, message_body()))
        wait_until(lambda: fake.count("/v1/messages") == 1)  # the upstream has it
    started = time.monotonic()

    wait_until(lambda: proxy.app.metrics.in_flight == 0, timeout=1.5)

    assert time.monotonic() - started < 1.0  # not after the upstream's 2 s
    assert proxy.metric("caproute_proxy_client_disconnects_total") == before + 1


def test_upstream_slower_than_the_read_timeout_is_504(fake: FakeAnthropic) -> None:
    running = start_proxy(fake, read_timeout=0.2)
    try:
        fake.faults.add("/v1/models", delay=1.0)  # a pass-through request: no registry read
        response = httpx.get(f"{running.url}/v1/models", headers=fake.headers())
        assert running.metric('caproute_proxy_upstream_errors_total{status="timeout"}') == 1
    finally:
        running.stop()

    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


def test_a_stream_gone_silent_ends_with_an_error_naming_the_read_timeout(
    fake: FakeAnthropic,
) -> None:
    running = start_proxy(fake, read_timeout=0.3)
    fake.stream_delay = 1.0  # events further apart than the read timeout
    try:
        client = sdk_client(running.url)
        stream = client.messages.stream(model="claude-haiku-4-5", max_tokens=8, messages=HI)
        with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
            for _ in events.text_stream:
                pass
    finally:
        fake.stream_delay = 0
        running.stop()

    assert "the upstream sent nothing for 0.3s (--read-timeout)" in str(caught.value)


def test_an_answer_before_the_body_is_read_closes_the_connection(
    fake: FakeAnthropic, flavour: Flavour
) -> None:
    # `Expect: 100-continue` with a wrong token: the proxy answers 401 without asking
    # for the body, and the client may then send its next request instead of the body
    # (RFC 9110 §10.1.1). Kept open, that request would be read as the first one's body.
    running = start_proxy(fake, flavour=flavour, api_key="sk-proxy-key", require_token="tok")
    try:
        body = message_body()
        expecting = http_request(
            "POST",
            "/v1/messages",
            {
                "x-api-key": "wrong",
                "content-type": "application/json",
                "content-length": str(len(body)),
                "expect": "100-continue",
            },
        )
        with socket.create_connection(("127.0.0.1", running.port), timeout=3) as sock:
            sock.sendall(expecting)
            refused = read_until_closed(sock)  # the server closes: nothing is misread
        # A POST with a body to a local endpoint is answered unread too.
        local = http_request("POST", "/caproute/health", {"content-length": str(len(body))}, body)
        with socket.create_connection(("127.0.0.1", running.port), timeout=3) as sock:
            sock.sendall(local)
            not_allowed = read_until_closed(sock)
        # A request without a body keeps its connection.
        kept = http_request("GET", "/v1/models", {"x-api-key": "wrong"})
        with socket.create_connection(("127.0.0.1", running.port), timeout=1) as sock:
            sock.sendall(kept)
            still_open = read_until_closed(sock)  # ends by the read timeout
    finally:
        running.stop()

    assert status_of(refused) == 401
    assert b"100 Continue" not in refused
    assert b"connection: close" in refused.lower()
    assert status_of(not_allowed) == 405
    assert b"connection: close" in not_allowed.lower()
    assert status_of(still_open) == 401
    assert b"connection: close" not in still_open.lower()
