"""Big offline workloads: a JSONL file of requests → Message Batches → merged results.

`BatchJob` (blocking) and `AsyncBatchJob` (asyncio/trio) are two drivers of the same
steps, each written once below as a generator of actions (see `caproute._batch.api`):

* **create**: check every line, route every request (``batch`` capability included),
  cut API-sized chunks, all into a state directory (`caproute._batch.plan`); the plan
  is known, and summarised, before anything is sent;
* **submit**: send each chunk as one batch, recording every step durably, so a run
  killed at any point and started again submits nothing twice and loses nothing;
* **status / wait**: poll each batch, backing off while nothing changes and honouring
  ``retry-after``;
* **write_results**: stream every batch's results to disk and merge them with the
  locally refused lines: one line per input ``custom_id``, each with its decision;
* **retry_errored**: re-route and resubmit the requests that came back ``errored`` or
  ``expired``; **cancel**.

Crash safety of a submission (the one step that can't simply be repeated): before each
``POST /v1/messages/batches`` the chunk's journal record is durably set to
``submitting`` with the attempt's time; after the answer, to ``submitted`` with the
batch id. A record found in ``submitting`` means the process died (or the answer was
lost) somewhere between the two, and the batch may or may not exist. The API has no
idempotency key and a batch carries no caller metadata, so the job looks for it:
it lists batches (newest first, cursor-paged) back to the first attempt's time minus
a clock-skew margin, and keeps those not already recorded for this job whose total
``request_counts`` equal the chunk's size. One match is adopted; none means the
attempt never created a batch, so the chunk is sent again; several (another client
created a batch of the same size in those minutes) are told apart by their results
once ended (their ``custom_id`` must be this chunk's), else the job stops and says so
rather than guess. Before listing it waits until ``reconcile_grace`` seconds have
passed since the attempt, so a request still being processed by the API has landed.
docs/batches.md explains the trade-offs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Generic, Literal, TypeVar

from .._exceptions import ConfigError
from .._registry.fetch import retry_wait, should_retry
from .._runtime.live import LiveRouter, PolicyInput
from .api import (
    BATCHES_PATH,
    DEFAULT_API_VERSION,
    Answer,
    ApiSettings,
    AsyncDriver,
    BatchAPIError,
    Call,
    Download,
    Flow,
    Local,
    SyncDriver,
    Wait,
    api_settings,
    resolve_base_url,
)
from .plan import (
    BatchLimits,
    BatchPlan,
    RouterLink,
    RoutingSettings,
    plan_first_round,
    plan_retry_round,
)
from .store import BatchStateError, ChunkRecord, StateDir, private_dir

__all__ = [
    "AsyncBatchJob",
    "BatchCounts",
    "BatchJob",
    "BatchProgress",
    "BatchResults",
    "BatchStatus",
]

logger = logging.getLogger("caproute.batch")

EventHook = Callable[[str], object]
"""Receives a one-line message for each notable step (submitted, adopted, retried...)."""
ProgressHook = Callable[["BatchStatus"], object]
"""Receives the status after every poll."""

_LIST_PAGE: Final = "100"
_MAX_LIST_PAGES: Final = 1000
_COUNT_KEYS: Final = ("processing", "succeeded", "errored", "canceled", "expired")


@dataclass(frozen=True)
class _Timing:
    poll_interval: float = 10.0
    max_poll_interval: float = 300.0
    reconcile_grace: float = 60.0
    clock_skew: float = 300.0
    max_attempts: int = 8

    def __post_init__(self) -> None:
        if self.poll_interval <= 0 or self.max_poll_interval < self.poll_interval:
            raise ValueError("need 0 < poll_interval <= max_poll_interval")
        if self.reconcile_grace < 0 or self.clock_skew < 0:
            raise ValueError("reconcile_grace and clock_skew must not be negative")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


# -- public results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchCounts:
    """A batch's ``request_counts`` (or a sum of several)."""

    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        """All requests counted."""
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired

    @property
    def done(self) -> int:
        """Requests no longer processing."""
        return self.total - self.processing

    def __add__(self, other: BatchCounts) -> BatchCounts:
        return BatchCounts(
            *(getattr(self, k) + getattr(other, k) for k in _COUNT_KEYS)  # same field order
        )

    @classmethod
    def from_api(cls, counts: Any) -> BatchCounts:
        """From a ``request_counts`` object (missing or odd values count as 0)."""
        if not isinstance(counts, Mapping):
            return cls()
        return cls(*(_int(counts.get(k)) for k in _COUNT_KEYS))

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {k: getattr(self, k) for k in _COUNT_KEYS}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class BatchProgress:
    """One chunk of the job: where its submission is and, once submitted, its batch."""

    round: int
    chunk: int
    requests: int
    first_line: int
    last_line: int
    submission: Literal["pending", "interrupted", "submitted"]
    """``interrupted``: an attempt was made but its outcome is not known yet (a
    resumed ``submit`` finds out)."""
    batch_id: str | None = None
    processing_status: str | None = None
    """The API's ``in_progress`` / ``canceling`` / ``ended`` (None when not submitted)."""
    counts: BatchCounts = field(default_factory=BatchCounts)

    @property
    def ended(self) -> bool:
        """The batch exists and has ended."""
        return self.processing_status == "ended"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "round": self.round,
            "chunk": self.chunk,
            "requests": self.requests,
            "lines": [self.first_line, self.last_line],
            "submission": self.submission,
            "batch_id": self.batch_id,
            "processing_status": self.processing_status,
            "request_counts": self.counts.to_dict(),
        }


