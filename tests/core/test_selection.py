"""Selection and capability fixes: every family, every action, and the no-policy defaults."""

from __future__ import annotations

from typing import Any

import pytest
from catalogue import (
    IMAGE,
    PDF,
    REGISTRY,
    TEXT_DOCUMENT,
    assistant,
    body,
    changes,
    policy,
    run,
    user,
)

from caproute import Registry
from caproute._core.learned_facts import LearnedFact
from caproute._core.policy import Policy

CITED_DOC = {**TEXT_DOCUMENT, "citations": {"enabled": True}}
FORMAT = {"type": "json_schema", "schema": {"type": "object"}}
WEB_SEARCH = {"type": "web_search_20260318", "name": "web_search"}
CODE_EXEC = {"type": "code_execution_20260120", "name": "code_execution"}
CALLABLE_TOOL = {
    "name": "lookup",
    "input_schema": {"type": "object"},
    "allowed_callers": ["direct", "code_execution_20250825"],
}

# (id, requested model, body fields, policy actions or None, outcome, chosen, changes)
CASES: list[tuple[str, str, dict[str, Any], dict[str, str] | None, str, str | None, list[str]]] = [
    # -- effort: nearest level, downwards first, then upwards; none at all → removed
    ("effort down", "t-adaptive", {"output_config": {"effort": "xhigh"}}, None,
     "adjusted", "t-adaptive", ["output_config.effort: xhigh → high"]),
    ("effort down first", "t-ladder", {"output_config": {"effort": "high"}}, None,
     "adjusted", "t-ladder", ["output_config.effort: high → medium"]),
    ("effort up", "t-ladder", {"output_config": {"effort": "low"}}, None,
     "adjusted", "t-ladder", ["output_config.effort: low → medium"]),
    ("effort none at all", "t-enabled",
     {"output_config": {"effort": "max", "format": FORMAT}}, None,
     "adjusted", "t-enabled", ["output_config.effort: max → (absent)"]),
    ("effort strip", "t-ladder", {"output_config": {"effort": "high"}}, {"effort": "strip"},
     "adjusted", "t-ladder", ['output_config: {"effort":"high"} → (absent)']),
    ("effort reroute", "t-ladder", {"output_config": {"effort": "high"}}, {"effort": "reroute"},
     "rerouted", "t-full", ["model: t-ladder → t-full"]),
    ("effort reject", "t-ladder", {"output_config": {"effort": "high"}}, {"effort": "reject"},
     "rejected", None, []),
    # -- thinking: enabled ↔ adaptive, disabled → omitted, between_tools → disabled
    ("enabled → adaptive", "t-adaptive",
     {"thinking": {"type": "enabled", "budget_tokens": 1500}}, None, "adjusted", "t-adaptive",
     ["thinking.type: enabled → adaptive", "thinking.budget_tokens: 1500 → (absent)"]),
    ("adaptive → enabled", "t-enabled",
     {"thinking": {"type": "adaptive"}, "max_tokens": 8000}, None, "adjusted", "t-enabled",
     ["thinking.type: adaptive → enabled", "thinking.budget_tokens: (absent) → 6000"]),
    ("disabled cannot be", "t-adaptive", {"thinking": {"type": "disabled"}}, None,
     "adjusted", "t-adaptive", ['thinking: {"type":"disabled"} → (absent)']),
    ("between_tools → disabled", "t-enabled", {"thinking": {"type": "between_tools"}}, None,
     "adjusted", "t-enabled", ["thinking.type: between_tools → disabled"]),
    ("no thinking at all", "t-small", {"thinking": {"type": "adaptive"}}, None,
     "adjusted", "t-small", ['thinking: {"type":"adaptive"} → (absent)']),
    ("thinking strip", "t-adaptive", {"thinking": {"type": "enabled", "budget_tokens": 1500}},
     {"thinking": "strip"}, "adjusted", "t-adaptive",
     ['thinking: {"budget_tokens":1500,"type":"enabled"} → (absent)']),
    ("thinking reroute", "t-adaptive", {"thinking": {"type": "enabled", "budget_tokens": 1500}},
     {"thinking": "reroute"}, "rerouted", "t-full", ["model: t-adaptive → t-full"]),
    ("thinking reject", "t-adaptive", {"thinking": {"type": "enabled", "budget_tokens": 1500}},
     {"thinking.types.enabled": "reject"}, "rejected", None, []),
    # -- content: rerouted by default (same line first), never stripped
    ("image same line", "t-small", {"messages": [user(IMAGE)]}, None,
     "rerouted", "t-gamma-vision", ["model: t-small → t-gamma-vision"]),
    ("image adjust means reroute", "t-small", {"messages": [user(IMAGE)]},
     {"image_input": "adjust"}, "rerouted", "t-gamma-vision", ["model: t-small → t-gamma-vision"]),
    ("image reject", "t-small", {"messages": [user(IMAGE)]}, {"image_input": "reject"},
     "rejected", None, []),
    ("pdf: same line first", "t-enabled", {"messages": [user(PDF)]}, None,
     "rerouted", "t-ladder", ["model: t-enabled → t-ladder"]),
    ("batch", "t-enabled", {}, None, "unchanged", "t-enabled", []),
    # -- citations: reroute by default, strip on request (only the key goes)
    ("citations reroute", "t-enabled", {"messages": [user(CITED_DOC)]}, None,
     "rerouted", "t-ladder", ["model: t-enabled → t-ladder"]),
    ("citations strip", "t-enabled", {"messages": [user(CITED_DOC)]}, {"citations": "strip"},
     "adjusted", "t-enabled", ['messages[0].content[0].citations: {"enabled":true} → (absent)']),
    # -- structured outputs
    ("format reroute", "t-adaptive", {"output_config": {"format": FORMAT}}, None,
     "rerouted", "t-full", ["model: t-adaptive → t-full"]),
    ("structured strip", "t-adaptive",
     {"output_config": {"format": FORMAT, "effort": "low"},
      "tools": [{"name": "a", "input_schema": {}, "strict": True}]},
     {"structured_outputs": "strip"}, "adjusted", "t-adaptive",
     ['output_config.format: {"schema":{"type":"object"},"type":"json_schema"} → (absent)',
      "tools[0].strict: true → (absent)"]),
    # -- server tools, both registry shapes
    ("web search reroute", "t-adaptive", {"tools": [WEB_SEARCH]}, None,
     "rerouted", "t-full", ["model: t-adaptive → t-full"]),
    ("web search strip", "t-adaptive", {"tools": [CODE_EXEC, WEB_SEARCH]},
     {"server_tools.web_search": "strip"}, "adjusted", "t-adaptive",
     ['tools[1]: {"name":"web_search","type":"web_search_20260318"} → (absent)']),
    ("old shape code execution", "t-old-shape", {"tools": [CODE_EXEC]}, None,
     "unchanged", "t-old-shape", []),
    ("old shape without code execution", "t-old-noexec", {"tools": [CODE_EXEC], "max_tokens": 800},
     None,
     "rerouted", "t-tiny", ["model: t-old-noexec → t-tiny"]),
    # Before `server_tools`, `code_execution` meant the tools: it says nothing about
    # code calling the request's tools (2.x meaning), so a model known to have that wins.
    ("old shape: programmatic tool calling unstated", "t-old-shape",
     {"tools": [CALLABLE_TOOL], "max_tokens": 800}, None,
     "rerouted", "t-tiny", ["model: t-old-shape → t-tiny"]),
    ("allowed_callers strip", "t-old-noexec", {"tools": [CALLABLE_TOOL]},
     {"code_execution": "strip"}, "adjusted", "t-old-noexec",
     ['tools[0].allowed_callers: ["direct","code_execution_20250825"] → ["direct"]']),
    # -- context management: unsupported edits are dropped by default
    ("one edit dropped", "t-adaptive",
     {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"},
                                       {"type": "compact_20260112"}]}},
     None, "adjusted", "t-adaptive",
     ['context_management.edits[1]: {"type":"compact_20260112"} → (absent)']),
    ("last edit removes context_management", "t-adaptive",
     {"context_management": {"edits": [{"type": "compact_20260112"}]}},
     None, "adjusted", "t-adaptive",
     ['context_management: {"edits":[{"type":"compact_20260112"}]} → (absent)']),
    ("context edit reroute", "t-adaptive",
     {"context_management": {"edits": [{"type": "compact_20260112"}]}},
     {"context_management": "reroute"}, "rerouted", "t-full", ["model: t-adaptive → t-full"]),
    ("compaction reroute", "t-small", {"compaction": {"type": "summarize"}}, None,
     "rerouted", "t-gamma-vision", ["model: t-small → t-gamma-vision"]),
    ("compaction strip", "t-small", {"compaction": {"type": "summarize"}},
     {"compaction": "strip"}, "adjusted", "t-small",
     ['compaction: {"type":"summarize"} → (absent)']),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "fields", "actions", "outcome", "chosen", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_capability_actions(
    model: str,
    fields: dict[str, Any],
    actions: dict[str, str] | None,
    outcome: str,
    chosen: str | None,
    expected: list[str],
) -> None:
    result = run(body(model, **fields), policy(actions) if actions else None)
    decision = result.decision
    assert decision.outcome == outcome, decision.explain()
    assert decision.model == chosen
    if outcome == "rejected":
        assert decision.reason and "the policy says reject" in decision.reason
        assert result.body is not None and result.body["model"] == model
    else:
        assert changes(result) == expected
        assert result.body["model"] == (chosen if outcome == "rerouted" else model)


