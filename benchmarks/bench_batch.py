"""`caproute batch`: peak memory against input size, and lines routed per second.

For each input size (default 20 MB and 200 MB of ~1 kB request lines: 80 % sent
unchanged, 10 % adjusted, 10 % rerouted from a retired model), each phase of a job
runs in a **fresh process** whose peak resident set (``ru_maxrss``) is reported:

* ``baseline``: import caproute's batch modules, build the router, route one line:
  the fixed cost every phase pays;
* ``plan``: ``BatchJob.create``: read, check, route and chunk every line into a state
  directory (this is where lines routed per second comes from);
* ``submit``: stream every chunk to the API;
* ``results``: wait, download every batch's results and write the merged file
  (``--plan-only`` skips these two).

The API is `caproute.testing.FakeAnthropic` in its own process (its memory is not
ours). The floor for throughput, measured in the same run on the same file: reading
every line and ``json.loads``-ing it, nothing else. "Flat" means the peak of a phase
is the same, within a few MB, for the 10× bigger file.

Run: ``.venv/bin/python benchmarks/bench_batch.py`` (``--sizes 20 200``, ``--plan-only``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_fake import API_KEY, fake_api

# The phases fetch the fake's lineup: keep it out of the real user cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="caproute-bench-")

# Each phase: argv = [phase, input, state, url]; prints one JSON line of measurements.
PHASE = """
import json, resource, sys, time
phase, source, state, url = sys.argv[1:5]
opts = dict(base_url=url, api_key=API_KEY, poll_interval=0.2, max_poll_interval=1.0)
import caproute
from caproute import BatchJob, BatchLimits
started, cpu = time.perf_counter(), time.process_time()
out = {}
if phase == "baseline":
    router = caproute.LiveRouter()
    line = json.loads(open(source, "rb").readline())
    router.route({"requests": [line]}, endpoint="batch")
elif phase == "floor":
    with open(source, "rb") as stream:
        out["lines"] = sum(1 for raw in stream if json.loads(raw))
elif phase == "plan":
    job = BatchJob.create(source, state, limits=BatchLimits(max_requests=20000), **opts)
    out["lines"] = job.plan.requests
    out["chunks"] = job.plan.chunks
    job.close()
elif phase == "submit":
    with BatchJob.open(state, **opts) as job:
        out["batches"] = job.submit()
elif phase == "results":
    with BatchJob.open(state, **opts) as job:
        job.wait()
        out["lines"] = job.write_results(state + "/results.jsonl").lines
out["seconds"] = time.perf_counter() - started
out["cpu_s"] = time.process_time() - cpu
out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

TEXT = "Summarise the following notes in three bullet points. " * 17  # ~0.9 kB


def write_input(path: Path, megabytes: int) -> int:
    """A JSONL file of about `megabytes` MB; returns its line count."""
    target = megabytes * 1_000_000
    size = lines = 0
    with path.open("w", encoding="utf-8") as out:
        while size < target:
            n = lines
            params: dict[str, object] = {
                "model": "claude-sonnet-4-6",
                "max_tokens": 1024,
                "messages": [{"role": "user", "content": f"{n}: {TEXT}"}],
            }
            if n % 10 == 1:  # no effort levels: the effort is stripped
                params["model"] = "claude-haiku-4-5"
                params["output_config"] = {"effort": "max"}
            elif n % 10 == 2:  # retired: rerouted
                params["model"] = "claude-opus-4-1"
            line = json.dumps({"custom_id": f"req-{n:08d}", "params": params}) + "\n"
            out.write(line)
            size += len(line)
            lines += 1
    return lines


def run_phase(phase: str, source: Path, state: Path, url: str) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"API_KEY = {API_KEY!r}\n{PHASE}",
            phase,
            str(source),
            str(state),
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 200], metavar="MB")
    parser.add_argument(
        "--plan-only", action="store_true", help="skip submitting and merging results"
    )
    args = parser.parse_args(argv)
    phases = ["baseline", "floor", "plan"] + ([] if args.plan_only else ["submit", "results"])
    rows: dict[int, dict[str, dict[str, float]]] = {}
    work = Path(tempfile.mkdtemp(prefix="caproute-bench-batch-"))
    try:
        with fake_api() as url:
            for megabytes in args.sizes:
                source = work / f"in-{megabytes}.jsonl"
                lines = write_input(source, megabytes)
                state = work / f"state-{megabytes}"
                print(f"{megabytes} MB: {lines:,} lines", flush=True)
                rows[megabytes] = {}
                for phase in phases:
                    rows[megabytes][phase] = run_phase(phase, source, state, url)
                    print(f"  {phase:<9} {rows[megabytes][phase]}", flush=True)
                rows[megabytes]["plan"]["index_mb"] = (state / "index.sqlite3").stat().st_size / 1e6
                rows[megabytes]["plan"]["input_lines"] = lines
                shutil.rmtree(state)
                source.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(rows, phases)
    return 0


def report(rows: dict[int, dict[str, dict[str, float]]], phases: list[str]) -> None:
    sizes = list(rows)
    print("\n## Peak resident memory per phase (MB, fresh process each)\n")
    print("| Phase | " + " | ".join(f"{s} MB input" for s in sizes) + " | growth |")
    print("| --- |" + " ---: |" * (len(sizes) + 1))
    for phase in [p for p in phases if p != "floor"]:
        peaks = [rows[s][phase]["maxrss_mb"] for s in sizes]
        growth = peaks[-1] - peaks[0]
        print(f"| {phase} | " + " | ".join(f"{p:.1f}" for p in peaks) + f" | {growth:+.1f} |")
    print("\n## Planning throughput (check + route + chunk + index every line)\n")
    print(
        "| Input | Lines | Plan s (CPU s) | Lines/s (per CPU s) | Floor lines/s per CPU s "
        "(read + json.loads) | Plan / floor CPU | Index MB |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in sizes:
        plan, floor = rows[s]["plan"], rows[s]["floor"]
        lines = plan["input_lines"]
        print(
            f"| {s} MB | {lines:,.0f} | {plan['seconds']:.1f} ({plan['cpu_s']:.1f}) "
            f"| {lines / plan['seconds']:,.0f} ({lines / plan['cpu_s']:,.0f}) "
            f"| {lines / floor['cpu_s']:,.0f} | {plan['cpu_s'] / floor['cpu_s']:.1f}× "
            f"| {plan['index_mb']:.0f} |"
        )
    if "submit" in phases:
        print("\n## Submit and results (s)\n")
        print("| Input | submit | wait + results |")
        print("| --- | ---: | ---: |")
        for s in sizes:
            submit, results = rows[s]["submit"]["seconds"], rows[s]["results"]["seconds"]
            print(f"| {s} MB | {submit:.1f} | {results:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