@dataclass(frozen=True)
class BatchStatus:
    """Where the whole job stands."""

    batches: tuple[BatchProgress, ...]
    refused: int
    """Requests refused locally (in their latest round)."""
    canceled: bool
    """The job was canceled: chunks not yet submitted never will be."""

    @property
    def counts(self) -> BatchCounts:
        """The sum over every submitted batch (a retried request counts in each round)."""
        total = BatchCounts()
        for batch in self.batches:
            total += batch.counts
        return total

    @property
    def unsubmitted(self) -> int:
        """Chunks not (known to be) submitted."""
        return sum(1 for b in self.batches if b.submission != "submitted")

    @property
    def ended(self) -> bool:
        """Nothing more will happen: every batch ended and nothing is left to submit."""
        submitted_ended = all(b.ended for b in self.batches if b.submission == "submitted")
        return submitted_ended and (self.canceled or self.unsubmitted == 0)

    def summary(self) -> str:
        """One line: ``3/5 batches ended; succeeded 4,200, errored 12, …``."""
        submitted = [b for b in self.batches if b.submission == "submitted"]
        ended = sum(1 for b in submitted if b.ended)
        c = self.counts
        text = (
            f"{ended}/{len(self.batches)} batches ended; processing {c.processing:,}, "
            f"succeeded {c.succeeded:,}, errored {c.errored:,}, expired {c.expired:,}, "
            f"canceled {c.canceled:,}; refused locally {self.refused:,}"
        )
        if self.unsubmitted:
            text += f"; {self.unsubmitted} not submitted"
        if self.canceled:
            text += " (job canceled)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``caproute batch status --json``)."""
        return {
            "ended": self.ended,
            "canceled": self.canceled,
            "refused": self.refused,
            "unsubmitted": self.unsubmitted,
            "request_counts": self.counts.to_dict(),
            "batches": [b.to_dict() for b in self.batches],
        }


@dataclass(frozen=True)
class BatchResults:
    """What `write_results` wrote."""

    path: Path
    lines: int
    """One per input ``custom_id``."""
    counts: Mapping[str, int]
    """Lines per ``result.type``: succeeded, errored, expired, canceled, refused (and
    ``missing`` should the API ever leave a request out of a batch's results)."""

    def summary(self) -> str:
        """One line for people."""
        parts = ", ".join(f"{k} {n:,}" for k, n in sorted(self.counts.items()))
        return f"wrote {self.lines:,} results to {self.path}: {parts}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``caproute batch results --json``)."""
        return {"path": str(self.path), "lines": self.lines, "counts": dict(self.counts)}


# -- pure decisions ------------------------------------------------------------------------