def test_batch_capability_is_checked_per_item() -> None:
    batch = {"requests": [{"custom_id": "a", "params": body("t-enabled")}]}
    result = run(batch, endpoint="batch")
    assert result.decision.outcome == "rerouted"
    assert result.body["requests"][0]["params"]["model"] == "t-ladder"
    assert result.decision.items[0][1].candidates[0].reason == "lacks batch"


def test_passed_over_candidates_say_why() -> None:
    result = run(body("t-small", messages=[user(IMAGE, PDF)]))
    reasons = {c.model: c.reason for c in result.decision.candidates}
    assert reasons == {
        "t-small": "lacks image_input (messages[0].content[0])",
        "t-gamma-vision": None,
    }
    assert result.decision.reason == "t-small: lacks image_input (messages[0].content[0])"


def test_retired_models_are_never_chosen() -> None:
    result = run(body("t-retired"))
    assert result.decision.outcome == "rerouted"
    assert result.decision.model == "t-full"
    assert result.decision.candidates[0].reason == "retired"
    # Not even when a route names them first.
    named = run(body("t-full"), policy(candidates=["t-retired", "t-full"]))
    assert named.decision.model == "t-full"
    assert named.decision.candidates[0].reason == "retired"


def test_a_move_to_another_line_is_noted_in_plain_words() -> None:
    # t-small (gamma) has no PDF input; the nearest model that has it is t-gamma-vision
    # (same line): a route that lists only another line's model must say so.
    moved = run(body("t-small", messages=[user(PDF)]), policy(candidates=["t-full"]))
    assert moved.decision.model == "t-full"
    assert "t-full is in the alpha line, t-small in the gamma line: likely another price class" in (
        moved.decision.notes
    )
    same = run(body("t-small", messages=[user(PDF)]))
    assert same.decision.model == "t-gamma-vision"
    assert not any("price class" in note for note in same.decision.notes)


