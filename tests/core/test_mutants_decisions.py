"""Decisions as the shells show them (headers), the changes a batch item reports,
and an adjustment superseded by dropping thinking: mutmut found these free to change."""

from __future__ import annotations

from catalogue import REGISTRY, body, policy, run

from caproute import PolicyEngine


def test_decision_headers_are_single_line_ascii_and_list_every_change() -> None:
    decision = run(body("t-full", thinking={"type": "adaptive"}, temperature=0.5, top_k=3)).decision
    assert decision.header_values() == {
        "caproute-outcome": "adjusted",
        "caproute-model": "t-full",
        "caproute-requested-model": "t-full",
        "caproute-changes": "temperature: 0.5 -> (absent); top_k: 3 -> (absent)",
    }
    odd = run(body("t-x\ny")).decision  # passed through, its name kept as sent
    assert odd.header_values()["caproute-requested-model"] == "t-x y"
    assert run(body("t-full")).decision.header_values()["caproute-changes"] == "none"


def test_a_batch_items_changes_keep_their_action_and_reason_and_the_registry_age() -> None:
    item = body("t-full", temperature=0.5, thinking={"type": "adaptive"})
    batch = {"requests": [{"custom_id": "a", "params": item}]}
    decision = PolicyEngine(REGISTRY).route(batch, endpoint="batch", now=1_500.0).decision
    assert [(c.path, c.action, c.reason) for c in decision.changes] == [
        ("requests[0].params.temperature", "strip", "temperature is refused with thinking on")
    ]
    assert decision.registry_age_s == 500.0


def test_dropping_thinking_supersedes_the_adjustments_made_to_it() -> None:
    # t-tiny: max_tokens clamped to 1000 leaves no room for a budget, so thinking is
    # switched to adaptive; the policy then drops thinking for the sampling: only the
    # removal is left, with its own reason.
    request = body(
        "t-tiny",
        thinking={"type": "enabled", "budget_tokens": 1500},
        max_tokens=4000,
        temperature=0.2,
    )
    decision = run(request, policy({"thinking_sampling": "strip"})).decision
    assert [str(c) for c in decision.changes] == [
        "max_tokens: 4000 → 1000",
        'thinking: {"budget_tokens":1500,"type":"enabled"} → (absent)',
    ]
    assert decision.changes[1].reason == (
        "thinking refuses the request's sampling (the policy keeps sampling)"
    )


def test_a_container_whose_every_key_is_stripped_goes_as_a_whole() -> None:
    fmt = {"type": "json_schema", "schema": {"type": "object"}}
    request = body("t-unknown", output_config={"effort": "max", "format": fmt})
    decision = run(request, policy({"effort": "strip", "structured_outputs": "strip"})).decision
    assert [str(c) for c in decision.changes] == [
        'output_config: {"effort":"max","format":{"schema":{"type":"object"},'
        '"type":"json_schema"}} → (absent)'
    ]
