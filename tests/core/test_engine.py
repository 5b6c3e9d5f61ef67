"""The router façade: shapes, endpoints, batches, determinism and the decision record."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from typing import Any

import pytest
from catalogue import IMAGE, PDF, REGISTRY, SOURCE, body, policy, run, user

from caproute import PolicyEngine, route
from caproute._core.policy import Policy


@pytest.mark.parametrize(
    ("request_body", "reason"),
    [
        ([{"model": "t-full"}], "the body is not a JSON object (it is a list)"),
        (None, "the body is not a JSON object (it is a null)"),
        ({"model": "t-full", "max_tokens": 10}, "messages: missing or not a list"),
        ({"messages": [], "max_tokens": 10}, "model: missing or not a string"),
        ({"model": "t-full", "messages": []}, "max_tokens: missing or not an integer"),
    ],
)
def test_bodies_it_cannot_understand_pass_through_untouched(request_body: Any, reason: str) -> None:
    result = run(request_body)
    assert result.body is request_body
    assert result.decision.outcome == "passthrough"
    assert result.decision.reason == reason
    assert result.decision.model is None


def test_count_tokens_needs_no_max_tokens() -> None:
    request = {"model": "t-small", "messages": [user(IMAGE)]}
    result = run(request, endpoint="count_tokens")
    assert result.decision.outcome == "rerouted"
    assert result.body == {**request, "model": "t-gamma-vision"}


def test_unchanged_requests_return_the_same_object() -> None:
    request = body("t-full", messages=[user(IMAGE, PDF)], output_config={"effort": "max"})
    result = run(request)
    assert result.body is request
    assert result.decision.outcome == "unchanged"
    assert result.decision.model == "t-full"
    assert result.decision.needs == ("effort.max", "image_input", "pdf_input")
    assert result.decision.changes == ()


def test_aliases_are_kept_when_the_model_stays() -> None:
    result = run(body("t-full-latest", output_config={"effort": "max"}))
    assert result.decision.outcome == "unchanged"
    assert result.decision.model == "t-full-latest"
    assert result.decision.candidates[0].model == "t-full"


def _busy_request() -> dict[str, Any]:
    return body(
        "t-small",
        max_tokens=9_000,
        temperature=0.5,
        thinking={"type": "enabled", "budget_tokens": 8_000},
        output_config={"effort": "xhigh"},
        tool_choice={"type": "any"},
        tools=[{"name": "a", "input_schema": {}, "strict": True}],
        messages=[
            user({"type": "text", "text": "look"}, IMAGE, PDF),
            {"role": "assistant", "content": "ok"},
            user({"type": "tool_result", "tool_use_id": "x", "content": [IMAGE]}),
        ],
    )


def test_input_is_never_mutated_and_content_blocks_are_identical() -> None:
    request = _busy_request()
    snapshot = copy.deepcopy(request)
    result = run(request, api_version="2026-10-21")
    assert request == snapshot
    assert result.decision.outcome == "rerouted"
    assert result.body["messages"] is request["messages"]
    for new, old in zip(result.body["messages"], request["messages"], strict=True):
        assert new is old


def test_routing_is_deterministic_and_idempotent() -> None:
    first = run(_busy_request(), api_version="2026-10-21")
    second = run(_busy_request(), api_version="2026-10-21")
    assert first.body == second.body
    assert first.decision == second.decision
    again = run(first.body, api_version="2026-10-21")
    assert again.decision.outcome == "unchanged", again.decision.explain()
    assert again.body is first.body


def test_batch_items_are_routed_and_listed() -> None:
    batch = {
        "requests": [
            {"custom_id": "plain", "params": body("t-full")},
            {"custom_id": "vision", "params": body("t-small", messages=[user(IMAGE)])},
            {"custom_id": "clamped", "params": body("t-full", max_tokens=500_000)},
            {"custom_id": "odd", "params": "not a body"},
        ]
    }
    snapshot = copy.deepcopy(batch)
    result = run(batch, endpoint="batch")
    assert batch == snapshot
    decision = result.decision
    assert decision.outcome == "rerouted"
    assert [(cid, d.outcome) for cid, d in decision.items] == [
        ("plain", "unchanged"),
        ("vision", "rerouted"),
        ("clamped", "adjusted"),
        ("odd", "passthrough"),
    ]
    assert [str(c) for c in decision.changes] == [
        "requests[1].params.model: t-small → t-gamma-vision",
        "requests[2].params.max_tokens: 500000 → 128000",
    ]
    assert decision.needs == ("batch", "image_input")
    routed = result.body["requests"]
    assert routed[0] is batch["requests"][0]
    assert routed[1]["params"]["model"] == "t-gamma-vision"
    assert routed[1]["params"]["messages"] is batch["requests"][1]["params"]["messages"]
    assert routed[3] is batch["requests"][3]
    assert "[vision] rerouted t-small → t-gamma-vision" in decision.explain()


def test_a_batch_with_a_rejected_item_is_rejected() -> None:
    batch = {
        "requests": [
            {"custom_id": "clamped", "params": body("t-full", max_tokens=500_000)},
            {"custom_id": "bad", "params": body("t-full", top_k=1)},
        ]
    }
    result = run(batch, endpoint="batch", api_version="2026-10-21",
                 policy=policy({"sampling": "reject"}))  # fmt: skip
    assert result.body is batch
    assert result.decision.outcome == "rejected"
    assert result.decision.reason == (
        "1 of 2 batch requests rejected: [bad] t-full: top_k not accepted under "
        "anthropic-version 2026-10-21 (the policy says reject)"
    )


def test_a_batch_item_asking_for_a_stream_is_refused_locally() -> None:
    # Message Batches run non-streaming requests only: every model errors `stream: true`
    # (api-facts §4.1), so no model can serve the item and the batch is not sent.
    plain = {"custom_id": "plain", "params": body("t-full")}
    streamed = {"custom_id": "streamed", "params": body("t-full", stream=True)}
    # The same parameters first without a stream: the fast path must not wave it through.
    assert run({"requests": [plain]}, endpoint="batch").decision.outcome == "unchanged"
    result = run({"requests": [plain, streamed]}, endpoint="batch")
    assert result.decision.outcome == "rejected"
    assert result.decision.reason is not None
    assert result.decision.reason.startswith("1 of 2 batch requests rejected: [streamed] stream:")
    # `stream: false` is fine, and a streaming Messages call is none of this rule's business.
    quiet = {"custom_id": "quiet", "params": body("t-full", stream=False)}
    assert run({"requests": [quiet]}, endpoint="batch").decision.outcome == "unchanged"
    assert run(body("t-full", stream=True)).decision.outcome == "unchanged"


def test_a_batch_item_billing_a_user_profile_is_refused_locally() -> None:
    # api-facts §4.1: `billing_policy.bill_to: "user_profile"` errors a batch request.
    billing = {"type": "billing_policy", "bill_to": "user_profile"}
    item = {"custom_id": "p", "params": body("t-full", billing_policy=billing)}
    result = run({"requests": [item]}, endpoint="batch")
    assert result.decision.outcome == "rejected"
    assert "[p] billing_policy.bill_to:" in (result.decision.reason or "")
    yourself = {"custom_id": "s", "params": body("t-full", billing_policy={"bill_to": "self"})}
    assert run({"requests": [yourself]}, endpoint="batch").decision.outcome == "unchanged"
    assert run(body("t-full", billing_policy=billing)).decision.outcome == "unchanged"


@pytest.mark.parametrize(
    ("batch", "reason"),
    [({"requests": "x"}, "requests: missing or not a list"),
     ([], "the body is not a JSON object (it is a list)")],
)  # fmt: skip
def test_batch_shapes(batch: Any, reason: str) -> None:
    result = run(batch, endpoint="batch")
    assert result.decision.outcome == "passthrough"
    assert result.decision.reason == reason


def test_registry_source_and_age() -> None:
    decision = run(body(), now=1_090.0).decision
    assert decision.registry_source == SOURCE.describe()
    assert decision.registry_age_s == 90.0
    assert run(body()).decision.registry_age_s is None


def test_routes_match_on_metadata_and_headers() -> None:
    by_team = Policy.from_dict(
        {
            "version": 1,
            "routes": [
                {"name": "team-a", "match": {"metadata": {"user_id": "team-a-*"}},
                 "candidates": ["t-ladder"]},
                {"name": "research", "match": {"headers": {"x-team": "research"}},
                 "candidates": ["t-adaptive"]},
            ],
        }
    )  # fmt: skip
    team = run(body("t-full", metadata={"user_id": "team-a-7"}), by_team)
    assert (team.decision.route, team.decision.model) == ("team-a", "t-ladder")
    research = run(body("t-full"), by_team, headers={"X-Team": "research"})
    assert (research.decision.route, research.decision.model) == ("research", "t-adaptive")
    assert run(body("t-full"), by_team).decision.route is None


def test_module_route_matches_the_router() -> None:
    request = _busy_request()
    via_function = route(request, registry=REGISTRY, api_version="2026-10-21")
    via_router = PolicyEngine(REGISTRY).route(request, api_version="2026-10-21")
    assert via_function == via_router


def test_decision_is_json_ready_and_explains_itself() -> None:
    result = run(_busy_request(), api_version="2026-10-21")
    data = json.loads(json.dumps(result.decision.to_dict()))
    assert data["outcome"] == "rerouted"
    assert data["changes"][0] == {
        "path": "model",
        "before": "t-small",
        "after": "t-gamma-vision",
        "added": False,
        "removed": False,
        "action": "reroute",
        "reason": "t-small: lacks image_input (messages[0].content[1])",
    }
    text = result.decision.explain()
    assert "✗ t-small: lacks image_input (messages[0].content[1])" in text
    assert "thinking: " in text  # t-gamma-vision has no thinking: removed, with its reason


def test_the_fast_path_still_checks_the_context_window() -> None:
    router = PolicyEngine(REGISTRY)
    small = body("t-small", messages=[user({"type": "text", "text": "short"})])
    big = body("t-small", messages=[user({"type": "text", "text": "x" * 40_000})])
    assert router.route(small).decision.outcome == "unchanged"
    assert router.route(small).decision.outcome == "unchanged"  # served by the fast path
    rerouted = router.route(big)
    assert rerouted.decision.outcome == "rerouted"
    assert rerouted.decision.candidates[0].reason == (
        "context window 8000 < estimated input 10004 tokens"
    )


def test_the_fast_path_respects_exclude_and_routes() -> None:
    router = PolicyEngine(REGISTRY, policy(match={"metadata": {"user_id": "vip"}},
                                     candidates=["t-ladder"]))  # fmt: skip
    assert router.route(body("t-full")).decision.outcome == "unchanged"
    assert router.route(body("t-full"), exclude=["t-full"]).decision.model == "t-adaptive"
    vip = router.route(body("t-full", metadata={"user_id": "vip"}))
    assert vip.decision.model == "t-ladder"


def test_the_fast_path_gives_the_slow_paths_decision_with_the_current_age() -> None:
    router = PolicyEngine(REGISTRY)
    request = body("t-full")
    first = router.route(request, now=1_010.0).decision  # selection
    again = router.route(request, now=1_020.0).decision  # the fast path
    assert first.registry_age_s == 10.0
    assert again.registry_age_s == 20.0
    assert again == dataclasses.replace(first, registry_age_s=20.0)
    # Without an age (no `now`), the same frozen decision can be handed out again.
    assert router.route(request).decision == router.route(request).decision


def test_decision_extra_is_a_read_only_empty_dict_by_default() -> None:
    decision = run(body("t-full")).decision
    assert decision.extra == {}
    assert isinstance(decision.extra, dict)
    assert json.dumps(decision.extra) == "{}"
    assert copy.deepcopy(decision) == decision
    assert pickle.loads(pickle.dumps(decision)) == decision
    with pytest.raises(TypeError):
        decision.extra["attempt"] = 2  # type: ignore[index]
    assert {**decision.extra, "attempt": 2} == {"attempt": 2}


def test_a_stripped_schema_is_summarised_in_headers_but_kept_whole_in_the_record() -> None:
    # A structured-output schema of many kilobytes, stripped by policy on a model without
    # structured outputs: the one-line forms (response header, span attribute, log) must
    # stay short; the decision's record keeps every byte.
    schema = {
        "type": "object",
        "properties": {f"field_{i}": {"type": "string"} for i in range(400)},
    }
    request = body(
        "t-adaptive", output_config={"format": {"type": "json_schema", "schema": schema}}
    )
    result = run(request, policy({"structured_outputs": "strip"}))
    assert result.decision.outcome == "adjusted", result.decision.explain()
    header = result.decision.header_values()["caproute-changes"]
    assert len(header) < 400 and "chars)" in header
    header.encode("latin-1")  # a valid header value
    [change] = [c for c in result.decision.to_dict()["changes"] if c["before"]]
    assert schema == (change["before"].get("format") or change["before"])["schema"]