def test_excluded_models_are_skipped_aliases_included() -> None:
    result = run(body("t-full"), exclude=("t-full-latest",))
    assert result.decision.model == "t-adaptive"  # same line, next newest
    assert result.decision.candidates[0].reason.startswith("excluded")


def test_deprecated_models_serve_when_requested_and_replace_only_when_allowed() -> None:
    # Default (`requested`): a deprecated model serves a request that names it...
    assert run(body("t-deprecated")).decision.outcome == "unchanged"
    # ...but is never picked in another model's place.
    pdf = body("t-enabled", messages=[user(PDF)])
    passed = run(pdf)
    assert passed.decision.model == "t-ladder"
    reasons = {c.model: c.reason for c in passed.decision.candidates}
    assert "used only when requested" in (reasons["t-deprecated"] or "")
    # `true`: deprecated models are alternatives too.
    allowing = Policy.from_dict({"version": 1, "defaults": {"allow_deprecated": True}})
    assert run(pdf, allowing).decision.model == "t-deprecated"
    # `false`: never, not even when requested.
    refusing = Policy.from_dict({"version": 1, "defaults": {"allow_deprecated": False}})
    result = run(body("t-deprecated"), refusing)
    assert result.decision.model == "t-enabled"
    assert "deprecated" in (result.decision.candidates[0].reason or "")


