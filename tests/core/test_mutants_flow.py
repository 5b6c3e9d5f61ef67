"""The response-driven flow's edges mutmut found untested: what a 404 blames, the
words of its actions, the exclusions carried from hop to hop, and the call's own
parameters reaching every routing.

`drive` plays a shell that changes nothing between steps (it records no retirement,
no cool-down, no fact): what the flow itself guarantees, without a shell's help.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from catalogue import IMAGE, REGISTRY, body, user
from test_flow import Shell

from caproute import Policy, PolicyEngine
from caproute._core.flow import (
    Deliver,
    Forward,
    MarkOverloaded,
    MarkRetired,
    ParsedCall,
    Refresh,
    Refuse,
    Reply,
    Resolve,
    View,
    blames_the_model,
    call_flow,
    fallback_statuses,
    first_step,
    route_call,
)

ENGINE = PolicyEngine(REGISTRY, Policy.default())
GONE = Reply(404, "not_found_error", "model: gone")
OVERLOADED = Reply(529, "overloaded_error", "Overloaded")
NEW = "2026-10-21"


def drive(
    call: ParsedCall, view: View, answers: dict[str, Reply]
) -> tuple[list[Any], list[Forward]]:
    """Every action of the flow, with a shell whose view never changes."""
    log: list[Any] = []
    flow = call_flow(call, view)
    action = next(flow)
    while True:
        log.append(action)
        if isinstance(action, Deliver | Refuse):
            return log, [a for a in log if isinstance(a, Forward)]
        if isinstance(action, Forward):
            action = flow.send(answers.get(action.decision.model or "", Reply(200)))
        else:
            action = flow.send(view)


def messages_call(model: str = "t-full", **fields: Any) -> ParsedCall:
    return ParsedCall(body(model, **fields), "messages")


# -- what a 404 blames ----------------------------------------------------------------------


def test_a_404_blames_the_model_when_it_names_it_as_chosen_or_as_sent() -> None:
    alias = {"model": "T-Full-Latest"}
    assert blames_the_model("T-FULL is gone", alias, "t-full")  # the chosen id
    assert blames_the_model("t-full-latest: not found", alias, "t-adaptive")  # as sent
    assert blames_the_model("unknown model", {}, "t-full")  # says "model"
    assert blames_the_model("t-full not found", None, "t-full")  # no body to read
    assert blames_the_model("t-full not found", {"model": 5}, "t-full")
    assert not blames_the_model("no route for /v2/messages", alias, "t-full")
    assert not blames_the_model(None, {"model": "xx"}, "xx")  # no message: nothing named
    assert not blames_the_model("", {}, "x")


def test_a_404_retires_the_model_with_a_reason() -> None:
    log, sends = drive(messages_call(), View(ENGINE), {"t-full": GONE})
    assert MarkRetired("t-full", "404 not_found_error from t-full") in log


def test_each_hop_says_why_it_was_sent() -> None:
    log, sends = drive(messages_call(), View(ENGINE), {"t-full": GONE})
    assert sends[1].decision.extra["cause"] == "404 not_found_error from t-full: treated as retired"
    log, sends = drive(messages_call(), View(ENGINE), {"t-full": OVERLOADED})
    assert MarkOverloaded("t-full") in log
    assert sends[1].decision.extra["cause"] == (
        "529 from t-full: trying the next candidate of its price class"
    )


# -- exclusions carried from hop to hop ----------------------------------------------------


def test_every_model_that_answered_404_stays_excluded_for_the_call() -> None:
    answers = {"t-full": GONE, "t-adaptive": GONE}
    log, sends = drive(messages_call(), View(ENGINE, max_sends=3), answers)
    chosen = [s.decision.model for s in sends]
    assert chosen[:2] == ["t-full", "t-adaptive"]
    assert chosen.count("t-full") == 1 and chosen.count("t-adaptive") == 1


def test_a_fallback_after_a_404_avoids_the_retired_model_too() -> None:
    answers = {"t-full": GONE, "t-adaptive": OVERLOADED}
    log, sends = drive(messages_call(), View(ENGINE, max_sends=3), answers)
    chosen = [s.decision.model for s in sends]
    assert chosen[:2] == ["t-full", "t-adaptive"]
    assert "t-full" not in chosen[2:]


def test_a_retirement_reroute_follows_the_line_cool_downs_steer_only_fallbacks() -> None:
    # t-adaptive is cooling down, but a 404 is not an overload: the line's next model is
    # used, as the first routing would have (a cooling model is used rather than refuse).
    view = View(ENGINE, avoid=frozenset({"t-adaptive"}), max_sends=2)
    log, sends = drive(messages_call(), view, {"t-full": GONE})
    assert [s.decision.model for s in sends] == ["t-full", "t-adaptive"]


# -- learning -------------------------------------------------------------------------------


def test_a_400_that_is_not_an_invalid_request_teaches_nothing() -> None:
    effort = "output_config.effort 'max' is not supported on this model."
    call = messages_call(output_config={"effort": "max"})
    final, sends = Shell().run(call, {"t-full": Reply(400, None, effort)})
    assert len(sends) == 1
    final, sends = Shell().run(call, {"t-full": Reply(400, "invalid_request_error", effort)})
    assert len(sends) == 2


def test_one_learning_resend_per_call_even_when_the_second_400_is_another_fact() -> None:
    effort = "output_config.effort 'max' is not supported on this model."
    temperature = "`temperature` is deprecated for this model."

    def answer(send: Forward) -> Reply:
        if send.body.get("output_config", {}).get("effort") == "max":
            return Reply(400, "invalid_request_error", effort)
        if "temperature" in send.body:
            return Reply(400, "invalid_request_error", temperature)
        return Reply(200)

    call = messages_call(output_config={"effort": "max"}, temperature=0.5)
    shell = Shell(max_sends=3)
    final, sends = shell.run(call, {"t-full": answer})
    assert len(sends) == 2  # the second 400 (about temperature) is delivered
    assert [k for _, k in shell.facts] == ["effort.max"]


# -- waiting and looking up -----------------------------------------------------------------


def test_the_flow_waits_for_live_data_once_even_if_the_view_still_could() -> None:
    view = View(ENGINE, live=False, can_wait=True, can_resolve=True)
    log, sends = drive(messages_call("t-typo"), view, {})
    assert [type(a) for a in log] == [Refresh, Resolve, Forward, Deliver]


def test_first_action_says_why_it_waits_or_asks() -> None:
    cold = first_step(View(ENGINE, live=False, can_wait=True), messages_call())
    assert cold == Refresh("cold start: unchanged on snapshot (tests/core/catalogue.py)")
    items = [
        {"custom_id": "a", "params": body("t-one")},
        {"custom_id": "b", "params": body("t-two")},
    ]
    ask = first_step(View(ENGINE, can_resolve=True), ParsedCall({"requests": items}, "batch"))
    assert ask == Resolve(("t-one", "t-two"), "unknown to the registry: 't-one', 't-two'")


def test_a_count_tokens_body_without_max_tokens_is_looked_up_by_its_name() -> None:
    counted = {"model": "t-typo", "messages": [{"role": "user", "content": "hi"}]}
    ask = first_step(View(ENGINE, can_resolve=True), ParsedCall(counted, "count_tokens"))
    assert isinstance(ask, Resolve) and ask.models == ("t-typo",)


def test_a_batch_asks_about_each_unknown_name_once_up_to_the_bound() -> None:
    items = [{"custom_id": str(i), "params": body(f"t-unknown-{i % 20}")} for i in range(40)]
    ask = first_step(View(ENGINE, can_resolve=True), ParsedCall({"requests": items}, "batch"))
    assert isinstance(ask, Resolve)
    assert ask.models == tuple(f"t-unknown-{i}" for i in range(16))


# -- the call's parameters reach every routing ----------------------------------------------


def test_the_api_version_and_the_clock_reach_the_routing() -> None:
    call = ParsedCall(body("t-full", temperature=0.3), "messages", NEW)
    send = first_step(View(ENGINE, avoid=frozenset({"t-small"}), now=1_500.0), call)
    assert isinstance(send, Forward)
    assert "temperature" not in send.body  # removed under 2026-10-21
    assert send.decision.registry_age_s == 500.0  # the catalogue was fetched at 1000
    log, sends = drive(call, View(ENGINE, now=1_500.0), {"t-full": GONE})
    assert "temperature" not in sends[1].body and sends[1].decision.registry_age_s == 500.0


def test_the_headers_reach_the_routing() -> None:
    routed = Policy.from_dict(
        {
            "version": 1,
            "routes": [
                {"name": "pinned", "match": {"headers": {"x-team": "a"}}, "candidates": ["t-small"]}
            ],
        }
    )
    engine = PolicyEngine(REGISTRY, routed)
    call = ParsedCall(body("t-full"), "messages", None, (), {"x-team": "a"})
    for view in (View(engine), View(engine, avoid=frozenset({"t-adaptive"}))):
        send = first_step(view, call)
        assert isinstance(send, Forward) and send.decision.route == "pinned"
    log, sends = drive(call, View(engine), {"t-full": GONE, "t-small": GONE})
    assert all(s.decision.route == "pinned" for s in sends)


def test_cooling_alternatives_are_avoided_when_rerouting_for_a_capability() -> None:
    images = ParsedCall(body("t-small", messages=[user(IMAGE)]), "messages")
    assert route_call(View(ENGINE), images).decision.model == "t-gamma-vision"
    cooling = View(ENGINE, avoid=frozenset({"t-gamma-vision"}))
    assert route_call(cooling, images).decision.model == "t-full"


@pytest.mark.parametrize("bad", ["not an object", ["a list"], {"model": 5}, {"model": ["x"]}])
def test_a_body_that_is_not_a_messages_body_passes_through_while_models_cool(bad: Any) -> None:
    view = View(ENGINE, avoid=frozenset({"t-full"}))
    assert route_call(view, ParsedCall(bad, "messages")).decision.outcome == "passthrough"


def test_fallback_statuses_of_a_route_the_policy_no_longer_has_are_the_defaults() -> None:
    decision = ENGINE.route(body("t-full")).decision
    policy = Policy.default()
    assert fallback_statuses(policy, dataclasses.replace(decision, route="gone")) == (
        fallback_statuses(policy, decision)
    )


class LateModelsAPI(Shell):
    """A shell whose Models API knows the name only once the API answered 404 for it
    (the first look-up failed, the one after the 404 doesn't)."""

    def carry_out(self, action: Any) -> None:
        if isinstance(action, Resolve) and not action.after_404:
            return
        super().carry_out(action)


def test_a_name_looked_up_after_its_404_is_routed_and_sent_once_more() -> None:
    # t-late is an alias the Models API resolves only after the 404, to a model without
    # images: the call, with an image, goes to the line's model that has them.
    small = REGISTRY.get("t-small")
    assert small is not None
    no_images = {**small.to_api_dict(), "id": "t-hidden"}
    shell = LateModelsAPI(can_resolve=True, models_api={"t-late": no_images})
    gone = Reply(404, "not_found_error", "model: t-late")
    call = ParsedCall(body("t-late", messages=[user(IMAGE)]), "messages")
    final, sends = shell.run(call, {"t-late": gone})
    asked = [a for a in shell.log if isinstance(a, Resolve)]
    assert asked[-1] == Resolve(
        ("t-late",), "404 not_found_error for 't-late', never resolved", True
    )
    assert [s.decision.outcome for s in sends] == ["passthrough", "rerouted"]
    second = sends[1]
    assert second.attempt == 2 and second.changed and second.body["model"] == "t-gamma-vision"
    assert second.decision.extra == {
        "attempt": 2,
        "cause": "404 not_found_error for 't-late': looked up",
    }
    assert isinstance(final, Deliver) and final.decision.extra["attempt"] == 2
