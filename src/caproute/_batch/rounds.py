"""Planning a batch round: check every line, route every request, cut API-sized chunks.

One pass over the requests, holding one line at a time:

1. check the line (`caproute._batch.input.parse_line`) and that its ``custom_id`` is
   new (the ids live in the SQLite index, not in memory);
2. route it as a one-request batch through the same flow a single request takes
   (`caproute._core.flow.call_flow` on a ``{"requests": [item]}`` call to the
   ``batch`` endpoint): the ``batch`` capability is required like every other need,
   a cold start waits once for live data (`Refresh`) and a model name the registry
   lacks is looked up (`Resolve`), each carried out by the `LiveRouter`; the flow's
   first `Forward` or `Refuse` is the item's decision (nothing is sent here);
3. **batches never gamble**: the flow refuses a request it would send to a model
   whose support of something it needs is unknown (the registry doesn't state it, or
   doesn't know the model at all) with what is unknown about which model — the core's
   one rule (`PolicyEngine.never_gamble`), which the SDK middleware, the transports and
   the proxy apply to a whole batch creation — unless the job allows it
   (``allow_unknown`` / ``--allow-unknown``: the job then routes with the policy's
   ``allow_unknown_in_batches`` on). A single request may try such a model once and
   learn from the answer; a batch item would only come back ``errored`` when the
   batch ends, up to 24 hours later. Each request is planned as a batch of its own, so
   the planner refuses lines, not the job;
4. a refused request is recorded with its reason and never sent; any other one is
   appended to the current chunk's POST body on disk (the input line's own bytes
   when routing changed nothing), starting a new chunk before either API limit
   (requests per batch, bytes per batch) would be passed.

A retry round first learns from each retried item's ``errored`` result what a single
request's 400 would have taught (`lesson`, the flow's attribution and `Learn`
action), so the item is planned with that fact instead of going to the same model
unchanged again.

The round is committed as described in `caproute._batch.store`: nothing of a round
exists for the submitter until the whole plan is durable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from .._core.decision import Decision
from .._core.flow import (
    Forward,
    Learn,
    MarkRetired,
    ParsedCall,
    Refresh,
    Refuse,
    Resolve,
    View,
    call_flow,
    first_step,
)
from .._runtime.live import LiveRouter
from .chunks import ChunkWriter
from .input import BatchInputError, LineProblem, parse_line, read_lines
from .lessons import taught_by
from .plan import BatchLimits, BatchPlan, Tally
from .store import StateDir, fsync_dir, open_private, private_dir, write_json_atomic

__all__ = ["RouterLink", "RoutingSettings", "plan_first_round", "plan_retry_round"]

_MAX_KEPT_PROBLEMS: Final = 1000


@dataclass(frozen=True)
class RoutingSettings:
    """What every request of a job is routed and sent with."""

    api_version: str
    betas: tuple[str, ...]
    limits: BatchLimits
    headers: tuple[tuple[str, str], ...] = ()
    """Headers routes match on (``match.headers``); used for routing only, never sent."""
    allow_unknown: bool = False
    """Send requests to models whose support is unknown (the policy's
    ``allow_unknown_in_batches`` allows it too); refused locally otherwise."""


class RouterLink:
    """The planner's hold on a `LiveRouter`: its `View`, and the flow's state-changing
    actions (`Refresh`, `Resolve`, `Learn`) carried out where they can be.

    `from_worker`: the planner runs in an async job's worker thread. The actions then
    run on the event loop (``LiveRouter.acarry_out``), where an async registry fetcher
    can look names up and wait for live data; views read what it last served.
    """

    def __init__(self, router: LiveRouter, *, from_worker: bool = False) -> None:
        self.router = router
        self._from_worker = from_worker

    def view(self) -> View:
        """The router's routing state now (never waits)."""
        return self.router.view()

    def to(self, router: LiveRouter) -> RouterLink:
        """The same link to another router (a twin with another policy, say)."""
        return RouterLink(router, from_worker=self._from_worker)

    def carry_out(self, action: Refresh | Resolve | Learn | MarkRetired) -> None:
        """Do what the flow asks, blocking this thread until it is done (bounded)."""
        if self._from_worker:
            import anyio.from_thread

            anyio.from_thread.run(self.router.acarry_out, action)
        else:
            self.router.carry_out(action)


