"""A round's plan: what routing did to its requests, known before anything is sent.

`BatchPlan` is the summary the CLI prints and ``plan.json`` holds (counts per outcome,
the reroutes, adjustments and refusals grouped by reason with example lines);
`BatchLimits` the size of one batch. How a round is planned: `caproute._batch.rounds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .._core.decision import Decision

__all__ = ["API_MAX_BYTES", "API_MAX_REQUESTS", "BatchLimits", "BatchPlan", "PlanGroup", "Tally"]

API_MAX_REQUESTS: Final = 100_000
API_MAX_BYTES: Final = 256_000_000
"""256 MB as the API documents it, read as decimal megabytes: the smaller reading,
so a chunk is under the limit whichever one the API applies."""
_MAX_GROUPS: Final = 100
"""Distinct reasons listed per section of a summary; the rest are counted as "other"."""
_EXAMPLE_LINES: Final = 5


@dataclass(frozen=True)
class BatchLimits:
    """How big one submitted batch may be.

    The defaults are the API's limits (100,000 requests, 256 MB per batch); smaller
    values make more, smaller batches (faster to process, cheaper to resubmit).

    Raises:
        ValueError: A limit above the API's or too small to hold anything.
    """

    max_requests: int = API_MAX_REQUESTS
    max_bytes: int = API_MAX_BYTES

    def __post_init__(self) -> None:
        if not 1 <= self.max_requests <= API_MAX_REQUESTS:
            raise ValueError(f"max_requests must be between 1 and {API_MAX_REQUESTS}")
        if not 64 <= self.max_bytes <= API_MAX_BYTES:
            raise ValueError(f"max_bytes must be between 64 and {API_MAX_BYTES}")


@dataclass(frozen=True)
class PlanGroup:
    """Requests that were treated the same way, e.g. one reroute or one refusal reason."""

    label: str
    count: int
    lines: tuple[int, ...]
    """The first few input line numbers, as examples."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"label": self.label, "count": self.count, "lines": list(self.lines)}


