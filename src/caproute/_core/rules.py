"""The API rules no capability key covers, as one small named table.

The Models API says what each model supports, but the Messages API enforces more (the
documentation's "Versions", "Extended thinking" and "Errors" pages): sampling parameters
are gone under ``anthropic-version: 2026-10-21``; with thinking on, ``temperature`` may
only be 1, ``top_k`` is refused and ``top_p`` must sit in [0.95, 1]; a thinking budget
must sit in ``[1024, max_tokens)``; thinking refuses a forced ``tool_choice``;
``max_tokens`` and the prompt must fit the model. Each of those is a `Rule` here, with a
name (what decisions and tests cite), a one-line doc, a check and a fix per action, so
the list can be read (and extended) in one place instead of being scattered through the
router.

One rule reads what was learned rather than what is documented: a top-level parameter
a model refused in a 400 although no capability key says so (``parameters.<name>``, e.g.
"`temperature` is deprecated for this model.", see `learning`) is stripped for that
model (``refused_parameter``, policy key ``refused_parameters``; ``reroute`` sends the
request to a model that takes it).

Two kinds of rule:

* `CANDIDATE_RULES` depend on the model being considered (its limits, whether it can
  turn thinking off) and on the parameters planned so far for it; selection runs them,
  in order, on each candidate's `Draft` after the capability checks.
* `REQUEST_RULES` depend only on the request and the API version. They guard message
  *content* (a document in an assistant turn, citations in a user turn), which caproute
  never edits, and what no model takes in a batch (a stream, billing a user profile), so
  their only outcome is a rejection with a reason.

"Thinking on" (`Draft.thinking_on`) is ``enabled`` or ``adaptive``, or no ``thinking``
at all on a model whose ``thinking.types.disabled`` is known to be unsupported: such a
model thinks whatever the request says ("adaptive, always on"; "Extended thinking" page).

No rule ever raises ``max_tokens``: that changes what the caller pays and gets back.
When enabled thinking can't fit (no budget ≥ 1024 below ``max_tokens``), the request
switches to adaptive thinking where the model has it, else thinking is dropped (with a
note), or the policy reroutes.

Not in the table, for want of a documented rule or capability key: assistant
prefill, ``speed``, ``inference_geo``. Those requests are forwarded as sent and the API
decides; an attributable refusal teaches the router (see `learning`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .catalogue import Action
from .decision import MISSING
from .draft import MIN_THINKING_BUDGET, VERSION_2026_10_21, Draft, is_new_version
from .request_needs import MISSING_VALUE, JSONPath, RequestNeeds, format_path

__all__ = [
    "CANDIDATE_RULES",
    "EFFORT_BUDGET_SHARE",
    "REQUEST_RULES",
    "TOP_P_WITH_THINKING",
    "RequestRule",
    "Rule",
    "derived_budget",
    "settle",
]

EFFORT_BUDGET_SHARE: Final[Mapping[str, float]] = {
    "low": 0.25,
    "medium": 0.5,
    "high": 0.75,
    "xhigh": 0.85,
    "max": 0.95,
}
"""Share of ``max_tokens`` given to a thinking budget derived from an effort level.

