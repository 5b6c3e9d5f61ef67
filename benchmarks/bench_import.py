"""Import time: what ``import caproute`` costs, and what its first real use costs.

``import caproute`` must stay light (its public names load lazily), so an application
that only imports it, or imports it and never routes, pays almost nothing. Measured two
ways, each in fresh interpreters with the cases interleaved (ABAB), medians of N:

* ``-X importtime``: the interpreter's own cumulative figure for the ``caproute``
  module (import work only, no start-up noise);
* wall time of a whole ``python -c "<statement>"`` process, minus the same for
  ``python -c "pass"`` (what a command-line tool would feel).

Cases: ``import caproute``; then ``caproute.LiveRouter`` (the routing core: pydantic,
PyYAML and the registry snapshot) and ``caproute.wrap`` (plus httpx2 and the
transports) on first access; ``import anthropic`` for scale.

Run: ``.venv/bin/python benchmarks/bench_import.py`` (``--runs N``, default 25).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "import caproute": "import caproute",
    "+ caproute.LiveRouter": "import caproute; caproute.LiveRouter",
    "+ caproute.wrap": "import caproute; caproute.wrap",
    "import anthropic (reference)": "import anthropic",
}


def process_seconds(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def importtime_us(module: str) -> int:
    """The cumulative ``-X importtime`` figure (µs) of `module` imported alone."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in out.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"{module} not in the -X importtime output")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import time of caproute.")
    parser.add_argument("--runs", type=int, default=25, help="fresh processes per case")
    args = parser.parse_args(argv)

    baseline: list[float] = []
    wall: dict[str, list[float]] = {name: [] for name in CASES}
    cumulative: dict[str, list[int]] = {"caproute": [], "anthropic": []}
    for _ in range(args.runs):  # interleaved: drift hits every case alike
        baseline.append(process_seconds("pass"))
        for name, statement in CASES.items():
            wall[name].append(process_seconds(statement))
        for module in cumulative:
            cumulative[module].append(importtime_us(module))

    base = statistics.median(baseline)
    print(f"Python {sys.version.split()[0]}, {args.runs} fresh processes per case\n")
    own, sdk = (statistics.median(cumulative[m]) for m in ("caproute", "anthropic"))
    print(f"* `-X importtime`, cumulative medians: caproute {own} µs, anthropic {sdk} µs")
    print(f"* interpreter start-up alone (`python -c pass`): {base * 1e3:.1f} ms\n")
    print("| statement | process median ms | minus start-up ms |")
    print("| --- | ---: | ---: |")
    for name, samples in wall.items():
        median = statistics.median(samples)
        print(f"| `{CASES[name]}` | {median * 1e3:.1f} | {(median - base) * 1e3:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