@dataclass(frozen=True)
class BatchPlan:
    """What routing did to one round's requests, known before anything is sent."""

    round: int
    """1 for the submission, 2+ for each ``retry_errored``."""
    requests: int
    """Requests routed."""
    outcomes: Mapping[str, int]
    """Count per `Decision.outcome` (``rejected`` = refused locally)."""
    chunks: int
    """Batches the round is cut into."""
    sent_requests: int
    sent_bytes: int
    reroutes: tuple[PlanGroup, ...] = ()
    adjustments: tuple[PlanGroup, ...] = ()
    refusals: tuple[PlanGroup, ...] = ()
    passthroughs: tuple[PlanGroup, ...] = ()
    unknown_refused: int = 0
    """Requests refused only because no model is known to take them (their support is
    unknown): counted in `refused` too, and listed in `unknowns`."""
    unknown_sent: int = 0
    """Requests sent although their model's support is unknown (the job allows it)."""
    unknowns: tuple[PlanGroup, ...] = ()
    """What was unknown about which model, for the requests of `unknown_refused` and
    `unknown_sent`."""
    learned: tuple[PlanGroup, ...] = ()
    """Retry rounds: the facts the previous round's ``errored`` results taught, each
    with the lines that taught it, before the round was routed."""

    @property
    def refused(self) -> int:
        """Requests refused locally: never sent, reported as ``refused`` in the results."""
        return self.outcomes.get("rejected", 0)

    def summary(self) -> str:
        """The human summary the CLI prints before submitting."""
        what = "submission" if self.round == 1 else f"retry round {self.round}"
        lines = [f"Routed {self.requests:,} requests ({what}):"]
        labels = {
            "unchanged": "",
            "adjusted": "same model, parameters changed",
            "rerouted": "sent to another model",
            "passthrough": "not understood, sent as they are",
            "rejected": "refused locally, never sent",
        }
        for outcome, note in labels.items():
            count = self.outcomes.get(outcome, 0)
            if outcome == "rejected":
                count -= self.unknown_refused  # counted on their own line below
            if count or outcome in ("unchanged", "rejected"):
                name = "refused" if outcome == "rejected" else outcome
                lines.append(f"  {name:<12}{count:>10,}" + (f"  ({note})" if note else ""))
        if self.unknown_refused:
            note = "refused locally: no model is known to take them; --allow-unknown sends them"
            lines.append(f"  {'unknown':<12}{self.unknown_refused:>10,}  ({note})")
        if self.unknown_sent:
            note = "sent although support is unknown: allowed for this job"
            lines.append(f"  {'unknown':<12}{self.unknown_sent:>10,}  ({note})")
        for title, groups in (
            ("Learned from the errored results", self.learned),
            ("Rerouted", self.reroutes),
            ("Adjusted", self.adjustments),
            ("Refused", self.refusals),
            ("Unknown support", self.unknowns),
            ("Passed through", self.passthroughs),
        ):
            if groups:
                lines.append(f"{title}:")
                lines.extend(f"  {g.count:>8,}  {g.label}  ({_lines(g)})" for g in groups)
        size = _megabytes(self.sent_bytes)
        plural = "batch" if self.chunks == 1 else "batches"
        lines.append(f"To send: {self.sent_requests:,} requests in {self.chunks} {plural} ({size})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``plan.json`` in the state directory, ``--json`` output)."""
        return {
            "round": self.round,
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "refused": self.refused,
            "chunks": self.chunks,
            "sent_requests": self.sent_requests,
            "sent_bytes": self.sent_bytes,
            "reroutes": [g.to_dict() for g in self.reroutes],
            "adjustments": [g.to_dict() for g in self.adjustments],
            "refusals": [g.to_dict() for g in self.refusals],
            "passthroughs": [g.to_dict() for g in self.passthroughs],
            "unknown_refused": self.unknown_refused,
            "unknown_sent": self.unknown_sent,
            "unknowns": [g.to_dict() for g in self.unknowns],
            "learned": [g.to_dict() for g in self.learned],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchPlan:
        """Inverse of `to_dict`."""

        def groups(key: str) -> tuple[PlanGroup, ...]:
            return tuple(
                PlanGroup(g["label"], g["count"], tuple(g["lines"])) for g in data.get(key, ())
            )

        return cls(
            round=data["round"],
            requests=data["requests"],
            outcomes=dict(data["outcomes"]),
            chunks=data["chunks"],
            sent_requests=data["sent_requests"],
            sent_bytes=data["sent_bytes"],
            reroutes=groups("reroutes"),
            adjustments=groups("adjustments"),
            refusals=groups("refusals"),
            passthroughs=groups("passthroughs"),
            unknown_refused=data.get("unknown_refused", 0),  # absent in older jobs
            unknown_sent=data.get("unknown_sent", 0),
            unknowns=groups("unknowns"),
            learned=groups("learned"),
        )


def _lines(group: PlanGroup) -> str:
    shown = ", ".join(str(n) for n in group.lines)
    more = ", …" if group.count > len(group.lines) else ""
    return f"line{'s' if group.count > 1 else ''} {shown}{more}"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.1f} kB"


# -- tallying ----------------------------------------------------------------------------------


@dataclass
class _Groups:
    """Counts per label, bounded: past `_MAX_GROUPS` labels everything else is "other"."""

    counts: dict[str, int] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)

    def add(self, label: str, line: int) -> None:
        if label not in self.counts and len(self.counts) >= _MAX_GROUPS:
            label = "(other reasons)"
        self.counts[label] = self.counts.get(label, 0) + 1
        examples = self.lines.setdefault(label, [])
        if len(examples) < _EXAMPLE_LINES:
            examples.append(line)

    def freeze(self) -> tuple[PlanGroup, ...]:
        ordered = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(PlanGroup(k, n, tuple(self.lines[k])) for k, n in ordered)


@dataclass
class Tally:
    outcomes: dict[str, int] = field(default_factory=dict)
    reroutes: _Groups = field(default_factory=_Groups)
    adjustments: _Groups = field(default_factory=_Groups)
    refusals: _Groups = field(default_factory=_Groups)
    passthroughs: _Groups = field(default_factory=_Groups)
    unknowns: _Groups = field(default_factory=_Groups)
    learned: _Groups = field(default_factory=_Groups)
    unknown_refused: int = 0
    unknown_sent: int = 0

    def add(self, decision: Decision, line: int, unknown: str | None = None) -> None:
        """Count one request; `unknown` says what is unknown about its model, if anything."""
        self.outcomes[decision.outcome] = self.outcomes.get(decision.outcome, 0) + 1
        if unknown is not None:
            self.unknowns.add(unknown, line)
            if decision.rejected:
                self.unknown_refused += 1
                return
            self.unknown_sent += 1
        if decision.outcome == "rejected":
            self.refusals.add(decision.reason or "no reason given", line)
        elif decision.outcome == "passthrough":
            self.passthroughs.add(decision.reason or "not understood", line)
        for change in decision.changes:
            if change.action == "reroute":
                label = f"{decision.requested_model} → {decision.model}: {change.reason}"
                self.reroutes.add(label, line)
            else:
                self.adjustments.add(f"{change.action} {change.path}: {change.reason}", line)
