"""The response-driven flow, pure: actions out, replies and views in.

A small scripted shell (`Shell`) plays the part of the transports: it answers each
`Forward` from a script keyed by model, keeps learned facts and cool-downs the way
`LiveRouter` does, and hands the flow a fresh `View` after each state change. The
engine is the real `PolicyEngine` over the test catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from catalogue import IMAGE, REGISTRY, body, policy

from caproute._core.engine import PolicyEngine
from caproute._core.flow import (
    AccountRefusal,
    Deliver,
    Forward,
    Learn,
    MarkOverloaded,
    MarkRetired,
    ParsedCall,
    Refresh,
    Refuse,
    RememberAccount,
    Reply,
    Resolve,
    View,
    call_flow,
    first_step,
)
from caproute._core.learned_facts import LearnedFact
from caproute._core.model_info import ModelInfo
from caproute._core.policy import Policy
from caproute._core.registry import Registry
from caproute._core.registry_source import RegistrySource

OK = Reply(200)
OVERLOADED = Reply(529, "overloaded_error", "Overloaded")
GONE = Reply(404, "not_found_error", "model: gone")


def refused(message: str) -> Reply:
    return Reply(400, "invalid_request_error", message)


Script = Mapping[str, Reply | Callable[[Forward], Reply]]


@dataclass
class Shell:
    """Carries out the flow's actions like LiveRouter, with a scripted upstream."""

    registry: Registry = REGISTRY
    policy: Policy = field(default_factory=Policy.default)
    live: bool = True
    can_wait: bool = False
    max_sends: int = 3
    after_refresh: Registry | None = None
    can_resolve: bool = False
    models_api: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """What ``GET /v1/models/{name}`` answers, by name (an alias answers its model)."""
    facts: dict[tuple[str, str], LearnedFact] = field(default_factory=dict)
    accounts: dict[str, dict[str, AccountRefusal]] = field(default_factory=dict)
    cooling: set[str] = field(default_factory=set)
    log: list[Any] = field(default_factory=list)

    def view(self) -> View:
        registry = self.registry.with_learned(self.facts.values()) if self.facts else self.registry
        return View(
            PolicyEngine(registry, self.policy),
            frozenset(self.cooling),
            self.live,
            self.can_wait,
            None,
            self.max_sends,
            self.can_resolve,
            {k: dict(v) for k, v in self.accounts.items()},
            lambda credential: f"digest-of-{credential[::-1]}",
        )

    def run(self, call: ParsedCall, script: Script) -> tuple[Deliver | Refuse, list[Forward]]:
        """Drive one call: the final action and every Forward."""
        sends: list[Forward] = []
        flow = call_flow(call, self.view())
        action = next(flow)
        while True:
            self.log.append(action)
            if isinstance(action, Forward):
                sends.append(action)
                answer = script.get(action.decision.model or "", OK)
                action = flow.send(answer(action) if callable(answer) else answer)
            elif isinstance(action, Deliver | Refuse):
                with pytest.raises(StopIteration):
                    next(flow)
                return action, sends
            else:
                self.carry_out(action)
                action = flow.send(self.view())

    def carry_out(self, action: Any) -> None:
        if isinstance(action, Refresh):
            if self.after_refresh is not None:
                self.registry, self.live = self.after_refresh, True
            self.can_wait = False
        elif isinstance(action, Resolve):
            for name in action.models:
                info = self.models_api.get(name)
                if info is not None:
                    self.registry = self.registry.with_model(ModelInfo.model_validate(info))
                    if info["id"] != name:
                        self.registry = self.registry.with_aliases({name: info["id"]})
        elif isinstance(action, Learn):
            fact = LearnedFact(action.model, action.key, action.value, 10.0, 99.0, action.reason)
            self.facts[(action.model, action.key)] = fact
        elif isinstance(action, MarkRetired):
            self.facts[(action.model, "lifecycle")] = LearnedFact(
                action.model, "lifecycle", "retired", 10.0, 99.0, action.reason
            )
        elif isinstance(action, MarkOverloaded):
            self.cooling.add(action.model)
        elif isinstance(action, RememberAccount):
            self.accounts.setdefault(action.account, {})[action.refusal.feature] = action.refusal


