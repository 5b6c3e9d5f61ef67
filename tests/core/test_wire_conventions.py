"""The wire conventions every shell shares: endpoints, beta values, API error bodies."""

from __future__ import annotations

import json

import pytest

from caproute._core.decision import Decision
from caproute._core.wire import (
    ErrorFields,
    endpoint_for,
    endpoint_of_body,
    error_body,
    error_document,
    error_summary,
    parse_betas,
    parse_error,
    refusal_body,
)


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("POST", "/v1/messages", "messages"),
        ("POST", "/v1/messages/count_tokens", "count_tokens"),
        ("POST", "/v1/messages/batches", "batch"),
        ("POST", "/gateway/anthropic/v1/messages", "messages"),
        ("POST", "/v1/messages/", "messages"),
        ("POST", "/v1/messages/batches//", "batch"),
        ("GET", "/v1/messages/batches", None),
        ("POST", "/v1/messages/batches/msgbatch_1/cancel", None),
        ("POST", "/v1/models", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/files", None),
        ("POST", "/V1/messages", None),
        ("POST", "/", None),
    ],
)
def test_endpoint_for_routes_only_posts_to_the_three_endpoints(
    method: str, path: str, endpoint: str | None
) -> None:
    assert endpoint_for(method, path) == endpoint


def test_a_body_alone_is_a_batch_when_it_has_requests_and_no_model() -> None:
    assert endpoint_of_body({"requests": []}) == "batch"
    assert endpoint_of_body({"requests": [], "model": "m"}) == "messages"
    assert endpoint_of_body({"model": "m"}) == "messages"
    assert endpoint_of_body(["requests"]) == "messages"


def test_betas_come_from_repeated_and_comma_separated_headers() -> None:
    assert parse_betas(["a, b", "c", " ,", ""]) == ("a", "b", "c")
    assert parse_betas([]) == ()


def test_an_error_body_reads_back_as_what_was_built() -> None:
    body = error_body("invalid_request_error", "no", error_code="url_fetch_disabled")
    assert parse_error(body) == ErrorFields(
        "invalid_request_error", "caproute: no", "url_fetch_disabled", None
    )
    document = error_document("not_found_error", "gone", request_id="req_1")
    assert document == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "gone"},
        "request_id": "req_1",
    }
    assert parse_error(json.dumps(document)) == ErrorFields(
        "not_found_error", "gone", None, "req_1"
    )


def test_an_api_error_body_reads_as_its_fields() -> None:
    coded = (
        b'{"type":"error","error":{"type":"invalid_request_error","message":"off",'
        b'"details":{"error_code":"organization_url_fetch_disabled"}},"request_id":"req_1"}'
    )
    assert parse_error(coded) == ErrorFields(
        "invalid_request_error", "off", "organization_url_fetch_disabled", "req_1"
    )


def test_error_body_is_compact_json_in_the_apis_shape() -> None:
    assert error_body("api_error", "boom") == (
        b'{"type":"error","error":{"type":"api_error","message":"caproute: boom"}}'
    )


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1]", b'"text"', b'{"error": "text"}', b"{\xff}"],
)
def test_anything_but_an_error_body_reads_as_nothing(body: bytes) -> None:
    assert parse_error(body)[:3] == (None, None, None)


def test_parts_of_the_wrong_type_read_as_absent() -> None:
    body = {"error": {"type": 1, "message": ["m"], "details": {"error_code": 2}}, "request_id": 3}
    assert parse_error(json.dumps(body)) == ErrorFields()
    assert parse_error(json.dumps({"error": {"type": "t", "details": "d"}})) == ErrorFields("t")


def test_a_refusal_carries_the_reason_and_any_error_code_the_api_gave() -> None:
    refused = Decision("rejected", "m", None, reason="lacks pdf_input")
    assert parse_error(refusal_body(refused)) == ErrorFields(
        "invalid_request_error", "caproute: lacks pdf_input"
    )
    remembered = Decision(
        "rejected", "m", None, reason="url sources off", extra={"error_code": "url_off"}
    )
    assert parse_error(refusal_body(remembered)).error_code == "url_off"
    unnamed = Decision("rejected", "m", None, extra={"error_code": 7})
    assert parse_error(refusal_body(unnamed)) == ErrorFields(
        "invalid_request_error", "caproute: the routing policy refused this request"
    )


def test_a_refusal_body_is_api_shaped() -> None:
    decision = Decision("rejected", "alpha", None, reason="no model supports pdf_input")
    assert json.loads(refusal_body(decision)) == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "caproute: no model supports pdf_input",
        },
    }


def test_an_error_summary_falls_back_to_the_body_and_prefers_the_header_request_id() -> None:
    body = b'{"type":"error","error":{"type":"not_found_error","message":"gone"},"request_id":"b"}'
    assert error_summary(body) == ("not_found_error", "gone", "b")
    assert error_summary(body, "h") == ("not_found_error", "gone", "h")
    assert error_summary(b"  <html>" + b"x" * 300) == (None, "<html>" + "x" * 194, None)
    assert error_summary(b'{"error": {"message": ""}}') == (
        None,
        '{"error": {"message": ""}}',
        None,
    )
    assert error_summary(b" ") == (None, "(empty body)", None)
