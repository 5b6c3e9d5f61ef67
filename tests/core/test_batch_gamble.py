"""Batches never gamble, in the core: one rule for every shell and the batch planner.

A single request may try a model whose support of what it needs is unknown (and learn
from the answer). A Message Batch item may not: the API validates it only when the
batch is processed, so a wrong guess comes back ``errored`` hours later. The flow's
first step (`first_step`, taken by the SDK middleware, the transports and the proxy)
refuses such a batch creation locally, naming each such item, unless the policy's
``defaults.allow_unknown_in_batches`` is true.
"""

from __future__ import annotations

from typing import Any

from catalogue import PDF, body, model, registry, user

from caproute._core.engine import PolicyEngine
from caproute._core.flow import Forward, ParsedCall, Refuse, View, call_flow, first_step
from caproute._core.policy import Policy

# t-old's listing says nothing about PDFs; t-nopdf's says it has none; t-known has them.
OLD = model("t-old", "alpha", caps={"pdf_input": None})
NO_PDF = model("t-nopdf", "alpha", caps={"pdf_input": False})
KNOWN = model("t-known", "alpha")
VAGUE = registry([OLD, NO_PDF])
CLEAR = registry([OLD, NO_PDF, KNOWN])
ALLOW = Policy.from_dict({"version": 1, "defaults": {"allow_unknown_in_batches": True}})
GAMBLER = Policy.from_dict({"version": 1, "defaults": {"unknown": "supported"}})


def batch(*items: tuple[str, dict[str, Any]]) -> ParsedCall:
    return ParsedCall({"requests": [{"custom_id": c, "params": p} for c, p in items]}, "batch")


def pdf_for(name: str) -> dict[str, Any]:
    return body(name, messages=[user(PDF)])


def first(call: ParsedCall, reg: Any = VAGUE, policy: Policy | None = None) -> Any:
    return first_step(View(PolicyEngine(reg, policy)), call)


def test_an_item_only_a_model_of_unknown_support_could_take_refuses_the_creation() -> None:
    action = first(batch(("hello", body("t-old")), ("pdf", pdf_for("t-old"))))
    assert isinstance(action, Refuse)
    decision = action.decision
    assert decision.rejected
    reason = decision.reason or ""
    assert "1 of 2 batch requests rejected: [pdf]" in reason
    assert "t-old: pdf_input: support unknown" in reason
    assert "allow_unknown_in_batches: true" in reason
    items = dict(decision.items)
    assert items["hello"].outcome == "unchanged"  # named only when it is the one at fault
    assert items["pdf"].outcome == "rejected" and items["pdf"].model is None
    assert items["pdf"].extra["unknown_support"] == "t-old: pdf_input"


def test_every_such_item_is_named() -> None:
    action = first(batch(("a", pdf_for("t-old")), ("b", body("t-old")), ("c", pdf_for("t-old"))))
    assert isinstance(action, Refuse)
    reason = action.decision.reason or ""
    assert reason.startswith("2 of 3 batch requests rejected: [a] ") and "; [c] " in reason


def test_the_policy_opt_in_sends_it_unchanged() -> None:
    call = batch(("hello", body("t-old")), ("pdf", pdf_for("t-old")))
    assert isinstance(first(call), Refuse)
    action = first(call, policy=ALLOW)
    assert isinstance(action, Forward) and action.body is call.body and not action.changed
    assert dict(action.decision.items)["pdf"].model == "t-old"


def test_a_single_request_may_still_try_the_model_a_batch_item_may_not() -> None:
    action = first(ParsedCall(pdf_for("t-old"), "messages"))
    assert isinstance(action, Forward) and action.decision.model == "t-old"
    assert isinstance(first(batch(("pdf", pdf_for("t-old")))), Refuse)


def test_a_model_known_to_take_the_item_is_preferred_even_under_unknown_supported() -> None:
    # Under the default `prefer-known`, the known model wins: routing, not refusing.
    action = first(batch(("pdf", pdf_for("t-old"))), CLEAR)
    assert isinstance(action, Forward)
    assert action.body["requests"][0]["params"]["model"] == "t-known"
    assert dict(action.decision.items)["pdf"].outcome == "rerouted"
    # A single request under `unknown: supported` tries the model it names...
    single = first(ParsedCall(pdf_for("t-old"), "messages"), CLEAR, GAMBLER)
    assert isinstance(single, Forward) and single.decision.model == "t-old"
    # ...a batch item goes to the model known to take it.
    action = first(batch(("pdf", pdf_for("t-old"))), CLEAR, GAMBLER)
    assert isinstance(action, Forward)
    assert action.body["requests"][0]["params"]["model"] == "t-known"
    # And with nothing known to take it, it is refused, not gambled on.
    refused = first(batch(("pdf", pdf_for("t-old"))), VAGUE, GAMBLER)
    assert isinstance(refused, Refuse)


def test_a_batch_whose_items_all_have_a_known_model_is_unchanged() -> None:
    engine = PolicyEngine(CLEAR)
    assert isinstance(first_step(View(engine), batch(("x", pdf_for("t-old")))), Forward)
    refused = first_step(View(PolicyEngine(VAGUE)), batch(("x", pdf_for("t-old"))))
    assert isinstance(refused, Refuse)
    call = batch(("a", body("t-old")), ("b", body("t-nopdf")), ("c", pdf_for("t-known")))
    action = first_step(View(engine), call)
    assert isinstance(action, Forward) and action.body is call.body
    assert action.decision.outcome == "unchanged"


def test_a_name_nobody_knows_is_not_gambled_on_either() -> None:
    action = first(batch(("x", body("t-nobody"))), CLEAR)
    assert isinstance(action, Refuse)
    unknown = dict(action.decision.items)["x"].extra["unknown_support"]
    assert unknown.startswith("t-nobody: unknown to the registry")
    assert isinstance(first(batch(("x", body("t-nobody"))), CLEAR, ALLOW), Forward)


def test_the_flow_ends_at_the_refusal_with_nothing_sent() -> None:
    flow = call_flow(batch(("pdf", pdf_for("t-old"))), View(PolicyEngine(VAGUE)))
    actions = list(flow)
    assert [type(a) for a in actions] == [Refuse]


def test_the_engine_alone_still_routes_what_the_caller_asked() -> None:
    # `PolicyEngine.route` is the pure router (dry runs, `caproute.route`): the rule is
    # the flow's, applied by `never_gamble`.
    engine = PolicyEngine(VAGUE)
    result = engine.route(batch(("pdf", pdf_for("t-old"))).body, endpoint="batch")
    assert not result.decision.rejected
    assert engine.never_gamble(result).decision.rejected
