"""The real `caproute serve` process at the end of its life: drains, cuts, exit status.

Each test runs the command as a subprocess in front of the fake API, talks to it over
raw sockets (what a Go or JavaScript client puts on the wire) and signals it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from caproute.testing import FakeAnthropic
from caproute.testing._faults import Fault
from running_proxy import free_port, wait_for_health

API_KEY = "sk-test-shutdown-key"
MESSAGE = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"api_key": API_KEY}


@contextmanager
def serve(fake: FakeAnthropic, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`caproute serve` as a process; killed on the way out if a test left it running."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "caproute", "serve", "--port", str(port), "--upstream", fake.url]
        + list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def send(port: int, body: dict[str, object]) -> socket.socket:
    """A raw HTTP/1.1 request, left open for reading."""
    data = json.dumps(body).encode()
    head = (
        "POST /v1/messages HTTP/1.1\r\nHost: proxy\r\n"
        f"x-api-key: {API_KEY}\r\nanthropic-version: 2023-06-01\r\n"
        f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(head.encode() + data)
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return received


def read_all(sock: socket.socket) -> bytes:
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_requests_outliving_the_drain_get_answers_an_sdk_understands(
    fake: FakeAnthropic,
) -> None:
    fake.reset()
    fake.stream_delay = 0.5  # a stream of ~4 s
    fake.faults.add("/v1/messages", Fault(delay=8), times=1)  # a request that waits
    with serve(fake, "--shutdown-timeout", "1") as (process, port):
        waiting = send(port, MESSAGE)
        time.sleep(0.3)  # the waiting one takes the fault
        streaming = send(port, {**MESSAGE, "stream": True})
        read_until(streaming, b"event: message_start")
        process.send_signal(signal.SIGTERM)
        stream_tail = read_all(streaming)
        waited = read_all(waiting)
        output, _ = process.communicate(timeout=20)
    fake.stream_delay = 0

    # The stream ends as the API ends one it can't finish: an error event, then the
    # chunked body's last chunk, so every SDK raises instead of seeing a short answer.
    assert b"event: error" in stream_tail
    error_data = stream_tail.split(b"event: error\ndata: ", 1)[1].split(b"\n", 1)[0]
    assert json.loads(error_data)["error"]["type"] == "overloaded_error"
    assert stream_tail.endswith(b"\r\n0\r\n\r\n")
    assert b"message_stop" not in stream_tail
    # The request still waiting for the upstream: a 503 SDKs retry.
    head, _, body = waited.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["type"] == "overloaded_error"
    # No traceback, each request logged once with the reason, and a clean exit.
    assert "Traceback" not in output
    assert "Exception in ASGI application" not in output
    assert output.count("cut=shutdown") == 2
    assert process.returncode == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_drained_shutdown_exits_0(fake: FakeAnthropic, stop: signal.Signals) -> None:
    fake.reset()
    fake.stream_delay = 0.1
    with serve(fake, "--shutdown-timeout", "10") as (process, port):
        streaming = send(port, {**MESSAGE, "stream": True})
        read_until(streaming, b"event: message_start")
        process.send_signal(stop)
        stream = read_all(streaming)
        output, _ = process.communicate(timeout=20)
    fake.stream_delay = 0

    assert b"event: message_stop" in stream  # drained: the stream finished
    # One status whatever the signal and however many workers (uvicorn alone would
    # die by the signal: 143 / 130 in a shell, which orchestrators report as an error).
    assert process.returncode == 0, output


def test_an_upstream_cut_json_answer_logs_no_application_error(fake: FakeAnthropic) -> None:
    fake.reset()
    fake.faults.add("/v1/messages", Fault(truncated=True), times=1)
    with serve(fake) as (process, port):
        cut = read_all(send(port, {**MESSAGE}))
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)

    head, _, body = cut.partition(b"\r\n\r\n")
    declared = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    assert len(body) < declared  # truncated, and the connection closed: HTTP's "cut short"
    assert "upstream=broke" in output
    # The proxy's warning says what happened; uvicorn's "returned without completing
    # response" ERROR (which otherwise means an application bug) is not added to it.
    assert "without completing response" not in output
    assert process.returncode == 0
