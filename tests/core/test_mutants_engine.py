"""`caproute.route` (the one-call form) and `RegistrySource.describe`, as a caller sees
them: mutation testing found the one-call form's choice of engine and its option
passing, and the age wording, free to change unnoticed."""

from __future__ import annotations

from typing import Any

import pytest

import caproute
from caproute import Policy, Registry, RegistrySource
from caproute.testing import make_model

HI = [{"role": "user", "content": "hi"}]
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}


def lineup(*, small_sees: bool, **source: Any) -> Registry:
    return Registry.from_models(
        [
            make_model("claude-big-2", line="x"),
            make_model(
                "claude-small-1", line="x", unsupported=[] if small_sees else ["image_input"]
            ),
        ],
        source=RegistrySource(**source) if source else None,
    )


def picture(model: str = "claude-small-1") -> dict[str, Any]:
    return {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": [IMAGE]}]}


def test_each_call_routes_against_the_registry_it_is_given() -> None:
    blind, seeing = lineup(small_sees=False), lineup(small_sees=True)
    assert caproute.route(picture(), registry=blind).decision.model == "claude-big-2"
    assert caproute.route(picture(), registry=seeing).decision.model == "claude-small-1"
    assert caproute.route(picture(), registry=blind).decision.model == "claude-big-2"


def test_each_call_routes_with_the_policy_it_is_given() -> None:
    blind = lineup(small_sees=False)
    route = {"name": "r", "actions": {"image_input": "reject"}}
    rejecting = Policy.from_dict({"version": 1, "routes": [route]})
    assert caproute.route(picture(), registry=blind).decision.outcome == "rerouted"
    assert (
        caproute.route(picture(), registry=blind, policy=rejecting).decision.outcome == "rejected"
    )
    assert caproute.route(picture(), registry=blind, policy=None).decision.outcome == "rerouted"


def test_options_reach_the_engine() -> None:
    registry = lineup(small_sees=True, kind="live", fetched_at=1000.0)
    team = {"name": "team", "match": {"headers": {"x-team": "a"}}, "candidates": ["claude-small-1"]}
    by_header = Policy.from_dict({"version": 1, "routes": [team, {"name": "rest"}]})
    body = {"model": "claude-big-2", "max_tokens": 10, "messages": HI}

    routed = caproute.route(body, registry=registry, policy=by_header, headers={"x-team": "a"})
    assert (routed.decision.route, routed.decision.model) == ("team", "claude-small-1")
    assert caproute.route(body, registry=registry, policy=by_header).decision.route == "rest"

    excluded = caproute.route(
        picture("claude-small-1"), registry=registry, exclude=["claude-small-1"]
    )
    assert excluded.decision.model == "claude-big-2"

    aged = caproute.route(body, registry=registry, now=1090.0).decision
    assert aged.registry_age_s == 90.0

    counted = caproute.route(
        {"model": "claude-big-2", "messages": HI}, registry=registry, endpoint="count_tokens"
    )
    assert counted.decision.outcome == "unchanged"
    default = caproute.route({"model": "claude-big-2", "messages": HI}, registry=registry)
    plain = caproute.route(
        {"model": "claude-big-2", "messages": HI}, registry=registry, endpoint="messages"
    )
    assert default.decision == plain.decision


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2min"),
        (150, "2min"),
        (7199, "120min"),
        (7200, "2h"),
        (10_800, "3h"),
        (172_799, "48h"),
        (172_800, "2d"),
        (5 * 86400, "5d"),
    ],
)
def test_a_registry_age_is_worded_in_the_largest_unit_that_reads_well(age: int, shown: str) -> None:
    source = RegistrySource("live", fetched_at=1000.0, location="https://api.example")
    assert source.describe(now=1000.0 + age) == f"live (https://api.example, {shown} old)"


def test_a_source_without_details_is_its_kind() -> None:
    assert RegistrySource("snapshot").describe() == "snapshot"
    assert RegistrySource("live", fetched_at=5.0).describe() == "live"
    assert RegistrySource("live", fetched_at=5.0).describe(now=2.0) == "live (0s old)"


UNHEARD = Registry.from_models(
    [
        make_model("claude-a-2", line="x"),
        make_model("claude-b-1", line="x", unsupported=["effort"]),
        make_model("claude-c-1", line="x", unsupported=["thinking.types"]),
    ]
)


