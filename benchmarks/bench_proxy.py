"""Proxy overhead: the same requests sent to the fake API directly and through `caproute serve`.

Three processes, so that no two of them share a GIL: the fake API, the proxy and this
load generator. Every figure is "through the proxy" minus "direct", measured in the
same run, so the fake's own cost cancels out. The proxy runs in each server flavour:
``fast`` is the real ``caproute serve`` command with what it picks when the ``proxy``
extra is installed (httptools + uvloop), ``fallback`` the same app and settings on
uvicorn's pure-Python h11 parser and the asyncio loop.

* **Latency** (sequential, one keep-alive connection, direct and proxied requests
  interleaved so drift affects both equally): p50 / p99 for a small non-streaming
  ``POST /v1/messages`` and for a whole streamed answer (SSE, ~10 events), with the
  proxy process's CPU time per request (steadier than the wall clock on a busy box).
  The stream is measured twice: with the events sent back to back (the proxy relays
  them all in one go) and paced 2 ms apart, as a model generating tokens sends them,
  where the last event's delay is what a reader waits more for each event.
* **Throughput**: requests per second with N concurrent keep-alive connections for a
  fixed time, direct and through the proxy (the proxy's ceiling on this machine).
* **Where the proxy's CPU goes**, each part measured on its own: the server alone
  (uvicorn answering a fixed small JSON with a trivial ASGI app), caproute's ASGI app
  in-process (ASGI messages in, an ``httpx2.MockTransport`` upstream: headers,
  routing, httpx2 request/response objects), and the upstream hop alone (the inner
  ``httpx2.AsyncHTTPTransport`` sending the same request to the fake, as the proxy
  does under its routing transport).

Run: ``.venv/bin/python benchmarks/bench_proxy.py`` (``--help`` for sizes and flavours).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

# The proxies started here fetch the fake's lineup: keep it out of the real user cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="caproute-bench-")

import httpx2

from bench_fake import API_KEY, fake_api, free_port

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
FLAVOURS = {"fast": ("httptools", "uvloop"), "fallback": ("h11", "asyncio")}

# The same app and uvicorn settings as `caproute serve`, on a chosen parser and loop.
SERVE_WITH = (
    "import sys, uvicorn\n"
    "from caproute import ProxyConfig\n"
    "from caproute._proxy._server import uvicorn_config\n"
    "config = ProxyConfig(upstream=sys.argv[1], port=int(sys.argv[2]), log_level='warning')\n"
    "uvicorn.Server(uvicorn_config(config, http=sys.argv[3], loop=sys.argv[4])).run()\n"
)

# A trivial ASGI app under the same uvicorn settings: what the server side costs alone.
SERVER_ALONE = (
    "import sys, uvicorn\n"
    "from caproute import ProxyConfig\n"
    "from caproute._proxy._server import uvicorn_config\n"
    "body = sys.argv[4].encode()\n"
    "head = [(b'content-type', b'application/json'), (b'content-length', b'%d' % len(body))]\n"
    "async def app(scope, receive, send):\n"
    "    if scope['type'] != 'http':\n"
    "        return\n"
    "    while (await receive()).get('more_body'):\n"
    "        pass\n"
    "    await send({'type': 'http.response.start', 'status': 200, 'headers': head})\n"
    "    await send({'type': 'http.response.body', 'body': body})\n"
    "config = ProxyConfig(port=int(sys.argv[1]), log_level='warning')\n"
    "settings = uvicorn_config(config, app, http=sys.argv[2], loop=sys.argv[3], lifespan='off')\n"
    "uvicorn.Server(settings).run()\n"
)


def installed(flavour: str) -> bool:
    return all(
        name in ("h11", "asyncio") or importlib.util.find_spec(name) is not None
        for name in FLAVOURS[flavour]
    )


@contextmanager
def served(command: list[str], health: str) -> Iterator[int]:
    """Run a server process until the block ends; yields its pid once `health` answers."""
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for _ in range(300):
            try:
                httpx2.get(health)
                break
            except httpx2.TransportError:
                time.sleep(0.05)
        yield process.pid
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def proxy(upstream: str, flavour: str, workers: int = 1) -> Iterator[tuple[str, int]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if flavour == "fast":  # the real command, choosing by itself
        command = ["-m", "caproute", "serve", "--port", str(port), "--upstream", upstream]
        command += ["--log-level", "warning", "--workers", str(workers)]
    else:
        command = ["-c", SERVE_WITH, upstream, str(port), *FLAVOURS[flavour]]
    with served([sys.executable, *command], f"{url}/caproute/health") as pid:
        yield url, pid


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
        for _ in range(min(50, requests)):  # warm-up: connections, caches, the registry
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


def _models_page() -> bytes:
    from caproute._registry.snapshot import embedded_registry

    models = [info.to_api_dict() for info in embedded_registry().models]
    return json.dumps({"data": models, "has_more": False}).encode()


async def _mock_upstream(request: httpx2.Request) -> httpx2.Response:
    await request.aread()
    content = _models_page() if request.url.path == "/v1/models" and request.url.query else ANSWER
    return httpx2.Response(200, headers={"content-type": "application/json"}, content=content)


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
    """CPU µs per request of the inner transport alone → the fake (the proxy's client half).

    The proxy hands requests to its routing transport, which passes them to an
    ``httpx2.AsyncHTTPTransport`` (httpcore2 + h11 + anyio): this is that last part.
    """
    body = json.dumps(BODY).encode()
    target = httpx2.URL(f"{url}/v1/messages")
    timeouts = httpx2.Timeout(30).as_dict()
    async with httpx2.AsyncHTTPTransport() as transport:

        async def one() -> None:
            request = httpx2.Request(
                "POST", target, headers=HEADERS, content=body, extensions={"timeout": timeouts}
            )
            response = await transport.handle_async_request(request)
            async for _ in response.aiter_raw():
                pass
            await response.aclose()

        for _ in range(100):
            await one()
        started = time.process_time()
        for _ in range(requests):
            await one()
        return (time.process_time() - started) / requests * 1e6


def server_alone_cpu(flavour: str, requests: int) -> float:
    """CPU µs per request of uvicorn itself: a trivial app answering the same small JSON."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", SERVER_ALONE, str(port), *FLAVOURS[flavour]]
    body = json.dumps(BODY).encode()
    with served([*command, ANSWER.decode()], url) as pid, httpx2.Client(timeout=30) as client:
        for _ in range(100):
            one_request(client, url, body, False)
        cpu_before = cpu_seconds(pid)
        for _ in range(requests):
            one_request(client, url, body, False)
        return (cpu_seconds(pid) - cpu_before) / requests * 1e6


