"""Property tests: random catalogues and requests, the router's promises hold.

* the input is never mutated, and routing is deterministic;
* the routed body needs nothing the chosen model lacks (or the decision is a rejection
  with a reason) and respects every rule in the table;
* content blocks come out as the very same objects (unless a change names them);
* routing the output again changes nothing.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caproute import Registry, Support
from caproute._core.draft import MIN_THINKING_BUDGET, is_new_version
from caproute._core.engine import PolicyEngine
from caproute._core.features import detect
from caproute._core.policy import Policy, RouteSpec
from caproute._core.request_needs import format_path
from caproute._core.selection import Planner

LEAVES = [
    "batch",
    "citations",
    "code_execution",
    "image_input",
    "pdf_input",
    "structured_outputs",
    "server_tools.code_execution",
    "server_tools.web_search",
    "context_management.clear_tool_uses_20250919",
    "context_management.compact_20260112",
    "compaction.summarize",
    "effort.low",
    "effort.medium",
    "effort.high",
    "effort.xhigh",
    "effort.max",
    "thinking.types.adaptive",
    "thinking.types.enabled",
    "thinking.types.disabled",
    "thinking.types.between_tools",
]


def _capabilities(flags: dict[str, bool]) -> dict[str, Any]:
    caps: dict[str, Any] = {}
    for path, value in flags.items():
        node = caps
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {"supported": True})
        node[leaf] = {"supported": value}
    return caps


@st.composite
def catalogues(draw: st.DrawFn) -> Registry:
    count = draw(st.integers(1, 5))
    models = []
    for i in range(count):
        flags = draw(st.dictionaries(st.sampled_from(LEAVES), st.sampled_from([True, True, False])))
        models.append(
            {
                "id": f"m{i}",
                "line": draw(st.sampled_from(["a", "b", None])),
                "lifecycle": draw(st.sampled_from(["active", "active", "deprecated", "retired"])),
                "max_tokens": draw(st.sampled_from([1_000, 4_096, 64_000, None])),
                "max_input_tokens": draw(st.sampled_from([3_000, 200_000, 200_000, None])),
                "capabilities": _capabilities(flags),
            }
        )
    return Registry.from_models(models)


IMAGE = {"type": "image", "source": {"type": "url", "url": "https://x/i.png"}}
PDF = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                      "data": "JVBE" * 2_000}}  # fmt: skip
CITED = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"},
         "citations": {"enabled": True}}  # fmt: skip
TOOLS = [
    {"type": "web_search_20260318", "name": "web_search"},
    {"type": "code_execution_20260120", "name": "code_execution"},
    {"name": "strict_one", "input_schema": {"type": "object"}, "strict": True},
    {"name": "callable", "input_schema": {}, "allowed_callers": ["code_execution_20250825"]},
]
EDITS = [{"type": "clear_tool_uses_20250919"}, {"type": "compact_20260112"}]

user_blocks = st.lists(
    st.sampled_from(
        [
            {"type": "text", "text": "hello " * 50},
            {"type": "text", "text": "x" * 20_000},
            IMAGE,
            PDF,
            CITED,
            {"type": "tool_result", "tool_use_id": "t", "content": [IMAGE]},
            {"type": "mystery", "payload": [1, 2, 3]},
        ]
    ),
    min_size=1,
    max_size=3,
)
assistant_blocks = st.lists(
    st.sampled_from(
        [
            {"type": "text", "text": "answer"},
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "tool_use", "id": "t", "name": "callable", "input": {"q": "x"}},
        ]
    ),
    min_size=1,
    max_size=2,
)


@st.composite
def requests(draw: st.DrawFn, model_ids: list[str]) -> dict[str, Any]:
    turns = draw(st.integers(0, 2))
    messages: list[Any] = []
    for _ in range(turns):
        messages.append({"role": "user", "content": draw(user_blocks)})
        messages.append({"role": "assistant", "content": draw(assistant_blocks)})
    messages.append({"role": "user", "content": draw(user_blocks)})
    out: dict[str, Any] = {
        "model": draw(st.sampled_from([*model_ids, "unknown-model"])),
        "max_tokens": draw(st.sampled_from([500, 2_000, 50_000, 200_000])),
        "messages": messages,
    }
    if draw(st.booleans()):
        thinking: dict[str, Any] = {
            "type": draw(st.sampled_from(["enabled", "adaptive", "disabled", "between_tools"]))
        }
        budget = draw(st.sampled_from([None, 500, 1_500, 60_000]))
        if budget is not None and thinking["type"] == "enabled":
            thinking["budget_tokens"] = budget
        out["thinking"] = thinking
    output_config: dict[str, Any] = {}
    if draw(st.booleans()):
        output_config["effort"] = draw(st.sampled_from(["low", "medium", "high", "xhigh", "max"]))
    if draw(st.booleans()):
        output_config["format"] = {"type": "json_schema", "schema": {}}
    if output_config:
        out["output_config"] = output_config
    for name in draw(st.sets(st.sampled_from(["temperature", "top_p", "top_k"]))):
        out[name] = 1
    tools = draw(st.lists(st.sampled_from(TOOLS), unique_by=lambda t: t["name"], max_size=3))
    if tools:
        out["tools"] = tools
    if draw(st.booleans()):
        out["tool_choice"] = {"type": draw(st.sampled_from(["auto", "any", "tool", "none"]))}
    edits = draw(st.lists(st.sampled_from(EDITS), unique_by=lambda e: e["type"], max_size=2))
    if edits:
        out["context_management"] = {"edits": edits}
    if draw(st.booleans()):
        out["compaction"] = {"type": "summarize"}
    return out


POLICIES = [
    None,
    Policy.from_dict({"version": 1, "defaults": {"on_unsupported": "strip"}}),
    Policy.from_dict({"version": 1, "defaults": {"on_unsupported": "reroute"}}),
    Policy.from_dict({"version": 1, "defaults": {"unknown": "unsupported"}}),
    Policy.from_dict(
        {
            "version": 1,
            "routes": [
                {
                    "name": "r",
                    "candidates": ["m1", "requested", "m*"],
                    "actions": {"effort": "adjust", "citations": "strip"},
                }
            ],
        }
    ),
    Policy.from_dict(
        {
            "version": 1,
            "routes": [
                {
                    "name": "mixed",
                    "candidates": ["m2", "m0", "requested"],
                    "actions": {
                        "thinking": "reroute",
                        "max_tokens": "reroute",
                        "effort.max": "reroute",
                    },
                }
            ],
        }
    ),
    Policy.from_dict(
        {
            "version": 1,
            "defaults": {
                "actions": {
                    "tool_choice": "strip",
                    "citations": "strip",
                    "server_tools": "strip",
                    "structured_outputs": "strip",
                    "code_execution": "strip",
                    "compaction": "strip",
                }
            },
        }
    ),
    Policy.from_dict(
        {
            "version": 1,
            "defaults": {
                "unknown": "unsupported",
                "actions": {"thinking.types.adaptive": "reroute", "effort.low": "reject"},
            },
            "routes": [{"name": "pinned", "match": {"model": "m0"}, "candidates": ["m1", "m0"]}],
        }
    ),
]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Registry, dict[str, Any], Policy | None, str, str]:
    registry = draw(catalogues())
    request = draw(requests(list(registry.ids)))
    policy = draw(st.sampled_from(POLICIES))
    version = draw(st.sampled_from(["2023-06-01", "2026-10-21"]))
    endpoint = draw(st.sampled_from(["messages", "messages", "count_tokens"]))
    if endpoint == "count_tokens":
        request.pop("max_tokens")
    return registry, request, policy, version, endpoint


# Modest by default to keep the suite fast; CAPROUTE_PROPERTY_EXAMPLES=5000 for a soak.
SETTINGS = settings(
    max_examples=int(os.environ.get("CAPROUTE_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _route_spec(policy: Policy | None, request: dict[str, Any]) -> RouteSpec:
    return (policy or Policy.default()).match(request["model"], metadata=None, headers=None)


def _unmet(
    registry: Registry, routed: dict[str, Any], model: str, spec: RouteSpec, *, batch: bool = False
) -> list[str]:
    """Capabilities the routed body needs that `model` lacks, under the route's reading."""
    planner = Planner(registry)
    problems = []
    for capability in detect(routed, batch=batch).capabilities:
        key = planner.effective_key(model, capability)
        support = registry.supports(model, key)
        if support is Support.UNSUPPORTED or (
            support is Support.UNKNOWN and spec.unknown == "unsupported"
        ):
            problems.append(key)
    return problems


