"""The fake's Message Batches: create, retrieve, list, cancel, delete, results (the
"Batch processing" page of the documentation).

Creation checks only the batch's shape (a list of 1-100,000 items, each a unique
``custom_id`` and a ``params`` object): as in the API, each request's ``params`` is
validated when the batch *processes* it, and an invalid one comes back as an
``errored`` result carrying the error the Messages API would have answered
(``invalid_request_error``, or ``not_found_error`` for an unknown model), never as a
400 on creation (the batch-processing docs: "Validation of the params object for each
message request is performed asynchronously"). So a catalogue changed between the
creation and the processing decides, as the API's state at processing time does. Of
the valid requests a configurable share is turned into ``errored`` (a transient
``api_error``) or ``expired``. That draw is deterministic: it hashes the seed, the
``custom_id`` and how many times this fake has seen that ``custom_id`` before, so a run
is reproducible and a resubmitted request can succeed.

Time: processing takes ``processing_s`` seconds of wall time. While it lasts,
``request_counts`` move from ``processing`` to the outcomes in proportion to the
time elapsed; the first *retrieve* (``GET …/{id}``) after that ends the batch and
sets ``results_url``. With the default ``processing_s=0`` a batch ends the first
time anyone retrieves it, which keeps tests that don't care about time instant.
Cancelling marks it ``canceling``; the next retrieve ends it, and every request not
processed by the time of the cancel comes back ``canceled``.

The HTTP side (reading bodies, paging, writing answers) stays in `caproute.testing._app`;
this module only holds the lifecycle and its state, guarded by its own lock.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ._catalogue import Catalogue
from ._validation import Wording, resolve_model, validate_params
from ._wire import ApiError, error_body, new_id, rfc3339

__all__ = ["FakeBatches"]

MessageBuilder = Callable[[dict[str, Any], str], dict[str, Any]]
"""``(params, model_id) -> message``: how the app answers one valid request."""

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MAX_REQUESTS = 100_000  # "Batch processing" page: batch limitations
_COUNT_KEYS = ("processing", "succeeded", "errored", "canceled", "expired")


@dataclass
class _Settings:
    processing_s: float = 0.0
    errored: float = 0.0
    expired: float = 0.0
    seed: int = 0


@dataclass
class _Request:
    """One request of a batch, as created (validated only when processed)."""

    custom_id: str
    params: dict[str, Any]
    seen: int
    """How many times this fake had seen the ``custom_id`` before (for the draw)."""


@dataclass
class _Batch:
    id: str
    created_at: datetime
    started: float
    """`time.monotonic()` at creation: processing progress is measured from it."""
    duration: float
    """Processing time in seconds, from the settings at creation."""
    requests: list[_Request]
    settings: _Settings
    """The settings at creation (the draw's shares and seed)."""
    version: str
    wording: Wording
    build_message: MessageBuilder
    results: list[dict[str, Any]] = field(default_factory=list)
    """The outcome of every request processed so far, in submission order."""
    status: str = "in_progress"
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None
    processed_at_cancel: int | None = None


@dataclass
class FakeBatches:
    """The batch lifecycle of one fake server (``fake.batches``).

    Configure it with `configure`; read what it holds with `ids` and `custom_ids`.
    """

    catalogue: Catalogue
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _batches: dict[str, _Batch] = field(default_factory=dict)
    _seen: dict[str, int] = field(default_factory=dict)
    _settings: _Settings = field(default_factory=_Settings)

    # -- configuration (test thread) ---------------------------------------------------------

    def configure(
        self,
        *,
        processing_s: float | None = None,
        errored: float | None = None,
        expired: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Change how batches created from now on behave; arguments left out keep their value.

        Args:
            processing_s: Wall-clock seconds a batch takes before a retrieve can end it.
            errored: Share (0–1) of valid requests that come back ``errored`` with a
                500 ``api_error``.
            expired: Share (0–1) of valid requests that come back ``expired``.
            seed: Seed of the errored/expired draw.

        Raises:
            ValueError: A share outside 0–1, shares adding up to more than 1, or a
                negative processing time.
        """
        with self._lock:
            new = _Settings(
                self._settings.processing_s if processing_s is None else processing_s,
                self._settings.errored if errored is None else errored,
                self._settings.expired if expired is None else expired,
                self._settings.seed if seed is None else seed,
            )
            if new.processing_s < 0:
                raise ValueError("processing_s must not be negative")
            if not (0 <= new.errored <= 1 and 0 <= new.expired <= 1):
                raise ValueError("errored and expired are shares between 0 and 1")
            if new.errored + new.expired > 1:
                raise ValueError("errored + expired must not exceed 1")
            self._settings = new

    @property
    def processing_s(self) -> float:
        """Seconds a batch takes to process."""
        return self._settings.processing_s

    def ids(self) -> list[str]:
        """Ids of the batches held, oldest first."""
        with self._lock:
            return list(self._batches)

    def custom_ids(self, batch_id: str) -> list[str]:
        """The ``custom_id`` of every request in a batch, in submission order."""
        with self._lock:
            return [r.custom_id for r in self._get(batch_id).requests]

    def clear(self) -> None:
        """Forget every batch and every ``custom_id`` seen; keep the settings."""
        with self._lock:
            self._batches.clear()
            self._seen.clear()

    def reset(self) -> None:
        """`clear`, and back to the default settings."""
        with self._lock:
            self._batches.clear()
            self._seen.clear()
            self._settings = _Settings()

    # -- the endpoints (server thread) -------------------------------------------------------

    def create(
        self,
        body: dict[str, Any],
        version: str,
        build_message: MessageBuilder,
        base_url: str,
        *,
        wording: Wording = "api",
    ) -> dict[str, Any]:
        """``POST /v1/messages/batches``: shape errors reject the whole batch (400); each
        request's ``params`` is validated later, when the batch processes it."""
        items = _batch_items(body)
        with self._lock:
            settings = self._settings
            requests = []
            for entry in items:
                custom_id = entry["custom_id"]
                seen = self._seen.get(custom_id, 0)
                self._seen[custom_id] = seen + 1
                requests.append(_Request(custom_id, entry["params"], seen))
            batch = _Batch(
                new_id("msgbatch_"),
                datetime.now(UTC),
                time.monotonic(),
                settings.processing_s,
                requests,
                settings,
                version,
                wording,
                build_message,
            )
            self._batches[batch.id] = batch
            return self._json(batch, base_url)

    def retrieve(self, batch_id: str, base_url: str) -> dict[str, Any]:
        """``GET …/{id}``: ends the batch once its processing time has passed."""
        with self._lock:
            batch = self._get(batch_id)
            if batch.status == "canceling" or (
                batch.status == "in_progress" and self._progress(batch) >= 1.0
            ):
                self._end(batch)
            return self._json(batch, base_url)

    def listing(self, base_url: str) -> list[dict[str, Any]]:
        """Every batch, newest first (the caller pages it)."""
        with self._lock:
            return [self._json(b, base_url) for b in reversed(self._batches.values())]

    def cancel(self, batch_id: str, base_url: str) -> dict[str, Any]:
        """``POST …/{id}/cancel``: an in-progress batch becomes ``canceling``."""
        with self._lock:
            batch = self._get(batch_id)
            if batch.status == "in_progress":
                batch.processed_at_cancel = self._processed(batch)
                self._process(batch, batch.processed_at_cancel)
                batch.status = "canceling"
                batch.cancel_initiated_at = datetime.now(UTC)
            return self._json(batch, base_url)

    def delete(self, batch_id: str) -> dict[str, Any]:
        """``DELETE …/{id}``: only an ended batch can be deleted."""
        with self._lock:
            batch = self._get(batch_id)
            if batch.status != "ended":
                raise ApiError(400, f"message batch {batch.id} is still processing")
            del self._batches[batch.id]
        return {"id": batch_id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> bytes:
        """``GET …/{id}/results``: JSONL, one line per request (only once ended)."""
        with self._lock:
            batch = self._get(batch_id)
            if batch.status != "ended":
                raise ApiError(400, f"message batch {batch.id} has not ended yet")
            lines = [json.dumps(r) + "\n" for r in batch.results]
        return "".join(lines).encode()

    # -- helpers (lock held unless said otherwise) -------------------------------------------

    def _process(self, batch: _Batch, upto: int) -> None:
        """Decide the outcome of the batch's requests up to index `upto` (processing)."""
        for request in batch.requests[len(batch.results) : upto]:
            result = self._outcome(batch, request.params)
            if result["type"] == "succeeded":
                result = _draw(result, batch.settings, request.custom_id, request.seen)
            batch.results.append({"custom_id": request.custom_id, "result": result})

    def _outcome(self, batch: _Batch, params: dict[str, Any]) -> dict[str, Any]:
        """One request's outcome: what ``POST /v1/messages`` would answer, as a result
        (``errored`` carries the same error body, `MessageBatchErroredResult`)."""
        try:
            model = resolve_model(self.catalogue, params)
            validate_params(
                params, model, api_version=batch.version, endpoint="batch", wording=batch.wording
            )
        except ApiError as exc:
            return {
                "type": "errored",
                "error": error_body(exc.error_type, exc.message, new_id("req_")),
            }
        return {"type": "succeeded", "message": batch.build_message(params, model["id"])}

    def _get(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"message batch: {batch_id}", "not_found_error")
        return batch

    @staticmethod
    def _progress(batch: _Batch) -> float:
        """How far processing is, 0–1 (1 as soon as the batch exists when it takes no time)."""
        if batch.duration <= 0:
            return 1.0
        return min(1.0, (time.monotonic() - batch.started) / batch.duration)

    @classmethod
    def _processed(cls, batch: _Batch) -> int:
        """Requests processed so far. A batch that takes no time has processed nothing
        until someone looks at it, so a cancel right after the create cancels it all."""
        if batch.duration <= 0:
            return 0
        return int(len(batch.requests) * cls._progress(batch))

    def _end(self, batch: _Batch) -> None:
        if batch.status == "canceling":
            done = batch.processed_at_cancel or 0
            self._process(batch, done)
            batch.results[done:] = [
                {"custom_id": r.custom_id, "result": {"type": "canceled"}}
                for r in batch.requests[done:]
            ]
        else:
            self._process(batch, len(batch.requests))
        batch.status = "ended"
        batch.ended_at = datetime.now(UTC)

    def _counts(self, batch: _Batch) -> dict[str, int]:
        counts = dict.fromkeys(_COUNT_KEYS, 0)
        if batch.status == "ended":
            for r in batch.results:
                counts[r["result"]["type"]] += 1
            return counts
        done = (
            batch.processed_at_cancel
            if batch.processed_at_cancel is not None
            else self._processed(batch)
        )
        self._process(batch, done)
        for r in batch.results[:done]:
            kind = r["result"]["type"]
            # Expiry is only known at the end: until then such a request is still waiting.
            counts["processing" if kind == "expired" else kind] += 1
        counts["processing"] += len(batch.requests) - done
        return counts

    def _json(self, batch: _Batch, base_url: str) -> dict[str, Any]:
        ended = batch.status == "ended"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": self._counts(batch),
            "created_at": rfc3339(batch.created_at),
            "expires_at": rfc3339(batch.created_at + timedelta(hours=24)),
            "ended_at": rfc3339(batch.ended_at) if batch.ended_at else None,
            "cancel_initiated_at": (
                rfc3339(batch.cancel_initiated_at) if batch.cancel_initiated_at else None
            ),
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


def _draw(
    succeeded: dict[str, Any], settings: _Settings, custom_id: str, seen: int
) -> dict[str, Any]:
    """The errored/expired draw for a valid request (deterministic, see the module doc)."""
    if not settings.errored and not settings.expired:
        return succeeded
    roll = random.Random(f"{settings.seed}:{custom_id}:{seen}").random()
    if roll < settings.errored:
        error = error_body("api_error", "Internal server error", new_id("req_"))
        return {"type": "errored", "error": error}
    if roll < settings.errored + settings.expired:
        return {"type": "expired"}
    return succeeded


def _batch_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The batch's requests, shape-checked; shape errors reject the whole batch (400)."""
    items = body.get("requests")
    if not isinstance(items, list) or not 1 <= len(items) <= _MAX_REQUESTS:
        raise ApiError(400, "requests: Input should be a list of 1 to 100000 items")
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, f"requests.{i}: Input should be an object")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise ApiError(400, f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$")
        if custom_id in seen:
            raise ApiError(400, f"requests.{i}.custom_id: duplicate custom_id {custom_id!r}")
        seen.add(custom_id)
        if not isinstance(item.get("params"), dict):
            raise ApiError(400, f"requests.{i}.params: Input should be an object")
    return items