def parse_time(text: Any) -> float | None:
    """An RFC 3339 timestamp (``2026-11-02T10:00:00.123Z``) as Unix time, or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def match_listing(
    batches: Iterable[Any], *, requests: int, since: float, claimed: Iterable[str]
) -> tuple[list[dict[str, Any]], bool]:
    """Which listed batches could hold a chunk whose submission was interrupted.

    Args:
        batches: One page of ``GET /v1/messages/batches`` (newest first).
        requests: The chunk's size: a candidate's ``request_counts`` must add up to it.
        since: Unix time before which no attempt was made (clock skew included).
        claimed: Batch ids the job already knows (they hold other chunks).

    Returns:
        The candidates on this page, and whether the page reached batches older than
        `since` (no later page can hold a candidate then).
    """
    taken = set(claimed)
    found: list[dict[str, Any]] = []
    for batch in batches:
        if not isinstance(batch, dict):
            continue
        created = parse_time(batch.get("created_at"))
        if created is not None and created < since:
            return found, True
        if batch.get("id") in taken:
            continue
        if BatchCounts.from_api(batch.get("request_counts")).total == requests:
            found.append(batch)
    return found, False


def maybe_created(answer: Answer) -> bool:
    """Whether a failed create may still have made a batch (so reconcile before resending).

    No answer after the request went out, or a 5xx other than 529 (a gateway timeout,
    an internal error after the work was done): maybe. A connect failure, 529
    (overloaded: refused up front) and 4xx: no.
    """
    if answer.status is None:
        return answer.sent
    return answer.status >= 500 and answer.status != 529


def next_poll_interval(current: float, changed: bool, timing: _Timing) -> float:
    """Back off by half again while nothing changes; start over when something did."""
    if changed:
        return timing.poll_interval
    return min(current * 1.5, timing.max_poll_interval)


# -- the steps, as flows ---------------------------------------------------------------------


class _Job:
    """One job's state directory, database and settings, and every step as a flow.

    Shared by `BatchJob` and `AsyncBatchJob`, which only drive the flows.
    """

    def __init__(
        self,
        store: StateDir,
        job: dict[str, Any],
        *,
        api: Callable[[], ApiSettings],
        options: _Options,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.conn = store.connect()
        self.job = job
        self.api = api
        self.options = options
        """Held in memory only (it may carry the key); never written."""
        self.timing = options.timing
        self.on_event = options.on_event
        self.clock = clock

    # -- small helpers -----------------------------------------------------------------------

    def event(self, message: str) -> None:
        logger.info("caproute batch: %s", message)
        if self.on_event is not None:
            self.on_event(message)

    @property
    def routing(self) -> RoutingSettings:
        limits = self.job["limits"]
        return RoutingSettings(
            api_version=self.job["api_version"],
            betas=tuple(self.job["betas"]),
            limits=BatchLimits(limits["max_requests"], limits["max_bytes"]),
            headers=tuple(self.job.get("headers", {}).items()),  # absent in older jobs
            allow_unknown=self.job.get("allow_unknown", False),
        )

    def plans(self) -> list[BatchPlan]:
        rows = self.conn.execute("SELECT summary FROM rounds ORDER BY round")
        return [BatchPlan.from_dict(json.loads(row[0])) for row in rows]

    def refused_count(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM items i JOIN routes r "
            "ON r.custom_id = i.custom_id AND r.round = i.latest_round WHERE r.chunk IS NULL"
        ).fetchone()
        return int(row[0])

    def _retried(self, call: Call, what: str) -> Flow[Answer]:
        """Send an idempotent call, retrying what the API says is worth retrying."""
        for attempt in range(self.timing.max_attempts):
            answer: Answer = yield call
            if answer.ok:
                return answer
            retryable = answer.status is None or should_retry(answer.status, answer.headers)
            if not retryable or attempt + 1 == self.timing.max_attempts:
                raise answer.to_error(what)
            yield Wait(
                retry_wait(attempt, answer.headers, now=self.clock(), jitter=random.random())
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_batch(self, batch_id: str, what: str) -> Flow[dict[str, Any]]:
        answer = yield from self._retried(Call("GET", f"{BATCHES_PATH}/{batch_id}"), what)
        data = answer.json()
        if not isinstance(data, dict):
            raise BatchAPIError(f"{what}: the API answered with something that is not a batch")
        return data

    # -- submit ------------------------------------------------------------------------------

    def submit(self) -> Flow[int]:
        """Submit every chunk not submitted yet, in order; returns how many were."""
        sent = 0
        for record in self.store.records():
            if record.state == "submitted":
                continue
            if self.store.canceled:
                self.event("the job is canceled: nothing more is submitted")
                break
            record = yield from self._submit_chunk(record)
            sent += record.state == "submitted"
        return sent

    def _submit_chunk(self, record: ChunkRecord) -> Flow[ChunkRecord]:
        failures = 0
        where = f"{record.name} (lines {record.first_line}-{record.last_line})"
        while True:
            if record.state == "submitting":
                found = yield from self._find_batch(record)
                if found is not None:
                    self.event(f"{where}: the interrupted submission created {found['id']}")
                    return self.store.record_submitted(record, found, "adopted")
                self.event(f"{where}: the interrupted submission created no batch")
            if self.store.canceled:
                return record
            record = self.store.record_attempt(record, self.clock())
            answer: Answer = yield Call(
                "POST",
                BATCHES_PATH,
                body_file=self.store.body_path(record.round, record.chunk),
                upload=True,
            )
            if answer.ok:
                batch = answer.json()
                if not isinstance(batch, dict) or not isinstance(batch.get("id"), str):
                    raise BatchAPIError(f"submitting {where}: the answer holds no batch id")
                record = self.store.record_submitted(record, batch, "created")
                self.event(f"{where}: submitted as {record.batch_id}")
                return record
            failures += 1
            error = answer.to_error(f"submitting {where}")
            if not maybe_created(answer):
                record = self.store.record_not_sent(record, str(error))
            retryable = answer.status is None or should_retry(answer.status, answer.headers)
            if not retryable or failures >= self.timing.max_attempts:
                raise error
            self.event(f"{error}; trying again")
            jitter = random.random()
            yield Wait(retry_wait(failures - 1, answer.headers, now=self.clock(), jitter=jitter))

    def _find_batch(self, record: ChunkRecord) -> Flow[dict[str, Any] | None]:
        """The batch an interrupted submission of `record` created, if any (module doc)."""
        wait = max(record.attempts) + self.timing.reconcile_grace - self.clock()
        if wait > 0:
            self.event(f"{record.name}: waiting {wait:.0f}s before checking what the API holds")
            yield Wait(wait)
        since = min(record.attempts) - self.timing.clock_skew
        claimed = {r.batch_id for r in self.store.records() if r.batch_id is not None}
        candidates: list[dict[str, Any]] = []
        params = {"limit": _LIST_PAGE}
        for _ in range(_MAX_LIST_PAGES):
            answer = yield from self._retried(
                Call("GET", BATCHES_PATH, params=params), "listing batches"
            )
            page = answer.json()
            data = page.get("data") if isinstance(page, dict) else None
            found, older = match_listing(
                data if isinstance(data, list) else [],
                requests=record.requests,
                since=since,
                claimed=claimed,
            )
            candidates += found
            last = page.get("last_id") if isinstance(page, dict) else None
            if older or not page.get("has_more") or not isinstance(last, str):
                break
            params = {"limit": _LIST_PAGE, "after_id": last}
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        return (yield from self._tell_apart(record, candidates))

    def _tell_apart(
        self, record: ChunkRecord, candidates: list[dict[str, Any]]
    ) -> Flow[dict[str, Any] | None]:
        """Several batches could be this chunk's: an ended one's results say whose it is."""
        ours = []
        undecided = []
        for batch in candidates:
            batch = yield from self._get_batch(batch["id"], f"checking {batch['id']}")
            url = batch.get("results_url")
            if batch.get("processing_status") != "ended" or not isinstance(url, str):
                undecided.append(batch["id"])
                continue
            first = yield from self._first_result_id(url)
            if first is not None and self._holds(record, first):
                ours.append(batch)
        if len(ours) == 1:
            return ours[0]
        ids = ", ".join(b["id"] for b in candidates)
        raise BatchStateError(
            f"{record.name}: an interrupted submission may have created one of {ids} "
            "(same size, created in the same minutes); caproute won't guess. Run again once "
            "they have ended (their results show which holds this chunk), or cancel the ones "
            "that are not this job's."
        )

    def _first_result_id(self, url: str) -> Flow[str | None]:
        path = self.store.downloads_dir / "probe.jsonl"
        private_dir(path.parent)
        answer: Answer = yield Download(url, path)
        if not answer.ok:
            raise answer.to_error("reading a candidate batch's results")
        try:
            with path.open("rb") as stream:
                first = stream.readline()
        finally:
            path.unlink(missing_ok=True)
        try:
            custom_id = json.loads(first).get("custom_id")
        except (ValueError, AttributeError):
            return None
        return custom_id if isinstance(custom_id, str) else None

    def _holds(self, record: ChunkRecord, custom_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM routes WHERE custom_id = ? AND round = ? AND chunk = ?",
            (custom_id, record.round, record.chunk),
        ).fetchone()
        return row is not None

    # -- status ------------------------------------------------------------------------------

    def poll(self, *, wait: bool, on_progress: ProgressHook | None) -> Flow[BatchStatus]:
        """Check every submitted batch; with `wait`, until all have ended."""
        known_ended: dict[str, dict[str, Any]] = {}
        interval = self.timing.poll_interval
        previous: BatchCounts | None = None
        refused = self.refused_count()
        while True:
            progress = []
            for record in self.store.records():
                batch = None
                if record.batch_id is not None:
                    batch = known_ended.get(record.batch_id)
                    if batch is None:
                        batch = yield from self._get_batch(
                            record.batch_id, f"checking {record.name} ({record.batch_id})"
                        )
                        if batch.get("processing_status") == "ended":
                            known_ended[record.batch_id] = batch
                progress.append(_progress(record, batch))
            status = BatchStatus(tuple(progress), refused, self.store.canceled)
            if on_progress is not None:
                on_progress(status)
            if not wait or status.ended:
                return status
            if status.unsubmitted and not status.canceled:
                raise BatchStateError(
                    f"{self.store.path}: {status.unsubmitted} chunk(s) are not submitted yet; "
                    "run submit again first"
                )
            counts = status.counts
            interval = next_poll_interval(interval, counts != previous, self.timing)
            previous = counts
            yield Wait(interval)

    # -- results -----------------------------------------------------------------------------

    def download(self) -> Flow[None]:
        """Fetch and index the results of every ended batch not indexed yet.

        Raises:
            BatchStateError: A chunk is not submitted, or a batch has not ended.
        """
        records = self.store.records()
        unsent = [r for r in records if r.state != "submitted"]
        if unsent and not self.store.canceled:
            raise BatchStateError(
                f"{self.store.path}: {len(unsent)} chunk(s) are not submitted yet; "
                "run submit again first"
            )
        done = {(row[0], row[1]) for row in self.conn.execute("SELECT round, chunk FROM downloads")}
        running = []
        for record in records:
            if record.batch_id is None or (record.round, record.chunk) in done:
                continue
            batch = yield from self._get_batch(record.batch_id, f"checking {record.name}")
            url = batch.get("results_url")
            if batch.get("processing_status") != "ended":
                running.append(record.batch_id)
                continue
            if not isinstance(url, str):
                raise BatchAPIError(f"{record.batch_id} has ended but has no results_url")
            path = yield from self._download(url, record)
            unknown = yield Local(functools.partial(self._index_results, record, path))
            if unknown:
                self.event(f"{record.batch_id}: ignored {unknown} result line(s) not of this chunk")
        if running:
            raise BatchStateError(
                f"{len(running)} batch(es) have not ended yet ({', '.join(running[:3])}"
                f"{', …' if len(running) > 3 else ''}); wait for them first"
            )

    def _download(self, url: str, record: ChunkRecord) -> Flow[Path]:
        """Stream one batch's results to a file, retrying what is worth retrying."""
        private_dir(self.store.downloads_dir)
        path = self.store.downloads_dir / f"{record.name}.jsonl"
        what = f"downloading the results of {record.batch_id}"
        for attempt in range(self.timing.max_attempts):
            answer: Answer = yield Download(url, path)
            if answer.ok:
                return path
            retryable = answer.status is None or should_retry(answer.status, answer.headers)
            if not retryable or attempt + 1 == self.timing.max_attempts:
                break
            yield Wait(
                retry_wait(attempt, answer.headers, now=self.clock(), jitter=random.random())
            )
        raise answer.to_error(what)

    def _index_results(self, record: ChunkRecord, path: Path) -> int:
        """Store one batch's results (one transaction, so a crash leaves nothing half-done)."""
        conn = self.conn
        unknown = 0
        conn.execute("BEGIN")
        try:
            with path.open("rb") as stream:
                for raw in stream:
                    if not raw.strip():
                        continue
                    line = json.loads(raw)
                    custom_id = line.get("custom_id") if isinstance(line, dict) else None
                    result = line.get("result") if isinstance(line, dict) else None
                    if not isinstance(custom_id, str) or not isinstance(result, dict):
                        unknown += 1
                        continue
                    if not self._holds(record, custom_id):
                        unknown += 1
                        continue
                    kind = result.get("type")
                    conn.execute(
                        "INSERT OR REPLACE INTO results(custom_id, round, type, body) "
                        "VALUES (?, ?, ?, ?)",
                        (custom_id, record.round, str(kind), _dumps(result)),
                    )
            conn.execute(
                "INSERT OR REPLACE INTO downloads(round, chunk, batch_id) VALUES (?, ?, ?)",
                (record.round, record.chunk, record.batch_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        path.unlink(missing_ok=True)
        return unknown

    def check_output(self, out: Path) -> None:
        """Refuse a results path that would overwrite the job's own files."""
        target = out.resolve()
        source = Path(self.job["input"]["path"])
        if target == source.resolve() or (
            target.exists() and source.exists() and os.path.samefile(target, source)
        ):
            raise ConfigError(
                f"{out}: that is the job's input file, which retries read their requests "
                "from; write the results to another file"
            )
        if target.is_relative_to(self.store.path.resolve()):
            raise ConfigError(
                f"{out}: that is inside the job's state directory {self.store.path}; "
                "write the results to a file outside it"
            )

    def write_results(self, out: Path) -> BatchResults:
        """Merge everything into `out` (written beside it, then renamed into place)."""
        batch_ids = {(r.round, r.chunk): r.batch_id for r in self.store.records()}
        counts: dict[str, int] = {}
        lines = 0
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        rows = self.conn.execute(
            "SELECT i.custom_id, i.line, r.round, r.chunk, r.decision, res.type, res.body "
            "FROM items i "
            "JOIN routes r ON r.custom_id = i.custom_id AND r.round = i.latest_round "
            "LEFT JOIN results res ON res.custom_id = i.custom_id AND res.round = i.latest_round "
            "ORDER BY i.line"
        )
        try:
            with tmp.open("w", encoding="utf-8") as stream:
                for custom_id, line, round_no, chunk, decision, kind, body in rows:
                    batch_id = batch_ids.get((round_no, chunk)) if chunk is not None else None
                    kind, body = _result_of(chunk, batch_id, decision, kind, body)
                    counts[kind] = counts.get(kind, 0) + 1
                    lines += 1
                    stream.write(
                        f'{{"custom_id":{_dumps(custom_id)},"result":{body},'
                        f'"caproute":{{"line":{line},"round":{round_no},'
                        f'"batch_id":{_dumps(batch_id)},"decision":{decision}}}}}\n'
                    )
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return BatchResults(out, lines, counts)

    def results(self, out: Path) -> Flow[BatchResults]:
        self.check_output(out)
        yield from self.download()
        report: BatchResults = yield Local(lambda: self.write_results(out))
        return report

    # -- retry -------------------------------------------------------------------------------

    def retry(self, router: LiveRouter, *, from_worker: bool = False) -> Flow[BatchPlan | None]:
        """Re-route and resubmit every request whose latest result is errored or expired,
        planned with what the errored ones teach (`caproute._batch.plan.lesson`).

        `from_worker`: the planning runs in an async driver's worker thread.
        """
        if self.store.canceled:
            raise BatchStateError(f"{self.store.path}: the job is canceled; nothing is retried")
        yield from self.download()
        round_no = max(self.store.committed_rounds(self.conn)) + 1
        source = Path(self.job["input"]["path"])
        link = RouterLink(router, from_worker=from_worker)
        plan: BatchPlan | None = yield Local(lambda: self._plan_retry(link, source, round_no))
        if plan is None:
            self.event("nothing to retry: no request came back errored or expired")
            return None
        self.event(
            f"retry round {round_no}: {plan.sent_requests:,} requests in {plan.chunks} batch(es)"
        )
        yield from self.submit()
        return plan

    def _plan_retry(self, link: RouterLink, source: Path, round_no: int) -> BatchPlan | None:
        check_input(source, self.job)
        return plan_retry_round(self.store, self.conn, link, source, round_no, self.routing)

    # -- cancel ------------------------------------------------------------------------------

    def cancel(self) -> Flow[BatchStatus]:
        """Cancel every batch not ended yet; no chunk is submitted from now on.

        The caller holds the directory lock (so a running submit has stopped).
        """
        for record in self.store.records():
            if record.state == "submitting":
                found = yield from self._find_batch(record)
                if found is not None:
                    self.store.record_submitted(record, found, "adopted")
                else:
                    self.store.record_not_sent(record, "canceled before it was sent")
        for record in self.store.records():
            if record.batch_id is None:
                continue
            batch = yield from self._get_batch(record.batch_id, f"checking {record.name}")
            if batch.get("processing_status") != "in_progress":
                continue
            yield from self._retried(
                Call("POST", f"{BATCHES_PATH}/{record.batch_id}/cancel"),
                f"canceling {record.batch_id}",
            )
            self.event(f"{record.name}: canceling {record.batch_id}")
        return (yield from self.poll(wait=False, on_progress=None))

    def close(self) -> None:
        self.conn.close()


def _progress(record: ChunkRecord, batch: dict[str, Any] | None) -> BatchProgress:
    submission: Literal["pending", "interrupted", "submitted"] = (
        "submitted"
        if record.state == "submitted"
        else "interrupted"
        if record.state == "submitting"
        else "pending"
    )
    status = batch.get("processing_status") if batch is not None else None
    return BatchProgress(
        round=record.round,
        chunk=record.chunk,
        requests=record.requests,
        first_line=record.first_line,
        last_line=record.last_line,
        submission=submission,
        batch_id=record.batch_id,
        processing_status=status if isinstance(status, str) else None,
        counts=BatchCounts.from_api(batch.get("request_counts")) if batch else BatchCounts(),
    )


def _result_of(
    chunk: int | None, batch_id: str | None, decision: str, kind: str | None, body: str | None
) -> tuple[str, str]:
    """The ``result`` of one output line: the API's, or caproute's own."""
    if chunk is None:
        reason = json.loads(decision).get("reason") or "refused by caproute"
        return "refused", _dumps({"type": "refused", "reason": reason})
    if body is not None and kind is not None:
        return kind, body
    if batch_id is None:  # the job was canceled before this chunk was sent
        return "canceled", '{"type":"canceled"}'
    reason = f"the results of {batch_id} have no line for this custom_id"
    return "missing", _dumps({"type": "missing", "reason": reason})


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- opening a job (blocking; the async API runs these in a worker thread) -----------------


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


_CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "cookie"}
)


