"""Shared pieces of the batch tests: a small lineup, request builders, result readers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from caproute import BatchJob
from caproute._batch.store import StateDir
from caproute.testing import FakeAnthropic, make_model

API_KEY = "batch-test-key"

BIG, SMALL, NOBATCH = "claude-big-2", "claude-small-1", "claude-nobatch-1"
GONE = "claude-gone-9"
"""A model nobody lists: refused locally (its support is unknown), unless the job allows
unknown support; then it is sent as it is, and the API errors it."""

PDF_MESSAGES = [
    {
        "role": "user",
        "content": [
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            },
            {"type": "text", "text": "Summarise."},
        ],
    }
]
"""No model of `lineup()` reads PDFs: such a request is refused locally."""


def lineup() -> list[dict[str, Any]]:
    """Three models; none reads PDFs, the small one has no ``max`` effort, one has no batch."""
    return [
        make_model(BIG, unsupported=["pdf_input"]),
        make_model(SMALL, unsupported=["pdf_input", "effort.max"]),
        make_model(NOBATCH, unsupported=["pdf_input", "batch"]),
    ]


def item(custom_id: str, model: str = BIG, **params: Any) -> dict[str, Any]:
    """One input line's object."""
    body = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"Hello {custom_id}"}],
        **params,
    }
    return {"custom_id": custom_id, "params": body}


KINDS = ("unchanged", "adjusted", "rerouted", "refused", "unknown_model")


def mixed_item(n: int) -> tuple[str, dict[str, Any]]:
    """The n-th line of a mixed workload and what routing should do with it."""
    kind = KINDS[n % len(KINDS)] if n % 7 else "unchanged"
    custom_id = f"req-{n:06d}"
    if kind == "adjusted":
        return kind, item(custom_id, SMALL, output_config={"effort": "max"})
    if kind == "rerouted":
        return kind, item(custom_id, NOBATCH)
    if kind == "refused":
        return kind, item(custom_id, BIG, messages=PDF_MESSAGES)
    if kind == "unknown_model":
        return kind, item(custom_id, GONE)
    return kind, item(custom_id, BIG)


def write_jsonl(path: Path, items: Iterable[dict[str, Any] | str]) -> Path:
    """Write objects (or raw strings) one per line."""
    with path.open("w", encoding="utf-8") as stream:
        for entry in items:
            stream.write((entry if isinstance(entry, str) else json.dumps(entry)) + "\n")
    return path


def write_mixed(path: Path, count: int) -> dict[str, str]:
    """A mixed workload of `count` lines; returns custom_id → kind."""
    kinds: dict[str, str] = {}
    lines = []
    for n in range(count):
        kind, entry = mixed_item(n)
        kinds[entry["custom_id"]] = kind
        lines.append(entry)
    write_jsonl(path, lines)
    return kinds


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every line of a results file, decoded."""
    with path.open(encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def job_options(fake: FakeAnthropic, **overrides: Any) -> dict[str, Any]:
    """`BatchJob.create/open` keywords for `fake`, with quick polling and no grace wait."""
    return {
        "base_url": fake.url,
        "api_key": API_KEY,
        "poll_interval": 0.01,
        "max_poll_interval": 0.05,
        "reconcile_grace": 0.0,
        **overrides,
    }


def sent_custom_ids(fake: FakeAnthropic) -> list[str]:
    """Every custom_id in every batch-creation request the fake received (parsed bodies)."""
    ids: list[str] = []
    for request in fake.requests:
        is_create = request.method == "POST" and request.path == "/v1/messages/batches"
        if is_create and isinstance(request.body, dict):
            ids.extend(r["custom_id"] for r in request.body["requests"])
    return ids


def held_custom_ids(fake: FakeAnthropic) -> list[str]:
    """Every custom_id in every batch the fake holds."""
    return [cid for batch_id in fake.batches.ids() for cid in fake.batches.custom_ids(batch_id)]


def creates(fake: FakeAnthropic) -> int:
    """How many batch-creation requests (``POST /v1/messages/batches``) the fake received."""
    return sum(1 for r in fake.requests if r.method == "POST" and r.path == "/v1/messages/batches")


def journal(job: BatchJob) -> StateDir:
    """The job's state directory, read on its own (as another process would)."""
    return StateDir(job.state_dir)
