"""Benchmarks of the routing core: detection + selection + rewrite, per request.

Run: ``.venv/bin/python benchmarks/bench_core.py`` (``--quick`` for fewer rounds).
Plain `time.perf_counter` loops with a warm-up; each figure is the median and the 90th
percentile of per-call times in microseconds, over batches of calls (timing a single
call would mostly measure the timer). The same loops are also timed with
`time.process_time` (CPU time of this process): on a shared 2-core machine the wall
clock also counts the time other processes hold the CPU, the CPU time does not.

Cases:

* ``agent/unchanged``: a typical 10-message agent turn (2 tools, adaptive thinking,
  tool_use / tool_result history, a thinking block) on a model that supports it all.
* ``agent/adjusted``: the same conversation sent to Haiku 4.5 with ``effort: max``
  and a forced ``tool_choice``: effort stripped, thinking switched to ``enabled`` with
  a derived budget, ``tool_choice`` made ``auto``.
* ``pdf-2MB/*``: a body carrying a 2 MB base64 PDF: ``unchanged`` (a model that reads
  PDFs) and ``rerouted`` (sent to a retired model: a new model and a rewritten body),
  against two baselines: ``walk-once`` visits every container of the body once (what
  "reading the dict once" costs when strings are only measured), ``read-bytes``
  additionally reads every string (what any decode, copy or serialisation costs).
  ``pdf-1KB/rerouted`` is the same request with a 1 kB PDF: routing cost must not
  depend on the size of the content.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from caproute._core.engine import PolicyEngine
from caproute._registry.snapshot import embedded_registry

TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file from the repository",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
    {
        "name": "write_file",
        "description": "Write a file to the repository",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "text": {"type": "string"}},
            "required": ["path", "text"],
        },
    },
]


def agent_request(model: str, **extra: Any) -> dict[str, Any]:
    """A 10-message agent conversation with tools and thinking."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Rename `load` to `load_config` across the repo."}
    ]
    for turn in range(4):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Next file to check.", "signature": "Eq"},
                    {"type": "text", "text": f"Looking at file {turn}."},
                    {
                        "type": "tool_use",
                        "id": f"toolu_{turn}",
                        "name": "read_file",
                        "input": {"path": f"app/module_{turn}.py"},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": f"toolu_{turn}",
                        "content": "def load(path):\n    return parse(path)\n" * 20,
                    }
                ],
            }
        )
    messages.append({"role": "assistant", "content": "All four modules read."})
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 16_000,
        "system": "You are a careful refactoring agent.",
        "thinking": {"type": "adaptive"},
        "tools": TOOLS,
        "messages": messages,
    }
    body.update(extra)
    return body


def pdf_request(size: int = 2_000_000, model: str = "claude-opus-4-1") -> dict[str, Any]:
    """A body with a base64 PDF of about `size` bytes (a retired model by default)."""
    data = "JVBERi0xLjcK" * (size // 12)
    return {
        "model": model,
        "max_tokens": 4_000,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": data},
                    },
                    {"type": "text", "text": "Summarise this report."},
                ],
            }
        ],
    }


def walk_once(value: Any) -> int:
    """The baseline: visit every container of a decoded JSON body once."""
    count = 0
    stack = [value]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            count += len(node) > 0
    return count


def read_bytes(value: Any) -> int:
    """The other baseline: walk once and read every string (as a decode or copy must)."""
    total = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            total += node.count("\x00")  # touches every character
    return total


def measure(
    fn: Callable[[], object], *, rounds: int, batch: int, clock: Callable[[], float]
) -> tuple[float, float]:
    """(median, p90) of per-call microseconds over `rounds` batches of `batch` calls."""
    for _ in range(batch * 5):  # warm-up: caches, memo tables, branch predictors
        fn()
    samples = []
    for _ in range(rounds):
        start = clock()
        for _ in range(batch):
            fn()
        samples.append((clock() - start) / batch * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def main() -> None:
    """Run every case and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 30 if args.quick else 200
    registry = embedded_registry()
    router = PolicyEngine(registry)

    unchanged = agent_request("claude-sonnet-5-5")
    adjusted = agent_request(
        "claude-haiku-4-5", output_config={"effort": "max"}, tool_choice={"type": "any"}
    )
    pdf = pdf_request()
    pdf_readable = pdf_request(model="claude-sonnet-5-5")
    small_pdf = pdf_request(1_000)
    assert router.route(unchanged).decision.outcome == "unchanged"
    assert router.route(adjusted).decision.outcome == "adjusted"
    assert router.route(pdf).decision.outcome == "rerouted"
    assert router.route(pdf_readable).decision.outcome == "unchanged"

    cases: list[tuple[str, Callable[[], object], int]] = [
        ("agent/unchanged", lambda: router.route(unchanged), 200),
        ("agent/adjusted", lambda: router.route(adjusted), 200),
        ("pdf-2MB/unchanged", lambda: router.route(pdf_readable), 200),
        ("pdf-2MB/rerouted", lambda: router.route(pdf), 200),
        ("pdf-1KB/rerouted", lambda: router.route(small_pdf), 200),
        ("pdf-2MB/walk-once", lambda: walk_once(pdf), 200),
        ("pdf-2MB/read-bytes", lambda: read_bytes(pdf), 2),
    ]
    print(f"{'case':<22}{'wall median':>12}{'wall p90':>10}{'CPU median':>12}{'CPU p90':>10}  (µs)")
    for name, fn, batch in cases:
        wall = measure(fn, rounds=rounds, batch=batch, clock=time.perf_counter)
        cpu = measure(fn, rounds=rounds, batch=batch, clock=time.process_time)
        print(f"{name:<22}{wall[0]:>12.1f}{wall[1]:>10.1f}{cpu[0]:>12.1f}{cpu[1]:>10.1f}")


if __name__ == "__main__":
    main()
