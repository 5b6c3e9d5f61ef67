"""Registry costs: loading the embedded snapshot, lookups, and live fetches from the fake.

Run: ``.venv/bin/python benchmarks/bench_registry.py``. Numbers go to
docs/performance.md ("Registry fetch"). The fetches go to `caproute.testing.FakeAnthropic`
on 127.0.0.1, so they measure caproute and the local HTTP stack, not the network.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="caproute-bench-")

FETCH_RUNS = 30


def per_call_ns(fn: Callable[[], object], calls: int = 100_000) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e9


def embedded_first_load_ms() -> float:
    """A fresh interpreter: the first `embedded_registry()` call, after imports."""
    code = (
        "import time; from caproute._registry.snapshot import embedded_registry; "
        "t = time.perf_counter(); embedded_registry(); "
        "print((time.perf_counter() - t) * 1000)"
    )
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(5)
    ]
    return statistics.median(runs)


POLICIES = Path(__file__).parents[1] / "examples" / "policies"


def loading_us(rounds: int = 7, calls: int = 200) -> dict[str, float]:
    """Reading files as every caller does: each shipped policy through `load_policy`,
    the embedded snapshot's text through its loader, and a snapshot file (the embedded
    lineup, saved) through `load_snapshot`; best of `rounds` means of `calls`, in µs.

    Written for issue 17's limits (policy size, nodes and depth; snapshot size, model
    count and tombstones), which every one of these goes through: run it against the
    tree before with ``PYTHONPATH``.
    """
    from caproute import embedded_registry, load_policy, load_snapshot, save_snapshot

    snapshot = Path(tempfile.mkdtemp(prefix="caproute-bench-")) / "registry.json"
    save_snapshot(embedded_registry(), snapshot)
    loaders: dict[str, Callable[[], object]] = {
        f"load_policy({path.name})": lambda path=path: load_policy(path)
        for path in sorted(POLICIES.glob("*.yaml"))
    }
    loaders["embedded snapshot (parse + validate)"] = embedded_registry.__wrapped__
    loaders["load_snapshot(embedded lineup file)"] = lambda: load_snapshot(snapshot)
    best: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, so a burst of load hits every loader alike
        for name, load in loaders.items():
            started = time.process_time()
            for _ in range(calls):
                load()
            mean = (time.process_time() - started) / calls * 1e6
            best[name] = min(best.get(name, mean), mean)
    return best


def main() -> None:
    from caproute import RegistryFetcher, embedded_registry
    from caproute.testing import FakeAnthropic

    for name, us in loading_us().items():
        print(f"{name}: {us:.0f} µs CPU (best of 7 means of 200)")
    print(f"embedded_registry() first load: {embedded_first_load_ms():.2f} ms (median of 5)")
    registry = embedded_registry()
    ns = per_call_ns(lambda: registry.supports("claude-opus-5-5", "effort.high"))
    print(f"Registry.supports(): {ns:.0f} ns/call")

    with FakeAnthropic(api_key="bench-key") as fake:
        for page_size in (7, 1000):
            fetcher = RegistryFetcher(
                api_key="bench-key",
                base_url=fake.url,
                page_size=page_size,
                background=False,
                cache_file=False,
            )
            with fetcher:
                fetcher.refresh()  # warm the connection
                times = []
                for _ in range(FETCH_RUNS):
                    fetcher._fresh.clear()  # force a real fetch
                    started = time.perf_counter()
                    fetched = fetcher.refresh()
                    times.append(time.perf_counter() - started)
            pages = -(-len(fetched) // page_size)
            print(
                f"refresh(), {len(fetched)} models in {pages} page(s): "
                f"median {statistics.median(times) * 1000:.1f} ms, "
                f"max {max(times) * 1000:.1f} ms ({FETCH_RUNS} runs)"
            )

        fetcher = RegistryFetcher(api_key="bench-key", base_url=fake.url, cache_file=False)
        with fetcher:
            fetcher.refresh()
            print(f"current(), fresh: {per_call_ns(fetcher.current):.0f} ns/call")


if __name__ == "__main__":
    main()
