"""Credentials, organization refusals, look-ups after a 404 and batches that would
gamble: the edges mutmut found untested."""

from __future__ import annotations

from typing import Any

import pytest
from catalogue import PDF, body, model, registry, user
from test_flow import KEY_A, ORG_OFF, URL_IMAGE, Shell, with_url_image

from caproute import PolicyEngine
from caproute._core.flow import Deliver, ParsedCall, Refuse, Reply, Resolve, credential_of
from caproute._core.learning import uses_account_feature


@pytest.mark.parametrize(
    ("headers", "credential"),
    [
        (None, None),
        ({}, None),
        ({"x-api-key": "sk-a"}, "sk-a"),
        ({"x-api-key": "sk-a", "authorization": "Bearer sk-b"}, "sk-a"),
        ({"authorization": "Bearer sk-b"}, "sk-b"),
        ({"authorization": "bearer  sk-b "}, "sk-b"),
        ({"authorization": "BEARER sk-b"}, "sk-b"),
        ({"authorization": "Bearer "}, None),
        ({"authorization": "Basic dXNlcg=="}, None),
        ({"authorization": "sk-b"}, None),
        ({"x-api-key": "", "authorization": "Bearer sk-b"}, "sk-b"),
    ],
)
def test_the_credential_a_call_carries(headers: Any, credential: str | None) -> None:
    assert credential_of(headers) == credential


def test_a_local_organization_refusal_is_a_rejection_in_the_apis_words() -> None:
    shell = Shell()
    shell.run(with_url_image(KEY_A), {"t-full": ORG_OFF})
    again, sends = shell.run(with_url_image(KEY_A, temperature=0.5), {})
    assert sends == [] and isinstance(again, Refuse)
    decision = again.decision
    assert (decision.outcome, decision.model, decision.changes) == ("rejected", None, ())
    assert decision.reason == (
        f"{ORG_OFF.error_message} (messages.0.content.0: the API refused this for this "
        "credential's organization earlier; answered locally)"
    )
    assert decision.extra == {
        "error_code": "organization_url_fetch_disabled",
        "refusal": "organization",
    }
    # without a credential nothing was remembered, so nothing is refused
    other, sends = shell.run(with_url_image(None), {})
    assert isinstance(other, Deliver) and len(sends) == 1


URL_DOCUMENT = {"type": "document", "source": {"type": "url", "url": "https://example.test/a"}}


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"messages": [user(URL_IMAGE)]}, "messages.0.content.0"),
        (
            {"messages": ["junk", user({"type": "text", "text": "a"}, URL_IMAGE)]},
            "messages.1.content.1",
        ),
        ({"messages": [user("junk", URL_IMAGE)]}, "messages.0.content.1"),
        (
            {
                "messages": [
                    user(
                        {
                            "type": "document",
                            "source": {
                                "type": "content",
                                "content": [{"type": "text", "text": "a"}, URL_IMAGE],
                            },
                        }
                    )
                ]
            },
            "messages.0.content.0.source.content.1",
        ),
        (
            {
                "messages": [
                    user(
                        {"type": "document", "source": {"type": "content", "content": []}},
                        URL_DOCUMENT,
                    )
                ]
            },
            "messages.0.content.1",
        ),
        ({"tools": ["junk", {"type": "web_fetch_20250910", "name": "f"}]}, "tools.1"),
        ({"tools": [{"type": "web_search_20260318", "name": "s"}]}, None),
        ({"mcp_servers": [{"url": "https://example.test"}]}, "mcp_servers"),
    ],
)
def test_where_a_body_uses_url_sources(fields: dict[str, Any], where: str | None) -> None:
    assert uses_account_feature(body("t-full", **fields), "url_sources") == where


def test_only_url_sources_are_an_account_feature() -> None:
    assert uses_account_feature(body("t-full", messages=[user(URL_IMAGE)]), "other") is None


def test_a_404_that_is_not_not_found_error_is_not_looked_up() -> None:
    shell = Shell(can_resolve=True)
    shell.run(
        ParsedCall(body("t-typo"), "messages"), {"t-typo": Reply(404, "api_error", "no route")}
    )
    assert [a.after_404 for a in shell.log if isinstance(a, Resolve)] == [False]


def test_a_shell_that_cannot_resolve_is_never_asked_after_a_404() -> None:
    shell = Shell()
    gone = Reply(404, "not_found_error", "model: t-typo")
    shell.run(ParsedCall(body("t-typo"), "messages"), {"t-typo": gone})
    assert not any(isinstance(a, Resolve) for a in shell.log)


def test_a_count_tokens_call_is_looked_up_after_its_404() -> None:
    counted = {"model": "t-typo", "messages": [{"role": "user", "content": "hi"}]}
    shell = Shell(can_resolve=True)
    gone = Reply(404, "not_found_error", "model: t-typo")
    shell.run(ParsedCall(counted, "count_tokens"), {"t-typo": gone})
    assert [a.after_404 for a in shell.log if isinstance(a, Resolve)] == [False, True]


# -- batches that would gamble --------------------------------------------------------------

VAGUE = registry([model("t-vague", "alpha", caps={"pdf_input": None, "batch": None})])
CLEAR = registry([model("t-known", "beta")])


def pdf_batch(*names: str, **fields: Any) -> dict[str, Any]:
    return {
        "requests": [
            {"custom_id": n, "params": body(n, messages=[user(PDF)], **fields)} for n in names
        ]
    }


def test_a_gambling_item_names_everything_unknown_and_keeps_no_change() -> None:
    engine = PolicyEngine(VAGUE)
    thinking = {"type": "adaptive"}
    routed = engine.route(
        pdf_batch("t-vague", thinking=thinking, temperature=0.5), endpoint="batch"
    )
    refused = engine.never_gamble(routed)
    assert refused.body is routed.body
    item = dict(refused.decision.items)["t-vague"]
    assert (item.outcome, item.model, item.changes) == ("rejected", None, ())
    assert item.extra["unknown_support"] == "t-vague: batch, pdf_input"
    assert item.reason == (
        "no model is known to take this request (t-vague: batch, pdf_input: support unknown); "
        "a batch item is never sent on unknown support, since the API would error it only "
        "when the batch ends (the policy's defaults.allow_unknown_in_batches: true sends it; "
        "for one `caproute batch` job, --allow-unknown)"
    )


def test_a_batch_that_does_not_gamble_is_returned_as_it_is() -> None:
    engine = PolicyEngine(CLEAR)
    routed = engine.route(pdf_batch("t-known"), endpoint="batch")
    assert engine.never_gamble(routed) is routed


def test_an_empty_model_name_is_never_looked_up() -> None:
    shell = Shell(can_resolve=True)
    gone = Reply(404, "not_found_error", "model: ")
    shell.run(ParsedCall(body(""), "messages"), {"": gone})
    assert not any(isinstance(a, Resolve) for a in shell.log)
