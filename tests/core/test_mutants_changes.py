"""What every edit says about itself: its action (``clamp``, ``strip``, ``adjust``) and
its reason, and the notes a decision carries. The rule and selection tables check
``path: before → after``; mutmut found the action and the reason of each fix free to
change, and they are what `Decision.explain`, the decision headers and the logs show.
"""

from __future__ import annotations

from typing import Any

import pytest
from catalogue import body, policy, run
from test_rules import CASES as RULE_CASES
from test_selection import CALLABLE_TOOL
from test_selection import CASES as SELECTION_CASES

from caproute._core.catalogue import not_strippable

OLD = "2023-06-01"
NEW = "2026-10-21"
REMOVED = f"removed in anthropic-version {NEW} (400 even at defaults)"
NO_BUDGET = "max_tokens 1000 leaves no room for a thinking budget (>= 1024 and < max_tokens)"

# case id in test_rules / test_selection -> ((path, action, reason), ...), notes
EXPECTED: dict[str, tuple[list[tuple[str, str, str]], list[str]]] = {
    "clamp": ([("max_tokens", "clamp", "t-enabled allows at most 32000")], []),
    "no budget fits, no adaptive: thinking dropped": (
        [("thinking", "strip", f"{NO_BUDGET}; t-enabled has no adaptive thinking")],
        [
            f"thinking was dropped for t-enabled: {NO_BUDGET}; raising max_tokens would "
            "change what the request costs and returns, so caproute never does"
        ],
    ),
    "budget strip": ([("thinking", "strip", "the policy strips thinking")], []),
    "forced choice": ([("tool_choice", "adjust", "thinking refuses a forced tool_choice")], []),
    "sampling new version": (
        [("temperature", "strip", REMOVED), ("top_p", "strip", REMOVED)],
        [],
    ),
    "thinking sampling adjusted": (
        [
            ("temperature", "strip", "temperature is refused with thinking on"),
            ("top_k", "strip", "top_k is refused with thinking on"),
            ("top_p", "clamp", "top_p must be within 0.95-1 with thinking on"),
        ],
        [],
    ),
    "thinking sampling strip drops thinking": (
        [
            (
                "thinking",
                "strip",
                "thinking refuses the request's sampling (the policy keeps sampling)",
            )
        ],
        [],
    ),
    "always-on thinking can't be stripped": (
        [("temperature", "strip", "temperature is refused with thinking on")],
        ["t-adaptive cannot turn thinking off, so the sampling was adjusted instead"],
    ),
    "effort down": (
        [("output_config.effort", "adjust", "t-adaptive has no effort level 'xhigh'")],
        [],
    ),
    "effort none at all": ([("output_config.effort", "strip", "t-enabled lacks effort.max")], []),
    "thinking strip": ([("thinking", "strip", "t-adaptive lacks thinking.types.enabled")], []),
    "web search strip": ([("tools[1]", "strip", "t-adaptive lacks server_tools.web_search")], []),
    "allowed_callers strip": (
        [
            (
                "tools[0].allowed_callers",
                "strip",
                "t-old-noexec lacks code_execution (programmatic tool calling)",
            )
        ],
        [],
    ),
}


def _result(case_id: str) -> Any:
    for case in RULE_CASES:
        if case[0] == case_id:
            _, model, fields, version, actions, *_ = case
            return run(
                body(model, **fields), policy(actions) if actions else None, api_version=version
            )
    for case in SELECTION_CASES:
        if case[0] == case_id:
            _, model, fields, actions, *_ = case
            return run(body(model, **fields), policy(actions) if actions else None)
    raise LookupError(case_id)


@pytest.mark.parametrize("case_id", sorted(EXPECTED))
def test_each_fix_names_its_action_and_reason(case_id: str) -> None:
    decision = _result(case_id).decision
    changes, notes = EXPECTED[case_id]
    assert [(c.path, c.action, c.reason) for c in decision.changes] == changes
    assert list(decision.notes) == notes