class _Round:
    """Routes requests into one round's chunks and commits the round (see module doc)."""

    def __init__(
        self,
        store: StateDir,
        conn: sqlite3.Connection,
        link: RouterLink,
        round_no: int,
        settings: RoutingSettings,
    ) -> None:
        self.store, self.conn, self.round = store, conn, round_no
        self.settings = settings
        self.headers = dict(settings.headers) or None
        """The headers routes match on, for every call of the round."""
        policy = link.router.policy
        if settings.allow_unknown and not policy.defaults.allow_unknown_in_batches:
            # The job's opt-in is the policy's, for this job: one rule decides.
            defaults = policy.defaults.model_copy(update={"allow_unknown_in_batches": True})
            allowing = policy.model_copy(update={"defaults": defaults})
            link = link.to(link.router.with_policy(allowing))
        self.link = link
        self.waited = False
        """Whether a cold-start wait was carried out (once per round is enough)."""
        self.asked: set[str] = set()
        """Model names the Models API was asked about this round (once per name)."""
        self.taught: set[tuple[str, str, bool | int]] = set()
        folder = store.pending_round_dir(round_no)
        shutil.rmtree(folder, ignore_errors=True)
        private_dir(folder.parent)
        folder.mkdir(mode=0o700)
        self.writer = ChunkWriter(store, round_no, settings.limits)
        self.tally = Tally()
        self.refused = open_private(folder / "refused.jsonl")
        self.count = 0
        conn.execute("BEGIN")

    def learn(self, line: int, taught: Learn | MarkRetired) -> None:
        """Carry out what an errored result taught (once per fact and round)."""
        if isinstance(taught, MarkRetired):
            fact: tuple[str, str, bool | int] = (taught.model, "lifecycle", False)
            label = f"{taught.model}: retired (404 not_found_error)"
        else:
            fact = (taught.model, taught.key, taught.value)
            label = f"{taught.model}: {taught.key} = {taught.value}"
        if fact not in self.taught:
            self.taught.add(fact)
            self.link.carry_out(taught)
            self._keep(taught)
        self.tally.learned.add(label, line)

    def _keep(self, taught: Learn | MarkRetired) -> None:
        """Record a fact learned with the round (its TTL as the router set it), so a
        later round re-teaches it to a router that does not hold it (another process)."""
        key = "lifecycle" if isinstance(taught, MarkRetired) else taught.key
        for fact in self.link.router.learned:
            if (fact.model, fact.key) == (taught.model, key):
                self.conn.execute(
                    "INSERT OR REPLACE INTO lessons(round, model, key, value, reason, expires_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (self.round, fact.model, key, _dumps(fact.value), fact.reason, fact.expires_at),
                )
                return

    def reteach(self, now: float) -> None:
        """Teach the router again what earlier rounds learned and it does not hold (a
        resumed job's router starts without them), while their TTL runs."""
        held = {(f.model, f.key, f.value) for f in self.link.router.learned}
        rows = self.conn.execute(
            "SELECT model, key, value, reason FROM lessons WHERE round < ? AND expires_at > ? "
            "ORDER BY round",
            (self.round, now),
        )
        for model, key, value, reason in rows.fetchall():
            fact = json.loads(value)
            if (model, key, fact) in held:
                continue
            if key == "lifecycle":
                self.link.carry_out(MarkRetired(model, reason))
            else:
                self.link.carry_out(Learn(model, key, fact, reason))

    def route(self, line: int, custom_id: str, params: dict[str, Any], raw: bytes | None) -> None:
        """Route one request and put it in a chunk or on the refused list."""
        item = {"custom_id": custom_id, "params": params}
        settings = self.settings
        view, decision, routed = self._flow(item, params.get("model"))
        unknown: str | None  # what is unknown about its model, refused or sent anyway
        if decision.rejected:
            label = decision.extra.get("unknown_support")
            unknown = label if isinstance(label, str) else None
        else:
            assert routed is not None
            unknown = view.engine.unknown_support(decision, routed["params"])
        self.link.router.report(decision)
        chunk: int | None = None
        if not decision.rejected:
            assert routed is not None
            if routed is item and raw is not None:
                payload = raw  # nothing changed: send the line's own bytes
            else:
                payload = _dumps(routed).encode()
            if self.writer.fits_alone(payload):
                chunk = self.writer.add(line, payload)
            else:
                decision = _too_big(decision, len(payload), settings.limits.max_bytes)
                unknown = None
        if chunk is None:
            entry = {"line": line, "custom_id": custom_id, "reason": decision.reason}
            self.refused.write(_dumps(entry).encode() + b"\n")
        self.tally.add(decision, line, unknown)
        self.count += 1
        self.conn.execute(
            "INSERT INTO routes(custom_id, round, chunk, outcome, decision) VALUES (?, ?, ?, ?, ?)",
            (custom_id, self.round, chunk, decision.outcome, _dumps(decision.to_dict())),
        )

    def _flow(
        self, item: dict[str, Any], model: Any
    ) -> tuple[View, Decision, dict[str, Any] | None]:
        """The view decided on, the item's decision, and the item to send (`None` when
        refused), as a single request is routed (`caproute._runtime.drive`): the flow's
        first action (`first_step`); only a `Refresh` or `Resolve` starts the rest of
        the flow (`call_flow`), whose actions are carried out, at most once per round
        and once per model name. Nothing is sent: the first send is the decision."""
        settings = self.settings
        call = ParsedCall(
            {"requests": [item]}, "batch", settings.api_version, settings.betas, self.headers
        )
        view = self.link.view()
        if self.waited:
            view = view._replace(can_wait=False)
        if model in self.asked:
            view = view._replace(can_resolve=False)
        action = first_step(view, call)
        if isinstance(action, Refresh | Resolve):
            view, action = self._carry_out(call, view, action)
        decision = action.decision.items[0][1]
        if isinstance(action, Refuse):
            return view, decision, None
        routed: dict[str, Any] = action.body["requests"][0]
        return view, decision, routed

    def _carry_out(
        self, call: ParsedCall, view: View, first: Refresh | Resolve
    ) -> tuple[View, Forward | Refuse]:
        flow = call_flow(call, view, first)
        try:
            action = next(flow)
            while isinstance(action, Refresh | Resolve):
                self.link.carry_out(action)
                if isinstance(action, Refresh):
                    self.waited = True
                else:
                    self.asked.update(action.models)
                view = self.link.view()
                action = flow.send(view)
        finally:
            flow.close()  # nothing is sent while planning: the flow ends at its first send
        assert isinstance(action, Forward | Refuse)
        return view, action

    def commit(self, job: dict[str, Any] | None = None) -> BatchPlan:
        """Make the round durable and visible: files, then rename, then the transaction."""
        records = self.writer.finish()
        folder = self.store.pending_round_dir(self.round)
        self.refused.flush()
        os.fsync(self.refused.fileno())
        self.refused.close()
        for record in records:
            write_json_atomic(folder / f"chunk-{record.chunk:06d}.json", record.to_json())
        plan = BatchPlan(
            round=self.round,
            requests=self.count,
            outcomes=dict(self.tally.outcomes),
            chunks=len(records),
            sent_requests=self.writer.sent_requests,
            sent_bytes=self.writer.sent_bytes,
            reroutes=self.tally.reroutes.freeze(),
            adjustments=self.tally.adjustments.freeze(),
            refusals=self.tally.refusals.freeze(),
            passthroughs=self.tally.passthroughs.freeze(),
            unknown_refused=self.tally.unknown_refused,
            unknown_sent=self.tally.unknown_sent,
            unknowns=self.tally.unknowns.freeze(),
            learned=self.tally.learned.freeze(),
        )
        summary = plan.to_dict()
        write_json_atomic(folder / "plan.json", summary)
        self.conn.execute(
            "INSERT INTO rounds(round, chunks, summary) VALUES (?, ?, ?)",
            (self.round, len(records), _dumps(summary)),
        )
        if self.round > 1:
            self.conn.execute(
                "UPDATE items SET latest_round = ? WHERE custom_id IN "
                "(SELECT custom_id FROM routes WHERE round = ?)",
                (self.round, self.round),
            )
        if job is not None:
            self.store.write_job(job)
        os.replace(folder, self.store.round_dir(self.round))
        fsync_dir(self.store.rounds_dir)
        self.conn.execute("COMMIT")
        return plan

    def abort(self) -> None:
        """Throw the unfinished round away (nothing of it was visible)."""
        self.writer.abort()
        self.refused.close()
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        shutil.rmtree(self.store.pending_round_dir(self.round), ignore_errors=True)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _too_big(decision: Decision, size: int, limit: int) -> Decision:
    reason = (
        f"the request is {size:,} bytes; a batch may be at most {limit:,} bytes, "
        "so it can't be sent in any batch"
    )
    return dataclasses.replace(decision, outcome="rejected", model=None, changes=(), reason=reason)


