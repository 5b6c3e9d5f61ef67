"""The API rules no capability key covers, as one small named table.

The Models API says what each model supports, but the Messages API enforces more
(api-facts.md §0, §3): sampling parameters are gone under ``anthropic-version:
2026-10-21``, a thinking budget must sit in ``[1024, max_tokens)``, thinking refuses a
forced ``tool_choice``, ``max_tokens`` and the prompt must fit the model. Each of those
is a `Rule` here, with a name (what decisions and tests cite), a one-line doc, a check
and a fix, so the list can be read (and extended) in one place instead of being
scattered through the router.

Two kinds of rule:

* `CANDIDATE_RULES` depend on the model being considered (its limits) and on the
  parameters planned so far for it; selection runs them, in order, on each candidate's
  `Draft` after the capability checks. Their fixes record edits on the draft.
* `REQUEST_RULES` depend only on the request and the API version. They guard message
  *content* (a document in an assistant turn, citations in a user turn), which caproute
  never edits, so their only outcome is a rejection with a reason.

Not in the table, for want of a reliable source (api-facts §2.4, §9): which models
refuse non-default sampling under 2023-06-01, assistant prefill, ``speed``,
``inference_geo``. Those requests are forwarded as sent and the API decides.

The `Draft` is the plan for one candidate: the parameter values it would be sent
with and the edits that get there. It lives here because rules and capability fixes
both write to it; `rewrite.apply_edits` turns its edits into a body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .decision import MISSING, Change, ChangeAction
from .features import JSONPath, RequestNeeds, format_path
from .policy import Action, RouteSpec

__all__ = [
    "CANDIDATE_RULES",
    "DEFAULT_API_VERSION",
    "EFFORT_BUDGET_SHARE",
    "MIN_THINKING_BUDGET",
    "REQUEST_RULES",
    "VERSION_2026_10_21",
    "Draft",
    "Edit",
    "RequestRule",
    "Rule",
    "derived_budget",
    "is_new_version",
    "lookup",
    "resolve_action",
    "settle",
]

VERSION_2026_10_21: Final = "2026-10-21"
"""The first API version without sampling parameters and with stricter message shapes."""

DEFAULT_API_VERSION: Final = "2023-06-01"
"""The version assumed when a request names none (what SDKs before 2.0 send)."""

MIN_THINKING_BUDGET: Final = 1024
"""The smallest ``thinking.budget_tokens`` the API accepts (api-facts §3.6)."""

EFFORT_BUDGET_SHARE: Final[Mapping[str, float]] = {
    "low": 0.25,
    "medium": 0.5,
    "high": 0.75,
    "xhigh": 0.85,
    "max": 0.95,
}
"""Share of ``max_tokens`` given to a thinking budget derived from an effort level.

Used when adaptive thinking has to become ``enabled`` (which needs a budget). No effort
in the request reads as ``high``, the most common model default (api-facts §3.7).
"""

_ROOM_FOR_ANSWER: Final = 1024
"""When ``max_tokens`` must grow to fit the minimum budget: tokens left for the answer."""


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
    """Whether the candidate has a capability path, read the way the route reads the
    registry (an unstated capability counts as present or missing per ``unknown``)."""
    max_tokens: int | None = None
    thinking_type: str | None = None
    budget_tokens: int | None = None
    effort: str | None = None
    tool_choice_type: str | None = None
    sampling: tuple[str, ...] = ()
    edits: dict[JSONPath, Edit] = field(default_factory=dict)
    """Path → the planned edit, in planning order."""
    blocked: str | None = None
    """Why this candidate can't take the request (the next one may)."""
    rejected: str | None = None
    """Why the request must be refused outright (selection prefixes the model)."""

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
            max_tokens=needs.max_tokens,
            thinking_type=needs.thinking_type,
            budget_tokens=needs.budget_tokens,
            effort=needs.effort,
            tool_choice_type=needs.tool_choice_type,
            sampling=needs.sampling,
        )

    @property
    def stopped(self) -> bool:
        """True once the draft is blocked or rejected: later checks are moot."""
        return self.blocked is not None or self.rejected is not None

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
        self.thinking_type = other
        self.edit(("thinking", "type"), other, "adjust", reason)
        # An `enabled` budget is derived by the `thinking_budget_range` rule, which
        # runs after the max_tokens clamp.
        self.budget_tokens = None
        thinking = self.body.get("thinking")
        if other != "enabled" and isinstance(thinking, dict) and "budget_tokens" in thinking:
            self.remove(
                ("thinking", "budget_tokens"), "adjust", f"{other} thinking takes no budget"
            )

    def drop_thinking(self, reason: str) -> None:
        """Plan removing ``thinking`` altogether (the model's default applies)."""
        for path in [p for p in self.edits if len(p) > 1 and p[0] == "thinking"]:
            del self.edits[path]  # superseded: the whole parameter goes
        self.thinking_type = None
        self.budget_tokens = None
        self.remove(("thinking",), "strip", reason)

    def changes(self) -> list[Change]:
        """The planned edits as the decision reports them (built only for the winner)."""
        return [
            Change(format_path(path), e.before, e.after, e.action, e.reason)
            for path, e in self.edits.items()
        ]