def call(
    model: str = "t-full",
    *,
    retry: int = 0,
    endpoint: Any = "messages",
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> ParsedCall:
    return ParsedCall(body(model, **fields), endpoint, None, (), headers, retry)


def models(sends: list[Forward]) -> list[str | None]:
    return [s.decision.model for s in sends]


# -- the common case -------------------------------------------------------------------------


def test_a_success_is_one_send_of_the_callers_own_body() -> None:
    c = call()
    final, sends = Shell().run(c, {})
    assert isinstance(final, Deliver)
    assert len(sends) == 1 and sends[0].body is c.body and not sends[0].changed
    assert final.decision is sends[0].decision


def test_a_request_no_model_can_serve_is_refused_before_anything_is_sent() -> None:
    final, sends = Shell(policy=policy({"effort": "reject"})).run(
        call("t-enabled", output_config={"effort": "low"}), {}
    )
    assert isinstance(final, Refuse) and sends == []
    assert "policy says reject" in (final.decision.reason or "")


def test_first_step_is_what_the_flow_starts_with() -> None:
    shell = Shell()
    c = call("t-enabled", output_config={"effort": "low"})
    first = first_step(shell.view(), c)
    assert isinstance(first, Forward)
    flow = call_flow(c, shell.view(), first)
    assert next(flow) is first  # yielded again, not routed a second time


# -- cold start --------------------------------------------------------------------------------


def test_cold_start_waits_for_live_data_when_it_could_change_the_decision() -> None:
    snapshot = Registry.from_models([m for m in REGISTRY.models if m.id != "t-ladder"])
    shell = Shell(registry=snapshot, live=False, can_wait=True, after_refresh=REGISTRY)
    final, sends = shell.run(call("t-ladder"), {})
    assert isinstance(shell.log[0], Refresh)  # unknown to the snapshot: wait, then decide
    assert models(sends) == ["t-ladder"] and sends[0].decision.outcome == "unchanged"
    assert isinstance(final, Deliver)


def test_cold_start_waits_once_even_for_a_request_the_snapshot_finds_fine() -> None:
    # The snapshot says t-full is fine; live data says it was retired since.
    retired = REGISTRY.with_lifecycle("t-full", "retired")
    shell = Shell(live=False, can_wait=True, after_refresh=retired)
    final, sends = shell.run(call("t-full"), {})
    assert [type(a) for a in shell.log] == [Refresh, Forward, Deliver]
    assert models(sends) == ["t-adaptive"]  # decided on the live data, first attempt
    # Without a fetch to wait for (no credentials, a failure back-off), no wait.
    offline = Shell(live=False, can_wait=False)
    offline.run(call("t-full"), {})
    assert [type(a) for a in offline.log] == [Forward, Deliver]


def test_cold_start_waits_at_most_once() -> None:
    shell = Shell(live=False, can_wait=True)  # the fetch brings nothing new
    shell.run(call("t-enabled", output_config={"effort": "low"}), {})
    assert [type(a) for a in shell.log] == [Refresh, Forward, Deliver]


def test_no_cold_start_wait_for_a_body_that_is_not_a_messages_body() -> None:
    shell = Shell(live=False, can_wait=True)
    final, sends = shell.run(ParsedCall({"model": "t-full"}, "messages"), {})
    assert [type(a) for a in shell.log] == [Forward, Deliver]
    assert sends[0].decision.outcome == "passthrough"


# -- learning from a refusal -----------------------------------------------------------------


def test_an_attributable_400_is_learned_and_the_call_sent_once_more() -> None:
    shell = Shell()
    refusal = refused("output_config.effort 'max' is not supported on this model.")
    answers: dict[str, Reply | Callable[[Forward], Reply]] = {
        "t-full": lambda s: refusal if s.body["output_config"]["effort"] == "max" else OK
    }
    c = call("t-full", output_config={"effort": "max"})
    final, sends = shell.run(c, answers)
    learned = [a for a in shell.log if isinstance(a, Learn)]
    assert learned == [Learn("t-full", "effort.max", False, "a 400 from t-full named effort.max")]
    assert [s.body["output_config"]["effort"] for s in sends] == ["max", "xhigh"]
    assert isinstance(final, Deliver) and final.decision.extra["attempt"] == 2
    assert "learned effort.max" in final.decision.extra["cause"]
    # Afterwards the first attempt is already right.
    again, resent = shell.run(c, answers)
    assert [s.body["output_config"]["effort"] for s in resent] == ["xhigh"]


@pytest.mark.parametrize(
    "message",
    [
        "messages: Field required",  # about the request itself
        "Unsupported beta header: foo",  # names nothing the request carried
        "`temperature` may only be set to 1 when thinking is enabled.",  # a rule, two candidates
        "",
    ],
)
def test_a_400_caproute_cannot_attribute_reaches_the_caller_unchanged(message: str) -> None:
    shell = Shell()
    final, sends = shell.run(call(temperature=0.5), {"t-full": refused(message)})
    assert len(sends) == 1 and isinstance(final, Deliver)
    assert not any(isinstance(a, Learn) for a in shell.log)


def test_only_one_learning_resend_per_call() -> None:
    shell = Shell()
    always = refused("output_config.effort is not supported on this model.")
    final, sends = shell.run(call(output_config={"effort": "max"}), {"t-full": always})
    assert len([a for a in shell.log if isinstance(a, Learn)]) == 1
    assert len(sends) == 2


def test_a_learned_fact_that_changes_nothing_is_not_resent() -> None:
    # The 400 blames effort, but the request carries none: nothing to learn about it.
    shell = Shell()
    final, sends = shell.run(call(), {"t-full": refused("This model does not support effort.")})
    assert len(sends) == 1


def test_a_learned_limit_clamps_max_tokens() -> None:
    shell = Shell()
    text = refused(
        "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens"
    )
    answers = {"t-full": lambda s: text if s.body["max_tokens"] > 64_000 else OK}
    final, sends = shell.run(call(max_tokens=100_000), answers)
    assert [s.body["max_tokens"] for s in sends] == [100_000, 64_000]
    assert shell.facts[("t-full", "max_tokens")].value == 64_000


# -- 404: retired -------------------------------------------------------------------------------


def test_a_404_marks_the_model_retired_and_reroutes_by_its_line() -> None:
    shell = Shell()
    final, sends = shell.run(call("t-full"), {"t-full": GONE})
    assert models(sends) == ["t-full", "t-adaptive"]  # same line, next newest
    assert any(isinstance(a, MarkRetired) and a.model == "t-full" for a in shell.log)
    # From then on, straight to the line's next model.
    _, resent = shell.run(call("t-full"), {})
    assert models(resent) == ["t-adaptive"]


def test_never_rerouted_to_itself_after_a_404() -> None:
    shell = Shell(policy=policy(candidates=["requested"]))
    final, sends = shell.run(call("t-full"), {"t-full": GONE})
    assert models(sends) == ["t-full"]
    assert isinstance(final, Deliver)  # the API's own 404


def test_a_name_nobody_knows_gets_the_apis_own_404() -> None:
    shell = Shell()
    final, sends = shell.run(call("t-typo"), {"t-typo": GONE})
    assert len(sends) == 1 and sends[0].decision.outcome == "passthrough"
    assert not any(isinstance(a, MarkRetired) for a in shell.log)
    # Asked about, the Models API doesn't know it either: the same single send. Its 404
    # asks once more (`after_404`: the shell asks only if the first look-up failed).
    asking = Shell(can_resolve=True)
    final, sends = asking.run(call("t-typo"), {"t-typo": GONE})
    assert [type(a) for a in asking.log] == [Resolve, Forward, Resolve, Deliver]
    first, again = (a for a in asking.log if isinstance(a, Resolve))
    assert (first.after_404, again.after_404) == (False, True)
    assert len(sends) == 1 and sends[0].decision.outcome == "passthrough"


# -- names only the Models API can resolve --------------------------------------------------


def test_an_alias_the_list_never_shows_is_resolved_and_routed_on_the_first_send() -> None:
    # `t-sonnet-latest` is an alias only `GET /v1/models/{alias}` resolves, to a model
    # without images. Forwarded as an unknown name, the image was the API's 400.
    small = REGISTRY.get("t-small")
    assert small is not None
    no_images = {**small.to_api_dict(), "id": "t-hidden"}
    shell = Shell(can_resolve=True, models_api={"t-sonnet-latest": no_images})
    c = call("t-sonnet-latest", messages=[{"role": "user", "content": [IMAGE]}])
    final, sends = shell.run(c, {"t-sonnet-latest": refused("image input is not supported")})
    assert isinstance(shell.log[0], Resolve) and shell.log[0].models == ("t-sonnet-latest",)
    assert len(sends) == 1 and sends[0].decision.outcome == "rerouted"
    assert sends[0].decision.model == "t-gamma-vision"  # t-hidden's line, with images
    assert isinstance(final, Deliver)


def test_a_batchs_unknown_names_are_resolved_together_before_the_send() -> None:
    small = REGISTRY.get("t-small")
    assert small is not None
    no_images = {**small.to_api_dict(), "id": "t-hidden"}
    shell = Shell(can_resolve=True, models_api={"t-sonnet-latest": no_images})
    items = [
        {
            "custom_id": "a",
            "params": body("t-sonnet-latest", messages=[{"role": "user", "content": [IMAGE]}]),
        },
        {"custom_id": "b", "params": body("t-typo")},
        {"custom_id": "c", "params": body("t-sonnet-latest")},
        {"custom_id": "d", "params": body("t-full")},
    ]
    final, sends = shell.run(ParsedCall({"requests": items}, "batch"), {})
    [resolve] = [a for a in shell.log if isinstance(a, Resolve)]
    assert resolve.models == ("t-sonnet-latest", "t-typo")  # each unknown name once
    # Nobody knows `t-typo` even then: a batch never gambles, so nothing is sent.
    assert sends == [] and isinstance(final, Refuse)
    decisions = dict(final.decision.items)
    assert decisions["a"].model == "t-gamma-vision"  # the alias's model lacks images
    assert decisions["b"].outcome == "rejected"
    assert decisions["b"].extra["unknown_support"].startswith("t-typo: unknown to the registry")
    assert decisions["c"].outcome == "unchanged" and decisions["d"].outcome == "unchanged"
    # Without the typo, the batch goes out with every name resolved.
    shell = Shell(can_resolve=True, models_api={"t-sonnet-latest": no_images})
    final, sends = shell.run(ParsedCall({"requests": items[:1] + items[2:]}, "batch"), {})
    [send] = sends
    assert dict(send.decision.items)["a"].model == "t-gamma-vision"


def test_resolving_is_asked_once_and_only_for_unknown_names() -> None:
    shell = Shell(can_resolve=True)
    shell.run(call("t-full"), {})
    shell.run(ParsedCall({"model": "t-typo"}, "messages"), {})  # not a Messages body: no question
    shell.run(call("t-typo", endpoint="batch"), {})
    assert not any(isinstance(a, Resolve) for a in shell.log)
    cold = Shell(can_resolve=True, live=False, can_wait=True)
    cold.run(call("t-typo"), {})
    assert [type(a) for a in cold.log] == [Refresh, Resolve, Forward, Deliver]


# -- overload -------------------------------------------------------------------------------------


def test_an_overload_falls_back_once_within_the_price_class() -> None:
    shell = Shell()
    final, sends = shell.run(call("t-full"), {"t-full": OVERLOADED})
    assert models(sends) == ["t-full", "t-adaptive"]  # alpha line only
    assert shell.cooling == {"t-full"}


def test_when_the_line_is_exhausted_the_overload_is_delivered() -> None:
    shell = Shell()
    final, sends = shell.run(call("t-small"), {"t-small": OVERLOADED, "t-gamma-vision": OVERLOADED})
    assert models(sends) == ["t-small", "t-gamma-vision"]
    assert shell.cooling == {"t-small", "t-gamma-vision"}  # both cool down
    again, resent = shell.run(call("t-small"), {"t-small": OVERLOADED})
    assert models(resent) == ["t-small"]  # nothing else in the line: one send, no other line


def test_an_sdk_retry_sends_once() -> None:
    shell = Shell()
    final, sends = shell.run(call("t-full", retry=1), {"t-full": OVERLOADED})
    assert models(sends) == ["t-full"]
    assert shell.cooling == {"t-full"}


def test_a_fallback_never_picks_a_deprecated_model_unless_allowed() -> None:
    shell = Shell()
    final, sends = shell.run(call("t-enabled"), {"t-enabled": OVERLOADED})
    assert models(sends) == ["t-enabled", "t-ladder"]  # t-deprecated passed over
    allowing = Shell(
        policy=Policy.from_dict({"version": 1, "defaults": {"allow_deprecated": True}})
    )
    _, sends = allowing.run(call("t-enabled"), {"t-enabled": OVERLOADED})
    assert models(sends) == ["t-enabled", "t-deprecated"]


def test_a_policy_can_fall_back_across_lines_and_the_decision_says_so() -> None:
    shell = Shell(policy=policy(candidates=["requested", "t-full"]))
    final, sends = shell.run(call("t-small"), {"t-small": OVERLOADED})
    assert models(sends) == ["t-small", "t-full"]
    assert any("price class" in note for note in sends[1].decision.notes)


def test_statuses_outside_fallback_on_are_delivered_as_they_are() -> None:
    shell = Shell()
    final, sends = shell.run(call(), {"t-full": Reply(500, "api_error", "boom")})
    assert len(sends) == 1
    fallback = Shell(policy=Policy.from_text("defaults:\n  fallback_on: ['5xx']\n"))
    _, sends = fallback.run(call(), {"t-full": Reply(503, "api_error", "busy")})
    assert models(sends) == ["t-full", "t-adaptive"]


# -- bounds -----------------------------------------------------------------------------------


def test_sends_are_bounded_by_the_view() -> None:
    shell = Shell(max_sends=1)
    final, sends = shell.run(call(), {"t-full": OVERLOADED})
    assert len(sends) == 1 and isinstance(final, Deliver)


def test_a_batch_never_reacts_to_a_single_model_answer() -> None:
    batch = {"requests": [{"custom_id": "a", "params": body("t-full")}]}
    shell = Shell()
    final, sends = shell.run(ParsedCall(batch, "batch"), {"t-full": OVERLOADED, "": OVERLOADED})
    assert len(sends) == 1
    assert [type(a) for a in shell.log] == [Forward, Deliver]


def test_three_404s_in_a_row_stop_at_the_bound() -> None:
    shell = Shell()
    final, sends = shell.run(call("t-full"), {"t-full": GONE, "t-adaptive": GONE, "t-ladder": GONE})
    assert len(sends) == 3
    assert isinstance(final, Deliver)


def test_the_flow_never_mutates_the_callers_body() -> None:
    c = call("t-full", output_config={"effort": "max"})
    snapshot = repr(c.body)
    Shell().run(
        c, {"t-full": refused("output_config.effort 'max' is not supported on this model.")}
    )
    assert repr(c.body) == snapshot


def test_a_live_registry_fetched_after_the_fact_states_the_truth() -> None:
    # The registry said effort.max was supported; a fact says it isn't; a fresher live
    # fetch that still states it wins, so the request goes out unchanged again.
    fact = LearnedFact("t-full", "effort.max", False, 50.0, 99.0, "a 400")
    stale = REGISTRY.with_source(RegistrySource("live", fetched_at=40.0)).with_learned([fact])
    fresh = REGISTRY.with_source(RegistrySource("live", fetched_at=60.0)).with_learned([fact])
    request = body("t-full", output_config={"effort": "max"})
    assert PolicyEngine(stale).route(request).decision.outcome == "adjusted"
    assert PolicyEngine(fresh).route(request).decision.outcome == "unchanged"


def test_a_404_about_the_path_is_not_a_retired_model() -> None:
    # A wrong gateway prefix answers 404 not_found_error too; only a 404 naming the
    # model (or saying "model") marks it retired.
    shell = Shell()
    wrong_path = Reply(404, "not_found_error", "Not Found")
    final, sends = shell.run(call("t-full"), {"t-full": wrong_path})
    assert len(sends) == 1 and isinstance(final, Deliver)
    assert not any(isinstance(a, MarkRetired) for a in shell.log)
    named = Reply(404, "not_found_error", "claude says t-full does not exist")
    _, sends = Shell().run(call("t-full"), {"t-full": named})
    assert models(sends) == ["t-full", "t-adaptive"]


# -- what a refusal is about ---------------------------------------------------------------------

URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "https://example.test/a.png"}}
ORG_OFF = Reply(
    400,
    "invalid_request_error",
    "messages.0.content.0: URL sources are turned off for this organization.",
    "organization_url_fetch_disabled",
)
KEY_A, KEY_B = {"x-api-key": "sk-a"}, {"authorization": "Bearer sk-b"}