def test_the_last_code_execution_caller_removes_allowed_callers() -> None:
    tool = {**CALLABLE_TOOL, "allowed_callers": ["code_execution_20250825"]}
    decision = run(body("t-old-noexec", tools=[tool]), policy({"code_execution": "strip"})).decision
    assert [str(c) for c in decision.changes] == [
        'tools[0].allowed_callers: ["code_execution_20250825"] → (absent)'
    ]
    assert decision.changes[0].action == "strip"


THINKING = {"type": "adaptive"}


@pytest.mark.parametrize(
    ("sampling", "expected"),
    [
        # the bounds of top_p with thinking on are inclusive
        ({"top_p": 0.95}, []),
        ({"top_p": 1}, []),
        ({"top_p": 0.949}, ["top_p: 0.949 → 0.95"]),
        # not a number: removed, not clamped
        ({"top_p": "high"}, ["top_p: high → (absent)"]),
        ({"top_p": float("inf")}, ["top_p: Infinity → (absent)"]),
        ({"top_p": True}, ["top_p: true → (absent)"]),
        # temperature: only the number 1 passes (a boolean true is not the number 1)
        ({"temperature": 1}, []),
        ({"temperature": True}, ["temperature: true → (absent)"]),
        ({"temperature": "1"}, ["temperature: 1 → (absent)"]),  # the string "1"
    ],
)
def test_thinking_sampling_reads_numbers_strictly(
    sampling: dict[str, Any], expected: list[str]
) -> None:
    decision = run(body("t-full", thinking=THINKING, **sampling), api_version=OLD).decision
    assert [str(c) for c in decision.changes] == expected


def test_strip_refusal_is_decided_by_the_family_of_a_key() -> None:
    assert not_strippable("pdf_input") == "PDFs are message content, which caproute never removes"
    assert not_strippable("pdf_input.a.b") == not_strippable("pdf_input")
    assert not_strippable("image_input.x") == not_strippable("image_input")
    assert not_strippable("effort.max") is None
    assert not_strippable("no_such_family.x") is None
    assert not_strippable("max_tokens") == "the API requires max_tokens (use adjust to clamp it)"


def _learned_refused(*names: str) -> Any:
    from catalogue import REGISTRY

    from caproute import LearnedFact, PolicyEngine

    facts = [LearnedFact("t-full", f"parameters.{n}", False, 10.0, 99.0, "r") for n in names]
    return PolicyEngine(REGISTRY.with_learned(facts))


def test_parameters_a_model_refused_are_stripped_with_a_note() -> None:
    decision = (
        _learned_refused("temperature", "top_p")
        .route(body("t-full", temperature=0.5, top_p=0.9))
        .decision
    )
    assert [(c.path, c.action, c.reason) for c in decision.changes] == [
        ("temperature", "strip", "t-full refuses temperature (learned from its 400)"),
        ("top_p", "strip", "t-full refuses top_p (learned from its 400)"),
    ]
    assert decision.notes == (
        "temperature, top_p removed for t-full, which refused it (a learned fact); "
        "requests to other models keep it",
    )


def test_the_sampling_left_after_a_refused_parameter_is_still_checked_against_thinking() -> None:
    request = body("t-full", temperature=0.5, top_k=3, thinking={"type": "adaptive"})
    decision = _learned_refused("temperature").route(request).decision
    assert [(c.path, c.reason) for c in decision.changes] == [
        ("temperature", "t-full refuses temperature (learned from its 400)"),
        ("top_k", "top_k is refused with thinking on"),
    ]


@pytest.mark.parametrize("top_p", [0.95, 1, 1.0])
def test_top_p_at_either_bound_passes_even_a_rejecting_policy(top_p: float) -> None:
    request = body("t-full", thinking=THINKING, top_p=top_p)
    decision = run(request, policy({"thinking_sampling": "reject"}), api_version=OLD).decision
    assert decision.outcome == "unchanged", decision.explain()
