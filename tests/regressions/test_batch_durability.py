"""Issue 22, bugs 10 and 11: the batch journal's durability, and finding a batch an
interrupted submission created.

Bug 10 is invisible to any test that reads the files back in the same process (the
page cache holds them either way): it shows only on power loss. So the file layer is
observed instead: `os.fsync` and `os.replace` are wrapped to record what each call
touched, and every journal write must fsync the temporary file before renaming it
over the journal entry, then fsync the directory.

Bug 11 needs a batch created long before the last submission attempt: the fake's
batch is back-dated, as a batch created by an attempt that crashed 15 minutes
earlier would be.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from caproute import BatchJob, BatchLimits
from caproute._batch.store import StateDir
from caproute.testing import FakeAnthropic, make_model

KEY = "test-key-batch-regressions"
MODEL = "claude-batch-2"


@pytest.fixture(scope="module")
def fake_anthropic_options() -> dict[str, Any]:
    return {"models": [make_model(MODEL)], "api_key": KEY}


def options(fake: FakeAnthropic) -> dict[str, Any]:
    return {
        "base_url": fake.url,
        "api_key": KEY,
        "poll_interval": 0.01,
        "max_poll_interval": 0.05,
        "reconcile_grace": 0.0,
    }


def write_requests(path: Path, count: int) -> Path:
    lines = [
        {
            "custom_id": f"r{n}",
            "params": {
                "model": MODEL,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": f"hello {n}"}],
            },
        }
        for n in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def creates(fake: FakeAnthropic) -> int:
    return sum(1 for r in fake.requests if r.method == "POST" and r.path == "/v1/messages/batches")


# -- bug 10: fsync before rename --------------------------------------------------------------


class FileLayer:
    """Records `os.fsync` / `os.fdatasync` (by the path of the descriptor) and
    `os.replace`, in call order, then does the real call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str, str]] = []
        for name in ("fsync", "fdatasync"):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, self._synced(name, real))
        real_replace = os.replace

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            self.events.append(("replace", os.path.abspath(src), os.path.abspath(dst)))
            real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)

    def _synced(self, name: str, real: Callable[[int], None]) -> Callable[[int], None]:
        def synced(fd: int) -> None:
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), ""))
            real(fd)

        return synced


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_every_journal_write_is_fsynced_before_its_rename(
    fake: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug 10: the journal file not fsynced before its rename.

    Renaming an unsynced file makes the *name* durable before the *content*: after a
    power cut the journal entry can be empty. Every rename into the state directory
    must come after an fsync of the very file renamed, and be followed by an fsync of
    the directory that holds it (which makes the rename itself durable).
    """
    layer = FileLayer(monkeypatch)
    state = tmp_path / "state"
    requests = write_requests(tmp_path / "in.jsonl", 4)
    with BatchJob.create(requests, state, limits=BatchLimits(2), **options(fake)) as job:
        job.submit()

    events = layer.events
    renames = [(i, e) for i, e in enumerate(events) if e[0] == "replace"]
    journal = [(i, e) for i, e in renames if e[2].startswith(str(state))]
    assert len(journal) >= 4  # the job file, two chunk records, and their updates
    for index, (_, src, dst) in journal:
        synced_before = [e for e in events[:index] if e[0] == "fsync" and e[1] == src]
        assert synced_before, f"{dst} renamed into place without an fsync of {src}"
        after = events[index + 1 :]
        directory = os.path.dirname(dst)
        dir_synced = next((e for e in after if e[0] in ("fsync", "replace")), None)
        assert dir_synced == ("fsync", directory, ""), f"no fsync of {directory} after {dst}"


# -- bug 11: the listing goes back to the FIRST attempt ---------------------------------------


def test_a_batch_created_by_an_early_attempt_is_adopted_not_sent_twice(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    """Bug 11: the listing's cut-off taken from the last submission attempt.

    The chunk's first attempt (15 minutes ago) created a batch but its answer was lost;
    a second attempt (just now) was interrupted before sending anything. Resuming must
    list batches back to the first attempt (minus the clock-skew margin, 300 s) and
    adopt that batch; a cut-off from the last attempt misses it, and the chunk is
    submitted a second time.
    """
    state = tmp_path / "state"
    requests = write_requests(tmp_path / "in.jsonl", 2)
    long_ago = time.time() - 900
    BatchJob.create(requests, state, limits=BatchLimits(2), **options(fake)).close()
    store = StateDir(state)  # the journal, as a crashed process leaves it
    record = store.record_attempt(store.records()[0], long_ago)
    body = store.body_path(record.round, record.chunk).read_bytes()
    answer = httpx2.post(
        f"{fake.url}/v1/messages/batches",
        content=body,
        headers={**fake.headers(), "content-type": "application/json"},
    )
    orphan = answer.raise_for_status().json()["id"]
    # The fake stamps batches with its own clock: back-date this one to the attempt.
    fake.batches._batches[orphan].created_at = datetime.fromtimestamp(long_ago + 1, UTC)
    store.record_attempt(record, time.time())

    with BatchJob.open(state, **options(fake)) as resumed:
        assert resumed.submit() == 1
    [adopted] = store.records()

    assert (adopted.batch_id, adopted.how) == (orphan, "adopted")
    assert creates(fake) == 1
