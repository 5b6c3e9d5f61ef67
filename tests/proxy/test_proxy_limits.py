"""Resource limits, probed with raw sockets (issue 10, items 1 and 2, for the proxy).

Each of these held before the limits existed: a 1 MiB header was read whole (and
forwarded), 10,000 headers were accepted, a connection trickling its headers or
sending nothing at all was held forever, connections were unbounded, a body of tiny
JSON values was parsed at ~30 times its size, and an upstream error body was read
and decompressed whole. Limits apply before authentication (own-key mode here: the
answer is the limit's, not the 401 a missing token gets).
"""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from proxy_helpers import (
    Flavour,
    RunningProxy,
    http_request,
    json_body_of,
    raw_request,
    read_until_closed,
    start_proxy,
    status_of,
    wait_until,
)

from caproute.testing import FakeAnthropic

TOKEN = "local-token"


@pytest.fixture(scope="module")
def limited(fake_anthropic_server: FakeAnthropic, flavour: Flavour) -> Iterator[RunningProxy]:
    running = start_proxy(
        fake_anthropic_server,
        flavour=flavour,
        api_key=fake_anthropic_server.api_key,
        require_token=TOKEN,
        max_header_bytes=8192,
        max_header_count=50,
        header_timeout=0.5,
        keepalive_timeout=0.5,
    )
    yield running
    running.stop()


def api_error(answer: bytes) -> tuple[int, str]:
    document = json_body_of(answer)
    assert document["type"] == "error"
    assert document["error"]["message"].startswith("caproute: ")
    return status_of(answer), document["error"]["type"]


def head(headers: dict[str, str]) -> bytes:
    return http_request("GET", "/v1/models", {"connection": "close", **headers})


def test_an_oversized_header_is_refused_before_authentication(
    fake: FakeAnthropic, limited: RunningProxy
) -> None:
    before = limited.metric('caproute_proxy_limit_rejections_total{limit="header_bytes"}')
    answer = raw_request(limited.port, head({"x-padding": "a" * (1 << 20)}))

    assert api_error(answer) == (431, "invalid_request_error")
    assert b"connection: close" in answer.lower()
    assert fake.requests == []
    if limited.http == "httptools":  # h11 refuses inside its own parser (a 400)
        assert limited.metric('caproute_proxy_limit_rejections_total{limit="header_bytes"}') == (
            before + 1
        )


