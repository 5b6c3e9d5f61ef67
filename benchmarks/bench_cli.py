"""The command line's wall time: what `caproute models` costs next to `caproute --help`.

``caproute --help`` imports the CLI's modules and nothing heavy: it is the floor. The
table commands add the registry (pydantic, the embedded snapshot) and rich, imported
inside the command (``tests/shells/test_cli_output.py`` checks that ``--help`` does
not load it). Each case runs ``python -m caproute ...`` in a fresh process with stdout
to a pipe (the plain, natural-width output) or with ``--width`` (the fitting layouts),
cases interleaved so machine drift hits every one alike; medians of N.

Run: ``.venv/bin/python benchmarks/bench_cli.py`` (``--runs N``, default 15).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CASES = {
    "--help (floor)": ["--help"],
    "models (pipe)": ["models"],
    "models --width 80 (stacked)": ["models", "--width", "80"],
    "models --json": ["models", "--json"],
    "demo": ["demo"],
    "check --json": ["check", "examples/policies/teams.yaml", "--json"],
}


def seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "caproute", *argv], stdout=subprocess.DEVNULL, env=env, check=True
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wall time of caproute commands.")
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per case")
    args = parser.parse_args(argv)
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    with tempfile.TemporaryDirectory() as cache:
        # An empty cache directory: every run reads the embedded snapshot.
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        env.pop("ANTHROPIC_API_KEY", None)
        samples: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(args.runs):
            for name, case in CASES.items():
                samples[name].append(seconds(case, env))
    floor = statistics.median(samples["--help (floor)"])
    print(f"Python {sys.version.split()[0]}, {args.runs} fresh processes per case\n")
    print("| command | median ms | minus --help ms | ratio to --help |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| `caproute {name}` | {median * 1e3:.0f} | {(median - floor) * 1e3:.0f} | "
              f"{median / floor:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
