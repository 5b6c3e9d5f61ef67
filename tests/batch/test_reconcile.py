"""Submissions whose outcome is unknown: the window between the POST and the journal write.

Each test puts a job in one of the states a crash or a lost answer leaves behind and
checks that submitting again adopts the batch the API already holds, or sends the
chunk again when the API holds none, and never creates a second batch for a chunk.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest
from batch_helpers import (
    API_KEY,
    creates,
    held_custom_ids,
    item,
    job_options,
    journal,
    sent_custom_ids,
    write_jsonl,
)

from caproute import (
    BatchAPIError,
    BatchJob,
    BatchLimits,
    BatchStateError,
    LiveRouter,
    Registry,
)
from caproute._batch.api import Answer, SyncDriver
from caproute._batch.reconcile import match_listing, maybe_created, parse_time
from caproute._batch.reports import BatchCounts
from caproute._batch.steps import Timing, next_poll_interval
from caproute._batch.store import ChunkRecord
from caproute._core.decision import Decision
from caproute.testing import FakeAnthropic


def _job(
    fake: FakeAnthropic, tmp_path: Path, count: int = 4, per_batch: int = 2, **kw: object
) -> BatchJob:
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(count)])
    options = {**job_options(fake), **kw}
    return BatchJob.create(
        tmp_path / "in.jsonl", tmp_path / "s", limits=BatchLimits(per_batch), **options
    )


def _post_body_by_hand(fake: FakeAnthropic, job: BatchJob, record: ChunkRecord) -> str:
    """What a process killed right after its POST left behind: a batch, and a journal
    record still saying ``submitting``."""
    store = journal(job)
    store.record_attempt(record, time.time())
    body = store.body_path(record.round, record.chunk).read_bytes()
    answer = httpx2.post(
        f"{fake.url}/v1/messages/batches",
        content=body,
        headers={**fake.headers(), "content-type": "application/json"},
    )
    answer.raise_for_status()
    batch_id: str = answer.json()["id"]
    return batch_id


def _lists(fake: FakeAnthropic) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.path == "/v1/messages/batches")


def test_a_lost_answer_is_adopted_not_resent(fake: FakeAnthropic, tmp_path: Path) -> None:
    # The API creates the batch, then the connection drops halfway through the answer.
    fake.faults.add("/v1/messages/batches", method="POST", truncated=True)
    with _job(fake, tmp_path) as job:
        assert job.submit() == 2
        records = journal(job).records()
    assert [r.how for r in records] == ["adopted", "created"]
    assert creates(fake) == 2  # one per chunk: the lost one was not sent again
    assert sorted(held_custom_ids(fake)) == [f"r{n}" for n in range(4)]
    assert records[0].batch_id == fake.batches.ids()[0]


def test_a_process_killed_after_its_post_is_adopted(fake: FakeAnthropic, tmp_path: Path) -> None:
    with _job(fake, tmp_path) as job:
        first = journal(job).records()[0]
        orphan = _post_body_by_hand(fake, job, first)
    with BatchJob.open(tmp_path / "s", **job_options(fake)) as resumed:
        assert resumed.status().batches[0].submission == "interrupted"
        assert resumed.submit() == 2
        records = journal(resumed).records()
    assert records[0].batch_id == orphan and records[0].how == "adopted"
    assert creates(fake) == 2
    assert sorted(held_custom_ids(fake)) == [f"r{n}" for n in range(4)]


def test_reconciliation_waits_out_the_grace_period(fake: FakeAnthropic, tmp_path: Path) -> None:
    with _job(fake, tmp_path) as job:
        record = journal(job).record_attempt(journal(job).records()[0], time.time())
    del record
    started = time.monotonic()
    with BatchJob.open(tmp_path / "s", **job_options(fake, reconcile_grace=0.4)) as resumed:
        resumed.submit()
    assert time.monotonic() - started >= 0.35
    assert creates(fake) == 2  # nothing had been created: the chunk was sent once


def test_a_500_is_checked_before_sending_again(fake: FakeAnthropic, tmp_path: Path) -> None:
    # A 500 answer may come after the work was done: list before resending.
    fake.faults.add("/v1/messages/batches", method="POST", status=500)
    with _job(fake, tmp_path) as job:
        assert job.submit() == 2
    assert _lists(fake) == 1
    assert creates(fake) == 3
    assert sorted(held_custom_ids(fake)) == [f"r{n}" for n in range(4)]


def test_429_and_529_are_retried_without_listing(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.faults.add(
        "/v1/messages/batches", method="POST", status=429, headers={"retry-after": "0.05"}
    )
    fake.faults.add("/v1/messages/batches", method="POST", status=529)
    with _job(fake, tmp_path) as job:
        sleeps: list[float] = []
        job._driver = SyncDriver(job._job.api(), sleep=lambda s: sleeps.append(s))
        assert job.submit() == 2
    assert _lists(fake) == 0
    assert creates(fake) == 4
    assert sleeps[0] == pytest.approx(0.05)  # the server's retry-after
    assert len(held_custom_ids(fake)) == 4


def test_a_refused_batch_stops_the_run_and_can_be_resumed(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.faults.add("/v1/messages/batches", method="POST", status=400)
    with _job(fake, tmp_path) as job:
        with pytest.raises(BatchAPIError, match="HTTP 400 invalid_request_error") as caught:
            job.submit()
        assert caught.value.status_code == 400
        record = journal(job).records()[0]
        assert record.state == "pending" and "HTTP 400" in (record.error or "")
        assert job.submit() == 2  # the fault is gone: carry on
    assert len(held_custom_ids(fake)) == 4


def test_unreachable_api_sends_nothing_twice(fake: FakeAnthropic, tmp_path: Path) -> None:
    # Nothing listens there: a connect error means nothing was sent, so no listing either.
    router = LiveRouter(fake_registry(fake))
    with (
        socket_closed_port() as port,
        _job(fake, tmp_path, base_url=f"http://127.0.0.1:{port}", router=router) as job,
    ):
        sleeps: list[float] = []
        job._driver = SyncDriver(job._job.api(), sleep=sleeps.append)
        with pytest.raises(BatchAPIError, match="ConnectError"):
            job.submit()
        assert journal(job).records()[0].state == "pending"
    assert len(sleeps) == 7  # eight attempts in all, backing off between them
    assert sleeps[0] < sleeps[1] < sleeps[2] and max(sleeps) <= 8.0


def fake_registry(fake: FakeAnthropic) -> Registry:
    return Registry.from_models(fake.models())


def socket_closed_port() -> _ClosedPort:
    return _ClosedPort()


class _ClosedPort:
    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        return None


def test_same_sized_strangers_are_told_apart_by_their_results(
    fake: FakeAnthropic, tmp_path: Path
) -> None:
    with _job(fake, tmp_path) as job:
        first = journal(job).records()[0]
        # Another client of the workspace creates a batch of the same size meanwhile...
        stranger = _create_foreign_batch(fake, ["x1", "x2"])
        ours = _post_body_by_hand(fake, job, first)
        # ...and once both have ended, their results say which one is this chunk.
        with BatchJob.open(tmp_path / "s", **job_options(fake)) as resumed:
            resumed.submit()
            adopted = journal(resumed).records()[0].batch_id
    assert adopted == ours != stranger
    assert creates(fake) == 3


def test_undecidable_candidates_stop_the_run(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.batches.configure(processing_s=60)  # nothing ends: results can't decide
    with _job(fake, tmp_path) as job:
        first = journal(job).records()[0]
        _create_foreign_batch(fake, ["x1", "x2"])
        _post_body_by_hand(fake, job, first)
        with pytest.raises(BatchStateError, match="won't guess"):
            job.submit()
    assert creates(fake) == 2  # the chunk was not sent a second time


def _create_foreign_batch(fake: FakeAnthropic, ids: list[str]) -> str:
    answer = httpx2.post(
        f"{fake.url}/v1/messages/batches",
        json={"requests": [item(i) for i in ids]},
        headers=fake.headers(),
    )
    answer.raise_for_status()
    batch_id: str = answer.json()["id"]
    return batch_id


def test_listing_pages_back_to_the_first_attempt(fake: FakeAnthropic, tmp_path: Path) -> None:
    with _job(fake, tmp_path, count=2, per_batch=2) as job:
        record = journal(job).records()[0]
        ours = _post_body_by_hand(fake, job, record)
        with httpx2.Client(base_url=fake.url, headers=fake.headers()) as http:
            for n in range(101):  # newer batches of other sizes push ours to the next page
                http.post("/v1/messages/batches", json={"requests": [item(f"y{n}")]})
        job.submit()
        assert journal(job).records()[0].batch_id == ours
    assert _lists(fake) == 2  # 100 per page


def test_an_interrupted_planning_is_planned_again(fake: FakeAnthropic, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [item(f"r{n}") for n in range(10)])

    class Interrupted(LiveRouter):
        calls = 0

        def report(self, decision: Decision) -> None:  # once per routed line
            Interrupted.calls += 1
            if Interrupted.calls == 6:
                raise KeyboardInterrupt
            super().report(decision)

    with pytest.raises(KeyboardInterrupt):
        BatchJob.create(
            tmp_path / "in.jsonl", tmp_path / "s", router=Interrupted(), **job_options(fake)
        )
    assert not (tmp_path / "s" / "rounds" / "1").exists()
    assert not (tmp_path / "s" / "rounds" / "1.tmp").exists()
    # A crash between renaming the round and committing it leaves an orphan directory.
    (tmp_path / "s" / "rounds" / "1").mkdir(parents=True)
    (tmp_path / "s" / "rounds" / "1" / "chunk-000001.json").write_text("{}")
    with BatchJob.create(tmp_path / "in.jsonl", tmp_path / "s", **job_options(fake)) as job:
        assert job.planned_now and job.plan.requests == 10
        assert job.submit() == 1
    assert sorted(sent_custom_ids(fake)) == sorted(f"r{n}" for n in range(10))


# -- the pure decisions ------------------------------------------------------------------------


def _batch(batch_id: str, created: str, processing: int = 0, **counts: int) -> dict[str, object]:
    return {
        "id": batch_id,
        "created_at": created,
        "request_counts": {"processing": processing, **counts},
    }


def test_match_listing() -> None:
    since = parse_time("2026-11-02T10:00:00Z")
    assert since is not None
    page = [
        _batch("b5", "2026-11-02T10:09:00Z", 3),  # right size
        _batch("b4", "2026-11-02T10:08:00.5Z", 2),  # wrong size
        _batch("b3", "2026-11-02T10:07:00Z", succeeded=2, errored=1),  # ended, right size
        _batch("b2", "2026-11-02T10:06:00Z", 3),  # ours already
        "not a batch",
        _batch("b1", "2026-11-02T09:59:59Z", 3),  # before the window: stop here
        _batch("b0", "2026-11-02T09:00:00Z", 3),
    ]
    found, older = match_listing(page, requests=3, since=since, claimed=["b2"])
    assert [b["id"] for b in found] == ["b5", "b3"]
    assert older
    found, older = match_listing(page[:3], requests=3, since=since, claimed=[])
    assert [b["id"] for b in found] == ["b5", "b3"] and not older


def test_maybe_created() -> None:
    assert maybe_created(Answer(None, error="ReadTimeout", sent=True))
    assert not maybe_created(Answer(None, error="ConnectError", sent=False))
    for status in (500, 502, 503, 504):
        assert maybe_created(Answer(status))
    for status in (400, 401, 404, 408, 413, 429, 529):
        assert not maybe_created(Answer(status))


def test_next_poll_interval() -> None:
    timing = Timing(poll_interval=2.0, max_poll_interval=5.0)
    assert next_poll_interval(2.0, False, timing) == 3.0
    assert next_poll_interval(4.0, False, timing) == 5.0
    assert next_poll_interval(5.0, False, timing) == 5.0
    assert next_poll_interval(5.0, True, timing) == 2.0
    with pytest.raises(ValueError):
        Timing(poll_interval=5.0, max_poll_interval=1.0)


def test_parse_time_and_counts() -> None:
    assert parse_time("2026-11-02T10:00:00Z") == parse_time("2026-11-02T10:00:00+00:00")
    assert parse_time("yesterday") is None and parse_time(None) is None
    counts = BatchCounts.from_api({"processing": 1, "succeeded": 2, "errored": True, "x": 9})
    assert (counts.total, counts.done) == (3, 2)
    assert (counts + counts).succeeded == 4
    assert BatchCounts.from_api(None) == BatchCounts()


def test_api_key_is_not_in_reprs(fake: FakeAnthropic, tmp_path: Path) -> None:
    with _job(fake, tmp_path) as job:
        assert API_KEY not in repr(job._job.api())
        assert API_KEY not in repr(job)
        assert API_KEY not in repr(job._job.settings)  # what open/create were given