def test_an_oversized_head_in_many_small_reads_is_refused(limited: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nx-padding: ")
        try:
            for _ in range(64):
                sock.sendall(b"b" * 1024)
        except OSError:
            pass  # the proxy closed the connection: what this test wants
        answer = read_until_closed(sock)

    assert api_error(answer)[0] == 431


def test_too_many_headers_are_refused_before_authentication(
    fake: FakeAnthropic, limited: RunningProxy
) -> None:
    many = {f"x-h{index}": "1" for index in range(10_000)}
    answer = raw_request(limited.port, head(many))

    assert api_error(answer) == (431, "invalid_request_error")
    assert fake.requests == []


def test_headers_under_the_limits_pass(fake: FakeAnthropic, limited: RunningProxy) -> None:
    headers = {**fake.headers(), "x-api-key": TOKEN, **{f"x-h{i}": "v" * 64 for i in range(20)}}
    answer = raw_request(limited.port, head(headers))

    assert status_of(answer) == 200


def test_headers_trickling_in_get_408_and_the_connection_closes(limited: RunningProxy) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for _ in range(40):  # one byte every 0.1 s: each read resets no deadline
            try:
                sock.sendall(b"x")
            except OSError:
                break
            sock.settimeout(0.1)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
        sock.settimeout(5)
        answer += read_until_closed(sock)

    assert api_error(answer) == (408, "timeout_error")
    assert time.monotonic() - started < 2.5


def test_an_idle_new_connection_is_closed(limited: RunningProxy) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        started = time.monotonic()
        closed = sock.recv(1) == b""  # blocks until the proxy hangs up (or 5 s)

    assert closed
    assert time.monotonic() - started < 2.5


def test_an_idle_keep_alive_connection_is_closed(
    fake: FakeAnthropic, limited: RunningProxy
) -> None:
    request = http_request("GET", "/v1/models", {**fake.headers(), "x-api-key": TOKEN})
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        sock.sendall(request)
        started = time.monotonic()
        answer = read_until_closed(sock)

    assert status_of(answer) == 200
    assert time.monotonic() - started < 2.5


def test_connections_over_the_limit_get_503(fake: FakeAnthropic, flavour: Flavour) -> None:
    running = start_proxy(fake, flavour=flavour, max_connections=3, keepalive_timeout=30)
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            held.append(socket.create_connection(("127.0.0.1", running.port), timeout=5))
        wait_until(lambda: running.metric("caproute_proxy_in_flight") == 0)
        time.sleep(0.1)  # the server has accepted them
        answer = raw_request(running.port, head(fake.headers()))
        rejected = running.metric('caproute_proxy_limit_rejections_total{limit="connections"}')
        for sock in held:
            sock.close()
        held.clear()
        wait_until(lambda: status_of(raw_request(running.port, head(fake.headers()))) == 200)
    finally:
        for sock in held:
            sock.close()
        running.stop()

    assert api_error(answer) == (503, "overloaded_error")
    assert b"retry-after: 1" in answer.lower()
    assert rejected == 1


def test_a_body_of_too_many_json_values_is_refused_unparsed(fake: FakeAnthropic) -> None:
    running = start_proxy(fake, max_json_values=10_000)
    try:
        tiny = (
            b'{"model":"claude-haiku-4-5","max_tokens":8,"messages":[' + b"{}," * 50_000 + b"{}]}"
        )
        prose = "Words, words, and more words, " * 20_000  # commas in strings don't count
        fine = {
            "model": "claude-haiku-4-5",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": prose}],
        }
        refused = httpx.post(f"{running.url}/v1/messages", content=tiny, headers=fake.headers())
        sent = fake.count("/v1/messages")
        accepted = httpx.post(f"{running.url}/v1/messages", json=fine, headers=fake.headers())
    finally:
        running.stop()

    assert refused.status_code == 413
    assert refused.json()["error"]["type"] == "request_too_large"
    assert "JSON values" in refused.json()["error"]["message"]
    assert sent == 0
    assert accepted.status_code == 200


def test_a_huge_upstream_error_body_is_passed_through_unread(fake: FakeAnthropic) -> None:
    running = start_proxy(fake, max_error_body_bytes=64 * 1024)
    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of JSON whitespace, ~64 KB compressed
    try:
        httpx.get(f"{running.url}/v1/models", headers=fake.headers())  # the caller's registry
        fake.faults.add("/v1/messages", status=400, body=bomb, headers={"content-encoding": "gzip"})
        body = {
            "model": "claude-haiku-4-5",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
        }
        with httpx.Client() as client:
            request = client.build_request(
                "POST", f"{running.url}/v1/messages", json=body, headers=fake.headers()
            )
            answer = client.send(request, stream=True)
            raw = b"".join(answer.iter_raw())
            answer.close()
    finally:
        running.stop()

    assert answer.status_code == 400
    assert answer.headers["content-encoding"] == "gzip"  # as the upstream sent it
    assert raw == bomb  # byte for byte, never decompressed by the proxy
    assert answer.headers["caproute-outcome"] == "unchanged"


def test_a_small_upstream_error_body_is_still_read_for_routing(fake: FakeAnthropic) -> None:
    running = start_proxy(fake, max_error_body_bytes=64 * 1024)
    message = json.dumps(
        {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    )
    try:
        httpx.get(f"{running.url}/v1/models", headers=fake.headers())
        fake.faults.add(
            "/v1/messages",
            status=400,
            body=gzip.compress(message.encode()),
            headers={"content-encoding": "gzip"},
        )
        body = {
            "model": "claude-haiku-4-5",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
        }
        answer = httpx.post(f"{running.url}/v1/messages", json=body, headers=fake.headers())
    finally:
        running.stop()

    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "no"  # read (decoded) by the flow, intact


def test_a_malformed_request_gets_an_api_shaped_400(limited: RunningProxy) -> None:
    answer = raw_request(limited.port, b"GET /v1/models HTTP/1.1\r\nHost x\r\n\r\n")

    assert status_of(answer) == 400
    if limited.http == "httptools":
        assert api_error(answer) == (400, "invalid_request_error")


@pytest.mark.anyio
async def test_the_exact_json_value_recount_runs_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A body whose raw count looks huge (commas inside strings) but isn't: the exact
    # recount (a regex over the whole body, ~0.7 s for 32 MiB) must not block the loop.
    import threading

    from caproute._proxy import _limits

    seen: list[int] = []
    real = _limits.exact_json_values

    def spy(body: bytes) -> int:
        seen.append(threading.get_ident())
        return real(body)

    monkeypatch.setattr(_limits, "exact_json_values", spy)
    body = b'{"text": "' + b"a," * 5_000 + b'"}'
    assert await _limits.json_values_over_async(body, 1_000) is None  # few real values
    assert seen and seen[0] != threading.get_ident()
    # 2,000 commas + 1 list + 1 = what a parse would create, counted as the module says.
    assert await _limits.json_values_over_async(b"[" + b"1," * 2_000 + b"1]", 1_000) == 2_002
