"""What the router decided, and why: plain, frozen, JSON-ready data.

A `Decision` is the record every shell passes on: response headers, log lines, the
decision hook, the CLI and local refusals all read it. It never holds the request's
content or any credential, only model ids, capability paths and parameter values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple, NoReturn

__all__ = ["MISSING", "Candidate", "Change", "Decision", "Outcome", "RouteResult"]


class _Missing:
    """Marks a value that is absent (before an addition, after a removal)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class _EmptyExtra(dict[str, Any]):
    """The default `Decision.extra`: an empty dict that refuses to be filled.

    One instance is shared by every decision without extras: cheaper than a new dict
    per decision, and it lets the router hand out the same unchanged `Decision` again
    (frozen all the way down: nobody can add to a shared decision's `extra`; shells
    copy it to add keys, as `dataclasses.replace` callers do). Still a `dict`, so JSON,
    pickling, copying, equality and repr behave as before.
    """

    __slots__ = ()

    def _refuse(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError("Decision.extra is read-only; build a new decision to add keys")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __reduce__(self) -> tuple[type[_EmptyExtra], tuple[()]]:
        return (_EmptyExtra, ())


_NO_EXTRA: Final = _EmptyExtra()


def _no_extra() -> Mapping[str, Any]:
    return _NO_EXTRA  # a factory only because dataclasses refuse a dict as a default


Outcome = Literal["unchanged", "adjusted", "rerouted", "rejected", "passthrough"]
"""
* `unchanged`: forwarded exactly as sent; the requested model supports everything.
* `adjusted`: same model, some parameters changed (see `changes`).
* `rerouted`: another model was chosen (and perhaps parameters changed).
* `rejected`: refused before sending, `reason` says why.
* `passthrough`: caproute could not understand the body and left it untouched.
"""

ChangeAction = Literal["reroute", "adjust", "strip", "clamp"]


_SHOWN_CHARS: Final = 120
"""How much of a changed value a one-line summary shows (a stripped JSON schema can be
kilobytes: too much for a response header or a span attribute; `to_dict` keeps all)."""


def _show(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), sort_keys=True)
    )
    if len(text) > _SHOWN_CHARS:
        return f"{text[:_SHOWN_CHARS]}... ({len(text):,} chars)"
    return text


def _jsonable(value: Any) -> Any:
    return None if value is MISSING else value


