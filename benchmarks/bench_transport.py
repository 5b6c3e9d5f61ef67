"""Transport and middleware overhead: the anthropic SDK with and without caproute.

The fake API runs in a subprocess (so it does not share this process's GIL) and every
path below sends the same request to it, a request caproute forwards unchanged, so the
bytes on the wire are identical and the differences are caproute's cost:

* ``raw``: ``httpx2.Client.post`` with the JSON body (the floor: no SDK at all);
* ``bare``: ``anthropic.Anthropic().messages.create`` (the SDK alone);
* ``wrapped``: ``caproute.wrap(client, via="transport")`` (the routing transport);
* ``empty-mw``: the SDK with one ``anthropic.Middleware`` that only calls ``call_next``;
* ``caproute-mw``: the SDK with `caproute.middleware()` (what ``caproute.wrap(client)``
  uses by default on SDKs with the middleware hook).

Targets (issue 4), each measured in the same run: ``wrapped`` ≤ 1.03 × ``bare`` on
small requests; ``caproute-mw`` ≤ 1.02 × ``empty-mw``.

Method: a warm-up, then rounds in which every path takes its turn, the order rotating
each round (ABAB interleaving), so drift in machine load hits all paths alike.
Sequential rounds send one request per path and time each (wall clock, and this
process's CPU time: the client's own work, which other jobs on a shared machine
disturb far less); concurrent rounds (async clients, 32 requests in flight) time a
batch per path and report the per-request share and the throughput. Small = a
one-line prompt; large = a 2 MB prompt.

Run: ``.venv/bin/python benchmarks/bench_transport.py`` (``--quick`` for a smoke run,
``--json FILE`` to keep the numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# wrap() fetches the lineup from the fake: keep that out of the real user cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="caproute-bench-")

import anthropic
import httpx2

import caproute
from bench_fake import API_KEY, fake_api
from caproute import Registry
from caproute.testing import make_model

MODEL = "claude-bench-1"
CONCURRENCY = 32
LARGE_BYTES = 2 * 1024 * 1024


# The fake (uvicorn) drops connections idle for 5 s. In the 2 MB concurrent rounds a
# path can wait longer than that for its turn; clients that kept such a connection
# would fail on it. Every path's client expires idle connections first, at 3 s.
LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=3.0)

PATHS = ("raw", "bare", "wrapped", "empty-mw", "caproute-mw")
RATIOS = (
    # (numerator, denominator, target or None)
    ("wrapped", "bare", 1.03),
    ("caproute-mw", "empty-mw", 1.02),
    ("empty-mw", "bare", None),
    ("bare", "raw", None),
)


def body(size: str) -> dict[str, Any]:
    """A Messages request caproute forwards unchanged (the model supports everything)."""
    if size == "small":
        text = "Say hello."
    else:
        words = "the quick brown fox jumps over the lazy dog "
        text = (words * (LARGE_BYTES // len(words) + 1))[:LARGE_BYTES]
    return {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


# -- the paths -------------------------------------------------------------------------------


def _empty_middleware() -> anthropic.Middleware:
    class EmptyMiddleware(anthropic.Middleware):
        def handle(self, request: Any, call_next: Any) -> Any:
            return call_next(request)

        async def handle_async(self, request: Any, call_next: Any) -> Any:
            return await call_next(request)

    return EmptyMiddleware()


def sdk_client(path: str, url: str, registry: Registry, *, is_async: bool) -> Any:
    """The SDK client for `path` (not for ``raw``)."""
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    http_cls = anthropic.DefaultAsyncHttpxClient if is_async else anthropic.DefaultHttpxClient
    options: dict[str, Any] = {
        "base_url": url,
        "api_key": API_KEY,
        "max_retries": 0,
        "http_client": http_cls(limits=LIMITS),
    }
    if path == "bare":
        return cls(**options)
    if path == "wrapped":
        return caproute.wrap(cls(**options), registry=registry, via="transport")
    if path == "empty-mw":
        return cls(middleware=[_empty_middleware()], **options)
    if path == "caproute-mw":
        return cls(middleware=[caproute.middleware(registry=registry)], **options)
    raise ValueError(path)


def raw_headers() -> dict[str, str]:
    # What the SDK sends that matters to the server: key, version, JSON.
    return {
        "x-api-key": API_KEY,
        "anthropic-version": "2026-10-21",
        "content-type": "application/json",
    }


def sync_sender(path: str, url: str, registry: Registry) -> Callable[[dict[str, Any]], Any]:
    """``send(body)``: one request on `path`, the response parsed."""
    if path == "raw":
        client = httpx2.Client(base_url=url, headers=raw_headers(), timeout=60, limits=LIMITS)

        def send_raw(request: dict[str, Any]) -> Any:
            response = client.post("/v1/messages", content=json.dumps(request).encode())
            response.raise_for_status()
            return response.json()

        return send_raw
    sdk = sdk_client(path, url, registry, is_async=False)
    return lambda request: sdk.messages.create(**request)


def async_sender(
    path: str, url: str, registry: Registry
) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """The async twin of `sync_sender` (call it inside the running loop)."""
    if path == "raw":
        client = httpx2.AsyncClient(base_url=url, headers=raw_headers(), timeout=60, limits=LIMITS)

        async def send_raw(request: dict[str, Any]) -> Any:
            response = await client.post("/v1/messages", content=json.dumps(request).encode())
            response.raise_for_status()
            return response.json()

        send_raw.close = client.aclose  # type: ignore[attr-defined]
        return send_raw
    sdk = sdk_client(path, url, registry, is_async=True)

    def send(request: dict[str, Any]) -> Awaitable[Any]:
        return sdk.messages.create(**request)

    send.close = sdk.close  # type: ignore[attr-defined]
    return send


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Series:
    """Per-request wall and CPU seconds, per path, for one scenario.

    CPU is this process's (the client's): the fake API runs in another process, so it
    is exactly the work the SDK, caproute and the HTTP stack do per request, and it is
    far less sensitive than wall time to other jobs on a shared machine.
    """

    name: str
    wall: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    elapsed: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PATHS, 0.0))
    count: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATHS, 0))

    def add(self, path: str, wall: float, cpu: float, requests: int = 1) -> None:
        """Record a batch of `requests` that took `wall` / `cpu` seconds in all."""
        self.wall[path].append(wall / requests)
        self.cpu[path].append(cpu / requests)
        self.elapsed[path] += wall
        self.count[path] += requests

    def median_ms(self, path: str, *, cpu: bool = False) -> float:
        return statistics.median((self.cpu if cpu else self.wall)[path]) * 1e3

    def p90_ms(self, path: str) -> float:
        return statistics.quantiles(self.wall[path], n=10)[-1] * 1e3

    def throughput(self, path: str) -> float:
        return self.count[path] / self.elapsed[path] if self.elapsed[path] else 0.0


def rotated(round_number: int) -> tuple[str, ...]:
    shift = round_number % len(PATHS)
    return PATHS[shift:] + PATHS[:shift]


def run_sequential(url: str, registry: Registry, size: str, rounds: int) -> Series:
    """Every round sends ONE request per path, in rotating order (finest interleaving)."""
    series = Series(f"{size}, sequential")
    request = body(size)
    senders = {path: sync_sender(path, url, registry) for path in PATHS}
    for send in senders.values():  # warm-up: connections, imports, caches
        for _ in range(5):
            send(request)
    gc.collect()
    for r in range(rounds):
        for path in rotated(r):
            send = senders[path]
            wall, cpu = time.perf_counter(), time.thread_time()
            send(request)
            series.add(path, time.perf_counter() - wall, time.thread_time() - cpu)
    return series


def run_concurrent(url: str, registry: Registry, size: str, rounds: int, per_task: int) -> Series:
    """Every round sends one batch per path: 32 tasks, `per_task` requests each."""
    series = Series(f"{size}, {CONCURRENCY} concurrent (async)")
    request = body(size)

    async def main() -> None:
        senders = {path: async_sender(path, url, registry) for path in PATHS}

        async def batch(send: Callable[[dict[str, Any]], Awaitable[Any]]) -> tuple[float, float]:
            async def worker() -> None:
                for _ in range(per_task):
                    await send(request)

            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return time.perf_counter() - wall, time.process_time() - cpu

        for send in senders.values():  # warm-up: opens the 32 connections
            await batch(send)
        gc.collect()
        for r in range(rounds):
            for path in rotated(r):
                wall, cpu = await batch(senders[path])
                series.add(path, wall, cpu, CONCURRENCY * per_task)
        for send in senders.values():  # inside the loop: async clients close on it
            await send.close()  # type: ignore[attr-defined]

    asyncio.run(main())
    return series


# -- reporting -------------------------------------------------------------------------------


def report(all_series: list[Series]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "anthropic": anthropic.__version__,
        "caproute": caproute.__version__,
        "scenarios": {},
    }
    for series in all_series:
        print(f"\n### {series.name}\n")
        print("| path | wall median ms | wall p90 ms | client CPU median ms | requests/s | n |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        scenario: dict[str, Any] = {"paths": {}, "ratios": {}}
        for path in PATHS:
            row = {
                "wall_median_ms": series.median_ms(path),
                "wall_p90_ms": series.p90_ms(path),
                "cpu_median_ms": series.median_ms(path, cpu=True),
                "rps": series.throughput(path),
                "n": series.count[path],
            }
            print(
                f"| {path} | {row['wall_median_ms']:.3f} | {row['wall_p90_ms']:.3f} "
                f"| {row['cpu_median_ms']:.3f} | {row['rps']:.0f} | {row['n']} |"
            )
            scenario["paths"][path] = row
        print()
        for top, bottom, target in RATIOS:
            wall = series.median_ms(top) / series.median_ms(bottom)
            cpu = series.median_ms(top, cpu=True) / series.median_ms(bottom, cpu=True)
            goal = "" if target is None else f" (target ≤ {target:.2f}: {_verdict(wall, target)})"
            print(f"* {top} / {bottom}: wall {wall:.3f}×{goal}, client CPU {cpu:.3f}×")
            scenario["ratios"][f"{top}/{bottom}"] = {"wall": wall, "cpu": cpu}
        out["scenarios"][series.name] = scenario
    return out


def _verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "missed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds only (smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--only", choices=["sequential", "concurrent"], help="run one kind of scenario"
    )
    args = parser.parse_args(argv)
    scale = 0.15 if args.quick else 1.0

    def n(value: int) -> int:
        return max(2, int(value * scale))

    registry = Registry.from_models([make_model(MODEL, max_tokens=128_000)])
    results: list[Series] = []
    with fake_api(models=[make_model(MODEL, max_tokens=128_000)], reply="Hi.") as url:
        print(f"fake API at {url}; anthropic {anthropic.__version__}; paths: {', '.join(PATHS)}")
        if args.only != "concurrent":
            results.append(run_sequential(url, registry, "small", rounds=n(1000)))
            results.append(run_sequential(url, registry, "2 MB", rounds=n(40)))
        if args.only != "sequential":
            results.append(run_concurrent(url, registry, "small", rounds=n(20), per_task=4))
            results.append(run_concurrent(url, registry, "2 MB", rounds=n(4), per_task=1))
    out = report(results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(out, file, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
