"""Proxy overhead: the same requests sent to the fake API directly and through `caproute serve`.

Three processes, so that no two of them share a GIL: the fake API, the proxy (the real
``caproute serve`` command, uvicorn and all) and this load generator. Every figure is
"through the proxy" minus "direct", measured in the same run, so the fake's own cost
cancels out.

* **Latency** (sequential, one keep-alive connection, direct and proxied requests
  interleaved so drift affects both equally): p50 / p99 for a small non-streaming
  ``POST /v1/messages`` and for a whole streamed answer (SSE, ~10 events).
* **Throughput**: requests per second with N concurrent keep-alive connections for a
  fixed time, direct and through the proxy (the proxy's ceiling on this machine).
* **In-process cost of the ASGI app** (no sockets: ASGI messages in, an
  ``httpx2.MockTransport`` upstream): CPU per request for a pass-through request and a
  routed Messages request, to separate caproute's own work from the HTTP stack's.
* **The upstream hop alone**: CPU per request of a bare ``httpx2.AsyncClient`` sending
  the same small request to the fake, i.e. the client half every proxied request pays.

Run: ``.venv/bin/python benchmarks/bench_proxy.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx2

API_KEY = "bench-key"
BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello."}],
}
HEADERS = {
    "x-api-key": API_KEY,
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
}
FAKE = (
    "import sys\n"
    "from caproute.testing import FakeAnthropic\n"
    f"fake = FakeAnthropic(api_key={API_KEY!r}).start()\n"
    "print(fake.url, flush=True)\n"
    "sys.stdin.read()\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fake_api() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def proxy(upstream: str, extra_path: str | None) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if extra_path:  # e.g. a directory holding httptools + uvloop (uvicorn[standard])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra_path, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "caproute",
            "serve",
            "--port",
            str(port),
            "--upstream",
            upstream,
            "--log-level",
            "warning",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx2.get(f"{url}/caproute/health").status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_flavour(pid: int) -> str:
    """Which HTTP parser and event loop the proxy process loaded."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            loaded = maps.read()
    except OSError:
        return "unknown"
    http = "httptools" if "httptools" in loaded else "h11"
    loop = "uvloop" if "uvloop" in loaded else "asyncio"
    return f"{http} + {loop}"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_request(client: httpx2.Client, url: str, body: bytes, stream: bool) -> float:
    started = time.perf_counter()
    if stream:
        with client.stream("POST", f"{url}/v1/messages", content=body, headers=HEADERS) as answer:
            for _ in answer.iter_raw():
                pass
            assert answer.status_code == 200, answer.status_code
    else:
        answer = client.post(f"{url}/v1/messages", content=body, headers=HEADERS)
        assert answer.status_code == 200, answer.text
    return time.perf_counter() - started


def latency(
    direct: str, proxied: str, pid: int, *, stream: bool, requests: int
) -> dict[str, float]:
    body = json.dumps({**BODY, "stream": stream}).encode()
    times: dict[str, list[float]] = {"direct": [], "proxy": []}
    with httpx2.Client(timeout=30) as a, httpx2.Client(timeout=30) as b:
        for _ in range(50):  # warm-up: connections, caches, the registry
            one_request(a, direct, body, stream)
            one_request(b, proxied, body, stream)
        cpu_before = cpu_seconds(pid)
        for _ in range(requests):
            times["direct"].append(one_request(a, direct, body, stream))
            times["proxy"].append(one_request(b, proxied, body, stream))
        cpu = cpu_seconds(pid) - cpu_before
    result = {"proxy_cpu_ms": cpu / requests * 1000}
    for name, samples in times.items():
        result[f"{name}_p50"] = percentile(samples, 0.50) * 1000
        result[f"{name}_p99"] = percentile(samples, 0.99) * 1000
    # Added latency: the difference of the distributions' percentiles.
    result["added_p50"] = result["proxy_p50"] - result["direct_p50"]
    result["added_p99"] = result["proxy_p99"] - result["direct_p99"]
    result["added_mean"] = (
        statistics.fmean(times["proxy"]) - statistics.fmean(times["direct"])
    ) * 1000
    return result


