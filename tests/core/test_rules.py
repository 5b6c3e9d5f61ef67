"""The rule table: every rule, its default fix and each policy action."""

from __future__ import annotations

from typing import Any

import pytest
from catalogue import TEXT_DOCUMENT, assistant, body, changes, policy, run, user

from caproute._core.policy import Policy
from caproute._core.rules import CANDIDATE_RULES, REQUEST_RULES

NEW = "2026-10-21"
OLD = "2023-06-01"
THINKING_ON = {"type": "enabled", "budget_tokens": 2_000}
CITED_TEXT = {"type": "text", "text": "r", "citations": [{"type": "char_location"}]}
SEARCH_RESULT_CITED = {
    "type": "search_result", "source": "https://example.test", "title": "t",
    "content": [CITED_TEXT],
}  # fmt: skip

# (id, model, body fields, api version, policy actions, outcome, model, changes)
CASES: list[tuple[str, str, dict[str, Any], str, dict[str, str] | None, str, str | None,
                  list[str]]] = [
    # max_tokens_limit
    ("clamp", "t-enabled", {"max_tokens": 50_000}, OLD, None,
     "adjusted", "t-enabled", ["max_tokens: 50000 → 32000"]),
    # (t-deprecated, next in the line, is deprecated: an alternative only when allowed)
    ("clamp refused", "t-enabled", {"max_tokens": 50_000}, OLD, {"max_tokens": "reroute"},
     "rerouted", "t-ladder", ["model: t-enabled → t-ladder"]),
    ("clamp reject", "t-enabled", {"max_tokens": 50_000}, OLD, {"max_tokens": "reject"},
     "rejected", None, []),
    ("max_tokens fits", "t-enabled", {"max_tokens": 32_000}, OLD, None,
     "unchanged", "t-enabled", []),
    # thinking_budget_range
    ("budget too small", "t-full", {"thinking": {"type": "enabled", "budget_tokens": 500}}, OLD,
     None, "adjusted", "t-full", ["thinking.budget_tokens: 500 → 1024"]),
    ("budget not below max_tokens", "t-full", {"thinking": THINKING_ON, "max_tokens": 2_000},
     OLD, None, "adjusted", "t-full", ["thinking.budget_tokens: 2000 → 1999"]),
    ("budget after clamp", "t-enabled",
     {"thinking": {"type": "enabled", "budget_tokens": 40_000}, "max_tokens": 50_000}, OLD, None,
     "adjusted", "t-enabled",
     ["max_tokens: 50000 → 32000", "thinking.budget_tokens: 40000 → 31999"]),
    ("budget missing", "t-full", {"thinking": {"type": "enabled"}, "max_tokens": 4_000,
                                  "output_config": {"effort": "low"}}, OLD, None,
     "adjusted", "t-full", ["thinking.budget_tokens: (absent) → 1024"]),
    # max_tokens is never raised: no budget fits below 1000, so adaptive (or no thinking)
    ("no budget fits: adaptive, max_tokens kept", "t-full",
     {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 1_000}, OLD, None,
     "adjusted", "t-full",
     ["thinking.type: enabled → adaptive", "thinking.budget_tokens: 1024 → (absent)"]),
    ("no budget fits, no adaptive: thinking dropped", "t-enabled",
     {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 1_000}, OLD, None,
     "adjusted", "t-enabled", ['thinking: {"budget_tokens":1024,"type":"enabled"} → (absent)']),
    ("no room for a budget: adaptive", "t-tiny", {"thinking": THINKING_ON, "max_tokens": 900},
     OLD, None, "adjusted", "t-tiny",
     ["thinking.type: enabled → adaptive", "thinking.budget_tokens: 2000 → (absent)"]),
    ("no room for a budget: reroute", "t-tiny", {"thinking": THINKING_ON, "max_tokens": 3000},
     OLD, {"thinking": "reroute"}, "rerouted", "t-old-shape", ["model: t-tiny → t-old-shape"]),
    ("budget too big everywhere: reroute", "t-tiny",
     {"thinking": THINKING_ON, "max_tokens": 900}, OLD, {"thinking": "reroute"},
     "rejected", None, []),
    ("budget strip", "t-full", {"thinking": {"type": "enabled", "budget_tokens": 500}}, OLD,
     {"thinking": "strip"}, "adjusted", "t-full",
     ['thinking: {"budget_tokens":500,"type":"enabled"} → (absent)']),
    ("budget reject", "t-full", {"thinking": {"type": "enabled", "budget_tokens": 500}}, OLD,
     {"thinking": "reject"}, "rejected", None, []),
    # thinking_forced_tool_choice
    ("forced choice", "t-full",
     {"thinking": THINKING_ON, "max_tokens": 4_000,
      "tool_choice": {"type": "tool", "name": "a", "disable_parallel_tool_use": True}}, OLD, None,
     "adjusted", "t-full",
     ['tool_choice: {"disable_parallel_tool_use":true,"name":"a","type":"tool"} → '
      '{"disable_parallel_tool_use":true,"type":"auto"}']),
    ("forced choice adaptive", "t-full",
     {"thinking": {"type": "adaptive"}, "tool_choice": {"type": "any"}}, OLD, None,
     "adjusted", "t-full", ['tool_choice: {"type":"any"} → {"type":"auto"}']),
    ("forced choice strip", "t-full",
     {"thinking": {"type": "adaptive"}, "tool_choice": {"type": "any"}}, OLD,
     {"tool_choice": "strip"}, "adjusted", "t-full", ['tool_choice: {"type":"any"} → (absent)']),
    ("forced choice reject", "t-full",
     {"thinking": {"type": "adaptive"}, "tool_choice": {"type": "any"}}, OLD,
     {"tool_choice": "reject"}, "rejected", None, []),
    ("forced choice without thinking", "t-full",
     {"thinking": {"type": "disabled"}, "tool_choice": {"type": "any"}}, OLD, None,
     "unchanged", "t-full", []),
    ("forced choice after thinking removed", "t-small",
     {"thinking": {"type": "adaptive"}, "tool_choice": {"type": "any"}}, OLD, None,
     "adjusted", "t-small", ['thinking: {"type":"adaptive"} → (absent)']),
    # sampling_removed_2026_10_21
    ("sampling new version", "t-full", {"temperature": 1.0, "top_p": 0.9}, NEW, None,
     "adjusted", "t-full", ["temperature: 1.0 → (absent)", "top_p: 0.9 → (absent)"]),
    ("sampling old version", "t-full", {"temperature": 0.3, "top_k": 3}, OLD, None,
     "unchanged", "t-full", []),
    ("sampling reject", "t-full", {"top_k": 3}, NEW, {"sampling": "reject"},
     "rejected", None, []),
    ("sampling reroute means strip", "t-full", {"top_k": 3}, NEW, {"sampling": "reroute"},
     "adjusted", "t-full", ["top_k: 3 → (absent)"]),
    # thinking_sampling
    ("thinking sampling adjusted", "t-full",
     {"thinking": THINKING_ON, "max_tokens": 4_000, "temperature": 0.5, "top_p": 0.5,
      "top_k": 5}, OLD, None, "adjusted", "t-full",
     ["temperature: 0.5 → (absent)", "top_k: 5 → (absent)", "top_p: 0.5 → 0.95"]),
    ("thinking sampling within bounds", "t-full",
     {"thinking": {"type": "adaptive"}, "temperature": 1, "top_p": 0.97}, OLD, None,
     "unchanged", "t-full", []),
    ("thinking sampling top_p above 1", "t-full",
     {"thinking": {"type": "adaptive"}, "top_p": 1.5}, OLD, None,
     "adjusted", "t-full", ["top_p: 1.5 → 1.0"]),
    ("thinking sampling without thinking", "t-full",
     {"thinking": {"type": "disabled"}, "temperature": 0.2, "top_k": 3}, OLD, None,
     "unchanged", "t-full", []),
    ("thinking sampling strip drops thinking", "t-full",
     {"thinking": {"type": "adaptive"}, "temperature": 0.2}, OLD, {"thinking_sampling": "strip"},
     "adjusted", "t-full", ['thinking: {"type":"adaptive"} → (absent)']),
    ("thinking sampling reject", "t-full",
     {"thinking": {"type": "adaptive"}, "temperature": 0.2}, OLD, {"thinking_sampling": "reject"},
     "rejected", None, []),
    ("always-on thinking, no thinking parameter", "t-adaptive",
     {"temperature": 0.2, "top_k": 4}, OLD, None,
     "adjusted", "t-adaptive", ["temperature: 0.2 → (absent)", "top_k: 4 → (absent)"]),
    ("always-on thinking can't be stripped", "t-adaptive",
     {"thinking": {"type": "adaptive"}, "temperature": 0.2}, OLD, {"thinking_sampling": "strip"},
     "adjusted", "t-adaptive", ["temperature: 0.2 → (absent)"]),
    ("thinking sampling under 2026-10-21 is just stripped", "t-full",
     {"thinking": {"type": "adaptive"}, "temperature": 0.2}, NEW, None,
     "adjusted", "t-full", ["temperature: 0.2 → (absent)"]),
    # context_window_limit
    ("window too small", "t-small", {"messages": [user({"type": "text", "text": "x" * 40_000})]},
     OLD, None, "rerouted", "t-full", ["model: t-small → t-full"]),
    ("window reject", "t-small", {"messages": [user({"type": "text", "text": "x" * 40_000})]},
     OLD, {"context_window": "reject"}, "rejected", None, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "fields", "version", "actions", "outcome", "chosen", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rules(
    model: str,
    fields: dict[str, Any],
    version: str,
    actions: dict[str, str] | None,
    outcome: str,
    chosen: str | None,
    expected: list[str],
) -> None:
    result = run(body(model, **fields), policy(actions) if actions else None, api_version=version)
    assert result.decision.outcome == outcome, result.decision.explain()
    assert result.decision.model == chosen
    assert changes(result) == expected


def test_dropping_thinking_for_max_tokens_is_noted() -> None:
    request = body("t-enabled", thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=900)
    decision = run(request).decision
    assert decision.outcome == "adjusted"
    assert any("raising max_tokens" in note for note in decision.notes), decision.notes


def test_max_tokens_is_never_raised() -> None:
    for max_tokens in (1, 512, 1024, 1025, 2048):
        for model in ("t-full", "t-enabled", "t-tiny", "t-adaptive"):
            thinking = {"type": "enabled", "budget_tokens": 4096}
            result = run(body(model, thinking=thinking, max_tokens=max_tokens))
            sent = result.body.get("max_tokens")
            assert sent is None or sent <= max_tokens, result.decision.explain()


def test_reroute_is_no_answer_to_a_rule_no_model_escapes() -> None:
    # No model accepts sampling parameters under 2026-10-21: rerouting can't help, so
    # `reroute` (here the blanket `on_unsupported`) reads as the rule's default, strip.
    blanket = Policy.from_dict({"version": 1, "defaults": {"on_unsupported": "reroute"}})
    result = run(body("t-full", top_k=3), blanket, api_version=NEW)
    assert result.decision.outcome == "adjusted"
    assert changes(result) == ["top_k: 3 → (absent)"]


def test_too_big_for_every_known_window_goes_where_the_limit_is_unknown() -> None:
    huge = body("t-full", messages=[user({"type": "text", "text": "x" * 4_100_000})])
    result = run(huge)
    assert result.decision.model == "t-unknown"  # the only model without a stated window
    assert result.decision.candidates[0].reason == (
        "context window 1000000 < estimated input 1025004 tokens"
    )


@pytest.mark.parametrize(
    ("messages", "rule_path"),
    [
        ([user({"type": "text", "text": "q"}), assistant(TEXT_DOCUMENT)],
         "messages[1].content[0]: a document block in an assistant turn"),
        ([user({"type": "text", "text": "q", "citations": [{"type": "char_location"}]})],
         "messages[0].content[0]: a user text block with citations"),
        # Inside a search_result counts as the user turn's own text, wherever it sits.
        ([user({"type": "tool_result", "tool_use_id": "t", "content": [SEARCH_RESULT_CITED]})],
         "messages[0].content[0].content[0].content[0]: a user text block with citations"),
    ],
)  # fmt: skip
def test_content_rules_reject_under_the_new_version_only(
    messages: list[dict[str, Any]], rule_path: str
) -> None:
    request = body("t-full", messages=messages)
    new = run(request, api_version=NEW)
    assert new.decision.outcome == "rejected"
    assert new.decision.reason is not None and new.decision.reason.startswith(rule_path)
    assert "never edits message content" in new.decision.reason
    assert new.body is request
    assert run(request, api_version=OLD).decision.outcome == "unchanged"
    # No policy can make caproute edit the content instead.
    strip_everything = Policy.from_dict({"version": 1, "defaults": {"on_unsupported": "strip"}})
    assert run(request, strip_everything, api_version=NEW).decision.outcome == "rejected"


@pytest.mark.parametrize(
    "block",
    [
        # A tool's result quoting cited text: not a user turn's own text block.
        {"type": "tool_result", "tool_use_id": "t", "content": [CITED_TEXT]},
        # A content document's text: the document's, not the turn's.
        {"type": "document", "source": {"type": "content", "content": [CITED_TEXT]}},
    ],
)
def test_content_rules_cover_only_the_shapes_the_new_version_refuses(
    block: dict[str, Any],
) -> None:
    # api-facts §0 names two shapes: a document directly inside an assistant turn, and
    # citations in a user text block (directly or inside search_result). Nested
    # elsewhere, the same blocks are accepted, so refusing them locally would refuse a
    # request the API serves.
    request = body("t-full", messages=[user(block)])
    assert run(request, api_version=NEW).decision.outcome == "unchanged"


def test_rule_names_are_unique_and_documented() -> None:
    names = [r.name for r in CANDIDATE_RULES] + [r.name for r in REQUEST_RULES]
    assert len(names) == len(set(names)) == 10
    assert all(r.doc.strip() for r in (*CANDIDATE_RULES, *REQUEST_RULES))