@pytest.mark.parametrize(
    ("model", "extra", "path"),
    [
        ("claude-a-2", {"output_config": {"effort": "ultra"}}, "effort.ultra"),
        ("claude-a-2", {"thinking": {"type": "ultra"}}, "thinking.types.ultra"),
    ],
)
def test_a_value_nobody_has_heard_of_is_sent_for_the_api_to_judge(
    model: str, extra: dict[str, Any], path: str
) -> None:
    body = {"model": model, "max_tokens": 100, "messages": HI, **extra}
    decision = caproute.route(body, registry=UNHEARD).decision
    assert (decision.outcome, decision.model) == ("unchanged", model)
    assert decision.notes == (
        f"no model in the registry states {path} and caproute doesn't know it: "
        "sent as is, for the API to judge",
    )


@pytest.mark.parametrize(
    ("model", "extra", "change"),
    [
        ("claude-b-1", {"output_config": {"effort": "ultra"}}, "output_config"),
        ("claude-c-1", {"thinking": {"type": "ultra"}}, "thinking"),
    ],
)
def test_an_unheard_of_value_of_a_family_the_model_lacks_is_acted_on(
    model: str, extra: dict[str, Any], change: str
) -> None:
    """A model without effort lacks every level, even one nobody has heard of (and a
    model whose ``thinking.types`` says unsupported lacks every type)."""
    body = {"model": model, "max_tokens": 100, "messages": HI, **extra}
    decision = caproute.route(body, registry=UNHEARD).decision
    assert decision.outcome == "adjusted"
    [stripped] = decision.changes
    assert (stripped.path, stripped.before, stripped.action) == (change, extra[change], "strip")
    assert decision.notes == ()


NOT_AN_OBJECT = "the body is not a JSON object"


def test_a_batch_routes_each_item_with_the_calls_headers_and_registry_age() -> None:
    registry = Registry.from_models(
        [make_model("claude-a-2"), make_model("claude-b-1")],
        source=RegistrySource("live", fetched_at=100.0),
    )
    team = {"name": "team", "match": {"headers": {"x-team": "a"}}, "candidates": ["claude-b-1"]}
    engine = caproute.PolicyEngine(
        registry, Policy.from_dict({"version": 1, "routes": [team, {"name": "rest"}]})
    )
    item = {"model": "claude-a-2", "max_tokens": 5, "messages": HI}
    body = {"requests": [{"custom_id": "x", "params": item}, 7, {"params": {}}]}
    decision = engine.route(body, endpoint="batch", headers={"x-team": "a"}, now=150.0).decision

    assert decision.registry_age_s == 50.0
    assert [
        (key, d.outcome, d.model, d.route, d.registry_age_s, d.reason) for key, d in decision.items
    ] == [
        ("x", "rerouted", "claude-b-1", "team", 50.0, "the route does not list claude-a-2"),
        ("requests[1]", "passthrough", None, None, 50.0, f"{NOT_AN_OBJECT} (it is a null)"),
        ("requests[2]", "passthrough", None, None, 50.0, "model: missing or not a string"),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1], f"{NOT_AN_OBJECT} (it is a list)"),
        ({"requests": 5}, "requests: missing or not a list"),
    ],
)
def test_a_batch_body_of_the_wrong_shape_is_passed_through(body: Any, reason: str) -> None:
    registry = Registry.from_models(
        [make_model("claude-a-2")], source=RegistrySource("live", fetched_at=100.0)
    )
    decision = caproute.PolicyEngine(registry).route(body, endpoint="batch", now=160.0).decision
    assert (decision.outcome, decision.reason, decision.registry_age_s) == (
        "passthrough",
        reason,
        60.0,
    )


BATCH_LINEUP = Registry.from_models(
    [
        make_model("claude-a-2", unsupported=["pdf_input"]),
        make_model("claude-b-1", unsupported=["effort.max", "pdf_input", "image_input"]),
    ]
)
PDF = [
    {
        "role": "user",
        "content": [
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            }
        ],
    }
]
PICTURE = [{"role": "user", "content": [IMAGE]}]


