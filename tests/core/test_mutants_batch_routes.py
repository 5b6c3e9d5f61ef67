"""A policy route's `unknown: supported` in a batch, and the flow's handling of a name
looked up after its 404 that changes nothing: mutmut found these free to change."""

from __future__ import annotations

from typing import Any

from catalogue import REGISTRY, body
from test_batch_gamble import CLEAR, batch, first, pdf_for
from test_flow import KEY_A, Shell, with_url_image
from test_mutants_flow import LateModelsAPI

from caproute import Policy
from caproute._core.flow import Deliver, Forward, ParsedCall, RememberAccount, Reply

ROUTE_GAMBLER = Policy.from_dict(
    {
        "version": 1,
        "routes": [
            {"name": "others", "match": {"model": "t-other*"}, "candidates": ["requested"]},
            {"name": "olds", "match": {"model": "t-old*"}, "unknown": "supported"},
        ],
    }
)


def test_a_routes_unknown_supported_reads_as_prefer_known_for_batch_items() -> None:
    single = first(ParsedCall(pdf_for("t-old"), "messages"), CLEAR, ROUTE_GAMBLER)
    assert isinstance(single, Forward) and single.decision.model == "t-old"
    assert single.decision.route == "olds"
    action = first(batch(("pdf", pdf_for("t-old"))), CLEAR, ROUTE_GAMBLER)
    assert isinstance(action, Forward)
    assert action.body["requests"][0]["params"]["model"] == "t-known"
    item = dict(action.decision.items)["pdf"]
    assert (item.outcome, item.route) == ("rerouted", "olds")


def test_a_name_looked_up_after_its_404_that_changes_nothing_delivers_the_404() -> None:
    small = REGISTRY.get("t-small")
    assert small is not None
    shell = LateModelsAPI(
        can_resolve=True, models_api={"t-late": {**small.to_api_dict(), "id": "t-late"}}
    )
    gone = Reply(404, "not_found_error", "model: t-late")
    final, sends = shell.run(ParsedCall(body("t-late"), "messages"), {"t-late": gone})
    assert len(sends) == 1 and isinstance(final, Deliver)


def remembered(reply: Reply) -> list[Any]:
    shell = Shell()
    shell.run(with_url_image(KEY_A), {"t-full": reply})
    return [a.refusal for a in shell.log if isinstance(a, RememberAccount)]


def test_only_an_organization_refusal_with_its_code_is_remembered() -> None:
    unknown_code = Reply(400, "invalid_request_error", "something odd", "some_new_code")
    assert remembered(unknown_code) == []
    silent = Reply(400, "invalid_request_error", None, "organization_url_fetch_disabled")
    [refusal] = remembered(silent)
    assert (refusal.feature, refusal.error_code, refusal.message) == (
        "url_sources",
        "organization_url_fetch_disabled",
        "",
    )