async def throughput(url: str, *, concurrency: int, seconds: float, stream: bool) -> float:
    body = json.dumps({**BODY, "stream": stream}).encode()
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    done = 0
    async with httpx2.AsyncClient(timeout=30, limits=limits) as client:

        async def worker(deadline: float) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with client.stream(
                    "POST", f"{url}/v1/messages", content=body, headers=HEADERS
                ) as answer:
                    async for _ in answer.aiter_raw():
                        pass
                    assert answer.status_code == 200
                done += 1

        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(worker(warm) for _ in range(concurrency)))
        done = 0
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


ANSWER = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Hello."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
).encode()


async def _mock_upstream(request: httpx2.Request) -> httpx2.Response:
    await request.aread()
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=ANSWER)


async def _asgi_call(app: Any, method: str, path: str, body: bytes) -> int:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8787"),
            (b"x-api-key", API_KEY.encode()),
            (b"anthropic-version", b"2023-06-01"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    finished = asyncio.Event()
    status = 0

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            finished.set()

    await app(scope, receive, send)
    return status


async def app_overhead(requests: int) -> dict[str, float]:
    """CPU µs per request of the ASGI app, routing transport and httpx2 client (no IO)."""
    from caproute import ProxyConfig, create_proxy_app

    app = create_proxy_app(
        ProxyConfig(upstream="http://upstream.invalid"),
        inner_transport=httpx2.MockTransport(_mock_upstream),
    )
    kinds = {"pass-through GET /v1/models": ("GET", "/v1/models", b"")}
    kinds["routed POST /v1/messages"] = ("POST", "/v1/messages", json.dumps(BODY).encode())
    result = {}
    for name, (method, path, body) in kinds.items():
        for _ in range(200):
            assert await _asgi_call(app, method, path, body) == 200
        started = time.process_time()
        for _ in range(requests):
            await _asgi_call(app, method, path, body)
        result[name] = (time.process_time() - started) / requests * 1e6
    await app.aclose()
    return result


async def client_hop_cpu(url: str, requests: int) -> float:
    """CPU µs per request of a bare httpx2.AsyncClient → the fake (the proxy's client half)."""
    body = json.dumps(BODY).encode()
    async with httpx2.AsyncClient(timeout=30) as client:

        async def one() -> None:
            request = httpx2.Request("POST", f"{url}/v1/messages", headers=HEADERS, content=body)
            response = await client.send(request, stream=True)
            async for _ in response.aiter_raw():
                pass
            await response.aclose()

        for _ in range(100):
            await one()
        started = time.process_time()
        for _ in range(requests):
            await one()
        return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per kind")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="duration of each throughput run"
    )
    parser.add_argument(
        "--proxy-path",
        metavar="DIR",
        help="prepend DIR to the proxy's PYTHONPATH (e.g. holding httptools and uvloop)",
    )
    args = parser.parse_args()

    print("| in-process, no sockets | CPU / request |")
    print("| --- | --- |")
    for name, micros in asyncio.run(app_overhead(args.requests * 3)).items():
        print(f"| {name} | {micros:.0f} µs |")
    print()

    with fake_api() as direct, proxy(direct, args.proxy_path) as (proxied, pid):
        print(
            f"fake API {direct}, proxy {proxied} ({server_flavour(pid)}); "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
        )
        hop = asyncio.run(client_hop_cpu(direct, args.requests))
        print(f"bare httpx2.AsyncClient → fake: {hop:.0f} µs CPU per request (the client half)")
        print(
            "\n| request | direct p50 | proxy p50 | added p50 | added p99 | added mean "
            "| proxy CPU / request |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for stream in (False, True):
            r = latency(direct, proxied, pid, stream=stream, requests=args.requests)
            kind = "streamed (SSE)" if stream else "small JSON"
            print(
                f"| {kind} | {r['direct_p50']:.2f} ms | {r['proxy_p50']:.2f} ms | "
                f"{r['added_p50']:.2f} ms | {r['added_p99']:.2f} ms | {r['added_mean']:.2f} ms "
                f"| {r['proxy_cpu_ms']:.2f} ms |"
            )
        print(f"\n| request | direct req/s | proxy req/s | (concurrency {args.concurrency}) |")
        print("| --- | --- | --- | --- |")
        for stream in (False, True):
            kind = "streamed (SSE)" if stream else "small JSON"
            rates = [
                asyncio.run(
                    throughput(
                        url, concurrency=args.concurrency, seconds=args.seconds, stream=stream
                    )
                )
                for url in (direct, proxied)
            ]
            print(f"| {kind} | {rates[0]:.0f} | {rates[1]:.0f} | |")


if __name__ == "__main__":
    main()