def item(custom_id: str, **params: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {"model": "claude-b-1", "max_tokens": 10, "messages": HI, **params},
    }


@pytest.mark.parametrize(
    ("items", "outcome", "requested", "model", "needs", "changes"),
    [
        ([item("u1"), item("u2")], "unchanged", "claude-b-1", "claude-b-1", ("batch",), []),
        (
            [item("u1"), item("a1", output_config={"effort": "max"})],
            "adjusted", "claude-b-1", "claude-b-1", ("batch", "effort.max"),
            ["requests[1].params.output_config.effort: max → xhigh"],
        ),
        (
            [item("a1", output_config={"effort": "max"}), item("r1", model="claude-a-2")],
            "adjusted", None, None, ("batch", "effort.max"),
            ["requests[0].params.output_config.effort: max → xhigh"],
        ),
        (
            [item("a1", output_config={"effort": "max"}), item("r1", messages=PICTURE)],
            "rerouted", "claude-b-1", None, ("batch", "effort.max", "image_input"),
            [
                "requests[0].params.output_config.effort: max → xhigh",
                "requests[1].params.model: claude-b-1 → claude-a-2",
            ],
        ),
    ],
)  # fmt: skip
def test_a_batch_decision_sums_up_its_items(
    items: list[dict[str, Any]],
    outcome: str,
    requested: str | None,
    model: str | None,
    needs: tuple[str, ...],
    changes: list[str],
) -> None:
    decision = caproute.route({"requests": items}, registry=BATCH_LINEUP, endpoint="batch").decision
    assert (decision.outcome, decision.requested_model, decision.model) == (
        outcome,
        requested,
        model,
    )
    assert decision.needs == needs
    assert [str(c) for c in decision.changes] == changes
    assert [key for key, _ in decision.items] == [i["custom_id"] for i in items]


def test_a_batch_with_refused_items_is_refused_whole_saying_which() -> None:
    items = [item("u1"), item("x1", messages=PDF), item("x2", messages=PDF)]
    result = caproute.route({"requests": items}, registry=BATCH_LINEUP, endpoint="batch")
    decision = result.decision
    why = (
        "no candidate can serve the request (claude-b-1: lacks pdf_input (messages[0].content[0]); "
        "claude-a-2: lacks pdf_input (messages[0].content[0]))"
    )
    assert (decision.outcome, decision.requested_model, decision.model) == (
        "rejected",
        "claude-b-1",
        None,
    )
    assert decision.needs == ("batch", "pdf_input")
    assert decision.changes == ()
    assert decision.reason == f"2 of 3 batch requests rejected: [x1] {why}; [x2] {why}"
    assert result.body["requests"] is items  # nothing edited in a refused batch


def test_stripping_several_list_items_removes_exactly_those() -> None:
    """Edits to one list are applied from the last index down (removing ``tools[0]``
    first would shift ``tools[2]`` onto another tool)."""
    registry = Registry.from_models(
        [make_model("claude-a-1", unsupported=["server_tools.web_search"])]
    )
    search = [{"type": "web_search_20250305", "name": f"web_search{n}"} for n in (1, 2)]
    calc = {"name": "calc", "input_schema": {"type": "object"}}
    other = {"name": "c2", "input_schema": {"type": "object"}}
    tools = [search[0], calc, search[1], other]
    body = {"model": "claude-a-1", "max_tokens": 10, "messages": HI, "tools": tools}
    route = {"name": "r", "actions": {"server_tools": "strip"}}
    rules = Policy.from_dict({"version": 1, "routes": [route]})
    result = caproute.route(body, registry=registry, policy=rules)

    assert result.body["tools"] == [calc, other]
    assert [c.path for c in result.decision.changes] == ["tools[0]", "tools[2]"]
    assert body["tools"] == [search[0], calc, search[1], other]


def test_a_registry_source_survives_a_snapshot_round_trip() -> None:
    source = RegistrySource("live", fetched_at=5.0, location="https://x", describes="2026-01-01")
    assert source.to_dict() == {
        "kind": "live",
        "fetched_at": 5.0,
        "location": "https://x",
        "describes": "2026-01-01",
    }
    registry = Registry.from_models([make_model("claude-a-2")], source=source)
    assert Registry.from_json(registry.to_json()).source == source