def _rule_violations(
    registry: Registry, routed: dict[str, Any], model: str, version: str
) -> list[str]:
    needs = detect(routed)
    limits = registry.limits(model)
    problems = []
    if limits.max_tokens is not None and (needs.params.max_tokens or 0) > limits.max_tokens:
        problems.append("max_tokens")
    if needs.params.thinking_type == "enabled":
        budget = needs.params.budget_tokens
        if budget is None or budget < MIN_THINKING_BUDGET:
            problems.append("budget too small")
        elif needs.params.max_tokens is not None and budget >= needs.params.max_tokens:
            problems.append("budget >= max_tokens")
    if needs.params.thinking_type in ("enabled", "adaptive") and needs.forced_tool_choice:
        problems.append("forced tool_choice")
    if needs.params.sampling_names and is_new_version(version):
        problems.append("sampling")
    if limits.max_input_tokens is not None and needs.input_tokens > limits.max_input_tokens:
        problems.append("context window")
    return problems


@SETTINGS
@given(scenarios())
def test_routing_keeps_its_promises(
    scenario: tuple[Registry, dict[str, Any], Policy | None, str, str],
) -> None:
    registry, request, policy, version, endpoint = scenario
    snapshot = copy.deepcopy(request)
    router = PolicyEngine(registry, policy)
    result = router.route(request, api_version=version, endpoint=endpoint)  # type: ignore[arg-type]
    decision = result.decision

    # Never mutated; deterministic.
    assert request == snapshot
    for other in (PolicyEngine(registry, policy), router):  # fresh, and warm (its fast path)
        same = other.route(copy.deepcopy(snapshot), api_version=version, endpoint=endpoint)  # type: ignore[arg-type]
        assert same.body == result.body and same.decision == decision

    if decision.outcome in ("rejected", "passthrough"):
        assert decision.reason
        assert result.body is request
        return

    # The chosen model can take the routed body.
    model = registry.resolve(decision.model or "")
    assert model is not None
    spec = _route_spec(policy, request)
    assert _unmet(registry, result.body, model, spec) == [], decision.explain()
    assert _rule_violations(registry, result.body, model, version) == [], decision.explain()
    assert not registry.is_retired(model)

    # Content blocks are the same objects unless a change names them.
    changed = [c.path for c in decision.changes]
    for i, message in enumerate(request["messages"]):
        for j, block in enumerate(message["content"]):
            where = format_path(("messages", i, "content", j))
            if not any(p.startswith(where) for p in changed):
                assert result.body["messages"][i]["content"][j] is block

    # Routing the output again changes nothing.
    again = router.route(result.body, api_version=version, endpoint=endpoint)  # type: ignore[arg-type]
    assert again.decision.outcome == "unchanged", again.decision.explain()
    assert again.body is result.body