# -- the capability-independent rules --------------------------------------------------------

Fix = Callable[[Draft], None]


@dataclass(frozen=True, slots=True)
class Rule:
    """An API rule checked per candidate, with its fixes by action."""

    name: str
    """Stable identifier, cited by tests and docs."""
    capability: str
    """The policy key whose action decides the fix (``max_tokens``, ``sampling``...)."""
    doc: str
    """What the API enforces, in one line."""
    check: Callable[[Draft], str | None]
    """The problem with the draft, in words, or `None`."""
    fixes: Mapping[Action, Fix]
    """How each action repairs it; an action not listed here falls back to `default`."""
    default: Action
    """What ``auto`` (the no-policy behaviour) does."""
    same_for_every_model: bool = False
    """True when no model escapes the rule, so ``reroute`` cannot help and reads as
    `default`."""
    meaningful: frozenset[Action] = frozenset()
    """The actions with a meaning for this rule (its fixes, reroute, reject); derived."""

    def __post_init__(self) -> None:
        reroute: tuple[Action, ...] = () if self.same_for_every_model else ("reroute",)
        object.__setattr__(self, "meaningful", frozenset({*self.fixes, *reroute, "reject"}))


@dataclass(frozen=True, slots=True)
class RequestRule:
    """A rule on message content: checked once per request, only ever rejects."""

    name: str
    doc: str
    check: Callable[[RequestNeeds, str], str | None]
    """``(needs, api_version)`` → why the request can't be sent, or `None`."""


def resolve_action(
    route: RouteSpec, capability: str, *, default: Action, meaningful: frozenset[Action]
) -> tuple[Action, bool]:
    """The action to take for `capability`, and whether the policy chose it explicitly.

    ``auto`` becomes the capability's `default`; an action that means nothing for it
    (``adjust`` an image, ``strip`` a batch) falls back to `default` too, so every
    policy has one literal reading.
    """
    action = route.action_for(capability)
    if action == "auto" or action not in meaningful:
        return default, False
    return action, True


def settle(draft: Draft, problem: str, action: Action, explicit: bool, fix: Fix | None) -> None:
    """Apply `action` to a `problem` found on `draft`."""
    if action == "reject":
        draft.rejected = f"{problem} (the policy says reject)"
    elif action == "reroute" or fix is None:
        draft.blocked = f"{problem} (policy: reroute)" if explicit else problem
    else:
        fix(draft)


# max_tokens ----------------------------------------------------------------------------------


def _max_tokens_check(draft: Draft) -> str | None:
    limit, wanted = draft.model_max_tokens, draft.max_tokens
    if limit is None or wanted is None or wanted <= limit:
        return None
    return f"max_tokens {limit} < requested {wanted}"


