"""Every step of a batch job, written once as a flow of actions (`caproute._batch.api`).

`JobSteps` holds one job's state directory, index and settings; `BatchJob` and
`AsyncBatchJob` (`caproute._batch.job`) only drive its flows:

* **submit**: send each chunk as one batch, recording every step durably, so a run
  killed at any point and started again submits nothing twice and loses nothing (an
  interrupted submission is found again as `caproute._batch.reconcile` decides);
* **poll**: check each batch, backing off while nothing changes and honouring
  ``retry-after``;
* **results**: stream every batch's results to disk, index them and merge them with
  the locally refused lines (`caproute._batch.merge`);
* **retry**: re-plan (`caproute._batch.rounds`) and resubmit the requests that came
  back ``errored`` or ``expired``; **cancel**.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .._registry.fetch import retry_wait, should_retry
from .._runtime.live import LiveRouter
from .api import (
    BATCHES_PATH,
    Answer,
    ApiSettings,
    BatchAPIError,
    Call,
    Download,
    Flow,
    Local,
    Planning,
    Wait,
)
from .input import check_input
from .merge import check_output, chunk_holds, index_results, write_results
from .plan import BatchLimits, BatchPlan
from .reconcile import match_listing, maybe_created
from .reports import BatchCounts, BatchResults, BatchStatus, progress_of
from .rounds import RouterLink, RoutingSettings, plan_retry_round
from .store import BatchStateError, ChunkRecord, StateDir, private_dir

__all__ = ["EventHook", "JobSteps", "ProgressHook", "Timing", "next_poll_interval"]

logger = logging.getLogger("caproute.batch")

EventHook = Callable[[str], object]
"""Receives a one-line message for each notable step (submitted, adopted, retried...)."""
ProgressHook = Callable[[BatchStatus], object]
"""Receives the status after every poll."""

_LIST_PAGE: Final = "100"
_MAX_LIST_PAGES: Final = 1000


@dataclass(frozen=True)
class Timing:
    """How a job paces its calls: polling, reconciliation, retries."""

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


@dataclass(frozen=True)
class JobSettings:
    """What `open` / `create` were asked for, minus what only planning needs. Held in
    memory only (it may carry the key); never written."""

    base_url: str | None
    api_key: str | None = field(repr=False)
    auth_token: str | None = field(repr=False)
    timing: Timing
    on_event: EventHook | None


def next_poll_interval(current: float, changed: bool, timing: Timing) -> float:
    """Back off by half again while nothing changes; start over when something did."""
    if changed:
        return timing.poll_interval
    return min(current * 1.5, timing.max_poll_interval)


# -- the steps, as flows ---------------------------------------------------------------------


class JobSteps:
    """One job's state directory, database and settings, and every step as a flow.

    Shared by `BatchJob` and `AsyncBatchJob`, which only drive the flows.
    """

    def __init__(
        self,
        store: StateDir,
        job: dict[str, Any],
        *,
        api: Callable[[], ApiSettings],
        settings: JobSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.conn = store.connect()
        self.job = job
        self.api = api
        self.settings = settings
        self.timing = settings.timing
        self.on_event = settings.on_event
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

    def _retried(self, call: Call | Download, what: str) -> Flow[Answer]:
        """Make an idempotent call, retrying what the API says is worth retrying."""
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
        """The batch an interrupted submission of `record` created, if any (as
        `caproute._batch.reconcile` decides)."""
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
            if first is not None and chunk_holds(self.conn, record, first):
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
                progress.append(progress_of(record, batch))
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
            unknown = yield Local(functools.partial(index_results, self.conn, record, path))
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
        yield from self._retried(
            Download(url, path), f"downloading the results of {record.batch_id}"
        )
        return path

    def check_output(self, out: Path) -> None:
        """Refuse a results path that would overwrite the job's own files."""
        check_output(out, input_path=Path(self.job["input"]["path"]), state_dir=self.store.path)

    def results(self, out: Path) -> Flow[BatchResults]:
        self.check_output(out)
        yield from self.download()
        records = self.store.records()
        report: BatchResults = yield Local(lambda: write_results(self.conn, records, out))
        return report

    # -- retry -------------------------------------------------------------------------------

    def retry(self, router: LiveRouter) -> Flow[BatchPlan | None]:
        """Re-route and resubmit every request whose latest result is errored or expired,
        planned with what the errored ones teach (`caproute._batch.lessons`)."""
        if self.store.canceled:
            raise BatchStateError(f"{self.store.path}: the job is canceled; nothing is retried")
        yield from self.download()
        round_no = max(self.store.committed_rounds(self.conn)) + 1
        source = Path(self.job["input"]["path"])

        def plan(link: RouterLink) -> BatchPlan | None:
            check_input(source, self.job)
            return plan_retry_round(self.store, self.conn, link, source, round_no, self.routing)

        planned: BatchPlan | None = yield Planning(router, plan)
        if planned is None:
            self.event("nothing to retry: no request came back errored or expired")
            return None
        self.event(
            f"retry round {round_no}: {planned.sent_requests:,} requests in "
            f"{planned.chunks} batch(es)"
        )
        yield from self.submit()
        return planned

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
