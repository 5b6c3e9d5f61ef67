"""The wire helpers the shells share (caproute._runtime.drive): endpoints, betas, errors, headers.

The response-driven flow itself is pure and tested in tests/core/test_flow.py; the
drivers that run it are exercised end to end by the transport, middleware and proxy
tests.
"""

from __future__ import annotations

import json

import pytest

from caproute._core.decision import Change, Decision
from caproute._core.wire import endpoint_for, parse_betas, parse_error, refusal_body
from caproute._runtime.drive import Reply, decision_headers, reply_for


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


def error_of(body: bytes) -> tuple[str | None, str | None, str | None]:
    return parse_error(body)[:3]


def test_error_of() -> None:
    body = b'{"type":"error","error":{"type":"not_found_error","message":"model: x"}}'
    assert error_of(body) == ("not_found_error", "model: x", None)
    assert error_of(b"<html>bad gateway</html>") == (None, None, None)
    assert error_of(b'{"error": "flat"}') == (None, None, None)
    coded = (
        b'{"type":"error","error":{"type":"invalid_request_error","message":"off",'
        b'"details":{"error_code":"organization_url_fetch_disabled"}},"request_id":"req_1"}'
    )
    assert error_of(coded) == ("invalid_request_error", "off", "organization_url_fetch_disabled")


def test_a_local_refusal_repeating_the_apis_carries_its_error_code() -> None:
    extra = {"error_code": "organization_url_fetch_disabled"}
    decision = Decision("rejected", "alpha", None, reason="off for the org", extra=extra)
    doc = json.loads(refusal_body(decision))
    assert doc["error"]["details"] == {"error_code": "organization_url_fetch_disabled"}
    assert doc["error"]["message"] == "caproute: off for the org"


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


def test_replies_for_a_status_are_shared_and_equal_to_new_ones() -> None:
    assert reply_for(200) is reply_for(200)
    assert reply_for(529) == Reply(529)


def test_decision_headers_are_header_values_memoised_only_without_changes() -> None:
    decision = Decision("unchanged", "a-1", "a-1")
    assert decision_headers(decision) == decision.header_values()
    assert decision_headers(decision) is decision_headers(Decision("unchanged", "a-1", "a-1"))
    change = Change("metadata.note", "café", "thé", "adjust", "why")
    changed = Decision("adjusted", "a-1", "a-1", changes=(change,))
    assert decision_headers(changed) == changed.header_values()
    assert decision_headers(changed) is not decision_headers(changed)
