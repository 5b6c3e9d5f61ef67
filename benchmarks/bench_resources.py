"""Proxy resources: resident memory at rest, under 64 connections, and per MB of body.

Three processes: the fake API, the real ``caproute serve`` (pass-through mode, the
flavour it picks: httptools + uvloop when installed) and this load generator. Memory is
the proxy process's own, read from ``/proc/<pid>/status`` (Linux):

* **At rest**: ``VmRSS`` after start-up and one request (imports, the registry, the
  first connection: what an idle replica holds).
* **64 connections**: 64 keep-alive connections each sending small Messages requests
  back to back for a few seconds; the peak (``VmHWM``, reset before the phase by
  writing ``5`` to ``/proc/<pid>/clear_refs``) and ``VmRSS`` after the phase.
* **Per MB of request body**: one request at a time with a body of 1 to 16 MiB, the
  peak reset before each; reported as the peak above rest, and that divided by the
  body size. Two body shapes: one long string (a pasted document: the cheapest JSON
  there is) and many small objects (``{"i": n}`` in a list: the most expensive, every
  object a dict in memory). Object bodies past the proxy's JSON value budget
  (``--max-json-values``) are answered 413 unparsed: what they cost is receiving them.

Run: ``.venv/bin/python benchmarks/bench_resources.py`` (``--quick`` for a smoke run,
``--json FILE`` to keep the numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The proxy must not read or write the real user cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="caproute-bench-")

import httpx2

from bench_fake import API_KEY, fake_api, free_port

MIB = 1024 * 1024
HEADERS = {
    "x-api-key": API_KEY,
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
}
SMALL = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}


@contextmanager
def proxy(upstream: str) -> Iterator[tuple[str, int]]:
    """``caproute serve`` in front of `upstream`: yields its URL and process id."""
    port = free_port()
    command = [
        sys.executable, "-m", "caproute", "serve",
        "--upstream", upstream, "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(f"{url}/caproute/health", timeout=1).raise_for_status()
                break
            except httpx2.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the proxy did not start") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(30)


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current VmRSS


def mib(kib: float) -> float:
    return kib / 1024


async def connections(url: str, count: int, seconds: float) -> int:
    """`count` keep-alive connections sending small requests back to back; requests done."""
    limits = httpx2.Limits(max_connections=count, max_keepalive_connections=count)
    done = 0
    async with httpx2.AsyncClient(
        base_url=url, headers=HEADERS, limits=limits, timeout=60
    ) as client:
        stop = time.monotonic() + seconds

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < stop:
                response = await client.post("/v1/messages", json=SMALL)
                assert response.status_code == 200, response.text
                done += 1

        await asyncio.gather(*(loop() for _ in range(count)))
    return done


def body_of(shape: str, size: int) -> bytes:
    """A Messages body of about `size` bytes, shaped as one string or many small objects."""
    if shape == "string":
        text = "x" * size
        return json.dumps({**SMALL, "messages": [{"role": "user", "content": text}]}).encode()
    # {"i":n} objects in a tool_use input (a list the proxy must parse object by object).
    count = size // len(b'{"i":100000},')
    items = [{"i": n} for n in range(count)]
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"items": items}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    return json.dumps({**SMALL, "messages": history}, separators=(",", ":")).encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, small bodies")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else 8.0
    sizes = [1, 4] if args.quick else [1, 4, 8, 16]
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
    }

    with (
        fake_api() as upstream,
        proxy(upstream) as (url, pid),
        httpx2.Client(base_url=url, headers=HEADERS, timeout=120) as client,
    ):
        assert client.post("/v1/messages", json=SMALL).status_code == 200
        time.sleep(0.5)
        rest = status_kib(pid, "VmRSS")
        results["rest_mib"] = round(mib(rest), 1)
        print(f"at rest: {mib(rest):.1f} MiB resident")

        reset_peak(pid)
        done = asyncio.run(connections(url, 64, seconds))
        peak, after = status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS")
        results["connections_64"] = {
            "requests": done,
            "peak_mib": round(mib(peak), 1),
            "after_mib": round(mib(after), 1),
        }
        print(
            f"64 connections, {done} requests in {seconds:g} s: peak {mib(peak):.1f} MiB "
            f"(+{mib(peak - rest):.1f} over rest), {mib(after):.1f} MiB after"
        )

        print("\nrequest body    shape    peak above rest   per MiB of body")
        per_body: list[dict[str, Any]] = []
        for shape in ("string", "objects"):
            for size in sizes:
                body = body_of(shape, size * MIB)
                base = status_kib(pid, "VmRSS")
                reset_peak(pid)
                response = client.post("/v1/messages", content=body)
                # 413: over the proxy's JSON value budget (--max-json-values), not parsed.
                assert response.status_code in (200, 400, 413), response.text[:200]
                peak = status_kib(pid, "VmHWM")
                above = mib(peak - base)
                ratio = above / (len(body) / MIB)
                refused = response.status_code == 413
                per_body.append(
                    {"shape": shape, "mib": round(len(body) / MIB, 2),
                     "status": response.status_code,
                     "peak_above_mib": round(above, 1), "per_mib": round(ratio, 1)}
                )  # fmt: skip
                print(
                    f"{len(body) / MIB:8.1f} MiB   {shape:8} {above:10.1f} MiB"
                    f"   {ratio:10.1f} MiB/MiB"
                    + ("   (413: over the JSON value budget)" if refused else "")
                )
                time.sleep(0.2)
        results["per_body"] = per_body
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