def test_unknown_capabilities_follow_the_route_setting() -> None:
    request = body("t-unknown", messages=[user(IMAGE)])
    # prefer-known (the default): a model known to take images wins.
    preferred = run(request).decision
    assert preferred.outcome == "rerouted"
    assert preferred.model == "t-full"
    assert preferred.candidates[0].reason == (
        "is not known to support image_input (messages[0].content[0])"
    )
    # supported: gamble on the requested model.
    assert run(request, policy(unknown="supported")).decision.outcome == "unchanged"
    # unsupported: like prefer-known here; it never gambles (see below).
    strict = run(request, policy(unknown="unsupported"))
    assert strict.decision.model == "t-full"


def test_prefer_known_gambles_only_when_nothing_is_known_to_work() -> None:
    request = body("t-unknown", messages=[user(IMAGE)])
    only_requested = {"candidates": ["requested"]}
    gamble = run(request, policy(**only_requested)).decision
    assert gamble.outcome == "unchanged"
    assert any("doesn't state image_input" in note for note in gamble.notes), gamble.notes
    never = run(request, policy(unknown="unsupported", **only_requested)).decision
    assert never.outcome == "rejected"
    assert "is not known to support image_input" in (never.reason or "")


def test_prefer_known_adjusts_to_a_known_value_instead_of_gambling() -> None:
    # t-unknown states nothing: its effort levels are unknown, so effort is removed
    # rather than sent as is; `supported` sends it unchanged.
    request = body("t-unknown", output_config={"effort": "max"})
    known = run(request, policy(candidates=["requested"]))
    assert changes(known) == ['output_config: {"effort":"max"} → (absent)']
    assert run(request, policy(unknown="supported")).decision.outcome == "unchanged"


def test_unknown_never_triggers_a_policy_reject() -> None:
    # `reject` refuses what a model is known to lack, not what the registry doesn't state.
    request = body("t-unknown", messages=[user(IMAGE)])
    rejecting = policy({"image_input": "reject"})
    decision = run(request, rejecting).decision
    assert decision.outcome == "rerouted"
    assert decision.model == "t-full"


def test_route_candidates_globs_and_requested() -> None:
    route = policy(candidates=["t-gamma-*", "requested"], match={"model": "t-small"})
    result = run(body("t-small"), route)
    assert result.decision.route == "test"
    assert result.decision.model == "t-gamma-vision"
    assert result.decision.reason == "the route does not list t-small"
    # Not matching the route: the defaults apply.
    assert run(body("t-full"), route).decision.outcome == "unchanged"


def test_route_without_requested_never_falls_back_to_it() -> None:
    result = run(body("t-full", messages=[user(IMAGE)]), policy(candidates=["t-small"]))
    assert result.decision.outcome == "rejected"
    assert result.decision.reason == (
        "no candidate can serve the request (t-small: lacks image_input (messages[0].content[0]))"
    )


def test_nothing_can_serve_the_request() -> None:
    only_small = Registry.from_models([m for m in REGISTRY if m.id == "t-small"])
    result = run(body("t-small", messages=[user(IMAGE)]))
    assert result.decision.outcome == "rerouted"
    from caproute._core.engine import PolicyEngine

    alone = PolicyEngine(only_small).route(body("t-small", messages=[user(IMAGE)]))
    assert alone.decision.outcome == "rejected"
    assert alone.decision.candidates[0].reason == "lacks image_input (messages[0].content[0])"


HISTORY = [
    user({"type": "text", "text": "q"}),
    assistant({"type": "thinking", "thinking": "hmm", "signature": "sig"}),
    user({"type": "text", "text": "and this?"}, IMAGE),
]


def test_thinking_history_keeps_its_model_when_it_is_a_candidate() -> None:
    route = policy(candidates=["t-full", "requested"])
    result = run(body("t-adaptive", messages=HISTORY[:2] + [user({"type": "text", "text": "x"})]),
                 route)  # fmt: skip
    assert result.decision.outcome == "unchanged"
    assert result.decision.model == "t-adaptive"