@dataclass(frozen=True, slots=True)
class Change:
    """One edit made to the request body."""

    path: str
    """Dotted/indexed JSON path, e.g. ``output_config.effort`` or ``tools[2].strict``."""
    before: Any
    """The value before (`MISSING` when the edit added the key)."""
    after: Any
    """The value after (`MISSING` when the edit removed the key)."""
    action: ChangeAction
    reason: str
    """Why, in words (``claude-haiku-4-5 has no effort level 'max'``)."""

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.before)} → {_show(self.after)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`MISSING` becomes `null` plus a flag)."""
        return {
            "path": self.path,
            "before": _jsonable(self.before),
            "after": _jsonable(self.after),
            "added": self.before is MISSING,
            "removed": self.after is MISSING,
            "action": self.action,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model the router looked at, and whether it was taken."""

    model: str
    chosen: bool
    reason: str | None = None
    """Why it was passed over (`None` for the chosen one)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"model": self.model, "chosen": self.chosen, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Decision:
    """The router's verdict for one request."""

    outcome: Outcome
    requested_model: str | None
    """The `model` the caller sent (`None` if the body had none)."""
    model: str | None
    """The model the request goes to (`None` when rejected or not understood)."""
    needs: tuple[str, ...] = ()
    """Capability paths the request needs (sorted), e.g. ``("effort.max", "pdf_input")``."""
    candidates: tuple[Candidate, ...] = ()
    changes: tuple[Change, ...] = ()
    reason: str | None = None
    """For `rejected` and `passthrough`: why. Otherwise a one-line summary or `None`."""
    notes: tuple[str, ...] = ()
    """Warnings worth surfacing (e.g. thinking blocks that a reroute may invalidate)."""
    route: str | None = None
    """The policy route that matched (`None` for the defaults)."""
    registry_source: str = "unknown"
    registry_age_s: float | None = None
    items: tuple[tuple[str, Decision], ...] = ()
    """For a batch: ``(custom_id, decision)`` per request, in order."""
    extra: Mapping[str, Any] = field(default_factory=_no_extra)
    """Room for shells to attach data (e.g. ``attempt``) without changing the type."""

    @property
    def changed(self) -> bool:
        """True when the forwarded body differs from the one the caller sent."""
        if self.outcome == "rejected":
            return False  # nothing is sent, so nothing was changed
        return self.outcome in ("adjusted", "rerouted") or any(d.changed for _, d in self.items)

    @property
    def rejected(self) -> bool:
        """True when the request must not be sent."""
        return self.outcome == "rejected"

    def summary(self) -> str:
        """One line: ``rerouted claude-a → claude-b; output_config.effort: max → high``."""
        if self.outcome in ("rejected", "passthrough"):
            return f"{self.outcome}: {self.reason or 'no reason given'}"
        head: str = self.outcome
        if self.requested_model != self.model:
            head += f" {self.requested_model} → {self.model}"
        elif self.model:
            head += f" {self.model}"
        if self.changes:
            head += "; " + "; ".join(str(c) for c in self.changes)
        if self.items:
            counts: dict[str, int] = {}
            for _, item in self.items:
                counts[item.outcome] = counts.get(item.outcome, 0) + 1
            head += " (" + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ")"
        return head

    def header_values(self) -> dict[str, str]:
        """The ``caproute-*`` response headers describing this decision (ASCII only)."""
        changes = "; ".join(str(c) for c in self.changes) if self.changes else "none"
        headers = {
            "caproute-outcome": self.outcome,
            "caproute-model": self.model or "",
            "caproute-requested-model": self.requested_model or "",
            "caproute-changes": changes,
        }
        # Header values must be latin-1 and single-line; the arrow is not.
        return {k: v.replace("→", "->").replace("\n", " ") for k, v in headers.items()}

    def explain(self) -> str:
        """A multi-line, human explanation (what the CLI prints)."""
        lines = [f"outcome:    {self.outcome}"]
        lines.append(f"requested:  {self.requested_model or '(none)'}")
        lines.append(f"chosen:     {self.model or '(none)'}")
        if self.route:
            lines.append(f"route:      {self.route}")
        lines.append(f"needs:      {', '.join(self.needs) if self.needs else '(nothing special)'}")
        age = "" if self.registry_age_s is None else f", {self.registry_age_s:.0f}s old"
        lines.append(f"registry:   {self.registry_source}{age}")
        if self.reason:
            lines.append(f"reason:     {self.reason}")
        if self.candidates:
            lines.append("candidates:")
            for c in self.candidates:
                mark = "✓" if c.chosen else "✗"
                lines.append(f"  {mark} {c.model}" + (f": {c.reason}" if c.reason else ""))
        if self.changes:
            lines.append("changes:")
            for ch in self.changes:
                lines.append(f"  {ch}  ({ch.action}: {ch.reason})")
        for note in self.notes:
            lines.append(f"note:       {note}")
        for custom_id, item in self.items:
            lines.append(f"[{custom_id}] {item.summary()}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what `--json`, logs and the decision hook's users serialise)."""
        out: dict[str, Any] = {
            "outcome": self.outcome,
            "requested_model": self.requested_model,
            "model": self.model,
            "needs": list(self.needs),
            "candidates": [c.to_dict() for c in self.candidates],
            "changes": [c.to_dict() for c in self.changes],
            "reason": self.reason,
            "notes": list(self.notes),
            "route": self.route,
            "registry": {"source": self.registry_source, "age_s": self.registry_age_s},
        }
        if self.items:
            out["items"] = [{"custom_id": k, **d.to_dict()} for k, d in self.items]
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


class RouteResult(NamedTuple):
    """The routed body and the decision that produced it.

    `body` is the original object itself when nothing changed (outcome `unchanged`,
    `passthrough` or `rejected`), and a new object otherwise: the input is never
    mutated. A named tuple (immutable, made for every request at a third of a frozen
    dataclass's cost), so ``body, decision = router.route(...)`` works too.
    """

    body: Any
    """The body to send."""
    decision: Decision
    """What was decided, and why."""
