"""The response-driven routing flow, driven by hand: actions out, replies in."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2
import pytest

from caproute._core.decision import Change, Decision, RouteResult
from caproute._flow import (
    Action,
    Refresh,
    Refuse,
    Reply,
    RoutedCall,
    Send,
    append_decision_headers,
    decision_header_entries,
    endpoint_for,
    error_of,
    first_action,
    looks_capability_related,
    parse_betas,
    reacts_to,
    refusal_body,
    reply_for,
    routing_flow,
)


class CandidateListRouter:
    """A stand-in router: picks the first candidate that isn't excluded.

    `after_refresh` replaces the candidate list when `refresh()` is called, like a
    registry that learned a model lost a capability.
    """

    def __init__(
        self,
        candidates: Sequence[str],
        *,
        after_refresh: Sequence[str] | None = None,
        fallback: frozenset[int] = frozenset({529}),
        max_attempts: int = 3,
        can_refresh: bool = True,
    ) -> None:
        self.candidates = list(candidates)
        self.after_refresh = after_refresh
        self.fallback = fallback
        self.max_attempts = max_attempts
        self.can_refresh = can_refresh
        self.excludes: list[tuple[str, ...]] = []
        self.retired: list[str] = []
        self.unavailable: list[str] = []
        self.refreshes = 0
        self.reported: list[Decision] = []

    def route(
        self,
        body: Any,
        *,
        endpoint: str = "messages",
        api_version: str | None = None,
        betas: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        exclude: Sequence[str] = (),
        attempt: int = 1,
        cause: str | None = None,
        allow_cooling: bool = True,
    ) -> RouteResult:
        self.excludes.append(tuple(exclude))
        left = [m for m in self.candidates if m not in exclude]
        requested = body.get("model")
        if not left:
            return RouteResult(body, Decision("rejected", requested, None, reason="none left"))
        chosen = left[0]
        if chosen == requested:
            return RouteResult(body, Decision("unchanged", requested, chosen))
        return RouteResult({**body, "model": chosen}, Decision("rerouted", requested, chosen))

    def fallback_statuses(self, decision: Decision) -> frozenset[int]:
        return self.fallback

    def mark_retired(self, model: str) -> None:
        self.retired.append(model)

    def mark_unavailable(self, model: str) -> None:
        self.unavailable.append(model)

    def refresh(self) -> bool:
        self.refreshes += 1
        if self.after_refresh is not None:
            self.candidates = list(self.after_refresh)
        return True

    async def arefresh(self) -> bool:
        return self.refresh()

    async def acurrent(self) -> None:
        return None

    def report(self, decision: Decision) -> None:
        self.reported.append(decision)


def drive(router: CandidateListRouter, call: RoutedCall, replies: Sequence[Reply]) -> list[Action]:
    """Run the flow, answering each Send with the next reply; returns every action."""
    flow = routing_flow(router, call)
    answers = iter(replies)
    actions: list[Action] = []
    action = next(flow)
    while True:
        actions.append(action)
        if isinstance(action, Refuse):
            return actions
        if isinstance(action, Refresh):
            router.refresh()
            reply = None
        else:
            reply = next(answers)
        try:
            action = flow.send(reply)
        except StopIteration:
            return actions


def drive_like_the_drivers(
    router: CandidateListRouter, call: RoutedCall, replies: Sequence[Reply]
) -> list[Action]:
    """Run the flow as the transports and the middleware do: `first_action`, sent, and
    the generator only when the reply is one the flow reacts to."""
    answers = iter(replies)
    first = first_action(router, call)
    if isinstance(first, Refuse):
        return [first]
    reply: Reply | None = next(answers)
    assert reply is not None
    if not reacts_to(reply):
        return [first]
    flow = routing_flow(router, call, first)
    assert next(flow) is first  # yielded again, not routed again
    actions: list[Action] = [first]
    while True:
        try:
            action = flow.send(reply)
        except StopIteration:
            return actions
        actions.append(action)
        if isinstance(action, Refuse):
            return actions
        if isinstance(action, Refresh):
            router.refresh()
            reply = None
        else:
            reply = next(answers)


BODY = {"model": "alpha", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
CALL = RoutedCall(body=BODY, endpoint="messages")
OK = Reply(200)
OVERLOADED = Reply(529)
GONE = Reply(404, "not_found_error", "model: alpha")
UNSUPPORTED = Reply(
    400, "invalid_request_error", "output_config.effort: 'max' is not supported by alpha"
)


def sends(actions: list[Action]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


def test_success_sends_once_and_keeps_the_original_body() -> None:
    router = CandidateListRouter(["alpha", "beta"])
    actions = drive(router, CALL, [OK])
    assert len(actions) == 1
    send = actions[0]
    assert isinstance(send, Send)
    assert send.body is BODY
    assert send.changed is False
    assert send.attempt == 1


def test_a_reroute_is_marked_changed_and_never_mutates_the_input() -> None:
    router = CandidateListRouter(["beta"])
    [send] = sends(drive(router, CALL, [OK]))
    assert send.changed is True
    assert send.body["model"] == "beta"
    assert BODY["model"] == "alpha"


def test_rejected_first_route_is_refused_locally() -> None:
    router = CandidateListRouter([])
    actions = drive(router, CALL, [])
    assert len(actions) == 1
    assert isinstance(actions[0], Refuse)
    assert actions[0].decision.reason == "none left"


def test_overload_falls_back_once_to_the_next_candidate() -> None:
    router = CandidateListRouter(["alpha", "beta", "gamma"])
    actions = drive(router, CALL, [OVERLOADED, OK])
    assert [s.decision.model for s in sends(actions)] == ["alpha", "beta"]
    assert router.unavailable == ["alpha"]
    assert router.excludes == [(), ("alpha",)]
    # The hop re-routes the ORIGINAL body, not the one that failed.
    assert sends(actions)[1].body == {**BODY, "model": "beta"}


def test_a_failing_fallback_is_handed_back_not_retried_again() -> None:
    router = CandidateListRouter(["alpha", "beta", "gamma"])
    actions = drive(router, CALL, [OVERLOADED, OVERLOADED])
    assert [s.decision.model for s in sends(actions)] == ["alpha", "beta"]
    assert router.unavailable == ["alpha", "beta"]


def test_statuses_outside_fallback_on_are_delivered_as_they_are() -> None:
    router = CandidateListRouter(["alpha", "beta"])
    assert len(drive(router, CALL, [Reply(500)])) == 1
    router = CandidateListRouter(["alpha", "beta"], fallback=frozenset({529, 500}))
    assert [s.decision.model for s in sends(drive(router, CALL, [Reply(500), OK]))] == [
        "alpha",
        "beta",
    ]


def test_not_found_marks_the_model_retired_and_is_bounded() -> None:
    router = CandidateListRouter(["alpha", "beta", "gamma", "delta"], max_attempts=3)
    actions = drive(router, CALL, [GONE, GONE, GONE])
    assert [s.decision.model for s in sends(actions)] == ["alpha", "beta", "gamma"]
    assert router.retired == ["alpha", "beta", "gamma"]
    assert [s.attempt for s in sends(actions)] == [1, 2, 3]


def test_capability_400_refreshes_once_then_reroutes() -> None:
    router = CandidateListRouter(["alpha", "beta"], after_refresh=["beta"])
    actions = drive(router, CALL, [UNSUPPORTED, OK])
    assert [type(a).__name__ for a in actions] == ["Send", "Refresh", "Send"]
    assert router.refreshes == 1
    assert sends(actions)[1].decision.model == "beta"


def test_capability_400_is_delivered_when_the_refresh_changes_nothing() -> None:
    router = CandidateListRouter(["alpha", "beta"])
    actions = drive(router, CALL, [UNSUPPORTED])
    assert [type(a).__name__ for a in actions] == ["Send", "Refresh"]


def test_capability_400_without_a_refreshable_registry_is_delivered() -> None:
    router = CandidateListRouter(["alpha", "beta"], can_refresh=False)
    assert len(drive(router, CALL, [UNSUPPORTED])) == 1


def test_a_400_about_the_request_itself_triggers_nothing() -> None:
    router = CandidateListRouter(["alpha", "beta"], after_refresh=["beta"])
    bad = Reply(400, "invalid_request_error", "messages: Field required")
    assert len(drive(router, CALL, [bad])) == 1
    assert router.refreshes == 0


def test_batches_never_fall_back_on_a_single_model() -> None:
    router = CandidateListRouter(["alpha", "beta"])
    call = RoutedCall(body=BODY, endpoint="batch")
    assert len(drive(router, call, [OVERLOADED])) == 1
    assert len(drive(router, call, [GONE])) == 1


def test_when_no_candidate_is_left_mid_flow_the_upstream_answer_stands() -> None:
    router = CandidateListRouter(["alpha"])
    actions = drive(router, CALL, [OVERLOADED])
    assert [type(a).__name__ for a in actions] == ["Send"]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/messages", "messages"),
        ("POST", "/v1/messages/count_tokens", "count_tokens"),
        ("POST", "/v1/messages/batches", "batch"),
        ("POST", "/gateway/anthropic/v1/messages", "messages"),
        ("GET", "/v1/messages/batches", None),
        ("POST", "/v1/messages/batches/msgbatch_1/cancel", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/files", None),
    ],
)
def test_endpoint_for(method: str, path: str, expected: str | None) -> None:
    assert endpoint_for(method, path) == expected


def test_parse_betas_reads_repeated_and_comma_separated_headers() -> None:
    assert parse_betas(["a-1, b-2", "c-3", " "]) == ("a-1", "b-2", "c-3")


def test_error_of() -> None:
    body = b'{"type":"error","error":{"type":"not_found_error","message":"model: x"}}'
    assert error_of(body) == ("not_found_error", "model: x")
    assert error_of(b"<html>bad gateway</html>") == (None, None)
    assert error_of(b'{"error": "flat"}') == (None, None)


def test_refusal_body_is_api_shaped() -> None:
    decision = Decision("rejected", "alpha", None, reason="no model supports pdf_input")
    doc = json.loads(refusal_body(decision))
    assert doc == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "caproute: no model supports pdf_input",
        },
    }


def test_looks_capability_related() -> None:
    decision = Decision("unchanged", "claude-x", "claude-x", needs=("pdf_input",))
    assert looks_capability_related("thinking: not supported by this model", decision)
    assert looks_capability_related("claude-x cannot do that", decision)
    assert looks_capability_related("a PDF input is required", decision)
    assert not looks_capability_related("messages: Field required", decision)
    assert not looks_capability_related("messages.0: Input should be an object", decision)
    assert not looks_capability_related(None, decision)


def test_replies_for_a_status_are_shared_and_equal_to_new_ones() -> None:
    assert reply_for(200) is reply_for(200)
    assert reply_for(529) == Reply(529)


def test_decision_headers_are_appended_as_header_values_says() -> None:
    decision = Decision("unchanged", "a-1", "a-1")
    response = httpx2.Response(200, headers={"content-type": "application/json"})
    assert append_decision_headers(response.headers, decision_header_entries(decision))
    assert {k: response.headers[k] for k in decision.header_values()} == (decision.header_values())
    # A second time (a response that already passed through caproute): not appended;
    # the drivers then set the values through the public API.
    assert not append_decision_headers(response.headers, decision_header_entries(decision))


def test_non_ascii_header_values_take_the_public_api() -> None:
    change = Change("metadata.note", "café", "thé", "adjust", "why")
    decision = Decision("adjusted", "a-1", "a-1", changes=(change,))
    assert decision_header_entries(decision) is None
    headers = httpx2.Headers({"content-type": "application/json"})
    assert not append_decision_headers(headers, None)


@pytest.mark.parametrize(
    ("candidates", "options", "replies"),
    [
        (["alpha", "beta"], {}, [OK]),
        (["beta"], {}, [OK]),
        ([], {}, []),
        (["alpha", "beta", "gamma"], {}, [OVERLOADED, OK]),
        (["alpha", "beta", "gamma"], {}, [OVERLOADED, OVERLOADED]),
        (["alpha", "beta"], {}, [Reply(500)]),
        (["alpha", "beta"], {"fallback": frozenset({529, 500})}, [Reply(500), OK]),
        (["alpha", "beta", "gamma", "delta"], {}, [GONE, GONE, GONE]),
        (["alpha", "beta"], {"after_refresh": ["beta"]}, [UNSUPPORTED, OK]),
        (["alpha", "beta"], {}, [UNSUPPORTED]),
        (["alpha"], {}, [OVERLOADED]),
    ],
)
def test_starting_from_the_first_action_changes_nothing(
    candidates: list[str], options: dict[str, Any], replies: list[Reply]
) -> None:
    # The drivers send `first_action` before (and often instead of) starting the flow.
    whole, split = (
        CandidateListRouter(candidates, **options),
        CandidateListRouter(candidates, **options),
    )
    assert drive_like_the_drivers(split, CALL, replies) == drive(whole, CALL, replies)
    assert vars(split) == vars(whole)