def test_thinking_history_reroute_is_noted() -> None:
    result = run(body("t-small", messages=HISTORY))
    assert result.decision.outcome == "rerouted"
    (note,) = result.decision.notes
    assert "messages[1].content[0]" in note and "t-gamma-vision" in note


def test_unknown_requested_model_passes_through() -> None:
    request = body("claude-nope", output_config={"effort": "max"})
    result = run(request)
    assert result.body is request
    assert result.decision.outcome == "passthrough"
    assert result.decision.reason == (
        "model 'claude-nope' is unknown to the registry; forwarded unchanged"
    )
    routed = run(request, policy(candidates=["requested", "t-ladder"]))
    assert routed.decision.model == "t-ladder"
    assert routed.decision.candidates[0].reason == "not in the registry"


def test_a_reject_policy_refuses_nothing_an_older_answer_leaves_unstated() -> None:
    # An answer from before SDK 1.15 has no `thinking.types.between_tools`. Reading that
    # as "lacks" made `thinking: reject` refuse a request the model serves; unknown only
    # passes the model over, and with nothing known to work the request goes as sent.
    older = Registry.from_models(
        [
            {
                "id": "claude-older-1",
                "type": "model",
                "capabilities": {
                    "thinking": {
                        "supported": True,
                        "types": {
                            "adaptive": {"supported": True},
                            "enabled": {"supported": True},
                            "disabled": {"supported": True},
                        },
                    }
                },
            }
        ]
    )
    from caproute._core.engine import PolicyEngine

    request = body("claude-older-1", thinking={"type": "between_tools"})
    result = PolicyEngine(older, policy({"thinking": "reject"})).route(request)
    assert result.decision.outcome == "unchanged", result.decision.explain()
    assert result.body is request


def test_an_old_answer_never_refuses_programmatic_tool_calling_on_its_own() -> None:
    # Before `server_tools`, `code_execution: false` said the model has no code-execution
    # tools; it said nothing about code calling tools. With no model known to do that,
    # the request goes as sent rather than being refused locally.
    older = Registry.from_models(
        [m for m in REGISTRY.models if m.id == "t-old-noexec"],
    )
    from caproute._core.engine import PolicyEngine

    callable_tool = {**CALLABLE_TOOL}
    request = body("t-old-noexec", tools=[callable_tool])
    result = PolicyEngine(older).route(request)
    assert result.decision.outcome == "unchanged", result.decision.explain()
    assert any("doesn't state" in note for note in result.decision.notes)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"output_config": {"effort": "ultra"}}, "effort.ultra"),
        (
            {"context_management": {"edits": [{"type": "clear_everything_20270101"}]}},
            "context_management.clear_everything_20270101",
        ),
        ({"thinking": {"type": "dreaming"}}, "thinking.types.dreaming"),
    ],
    ids=["effort-level", "edit-type", "thinking-type"],
)
def test_a_value_newer_than_caproute_and_the_registry_goes_as_sent(
    fields: dict[str, Any], path: str
) -> None:
    request = body("t-full", **fields)
    result = run(request)
    assert result.decision.outcome == "unchanged", result.decision.explain()
    assert result.body is request
    assert any(path in note and "for the API to judge" in note for note in result.decision.notes)

    # Once the registry states it (the live list, or a fact learned from a refusal),
    # it is routed like any other capability.
    learned = REGISTRY.with_learned(
        [LearnedFact("t-full", path, False, 1.0, float("inf"), "a 400 named it")]
    )
    from caproute._core.engine import PolicyEngine

    again = PolicyEngine(learned).route(request)
    assert again.decision.outcome != "unchanged", again.decision.explain()
    assert not any("for the API to judge" in note for note in again.decision.notes)


def test_a_level_caproute_knows_is_judged_even_when_no_model_states_it() -> None:
    # `xhigh` is optional in the API's types: a registry where no model states it still
    # says (by its absence beside stated siblings) that these models lack it.
    no_xhigh = Registry.from_models([m for m in REGISTRY.models if m.id == "t-adaptive"])
    from caproute._core.engine import PolicyEngine

    request = body("t-adaptive", output_config={"effort": "xhigh"})
    result = PolicyEngine(no_xhigh).route(request)
    assert result.decision.outcome == "adjusted", result.decision.explain()
