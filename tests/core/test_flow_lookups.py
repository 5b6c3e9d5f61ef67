"""The flow, pure: count_tokens refusals teach, and a 404 for a name never resolved asks.

Uses the scripted shell of `test_flow` (it carries out actions like `LiveRouter`).
"""

from __future__ import annotations

from typing import Any

from catalogue import REGISTRY
from test_flow import GONE, OK, Shell, refused

from caproute._core.flow import Forward, Learn, ParsedCall, Resolve


def count_call(model: str, **fields: Any) -> ParsedCall:
    body = {"model": model, "messages": [{"role": "user", "content": "Hello"}], **fields}
    return ParsedCall(body, "count_tokens")


def test_a_count_tokens_refusal_is_learned_and_the_count_sent_again() -> None:
    shell = Shell()

    def answer(send: Forward) -> Any:
        if send.body.get("output_config", {}).get("effort") == "xhigh":
            return refused("output_config.effort 'xhigh' is not supported on this model.")
        return OK

    final, sends = shell.run(
        count_call("t-full", output_config={"effort": "xhigh"}), {"t-full": answer}
    )
    learned = [a for a in shell.log if isinstance(a, Learn)]
    assert [(a.model, a.key, a.value) for a in learned] == [("t-full", "effort.xhigh", False)]
    assert len(sends) == 2 and "max_tokens" not in sends[1].body
    assert sends[1].body.get("output_config", {}).get("effort") != "xhigh"
    assert final.decision is sends[1].decision


def test_a_404_for_a_name_never_resolved_asks_once_and_reroutes_by_line() -> None:
    # `t-vanished` is unknown to the registry and the look-up before sending got no
    # answer; after the API's 404 the Models API says: retired, line gamma.
    retired = {**REGISTRY.get("t-small").to_api_dict(), "id": "t-vanished"}  # type: ignore[union-attr]
    retired["lifecycle"] = "retired"
    shell = Shell(can_resolve=True)
    body = {
        "model": "t-vanished",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hi"}],
    }

    def models_api_after_404(send: Forward) -> Any:
        shell.models_api = {"t-vanished": retired}  # it answers from now on
        return GONE

    final, sends = shell.run(ParsedCall(body, "messages"), {"t-vanished": models_api_after_404})
    resolves = [a for a in shell.log if isinstance(a, Resolve)]
    assert [(r.models, r.after_404) for r in resolves] == [
        (("t-vanished",), False),
        (("t-vanished",), True),
    ]
    assert [s.decision.requested_model for s in sends] == ["t-vanished", "t-vanished"]
    assert sends[0].decision.outcome == "passthrough"
    assert sends[1].decision.outcome == "rerouted"
    assert sends[1].decision.model is not None and sends[1].decision.model != "t-vanished"
    assert final.decision is sends[1].decision