def with_url_image(headers: Mapping[str, str] | None, **fields: Any) -> ParsedCall:
    content = [URL_IMAGE, {"type": "text", "text": "what is it?"}]
    return call(headers=headers, messages=[{"role": "user", "content": content}], **fields)


def test_an_organization_refusal_is_remembered_for_the_credential_not_the_model() -> None:
    shell = Shell()
    final, sends = shell.run(with_url_image(KEY_A), {"t-full": ORG_OFF})
    assert len(sends) == 1 and isinstance(final, Deliver)
    assert final.decision.extra["refusal"] == "organization"
    assert not any(isinstance(a, Learn) for a in shell.log) and shell.facts == {}
    remembered = [a for a in shell.log if isinstance(a, RememberAccount)]
    assert [r.account for r in remembered] == ["digest-of-a-ks"]  # never the key itself
    assert remembered[0].refusal == AccountRefusal(
        "url_sources", "organization_url_fetch_disabled", ORG_OFF.error_message or ""
    )
    # The same credential: refused locally, with the API's reason and code.
    again, resent = shell.run(with_url_image(KEY_A), {"t-full": OK})
    assert resent == [] and isinstance(again, Refuse)
    assert again.decision.extra["error_code"] == "organization_url_fetch_disabled"
    assert ORG_OFF.error_message and ORG_OFF.error_message in (again.decision.reason or "")
    assert "messages.0.content.0" in (again.decision.reason or "")
    # Another credential, or a request without URL sources: sent as before.
    other, sent_b = shell.run(with_url_image(KEY_B), {"t-full": OK})
    plain, sent_plain = shell.run(call(headers=KEY_A), {"t-full": OK})
    assert [len(sent_b), len(sent_plain)] == [1, 1]
    assert isinstance(other, Deliver) and isinstance(plain, Deliver)


