"""The issue's acceptance test: a 5,000-line workload, a submitting process killed with
SIGKILL (twice), resumed, and every custom_id exactly once in the merged results.

The fake runs in this process; ``caproute batch`` runs as a real subprocess. The first
kill is placed in the worst spot deterministically: the 4th batch-creation request has
reached the API, which holds it for a while before creating the batch, and the journal
says ``submitting``. The batch appears after the process is dead, so only
reconciliation can tell the resumed run not to send that chunk again. The second kill
lands wherever the resumed run happens to be.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from batch_helpers import (
    API_KEY,
    BIG,
    creates,
    held_custom_ids,
    read_results,
    sent_custom_ids,
    write_mixed,
)

from caproute._batch.store import ChunkRecord, StateDir
from caproute.testing import FakeAnthropic

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

LINES = 5000
PER_BATCH = 100


def _caproute(*args: str, fake: FakeAnthropic) -> list[str]:
    del fake
    return [sys.executable, "-m", "caproute", "batch", *args]


def _env(fake: FakeAnthropic) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.url}


def _records(state: Path) -> list[ChunkRecord]:
    return StateDir(state).records() if (state / "rounds" / "1").exists() else []


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"caproute exited early ({process.returncode}): {err.decode()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the submission to get there")
        time.sleep(0.005)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL


def test_killed_submission_resumes_with_every_request_exactly_once(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    source, state, out = tmp_path / "requests.jsonl", tmp_path / "state", tmp_path / "out.jsonl"
    kinds = write_mixed(source, LINES)
    fake.batches.configure(errored=0.04, expired=0.03, seed=12)
    env = _env(fake)
    submit = _caproute(
        "submit",
        str(source),
        "--state",
        str(state),
        "--max-requests",
        str(PER_BATCH),
        "--reconcile-grace",
        "2",
        fake=fake,
    )

    # Run 1: three batches go through; the 4th creation request is held by the API for
    # 1.5 s before the batch exists. Kill the process inside that window.
    fake.faults.add("/v1/messages/batches", method="POST", delay=0.01, times=3)
    fake.faults.add("/v1/messages/batches", method="POST", delay=1.5)
    run = subprocess.Popen(submit, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def fourth_in_flight() -> bool:
        records = _records(state)
        return len(records) > 3 and records[3].state == "submitting" and creates(fake) == 4

    _wait_for(fourth_in_flight, run)
    _kill(run)
    records = _records(state)
    assert [r.state for r in records[:4]] == ["submitted"] * 3 + ["submitting"]
    assert len(fake.batches.ids()) == 3  # the 4th batch does not exist yet...
    time.sleep(1.6)
    assert len(fake.batches.ids()) == 4  # ...and now it does, with nobody to record it

    # Run 2: resumes (adopting that batch), and is killed again wherever it is once
    # ten more batches are in.
    fake.faults.add("/v1/messages/batches", method="POST", delay=0.01, times=None)
    run = subprocess.Popen(submit, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: sum(r.state == "submitted" for r in _records(state)) >= 14, run)
    _kill(run)

    # Run 3: finishes the submission.
    fake.faults.clear()
    done = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "resuming the job" in done.stderr

    records = _records(state)
    assert all(r.state == "submitted" for r in records)
    assert records[3].how == "adopted"
    batch_ids = [r.batch_id for r in records]
    assert len(set(batch_ids)) == len(records) == len(fake.batches.ids())

    # No request was ever sent in two batches (the fake's own records say so).
    never_sent = ("refused", "unknown_model")  # a batch never gambles on an unknown model
    expected_sent = sorted(cid for cid, kind in kinds.items() if kind not in never_sent)
    assert sorted(held_custom_ids(fake)) == expected_sent
    sent = sent_custom_ids(fake)
    assert len(sent) == len(set(sent))

    for command in (
        _caproute("wait", "--state", str(state), "--poll-interval", "0.05", fake=fake),
        _caproute("results", "--state", str(state), "--out", str(out), fake=fake),
    ):
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stderr

    lines = read_results(out)
    assert [line["custom_id"] for line in lines] == list(kinds)  # every id, once, in order
    types: Counter[str] = Counter()
    for line in lines:
        kind = kinds[line["custom_id"]]
        result, decision = line["result"], line["caproute"]["decision"]
        types[result["type"]] += 1
        if kind == "refused":
            assert result == {"type": "refused", "reason": decision["reason"]}
            assert "pdf_input" in result["reason"]
        elif kind == "unknown_model":
            assert result == {"type": "refused", "reason": decision["reason"]}
            assert "unknown to the registry" in result["reason"]
        else:
            assert decision["outcome"] == kind
            assert result["type"] in ("succeeded", "errored", "expired")
            if result["type"] == "errored":  # the API's reason, as the API gave it
                assert result["error"]["error"] == {
                    "type": "api_error",
                    "message": "Internal server error",
                }
            if kind == "rerouted" and result["type"] == "succeeded":
                assert result["message"]["model"] == BIG
    assert types["refused"] == sum(Counter(kinds.values())[kind] for kind in never_sent)
    assert types["succeeded"] > 0 and types["expired"] > 0
    assert sum(types.values()) == LINES
    assert json.loads((state / "job.json").read_text())["limits"]["max_requests"] == PER_BATCH