def plan_first_round(
    store: StateDir,
    conn: sqlite3.Connection,
    link: RouterLink,
    input_path: Path,
    settings: RoutingSettings,
    job: dict[str, Any],
) -> BatchPlan:
    """Check, route and chunk the whole input file as round 1, and record the job.

    `job` gets the input's size and SHA-256 (computed on the way) before it is written.

    Raises:
        BatchInputError: Some lines are bad; nothing was recorded.
    """
    problems: list[LineProblem] = []
    bad = 0
    digest = hashlib.sha256()
    round_ = _Round(store, conn, link, 1, settings)
    try:
        for entry in read_lines(input_path, digest=digest):
            parsed = parse_line(entry.raw)
            problem = parsed if isinstance(parsed, str) else None
            if problem is None:
                assert not isinstance(parsed, str)
                custom_id, params = parsed
                problem = _register(conn, entry.number, custom_id, entry.offset, len(entry.raw))
                if problem is None and not bad:
                    round_.route(entry.number, custom_id, params, entry.raw)
            if problem is not None:
                bad += 1
                if len(problems) < _MAX_KEPT_PROBLEMS:
                    problems.append(LineProblem(entry.number, problem))
        if bad:
            raise BatchInputError(str(input_path), problems, total=bad)
        if round_.count == 0:
            raise BatchInputError(str(input_path), [LineProblem(1, "the file holds no requests")])
        job = {**job, "input": {**job["input"], "size": input_path.stat().st_size}}
        job["input"]["sha256"] = digest.hexdigest()
        return round_.commit(job)
    except BaseException:
        round_.abort()
        raise


