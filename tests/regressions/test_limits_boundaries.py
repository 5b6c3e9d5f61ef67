"""Issue 22, bugs 8 and 9: the proxy's limits, exactly at the limit and one over.

The existing limit tests sent 10,000 headers or a 1 MiB header: far over the limit,
so an off-by-one (``>=`` for ``>``) passed them. Here every limit is probed at its
value (accepted) and at its value plus one (refused), through a real socket, on both
server flavours (httptools counts headers in its parser callbacks, h11 leaves it to
the app).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from caproute._proxy import ProxyConfig
from caproute.testing import FakeAnthropic
from running_proxy import RunningProxy

KEY = "test-key-limits"
MAX_HEADERS = 24
MAX_BODY = 2048
FLAVOURS = [("h11", "asyncio"), ("httptools", "uvloop")]


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": KEY}


@pytest.fixture(scope="module", params=FLAVOURS, ids="-".join)
def proxy(
    request: pytest.FixtureRequest, fake_anthropic_server: FakeAnthropic
) -> Iterator[RunningProxy]:
    http, loop = request.param
    if http == "httptools":
        pytest.importorskip("httptools")
        pytest.importorskip("uvloop")
    config = ProxyConfig(
        upstream=fake_anthropic_server.url,
        max_header_count=MAX_HEADERS,
        max_body_bytes=MAX_BODY,
        body_timeout=5.0,
    )
    with RunningProxy(config, (http, loop)) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(fake: FakeAnthropic) -> None:
    fake.reset()


def exchange(port: int, head: list[str], body: bytes = b"") -> tuple[int, bytes]:
    """Send one raw HTTP/1.1 request (``Connection: close``); the status and the body."""
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    return int(answer.split(b" ", 2)[1]), answer.partition(b"\r\n\r\n")[2]


def models_request(header_count: int) -> list[str]:
    """``GET /v1/models`` with exactly `header_count` header lines."""
    head = [
        "GET /v1/models HTTP/1.1",
        "host: caproute.test",
        "connection: close",
        f"x-api-key: {KEY}",
        "anthropic-version: 2023-06-01",
    ]
    head += [f"x-filler-{n}: v" for n in range(header_count - (len(head) - 1))]
    assert len(head) - 1 == header_count
    return head


def test_exactly_the_maximum_number_of_headers_is_accepted(
    proxy: RunningProxy, fake: FakeAnthropic
) -> None:
    """Bug 8: exactly ``max_header_count`` headers refused (limit off by one)."""
    status, _ = exchange(proxy.port, models_request(MAX_HEADERS))

    assert status == 200
    assert fake.count("/v1/models") == 1


def test_one_header_over_the_maximum_is_refused(proxy: RunningProxy, fake: FakeAnthropic) -> None:
    """Bug 8, the other side: one more header than the limit is a 431, not forwarded."""
    status, body = exchange(proxy.port, models_request(MAX_HEADERS + 1))

    assert status == 431
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert fake.count("/v1/models") == 0


def messages_body(size: int) -> bytes:
    """A valid Messages body of exactly `size` bytes (the prompt pads it)."""
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": ""}],
    }
    pad = size - len(json.dumps(body, separators=(",", ":")))
    body["messages"][0]["content"] = "x" * pad
    data = json.dumps(body, separators=(",", ":")).encode()
    assert len(data) == size
    return data


def post_head(length: int | None) -> list[str]:
    head = [
        "POST /v1/messages HTTP/1.1",
        "host: caproute.test",
        "connection: close",
        f"x-api-key: {KEY}",
        "anthropic-version: 2023-06-01",
        "content-type: application/json",
    ]
    head.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
    return head


def chunked(data: bytes, size: int = 500) -> bytes:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_exactly_at_the_limit_is_accepted(
    proxy: RunningProxy, fake: FakeAnthropic, framing: str
) -> None:
    """Bug 9: a declared ``Content-Length`` exactly at the body limit refused (off by
    one); the chunked case checks the limit applied while the body is read."""
    body = messages_body(MAX_BODY)
    if framing == "chunked":
        status, _ = exchange(proxy.port, post_head(None), chunked(body))
    else:
        status, _ = exchange(proxy.port, post_head(len(body)), body)

    assert status == 200
    assert fake.count("/v1/messages") == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_one_byte_over_the_limit_is_refused(
    proxy: RunningProxy, fake: FakeAnthropic, framing: str
) -> None:
    """Bug 9, the other side: one byte over is a 413 and nothing is forwarded."""
    body = messages_body(MAX_BODY + 1)
    if framing == "chunked":
        status, answer = exchange(proxy.port, post_head(None), chunked(body))
    else:
        status, answer = exchange(proxy.port, post_head(len(body)), body)

    assert status == 413
    assert json.loads(answer)["error"]["type"] == "request_too_large"
    assert fake.count("/v1/messages") == 0


def test_an_over_declared_length_is_refused_before_the_body_is_read(proxy: RunningProxy) -> None:
    """Bug 9: the declared length alone decides (no body is sent at all)."""
    status, _ = exchange(proxy.port, post_head(MAX_BODY + 1))

    assert status == 413