T = TypeVar("T")


def run_in(flavour: str, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on the flavour's event loop (uvloop for the fast one)."""
    if FLAVOURS[flavour][1] == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


KINDS = {False: "small JSON", True: "streamed (SSE)"}
PACED = "SSE, events 2 ms apart"
EVENT_GAP = 0.002


def print_latency(name: str, kind: str, r: dict[str, float]) -> None:
    print(
        f"| {name} | {kind} | {r['direct_p50']:.2f} ms | {r['proxy_p50']:.2f} ms "
        f"| {r['added_p50']:.2f} ms | {r['added_p99']:.2f} ms "
        f"| {r['added_mean']:.2f} ms | {r['proxy_cpu_ms']:.2f} ms |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per kind")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="duration of each throughput run"
    )
    parser.add_argument(
        "--flavours",
        default="fast,fallback",
        help="server flavours to run, comma-separated: fast (httptools + uvloop), fallback "
        "(h11 + asyncio); default: both (fast only if httptools and uvloop are installed)",
    )
    args = parser.parse_args()
    flavours = [name for name in args.flavours.split(",") if installed(name)]

    load = "/".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {load}\n")
    parts: dict[str, dict[str, float]] = {}
    with fake_api() as direct, fake_api(stream_delay=EVENT_GAP) as paced:
        print(f"fake API {direct}\n")
        print(
            "| server | request | direct p50 | proxy p50 | added p50 | added p99 | added mean "
            "| proxy CPU / request |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        rates: dict[tuple[str, bool], float] = {}
        for flavour in flavours:
            with proxy(direct, flavour) as (proxied, pid):
                name = server_flavour(pid)
                parts[name] = {}
                for stream, kind in KINDS.items():
                    r = latency(direct, proxied, pid, stream=stream, requests=args.requests)
                    print_latency(name, kind, r)
                    if not stream:
                        parts[name]["the whole proxy (measured above)"] = r["proxy_cpu_ms"] * 1000
                for stream in KINDS:
                    rates[name, stream] = asyncio.run(
                        throughput(
                            proxied,
                            concurrency=args.concurrency,
                            seconds=args.seconds,
                            stream=stream,
                        )
                    )
            with proxy(paced, flavour) as (proxied, pid):
                r = latency(paced, proxied, pid, stream=True, requests=max(args.requests // 5, 1))
                print_latency(name, PACED, r)
            parts[name]["uvicorn alone, trivial app"] = server_alone_cpu(flavour, args.requests)
            hop = run_in(flavour, lambda: client_hop_cpu(direct, args.requests))
            parts[name]["upstream hop alone: httpx2.AsyncHTTPTransport"] = hop
            in_process = run_in(flavour, lambda: app_overhead(args.requests * 3))
            for kind, micros in in_process.items():
                parts[name][f"caproute's ASGI app in-process, {kind}"] = micros
        for stream in KINDS:
            rates["direct", stream] = asyncio.run(
                throughput(
                    direct, concurrency=args.concurrency, seconds=args.seconds, stream=stream
                )
            )
        workers: dict[int, float] = {}
        if "fast" in flavours:
            # `--workers N`: uvicorn worker processes on one socket. Interleaved 1, 2, 1, 2
            # (best of two each), since this machine's load moves between runs.
            for count in (1, 2, 1, 2):
                with proxy(direct, "fast", workers=count) as (proxied, _):
                    time.sleep(0.5)  # every worker up
                    rate = asyncio.run(
                        throughput(
                            proxied,
                            concurrency=args.concurrency,
                            seconds=args.seconds,
                            stream=False,
                        )
                    )
                workers[count] = max(workers.get(count, 0.0), rate)

    print(f"\n| server | request | direct req/s | proxy req/s | (concurrency {args.concurrency}) |")
    print("| --- | --- | --- | --- | --- |")
    for name in parts:
        for stream, kind in KINDS.items():
            print(
                f"| {name} | {kind} | {rates['direct', stream]:.0f} | {rates[name, stream]:.0f} | |"
            )

    if workers:
        print(f"\n| small JSON, concurrency {args.concurrency} | req/s | vs 1 worker |")
        print("| --- | ---: | ---: |")
        print(f"| direct to the fake | {rates['direct', False]:.0f} | |")
        for count, rate in sorted(workers.items()):
            print(f"| `caproute serve --workers {count}` | {rate:.0f} | {rate / workers[1]:.2f}x |")

    print("\n| proxy CPU per small JSON request | " + " | ".join(parts) + " |")
    print("| --- |" + " ---: |" * len(parts))
    for label in next(iter(parts.values()), {}):
        print(f"| {label} | " + " | ".join(f"{p[label]:.0f} µs" for p in parts.values()) + " |")
    load = "/".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\nload average at the end: {load}")


if __name__ == "__main__":
    main()
