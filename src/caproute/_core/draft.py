"""The plan for sending a request to one candidate model: a `Draft`.

Selection makes one draft per candidate it considers. Capability fixes (the catalogue)
and the rules (the rule table) both write to it: they read the parameters as planned so
far (`Draft.params`, a `Parameters` value replaced on every change, never mutated) and
record edits against the ORIGINAL body. `rewrite.apply_edits` turns the winner's edits
into a body. Nothing here knows about policies: what to do is decided by the caller,
the draft only records it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .decision import MISSING, Change, ChangeAction
from .request_needs import JSONPath, Parameters, RequestNeeds, format_path

__all__ = [
    "DEFAULT_API_VERSION",
    "MIN_THINKING_BUDGET",
    "VERSION_2026_10_21",
    "Draft",
    "Edit",
    "is_new_version",
    "lookup",
]

VERSION_2026_10_21: Final = "2026-10-21"
"""The first API version without sampling parameters and with stricter message shapes."""

DEFAULT_API_VERSION: Final = "2023-06-01"
"""The version assumed when a request names none (what SDKs before 2.0 send)."""

MIN_THINKING_BUDGET: Final = 1024
"""The smallest ``thinking.budget_tokens`` the API accepts ("Extended thinking" page)."""


_FIELD_INDEX: Final = {name: i for i, name in enumerate(Parameters._fields)}
_new_tuple: Final = tuple.__new__


def lookup(body: Any, path: JSONPath) -> Any:
    """The value at `path` in `body`, or `MISSING`."""
    node = body
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return MISSING
    return node


def is_new_version(api_version: str) -> bool:
    """True for 2026-10-21 and later (dates compare as strings)."""
    return api_version >= VERSION_2026_10_21


class Edit(NamedTuple):
    """One planned edit (a tuple: drafts make and drop many of them)."""

    after: Any
    """The new value, or `MISSING` to remove the target."""
    before: Any
    """The original value, or `MISSING`."""
    action: ChangeAction
    reason: str


@dataclass(slots=True, eq=False)
class Draft:
    """The plan for sending the request to one candidate model."""

    body: Mapping[str, Any]
    """The original body (read only)."""
    needs: RequestNeeds
    model: str
    """The candidate's canonical id."""
    api_version: str
    model_max_tokens: int | None
    model_max_input_tokens: int | None
    model_has: Callable[[str], bool]
    """Whether the candidate has a capability path, read the way this selection pass
    reads the registry (an unstated capability counts as present only when gambling)."""
    model_lacks: Callable[[str], bool]
    """Whether the registry says the candidate lacks a capability path (known, not
    merely unstated)."""
    params: Parameters
    """The parameters as planned so far (starts as sent)."""
    edits: dict[JSONPath, Edit] = field(default_factory=dict)
    """Path → the planned edit, in planning order."""
    notes: list[str] = field(default_factory=list)
    """Things worth telling the caller about this plan (e.g. thinking dropped)."""
    blocked: str | None = None
    """Why this candidate can't take the request (the next one may)."""
    rejected: str | None = None
    """Why the request must be refused outright (selection prefixes the model)."""
    refused_parameters: frozenset[str] = frozenset()
    """Top-level parameters this model was seen to refuse (learned ``parameters.<name>``
    facts; the ``refused_parameter`` rule strips or reroutes them)."""

    @classmethod
    def start(
        cls,
        body: Mapping[str, Any],
        needs: RequestNeeds,
        model: str,
        *,
        api_version: str,
        max_tokens: int | None,
        max_input_tokens: int | None,
        model_has: Callable[[str], bool],
        model_lacks: Callable[[str], bool],
    ) -> Draft:
        """A draft holding the request's parameters as sent."""
        return cls(
            body=body,
            needs=needs,
            model=model,
            api_version=api_version,
            model_max_tokens=max_tokens,
            model_max_input_tokens=max_input_tokens,
            model_has=model_has,
            model_lacks=model_lacks,
            params=needs.params,
        )

    @property
    def stopped(self) -> bool:
        """True once the draft is blocked or rejected: later checks are moot."""
        return self.blocked is not None or self.rejected is not None

    def plan(self, **changes: Any) -> None:
        """Record new planned parameter values (``plan(effort="high")``)."""
        # Not `_replace`, which is pure Python around a `map`: this runs for every fix.
        values = list(self.params)
        for name, value in changes.items():
            values[_FIELD_INDEX[name]] = value
        self.params = _new_tuple(Parameters, values)

    def edit(self, path: JSONPath, after: Any, action: ChangeAction, reason: str) -> None:
        """Plan setting `path` to `after` (`MISSING` removes it); re-editing a path merges."""
        previous = self.edits.get(path)
        before = previous.before if previous else lookup(self.body, path)
        if before is not MISSING and after is not MISSING and before == after:
            self.edits.pop(path, None)
            return
        self.edits[path] = Edit(after, before, action, reason)

    def remove(self, path: JSONPath, action: ChangeAction, reason: str) -> None:
        """Plan removing `path`."""
        self.edit(path, MISSING, action, reason)

    def switch_thinking(self, other: str, reason: str) -> None:
        """Plan ``thinking.type`` = `other`; only ``enabled`` keeps (or gets) a budget."""
        # An `enabled` budget is derived by the `thinking_budget_range` rule, which
        # runs after the max_tokens clamp.
        self.plan(thinking_type=other, budget_tokens=None)
        self.edit(("thinking", "type"), other, "adjust", reason)
        thinking = self.body.get("thinking")
        if other != "enabled" and isinstance(thinking, dict) and "budget_tokens" in thinking:
            self.remove(
                ("thinking", "budget_tokens"), "adjust", f"{other} thinking takes no budget"
            )

    def drop_thinking(self, reason: str) -> None:
        """Plan removing ``thinking`` altogether (the model's default applies)."""
        for path in [p for p in self.edits if len(p) > 1 and p[0] == "thinking"]:
            del self.edits[path]  # superseded: the whole parameter goes
        self.plan(thinking_type=None, budget_tokens=None)
        self.remove(("thinking",), "strip", reason)

    @property
    def thinking_on(self) -> bool:
        """Whether the planned request may think: ``enabled`` or ``adaptive``, or no
        ``thinking`` at all on a model that can't turn thinking off ("adaptive, always
        on": its ``thinking.types.disabled`` is unsupported).

        Read as `model_has` reads the registry: when it is unknown whether the model can
        turn thinking off, a strict pass assumes it may think (the safe reading), a
        gambling pass that it doesn't.
        """
        kind = self.params.thinking_type
        if kind is None:
            return not self.model_has("thinking.types.disabled") and not self.model_lacks(
                "thinking"
            )
        return kind == "enabled" or kind == "adaptive"

    def changes(self) -> list[Change]:
        """The planned edits as the decision reports them (built only for the winner)."""
        return [
            Change(format_path(path), e.before, e.after, e.action, e.reason)
            for path, e in self.edits.items()
        ]
