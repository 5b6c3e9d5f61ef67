"""What a batch job reports: its batches' counts and progress, and the results written.

`BatchStatus` (from ``status`` / ``wait`` / ``cancel``) holds one `BatchProgress` per
chunk, each with its batch's `BatchCounts`; `BatchResults` is what ``write_results``
wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from .store import ChunkRecord

__all__ = ["BatchCounts", "BatchProgress", "BatchResults", "BatchStatus", "progress_of"]

_COUNT_KEYS: Final = ("processing", "succeeded", "errored", "canceled", "expired")


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


def progress_of(record: ChunkRecord, batch: dict[str, Any] | None) -> BatchProgress:
    """Where `record`'s chunk stands, with its batch as last retrieved (if any)."""
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