def _max_tokens_clamp(draft: Draft) -> None:
    limit = draft.model_max_tokens
    assert limit is not None  # the check found a limit
    draft.max_tokens = limit
    draft.edit(("max_tokens",), limit, "clamp", f"{draft.model} allows at most {limit}")


# thinking budget ----------------------------------------------------------------------------


def _budget_check(draft: Draft) -> str | None:
    if draft.thinking_type != "enabled":
        return None
    budget, max_tokens = draft.budget_tokens, draft.max_tokens
    if budget is None:
        return "enabled thinking needs thinking.budget_tokens"
    if budget < MIN_THINKING_BUDGET:
        return f"thinking.budget_tokens {budget} < {MIN_THINKING_BUDGET}"
    if max_tokens is not None and budget >= max_tokens:
        return f"thinking.budget_tokens {budget} >= max_tokens {max_tokens}"
    return None


def derived_budget(effort: str | None, max_tokens: int) -> int:
    """A budget for `max_tokens` at `effort`: the effort's share, kept in the valid range."""
    share = EFFORT_BUDGET_SHARE.get(effort or "high", EFFORT_BUDGET_SHARE["high"])
    return max(MIN_THINKING_BUDGET, min(int(max_tokens * share), max_tokens - 1))


def _budget_adjust(draft: Draft) -> None:
    """Bring the budget into ``[1024, max_tokens)``, raising max_tokens if it must."""
    max_tokens = draft.max_tokens
    if max_tokens is not None and max_tokens <= MIN_THINKING_BUDGET:
        # No valid budget fits: grow max_tokens (within the model) to leave room for
        # the minimum budget and an answer, rather than drop thinking.
        wanted = MIN_THINKING_BUDGET + _ROOM_FOR_ANSWER
        limit = draft.model_max_tokens
        if limit is not None and limit <= MIN_THINKING_BUDGET:
            # The nearest thing this model can do: think without a budget, else not
            # at all (the same ladder as a missing thinking type).
            reason = f"max_tokens {limit} leaves no room for a thinking budget"
            if draft.model_has("thinking.types.adaptive"):
                draft.switch_thinking("adaptive", reason)
            else:
                draft.drop_thinking(reason)
            return
        max_tokens = wanted if limit is None else min(wanted, limit)
        draft.max_tokens = max_tokens
        draft.edit(
            ("max_tokens",), max_tokens, "adjust", "enabled thinking needs max_tokens > 1024"
        )
    budget = draft.budget_tokens
    if budget is None:
        # The effort the caller asked for states the intent, even if this model
        # cannot take the parameter itself (it may have been stripped above).
        effort = draft.needs.effort
        new_budget = derived_budget(effort, max_tokens or 2 * MIN_THINKING_BUDGET)
        why = f"derived from effort {effort or 'high (default)'} and max_tokens"
    else:
        upper = budget if max_tokens is None else min(budget, max_tokens - 1)
        new_budget = max(MIN_THINKING_BUDGET, upper)
        why = f"must be >= {MIN_THINKING_BUDGET} and < max_tokens"
    draft.budget_tokens = new_budget
    draft.edit(("thinking", "budget_tokens"), new_budget, "adjust", why)


def _thinking_strip(draft: Draft) -> None:
    draft.drop_thinking("the policy strips thinking")


# thinking with a forced tool_choice ---------------------------------------------------------


def _forced_choice_check(draft: Draft) -> str | None:
    if draft.thinking_type in ("enabled", "adaptive") and draft.tool_choice_type in ("any", "tool"):
        return f"tool_choice {draft.tool_choice_type} is refused with thinking on"
    return None


def _forced_choice_to_auto(draft: Draft) -> None:
    original = draft.body.get("tool_choice")
    after: dict[str, Any] = {"type": "auto"}
    if isinstance(original, dict) and "disable_parallel_tool_use" in original:
        after["disable_parallel_tool_use"] = original["disable_parallel_tool_use"]
    draft.tool_choice_type = "auto"
    draft.edit(("tool_choice",), after, "adjust", "thinking refuses a forced tool_choice")