@st.composite
def batches(draw: st.DrawFn) -> tuple[Registry, dict[str, Any], Policy | None]:
    registry = draw(catalogues())
    items = draw(st.lists(requests(list(registry.ids)), min_size=1, max_size=3))
    batch = {"requests": [{"custom_id": f"r{i}", "params": p} for i, p in enumerate(items)]}
    return registry, batch, draw(st.sampled_from(POLICIES))


@settings(SETTINGS, max_examples=max(SETTINGS.max_examples // 3, 10))
@given(batches())
def test_batches_route_each_item_as_its_own_request(
    scenario: tuple[Registry, dict[str, Any], Policy | None],
) -> None:
    registry, batch, policy = scenario
    snapshot = copy.deepcopy(batch)
    router = PolicyEngine(registry, policy)
    result = router.route(batch, endpoint="batch")
    assert batch == snapshot
    items = result.decision.items
    assert [cid for cid, _ in items] == [r["custom_id"] for r in batch["requests"]]
    if any(d.rejected for _, d in items):
        assert result.decision.rejected and result.body is batch
        return
    for (_, item), original, routed in zip(
        items, batch["requests"], result.body["requests"], strict=True
    ):
        if item.outcome in ("unchanged", "passthrough"):
            assert routed is original
            continue
        model = registry.resolve(item.model or "")
        assert model is not None and "batch" in item.needs
        spec = _route_spec(policy, original["params"])
        assert _unmet(registry, routed["params"], model, spec, batch=True) == []
    again = router.route(result.body, endpoint="batch")
    assert again.decision.outcome == "unchanged" and again.body is result.body