def test_an_organization_refusal_without_a_credential_is_not_remembered() -> None:
    shell = Shell()
    shell.run(with_url_image(None), {"t-full": ORG_OFF})
    assert shell.accounts == {}


def test_an_organization_refusal_recognised_only_by_its_words_is_not_remembered() -> None:
    shell = Shell()
    words_only = Reply(400, "invalid_request_error", "This organization has been disabled.")
    final, sends = shell.run(with_url_image(KEY_A), {"t-full": words_only})
    assert len(sends) == 1 and final.decision.extra["refusal"] == "organization"
    assert shell.accounts == {} and shell.facts == {}


def test_a_payload_refusal_is_delivered_and_teaches_nothing() -> None:
    shell = Shell()
    too_big = refused(
        "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: "
        "6418576 bytes > 5242880 bytes"
    )
    sent = call(messages=[{"role": "user", "content": [IMAGE]}])
    final, sends = shell.run(sent, {"t-full": too_big})
    assert len(sends) == 1 and final.decision.extra["refusal"] == "payload"
    assert shell.facts == {} and shell.accounts == {}
    # The next request to the model with an image goes to it as before.
    _, resent = shell.run(sent, {"t-full": OK})
    assert models(resent) == ["t-full"]


DEPRECATED = refused("`temperature` is deprecated for this model.")