def _forced_choice_strip(draft: Draft) -> None:
    draft.tool_choice_type = None
    draft.remove(("tool_choice",), "strip", "thinking refuses a forced tool_choice")


# sampling under 2026-10-21 ------------------------------------------------------------------


def _sampling_check(draft: Draft) -> str | None:
    if draft.sampling and is_new_version(draft.api_version):
        names = "/".join(draft.sampling)
        return f"{names} not accepted under anthropic-version {draft.api_version}"
    return None


def _sampling_strip(draft: Draft) -> None:
    reason = f"removed in anthropic-version {VERSION_2026_10_21} (400 even at defaults)"
    for name in draft.sampling:
        draft.remove((name,), "strip", reason)
    draft.sampling = ()


# context window -----------------------------------------------------------------------------


def _context_window_check(draft: Draft) -> str | None:
    limit = draft.model_max_input_tokens
    estimate = draft.needs.input_tokens
    if limit is None or estimate <= limit:
        return None
    return f"context window {limit} < estimated input {estimate} tokens"


CANDIDATE_RULES: tuple[Rule, ...] = (
    Rule(
        name="max_tokens_limit",
        capability="max_tokens",
        doc="max_tokens must not exceed the model's max_tokens; auto clamps it.",
        check=_max_tokens_check,
        fixes={"adjust": _max_tokens_clamp, "strip": _max_tokens_clamp},
        default="adjust",
    ),
    Rule(
        name="thinking_budget_range",
        capability="thinking",
        doc="enabled thinking needs 1024 <= budget_tokens < max_tokens; auto adjusts it.",
        check=_budget_check,
        fixes={"adjust": _budget_adjust, "strip": _thinking_strip},
        default="adjust",
    ),
    Rule(
        name="thinking_forced_tool_choice",
        capability="tool_choice",
        doc="thinking (enabled or adaptive) refuses tool_choice any/tool; auto makes it auto.",
        check=_forced_choice_check,
        fixes={"adjust": _forced_choice_to_auto, "strip": _forced_choice_strip},
        default="adjust",
        same_for_every_model=True,
    ),
    Rule(
        name="sampling_removed_2026_10_21",
        capability="sampling",
        doc="temperature/top_p/top_k are a 400 under 2026-10-21, even at defaults; auto strips.",
        check=_sampling_check,
        fixes={"adjust": _sampling_strip, "strip": _sampling_strip},
        default="strip",
        same_for_every_model=True,
    ),
    Rule(
        name="context_window_limit",
        capability="context_window",
        doc="the estimated input must fit max_input_tokens; auto reroutes to a larger window.",
        check=_context_window_check,
        fixes={},
        default="reroute",
    ),
)
"""Checked in this order on every candidate, after the capability checks: the budget
rule runs after the clamp because it depends on the final ``max_tokens``, and the
tool_choice rule after the thinking type is settled."""


def _assistant_document_check(needs: RequestNeeds, api_version: str) -> str | None:
    if needs.assistant_documents and is_new_version(api_version):
        where = format_path(needs.assistant_documents[0])
        return (
            f"{where}: a document block in an assistant turn is a 400 under "
            f"anthropic-version {api_version}; caproute never edits message content"
        )
    return None


def _user_citations_check(needs: RequestNeeds, api_version: str) -> str | None:
    if needs.user_text_citations and is_new_version(api_version):
        where = format_path(needs.user_text_citations[0])
        return (
            f"{where}: a user text block with citations is a 400 under "
            f"anthropic-version {api_version}; caproute never edits message content"
        )
    return None


REQUEST_RULES: tuple[RequestRule, ...] = (
    RequestRule(
        name="assistant_document_2026_10_21",
        doc="document blocks directly inside assistant turns are a 400 under 2026-10-21.",
        check=_assistant_document_check,
    ),
    RequestRule(
        name="user_text_citations_2026_10_21",
        doc="user text blocks with non-empty citations are a 400 under 2026-10-21.",
        check=_user_citations_check,
    ),
)
