"""Run every benchmark in this folder (``benchmarks/bench_*.py``), one process each.

Each benchmark is a standalone script that prints its own report; this runner only
finds them, runs them one after another with the same interpreter (never in parallel:
they would measure each other) and sums up which ones failed.

Run: ``.venv/bin/python benchmarks/run_all.py`` (or ``make bench``); name some to run
only those (``run_all.py transport core``), ``--list`` to see what there is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    """``{"core": .../bench_core.py, ...}``, sorted by name."""
    return {path.stem.removeprefix("bench_"): path for path in sorted(HERE.glob("bench_*.py"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the caproute benchmarks.")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    found = discover()
    if args.list:
        print("\n".join(found))
        return 0
    unknown = sorted(set(args.names) - set(found))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(found)}")
        return 2
    selected = args.names or list(found)

    failed: list[str] = []
    for name in selected:
        print(f"\n===== {name} ({found[name].name}) =====", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(found[name])])
        print(f"----- {name}: exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    print(f"\nall {len(selected)} benchmark(s) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
