"""Routing cost in CPU instructions per decision: a figure machine load can't disturb.

Wall-clock medians drift with whatever else the machine runs; instruction counts
(valgrind's callgrind) are the same for the same code and input, however busy the
machine is. This runs the core on the agent-turn bodies of `bench_core` under
callgrind twice (N and 0 iterations) and reports the difference per iteration, next to
the floor the core is compared with: walking the body's containers once.

Needs valgrind (Debian's package); without it the benchmark says so and exits 0.

    .venv/bin/python benchmarks/bench_instructions.py [--iterations N]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKLOAD = """
import sys
sys.path.insert(0, {here!r})
from bench_core import agent_request, walk_once
from caproute._core.engine import PolicyEngine
from caproute._registry.snapshot import embedded_registry
engine = PolicyEngine(embedded_registry())
bodies = {{
    "agent/unchanged": agent_request("claude-sonnet-5-5"),
    "agent/adjusted": agent_request(
        "claude-haiku-4-5", output_config={{"effort": "max"}}, tool_choice={{"type": "any"}}
    ),
}}
case, n = sys.argv[1], int(sys.argv[2])
if case == "walk-once":
    body = bodies["agent/unchanged"]
    for _ in range(n):
        walk_once(body)
else:
    body = bodies[case]
    engine.route(body)
    for _ in range(n):
        engine.route(body)
"""


def instructions(case: str, n: int) -> int:
    """Instructions callgrind counts for a whole run of the workload."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            WORKLOAD.format(here=str(HERE)),
            case,
            str(n),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{done.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2_000)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind not installed: instruction counts skipped")
        return
    n = args.iterations
    floor = (instructions("walk-once", n) - instructions("walk-once", 0)) / n
    print("| case | instructions per call | × walking the body once |")
    print("| --- | ---: | ---: |")
    print(f"| walk-once (floor) | {floor:,.0f} | 1.0 |")
    for case in ("agent/unchanged", "agent/adjusted"):
        per_call = (instructions(case, n) - instructions(case, 0)) / n
        print(f"| {case} | {per_call:,.0f} | {per_call / floor:.1f} |")


if __name__ == "__main__":
    main()