def refuses_temperature(send: Forward) -> Reply:
    return DEPRECATED if "temperature" in send.body else OK


def test_a_refused_parameter_is_learned_and_stripped_for_that_model_only() -> None:
    shell = Shell()
    final, sends = shell.run(call(temperature=0.3), {"t-full": refuses_temperature})
    assert [("temperature" in s.body) for s in sends] == [True, False]
    assert models(sends) == ["t-full", "t-full"]
    fact = shell.facts[("t-full", "parameters.temperature")]
    assert fact.value is False
    assert isinstance(final, Deliver) and final.decision.outcome == "adjusted"
    assert any("t-full, which refused it" in n for n in final.decision.notes)
    # Afterwards: stripped on the first send for t-full; t-enabled keeps its temperature.
    _, again = shell.run(call(temperature=0.3, top_k=5), {"t-full": refuses_temperature})
    assert len(again) == 1 and "temperature" not in again[0].body and again[0].body["top_k"] == 5
    _, other = shell.run(call("t-enabled", temperature=0.3), {})
    assert len(other) == 1 and other[0].body["temperature"] == 0.3
    assert other[0].decision.outcome == "unchanged"


def test_a_refused_parameter_can_be_rerouted_instead_by_policy() -> None:
    shell = Shell(policy=policy({"refused_parameters": "reroute"}))
    # temperature 1: what every model takes, even with thinking always on
    final, sends = shell.run(call(temperature=1), {"t-full": refuses_temperature})
    assert len(sends) == 2 and models(sends)[0] == "t-full" != models(sends)[1]
    assert all(s.body["temperature"] == 1 for s in sends)
    assert "t-full refuses temperature (learned from its 400) (policy: reroute)" in str(
        final.decision.candidates
    )
    assert isinstance(final, Deliver) and final.decision.outcome == "rerouted"


def test_the_fast_path_does_not_hide_a_refused_parameter() -> None:
    # An unchanged decision cached for a body without `speed` must not serve one with it.
    shell = Shell()
    speed = refused("`speed` is not supported by this model.")
    answers = {"t-full": lambda s: speed if "speed" in s.body else OK}
    shell.run(call(speed="fast"), answers)
    view = shell.view()
    plain = first_step(view, call())
    fast = first_step(view, call(speed="fast"))
    assert isinstance(plain, Forward) and plain.decision.outcome == "unchanged"
    assert isinstance(fast, Forward) and "speed" not in fast.body