def routing_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers a job routes with: names lower-cased, no credentials (they would be
    written to ``job.json``).

    Raises:
        ConfigError: A credential header, or a name or value that is not a string.
    """
    result: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError(f"headers: expected strings, got {name!r}: {value!r}")
        if name.lower() in _CREDENTIAL_HEADERS:
            raise ConfigError(
                f"headers: {name!r} carries a credential, which a job never records; "
                "give credentials as api_key / auth_token or in ANTHROPIC_API_KEY"
            )
        result[name.lower()] = value
    return result


def check_input(path: Path, job: Mapping[str, Any]) -> None:
    """Make sure `path` is the very file the job was planned from.

    Raises:
        BatchStateError: It is missing or its content changed.
    """
    recorded = job["input"]
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BatchStateError(f"{path}: the job's input file can't be read: {exc}") from exc
    if size != recorded["size"] or file_sha256(path) != recorded["sha256"]:
        raise BatchStateError(
            f"{path} changed since the job was planned (sha256 {recorded['sha256'][:12]}…); "
            "a job's input must stay as it was"
        )


def _default_router(
    router: LiveRouter | None,
    policy: PolicyInput,
    *,
    base_url: str,
    api_key: str | None,
    auth_token: str | None,
    api_version: str,
    betas: Sequence[str],
) -> tuple[LiveRouter, bool]:
    """`router`, or a new one on the freshest registry there is; True if it is ours."""
    if router is not None:
        if policy is not None:
            raise TypeError("pass either `router` or `policy`, not both")
        return router, False
    env = os.environ
    if api_key or auth_token or env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN"):
        from .._registry.fetch import RegistryFetcher

        fetcher = RegistryFetcher(
            api_key=api_key,
            auth_token=auth_token,
            base_url=base_url,
            api_version=api_version,
            betas=betas,
            # Retired models too: a line naming one is rerouted now rather than erroring
            # hours later. Not written to the shared user cache, which holds the default list.
            lifecycle=("active", "deprecated", "retired"),
            cache_file=False,
            background=False,
        )
        # A batch waits hours: route it on live data, not on a snapshot, when possible.
        try:
            fetcher.refresh()
        except Exception as exc:  # offline: the snapshot still routes, and says so
            logger.warning("caproute batch: live registry fetch failed (%s); using a snapshot", exc)
        return LiveRouter(fetcher, policy=policy), True
    return LiveRouter(policy=policy), True


@dataclass(frozen=True)
class _Options:
    """What `create` / `open` were asked for, minus what only planning needs."""

    base_url: str | None
    api_key: str | None
    auth_token: str | None
    timing: _Timing
    on_event: EventHook | None


def _open_existing(state: Path, options: _Options) -> _Job:
    store = StateDir(state)
    if not store.exists():
        raise BatchStateError(f"{state}: no batch job here (run submit first)")
    job = store.read_job()
    return _make_job(store, job, options)


def _make_job(store: StateDir, job: dict[str, Any], options: _Options) -> _Job:
    base_url = options.base_url or job["base_url"]

    def api() -> ApiSettings:
        return api_settings(
            base_url=base_url,
            api_key=options.api_key,
            auth_token=options.auth_token,
            api_version=job["api_version"],
            betas=job["betas"],
        )

    opened = _Job(store, job, api=api, options=options)
    if store.make_private():
        opened.event(f"{store.path}: made the job's files readable by their owner only")
    store.discard_unfinished_rounds(opened.conn)
    if 1 not in store.committed_rounds(opened.conn):
        opened.close()
        raise BatchStateError(f"{store.path}: the job's planning never finished; submit again")
    return opened


def _create(
    requests: Path,
    state: Path,
    *,
    router: LiveRouter | None,
    policy: PolicyInput,
    limits: BatchLimits | None,
    api_version: str,
    betas: Sequence[str],
    headers: Mapping[str, str],
    allow_unknown: bool,
    options: _Options,
    from_worker: bool = False,
) -> tuple[_Job, BatchPlan, bool]:
    """Plan a new job in `state`, or reopen the one already there for the same input.

    Returns the job, its first round's plan and whether it was planned just now.
    """
    store = StateDir(state)
    absolute = requests.resolve()
    with store.locked():
        conn = store.connect()
        try:
            store.discard_unfinished_rounds(conn)
            planned = 1 in store.committed_rounds(conn)
        finally:
            conn.close()
        if planned:
            job = store.read_job()
            recorded = Path(job["input"]["path"])
            check_input(requests, job)
            if recorded != absolute:  # the same content, moved: remember where it is now
                job = {**job, "input": {**job["input"], "path": str(absolute)}}
                store.write_job({k: v for k, v in job.items() if k != "format"})
            opened = _make_job(store, job, options)
            # What this call asked for that differs from the plan (a setting left at its
            # default asked for nothing: a plain resume repeats no options).
            asked = {
                "policy": str(Path(policy).resolve()) if isinstance(policy, str | Path) else None,
                "limits": dataclasses.asdict(limits) if limits is not None else None,
                "api_version": api_version if api_version != DEFAULT_API_VERSION else None,
                "betas": list(betas) or None,
                "headers": dict(headers) or None,
                "allow_unknown": allow_unknown or None,
            }
            ignored = [
                key
                for key, value in asked.items()
                if value is not None and value != job.get(key, {} if key == "headers" else None)
            ]
            if ignored:
                opened.event(
                    f"{store.path} was planned earlier with other settings ({', '.join(ignored)}); "
                    "resuming keeps that plan and its settings. To plan with the new ones, "
                    "use a new state directory"
                )
            return opened, opened.plans()[0], False
        limits = limits or BatchLimits()
        base_url = resolve_base_url(options.base_url)
        chosen, owned = _default_router(
            router,
            policy,
            base_url=base_url,
            api_key=options.api_key,
            auth_token=options.auth_token,
            api_version=api_version,
            betas=betas,
        )
        try:
            job = {
                "input": {"path": str(absolute)},
                "base_url": base_url,
                "api_version": api_version,
                "betas": list(betas),
                "headers": dict(headers),
                "allow_unknown": allow_unknown,
                "limits": dataclasses.asdict(limits),
                "policy": str(Path(policy).resolve()) if isinstance(policy, str | Path) else None,
                "created_at": time.time(),
            }
            settings = RoutingSettings(
                api_version, tuple(betas), limits, tuple(headers.items()), allow_unknown
            )
            # Start clean: a crash during an earlier planning may have left a partial index.
            for leftover in store.path.glob(store.db_file.name + "*"):
                leftover.unlink()
            conn = store.connect()
            try:
                link = RouterLink(chosen, from_worker=from_worker)
                plan = plan_first_round(store, conn, link, requests, settings, job)
            finally:
                conn.close()
        finally:
            if owned:
                chosen.close()
        job = store.read_job()
        return _make_job(store, job, options), plan, True


def dry_run_plan(
    requests: Path,
    *,
    router: LiveRouter | None,
    policy: PolicyInput,
    limits: BatchLimits,
    api_version: str,
    betas: Sequence[str],
    headers: Mapping[str, str],
    allow_unknown: bool,
    base_url: str | None,
    api_key: str | None,
    auth_token: str | None,
) -> BatchPlan:
    """Plan into a temporary directory and throw it away: only the summary is kept."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="caproute-batch-") as tmp:
        store = StateDir(Path(tmp))
        chosen, owned = _default_router(
            router,
            policy,
            base_url=resolve_base_url(base_url),
            api_key=api_key,
            auth_token=auth_token,
            api_version=api_version,
            betas=betas,
        )
        conn = store.connect()
        try:
            settings = RoutingSettings(
                api_version, tuple(betas), limits, tuple(headers.items()), allow_unknown
            )
            job = {"input": {"path": str(requests)}}
            return plan_first_round(store, conn, RouterLink(chosen), requests, settings, job)
        finally:
            conn.close()
            if owned:
                chosen.close()