Used when adaptive thinking has to become ``enabled`` (which needs a budget). No effort
in the request reads as ``high``, the most common model default ("Effort" page).
"""

TOP_P_WITH_THINKING: Final = (0.95, 1.0)
"""The ``top_p`` range the API accepts with thinking on ("Extended thinking" page)."""

Fix = Callable[[Draft], None]


@dataclass(frozen=True, slots=True)
class Rule:
    """An API rule checked per candidate, with its fixes by action."""

    name: str
    """Stable identifier, cited by tests and docs."""
    key: str
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
    limit, wanted = draft.model_max_tokens, draft.params.max_tokens
    if limit is None or wanted is None or wanted <= limit:
        return None
    return f"max_tokens {limit} < requested {wanted}"


def _max_tokens_clamp(draft: Draft) -> None:
    limit = draft.model_max_tokens
    assert limit is not None  # the check found a limit
    draft.plan(max_tokens=limit)
    draft.edit(("max_tokens",), limit, "clamp", f"{draft.model} allows at most {limit}")


# thinking budget ----------------------------------------------------------------------------


def _budget_check(draft: Draft) -> str | None:
    params = draft.params
    if params.thinking_type != "enabled":
        return None
    budget, max_tokens = params.budget_tokens, params.max_tokens
    if max_tokens is not None and max_tokens <= MIN_THINKING_BUDGET:
        return f"enabled thinking cannot fit: max_tokens {max_tokens} <= {MIN_THINKING_BUDGET}"
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
    """Bring the budget into ``[1024, max_tokens)``; never raise ``max_tokens``."""
    max_tokens = draft.params.max_tokens
    if max_tokens is not None and max_tokens <= MIN_THINKING_BUDGET:
        reason = (
            f"max_tokens {max_tokens} leaves no room for a thinking budget "
            f"(>= {MIN_THINKING_BUDGET} and < max_tokens)"
        )
        if draft.model_has("thinking.types.adaptive"):
            draft.switch_thinking("adaptive", reason)
        else:
            _drop_thinking_with_note(draft, reason)
        return
    budget = draft.params.budget_tokens
    if budget is None:
        # The effort the caller asked for states the intent, even if this model
        # cannot take the parameter itself (it may have been stripped above).
        effort = draft.needs.params.effort
        new_budget = derived_budget(effort, max_tokens or 2 * MIN_THINKING_BUDGET)
        why = f"derived from effort {effort or 'high (default)'} and max_tokens"
    else:
        upper = budget if max_tokens is None else min(budget, max_tokens - 1)
        new_budget = max(MIN_THINKING_BUDGET, upper)
        why = f"must be >= {MIN_THINKING_BUDGET} and < max_tokens"
    draft.plan(budget_tokens=new_budget)
    draft.edit(("thinking", "budget_tokens"), new_budget, "adjust", why)


def _drop_thinking_with_note(draft: Draft, reason: str) -> None:
    draft.drop_thinking(f"{reason}; {draft.model} has no adaptive thinking")
    draft.notes.append(
        f"thinking was dropped for {draft.model}: {reason}; raising max_tokens would change "
        "what the request costs and returns, so caproute never does"
    )


def _thinking_strip(draft: Draft) -> None:
    draft.drop_thinking("the policy strips thinking")


# thinking with a forced tool_choice ---------------------------------------------------------


def _forced_choice_check(draft: Draft) -> str | None:
    kind = draft.params.tool_choice_type
    if (kind == "any" or kind == "tool") and draft.thinking_on:
        return f"tool_choice {kind} is refused with thinking on"
    return None


def _forced_choice_to_auto(draft: Draft) -> None:
    original = draft.body.get("tool_choice")
    after: dict[str, Any] = {"type": "auto"}
    if isinstance(original, dict) and "disable_parallel_tool_use" in original:
        after["disable_parallel_tool_use"] = original["disable_parallel_tool_use"]
    draft.plan(tool_choice_type="auto")
    draft.edit(("tool_choice",), after, "adjust", "thinking refuses a forced tool_choice")


def _forced_choice_strip(draft: Draft) -> None:
    draft.plan(tool_choice_type=None)
    draft.remove(("tool_choice",), "strip", "thinking refuses a forced tool_choice")


# sampling under 2026-10-21 ------------------------------------------------------------------


def _sampling_check(draft: Draft) -> str | None:
    if draft.params.sampling and is_new_version(draft.api_version):
        names = "/".join(draft.params.sampling_names)
        return f"{names} not accepted under anthropic-version {draft.api_version}"
    return None


def _sampling_strip(draft: Draft) -> None:
    reason = f"removed in anthropic-version {VERSION_2026_10_21} (400 even at defaults)"
    for name in draft.params.sampling_names:
        draft.remove((name,), "strip", reason)
    draft.plan(sampling=())


# sampling with thinking on ------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite JSON number, else `None` (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _sampling_conflicts(draft: Draft) -> list[tuple[str, Any]]:
    """``(name, fixed value or MISSING_VALUE to remove)`` for each sampling value that
    thinking refuses."""
    conflicts: list[tuple[str, Any]] = []
    temperature = draft.params.sampling_value("temperature")
    if temperature is not MISSING_VALUE and _number(temperature) != 1.0:
        conflicts.append(("temperature", MISSING_VALUE))
    if draft.params.sampling_value("top_k") is not MISSING_VALUE:
        conflicts.append(("top_k", MISSING_VALUE))
    top_p = draft.params.sampling_value("top_p")
    if top_p is not MISSING_VALUE:
        low, high = TOP_P_WITH_THINKING
        number = _number(top_p)
        if number is None:
            conflicts.append(("top_p", MISSING_VALUE))
        elif not low <= number <= high:
            conflicts.append(("top_p", low if number < low else high))
    return conflicts


def _thinking_sampling_check(draft: Draft) -> str | None:
    if not draft.params.sampling or not draft.thinking_on:
        return None
    conflicts = _sampling_conflicts(draft)
    if not conflicts:
        return None
    names = "/".join(name for name, _ in conflicts)
    return f"{names} refused with thinking on (temperature only 1, no top_k, top_p 0.95-1)"


def _thinking_sampling_adjust(draft: Draft) -> None:
    """Keep thinking: remove ``temperature`` ≠ 1 and ``top_k``, clamp ``top_p``."""
    fixed = dict(_sampling_conflicts(draft))
    for name, value in fixed.items():
        if value is MISSING_VALUE:
            draft.remove((name,), "strip", f"{name} is refused with thinking on")
        else:
            draft.edit((name,), value, "clamp", "top_p must be within 0.95-1 with thinking on")
    planned = ((name, fixed.get(name, value)) for name, value in draft.params.sampling)
    draft.plan(sampling=tuple((n, v) for n, v in planned if v is not MISSING_VALUE))


def _thinking_sampling_drop_thinking(draft: Draft) -> None:
    """Keep the sampling, drop thinking, where the model can turn thinking off."""
    if draft.params.thinking_type is None or draft.model_lacks("thinking.types.disabled"):
        # Thinking is always on for this model: dropping the parameter changes nothing.
        _thinking_sampling_adjust(draft)
        draft.notes.append(
            f"{draft.model} cannot turn thinking off, so the sampling was adjusted instead"
        )
        return
    draft.drop_thinking("thinking refuses the request's sampling (the policy keeps sampling)")


# a parameter the model was seen to refuse ---------------------------------------------------


def _refused_sent(draft: Draft) -> list[str]:
    """The refused parameters the planned request still carries, in body order."""
    refused = draft.refused_parameters
    edits = draft.edits
    return [
        name
        for name in draft.body
        if name in refused and ((edit := edits.get((name,))) is None or edit.after is not MISSING)
    ]


def _refused_check(draft: Draft) -> str | None:
    if not draft.refused_parameters:
        return None
    names = _refused_sent(draft)
    if not names:
        return None
    return f"{draft.model} refuses {'/'.join(names)} (learned from its 400)"


def _refused_strip(draft: Draft) -> None:
    names = _refused_sent(draft)
    for name in names:
        draft.remove((name,), "strip", f"{draft.model} refuses {name} (learned from its 400)")
    draft.plan(sampling=tuple((n, v) for n, v in draft.params.sampling if n not in names))
    draft.notes.append(
        f"{', '.join(names)} removed for {draft.model}, which refused it (a learned fact); "
        "requests to other models keep it"
    )


# context window -----------------------------------------------------------------------------


def _context_window_check(draft: Draft) -> str | None:
    limit = draft.model_max_input_tokens
    estimate = draft.needs.input_tokens
    if limit is None or estimate <= limit:
        return None
    return f"context window {limit} < estimated input {estimate} tokens"


CANDIDATE_RULES: tuple[Rule, ...] = (
    Rule(
        name="refused_parameter",
        key="refused_parameters",
        doc=(
            "a top-level parameter the model refused in a 400 (learned as "
            "parameters.<name>, e.g. a deprecated temperature); auto strips it for that model."
        ),
        check=_refused_check,
        fixes={"adjust": _refused_strip, "strip": _refused_strip},
        default="strip",
    ),
    Rule(
        name="max_tokens_limit",
        key="max_tokens",
        doc="max_tokens must not exceed the model's max_tokens; auto clamps it.",
        check=_max_tokens_check,
        fixes={"adjust": _max_tokens_clamp, "strip": _max_tokens_clamp},
        default="adjust",
    ),
    Rule(
        name="thinking_budget_range",
        key="thinking",
        doc=(
            "enabled thinking needs 1024 <= budget_tokens < max_tokens; auto adjusts the "
            "budget, or switches to adaptive (else drops thinking) when max_tokens <= 1024."
        ),
        check=_budget_check,
        fixes={"adjust": _budget_adjust, "strip": _thinking_strip},
        default="adjust",
    ),
    Rule(
        name="thinking_forced_tool_choice",
        key="tool_choice",
        doc="thinking (enabled or adaptive) refuses tool_choice any/tool; auto makes it auto.",
        check=_forced_choice_check,
        fixes={"adjust": _forced_choice_to_auto, "strip": _forced_choice_strip},
        default="adjust",
        same_for_every_model=True,
    ),
    Rule(
        name="sampling_removed_2026_10_21",
        key="sampling",
        doc="temperature/top_p/top_k are a 400 under 2026-10-21, even at defaults; auto strips.",
        check=_sampling_check,
        fixes={"adjust": _sampling_strip, "strip": _sampling_strip},
        default="strip",
        same_for_every_model=True,
    ),
    Rule(
        name="thinking_sampling",
        key="thinking_sampling",
        doc=(
            "with thinking on, temperature must be absent or 1, top_k absent, top_p within "
            "0.95-1 (every API version); auto fixes the sampling, strip drops thinking."
        ),
        check=_thinking_sampling_check,
        fixes={"adjust": _thinking_sampling_adjust, "strip": _thinking_sampling_drop_thinking},
        default="adjust",
        same_for_every_model=True,
    ),
    Rule(
        name="context_window_limit",
        key="context_window",
        doc="the estimated input must fit max_input_tokens; auto reroutes to a larger window.",
        check=_context_window_check,
        fixes={},
        default="reroute",
    ),
)
"""Checked in this order on every candidate, after the capability checks: the budget
rule runs after the clamp because it depends on the final ``max_tokens``, the
tool_choice and sampling rules after the thinking type is settled."""


def _content_refused(found: tuple[JSONPath, ...], what: str, api_version: str) -> str | None:
    """Why content at `found` (the first place named) is refused under `api_version`."""
    if not found or not is_new_version(api_version):
        return None
    return (
        f"{format_path(found[0])}: {what} is a 400 under anthropic-version {api_version}; "
        "caproute never edits message content"
    )


def _assistant_document_check(needs: RequestNeeds, api_version: str) -> str | None:
    return _content_refused(
        needs.assistant_documents, "a document block in an assistant turn", api_version
    )


def _user_citations_check(needs: RequestNeeds, api_version: str) -> str | None:
    return _content_refused(
        needs.user_text_citations, "a user text block with citations", api_version
    )


_BATCH_REFUSALS: Final[Mapping[str, str]] = {
    "stream": 'a Message Batch request can\'t stream ("stream": true errors it on every model)',
    "billing_policy.bill_to": (
        'a Message Batch request can\'t bill a user profile ("user_profile" errors it on '
        "every model)"
    ),
}


def _batch_item_check(needs: RequestNeeds, api_version: str) -> str | None:
    del api_version  # every version
    refused = needs.params.batch_refused
    if refused is None:
        return None
    return f"{refused}: {_BATCH_REFUSALS[refused]}"


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
    RequestRule(
        name="batch_item_refused",
        doc=(
            "a Message Batch request may not stream nor bill a user profile; every model errors it."
        ),
        check=_batch_item_check,
    ),
)
