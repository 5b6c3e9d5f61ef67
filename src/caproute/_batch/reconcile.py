"""Recovering an interrupted submission: which listed batch, if any, holds the chunk.

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

The decisions are pure and here; `caproute._batch.steps` carries them out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .api import Answer
from .reports import BatchCounts

__all__ = ["match_listing", "maybe_created", "parse_time"]


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