def _register(
    conn: sqlite3.Connection, line: int, custom_id: str, offset: int, length: int
) -> str | None:
    """Index one line; a duplicate ``custom_id`` comes back as a problem message."""
    try:
        conn.execute(
            "INSERT INTO items(line, custom_id, offset, length, latest_round) "
            "VALUES (?, ?, ?, ?, 1)",
            (line, custom_id, offset, length),
        )
    except sqlite3.IntegrityError:
        row = conn.execute("SELECT line FROM items WHERE custom_id = ?", (custom_id,)).fetchone()
        return f"custom_id {custom_id!r} is also on line {row[0]}; custom_ids must be unique"
    return None


def plan_retry_round(
    store: StateDir,
    conn: sqlite3.Connection,
    link: RouterLink,
    input_path: Path,
    round_no: int,
    settings: RoutingSettings,
    retry_types: Sequence[str] = ("errored", "expired"),
) -> BatchPlan | None:
    """Re-route, from the input file, every request whose latest result is of `retry_types`.

    Every ``errored`` result first teaches what it can (`caproute._batch.lessons`), then
    the requests are routed with those facts (each of them, not only those after the
    line that taught one), like a single request after its 400. Returns `None` when
    there is nothing to retry (no round is created).
    """
    if conn.execute(_retry_query(retry_types) + " LIMIT 1", tuple(retry_types)).fetchone() is None:
        return None
    round_ = _Round(store, conn, link, round_no, settings)
    try:
        round_.reteach(time.time())
        with input_path.open("rb") as stream:
            errored = [kind for kind in retry_types if kind == "errored"]
            for _, line, params, _, result, decision in _retried(conn, errored, stream, input_path):
                taught = taught_by(round_.link.view(), params, json.loads(result), decision)
                if taught is not None:
                    round_.learn(line, taught)
            for custom_id, line, params, raw, _, _ in _retried(
                conn, retry_types, stream, input_path
            ):
                round_.route(line, custom_id, params, raw)
        return round_.commit()
    except BaseException:
        round_.abort()
        raise


def _retry_query(kinds: Sequence[str]) -> str:
    marks = ", ".join("?" for _ in kinds)
    return (
        "SELECT i.custom_id, i.line, i.offset, i.length, r.body, rt.decision FROM items i "
        "JOIN results r ON r.custom_id = i.custom_id AND r.round = i.latest_round "
        "JOIN routes rt ON rt.custom_id = i.custom_id AND rt.round = i.latest_round "
        f"WHERE r.type IN ({marks}) ORDER BY i.line"
    )


def _retried(
    conn: sqlite3.Connection, kinds: Sequence[str], stream: IO[bytes], input_path: Path
) -> Iterator[tuple[str, int, dict[str, Any], bytes, str, str]]:
    """``(custom_id, line, params, raw line, result, decision)`` of every request whose
    latest result is of `kinds`, read again from the input file by byte offset (the rows
    are read one at a time, while the round writes other tables).

    Raises:
        BatchInputError: A line is not what was submitted.
    """
    if not kinds:
        return
    rows: Iterable[tuple[str, int, int, int, str, str]] = conn.execute(
        _retry_query(kinds), tuple(kinds)
    )
    for custom_id, line, offset, length, result, decision in rows:
        stream.seek(offset)
        raw = stream.read(length)
        parsed = parse_line(raw)
        if isinstance(parsed, str) or parsed[0] != custom_id:
            problem = f"changed since it was submitted (custom_id {custom_id!r} expected)"
            raise BatchInputError(str(input_path), [LineProblem(line, problem)])
        yield custom_id, line, parsed[1], raw, result, decision