def _retry_router(
    job: _Job, router: LiveRouter | None, policy: PolicyInput
) -> tuple[LiveRouter, bool]:
    """The router a retry round uses: given, else built like `create` builds one (with
    the job's policy file unless another policy is given)."""
    options = job.options
    return _default_router(
        router,
        policy if policy is not None or router is not None else job.job.get("policy"),
        base_url=job.api().base_url,
        api_key=options.api_key,
        auth_token=options.auth_token,
        api_version=job.job["api_version"],
        betas=job.job["betas"],
    )


# -- the public drivers ----------------------------------------------------------------------


def _timing(poll_interval: float, max_poll_interval: float, reconcile_grace: float) -> _Timing:
    return _Timing(
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
        reconcile_grace=reconcile_grace,
    )


DriverT = TypeVar("DriverT", "SyncDriver", "AsyncDriver")


class _JobHandle(Generic[DriverT]):
    """What `BatchJob` and `AsyncBatchJob` share: the job, its plans, where it lives."""

    def __init__(self, job: _Job, plan: BatchPlan, *, planned_now: bool) -> None:
        self._job = job
        self._plan = plan
        self._driver: DriverT | None = None
        self.planned_now = planned_now
        """True when `create` planned the job (False: it reopened an existing one)."""

    @property
    def state_dir(self) -> Path:
        """The job's state directory."""
        return self._job.store.path

    @property
    def plan(self) -> BatchPlan:
        """The first round's plan: what routing did to every request."""
        return self._plan

    @property
    def plans(self) -> list[BatchPlan]:
        """Every round's plan (the submission, then each retry)."""
        return self._job.plans()

    @property
    def canceled(self) -> bool:
        """The job was canceled: nothing more of it is ever submitted."""
        return self._job.store.canceled

    def check_output(self, out: str | os.PathLike[str]) -> None:
        """Refuse a results path that would overwrite the job's own files (its input, or
        anything in its state directory); `write_results` checks the same.

        Raises:
            ConfigError: `out` is one of those.
        """
        self._job.check_output(Path(out))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state_dir}>"


