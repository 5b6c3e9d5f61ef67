"""The fake API in its own process, for benchmarks: its CPU time and memory are not the
measured side's. Shared by the benchmarks that need an upstream."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

API_KEY = "bench-key"

_SERVE = (
    "import json, sys\n"
    "from caproute.testing import FakeAnthropic\n"
    "fake = FakeAnthropic(**json.loads(sys.argv[1])).start()\n"
    "print(fake.url, flush=True)\n"
    "sys.stdin.read()\n"
)


@contextmanager
def fake_api(**options: Any) -> Iterator[str]:
    """`FakeAnthropic(api_key=API_KEY, **options)` in a child process; yields its base
    URL. `options` must be JSON (a `make_model` lineup is)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVE, json.dumps({"api_key": API_KEY, **options})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()  # the child stops when its stdin ends
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(10)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
