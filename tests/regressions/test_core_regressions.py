"""Issue 22, bugs 13 and 14: routing decisions at a limit, and the fast path's memory.

Both survived two rounds of hand-made mutation: the existing tests checked
``max_tokens`` exactly at the limit only under the default policy (where a clamp to
the same value changes nothing), and never routed two requests that differ only in
their thinking budget through one engine. Everything here goes through the public
entry points (`caproute.route`, `PolicyEngine`), so it holds whatever the internals
look like.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import caproute
from caproute import Policy, PolicyEngine, Registry
from caproute.testing import make_model

LIMIT = 8192
LINEUP = Registry.from_models(
    [  # newest first
        make_model("claude-big-2", max_tokens=64_000, line="a"),
        make_model("claude-mid-2", max_tokens=LIMIT, line="a", unsupported=["effort.max"]),
        make_model(
            "claude-small-1",
            max_tokens=4096,
            line="b",
            unsupported=["thinking.types.adaptive", "effort"],
        ),
    ]
)
HI = [{"role": "user", "content": "hi"}]


def policy(**actions: str) -> Policy:
    """A catch-all route with these per-parameter actions."""
    spec: dict[str, Any] = {"name": "test"}
    if actions:
        spec["actions"] = actions
    return Policy.from_dict({"version": 1, "routes": [spec]})


def request(max_tokens: int, **fields: Any) -> dict[str, Any]:
    return {"model": "claude-mid-2", "max_tokens": max_tokens, "messages": HI, **fields}


# -- bug 13: max_tokens exactly at the model's limit ---------------------------------------


@pytest.mark.parametrize("action", [None, "auto", "adjust", "reject", "reroute"])
def test_max_tokens_exactly_at_the_limit_is_within_it(action: str | None) -> None:
    """Bug 13: ``max_tokens == limit`` treated as over the limit (``<`` for ``<=``).

    Under ``reject`` or ``reroute`` that refuses or moves a request the model accepts.
    """
    rules = policy(max_tokens=action) if action else policy()
    body = request(LIMIT)
    result = caproute.route(body, registry=LINEUP, policy=rules)

    assert result.decision.outcome == "unchanged"
    assert result.decision.model == "claude-mid-2"
    assert result.body is body


@pytest.mark.parametrize(
    ("action", "outcome", "model", "sent"),
    [
        (None, "adjusted", "claude-mid-2", LIMIT),
        ("adjust", "adjusted", "claude-mid-2", LIMIT),
        ("reject", "rejected", None, None),
        ("reroute", "rerouted", "claude-big-2", LIMIT + 1),
    ],
)
def test_one_over_the_limit_is_over_it(
    action: str | None, outcome: str, model: str | None, sent: int | None
) -> None:
    """Bug 13, the other side of the boundary: one token over is acted on."""
    rules = policy(max_tokens=action) if action else policy()
    result = caproute.route(request(LIMIT + 1), registry=LINEUP, policy=rules)

    assert result.decision.outcome == outcome
    assert result.decision.model == model
    if sent is not None:
        assert result.body["max_tokens"] == sent


# -- bug 14: the fast path must not serve a decision made for other parameters --------------

MODELS = ("claude-big-2", "claude-mid-2", "claude-small-1", "claude-unknown-9")
ENABLED = [{"type": "enabled", "budget_tokens": b} for b in (500, 1024, 2000, 4095, 4096, 8192)]
# Every value each field may take (None: absent), and each option's.
FIELDS: dict[str, list[Any]] = {
    "model": list(MODELS),
    "max_tokens": [1000, 1025, 4096, 4097, LIMIT, LIMIT + 1, 64_000, 64_001],
    "thinking": [None, {"type": "adaptive"}, {"type": "disabled"}, {"type": "enabled"}, *ENABLED],
    "output_config": [None, *({"effort": e} for e in ("low", "high", "max"))],
    "temperature": [None, 0.5, 1.0],
    "top_p": [None, 0.5, 0.97],
    "top_k": [None, 5],
    "tool_choice": [None, {"type": "any"}, {"type": "auto"}],
}
OPTIONS: dict[str, list[Any]] = {
    "api_version": [None, "2026-10-21"],
    "exclude": [(), ("claude-big-2",), ("claude-mid-2",)],
}
POLICIES = [
    policy(),
    policy(max_tokens="reroute", thinking="reroute", effort="reroute"),
    policy(max_tokens="reject", thinking="strip", sampling="reject"),
]
Call = tuple[dict[str, Any], dict[str, Any]]


def mostly_absent(values: list[Any]) -> st.SearchStrategy[Any]:
    """A request with few parameters is the one routed unchanged, and only an unchanged
    decision is remembered: draw "absent" half the time."""
    return (
        st.one_of(st.none(), st.sampled_from(values)) if None in values else st.sampled_from(values)
    )


@st.composite
def base_calls(draw: st.DrawFn) -> Call:
    body: dict[str, Any] = {"messages": HI}
    for name, values in FIELDS.items():
        value = draw(mostly_absent(values))
        if value is not None:
            body[name] = value
    return body, {name: draw(st.sampled_from(values)) for name, values in OPTIONS.items()}


def neighbours(call: Call) -> list[Call]:
    """`call` with one field or option set to each other value it may take."""
    body, options = call
    found: list[Call] = []
    for name, values in FIELDS.items():
        for value in values:
            other = {k: v for k, v in body.items() if k != name}
            if value is not None:
                other[name] = value
            if other != body:
                found.append((other, options))
    for name, values in OPTIONS.items():
        found += [(body, {**options, name: v}) for v in values if v != options[name]]
    return found


def _seen(result: caproute.RouteResult) -> tuple[Any, ...]:
    d = result.decision
    return (d.outcome, d.requested_model, d.model, d.changes, d.reason, d.notes, result.body)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(POLICIES), base_calls())
def test_a_warm_engine_decides_like_a_cold_one(rules: Policy, call: Call) -> None:
    """Bug 14 (and every field like it): the fast path's cache key must hold every
    field that changes the outcome (``thinking.budget_tokens`` was left out, so a
    request with another budget got the earlier request's "unchanged").

    Property: after a call A, routing any B that differs from A in one field or option
    gives what routing B on a fresh engine gives.
    """
    body, options = call
    warm = PolicyEngine(LINEUP, rules)
    for other, other_options in neighbours(call):
        warm.route(body, **options)
        warm.route(body, **options)  # the second one is served from the fast path
        got = warm.route(other, **other_options)
        cold = PolicyEngine(LINEUP, rules).route(other, **other_options)
        assert _seen(got) == _seen(cold), (body, options, other, other_options)


@pytest.mark.parametrize(
    ("budget", "expected"),
    [(2000, "unchanged"), (5000, "adjusted"), (4095, "unchanged"), (4096, "adjusted")],
)
def test_only_the_thinking_budget_differs(budget: int, expected: str) -> None:
    """Bug 14, the concrete case: same request, another ``budget_tokens``."""
    engine = PolicyEngine(LINEUP, policy())
    base = request(4096, thinking={"type": "enabled", "budget_tokens": 2000})
    for _ in range(2):
        assert engine.route(base).decision.outcome == "unchanged"

    other = request(4096, thinking={"type": "enabled", "budget_tokens": budget})
    result = engine.route(other)

    assert result.decision.outcome == expected
    if expected == "adjusted":
        assert result.body["thinking"]["budget_tokens"] == 4095