class BatchJob(_JobHandle[SyncDriver]):
    """A batch workload kept in a state directory (blocking API).

    Example::

        job = BatchJob.create("requests.jsonl", "state/")
        print(job.plan.summary())      # what routing did, before anything is sent
        job.submit()                   # safe to run again after a crash
        job.wait()
        job.write_results("results.jsonl")

    Use `create` (plan a new job, or reopen one) or `open` (an existing job); close it
    with `close()` or a ``with`` block.
    """

    @classmethod
    def create(
        cls,
        requests: str | os.PathLike[str],
        state: str | os.PathLike[str],
        *,
        router: LiveRouter | None = None,
        policy: PolicyInput = None,
        limits: BatchLimits | None = None,
        api_version: str = DEFAULT_API_VERSION,
        betas: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        allow_unknown: bool = False,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_token: str | None = None,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        reconcile_grace: float = 60.0,
        on_event: EventHook | None = None,
    ) -> BatchJob:
        """Check and route every line and cut the chunks, or reopen the job in `state`.

        Nothing is sent: read `plan`, then call `submit`.

        Args:
            requests: The JSONL file: one ``{"custom_id", "params"}`` per line.
            state: The job's state directory (created if needed). Running `create`
                again with the same directory and file reopens the job; another file
                is an error.
            router: A shared `LiveRouter` to route with (else one is built from
                `policy`, on live registry data when credentials are configured).
            policy: A `Policy` or policy file (with no `router`).
            limits: Batch size limits (default: the API's).
            api_version: The ``anthropic-version`` the batches are sent with.
            betas: ``anthropic-beta`` values for the batches.
            headers: Request headers for policy routes that match on headers
                (``match.headers``). Used for routing only, never sent; recorded in
                the job for retries. Credential headers are refused.
            allow_unknown: Send requests whose model's support of what they need is
                unknown (the policy's ``allow_unknown_in_batches`` does the same). By
                default they are refused locally: the API would error them only when
                the batch ends. Recorded in the job for retries.
            base_url: Default ``ANTHROPIC_BASE_URL``, else the API; recorded in the job.
            api_key: Default ``ANTHROPIC_API_KEY`` (never written anywhere).
            auth_token: Default ``ANTHROPIC_AUTH_TOKEN``.
            poll_interval: First wait between status checks, in seconds; it grows by
                half while nothing changes, up to `max_poll_interval`.
            max_poll_interval: Longest wait between status checks.
            reconcile_grace: After an interrupted submission, how long (seconds since
                the attempt) to wait before trusting the API's batch list.
            on_event: Called with a line of text for each notable step.

        Raises:
            BatchInputError: Bad lines (all listed with line numbers); nothing recorded.
            BatchStateError: `state` holds a job for another file, or is busy.
        """
        options = _Options(
            base_url,
            api_key,
            auth_token,
            _timing(poll_interval, max_poll_interval, reconcile_grace),
            on_event,
        )
        job, plan, planned = _create(
            Path(requests),
            Path(state),
            router=router,
            policy=policy,
            limits=limits,
            api_version=api_version,
            betas=betas,
            headers=routing_headers(headers),
            allow_unknown=allow_unknown,
            options=options,
        )
        return cls(job, plan, planned_now=planned)

    @classmethod
    def open(
        cls,
        state: str | os.PathLike[str],
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_token: str | None = None,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        reconcile_grace: float = 60.0,
        on_event: EventHook | None = None,
    ) -> BatchJob:
        """The job already planned in `state` (arguments as for `create`).

        Raises:
            BatchStateError: There is no (finished) plan in `state`.
        """
        options = _Options(
            base_url,
            api_key,
            auth_token,
            _timing(poll_interval, max_poll_interval, reconcile_grace),
            on_event,
        )
        job = _open_existing(Path(state), options)
        return cls(job, job.plans()[0], planned_now=False)

    @staticmethod
    def dry_run(
        requests: str | os.PathLike[str],
        *,
        router: LiveRouter | None = None,
        policy: PolicyInput = None,
        limits: BatchLimits | None = None,
        api_version: str = DEFAULT_API_VERSION,
        betas: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        allow_unknown: bool = False,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_token: str | None = None,
    ) -> BatchPlan:
        """Check and route every line and return the plan; nothing is kept or sent.

        Raises:
            BatchInputError: Bad lines (all listed with line numbers).
        """
        return dry_run_plan(
            Path(requests),
            router=router,
            policy=policy,
            limits=limits or BatchLimits(),
            api_version=api_version,
            betas=betas,
            headers=routing_headers(headers),
            allow_unknown=allow_unknown,
            base_url=base_url,
            api_key=api_key,
            auth_token=auth_token,
        )

    # -- acting ------------------------------------------------------------------------------

    def _drive(self) -> SyncDriver:
        if self._driver is None:
            self._driver = SyncDriver(self._job.api())
        return self._driver

    def submit(self) -> int:
        """Submit every chunk not submitted yet; returns how many this call submitted.

        Safe to call again after any crash or interruption (see the module doc).

        Raises:
            BatchAPIError: The API refused a batch (the job can be resumed once fixed).
            BatchStateError: Another process is working on the job, or an interrupted
                submission can't be resolved safely.
        """
        with self._job.store.locked():
            return self._drive().run(self._job.submit())

    def status(self) -> BatchStatus:
        """Check every batch once."""
        return self._drive().run(self._job.poll(wait=False, on_progress=None))

    def wait(self, *, on_progress: ProgressHook | None = None) -> BatchStatus:
        """Poll until every batch has ended, calling `on_progress` after each round.

        Raises:
            BatchStateError: Some chunks are not submitted (call `submit` first).
        """
        return self._drive().run(self._job.poll(wait=True, on_progress=on_progress))

    def write_results(self, out: str | os.PathLike[str]) -> BatchResults:
        """Download what is new and write one line per input ``custom_id`` to `out`.

        Each line is ``{"custom_id", "result", "caproute": {"line", "round",
        "batch_id", "decision"}}``: `result` is the API's (``succeeded``, ``errored``,
        ``expired``, ``canceled``) or, for a request refused locally,
        ``{"type": "refused", "reason": ...}``.

        Raises:
            BatchStateError: A batch has not ended (call `wait` first).
        """
        with self._job.store.locked():
            return self._drive().run(self._job.results(Path(out)))

    def retry_errored(
        self, *, router: LiveRouter | None = None, policy: PolicyInput = None
    ) -> BatchPlan | None:
        """Re-route and resubmit every request whose latest result is errored or expired.

        Routing runs again (on fresh registry data when credentials are configured), so
        a model retired meanwhile is routed around. Returns the new round's plan, or
        `None` when nothing needed retrying. Then `wait` and `write_results` again.
        """
        with self._job.store.locked():
            chosen, owned = _retry_router(self._job, router, policy)
            try:
                return self._drive().run(self._job.retry(chosen))
            finally:
                if owned:
                    chosen.close()

    def cancel(self) -> BatchStatus:
        """Cancel the job: nothing more is submitted, running batches are canceled.

        If another process is submitting, this waits for it to stop (it checks before
        each chunk).
        """
        self._job.store.mark_canceled()
        with self._job.store.locked(wait=True):
            return self._drive().run(self._job.cancel())

    def close(self) -> None:
        """Release the HTTP client and the index."""
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        self._job.close()

    def __enter__(self) -> BatchJob:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncBatchJob(_JobHandle[AsyncDriver]):
    """`BatchJob` for async code: the same steps, awaitable (asyncio or trio).

    Network IO uses `httpx2.AsyncClient`; the heavy local steps (planning, indexing and
    merging results) run in a worker thread, so the event loop keeps running.
    """

    @classmethod
    async def create(
        cls,
        requests: str | os.PathLike[str],
        state: str | os.PathLike[str],
        *,
        router: LiveRouter | None = None,
        policy: PolicyInput = None,
        limits: BatchLimits | None = None,
        api_version: str = DEFAULT_API_VERSION,
        betas: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        allow_unknown: bool = False,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_token: str | None = None,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        reconcile_grace: float = 60.0,
        on_event: EventHook | None = None,
    ) -> AsyncBatchJob:
        """`BatchJob.create`, with planning in a worker thread."""
        import anyio.to_thread

        if router is not None:
            await router.aview()  # an async fetcher's data, for route() in the thread
        options = _Options(
            base_url,
            api_key,
            auth_token,
            _timing(poll_interval, max_poll_interval, reconcile_grace),
            on_event,
        )

        def plan() -> tuple[_Job, BatchPlan, bool]:
            return _create(
                Path(requests),
                Path(state),
                router=router,
                policy=policy,
                limits=limits,
                api_version=api_version,
                betas=betas,
                headers=routing_headers(headers),
                allow_unknown=allow_unknown,
                options=options,
                from_worker=True,
            )

        job, first, planned = await anyio.to_thread.run_sync(plan)
        return cls(job, first, planned_now=planned)

    @classmethod
    async def open(
        cls,
        state: str | os.PathLike[str],
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_token: str | None = None,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        reconcile_grace: float = 60.0,
        on_event: EventHook | None = None,
    ) -> AsyncBatchJob:
        """`BatchJob.open`."""
        options = _Options(
            base_url,
            api_key,
            auth_token,
            _timing(poll_interval, max_poll_interval, reconcile_grace),
            on_event,
        )
        job = _open_existing(Path(state), options)
        return cls(job, job.plans()[0], planned_now=False)

    def _drive(self) -> AsyncDriver:
        if self._driver is None:
            self._driver = AsyncDriver(self._job.api())
        return self._driver

    async def submit(self) -> int:
        """`BatchJob.submit`."""
        with self._job.store.locked():
            return await self._drive().run(self._job.submit())

    async def status(self) -> BatchStatus:
        """`BatchJob.status`."""
        return await self._drive().run(self._job.poll(wait=False, on_progress=None))

    async def wait(self, *, on_progress: ProgressHook | None = None) -> BatchStatus:
        """`BatchJob.wait` (cancel the task to stop waiting)."""
        return await self._drive().run(self._job.poll(wait=True, on_progress=on_progress))

    async def write_results(self, out: str | os.PathLike[str]) -> BatchResults:
        """`BatchJob.write_results`."""
        with self._job.store.locked():
            return await self._drive().run(self._job.results(Path(out)))

    async def retry_errored(
        self, *, router: LiveRouter | None = None, policy: PolicyInput = None
    ) -> BatchPlan | None:
        """`BatchJob.retry_errored`."""
        import anyio.to_thread

        with self._job.store.locked():
            chosen, owned = await anyio.to_thread.run_sync(
                lambda: _retry_router(self._job, router, policy)
            )
            try:
                return await self._drive().run(self._job.retry(chosen, from_worker=True))
            finally:
                if owned:
                    chosen.close()

    async def cancel(self) -> BatchStatus:
        """`BatchJob.cancel` (waiting for the lock happens in a worker thread)."""
        import anyio.to_thread

        self._job.store.mark_canceled()
        lock = self._job.store.locked(wait=True)
        await anyio.to_thread.run_sync(lock.__enter__)
        try:
            return await self._drive().run(self._job.cancel())
        finally:
            lock.__exit__(None, None, None)

    async def aclose(self) -> None:
        """Release the HTTP client and the index."""
        if self._driver is not None:
            await self._driver.aclose()
            self._driver = None
        self._job.close()

    async def __aenter__(self) -> AsyncBatchJob:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
