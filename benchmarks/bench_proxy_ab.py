"""A/B of the proxy's added latency: two `caproute serve` builds, interleaved, one run.

On a shared machine the load moves between runs, so comparing two builds' separate
runs says little; here both proxies (this checkout and another source tree, e.g. the
main branch's) run side by side in front of the same fake API, and the same small
``POST /v1/messages`` is sent direct, through A and through B in turn, on one
keep-alive connection each. Reported: p50 / p99 added over direct, and each proxy
process's CPU per request.

Run: ``.venv/bin/python benchmarks/bench_proxy_ab.py /path/to/other/src``.
"""

from __future__ import annotations

import json
import os
import sys

import httpx2

from bench_proxy import BODY, cpu_seconds, fake_api, free_port, one_request, percentile, served


def main() -> None:
    other_src = sys.argv[1]
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    body = json.dumps(BODY).encode()
    with fake_api() as direct:
        urls = {}
        pids = {}
        contexts = []
        for name, src in (("A (this checkout)", None), ("B (" + other_src + ")", other_src)):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "caproute", "serve", "--port", str(port)]
            command += ["--upstream", direct, "--log-level", "warning"]
            env_src = {"PYTHONPATH": src} if src else {}
            os.environ.update(env_src)
            context = served(command, f"{url}/caproute/health")
            pids[name] = context.__enter__()
            contexts.append(context)
            os.environ.pop("PYTHONPATH", None)
            urls[name] = url
        try:
            times: dict[str, list[float]] = {"direct": [], **{name: [] for name in urls}}
            clients = {name: httpx2.Client(timeout=30) for name in times}
            targets = {"direct": direct, **urls}
            for _ in range(50):
                for name in times:
                    one_request(clients[name], targets[name], body, False)
            cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
            for _ in range(requests):
                for name in times:
                    times[name].append(one_request(clients[name], targets[name], body, False))
            cpu = {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
        finally:
            for context in contexts:
                context.__exit__(None, None, None)
    base50 = percentile(times["direct"], 0.5)
    base99 = percentile(times["direct"], 0.99)
    print(f"load average {os.getloadavg()[0]:.2f}; direct p50 {base50 * 1000:.2f} ms")
    print("| proxy | added p50 | added p99 | proxy CPU / request |")
    print("| --- | ---: | ---: | ---: |")
    for name in urls:
        added50 = (percentile(times[name], 0.5) - base50) * 1000
        added99 = (percentile(times[name], 0.99) - base99) * 1000
        per_request = cpu[name] / requests * 1000
        print(f"| {name} | {added50:.2f} ms | {added99:.2f} ms | {per_request:.2f} ms |")


if __name__ == "__main__":
    main()
